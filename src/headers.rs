//! Header work on the hot path: hop-by-hop removal, reserved names, forwarding headers, request
//! ids, the WebSocket handshake. Pure functions over `HeaderMap`, benchmarked in
//! `benches/headers.rs`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
static SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");

/// Headers that describe one hop and never travel past a proxy (RFC 9110 §7.6.1), besides any
/// header named in `Connection`. `Trailer` is end-to-end (RFC 9110 §6.6.2) and must stay: hyper
/// only emits the trailer fields it declares.
static HOP_BY_HOP: [&HeaderName; 7] = [
    &header::CONNECTION,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &header::PROXY_AUTHENTICATE,
    &header::PROXY_AUTHORIZATION,
    &header::TRANSFER_ENCODING,
    &header::UPGRADE,
];

/// Removes hop-by-hop headers and every header listed in `Connection`. `TE` is removed unless it
/// is exactly `trailers`, which a proxy forwards so that trailers can flow back (as Envoy does).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of these: one pass over the names (standard names compare as
    // enums) spares a hashed removal per hop-by-hop name.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(&name) || name == header::TE)
    {
        return;
    }
    // Names listed in Connection are collected first: removing them while iterating is not
    // possible. The usual tokens (`keep-alive`, `close`, `upgrade`) name no header to remove
    // beyond the fixed list, so the common case allocates nothing.
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|token| {
            !["keep-alive", "close", "upgrade"]
                .iter()
                .any(|usual| token.eq_ignore_ascii_case(usual))
        })
        .filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok())
        .collect();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    let te_is_trailers = {
        let mut values = headers.get_all(header::TE).iter();
        matches!((values.next(), values.next()), (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(b"trailers"))
    };
    if !te_is_trailers {
        headers.remove(header::TE);
    }
}

/// Header-name prefixes only Tollgate sets: identity (`X-User-*`, `X-Auth-*`), the tenant
/// (`X-Tenant-*`, including its limits) and Tollgate's own (`X-Tollgate-*`). Whatever a client
/// sends under them never reaches the upstream.
pub(crate) static RESERVED_PREFIXES: [&str; 4] = ["x-user-", "x-tenant-", "x-auth-", "x-tollgate-"];

/// Headers that make an application act on another method or URL than the one judged (method
/// overrides, rewrite hints, the gateways' own hints). Never forwarded, whoever sent them.
pub(crate) static OVERRIDES: [&str; 9] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-original-uri",
    "x-original-method",
    "x-rewrite-url",
    "x-forwarded-uri",
    "x-forwarded-method",
];

/// Whether a client may never send `name` to the upstream: a reserved prefix, an override, or
/// (unless allowed) a name with `_`, which CGI-style servers read as the name with `-`
/// (`X_User_Id` as `X-User-Id`).
pub(crate) fn is_reserved(name: &HeaderName, allow_underscores: bool) -> bool {
    let name = name.as_str();
    RESERVED_PREFIXES
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || OVERRIDES.contains(&name)
        || (!allow_underscores && name.contains('_'))
}

/// Removes every reserved header (see [`is_reserved`]) and the names in `extra`.
pub fn strip_reserved(headers: &mut HeaderMap, extra: &[HeaderName], allow_underscores: bool) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_reserved(name, allow_underscores))
        .cloned()
        .collect();
    for name in doomed.iter().chain(extra) {
        headers.remove(name);
    }
}

/// Whether a request asks to switch protocols at all (an `Upgrade` header, or `Connection`
/// naming `upgrade`).
pub fn upgrade_requested(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) || lists(headers, &header::CONNECTION, "upgrade")
}

/// Whether a request is a valid WebSocket opening handshake (RFC 6455 §4.1): `GET` over
/// HTTP/1.1, `Connection` naming `upgrade`, exactly one `Upgrade: websocket`, one
/// `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13`. Nothing else may be tunnelled.
pub(crate) fn websocket_handshake(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    let one = |name: &HeaderName| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    };
    method == Method::GET
        && version == Version::HTTP_11
        && lists(headers, &header::CONNECTION, "upgrade")
        && one(&header::UPGRADE).is_some_and(is_websocket)
        && one(&SEC_WEBSOCKET_KEY).is_some_and(|k| !k.is_empty())
        && one(&SEC_WEBSOCKET_VERSION).is_some_and(|v| v.as_bytes() == b"13")
}

/// Whether an `Upgrade` value is exactly the WebSocket token.
pub(crate) fn is_websocket(value: &HeaderValue) -> bool {
    value.as_bytes().eq_ignore_ascii_case(b"websocket")
}

/// Whether a comma-separated header lists `token` (case-insensitive).
fn lists(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Puts back the two headers a WebSocket upgrade needs after `strip_hop_by_hop` removed them.
pub(crate) fn restore_websocket(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// What the proxy knows about the client side of a request, for the forwarding headers.
pub struct ClientSide<'a> {
    pub peer: IpAddr,
    /// Whether `peer` is one of `forwarding.trusted_proxies`.
    pub peer_trusted: bool,
    pub proto: &'static str,
    pub host: Option<&'a HeaderValue>,
}

/// Sets `X-Forwarded-For/-Proto/-Host`. Values sent by a trusted proxy are kept and the peer is
/// appended to `X-Forwarded-For`; from anyone else every `X-Forwarded-*` header (`-Prefix`,
/// `-Port`, `-Ssl`, `-Server`…), `Forwarded` and `X-Real-IP` are discarded, because the client
/// could have written anything there, and the three are set from what Tollgate saw.
pub fn set_forwarded(headers: &mut HeaderMap, client: &ClientSide<'_>) {
    let peer = client.peer.to_string();
    if client.peer_trusted {
        let prior: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let chain = if prior.is_empty() {
            peer
        } else {
            format!("{}, {peer}", prior.join(", "))
        };
        set(headers, &X_FORWARDED_FOR, &chain);
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
        }
        if !headers.contains_key(&X_FORWARDED_HOST)
            && let Some(host) = client.host
        {
            headers.insert(&X_FORWARDED_HOST, host.clone());
        }
    } else {
        let doomed: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("x-forwarded-"))
            .cloned()
            .collect();
        for name in doomed {
            headers.remove(name);
        }
        headers.remove(header::FORWARDED);
        headers.remove(&X_REAL_IP);
        set(headers, &X_FORWARDED_FOR, &peer);
        headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
        match client.host {
            Some(host) => headers.insert(&X_FORWARDED_HOST, host.clone()),
            None => headers.remove(&X_FORWARDED_HOST),
        };
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the rightmost address in
/// `X-Forwarded-For` that is not itself a trusted proxy (the leftmost entries are the client's to
/// invent).
pub fn client_ip(headers: &HeaderMap, peer: IpAddr, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let chain: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for entry in chain.iter().rev() {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip.to_canonical();
                if !trusted(client) {
                    break;
                }
            }
            // An entry that is not an address ends what can be believed.
            Err(_) => break,
        }
    }
    client
}

/// Whether `value` is a W3C trace context `traceparent`: version, trace id, parent id and flags
/// in lower-case hex (`00-<32>-<16>-<2>`), the ids not all zeros.
pub fn traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts[..], [version, trace, parent, flags]
        if hex(version, 2) && version != "ff" && hex(trace, 32) && nonzero(trace)
            && hex(parent, 16) && nonzero(parent) && hex(flags, 2))
}

fn set(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    // An IP address list is always a valid header value; the fallback is unreachable in practice.
    let value = HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("unknown"));
    headers.insert(name, value);
}

/// The inbound `X-Request-Id` if a trusted proxy sent it and it is sane (1–128 visible ASCII
/// characters of a safe set), otherwise a fresh UUIDv7, which sorts by time in logs. A client's
/// own id is never taken: one id could then name two requests' records.
pub fn request_id(headers: &HeaderMap, trusted: bool) -> HeaderValue {
    if let Some(value) = headers.get(&X_REQUEST_ID).filter(|_| trusted) {
        let bytes = value.as_bytes();
        let sane = (1..=128).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:+=/".contains(b));
        if sane {
            return value.clone();
        }
    }
    let mut buf = uuid::Uuid::encode_buffer();
    let id = uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod properties;
