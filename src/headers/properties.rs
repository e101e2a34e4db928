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
