//! Attacks through credentials and the admin listener, in proxy mode, against an upstream that
//! records the exact bytes it got: repeated credentials, API keys, claims that would change a
//! trusted header, issuers acting outside their tenants, and `/usage` without its token.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::bypass::{ACME, has_header, stack, stack_with};
use crate::support::fixture::{self, Keys, bearer, claims, sign};
use crate::support::recorder::{Answer, Recorder};
use crate::support::{Tollgate, eventually, get, raw};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_credentials_and_tenant_headers_are_refused() {
    let s = stack(Answer::Ok, "").await;
    let alice = s.token("alice", "acme", &["viewer"]);
    let forged = "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJyb290Iiwicm9sZXMiOlsic3VwZXJfYWRtaW4iXX0.";
    for (a, b) in [
        (("authorization", alice.as_str()), ("authorization", forged)),
        (("x-api-key", "tgk_one"), ("x-api-key", "tgk_two")),
    ] {
        get(s.tollgate.addr, "/api/v1/agents/7", &[ACME, a, b])
            .await
            .assert_problem(400, "malformed-request");
    }
    assert!(s.recorder.requests().is_empty());
    s.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_never_reaches_the_upstream_and_a_token_does_unless_configured() {
    let s = stack(Answer::Ok, "").await;
    let key = crate::support::tollgate::create_key(&s.tollgate, "acme", "viewer");
    let addr = s.tollgate.addr;
    let as_bearer = format!("Bearer {key}");
    eventually("the new key is accepted", async || {
        get(addr, "/api/v1/agents/7", &[ACME, ("x-api-key", &key)])
            .await
            .status
            == 200
    })
    .await;
    for sent in [("authorization", as_bearer.as_str()), ("x-api-key", &key)] {
        let reply = get(addr, "/api/v1/agents/7", &[ACME, sent]).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let seen = s.recorder.last();
        assert!(!seen.contains(&key.to_ascii_lowercase()), "{seen}");
        assert!(!has_header(&seen, "authorization") && !has_header(&seen, "x-api-key"));
    }
    let alice = s.token("alice", "acme", &["viewer"]);
    let reply = get(addr, "/api/v1/agents/7", &[ACME, ("authorization", &alice)]).await;
    assert_eq!(reply.status, 200);
    assert!(
        s.recorder.last().contains(&alice.to_ascii_lowercase()),
        "a verified token is forwarded by default"
    );

    let s = stack_with(Answer::Ok, |options| {
        options.set("identity.forward_token", false);
    })
    .await;
    let alice = s.token("alice", "acme", &["viewer"]);
    let reply = get(
        s.tollgate.addr,
        "/api/v1/agents/7",
        &[ACME, ("authorization", &alice)],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(!has_header(&s.recorder.last(), "authorization"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_that_would_add_a_list_element_or_vanish_are_refused() {
    let s = stack(Answer::Ok, "").await;
    let mut cases = vec![
        claims("alice", "acme", &["viewer", "x,tenant_admin"]),
        claims("alice", "acme", &["viewer admin"]),
        claims("al\u{1}ice", "acme", &["viewer"]),
        claims("alice\r\nx-user-roles: tenant_admin", "acme", &["viewer"]),
    ];
    let mut scopes = claims("alice", "acme", &["viewer"]);
    scopes["scope"] = serde_json::json!(["read,write"]);
    cases.push(scopes);
    let mut odd = claims("alice", "acme", &["viewer"]);
    odd["roles"] = serde_json::json!(["viewer", 7]);
    cases.push(odd);
    for body in cases {
        let token = bearer(&sign(&s.keys, Algorithm::HS256, "hs", &body));
        get(
            s.tollgate.addr,
            "/api/v1/agents/7",
            &[ACME, ("authorization", &token)],
        )
        .await
        .assert_problem(401, "invalid-credentials");
    }
    assert!(s.recorder.requests().is_empty());
    s.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuers_are_bound_to_their_tenants_and_only_some_may_grant_operator_roles() {
    const OTHER_SECRET: &str = "another-hmac-secret-of-at-least-32-bytes";
    let partner_issuer = serde_json::json!({
        "issuer": "https://partner.test",
        "audiences": [fixture::AUDIENCE],
        "tenants": ["globex"],
        "keys": [{ "kid": "partner", "alg": "HS256", "secret": OTHER_SECRET }],
    });
    let keys = Keys::generate();
    let recorder = Recorder::start(Answer::Ok).await;
    // After the fixture's own issuer (identity.jwt.0).
    let options = fixture::full_stack(&keys, "").with("identity.jwt.1", partner_issuer);
    let tollgate = Tollgate::start(recorder.addr, options);
    let partner = |sub: &str, tenant: &str, roles: &[&str]| {
        let mut body = claims(sub, tenant, roles);
        body["iss"] = "https://partner.test".into();
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some("partner".into());
        let key = jsonwebtoken::EncodingKey::from_secret(OTHER_SECRET.as_bytes());
        bearer(&jsonwebtoken::encode(&header, &body, &key).unwrap())
    };
    // Its own tenant: fine.
    let carol = partner("carol", "globex", &["user"]);
    let globex = [
        ("host", "globex.app.test"),
        ("authorization", carol.as_str()),
    ];
    assert_eq!(
        get(tollgate.addr, "/api/v1/agents", &globex).await.status,
        200
    );
    // A tenant outside its list, by claim and by host.
    let mallory = partner("mallory", "acme", &["tenant_admin"]);
    get(
        tollgate.addr,
        "/api/v1/agents",
        &[ACME, ("authorization", &mallory)],
    )
    .await
    .assert_problem(403, "tenant-mismatch");
    // An operator role it may not grant.
    let root = partner("root", "globex", &["super_admin"]);
    get(
        tollgate.addr,
        "/api/v1/agents",
        &[ACME, ("authorization", &root)],
    )
    .await
    .assert_problem(401, "invalid-credentials");
    assert_eq!(recorder.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_keeps_usage_behind_its_token_and_probes_open() {
    let s = stack(Answer::Ok, "").await;
    let admin = s.tollgate.admin;
    let ask = |auth: &str| {
        let request =
            format!("GET /usage HTTP/1.1\r\nHost: admin\r\n{auth}Connection: close\r\n\r\n");
        async move {
            raw(admin, request.as_bytes(), Duration::from_secs(2))
                .await
                .text
        }
    };
    assert!(ask("").await.starts_with("HTTP/1.1 401"));
    assert!(
        ask("Authorization: Bearer wrong-token-of-some-length\r\n")
            .await
            .starts_with("HTTP/1.1 401")
    );
    let token = format!(
        "Authorization: Bearer {}\r\n",
        crate::support::tollgate::ADMIN_TOKEN
    );
    let allowed = ask(&token).await;
    assert!(
        allowed.starts_with("HTTP/1.1 200") && allowed.contains("acme"),
        "{allowed}"
    );
    for probe in ["/healthz", "/readyz", "/metrics"] {
        let answer = raw(
            admin,
            format!("GET {probe} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(2),
        )
        .await
        .text;
        assert!(answer.starts_with("HTTP/1.1 200"), "{probe}: {answer}");
    }
}
