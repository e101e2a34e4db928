use super::*;

fn canon(path: &str) -> Result<String, Problem> {
    canonical_path(path)
        .map(|c| c.into_owned())
        .map_err(|r| r.problem)
}

#[test]
fn canonical_paths_are_borrowed_unchanged() {
    assert!(matches!(
        canonical_path("/api/v1/agents/7"),
        Ok(Cow::Borrowed(_))
    ));
    assert!(matches!(canonical_path("/"), Ok(Cow::Borrowed(_))));
}

#[test]
fn dot_segments_and_duplicate_slashes_resolve() {
    assert_eq!(canon("/public/../admin").unwrap(), "/admin");
    assert_eq!(canon("//admin").unwrap(), "/admin");
    assert_eq!(canon("/admin/.").unwrap(), "/admin/");
    assert_eq!(canon("/a/./b//c/").unwrap(), "/a/b/c/");
    assert_eq!(canon("/a/b/..").unwrap(), "/a/");
    assert_eq!(canon("/.").unwrap(), "/");
}

#[test]
fn encoded_dots_are_dot_segments() {
    assert_eq!(canon("/public/%2e%2e/admin").unwrap(), "/admin");
    assert_eq!(canon("/public/%2E./admin").unwrap(), "/admin");
}

#[test]
fn unreserved_escapes_decode_and_others_uppercase() {
    assert_eq!(canon("/%61pi/x%20y%3a").unwrap(), "/api/x%20y%3A");
}

#[test]
fn ambiguous_paths_are_refused() {
    for path in [
        "/a%2Fb",
        "/a%2fb",
        "/a%5Cb",
        "/a\\b",
        "/a%00b",
        "/..",
        "/a/../..",
        "/%2e%2e/x",
        "/..;/admin",
        "/public/.;x/admin",
        "/bad%zz",
        "/bad%4",
    ] {
        assert_eq!(canon(path), Err(Problem::AmbiguousPath), "{path}");
    }
}

#[test]
fn semicolon_parameters_on_ordinary_segments_pass() {
    assert_eq!(canon("/a;v=1/b").unwrap(), "/a;v=1/b");
}

#[test]
fn query_is_kept_verbatim() {
    let uri: Uri = "/a/../b?x=%2F&y=..".parse().unwrap();
    let t = target(&uri, &HeaderMap::new(), false).unwrap();
    assert_eq!(t.path_and_query.as_str(), "/b?x=%2F&y=..");
}

#[test]
fn host_must_agree_with_authority() {
    let uri: Uri = "http://a.example/x".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("b.example"));
    assert_eq!(
        target(&uri, &headers, true).unwrap_err().problem,
        Problem::MalformedRequest
    );
    headers.insert("host", HeaderValue::from_static("A.example"));
    assert_eq!(
        target(&uri, &headers, true).unwrap().host.unwrap(),
        "a.example"
    );
}

#[test]
fn only_a_valid_host_and_port_is_a_host() {
    let uri: Uri = "/x".parse().unwrap();
    for good in [
        "acme.localhost",
        "acme.localhost:8080",
        "127.0.0.1:1",
        "[::1]:8443",
        "[::1]",
        "under_score.example",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static(good));
        assert!(target(&uri, &headers, true).is_ok(), "{good}");
    }
    for bad in [
        &b"acme.localhost, globex.localhost"[..],
        b"acme.localhost:abc",
        b"acme.localhost\xff",
        b"acme.localhost:",
        b"acme.localhost:65536",
        b"acme.localhost:080800",
        b"user@acme.localhost",
        b"acme localhost",
        b"",
        b":80",
        b"[::1",
        b"[zz]:80",
        b"[::1]x",
        b"acme.localhost/x",
    ] {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_bytes(bad).unwrap());
        assert_eq!(
            target(&uri, &headers, true).unwrap_err().problem,
            Problem::MalformedRequest,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    assert!(target(&uri, &HeaderMap::new(), true).is_err());
    assert!(target(&uri, &HeaderMap::new(), false).is_ok());
}
