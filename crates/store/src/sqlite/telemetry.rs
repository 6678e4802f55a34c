//! The telemetry series.

use super::*;
use crate::telemetry::{hour_of, read, source, stored};
use crate::{TelemetryCount, TelemetryStore};

const ADD_MINUTE: &str = "INSERT INTO telemetry (minute, series, outcome, reason, platform, count)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (minute, series, outcome, reason, platform)
     DO UPDATE SET count = count + excluded.count";
const ADD_HOUR: &str =
    "INSERT INTO telemetry_hours (hour, series, outcome, reason, platform, count)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
     ON CONFLICT (hour, series, outcome, reason, platform)
     DO UPDATE SET count = count + excluded.count";

#[async_trait]
impl TelemetryStore for SqliteStore {
    async fn add_telemetry(&self, counts: &[TelemetryCount]) -> Result<(), StoreError> {
        let counts = counts.to_vec();
        self.run(move |tx| {
            for count in &counts {
                for (at, sql) in [
                    (count.at.secs(), ADD_MINUTE),
                    (hour_of(count.at.secs()), ADD_HOUR),
                ] {
                    tx.prepare_cached(sql)
                        .and_then(|mut statement| {
                            statement.execute(params![
                                at,
                                count.series.as_str(),
                                count.outcome,
                                count.reason,
                                count.platform,
                                stored(count.count),
                            ])
                        })
                        .map_err(backend)?;
                }
            }
            Ok(())
        })
        .await
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
            "SELECT {column} - (({column} - ?1) % ?3) AS at, series, outcome, reason, platform,
                    SUM(count) AS count
             FROM {table} WHERE {column} >= ?1 AND {column} < ?2
             GROUP BY at, series, outcome, reason, platform
             ORDER BY at, series, outcome, reason, platform"
        );
        self.run(move |conn| {
            let mut statement = conn.prepare_cached(&query).map_err(backend)?;
            let rows = statement
                .query_map(params![from.secs(), to.secs(), step], |row| {
                    Ok((
                        time(row, "at")?,
                        row.get::<_, String>("series")?,
                        row.get::<_, String>("outcome")?,
                        row.get::<_, String>("reason")?,
                        row.get::<_, String>("platform")?,
                        row.get::<_, i64>("count")?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (at, series, outcome, reason, platform, sum) = row.map_err(backend)?;
                let (series, count) = read(&series, sum)?;
                Ok(TelemetryCount {
                    at,
                    series,
                    outcome,
                    reason,
                    platform,
                    count,
                })
            })
            .collect()
        })
        .await
    }

    async fn prune_telemetry(&self, before: UnixTime) -> Result<u64, StoreError> {
        self.run(move |tx| {
            let minutes = tx
                .prepare_cached("DELETE FROM telemetry WHERE minute < ?1")
                .and_then(|mut statement| statement.execute(params![before.secs()]))
                .map_err(backend)?;
            let hours = tx
                .prepare_cached("DELETE FROM telemetry_hours WHERE hour <= ?1 - 3600")
                .and_then(|mut statement| statement.execute(params![before.secs()]))
                .map_err(backend)?;
            Ok((minutes + hours) as u64)
        })
        .await
    }
}
