//! Short-lived state several replicas share, in Redis (`[redis] url`): proof replay keys and
//! rate-limit cells across gateways, and a channel that tells every replica the store's
//! revocation feed or key set changed.
//!
//! One round trip per admitted request: a Lua script ([`ADMIT`]) checks the rate-limit cells
//! (GCRA on Redis's own clock), then `SET NX PX` of the proof's replay key, then advances the
//! cells, atomically on the server. Every call has a deadline; after a failure Redis is left
//! alone for [`BACKOFF`], so a dead Redis costs one timeout per second, not one per request.
//! What a request does while Redis is unreachable is the caller's choice per route
//! ([`SharedUnavailable`]).
//!
//! Keys are `<prefix>r:<hex replay key>` and `<prefix>l<kind>:<id>`; the hex is a SHA-256 the
//! gateway computed, the ids are verified installation ids and peer addresses. All keys of one
//! request go to one script, so a Redis Cluster would need them in one slot: medgate supports a
//! single Redis (with replicas or Sentinel for failover), not Cluster.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{Notify, watch};

use crate::ratelimit::RateLimit;

/// How long Redis is left alone after a failed call.
pub const BACKOFF: Duration = Duration::from_secs(1);

/// Checks the rate cells, takes the replay key, then advances the cells.
///
/// KEYS\[1\]: the replay key; KEYS\[2..\]: rate cells. ARGV\[1\]: the replay key's lifetime in
/// ms; then per cell its emission interval and its burst tolerance, in µs. Returns `{0, 0}`
/// admitted, `{1, 0}` replayed, `{2, wait_ms}` over a limit.
const ADMIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local news = {}
for i = 2, #KEYS do
  local interval = tonumber(ARGV[2 * i - 2])
  local tolerance = tonumber(ARGV[2 * i - 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) or now
  if tat < now then tat = now end
  local new = tat + interval
  local excess = new - now - tolerance
  if excess > 0 then
    return {2, math.ceil(excess / 1000)}
  end
  news[i] = new
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then
  return {1, 0}
end
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.0f', news[i]), 'PX', math.ceil((news[i] - now) / 1000) + 1)
end
return {0, 0}
";

/// Why the shared state could not answer: Redis unreachable, too slow, or in back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shared state (Redis) unavailable")]
pub struct SharedUnavailable;

/// A Redis URL that could not be used, without repeating the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct SharedError(String);

/// What the script said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// The replay key was already taken, by this gateway or another.
    Replayed,
    /// A rate cell is over its limit; try again after this long.
    Limited(Duration),
}

/// One rate cell a request must fit: which kind (`i` installation, `a` address), whose, and at
/// what rate.
#[derive(Debug, Clone, Copy)]
pub struct Cell<'a> {
    pub kind: &'static str,
    pub id: &'a str,
    pub limit: RateLimit,
}

/// Settings for [`SharedState::connect`].
#[derive(Debug, Clone)]
pub struct SharedParams {
    pub url: String,
    /// Prepended to every key and the change channel, so deployments (and tests) can share a
    /// Redis.
    pub prefix: String,
    /// Deadline of every call.
    pub timeout: Duration,
}

struct Inner {
    client: redis::Client,
    connection: ConnectionManager,
    admit: redis::Script,
    prefix: String,
    timeout: Duration,
    started: Instant,
    /// Milliseconds since `started` before which Redis is not asked.
    quiet_until: AtomicU64,
    /// Whether [`SharedState::follow_changes`] is subscribed right now.
    subscribed: AtomicBool,
}

/// A handle on the shared state. Cheap to clone.
#[derive(Clone)]
pub struct SharedState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SharedState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedState")
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

fn cell_parameters(limit: RateLimit) -> Option<(u64, u64)> {
    if limit.per_second == 0 {
        return None;
    }
    let interval = 1_000_000 / u64::from(limit.per_second);
    let burst = if limit.burst == 0 {
        limit.per_second
    } else {
        limit.burst
    };
    Some((interval.max(1), interval.max(1) * u64::from(burst)))
}

impl SharedState {
    /// Connects; fails when Redis cannot be reached now, so a misconfigured node does not start.
    pub async fn connect(params: SharedParams) -> Result<SharedState, SharedError> {
        let client = redis::Client::open(params.url.as_str())
            .map_err(|_| SharedError("[redis] url is not a redis:// or rediss:// URL".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(params.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(params.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| SharedError("Redis did not answer within 5 s".into()))?
        .map_err(|error| SharedError(format!("cannot connect to Redis ({})", error.category())))?;
        let shared = SharedState {
            inner: Arc::new(Inner {
                client,
                connection,
                admit: redis::Script::new(ADMIT),
                prefix: params.prefix,
                timeout: params.timeout,
                started: Instant::now(),
                quiet_until: AtomicU64::new(0),
                subscribed: AtomicBool::new(false),
            }),
        };
        shared.check_eviction_policy().await;
        Ok(shared)
    }

    /// Replay keys carry expiries, so a policy that evicts them under memory pressure would
    /// forget proofs still inside their window: anything but `noeviction` is worth a warning.
    async fn check_eviction_policy(&self) {
        let mut connection = self.inner.connection.clone();
        let policy: Result<Vec<String>, SharedUnavailable> = self
            .call(async move {
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async(&mut connection)
                    .await
            })
            .await;
        match policy.as_deref() {
            Ok([_, policy]) if policy == "noeviction" => {}
            Ok([_, _]) => tracing::warn!(
                "redis maxmemory-policy is not noeviction: under memory pressure Redis may evict replay keys, and a proof could then be used twice"
            ),
            _ => tracing::warn!(
                "cannot read redis maxmemory-policy; set it to noeviction so replay keys are never evicted"
            ),
        }
    }

    /// Whether announcements can be relied on now: subscribed, and no call failed within the
    /// last [`BACKOFF`]. When not, replicas poll the store often enough for the 5 s bound.
    pub fn pushes_arrive(&self) -> bool {
        self.inner.subscribed.load(Ordering::Relaxed)
            && self.elapsed_ms() >= self.inner.quiet_until.load(Ordering::Relaxed)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `call` unless Redis is in back-off, with the deadline; a failure starts a back-off.
    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SharedUnavailable> {
        if self.elapsed_ms() < self.inner.quiet_until.load(Ordering::Relaxed) {
            return Err(SharedUnavailable);
        }
        match tokio::time::timeout(self.inner.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                self.back_off();
                tracing::warn!(kind = error.category(), "redis call failed");
                Err(SharedUnavailable)
            }
            Err(_) => {
                self.back_off();
                tracing::warn!("redis call timed out");
                Err(SharedUnavailable)
            }
        }
    }

    fn back_off(&self) {
        let until = self.elapsed_ms().saturating_add(BACKOFF.as_millis() as u64);
        self.inner.quiet_until.fetch_max(until, Ordering::Relaxed);
    }

    /// Takes `replay_key` for `lifetime` if it is new and every cell has room; one round trip.
    pub async fn admit(
        &self,
        replay_key: &[u8; 32],
        lifetime: Duration,
        cells: &[Cell<'_>],
    ) -> Result<Admission, SharedUnavailable> {
        let prefix = &self.inner.prefix;
        let mut invocation = self.inner.admit.prepare_invoke();
        invocation.key(format!(
            "{prefix}r:{}",
            medgate_proto::hex::encode(replay_key)
        ));
        let lifetime_ms = u64::try_from(lifetime.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        invocation.arg(lifetime_ms);
        for cell in cells {
            if let Some((interval, tolerance)) = cell_parameters(cell.limit) {
                invocation.key(format!("{prefix}l{}:{}", cell.kind, cell.id));
                invocation.arg(interval).arg(tolerance);
            }
        }
        let mut connection = self.inner.connection.clone();
        let (code, wait): (i64, i64) = self.call(invocation.invoke_async(&mut connection)).await?;
        Ok(match code {
            0 => Admission::Admitted,
            1 => Admission::Replayed,
            _ => Admission::Limited(Duration::from_millis(wait.max(1).unsigned_abs())),
        })
    }

    fn channel(&self) -> String {
        format!("{}changes", self.inner.prefix)
    }

    /// Tells every replica that the revocation feed or the key set changed. The store stays
    /// the record; this only makes replicas read it now instead of at their next poll.
    pub async fn announce(&self) -> Result<(), SharedUnavailable> {
        let mut connection = self.inner.connection.clone();
        let channel = self.channel();
        let _receivers: i64 = self
            .call(async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg("feed")
                    .query_async(&mut connection)
                    .await
            })
            .await?;
        Ok(())
    }

    /// [`announce`](Self::announce) without waiting for it (from synchronous code), tried
    /// again each second for 5 s. Should every try fail, the replicas whose subscription
    /// failed with it poll every 5 s at most ([`pushes_arrive`](Self::pushes_arrive)).
    pub fn announce_soon(&self) {
        let shared = self.clone();
        tokio::spawn(async move {
            for _ in 0..5 {
                if shared.announce().await.is_ok() {
                    return;
                }
                tokio::time::sleep(BACKOFF).await;
            }
        });
    }

    /// Until `shutdown` changes: subscribes to the change channel and wakes `changed` for each
    /// announcement, and after every (re)subscription, since announcements made while it was
    /// away were lost.
    pub async fn follow_changes(self, changed: Arc<Notify>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let subscribed = async {
                let mut pubsub = self.inner.client.get_async_pubsub().await?;
                pubsub.subscribe(self.channel()).await?;
                redis::RedisResult::Ok(pubsub)
            };
            match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
                Ok(Ok(mut pubsub)) => {
                    self.inner.subscribed.store(true, Ordering::Relaxed);
                    changed.notify_one();
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            message = messages.next() => match message {
                                Some(_) => changed.notify_one(),
                                None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    }
                    self.inner.subscribed.store(false, Ordering::Relaxed);
                    tracing::warn!("redis change channel closed; resubscribing");
                }
                Ok(Err(error)) => {
                    tracing::warn!(kind = error.category(), "cannot subscribe to redis changes");
                }
                Err(_) => tracing::warn!("redis subscription timed out"),
            }
            tokio::select! {
                _ = tokio::time::sleep(BACKOFF) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_an_interval_and_a_tolerance_in_microseconds() {
        let limit = |per_second, burst| RateLimit { per_second, burst };
        assert_eq!(cell_parameters(limit(0, 5)), None);
        assert_eq!(cell_parameters(limit(10, 20)), Some((100_000, 2_000_000)));
        assert_eq!(cell_parameters(limit(4, 0)), Some((250_000, 1_000_000)));
        assert_eq!(cell_parameters(limit(2_000_000, 1)), Some((1, 1)));
    }
}
