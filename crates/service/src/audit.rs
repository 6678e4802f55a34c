//! The audit sink: how services append to the audit log without blocking a request.
//!
//! Decisions that must never be lost (attestations, admin changes) are written with
//! [`AuditSink::write`], which waits for the store. High-volume events from the data plane
//! (gateway rejections) go through [`AuditSink::record`], a bounded queue drained in batches by
//! a background writer; when it is full the entry is counted, and the writer appends one
//! `audit.dropped` entry saying how many were summarised, so the log still shows that
//! something happened and how much.
//!
//! Refusals at the gateway, and the accepted requests of credentials for apps that cannot
//! attest (`gateway.credential_uses`, per credential and route), are not a row each: a client without credentials could otherwise
//! write the log as fast as it can send. [`AuditSink::tally`] counts them per minute, kind,
//! reason code, route pattern and (when a token was verified) installation; the writer appends
//! one `gateway.refusals` entry per such bucket once its minute is over. Every part of a bucket
//! comes from a fixed set or from medgate's own state, never from the request's text, and the
//! number of buckets held is bounded (beyond it, refusals are counted in one overflow bucket).
//!
//! The sink also counts the telemetry series ([`AuditSink::observe`], see [`crate::telemetry`]),
//! and the writer hands finished minutes to the store and prunes them after their retention.
//!
//! When the store cannot take entries (a full disk, say) nothing is lost silently: entries that
//! could not be written are counted as dropped, the sink reports [`AuditSink::recording`]
//! false (the node's `/readyz` says not ready and attestation answers 503), and the writer keeps
//! trying to append the `audit.dropped` record; the first write that succeeds puts that gap in
//! the chain and reports recording again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medgate_store::{NewAuditEntry, Store, StoreError};
use medgate_verify::UnixTime;
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::telemetry::{Counts, Observation};

const QUEUE: usize = 4096;
const BATCH: usize = 256;
/// Refusal buckets held at once (minutes × kinds × routes × installations).
const MAX_BUCKETS: usize = 10_000;
/// How often the writer looks for finished minutes.
const TALLY_FLUSH: Duration = Duration::from_secs(5);
/// How long the telemetry series is kept unless the node says otherwise.
pub const DEFAULT_TELEMETRY_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// How often the writer prunes the series.
const TELEMETRY_PRUNE_EVERY: i64 = 3600;

/// One counted refusal: what it was, where, and whose (when known). Nothing in it is text the
/// client sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Refusal {
    /// The outcome, from a fixed set (`missing_token`, `invalid_token`, …).
    pub kind: &'static str,
    /// The verifier's stable reason code, where there is one.
    pub code: Option<&'static str>,
    /// The configured route pattern the path fell under, if any.
    pub route: Option<String>,
    /// The installation, when its token verified.
    pub installation: Option<String>,
}

/// One accepted request by a credential of an app that cannot attest (a follower's link, an
/// uploader's token) or by a partner backend: counted per credential (or partner), route and
/// minute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CredentialUse {
    /// A credential's use, or a partner backend's.
    pub by: UseBy,
    /// The credential's (`cred_…`) or partner's (`ptn_…`) id and the operator's name for it,
    /// never a secret.
    pub credential: String,
    pub name: String,
    /// The configured route pattern (or the exchange path).
    pub route: Option<String>,
}

/// Whose accepted requests a [`CredentialUse`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UseBy {
    /// `gateway.credential_uses`.
    Credential,
    /// `gateway.partner_uses`.
    Partner,
}

/// What the tally counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Counted {
    Refusal(Refusal),
    Use(CredentialUse),
}

#[derive(Debug, Default)]
struct Tally {
    /// (minute, what) → count.
    buckets: HashMap<(i64, Counted), u64>,
    /// Refusals that found no room for a bucket, by minute.
    overflow: HashMap<i64, u64>,
}

impl Tally {
    fn add(&mut self, minute: i64, counted: Counted) {
        if let Some(count) = self.buckets.get_mut(&(minute, counted.clone())) {
            *count += 1;
        } else if self.buckets.len() < MAX_BUCKETS {
            self.buckets.insert((minute, counted), 1);
        } else {
            *self.overflow.entry(minute).or_insert(0) += 1;
        }
    }

    /// The entries for every minute before `before` (all of them with `None`), removed.
    fn drain(&mut self, before: Option<i64>) -> Vec<NewAuditEntry> {
        let done = |minute: i64| before.is_none_or(|before| minute < before);
        let mut entries = Vec::new();
        let finished: Vec<(i64, Counted)> = self
            .buckets
            .keys()
            .filter(|(minute, _)| done(*minute))
            .cloned()
            .collect();
        for key in finished {
            if let Some(count) = self.buckets.remove(&key) {
                let (minute, counted) = key;
                entries.push(match counted {
                    Counted::Refusal(refusal) => NewAuditEntry {
                        at: UnixTime::from_secs(minute * 60),
                        kind: "gateway.refusals".into(),
                        actor: "gateway".into(),
                        subject: refusal.kind.into(),
                        detail: serde_json::json!({
                            "minute": minute * 60,
                            "count": count,
                            "code": refusal.code,
                            "route": refusal.route,
                            "installation_id": refusal.installation,
                        }),
                    },
                    Counted::Use(used) => NewAuditEntry {
                        at: UnixTime::from_secs(minute * 60),
                        kind: match used.by {
                            UseBy::Credential => "gateway.credential_uses",
                            UseBy::Partner => "gateway.partner_uses",
                        }
                        .into(),
                        actor: "gateway".into(),
                        subject: used.credential,
                        detail: serde_json::json!({
                            "minute": minute * 60,
                            "count": count,
                            "name": used.name,
                            "route": used.route,
                        }),
                    },
                });
            }
        }
        let overflowed: Vec<i64> = self.overflow.keys().copied().filter(|m| done(*m)).collect();
        for minute in overflowed {
            if let Some(count) = self.overflow.remove(&minute) {
                entries.push(NewAuditEntry {
                    at: UnixTime::from_secs(minute * 60),
                    kind: "gateway.refusals".into(),
                    actor: "gateway".into(),
                    subject: "other".into(),
                    detail: serde_json::json!({"minute": minute * 60, "count": count}),
                });
            }
        }
        // One order for a minute's rows, whatever the map's: by time, kind and subject.
        entries.sort_by(|a, b| {
            (a.at.secs(), &a.kind, &a.subject).cmp(&(b.at.secs(), &b.kind, &b.subject))
        });
        entries
    }
}

/// A handle for appending to the audit log. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    store: Arc<dyn Store>,
    queue: mpsc::Sender<NewAuditEntry>,
    dropped: Arc<AtomicU64>,
    health: Arc<Health>,
    tally: Arc<Mutex<Tally>>,
    telemetry: Arc<Mutex<Counts>>,
    clock: Arc<dyn Clock>,
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
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    tally: Arc<Mutex<Tally>>,
    telemetry: Arc<Mutex<Counts>>,
    telemetry_retention: Duration,
    clock: Arc<dyn Clock>,
}

/// Whether the log can take entries: the Unix time of the first failure since the last
/// success, or 0.
#[derive(Debug, Default)]
struct Health {
    failing_since: std::sync::atomic::AtomicI64,
}

impl Health {
    fn failed(&self, at: UnixTime) {
        let _ = self.failing_since.compare_exchange(
            0,
            at.secs().max(1),
            Ordering::SeqCst,
            Ordering::SeqCst,
        );
    }

    fn succeeded(&self) -> Option<i64> {
        match self.failing_since.swap(0, Ordering::SeqCst) {
            0 => None,
            since => Some(since),
        }
    }

    fn failing(&self) -> bool {
        self.failing_since() != 0
    }

    fn failing_since(&self) -> i64 {
        self.failing_since.load(Ordering::SeqCst)
    }
}

impl AuditSink {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    ) -> (AuditSink, AuditWriter) {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let telemetry = Arc::new(Mutex::new(Counts::default()));
        let health = Arc::new(Health::default());
        let sink = AuditSink {
            store: Arc::clone(&store),
            queue: sender,
            dropped: Arc::clone(&dropped),
            health: Arc::clone(&health),
            tally: Arc::clone(&tally),
            telemetry: Arc::clone(&telemetry),
            clock: Arc::clone(&clock),
            metrics: Arc::clone(&metrics),
        };
        let writer = AuditWriter {
            store,
            queue: receiver,
            dropped,
            health,
            metrics,
            tally,
            telemetry,
            telemetry_retention: DEFAULT_TELEMETRY_RETENTION,
            clock,
        };
        (sink, writer)
    }

    /// Appends now and waits until the entry is stored. On failure the entry is counted as
    /// dropped (the caller must not act on a decision it could not record).
    pub async fn write(&self, entry: NewAuditEntry) -> Result<(), StoreError> {
        match self.store.append_audit(std::slice::from_ref(&entry)).await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                self.metrics.audit_dropped(1);
                self.health.failed(self.clock.now());
                Err(error)
            }
        }
    }

    /// Whether the log currently takes entries. False from a failed write until the writer's
    /// next successful one (it retries every few seconds).
    pub fn recording(&self) -> bool {
        !self.health.failing()
    }

    /// Reports that the store refused a write on a decision's path (not an audit write): the
    /// node is not ready until the writer appends again.
    pub fn store_failed(&self) {
        self.health.failed(self.clock.now());
    }

    /// Counts a refusal in its minute's bucket; never waits, never writes a row of its own.
    pub fn tally(&self, refusal: Refusal) {
        self.count(Counted::Refusal(refusal));
    }

    /// Counts a credential's accepted request in its minute's bucket, as [`tally`](Self::tally)
    /// counts refusals.
    pub fn count_use(&self, used: CredentialUse) {
        self.count(Counted::Use(used));
    }

    fn count(&self, counted: Counted) {
        let minute = self.clock.now().secs().div_euclid(60);
        self.tally
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .add(minute, counted);
    }

    /// Counts a decision or request outcome in its minute of the telemetry series; never
    /// waits, never writes a row of its own.
    pub fn observe(&self, observation: Observation) {
        let minute = self.clock.now().secs().div_euclid(60);
        self.telemetry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .add(minute, observation);
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
    /// Keeps the telemetry series for `retention` ([`DEFAULT_TELEMETRY_RETENTION`] unless
    /// said).
    pub fn telemetry_retention(mut self, retention: Duration) -> Self {
        self.telemetry_retention = retention;
        self
    }

    /// Appends queued entries in batches until every sink is dropped or `shutdown` changes;
    /// on shutdown, what is already queued is written before returning.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut flush = tokio::time::interval(TALLY_FLUSH);
        let mut pruned_at: Option<i64> = None;
        loop {
            let received = tokio::select! {
                received = self.queue.recv_many(&mut batch, BATCH) => received,
                _ = flush.tick() => {
                    let minute = self.clock.now().secs().div_euclid(60);
                    batch.extend(self.drain_tally(Some(minute)));
                    // While failing, the dropped record is retried even when nothing else is
                    // pending: its success is what ends the outage.
                    self.write(&mut batch).await;
                    self.write_telemetry(Some(minute)).await;
                    self.prune_telemetry(&mut pruned_at).await;
                    continue;
                }
                _ = shutdown.changed() => {
                    while let Ok(entry) = self.queue.try_recv() {
                        batch.push(entry);
                    }
                    batch.extend(self.drain_tally(None));
                    self.write(&mut batch).await;
                    self.write_telemetry(None).await;
                    return;
                }
            };
            if received == 0 {
                batch.extend(self.drain_tally(None));
                self.write(&mut batch).await;
                self.write_telemetry(None).await;
                return;
            }
            self.write(&mut batch).await;
        }
    }

    fn drain_tally(&self, before: Option<i64>) -> Vec<NewAuditEntry> {
        self.tally
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain(before)
    }

    /// Hands the finished minutes of the telemetry series to the store. The series is a
    /// summary (the audit log holds the decisions), so a minute the store refuses is not
    /// retried: it is logged and left out.
    async fn write_telemetry(&self, before: Option<i64>) {
        let counts = self
            .telemetry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain(before);
        if counts.is_empty() {
            return;
        }
        if let Err(error) = self.store.add_telemetry(&counts).await {
            tracing::warn!(%error, rows = counts.len(), "telemetry counts could not be stored");
        }
    }

    /// Removes the series' minutes older than the retention, once an hour.
    async fn prune_telemetry(&self, pruned_at: &mut Option<i64>) {
        let now = self.clock.now();
        if pruned_at.is_some_and(|at| now.secs() - at < TELEMETRY_PRUNE_EVERY) {
            return;
        }
        *pruned_at = Some(now.secs());
        let retention = i64::try_from(self.telemetry_retention.as_secs()).unwrap_or(i64::MAX);
        if let Err(error) = self.store.prune_telemetry(now.minus(retention)).await {
            tracing::warn!(%error, "the telemetry series could not be pruned");
        }
    }

    async fn write(&self, batch: &mut Vec<NewAuditEntry>) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        let failing_since = self.health.failing_since();
        if dropped > 0 || failing_since != 0 {
            // Also with nothing dropped: while the store fails, this record is the probe whose
            // success ends the outage, and it marks the outage in the chain.
            batch.push(NewAuditEntry {
                at: self.clock.now(),
                kind: "audit.dropped".into(),
                actor: "medgate".into(),
                subject: "audit".into(),
                detail: serde_json::json!({
                    "summarised_entries": dropped,
                    "failing_since": (failing_since != 0).then_some(failing_since),
                }),
            });
        }
        if batch.is_empty() {
            return;
        }
        match self.store.append_audit(batch).await {
            Ok(()) => {
                if let Some(since) = self.health.succeeded() {
                    tracing::warn!(
                        failing_since = since,
                        "the audit log takes entries again; the gap is recorded"
                    );
                }
            }
            Err(error) => {
                // Counted, not lost: the next successful write records how many.
                let lost = batch
                    .iter()
                    .filter(|entry| entry.kind != "audit.dropped")
                    .count() as u64;
                self.dropped.fetch_add(dropped + lost, Ordering::Relaxed);
                self.metrics.audit_dropped(lost);
                if !self.health.failing() {
                    tracing::error!(%error, entries = batch.len(), "audit entries could not be written; counting them until the store takes entries again");
                }
                self.health.failed(self.clock.now());
            }
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

    /// A sink and its writer over a SQLite store in a fresh directory.
    fn on_disk(
        metrics: Arc<Metrics>,
    ) -> (tempfile::TempDir, Arc<dyn Store>, AuditSink, AuditWriter) {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let (sink, writer) = AuditSink::new(Arc::clone(&store), Arc::new(SystemClock), metrics);
        (dir, store, sink, writer)
    }

    /// Runs the writer with the shutdown signal already given: it writes what is pending.
    async fn run_to_shutdown(writer: AuditWriter) {
        let (stop, stopped) = watch::channel(false);
        stop.send(true).unwrap();
        writer.run(stopped).await;
    }

    #[tokio::test]
    async fn queued_entries_are_written_and_overflow_is_summarised() {
        let metrics = Arc::new(Metrics::new());
        let (_dir, store, sink, writer) = on_disk(Arc::clone(&metrics));
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
        let detail: serde_json::Value = serde_json::from_str(&summaries[0].detail).unwrap();
        assert_eq!(detail["summarised_entries"], 10);
        assert!(metrics.render().contains("medgate_audit_dropped_total 10"));
    }

    fn refused(kind: &'static str, installation: Option<&str>) -> Refusal {
        Refusal {
            kind,
            code: Some("bad_signature"),
            route: Some("/api/v1/entries*".into()),
            installation: installation.map(str::to_string),
        }
    }

    fn refusal(kind: &'static str, installation: Option<&str>) -> Counted {
        Counted::Refusal(refused(kind, installation))
    }

    #[test]
    fn refusals_are_counted_per_minute_and_bucket_and_bounded() {
        let mut tally = Tally::default();
        for _ in 0..10_000 {
            tally.add(100, refusal("missing_token", None));
        }
        tally.add(100, refusal("invalid_dpop_proof", Some("inst-1")));
        tally.add(101, refusal("missing_token", None));
        // Minute 100 is over at 101: two rows however many refusals; minute 101 stays.
        let entries = tally.drain(Some(101));
        assert_eq!(entries.len(), 2);
        let counts: Vec<_> = entries.iter().map(|e| e.detail["count"].clone()).collect();
        assert!(counts.contains(&serde_json::json!(10_000)));
        assert!(counts.contains(&serde_json::json!(1)));
        assert!(
            entries
                .iter()
                .all(|e| e.kind == "gateway.refusals" && e.at.secs() == 6000)
        );
        assert_eq!(tally.drain(None).len(), 1);
        // Past MAX_BUCKETS distinct buckets, the rest is counted, not kept apart.
        for i in 0..(MAX_BUCKETS + 5) {
            tally.add(200, refusal("invalid_token", Some(&format!("inst-{i}"))));
        }
        let entries = tally.drain(None);
        assert_eq!(entries.len(), MAX_BUCKETS + 1);
        let other = entries.iter().find(|e| e.subject == "other").unwrap();
        assert_eq!(other.detail["count"], 5);
    }

    #[tokio::test]
    async fn the_writer_appends_tallied_refusals_on_shutdown() {
        let (_dir, store, sink, writer) = on_disk(Arc::new(Metrics::new()));
        for _ in 0..500 {
            sink.tally(refused("missing_token", None));
        }
        for credential in ["cred_a", "cred_a", "cred_b"] {
            sink.count_use(CredentialUse {
                by: UseBy::Credential,
                credential: credential.into(),
                name: "School nurse".into(),
                route: Some("/api/v*/entries*".into()),
            });
        }
        run_to_shutdown(writer).await;
        let entries = store.audit_entries(0, usize::MAX).await.unwrap();
        assert_eq!(
            entries.len(),
            3,
            "500 refusals, one row; a row per credential"
        );
        let refusals = entries.iter().filter(|e| e.kind == "gateway.refusals");
        assert_eq!(refusals.count(), 1);
        let mut uses: Vec<(String, serde_json::Value)> = entries
            .iter()
            .filter(|e| e.kind == "gateway.credential_uses")
            .map(|e| {
                let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
                (e.subject.clone(), detail["count"].clone())
            })
            .collect();
        uses.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            uses,
            [
                ("cred_a".to_string(), serde_json::json!(2)),
                ("cred_b".to_string(), serde_json::json!(1))
            ]
        );
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_queued() {
        let (_dir, store, sink, writer) = on_disk(Arc::new(Metrics::new()));
        for i in 0..5 {
            sink.record(entry(i));
        }
        // The sink is still alive: only the shutdown signal ends the writer.
        run_to_shutdown(writer).await;
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
