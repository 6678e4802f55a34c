//! The socket.io tunnel over WebSocket, on `tunnel = "socket.io"` routes: the gateway ends
//! the client's WebSocket and opens its own to the upstream (with the request head
//! `proxy::upstream_parts` makes for any forwarded request: credentials stripped and
//! injected, medgate's headers set), then carries messages both ways. Every message the
//! client sends is one Engine.IO packet, kept, rewritten (in-band credentials) or dropped by
//! `tunnel::pass` for the subject's scopes; binary messages are dropped. What the upstream
//! sends passes. While the tunnel is open its subject is checked every second: a revoked
//! installation, release or credential, an expired token or credential, has its tunnel
//! closed (1008, policy violation), so a tunnel lives no longer than the token that opened
//! it. A subject holds at most [`MAX_TUNNELS_PER_SUBJECT`] tunnels, the listener as many as
//! its connections.

use std::net::IpAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::{CONNECTION, HOST, HeaderValue, UPGRADE};
use http::request::Parts;
use http::{Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::authorize::Authorized;
use crate::{Gateway, GatewayBody, UpstreamError, tunnel};

/// Open tunnels one subject (an installation or a credential) may hold.
pub(crate) const MAX_TUNNELS_PER_SUBJECT: usize = 4;

/// A place for one open tunnel: one of the listener's connections and one of its subject's;
/// given back when dropped.
pub(crate) struct TunnelSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
    subject: String,
    counts: std::sync::Arc<parking_lot::Mutex<std::collections::HashMap<String, usize>>>,
}

impl TunnelSlot {
    /// A slot, unless the listener's or the subject's tunnels are all taken.
    pub(crate) fn take(inner: &crate::Inner, authorized: &Authorized) -> Option<TunnelSlot> {
        let permit = std::sync::Arc::clone(&inner.tunnels)
            .try_acquire_owned()
            .ok()?;
        let mut counts = inner.tunnels_of.lock();
        let count = counts
            .entry(authorized.installation_id.clone())
            .or_insert(0);
        if *count >= MAX_TUNNELS_PER_SUBJECT {
            return None;
        }
        *count += 1;
        Some(TunnelSlot {
            _permit: permit,
            subject: authorized.installation_id.clone(),
            counts: std::sync::Arc::clone(&inner.tunnels_of),
        })
    }
}

impl Drop for TunnelSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.subject) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.subject);
            }
        }
    }
}

/// A byte stream to the upstream, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(tunnel::MAX_PAYLOAD))
        .max_frame_size(Some(tunnel::MAX_PAYLOAD))
}

/// Whether the request asks for a WebSocket.
pub(crate) fn is_upgrade(parts: &Parts) -> bool {
    parts
        .headers
        .get(UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"))
}

/// Whether the client's handshake is one RFC 6455 §4.2.1 accepts.
pub(crate) fn handshake_ok(parts: &Parts) -> bool {
    client_key(parts).is_some()
}

/// The client's `Sec-WebSocket-Key`, when its handshake is one RFC 6455 §4.2.1 accepts.
fn client_key(parts: &Parts) -> Option<&HeaderValue> {
    let version = parts.headers.get("sec-websocket-version")?;
    let key = parts.headers.get("sec-websocket-key")?;
    // 16 random bytes, standard base64: 22 characters and `==`.
    let text = key.as_bytes();
    let well_formed = text.len() == 24
        && text.ends_with(b"==")
        && text[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
    (parts.method == http::Method::GET && version == "13" && well_formed).then_some(key)
}

impl Gateway {
    /// Answers a WebSocket handshake on a tunnel route: the upstream's WebSocket first, then
    /// 101 to the client and the messages carried in the background.
    pub(crate) async fn open_tunnel(
        &self,
        mut parts: Parts,
        authorized: Authorized,
        client: IpAddr,
        slot: TunnelSlot,
    ) -> Result<Response<GatewayBody>, UpstreamError> {
        // Checked by the caller (`handshake_ok`); hyper puts the upgrade in every request.
        let key = client_key(&parts)
            .cloned()
            .ok_or(UpstreamError::Tunnel("not a WebSocket handshake".into()))?;
        let upgrade = parts
            .extensions
            .remove::<hyper::upgrade::OnUpgrade>()
            .ok_or(UpstreamError::Tunnel(
                "the connection cannot be upgraded".into(),
            ))?;
        let (mut head, _injected) = self.upstream_parts(&authorized, parts, client)?;
        // The client's handshake is not the upstream's: its key, version and extensions (no
        // compression is offered) go; the hop's own are set.
        let theirs: Vec<_> = head
            .headers
            .keys()
            .filter(|name| name.as_str().starts_with("sec-websocket-"))
            .cloned()
            .collect();
        for name in theirs {
            head.headers.remove(name);
        }
        let upstream = self.connect_upstream(head).await?;
        let gateway = self.clone();
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.await else {
                return;
            };
            let client = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(config()),
            )
            .await;
            gateway.carry(authorized, client, upstream).await;
            drop(slot);
        });
        self.counted("tunnel_opened", None);
        let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            headers.insert("sec-websocket-accept", accept);
        }
        Ok(response)
    }

    /// The upstream's WebSocket, for the prepared head, within the upstream timeout.
    async fn connect_upstream(
        &self,
        head: Parts,
    ) -> Result<WebSocketStream<Box<dyn Io>>, UpstreamError> {
        let params = &self.inner.params;
        let uri = head.uri.clone();
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or(UpstreamError::NotConfigured)?.to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let ws_uri = Uri::builder()
            .scheme(if https { "wss" } else { "ws" })
            .authority(uri.authority().map(|a| a.as_str()).unwrap_or_default())
            .path_and_query(uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"))
            .build()
            .map_err(UpstreamError::BadUri)?;
        let mut request = http::Request::builder()
            .method("GET")
            .uri(ws_uri)
            .body(())
            .map_err(UpstreamError::BadUri)?;
        *request.headers_mut() = head.headers;
        let handshake = [
            (CONNECTION, "Upgrade".to_string()),
            (UPGRADE, "websocket".to_string()),
            (
                http::HeaderName::from_static("sec-websocket-version"),
                "13".to_string(),
            ),
            (
                http::HeaderName::from_static("sec-websocket-key"),
                generate_key(),
            ),
        ];
        for (name, value) in handshake {
            if let Ok(value) = HeaderValue::from_str(&value) {
                request.headers_mut().insert(name, value);
            }
        }
        // `upstream_parts` set Host to the upstream's authority; tungstenite requires one.
        if !request.headers().contains_key(HOST)
            && let Some(authority) = uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            request.headers_mut().insert(HOST, authority);
        }
        let connect = async {
            let tcp = TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|error| UpstreamError::Tunnel(error.to_string()))?;
            tcp.set_nodelay(true).ok();
            let stream: Box<dyn Io> = if https {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|error| UpstreamError::Tunnel(error.to_string()))?;
                let tls =
                    tokio_rustls::TlsConnector::from(std::sync::Arc::clone(&params.upstream_tls))
                        .connect(name, tcp)
                        .await
                        .map_err(|error| UpstreamError::Tunnel(error.to_string()))?;
                Box::new(tls)
            } else {
                Box::new(tcp)
            };
            tokio_tungstenite::client_async_with_config(request, stream, Some(config()))
                .await
                .map(|(stream, _)| stream)
                .map_err(|error| UpstreamError::Tunnel(error.to_string()))
        };
        tokio::time::timeout(params.upstream_timeout, connect)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    /// Carries messages until either side closes or the subject is no longer admitted.
    async fn carry<C>(
        &self,
        authorized: Authorized,
        client: WebSocketStream<C>,
        upstream: WebSocketStream<Box<dyn Io>>,
    ) where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let scopes: Vec<String> = authorized.scope.split(' ').map(str::to_string).collect();
        let holds = |scope: &str| scopes.iter().any(|s| s == scope);
        let secret = self.in_band_secret(&authorized);
        let (mut to_client, mut from_client) = client.split();
        let (mut to_upstream, mut from_upstream) = upstream.split();
        let mut check = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                message = from_client.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let secret = secret.as_deref().map(String::as_str);
                        match tunnel::pass(text.as_str(), &holds, secret) {
                            Some(kept) => {
                                let kept = Message::text(kept.into_owned());
                                if to_upstream.send(kept).await.is_err() {
                                    break;
                                }
                            }
                            None => self.inner.metrics.tunnel_dropped(1),
                        }
                    }
                    Some(Ok(Message::Binary(_))) => self.inner.metrics.tunnel_dropped(1),
                    Some(Ok(Message::Close(frame))) => {
                        let _ = to_upstream.send(Message::Close(frame)).await;
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                message = from_upstream.next() => match message {
                    Some(Ok(Message::Close(frame))) => {
                        let _ = to_client.send(Message::Close(frame)).await;
                        break;
                    }
                    Some(Ok(message @ (Message::Text(_) | Message::Binary(_)))) => {
                        if to_client.send(message).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                _ = check.tick() => {
                    if !self.still_admitted(&authorized) {
                        let close = || Message::Close(Some(CloseFrame {
                            code: CloseCode::Policy,
                            reason: "no longer admitted".into(),
                        }));
                        let _ = to_client.send(close()).await;
                        let _ = to_upstream.send(close()).await;
                        break;
                    }
                }
            }
        }
    }
}
