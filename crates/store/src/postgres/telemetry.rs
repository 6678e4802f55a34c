//! The telemetry series.

use super::*;
use crate::{TelemetryCount, TelemetrySeries, TelemetryStore};

#[async_trait]
impl TelemetryStore for PostgresStore {
    async fn add_telemetry(&self, counts: &[TelemetryCount]) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let statement = tx
            .prepare_cached(
                "INSERT INTO telemetry (minute, series, outcome, reason, platform, count)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (minute, series, outcome, reason, platform)
                 DO UPDATE SET count = telemetry.count + excluded.count",
            )
            .await
            .map_err(backend)?;
        for count in counts {
            let added = i64::try_from(count.count).unwrap_or(i64::MAX);
            tx.execute(
                &statement,
                &[
                    &count.at.secs(),
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
        tx.commit().await.map_err(backend)
    }

    async fn telemetry(
        &self,
        from: UnixTime,
        to: UnixTime,
        step: i64,
    ) -> Result<Vec<TelemetryCount>, StoreError> {
        let step = step.max(1);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT minute - ((minute - $1) % $3) AS at, series, outcome, reason, platform,
                        SUM(count)::BIGINT AS count
                 FROM telemetry WHERE minute >= $1 AND minute < $2
                 GROUP BY 1, series, outcome, reason, platform
                 ORDER BY 1, series COLLATE \"C\", outcome COLLATE \"C\", reason COLLATE \"C\",
                          platform COLLATE \"C\"",
                &[&from.secs(), &to.secs(), &step],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let series: String = get(row, "series")?;
                Ok(TelemetryCount {
                    at: time(row, "at")?,
                    series: TelemetrySeries::from_name(&series)
                        .ok_or_else(|| StoreError::Corrupt("telemetry series".into()))?,
                    outcome: get(row, "outcome")?,
                    reason: get(row, "reason")?,
                    platform: get(row, "platform")?,
                    count: u64::try_from(get::<i64>(row, "count")?).unwrap_or(0),
                })
            })
            .collect()
    }

    async fn prune_telemetry(&self, before: UnixTime) -> Result<u64, StoreError> {
        self.client()
            .await?
            .execute("DELETE FROM telemetry WHERE minute < $1", &[&before.secs()])
            .await
            .map_err(backend)
    }
}
