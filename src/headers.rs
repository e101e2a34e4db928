//! Header work on the hot path: hop-by-hop removal, reserved names, forwarding headers, request
//! ids, the WebSocket handshake. Pure functions over `HeaderMap`, benchmarked in
//! `benches/headers.rs`.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
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
pub static RESERVED_PREFIXES: [&str; 4] = ["x-user-", "x-tenant-", "x-auth-", "x-tollgate-"];

/// Headers that make an application act on another method or URL than the one judged (method
/// overrides, rewrite hints, the gateways' own hints). Never forwarded, whoever sent them.
pub static OVERRIDES: [&str; 9] = [
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
pub fn is_reserved(name: &HeaderName, allow_underscores: bool) -> bool {
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
pub fn websocket_handshake(method: &Method, version: Version, headers: &HeaderMap) -> bool {
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
pub fn is_websocket(value: &HeaderValue) -> bool {
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
pub fn restore_websocket(headers: &mut HeaderMap) {
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
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_and_connection_listed_headers_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("x-other", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("te", "gzip"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
    }

    #[test]
    fn reserved_headers_are_removed() {
        let mut h = map(&[
            ("x-tenant-id", "globex"),
            ("X-User-Roles", "super_admin"),
            ("x-user-email", "boss@example.com"),
            ("x-tenant-status", "active"),
            ("x-auth-request-user", "admin"),
            ("x-tollgate-decision", "allow"),
            ("x-tenant-limit-max-users", "9999"),
            ("x_user_id", "admin"),
            ("x-http-method-override", "DELETE"),
            ("x-original-url", "/admin"),
            ("x-api-key", "tgk_secret"),
            ("x-kept", "yes"),
        ]);
        strip_reserved(&mut h, &[HeaderName::from_static("x-api-key")], false);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-kept"]);
        let mut h = map(&[("x_app_trace", "1")]);
        strip_reserved(&mut h, &[], true);
        assert!(h.contains_key("x_app_trace"));
    }

    #[test]
    fn te_trailers_survives() {
        let mut h = map(&[("te", "trailers")]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.get("te").unwrap(), "trailers");
    }

    #[test]
    fn only_a_complete_websocket_handshake_is_one() {
        let good = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
        ];
        assert!(websocket_handshake(
            &Method::GET,
            Version::HTTP_11,
            &map(&good)
        ));
        assert!(!websocket_handshake(
            &Method::POST,
            Version::HTTP_11,
            &map(&good)
        ));
        assert!(!websocket_handshake(
            &Method::GET,
            Version::HTTP_10,
            &map(&good)
        ));
        for (i, replaced) in [
            ("connection", "keep-alive"),
            ("upgrade", "h2c"),
            ("sec-websocket-key", ""),
            ("sec-websocket-version", "8"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut pairs = good.to_vec();
            pairs[i] = replaced;
            let h = map(&pairs);
            assert!(upgrade_requested(&h) || i == 0);
            assert!(
                !websocket_handshake(&Method::GET, Version::HTTP_11, &h),
                "{replaced:?}"
            );
        }
        let mut twice = good.to_vec();
        twice.push(("upgrade", "h2c"));
        assert!(!websocket_handshake(
            &Method::GET,
            Version::HTTP_11,
            &map(&twice)
        ));
        assert!(!upgrade_requested(&map(&[("connection", "close")])));
    }

    #[test]
    fn untrusted_peer_cannot_spoof_forwarding_headers() {
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-prefix", "/admin"),
            ("x-forwarded-port", "443"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ]);
        let host = HeaderValue::from_static("example.com");
        let client = ClientSide {
            peer: "192.0.2.1".parse().unwrap(),
            peer_trusted: false,
            proto: "http",
            host: Some(&host),
        };
        set_forwarded(&mut h, &client);
        assert_eq!(h.get("x-forwarded-for").unwrap(), "192.0.2.1");
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "http");
        assert_eq!(h.get("x-forwarded-host").unwrap(), "example.com");
        assert!(h.get("forwarded").is_none() && h.get("x-real-ip").is_none());
        assert!(h.get("x-forwarded-prefix").is_none() && h.get("x-forwarded-port").is_none());
    }

    #[test]
    fn trusted_peer_chain_is_appended() {
        let mut h = map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "10.0.0.2"),
            ("x-forwarded-proto", "https"),
        ]);
        let client = ClientSide {
            peer: "10.0.0.3".parse().unwrap(),
            peer_trusted: true,
            proto: "http",
            host: None,
        };
        set_forwarded(&mut h, &client);
        assert_eq!(
            h.get("x-forwarded-for").unwrap(),
            "203.0.113.7, 10.0.0.2, 10.0.0.3"
        );
        assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
    }

    #[test]
    fn client_ip_believes_forwarded_for_only_through_trusted_proxies() {
        let h = map(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9, 10.0.0.2")]);
        let trusted = |ip: IpAddr| ip.to_string().starts_with("10.");
        let peer: IpAddr = "10.0.0.3".parse().unwrap();
        assert_eq!(client_ip(&h, peer, trusted).to_string(), "203.0.113.9");
        let untrusted: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_ip(&h, untrusted, trusted), untrusted);
        assert_eq!(client_ip(&HeaderMap::new(), peer, trusted), peer);
    }

    #[test]
    fn request_id_kept_from_a_trusted_proxy_when_sane_and_replaced_otherwise() {
        let h = map(&[("x-request-id", "abc-123")]);
        assert_eq!(request_id(&h, true), "abc-123");
        assert_eq!(request_id(&h, false).len(), 36);
        let h = map(&[("x-request-id", "bad id with spaces")]);
        assert_ne!(request_id(&h, true), "bad id with spaces");
        let long = "a".repeat(129);
        let h = map(&[("x-request-id", long.as_str())]);
        assert_eq!(request_id(&h, true).len(), 36);
        assert_eq!(request_id(&HeaderMap::new(), true).len(), 36);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Header names near the reserved ones: prefixes, cases, underscores, overrides.
    fn names() -> impl Strategy<Value = String> {
        let start = prop_oneof![
            Just("x-user-"),
            Just("X-User-"),
            Just("x-tenant-"),
            Just("X-TENANT-"),
            Just("x-auth-"),
            Just("x-tollgate-"),
            Just("x_user_"),
            Just("x-forwarded-"),
            Just("X-Forwarded-"),
            Just("x-http-method-"),
            Just("x-original-"),
            Just("x-app-"),
            Just(""),
        ];
        (start, "[a-z_]{0,8}").prop_map(|(a, b)| format!("{a}{b}"))
    }

    proptest! {
        /// Whatever an untrusted client names its headers, none that only Tollgate may set
        /// survives, and the forwarding headers are exactly Tollgate's.
        #[test]
        fn no_reserved_header_survives(sent in prop::collection::vec(names(), 0..16)) {
            let mut h = HeaderMap::new();
            for name in &sent {
                if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                    h.append(name, HeaderValue::from_static("forged"));
                }
            }
            strip_hop_by_hop(&mut h);
            strip_reserved(&mut h, &[], false);
            let client = ClientSide {
                peer: [192, 0, 2, 1].into(),
                peer_trusted: false,
                proto: "http",
                host: None,
            };
            set_forwarded(&mut h, &client);
            for name in h.keys() {
                prop_assert!(!is_reserved(name, false), "{name} survived");
                prop_assert!(!name.as_str().contains('_'));
                if name.as_str().starts_with("x-forwarded-") {
                    prop_assert!(["x-forwarded-for", "x-forwarded-proto"].contains(&name.as_str()));
                    prop_assert_ne!(h.get(name).map(HeaderValue::as_bytes), Some(&b"forged"[..]));
                }
            }
        }
    }
}
