//! The telemetry series: decisions and gateway outcomes per period.

use super::*;

const DEFAULT_RANGE: i64 = 24 * 3600;
const DEFAULT_STEP: i64 = 3600;
const MAX_STEP: i64 = 30 * 24 * 3600;
const MAX_PERIODS: i64 = 1440;
/// The longest range read from the per-minute rows; longer ones are read in whole hours.
const MAX_MINUTE_RANGE: i64 = 48 * 3600;

/// Counts in `[from, to)` summed per `step`, each part from a fixed set.
#[utoipa::path(get, path = "/telemetry", tag = "telemetry", params(admin::TelemetryQuery),
    responses((status = 200, description = "Counts per period, series, outcome, reason and platform",
        body = Vec<admin::TelemetryCount>), ApiError))]
pub(super) async fn telemetry(
    _: Admin,
    State(state): State<Arc<ServerState>>,
    Query(query): Query<admin::TelemetryQuery>,
) -> Result<Response, ApiError> {
    let to = query.to.unwrap_or(state.clock.now().secs());
    let from = query.from.unwrap_or(to.saturating_sub(DEFAULT_RANGE));
    let step = query.step.unwrap_or(DEFAULT_STEP);
    if !(60..=MAX_STEP).contains(&step) || step % 60 != 0 {
        return Err(ApiError::Malformed(
            "step is a whole number of minutes, 60 seconds to 30 days".into(),
        ));
    }
    if from < 0 || from >= to || to - from > MAX_PERIODS * step {
        return Err(ApiError::Malformed(
            "from must be before to, and the range hold at most 1440 steps".into(),
        ));
    }
    let (from, to) = (UnixTime::from_secs(from), UnixTime::from_secs(to));
    // A long range is summed from the hourly rows, so that no read walks weeks of minutes
    // (on SQLite, reads share the writer's thread).
    if to.secs() - from.secs() > MAX_MINUTE_RANGE && !medgate_store::reads_hours(from, to, step) {
        return Err(ApiError::Malformed(
            "a range over 48 hours is read in whole hours: from, to and step multiples of 3600"
                .into(),
        ));
    }
    let counts: Vec<admin::TelemetryCount> = state.store.telemetry(from, to, step).await?;
    Ok(json(StatusCode::OK, &counts))
}
