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

#[test]
fn a_traceparent_is_taken_only_when_well_formed() {
    use crate::headers::traceparent;
    assert!(traceparent(
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ));
    for bad in [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\" injected",
    ] {
        assert!(!traceparent(bad), "{bad:?}");
    }
}
