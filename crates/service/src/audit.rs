//! The audit sink: how services append to the audit log without blocking a request.
//!
//! Decisions that must never be lost (attestations, admin changes) are written with
//! [`AuditSink::write`], which waits for the store. High-volume events from the data plane
//! (gateway rejections) go through [`AuditSink::record`], a bounded queue drained in batches by
//! a background writer; when it is full the entry is counted, and the writer appends one
//! `audit.dropped` entry saying how many were summarised, so the log still shows that
//! something happened and how much.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use medgate_store::{NewAuditEntry, Store, StoreError};
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::metrics::Metrics;

const QUEUE: usize = 4096;
const BATCH: usize = 256;

/// A handle for appending to the audit log. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    store: Arc<dyn Store>,
    queue: mpsc::Sender<NewAuditEntry>,
    dropped: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSink")
    }
}

/// The background half of the sink; run it with [`AuditWriter::run`].
pub struct AuditWriter {
    store: Arc<dyn Store>,
    queue: mpsc::Receiver<NewAuditEntry>,
    dropped: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
}

impl AuditSink {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> (AuditSink, AuditWriter) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let sink = AuditSink {
            store: Arc::clone(&store),
            queue: sender,
            dropped: Arc::clone(&dropped),
            metrics,
        };
        let writer = AuditWriter {
            store,
            queue: receiver,
            dropped,
            clock,
        };
        (sink, writer)
    }

    /// Appends now and waits until the entry is stored.
    pub async fn write(&self, entry: NewAuditEntry) -> Result<(), StoreError> {
        self.store.append_audit(std::slice::from_ref(&entry)).await
    }

    /// Queues the entry for the background writer; never waits.
    pub fn record(&self, entry: NewAuditEntry) {
        if self.queue.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.audit_dropped(1);
        }
    }
}

impl AuditWriter {
    /// Appends queued entries in batches until every sink is dropped or `shutdown` changes;
    /// on shutdown, what is already queued is written before returning.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            let received = tokio::select! {
                received = self.queue.recv_many(&mut batch, BATCH) => received,
                _ = shutdown.changed() => {
                    while let Ok(entry) = self.queue.try_recv() {
                        batch.push(entry);
                    }
                    self.write(&mut batch).await;
                    return;
                }
            };
            if received == 0 {
                return;
            }
            self.write(&mut batch).await;
        }
    }

    async fn write(&self, batch: &mut Vec<NewAuditEntry>) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            batch.push(NewAuditEntry {
                at: self.clock.now(),
                kind: "audit.dropped".into(),
                actor: "medgate".into(),
                subject: "audit".into(),
                detail: serde_json::json!({"summarised_entries": dropped}),
            });
        }
        if batch.is_empty() {
            return;
        }
        if let Err(error) = self.store.append_audit(batch).await {
            tracing::error!(%error, entries = batch.len(), "audit entries could not be written");
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use medgate_store::sqlite::SqliteStore;
    use medgate_verify::UnixTime;

    fn entry(i: i64) -> NewAuditEntry {
        NewAuditEntry {
            at: UnixTime::from_secs(i),
            kind: "gateway.reject".into(),
            actor: "gateway".into(),
            subject: format!("{i}"),
            detail: serde_json::json!({}),
        }
    }

    #[tokio::test]
    async fn queued_entries_are_written_and_overflow_is_summarised() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let metrics = Arc::new(Metrics::new());
        let (sink, writer) = AuditSink::new(
            Arc::clone(&store),
            Arc::new(SystemClock),
            Arc::clone(&metrics),
        );
        sink.write(entry(0)).await.unwrap();
        // Fill the queue past its bound before the writer runs.
        for i in 1..=(QUEUE as i64 + 10) {
            sink.record(entry(i));
        }
        drop(sink);
        let (_stop, never) = watch::channel(false);
        writer.run(never).await;
        let (count, _) = medgate_store::verify_audit_chain(&*store)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            count,
            1 + QUEUE as u64 + 1,
            "written, queued, and one summary"
        );
        let entries = store.audit_entries(0, usize::MAX).await.unwrap();
        let summaries: Vec<_> = entries
            .iter()
            .filter(|e| e.kind == "audit.dropped")
            .collect();
        assert_eq!(summaries.len(), 1);
        assert_eq!(summaries[0].detail, r#"{"summarised_entries":10}"#);
        assert!(metrics.render().contains("medgate_audit_dropped_total 10"));
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let (sink, writer) = AuditSink::new(
            Arc::clone(&store),
            Arc::new(SystemClock),
            Arc::new(Metrics::new()),
        );
        for i in 0..5 {
            sink.record(entry(i));
        }
        let (stop, stopped) = watch::channel(false);
        stop.send(true).unwrap();
        // The sink is still alive: only the shutdown signal ends the writer.
        writer.run(stopped).await;
        assert_eq!(
            medgate_store::verify_audit_chain(&*store)
                .await
                .unwrap()
                .unwrap()
                .0,
            5
        );
        drop(sink);
    }
}
