use proptest::prelude::*;

use super::*;

/// Request targets built from the pieces path tricks are made of.
fn targets() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_string()),
        Just("//".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just("%2f".to_string()),
        Just("%5C".to_string()),
        Just("\\".to_string()),
        Just(";".to_string()),
        Just(";x=1".to_string()),
        Just("%00".to_string()),
        Just("%41".to_string()),
        Just("%zz".to_string()),
        Just("%".to_string()),
        Just("admin".to_string()),
        Just("public".to_string()),
        Just("?q=..%2F".to_string()),
        "[a-z0-9~_-]{1,4}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| format!("/{}", pieces.concat()))
}

proptest! {
    /// Whatever the client sends, the path Tollgate judges (and forwards) is canonical: normalizing
    /// it again changes nothing, so no server behind can read it as another path.
    #[test]
    fn the_judged_path_is_a_fixed_point(target in targets()) {
        let Ok(uri) = target.parse::<Uri>() else { return Ok(()) };
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("acme.example"));
        if let Ok(judged) = super::target(&uri, &headers, true) {
            let path = judged.path_and_query.path();
            let again = canonical_path(path).map(|p| p.into_owned()).ok();
            prop_assert_eq!(again.as_deref(), Some(path));
            prop_assert!(!path.contains("//") && !path.contains("/./") && !path.contains("/../"));
            prop_assert!(!path.ends_with("/..") && !path.ends_with("/."));
            prop_assert!(!path.contains('\\') && !path.bytes().any(|b| b.is_ascii_control()));
            let lower = path.to_ascii_lowercase();
            prop_assert!(!lower.contains("%2f") && !lower.contains("%5c") && !lower.contains("%2e"));
            prop_assert_eq!(judged.path_and_query.query(), uri.query());
        }
    }

    /// A Host is accepted only as one `host[:port]`: never a list, user info, a path or a
    /// byte outside ASCII, so no two servers can read a different host from it.
    #[test]
    fn an_accepted_host_is_one_authority(host in prop::collection::vec(any::<u8>(), 0..24)) {
        let Ok(value) = HeaderValue::from_bytes(&host) else { return Ok(()) };
        let mut headers = HeaderMap::new();
        headers.insert("host", value);
        let uri: Uri = "/".parse().unwrap();
        if super::target(&uri, &headers, true).is_ok() {
            prop_assert!(host.iter().all(|b| b.is_ascii_graphic()));
            for forbidden in [b',', b'@', b'/', b'?', b'#', b' ', b'%', b'\\'] {
                prop_assert!(!host.contains(&forbidden));
            }
            prop_assert!(host.iter().filter(|&&b| b == b':').count() <= 1 || host.first() == Some(&b'['));
        }
    }
}
