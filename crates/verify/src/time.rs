//! Time as a value. Nothing in this crate reads a clock; callers pass `now`.

pub use medgate_proto::time::UnixTime;

/// An acceptance window around `now` for a claimed issue time (`iat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IatWindow {
    /// How old an `iat` may be.
    pub max_age_secs: i64,
    /// How far in the future an `iat` may be (clock skew between client and server).
    pub max_skew_secs: i64,
}

impl IatWindow {
    /// Whether `iat` lies in `[now - max_age, now + max_skew]`.
    pub fn admits(&self, iat: i64, now: UnixTime) -> bool {
        iat >= now.minus(self.max_age_secs).secs() && iat <= now.plus(self.max_skew_secs).secs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds_are_inclusive_and_saturating() {
        let window = IatWindow {
            max_age_secs: 60,
            max_skew_secs: 5,
        };
        let now = UnixTime::from_secs(1000);
        assert!(window.admits(940, now));
        assert!(!window.admits(939, now));
        assert!(window.admits(1005, now));
        assert!(!window.admits(1006, now));
        assert!(!window.admits(i64::MIN, now));
        // Arithmetic at the ends of the range saturates instead of wrapping.
        assert!(window.admits(i64::MAX, UnixTime::from_secs(i64::MAX)));
        assert!(!window.admits(i64::MAX, UnixTime::from_secs(i64::MIN)));
    }
}
