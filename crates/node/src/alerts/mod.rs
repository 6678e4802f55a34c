//! Alerts to the security team's webhook (`[alerts]`): every `interval` the node reads the
//! telemetry series, the releases and (every `chain_check_interval`) the whole audit chain,
//! decides what is worth an alert ([`rules`]), and POSTs each new one signed as a Standard
//! Webhook ([`webhook`]). An alert is sent once (by its key); one the receiver did not take is
//! tried again at the next evaluation, a bounded number kept. Run alerts on one node of a
//! deployment: each node that has `[alerts]` sends its own.

pub mod rules;
pub mod webhook;

use std::collections::{BTreeSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use medgate_proto::time::UnixTime;
use medgate_server::Server;
use medgate_service::Clock;
use medgate_service::metrics::Metrics;
use medgate_store::{Store, StoreError};
use tokio::sync::watch;
use zeroize::Zeroizing;

use crate::config::AlertsConfig;
use crate::outbound::OutboundClient;
use rules::{Alert, SpikeRule};

/// Finished minutes read for spikes and new kinds each time: a minute the audit writer
/// stores late is still seen.
const WINDOW_MINUTES: i64 = 5;
/// How far back a threat must not have been seen to be new.
const HISTORY_SECS: i64 = 7 * 24 * 3600;
/// Alerts waiting for the receiver, at most (the oldest go first).
const MAX_PENDING: usize = 100;
/// Keys remembered as sent, at most (the oldest are forgotten).
const MAX_SENT: usize = 10_000;

/// What the alert loop runs with, from `[alerts]`.
pub struct Alerts {
    url: Uri,
    secret: Zeroizing<Vec<u8>>,
    interval: Duration,
    chain_check_interval: Duration,
    spike: SpikeRule,
}

impl Alerts {
    /// From the config (already validated): reads the secret file.
    pub fn from_config(config: &AlertsConfig) -> Result<Option<Alerts>, String> {
        let (Some(url), Some(secret_file)) = (&config.url, &config.secret_file) else {
            return Ok(None);
        };
        let url = medgate_server::check_outbound_url(url)
            .map_err(|_| "alerts.url is not an https URL".to_string())?;
        Ok(Some(Alerts {
            url,
            secret: read_secret(secret_file)?,
            interval: config.interval,
            chain_check_interval: config.chain_check_interval,
            spike: SpikeRule {
                threshold: config.spike_threshold,
                factor: config.spike_factor,
            },
        }))
    }
}

fn read_secret(path: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|error| format!("alerts.secret_file {}: {error}", path.display()))?,
    );
    webhook::parse_secret(&text)
        .map(Zeroizing::new)
        .ok_or_else(|| {
            format!(
                "alerts.secret_file {}: not whsec_ and the base64 of 24 to 64 bytes",
                path.display()
            )
        })
}

/// What the loop needs from the node.
pub struct AlertContext {
    pub store: Arc<dyn Store>,
    pub server: Server,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

/// Evaluates and delivers until shutdown.
pub async fn keep_alerting(
    alerts: Alerts,
    context: AlertContext,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut sender = Sender {
        alerts: &alerts,
        client: crate::outbound::client(),
        sent: BTreeSet::new(),
        sent_order: VecDeque::new(),
        pending: VecDeque::new(),
    };
    let mut tick = tokio::time::interval(alerts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_chain_check: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let check_chain =
            last_chain_check.is_none_or(|at| at.elapsed() >= alerts.chain_check_interval);
        match evaluate(&context, alerts.spike, check_chain).await {
            Ok(found) => {
                if check_chain {
                    last_chain_check = Some(Instant::now());
                }
                sender.queue(found);
            }
            Err(error) => tracing::warn!(%error, "alert rules could not read the store"),
        }
        sender.deliver(&context).await;
    }
}

/// Every rule, over what the store holds now.
async fn evaluate(
    context: &AlertContext,
    spike: SpikeRule,
    check_chain: bool,
) -> Result<Vec<Alert>, StoreError> {
    let store = &*context.store;
    let now = context.clock.now().secs();
    // The window: the last finished minutes.
    let end = now - now.rem_euclid(60);
    let start = end - WINDOW_MINUTES * 60;
    let window = store
        .telemetry(UnixTime::from_secs(start), UnixTime::from_secs(end), 60)
        .await?;
    let mut found = Vec::new();
    if !window.is_empty() {
        let hour_before = store
            .telemetry(
                UnixTime::from_secs(start - 3600),
                UnixTime::from_secs(start),
                3600,
            )
            .await?;
        found.extend(rules::spikes(&window, &hour_before, 60, spike));
        found.extend(rules::new_kinds(&window, &history(store, start).await?));
    }
    let day = now.div_euclid(86_400);
    for app in store.list_apps().await? {
        let releases = store.list_releases(&app.id).await?;
        if releases.iter().any(|release| release.revoked_at.is_some()) {
            let on_version = store.active_installations_by_version(&app.id).await?;
            found.extend(rules::revoked_in_use(&app.id, &releases, &on_version, day));
        }
    }
    if check_chain {
        let checkpoint = context.server.checkpoint();
        let expected = checkpoint.as_ref().map(|verified| verified.hash());
        match medgate_store::audit_chain_report(store, expected).await? {
            Err(broken) => found.push(rules::chain_broken(broken.seq, broken.problem)),
            Ok(report) if !report.contains_expected => {
                if let Some(verified) = &checkpoint {
                    found.push(rules::checkpoint_missing(verified.seq()));
                }
            }
            Ok(_) => {}
        }
    }
    Ok(found)
}

/// The threats of the [`HISTORY_SECS`] before `start`: whole hours from the hourly sums, then
/// the minutes of the hour `start` falls in.
async fn history(
    store: &dyn Store,
    start: i64,
) -> Result<Vec<medgate_proto::admin::TelemetryCount>, StoreError> {
    let hour = start - start.rem_euclid(3600);
    let mut counts = store
        .telemetry(
            UnixTime::from_secs(hour - HISTORY_SECS),
            UnixTime::from_secs(hour),
            HISTORY_SECS,
        )
        .await?;
    if start > hour {
        counts.extend(
            store
                .telemetry(
                    UnixTime::from_secs(hour),
                    UnixTime::from_secs(start),
                    start - hour,
                )
                .await?,
        );
    }
    Ok(counts)
}

/// Delivers alerts once each, keeping those the receiver has not taken yet.
struct Sender<'a> {
    alerts: &'a Alerts,
    client: OutboundClient<Full<Bytes>>,
    sent: BTreeSet<String>,
    sent_order: VecDeque<String>,
    pending: VecDeque<Alert>,
}

impl Sender<'_> {
    fn queue(&mut self, found: Vec<Alert>) {
        for alert in found {
            if self.sent.contains(&alert.key)
                || self.pending.iter().any(|queued| queued.key == alert.key)
            {
                continue;
            }
            if self.pending.len() == MAX_PENDING {
                self.pending.pop_front();
            }
            self.pending.push_back(alert);
        }
    }

    async fn deliver(&mut self, context: &AlertContext) {
        while let Some(alert) = self.pending.pop_front() {
            let outcome = self.post(&alert, context).await;
            context.metrics.alert(alert.kind, outcome.is_ok());
            match outcome {
                Ok(()) => {
                    if self.sent_order.len() == MAX_SENT
                        && let Some(oldest) = self.sent_order.pop_front()
                    {
                        self.sent.remove(&oldest);
                    }
                    self.sent.insert(alert.key.clone());
                    self.sent_order.push_back(alert.key);
                }
                Err(why) => {
                    // The URL is the operator's but may carry a token: it is not logged.
                    tracing::warn!(
                        kind = alert.kind,
                        why,
                        "the alerts webhook did not take an alert; retried at the next evaluation"
                    );
                    self.pending.push_front(alert);
                    return;
                }
            }
        }
    }

    async fn post(&self, alert: &Alert, context: &AlertContext) -> Result<(), &'static str> {
        let now = context.clock.now();
        let body = serde_json::to_vec(&serde_json::json!({
            "type": alert.kind,
            "timestamp": medgate_service::clock::rfc3339(now),
            "data": alert.data,
        }))
        .map_err(|_| "the alert could not be written")?;
        // The same id each time an alert is tried, so a receiver that took one whose answer
        // was lost drops the retry as a duplicate.
        let digest = ring::digest::digest(&ring::digest::SHA256, alert.key.as_bytes());
        let id = format!("msg_{}", medgate_proto::hex::encode(&digest.as_ref()[..16]));
        let signature = webhook::sign(&self.alerts.secret, &id, now.secs(), &body);
        let request = http::Request::post(self.alerts.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", now.secs().to_string())
            .header("webhook-signature", signature)
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| "the request could not be built")?;
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(request))
            .await
            .map_err(|_| "timed out")?
            .map_err(|_| "unreachable")?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err("refused")
        }
    }
}
