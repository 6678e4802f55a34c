//! Nightscout's socket.io tunnel (`/socket.io/`), read by the gateway: the writes and alarm
//! acks Nightscout accepts in-band, with no per-message check (an `ack` from any subject on
//! the `/alarm` namespace silences an alarm), are dropped unless the request's subject holds
//! the class. A pure parser of what a client sends over long polling (Engine.IO 3 and 4, the
//! socket.io packets inside), no I/O; [`filter`] is fuzzed.
//!
//! Steps, for the body of a polling `POST`:
//! 1. Bounded: at most [`MAX_PAYLOAD`] bytes and [`MAX_PACKETS`] packets, valid UTF-8.
//! 2. Split into Engine.IO packets: by the record separator (`\x1e`, Engine.IO 4) or by their
//!    `<length>:` prefixes, lengths in UTF-16 code units as JavaScript counts them (3).
//! 3. Each message packet (`4`) is a socket.io packet: type, `<attachments>-` for binary
//!    ones, `/<namespace>,`, an ack id, then a JSON array whose first element names the event.
//! 4. An event is kept when it is one Nightscout's clients send and needs nothing
//!    ([`requirement`]) or the subject holds its scope; a therapy write is never kept (it
//!    needs a signed request, which the tunnel cannot carry), nor an event the list does not
//!    name, nor one the gateway cannot read, nor any binary packet.
//! 5. Credentials sent in-band are replaced: an `authorize` (and an `/alarm` `subscribe`)
//!    carries the site's own secret, as the gateway injects it into every request, in place of
//!    whatever the client sent (its `token`, `accessToken` and `jwtToken` removed), so no
//!    client credential reaches the upstream and the upstream's secret never reaches a client.
//! 6. The kept packets are framed again as they came; none left is a single noop (`6`).
//!
//! Over WebSocket (`crate::websocket`) each message the client sends is one packet, and
//! [`pass`] decides it alone.

use std::borrow::Cow;

use serde_json::Value;

/// The largest polling body read (socket.io's own default `maxHttpBufferSize` is 1 MB).
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// The most packets one body may carry.
pub const MAX_PACKETS: usize = 1024;

/// Engine.IO's protocol revision, from the request's `EIO` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// `EIO=3`: `<length>:<packet>` framing (socket.io 2 clients, AndroidAPS' NSClient).
    V3,
    /// `EIO=4`: packets separated by `\x1e` (socket.io 3 and 4).
    V4,
}

impl Engine {
    /// From a raw query: `EIO=3` or `EIO=4`, else `None`.
    pub fn from_query(query: Option<&str>) -> Option<Engine> {
        query?.split('&').find_map(|pair| match pair {
            "EIO=3" => Some(Engine::V3),
            "EIO=4" => Some(Engine::V4),
            _ => None,
        })
    }
}

/// Why a polling body could not be read at all (refused whole, 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    #[error("the socket.io payload is too large")]
    TooLarge,
    #[error("the socket.io payload has too many packets")]
    TooManyPackets,
    #[error("the socket.io payload is not valid UTF-8")]
    NotText,
    #[error("the socket.io payload's framing is malformed")]
    Framing,
}

/// What an event needs of the subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Nothing beyond the tunnel itself.
    None,
    /// This scope.
    Scope(&'static str),
    /// Never over the tunnel.
    Never,
}

/// The scope a subject needs for the site's data: the in-band `authorize` gets the site's
/// secret only then.
pub const READ_SCOPE: &str = "nightscout:read";

/// A Mongo object id, as Nightscout's handlers pass to `new ObjectID` (which throws, and
/// stops the server, on anything else).
fn is_object_id(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_str)
        .is_some_and(|id| id.len() == 24 && id.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The events Nightscout's clients send (`lib/server/websocket.js`,
/// `lib/api3/alarmSocket.js`, `lib/api3/storageSocket.js`), each with the arguments its
/// handler reads without throwing (a handler that throws stops Nightscout: socket.io runs it
/// outside any catch): reads and subscriptions, writes by collection, the alarm `ack`. Any
/// other event, or one of another shape, is never forwarded. An event has one argument (the
/// ack callback comes from the packet's id; a second argument would be called as one).
pub fn requirement(event: &str, arguments: &[Value]) -> Requirement {
    let object = match arguments {
        [Value::Object(object)] => Some(object),
        _ => None,
    };
    match (event, object) {
        ("authorize" | "loadRetro" | "subscribe" | "resubscribe", Some(_)) => Requirement::None,
        ("nsping", Some(message)) if message.get("mills").is_some_and(Value::is_number) => {
            Requirement::None
        }
        ("dbAdd" | "dbUpdate" | "dbUpdateUnset" | "dbRemove", Some(data)) => {
            let shaped = match event {
                "dbAdd" => data.get("data").is_some_and(Value::is_object),
                "dbRemove" => is_object_id(data.get("_id")),
                _ => {
                    is_object_id(data.get("_id")) && data.get("data").is_some_and(Value::is_object)
                }
            };
            match data.get("collection").and_then(Value::as_str) {
                Some("entries" | "devicestatus" | "food" | "activity") if shaped => {
                    Requirement::Scope("nightscout:data-write")
                }
                // Treatments and profiles are therapy writes; an unknown collection is not
                // guessed at.
                _ => Requirement::Never,
            }
        }
        // `ack(level, group, silenceTime)`.
        ("ack", None) => match arguments {
            [level, Value::String(_), silence] if level.is_number() && silence.is_number() => {
                Requirement::Scope("nightscout:alarm-ack")
            }
            _ => Requirement::Never,
        },
        _ => Requirement::Never,
    }
}

/// What [`filter`] left, and how many packets it dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    pub body: String,
    pub dropped: usize,
}

/// Steps 1–6 for a polling body; `holds` says whether the subject has a scope, `secret` is
/// what in-band credentials become (the site's own, as injected; none: removed).
pub fn filter(
    payload: &[u8],
    engine: Engine,
    holds: impl Fn(&str) -> bool,
    secret: Option<&str>,
) -> Result<Filtered, TunnelError> {
    // Step 1.
    if payload.len() > MAX_PAYLOAD {
        return Err(TunnelError::TooLarge);
    }
    let text = std::str::from_utf8(payload).map_err(|_| TunnelError::NotText)?;
    let packets = packets(text, engine)?;
    // Steps 3 to 5.
    let total = packets.len();
    let kept: Vec<Cow<'_, str>> = packets
        .into_iter()
        .filter_map(|packet| pass(packet, &holds, secret))
        .collect();
    let dropped = total - kept.len();
    // Step 6.
    let kept = if kept.is_empty() {
        vec![Cow::Borrowed("6")]
    } else {
        kept
    };
    let body = match engine {
        Engine::V4 => kept.join("\x1e"),
        Engine::V3 => kept
            .iter()
            .map(|packet| format!("{}:{packet}", packet.encode_utf16().count()))
            .collect(),
    };
    Ok(Filtered { body, dropped })
}

/// Step 2: the Engine.IO packets of a polling body.
pub fn packets(text: &str, engine: Engine) -> Result<Vec<&str>, TunnelError> {
    match engine {
        Engine::V4 => {
            let packets: Vec<&str> = text.split('\x1e').take(MAX_PACKETS + 1).collect();
            if packets.len() > MAX_PACKETS {
                return Err(TunnelError::TooManyPackets);
            }
            Ok(packets)
        }
        Engine::V3 => split_v3(text),
    }
}

/// Engine.IO 3's framing: `<length>:<packet>` repeated, the length in UTF-16 code units.
fn split_v3(text: &str) -> Result<Vec<&str>, TunnelError> {
    let mut packets = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if packets.len() == MAX_PACKETS {
            return Err(TunnelError::TooManyPackets);
        }
        let (length, after) = rest.split_once(':').ok_or(TunnelError::Framing)?;
        if length.is_empty() || length.len() > 7 || !length.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TunnelError::Framing);
        }
        let wanted: usize = length.parse().map_err(|_| TunnelError::Framing)?;
        let mut units = 0;
        let mut end = 0;
        for c in after.chars() {
            if units == wanted {
                break;
            }
            units += c.len_utf16();
            end += c.len_utf8();
        }
        if units != wanted || wanted == 0 {
            return Err(TunnelError::Framing);
        }
        packets.push(&after[..end]);
        rest = &after[end..];
    }
    Ok(packets)
}

/// What one Engine.IO packet is, as step 3 reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet<'a> {
    /// An Engine.IO control packet exactly as clients send them (close, ping, pong, upgrade,
    /// noop, the `probe`s), or a socket.io acknowledgement (`43`, an id, a JSON array):
    /// forwarded as it is.
    Other,
    /// A socket.io CONNECT or DISCONNECT: `head` is `40`/`41` and its namespace, forwarded
    /// without any payload (socket.io 3's `auth` could carry a credential).
    Connect { head: &'a str },
    /// A socket.io event: what comes before its JSON (types, namespace, ack id), its name
    /// and arguments.
    Event {
        head: &'a str,
        name: String,
        arguments: Vec<Value>,
    },
    /// Anything else: binary packets, binary events and acks, a packet whose framing or JSON
    /// does not read exactly, one of a framing the upstream could read another way.
    Unreadable,
}

/// Engine.IO control packets a client sends (engine.io-parser: 1 close, 2 ping, 3 pong,
/// 5 upgrade, 6 noop; the WebSocket upgrade's probes). Nothing else outside a message is
/// forwarded: a packet of another shape could be framing the upstream reads differently
/// (an Engine.IO 3 `<length>:` prefix inside an Engine.IO 4 body, a JSONP `d=`).
const CONTROL: [&str; 7] = ["1", "2", "3", "5", "6", "2probe", "3probe"];

/// A socket.io namespace as Nightscout's clients name them (`/alarm`, `/storage`).
fn is_namespace(text: &str) -> bool {
    text.strip_prefix('/').is_some_and(|name| {
        (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// Step 3.
pub fn read(packet: &str) -> Packet<'_> {
    let Some(message) = packet.strip_prefix('4') else {
        return if CONTROL.contains(&packet) {
            Packet::Other
        } else {
            Packet::Unreadable
        };
    };
    let mut chars = message.chars();
    let kind = chars.next();
    let mut rest = chars.as_str();
    // The namespace: `/name,` (or, on CONNECT and DISCONNECT, `/name` alone).
    if rest.starts_with('/') {
        let (name, after) = match rest.split_once(',') {
            Some((name, after)) => (name, after),
            None => (rest, ""),
        };
        if !is_namespace(name) {
            return Packet::Unreadable;
        }
        rest = after;
    }
    match kind {
        // CONNECT (with, from socket.io 3 on, an optional JSON object) and DISCONNECT.
        Some('0' | '1') => {
            let head = &packet[..packet.len() - rest.len()];
            let payload_ok = rest.is_empty()
                || (kind == Some('0')
                    && matches!(serde_json::from_str::<Value>(rest), Ok(Value::Object(_))));
            if payload_ok {
                Packet::Connect { head }
            } else {
                Packet::Unreadable
            }
        }
        // ACK from the client: an id, then a JSON array.
        Some('3') => {
            let json = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let has_id = json.len() < rest.len();
            if has_id && matches!(serde_json::from_str::<Value>(json), Ok(Value::Array(_))) {
                Packet::Other
            } else {
                Packet::Unreadable
            }
        }
        // EVENT: an optional ack id, then a JSON array led by the event's name.
        Some('2') => {
            rest = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            let head = &packet[..packet.len() - rest.len()];
            let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(rest) else {
                return Packet::Unreadable;
            };
            if !items.first().is_some_and(Value::is_string) {
                return Packet::Unreadable;
            }
            let Value::String(name) = items.remove(0) else {
                return Packet::Unreadable;
            };
            Packet::Event {
                head,
                name,
                arguments: items,
            }
        }
        // CONNECT_ERROR (a server's), BINARY_EVENT and BINARY_ACK (placeholders for
        // attachments the gateway does not read), anything else.
        _ => Packet::Unreadable,
    }
}

/// Steps 4 and 5 for one Engine.IO packet (over WebSocket, a message is one): what to
/// forward in its place, or `None` to drop it.
pub fn pass<'a>(
    packet: &'a str,
    holds: &impl Fn(&str) -> bool,
    secret: Option<&str>,
) -> Option<Cow<'a, str>> {
    let (head, name, mut arguments) = match read(packet) {
        Packet::Other => return Some(Cow::Borrowed(packet)),
        Packet::Connect { head } => return Some(Cow::Borrowed(head)),
        Packet::Unreadable => return None,
        Packet::Event {
            head,
            name,
            arguments,
        } => (head, name, arguments),
    };
    match requirement(&name, &arguments) {
        Requirement::None => {}
        Requirement::Scope(scope) if holds(scope) => {}
        Requirement::Scope(_) | Requirement::Never => return None,
    }
    // Step 5: an event that may carry a credential carries the site's own, or none.
    let carries = name == "authorize" || name == "subscribe" || name == "resubscribe";
    if !carries {
        return Some(Cow::Borrowed(packet));
    }
    // Its options are an object, or it is not forwarded (a credential could hide elsewhere).
    let Some(Value::Object(fields)) = arguments.first_mut() else {
        return None;
    };
    for credential in ["secret", "token", "accessToken", "jwtToken"] {
        fields.remove(credential);
    }
    // The site's secret reads everything: only for a subject that may read.
    if let Some(secret) = secret.filter(|_| holds(READ_SCOPE)) {
        fields.insert("secret".into(), Value::String(secret.to_string()));
    }
    let mut items = Vec::with_capacity(arguments.len() + 1);
    items.push(Value::String(name));
    items.extend(arguments);
    let json = serde_json::to_string(&items).ok()?;
    Some(Cow::Owned(format!("{head}{json}")))
}

#[cfg(test)]
mod tests;
