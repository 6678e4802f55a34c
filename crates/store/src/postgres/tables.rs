//! Whole-table reads and writes for `copy`.

use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use super::{PostgresStore, backend};
use crate::StoreError;
use crate::copy::{Kind, Row, TABLES, Table, TableStore, Value};

fn read(row: &tokio_postgres::Row, index: usize, kind: Kind) -> Result<Value, StoreError> {
    Ok(match kind {
        Kind::Int => row
            .try_get::<_, Option<i64>>(index)
            .map_err(backend)?
            .map_or(Value::Null, Value::Int),
        Kind::Text => row
            .try_get::<_, Option<String>>(index)
            .map_err(backend)?
            .map_or(Value::Null, Value::Text),
        Kind::Bytes => row
            .try_get::<_, Option<Vec<u8>>>(index)
            .map_err(backend)?
            .map_or(Value::Null, Value::Bytes),
        Kind::Bool => row
            .try_get::<_, Option<bool>>(index)
            .map_err(backend)?
            .map_or(Value::Null, Value::Bool),
    })
}

/// A value as the column's own type: a NULL must still say which type it is.
fn parameter(value: &Value, kind: Kind) -> Box<dyn ToSql + Sync + Send> {
    match (value, kind) {
        (Value::Int(n), _) => Box::new(*n),
        (Value::Text(text), _) => Box::new(text.clone()),
        (Value::Bytes(bytes), _) => Box::new(bytes.clone()),
        (Value::Bool(flag), _) => Box::new(*flag),
        (Value::Null, Kind::Int) => Box::new(None::<i64>),
        (Value::Null, Kind::Text) => Box::new(None::<String>),
        (Value::Null, Kind::Bytes) => Box::new(None::<Vec<u8>>),
        (Value::Null, Kind::Bool) => Box::new(None::<bool>),
    }
}

#[async_trait]
impl TableStore for PostgresStore {
    async fn read_table(&self, table: &'static Table) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let query = format!(
            "SELECT {} FROM {} ORDER BY {}",
            table.column_list(),
            table.name,
            table.key_list(true)
        );
        let rows = client.query(&query, &[]).await.map_err(backend)?;
        rows.iter()
            .map(|row| {
                table
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(index, (_, kind))| read(row, index, *kind))
                    .collect()
            })
            .collect()
    }

    async fn write_tables(
        &self,
        tables: Vec<(&'static Table, Vec<Row>)>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        // No node may append while the copy runs: the feed's and the chain's locks.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&super::FEED_LOCK])
            .await
            .map_err(backend)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&super::AUDIT_LOCK])
            .await
            .map_err(backend)?;
        for table in TABLES {
            let query = format!("SELECT EXISTS (SELECT 1 FROM {})", table.name);
            let occupied: bool = tx
                .query_one(&query, &[])
                .await
                .map_err(backend)?
                .try_get(0)
                .map_err(backend)?;
            if occupied {
                return Err(StoreError::Conflict("store not empty"));
            }
        }
        for (table, rows) in &tables {
            let placeholders: Vec<String> =
                (1..=table.columns.len()).map(|n| format!("${n}")).collect();
            let query = format!(
                "INSERT INTO {} ({}) VALUES ({})",
                table.name,
                table.column_list(),
                placeholders.join(", ")
            );
            let insert = tx.prepare(&query).await.map_err(backend)?;
            for row in rows {
                let values: Vec<Box<dyn ToSql + Sync + Send>> = row
                    .iter()
                    .zip(table.columns)
                    .map(|(value, (_, kind))| parameter(value, *kind))
                    .collect();
                let refs: Vec<&(dyn ToSql + Sync)> = values
                    .iter()
                    .map(|value| value.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                tx.execute(&insert, &refs).await.map_err(backend)?;
            }
        }
        // The feed's sequence continues after the copied rows.
        tx.batch_execute(
            "SELECT setval(pg_get_serial_sequence('revocations', 'seq'),
                           COALESCE(MAX(seq), 1), MAX(seq) IS NOT NULL) FROM revocations",
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }
}
