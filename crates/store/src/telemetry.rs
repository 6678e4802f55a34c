//! What both backends share about the telemetry series: it is kept per minute and per hour,
//! and a read takes the hours when its range and step are whole hours (60 times fewer rows to
//! sum over days).

use crate::UnixTime;

/// The start of the hour `at` falls in.
pub(crate) fn hour_of(at: i64) -> i64 {
    at - at.rem_euclid(3600)
}

/// The table and its time column a read of `[from, to)` per `step` sums.
pub(crate) fn source(from: UnixTime, to: UnixTime, step: i64) -> (&'static str, &'static str) {
    let whole = |secs: i64| secs.rem_euclid(3600) == 0;
    if whole(step) && whole(from.secs()) && whole(to.secs()) {
        ("telemetry_hours", "hour")
    } else {
        ("telemetry", "minute")
    }
}
