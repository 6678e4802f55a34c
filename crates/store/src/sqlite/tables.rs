//! Whole-table reads and writes for `copy`.

use async_trait::async_trait;
use rusqlite::types::{ToSqlOutput, Value as Sql};

use super::{SqliteStore, backend};
use crate::StoreError;
use crate::copy::{Kind, Row, TABLES, Table, TableStore, Value};

fn read(row: &rusqlite::Row<'_>, index: usize, kind: Kind) -> rusqlite::Result<Value> {
    Ok(match kind {
        Kind::Int => row
            .get::<_, Option<i64>>(index)?
            .map_or(Value::Null, Value::Int),
        Kind::Text => row
            .get::<_, Option<String>>(index)?
            .map_or(Value::Null, Value::Text),
        Kind::Bytes => row
            .get::<_, Option<Vec<u8>>>(index)?
            .map_or(Value::Null, Value::Bytes),
        Kind::Bool => row
            .get::<_, Option<i64>>(index)?
            .map_or(Value::Null, |flag| Value::Bool(flag != 0)),
    })
}

fn sql(value: &Value) -> ToSqlOutput<'_> {
    ToSqlOutput::Owned(match value {
        Value::Null => Sql::Null,
        Value::Int(n) => Sql::Integer(*n),
        Value::Text(text) => Sql::Text(text.clone()),
        Value::Bytes(bytes) => Sql::Blob(bytes.clone()),
        Value::Bool(flag) => Sql::Integer(i64::from(*flag)),
    })
}

#[async_trait]
impl TableStore for SqliteStore {
    async fn read_table(&self, table: &'static Table) -> Result<Vec<Row>, StoreError> {
        self.run(move |conn| {
            let query = format!(
                "SELECT {} FROM {} ORDER BY {}",
                table.column_list(),
                table.name,
                table.key_list(false)
            );
            let mut statement = conn.prepare(&query).map_err(backend)?;
            let rows = statement
                .query_map([], |row| {
                    table
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(index, (_, kind))| read(row, index, *kind))
                        .collect::<rusqlite::Result<Row>>()
                })
                .map_err(backend)?;
            rows.collect::<rusqlite::Result<Vec<Row>>>()
                .map_err(backend)
        })
        .await
    }

    async fn write_tables(
        &self,
        tables: Vec<(&'static Table, Vec<Row>)>,
    ) -> Result<(), StoreError> {
        // One call: all of it commits, or none (the call's savepoint).
        self.run(move |tx| {
            for table in TABLES {
                let query = format!("SELECT EXISTS (SELECT 1 FROM {})", table.name);
                let occupied: bool = tx
                    .query_row(&query, [], |row| row.get(0))
                    .map_err(backend)?;
                if occupied {
                    return Err(StoreError::Conflict("store not empty"));
                }
            }
            for (table, rows) in &tables {
                let placeholders: Vec<String> =
                    (1..=table.columns.len()).map(|n| format!("?{n}")).collect();
                let query = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    table.name,
                    table.column_list(),
                    placeholders.join(", ")
                );
                let mut insert = tx.prepare(&query).map_err(backend)?;
                for row in rows {
                    let values: Vec<ToSqlOutput<'_>> = row.iter().map(sql).collect();
                    insert
                        .execute(rusqlite::params_from_iter(values))
                        .map_err(backend)?;
                }
            }
            // AUTOINCREMENT (the revocation feed) continues after the largest inserted seq.
            Ok(())
        })
        .await
    }
}
