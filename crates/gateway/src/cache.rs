//! In-memory state of the data plane: verified tokens and seen proofs. Both are bounded.

use std::collections::HashMap;
use std::sync::Arc;

use medgate_verify::UnixTime;
use medgate_verify::token::VerifiedToken;
use parking_lot::Mutex;

/// Verified tokens by their `ath` (base64url SHA-256 of the token), kept until `exp`, so a
/// token's signature is checked once and each request pays only for its proof.
#[derive(Debug)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, Arc<VerifiedToken>>>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            entries: Mutex::new(HashMap::with_capacity(capacity.min(4096))),
            capacity: capacity.max(1),
        }
    }

    pub fn get(&self, ath: &str, now: UnixTime) -> Option<Arc<VerifiedToken>> {
        let mut entries = self.entries.lock();
        match entries.get(ath) {
            Some(token) if token.is_live(now) => Some(Arc::clone(token)),
            Some(_) => {
                entries.remove(ath);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, token: Arc<VerifiedToken>, now: UnixTime) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, cached| cached.is_live(now));
            if entries.len() >= self.capacity {
                // Still full of live tokens: drop an arbitrary one; it is re-verified if seen again.
                if let Some(victim) = entries.keys().next().cloned() {
                    entries.remove(&victim);
                }
            }
        }
        entries.insert(token.ath().to_string(), token);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a proof was not admitted by the replay cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayError {
    /// The same key already used this `jti` within the window.
    Replayed,
    /// The cache is full of live entries; the request is refused rather than left unchecked.
    Full,
}

/// Proof `jti`s seen within the acceptance window (RFC 9449 §11.1).
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<ReplayState>,
    capacity: usize,
}

#[derive(Debug)]
struct ReplayState {
    /// replay key → the last instant at which the proof could still be accepted.
    seen: HashMap<[u8; 32], i64>,
    last_sweep: i64,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            inner: Mutex::new(ReplayState {
                seen: HashMap::with_capacity(capacity.min(65_536)),
                last_sweep: i64::MIN,
            }),
            capacity: capacity.max(1),
        }
    }

    /// Admits a proof once. `acceptable_until` is the last instant at which the proof's `iat`
    /// is still inside the window; after that the entry is forgotten.
    pub fn admit(
        &self,
        key: [u8; 32],
        acceptable_until: UnixTime,
        now: UnixTime,
    ) -> Result<(), ReplayError> {
        let mut state = self.inner.lock();
        if state.seen.len() >= self.capacity / 2 && state.last_sweep < now.secs() {
            state.seen.retain(|_, until| *until >= now.secs());
            state.last_sweep = now.secs();
        }
        match state.seen.get(&key) {
            Some(until) if *until >= now.secs() => return Err(ReplayError::Replayed),
            _ => {}
        }
        if state.seen.len() >= self.capacity {
            return Err(ReplayError::Full);
        }
        state.seen.insert(key, acceptable_until.secs());
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

    #[test]
    fn a_proof_is_admitted_once_within_its_window() {
        let cache = ReplayCache::new(100);
        let now = UnixTime::from_secs(1000);
        assert_eq!(cache.admit([1; 32], now.plus(60), now), Ok(()));
        assert_eq!(
            cache.admit([1; 32], now.plus(60), now.plus(30)),
            Err(ReplayError::Replayed)
        );
        assert_eq!(cache.admit([2; 32], now.plus(60), now), Ok(()));
        // After the window the proof is stale anyway; the entry may be reused.
        assert_eq!(cache.admit([1; 32], now.plus(200), now.plus(61)), Ok(()));
    }

    #[test]
    fn a_full_cache_refuses_instead_of_forgetting_live_entries() {
        let cache = ReplayCache::new(4);
        let now = UnixTime::from_secs(1000);
        for i in 0..4 {
            cache.admit([i; 32], now.plus(60), now).unwrap();
        }
        assert_eq!(
            cache.admit([9; 32], now.plus(60), now),
            Err(ReplayError::Full)
        );
        // Once the entries expire a sweep frees the space.
        assert_eq!(cache.admit([9; 32], now.plus(200), now.plus(61)), Ok(()));
        assert_eq!(cache.len(), 1);
    }
}
