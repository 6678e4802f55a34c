//! The telemetry series.

use super::*;
use crate::telemetry::{hour_of, read, source, stored};
use crate::{TelemetryCount, TelemetryStore};

const ADD_MINUTE: &str = "INSERT INTO telemetry (minute, series, outcome, reason, platform, count)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (minute, series, outcome, reason, platform)
     DO UPDATE SET count = telemetry.count + excluded.count";
const ADD_HOUR: &str =
    "INSERT INTO telemetry_hours (hour, series, outcome, reason, platform, count)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (hour, series, outcome, reason, platform)
     DO UPDATE SET count = telemetry_hours.count + excluded.count";

#[async_trait]
impl TelemetryStore for PostgresStore {
    async fn add_telemetry(&self, counts: &[TelemetryCount]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let minute = tx.prepare_cached(ADD_MINUTE).await.map_err(backend)?;
        let hour = tx.prepare_cached(ADD_HOUR).await.map_err(backend)?;
        for count in counts {
            let added = stored(count.count);
            for (statement, at) in [
                (&minute, count.at.secs()),
                (&hour, hour_of(count.at.secs())),
            ] {
                tx.execute(
                    statement,
                    &[
                        &at,
                        &count.series.as_str(),
                        &count.outcome,
                        &count.reason,
                        &count.platform,
                        &added,
                    ],
                )
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)
    }

    async fn telemetry(
        &self,
        from: UnixTime,
        to: UnixTime,
        step: i64,
    ) -> Result<Vec<TelemetryCount>, StoreError> {
        let step = step.max(1);
        let (table, column) = source(from, to, step);
        let query = format!(
            "SELECT {column} - (({column} - $1) % $3) AS at, series, outcome, reason, platform,
                    SUM(count)::BIGINT AS count
             FROM {table} WHERE {column} >= $1 AND {column} < $2
             GROUP BY 1, series, outcome, reason, platform
             ORDER BY 1, series COLLATE \"C\", outcome COLLATE \"C\", reason COLLATE \"C\",
                      platform COLLATE \"C\""
        );
        let rows = self
            .client()
            .await?
            .query(&query, &[&from.secs(), &to.secs(), &step])
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let (series, count) = read(&get::<String>(row, "series")?, get(row, "count")?)?;
                Ok(TelemetryCount {
                    at: time(row, "at")?,
                    series,
                    outcome: get(row, "outcome")?,
                    reason: get(row, "reason")?,
                    platform: get(row, "platform")?,
                    count,
                })
            })
            .collect()
    }

    async fn prune_telemetry(&self, before: UnixTime) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let minutes = client
            .execute("DELETE FROM telemetry WHERE minute < $1", &[&before.secs()])
            .await
            .map_err(backend)?;
        let hours = client
            .execute(
                "DELETE FROM telemetry_hours WHERE hour <= $1::BIGINT - 3600",
                &[&before.secs()],
            )
            .await
            .map_err(backend)?;
        Ok(minutes + hours)
    }
}
