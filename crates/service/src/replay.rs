//! Proof `jti`s seen within the acceptance window, bounded in memory: the local replay check of
//! the gateway and of the control plane's DPoP-protected endpoint.

use std::collections::HashMap;

use medgate_verify::UnixTime;
use parking_lot::Mutex;

/// Why a proof was not admitted by the replay cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// The same key already used this `jti` within the window.
    Replayed,
    /// This installation already holds its whole share of live entries (HTTP 429: it is
    /// sending faster than its share allows; nobody else is affected).
    ShareExhausted,
    /// The cache is full of live entries; the request is refused rather than left unchecked.
    Full,
}

/// Proof `jti`s seen within the acceptance window (RFC 9449 §11.1). Each installation holds at
/// most `share` live entries, so one installation cannot fill the cache for everyone else.
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<ReplayState>,
    capacity: usize,
    share: usize,
}

#[derive(Debug)]
struct ReplayState {
    /// replay key → the last instant at which the proof could still be accepted, and its owner.
    seen: HashMap<[u8; 32], (i64, [u8; 32])>,
    /// owner (SHA-256 of the installation id) → live entries it holds.
    held: HashMap<[u8; 32], usize>,
    last_sweep: i64,
}

impl ReplayState {
    /// Forgets entries past their window.
    fn sweep(&mut self, now: i64) {
        let held = &mut self.held;
        self.seen.retain(|_, (until, owner)| {
            let live = *until >= now;
            if !live && let Some(count) = held.get_mut(owner) {
                *count -= 1;
                if *count == 0 {
                    held.remove(owner);
                }
            }
            live
        });
        self.last_sweep = now;
    }
}

impl ReplayCache {
    pub fn new(capacity: usize, share: usize) -> Self {
        ReplayCache {
            inner: Mutex::new(ReplayState {
                seen: HashMap::with_capacity(capacity.min(65_536)),
                held: HashMap::new(),
                last_sweep: i64::MIN,
            }),
            capacity: capacity.max(1),
            share: share.max(1),
        }
    }

    /// Admits a proof once. `owner` is the installation that signed it; `acceptable_until` is
    /// the last instant at which the proof's `iat` is still inside the window, after which the
    /// entry is forgotten.
    pub fn admit(
        &self,
        key: [u8; 32],
        owner: [u8; 32],
        acceptable_until: UnixTime,
        now: UnixTime,
    ) -> Result<(), ReplayError> {
        let mut state = self.inner.lock();
        let owner_full = state.held.get(&owner).is_some_and(|n| *n >= self.share);
        if (state.seen.len() >= self.capacity / 2 || owner_full) && state.last_sweep < now.secs() {
            state.sweep(now.secs());
        }
        match state.seen.get(&key) {
            Some((until, _)) if *until >= now.secs() => return Err(ReplayError::Replayed),
            _ => {}
        }
        if state.held.get(&owner).is_some_and(|n| *n >= self.share) {
            return Err(ReplayError::ShareExhausted);
        }
        if state.seen.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        if let Some((_, previous)) = state.seen.insert(key, (acceptable_until.secs(), owner)) {
            // An expired entry under the same key, not yet swept: its owner's count moves.
            let emptied = state.held.get_mut(&previous).is_some_and(|count| {
                *count -= 1;
                *count == 0
            });
            if emptied {
                state.held.remove(&previous);
            }
        }
        *state.held.entry(owner).or_insert(0) += 1;
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 32] = [0xa; 32];
    const B: [u8; 32] = [0xb; 32];

    #[test]
    fn a_proof_is_admitted_once_within_its_window() {
        let cache = ReplayCache::new(100, 100);
        let now = UnixTime::from_secs(1000);
        assert_eq!(cache.admit([1; 32], A, now.plus(60), now), Ok(()));
        assert_eq!(
            cache.admit([1; 32], A, now.plus(60), now.plus(30)),
            Err(ReplayError::Replayed)
        );
        assert_eq!(cache.admit([2; 32], A, now.plus(60), now), Ok(()));
        // After the window the proof is stale anyway; the entry may be reused.
        assert_eq!(cache.admit([1; 32], A, now.plus(200), now.plus(61)), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_instead_of_forgetting_live_entries() {
        let cache = ReplayCache::new(4, 4);
        let now = UnixTime::from_secs(1000);
        for i in 0..2 {
            cache.admit([i; 32], A, now.plus(60), now).unwrap();
            cache.admit([i + 10; 32], B, now.plus(60), now).unwrap();
        }
        assert_eq!(
            cache.admit([9; 32], [0xc; 32], now.plus(60), now),
            Err(ReplayError::Full)
        );
        // Once the entries expire a sweep frees the space.
        assert_eq!(cache.admit([9; 32], A, now.plus(200), now.plus(61)), Ok(()));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn one_installation_cannot_take_more_than_its_share() {
        let cache = ReplayCache::new(1000, 3);
        let now = UnixTime::from_secs(1000);
        for i in 0..3 {
            cache.admit([i; 32], A, now.plus(60), now).unwrap();
        }
        // A floods: refused on its own account, and B is unaffected.
        for i in 3..50 {
            assert_eq!(
                cache.admit([i; 32], A, now.plus(60), now),
                Err(ReplayError::ShareExhausted)
            );
        }
        assert_eq!(cache.admit([100; 32], B, now.plus(60), now), Ok(()));
        assert_eq!(cache.len(), 4);
        // A's share comes back once its entries leave the window.
        assert_eq!(
            cache.admit([200; 32], A, now.plus(200), now.plus(61)),
            Ok(())
        );
    }
}
