//! The accept loop both planes serve HTTP/1.1 with.
//!
//! What one client, or many, can hold of a listener is bounded:
//!
//! - Each connection gets a deadline for its request head and a bounded read buffer, so a client
//!   that opens connections and dribbles header bytes (slowloris) cannot hold them open. The same
//!   deadline closes a kept-alive connection that sends no next request (the idle timeout).
//! - A listener holds at most `max_connections` at once; beyond that it stops accepting (the
//!   kernel's backlog queues newcomers) until one closes, so file descriptors are never exhausted
//!   by client connections alone.
//! - One client (an IPv4 address, or an IPv6 /64) holds at most `max_connections_per_client`;
//!   further connections are closed at once.
//! - When `accept` fails (out of file descriptors, say) the loop backs off, up to a second, and
//!   logs at most one line per ten seconds, instead of spinning.
//!
//! When `shutdown` changes the loop stops accepting and open connections finish their current
//! request and close.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use crate::client_ip::{TrustedProxies, client_key};
use crate::tls::ServerTls;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Per-listener and per-connection bounds.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// How long a client may take to send a complete request head, and how long a kept-alive
    /// connection may wait for its next request.
    pub header_read_timeout: Duration,
    /// The read buffer for a request head, in bytes. hyper may grow it once past this, so
    /// heads up to twice the size can be accepted; beyond that they are refused (431).
    pub max_head_bytes: usize,
    /// Connections the listener holds at once.
    pub max_connections: usize,
    /// Connections one client (IPv4 address, IPv6 /64) holds at once. Trusted proxies, which
    /// carry many clients, are exempt.
    pub max_connections_per_client: usize,
    pub trusted_proxies: TrustedProxies,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            max_head_bytes: 64 * 1024,
            max_connections: 400,
            max_connections_per_client: 32,
            trusted_proxies: TrustedProxies::none(),
        }
    }
}

/// Open connections per client.
#[derive(Debug)]
struct ClientSlots {
    open: Mutex<HashMap<IpAddr, usize>>,
    max: usize,
}

/// One client's hold on a connection; released when dropped.
struct ClientSlot {
    slots: Arc<ClientSlots>,
    key: IpAddr,
}

impl ClientSlots {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let key = client_key(ip);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            slots: Arc::clone(self),
            key,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Back-off after failed accepts: 10 ms doubling to 1 s, reset by a success; one log line per
/// ten seconds at most, counting the failures it stands for.
#[derive(Debug)]
struct AcceptBackoff {
    delay: Duration,
    failures_since_log: u64,
    last_log: Option<Instant>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl AcceptBackoff {
    fn new() -> Self {
        AcceptBackoff {
            delay: Duration::ZERO,
            failures_since_log: 0,
            last_log: None,
        }
    }

    /// Records a failure at `now`; returns how long to wait and whether to log (with the
    /// number of failures the line stands for).
    fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        self.delay = (self.delay * 2).clamp(FIRST_BACKOFF, MAX_BACKOFF);
        self.failures_since_log += 1;
        let log = match self.last_log {
            Some(last) if now.duration_since(last) < ACCEPT_LOG_INTERVAL => None,
            _ => {
                self.last_log = Some(now);
                Some(std::mem::take(&mut self.failures_since_log))
            }
        };
        (self.delay, log)
    }

    fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }
}

/// Accepts connections on `listener` until `shutdown` changes, serving each with the service
/// `service_for(peer)` returns; over TLS when `tls` is given (the handshake must finish within
/// the head deadline). `plane` names the listener in logs.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
    limits: ConnectionLimits,
    tls: Option<Arc<ServerTls>>,
    plane: &'static str,
    service_for: F,
) where
    F: Fn(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let capacity = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let clients = Arc::new(ClientSlots {
        open: Mutex::new(HashMap::new()),
        max: limits.max_connections_per_client.max(1),
    });
    let mut backoff = AcceptBackoff::new();
    loop {
        // Room for one more connection first: at the cap, stop accepting.
        let permit = tokio::select! {
            permit = Arc::clone(&capacity).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(error) => {
                let (delay, log) = backoff.failed(Instant::now());
                if let Some(failures) = log {
                    tracing::warn!(%error, plane, failures, "accept failed; backing off");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => break,
                }
                continue;
            }
        };
        let slot = if limits.trusted_proxies.trusts(peer.ip()) {
            None
        } else {
            match clients.take(peer.ip()) {
                Some(slot) => Some(slot),
                None => {
                    // Over its share: closed before anything is read.
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service_for(peer);
        let mut connection_shutdown = shutdown.clone();
        let (header_read_timeout, max_head_bytes) =
            (limits.header_read_timeout, limits.max_head_bytes);
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        tokio::spawn(async move {
            let _held = (permit, slot);
            let http = Http {
                header_read_timeout,
                max_head_bytes,
                plane,
            };
            match acceptor {
                None => http.serve(stream, service, connection_shutdown).await,
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        done = tokio::time::timeout(header_read_timeout, acceptor.accept(stream)) => done,
                        _ = connection_shutdown.changed() => return,
                    };
                    match handshake {
                        Ok(Ok(stream)) => http.serve(stream, service, connection_shutdown).await,
                        // The peer's bytes are not logged: only that the handshake failed.
                        Ok(Err(_)) => tracing::debug!(plane, "TLS handshake failed"),
                        Err(_) => tracing::debug!(plane, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// How one connection is served, over TCP or TLS alike.
struct Http {
    header_read_timeout: Duration,
    max_head_bytes: usize,
    plane: &'static str,
}

impl Http {
    async fn serve<I, S, B>(self, io: I, service: S, mut shutdown: watch::Receiver<bool>)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .max_buf_size(self.max_head_bytes)
            .serve_connection(TokioIo::new(io), service)
            // A service that answers 101 takes the connection over (the gateway's WebSocket
            // tunnel); nothing else changes.
            .with_upgrades();
        tokio::pin!(connection);
        let ended = tokio::select! {
            ended = connection.as_mut() => ended,
            _ = shutdown.changed() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(error) = ended {
            let plane = self.plane;
            tracing::debug!(%error, plane, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    async fn start(limits: ConnectionLimits) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(serve(listener, stopped, limits, None, "test", |peer| {
            service_fn(move |_request: Request<Incoming>| async move {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(peer.to_string()))))
            })
        }));
        (addr, stop)
    }

    async fn read_all(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        assert!(read.is_ok(), "the server kept the connection open");
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn serves_a_request_and_tells_the_service_its_peer() {
        let (addr, _stop) = start(ConnectionLimits::default()).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let local = stream.local_addr().expect("local");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let reply = read_all(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.ends_with(&local.to_string()), "{reply}");
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_head_is_cut_off() {
        let limits = ConnectionLimits {
            header_read_timeout: Duration::from_millis(200),
            ..ConnectionLimits::default()
        };
        let (addr, _stop) = start(limits).await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .expect("write");
        // The server closes the connection, without a response, instead of waiting forever.
        let reply = read_all(&mut stream).await;
        assert!(reply.is_empty(), "{reply}");
    }

    #[tokio::test]
    async fn an_oversize_head_is_refused() {
        let (addr, _stop) = start(ConnectionLimits {
            max_head_bytes: 8 * 1024,
            ..ConnectionLimits::default()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(32 * 1024)
        );
        let _ = stream.write_all(big.as_bytes()).await;
        let reply = read_all(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    }

    async fn connect_from(local: &str, addr: SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{local}:0").parse().expect("address"))
            .expect("bind");
        socket.connect(addr).await.expect("connect")
    }

    /// A request and whatever comes back; a connection the server already closed reads as "".
    async fn get(stream: &mut TcpStream) -> String {
        let _ = stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await;
        read_all(stream).await
    }

    #[tokio::test]
    async fn a_kept_alive_connection_that_sends_nothing_more_is_closed() {
        let (addr, _stop) = start(ConnectionLimits {
            header_read_timeout: Duration::from_millis(200),
            ..ConnectionLimits::default()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        // The response arrives, then the idle connection is closed by the server.
        let reply = read_all(&mut stream).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    #[tokio::test]
    async fn one_client_holds_at_most_its_share_of_connections() {
        let (addr, _stop) = start(ConnectionLimits {
            max_connections_per_client: 3,
            ..ConnectionLimits::default()
        })
        .await;
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect_from("127.0.0.2", addr).await);
        }
        // The fourth from the same address is closed without an answer; another client is
        // served.
        let mut fourth = connect_from("127.0.0.2", addr).await;
        assert_eq!(get(&mut fourth).await, "");
        let mut other = connect_from("127.0.0.3", addr).await;
        assert!(get(&mut other).await.starts_with("HTTP/1.1 200"));
        // A released share is available again, once the server has closed that connection.
        let mut first = held.remove(0);
        assert!(get(&mut first).await.starts_with("HTTP/1.1 200"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut reused = false;
        while !reused && tokio::time::Instant::now() < deadline {
            let mut again = connect_from("127.0.0.2", addr).await;
            reused = get(&mut again).await.starts_with("HTTP/1.1 200");
            if !reused {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        assert!(reused, "the released slot was never reused");
    }

    #[tokio::test]
    async fn at_its_cap_a_listener_waits_for_a_connection_to_close() {
        let (addr, _stop) = start(ConnectionLimits {
            max_connections: 2,
            ..ConnectionLimits::default()
        })
        .await;
        let mut first = connect_from("127.0.0.4", addr).await;
        let _second = connect_from("127.0.0.5", addr).await;
        // Served only once the first closes: the request waits in the backlog meanwhile.
        let mut third = connect_from("127.0.0.6", addr).await;
        third
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(300), third.read(&mut byte)).await;
        assert!(early.is_err(), "served beyond the cap");
        assert!(get(&mut first).await.starts_with("HTTP/1.1 200"));
        drop(first);
        let reply = read_all(&mut third).await;
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            client_key(mapped),
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn failed_accepts_back_off_and_log_rarely() {
        let mut backoff = AcceptBackoff::new();
        let start = Instant::now();
        let (delay, log) = backoff.failed(start);
        assert_eq!((delay, log), (FIRST_BACKOFF, Some(1)));
        let mut delays = vec![delay];
        for i in 1..20 {
            let (delay, log) = backoff.failed(start + Duration::from_millis(i));
            assert_eq!(log, None, "one line per interval");
            delays.push(delay);
        }
        assert!(delays.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(delays.last(), Some(&MAX_BACKOFF));
        let (_, log) = backoff.failed(start + ACCEPT_LOG_INTERVAL);
        assert_eq!(log, Some(20), "the next line counts what it stands for");
        backoff.succeeded();
        assert_eq!(backoff.failed(start + ACCEPT_LOG_INTERVAL).0, FIRST_BACKOFF);
    }

    /// What the README says of the default head cap: hyper reads the head into a buffer of
    /// `max_head_bytes` and may grow past it once, so a 60 KiB head is served and anything over
    /// 128 KiB is refused with 431.
    #[tokio::test]
    async fn the_default_head_cap_is_what_the_readme_says() {
        let (addr, _stop) = start(ConnectionLimits::default()).await;
        let head = |size: usize| {
            let frame = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Fill: \r\n\r\n";
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Fill: {}\r\n\r\n",
                "a".repeat(size - frame.len())
            )
        };
        for (size, expected) in [(60 * 1024, "HTTP/1.1 200"), (129 * 1024, "HTTP/1.1 431")] {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let _ = stream.write_all(head(size).as_bytes()).await;
            let reply = read_all(&mut stream).await;
            assert!(reply.starts_with(expected), "{size}: {reply:.40}");
        }
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let (addr, stop) = start(ConnectionLimits::default()).await;
        stop.send(true).expect("stop");
        // The loop drops the listener once it sees the signal; wait for that, boundedly.
        let mut still_accepting = true;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                still_accepting = false;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            !still_accepting,
            "the listener still accepts after shutdown"
        );
    }
}
