//! The Android attestation revocation status list, as the server currently knows it. The node
//! loads it (from a file or an https URL) at start and refreshes it; Android attestations are
//! refused with 503 while a configured list has never loaded, or when the list it has is older
//! than its maximum age (`attestation.revocation_max_age`), rather than checked against nothing
//! or against a list an attacker who blocks the refresh could keep stale forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use medgate_service::duration::secs;
use medgate_verify::UnixTime;
use medgate_verify::android::revocation::RevocationList;
use parking_lot::RwLock;

/// What is known about the list at a given time.
#[derive(Debug, Clone)]
pub enum RevocationStatus {
    /// No list is configured: chains are not checked against one.
    NotConfigured,
    /// A list is configured but has not loaded yet.
    Unavailable,
    /// The list loaded last is older than the maximum age: it is not used.
    Expired {
        age_secs: i64,
        max_age_secs: i64,
    },
    Loaded(Arc<RevocationList>),
}

/// Whether a list loaded at `loaded_at` is, at `now`, older than `max_age`. A list exactly
/// `max_age` old is still used; a clock that went back counts as no age at all.
pub fn older_than_max_age(loaded_at: UnixTime, now: UnixTime, max_age: Duration) -> bool {
    age_secs(loaded_at, now) > secs(max_age)
}

fn age_secs(loaded_at: UnixTime, now: UnixTime) -> i64 {
    now.secs().saturating_sub(loaded_at.secs()).max(0)
}

#[derive(Debug)]
enum Current {
    NotConfigured,
    Unavailable,
    Loaded {
        list: Arc<RevocationList>,
        loaded_at: UnixTime,
    },
}

/// Shared between the server (reads) and the node's loader (writes).
#[derive(Debug)]
pub struct RevocationState {
    current: RwLock<Current>,
    max_age: Duration,
    /// Whether the expiry of the current list was logged (once per loaded list).
    expiry_logged: AtomicBool,
}

impl RevocationState {
    /// `max_age` matters only when a list is `configured`.
    pub fn new(configured: bool, max_age: Duration) -> Self {
        RevocationState {
            current: RwLock::new(if configured {
                Current::Unavailable
            } else {
                Current::NotConfigured
            }),
            max_age,
            expiry_logged: AtomicBool::new(false),
        }
    }

    /// The list as it may be used at `now` (the server's clock).
    pub fn status(&self, now: UnixTime) -> RevocationStatus {
        let (list, loaded_at) = match &*self.current.read() {
            Current::NotConfigured => return RevocationStatus::NotConfigured,
            Current::Unavailable => return RevocationStatus::Unavailable,
            Current::Loaded { list, loaded_at } => (Arc::clone(list), *loaded_at),
        };
        if !older_than_max_age(loaded_at, now, self.max_age) {
            return RevocationStatus::Loaded(list);
        }
        let age_secs = age_secs(loaded_at, now);
        let max_age_secs = secs(self.max_age);
        if !self.expiry_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                age_secs,
                max_age_secs,
                "the attestation revocation status list is older than attestation.revocation_max_age: Android attestations get 503 until it reloads"
            );
        }
        RevocationStatus::Expired {
            age_secs,
            max_age_secs,
        }
    }

    /// When the list in use was loaded, if one has.
    pub fn loaded_at(&self) -> Option<UnixTime> {
        match &*self.current.read() {
            Current::Loaded { loaded_at, .. } => Some(*loaded_at),
            Current::NotConfigured | Current::Unavailable => None,
        }
    }

    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// Replaces the list with one loaded at `loaded_at` (the server's clock).
    pub fn set(&self, list: RevocationList, loaded_at: UnixTime) {
        *self.current.write() = Current::Loaded {
            list: Arc::new(list),
            loaded_at,
        };
        self.expiry_logged.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_list_is_used_up_to_exactly_its_maximum_age() {
        let loaded = UnixTime::from_secs(1_800_000_000);
        assert!(!older_than_max_age(loaded, loaded, DAY));
        assert!(!older_than_max_age(loaded, loaded.plus(3600), DAY));
        assert!(!older_than_max_age(loaded, loaded.plus(86_400), DAY));
        assert!(older_than_max_age(loaded, loaded.plus(86_401), DAY));
        assert!(older_than_max_age(loaded, loaded.plus(10 * 86_400), DAY));
        // The clock went back: no age, not expired.
        assert!(!older_than_max_age(loaded, loaded.minus(60), DAY));
    }

    #[test]
    fn the_state_expires_a_list_and_a_reload_restores_it() {
        let state = RevocationState::new(true, Duration::from_secs(120));
        let start = UnixTime::from_secs(1_800_000_000);
        assert!(matches!(state.status(start), RevocationStatus::Unavailable));
        assert_eq!(state.loaded_at(), None);
        state.set(RevocationList::default(), start);
        assert_eq!(state.loaded_at(), Some(start));
        assert!(matches!(
            state.status(start.plus(120)),
            RevocationStatus::Loaded(_)
        ));
        assert!(matches!(
            state.status(start.plus(121)),
            RevocationStatus::Expired {
                age_secs: 121,
                max_age_secs: 120
            }
        ));
        state.set(RevocationList::default(), start.plus(121));
        assert!(matches!(
            state.status(start.plus(121)),
            RevocationStatus::Loaded(_)
        ));
        assert!(matches!(
            RevocationState::new(false, Duration::from_secs(1)).status(start.plus(1_000_000)),
            RevocationStatus::NotConfigured
        ));
    }
}
