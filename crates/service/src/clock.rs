//! The one place the services read the time. The verification core takes `now` as an
//! argument; the services get it from a [`Clock`], which tests replace with a [`ManualClock`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use medgate_verify::UnixTime;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> UnixTime;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
            });
        UnixTime::from_secs(secs)
    }
}

/// A clock that starts at the system time and moves only when told to.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(start: UnixTime) -> Self {
        ManualClock(AtomicI64::new(start.secs()))
    }

    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Moves the clock to `at` (back or forward): tests that judge real, dated evidence.
    pub fn set(&self, at: UnixTime) {
        self.0.store(at.secs(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime::from_secs(self.0.load(Ordering::SeqCst))
    }
}

/// RFC 3339 in UTC, to the second.
pub fn rfc3339(at: UnixTime) -> String {
    time::OffsetDateTime::from_unix_timestamp(at.secs())
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| at.secs().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(UnixTime::from_secs(100));
        assert_eq!(clock.now().secs(), 100);
        clock.advance(301);
        assert_eq!(clock.now().secs(), 401);
        assert!(SystemClock.now().secs() > 1_700_000_000);
    }

    #[test]
    fn rfc3339_is_utc_to_the_second() {
        assert_eq!(
            rfc3339(UnixTime::from_secs(1_800_000_000)),
            "2027-01-15T08:00:00Z"
        );
    }
}
