//! What both backends share about the telemetry series: it is kept per minute and per hour,
//! and a read takes the hours when its range and step are whole hours (60 times fewer rows to
//! sum over days).

use crate::{StoreError, TelemetrySeries, UnixTime};

/// The start of the hour `at` falls in.
pub(crate) fn hour_of(at: i64) -> i64 {
    at - at.rem_euclid(3600)
}

/// Whether a read of `[from, to)` per `step` is summed from the hourly rows: all three are
/// whole hours.
pub fn reads_hours(from: UnixTime, to: UnixTime, step: i64) -> bool {
    [from.secs(), to.secs(), step]
        .iter()
        .all(|secs| secs.rem_euclid(3600) == 0)
}

/// The table and its time column a read of `[from, to)` per `step` sums.
pub(crate) fn source(from: UnixTime, to: UnixTime, step: i64) -> (&'static str, &'static str) {
    if reads_hours(from, to, step) {
        ("telemetry_hours", "hour")
    } else {
        ("telemetry", "minute")
    }
}

/// A count as a column holds it.
pub(crate) fn stored(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// A row's series and summed count as the read answers them. Only this code writes the
/// series column, so a name it does not know is corruption; rows are positive, so is a sum.
pub(crate) fn read(series: &str, sum: i64) -> Result<(TelemetrySeries, u64), StoreError> {
    let series = TelemetrySeries::from_name(series)
        .ok_or_else(|| StoreError::Corrupt("telemetry series".into()))?;
    Ok((series, u64::try_from(sum).unwrap_or(0)))
}
