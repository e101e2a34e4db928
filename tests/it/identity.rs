//! Identity: JWT verification refuses every forgery; API keys are created, used, expire and are
//! revoked; JWKS keys rotate.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::support::config::Document;
use crate::support::fixture::{self, Keys, bearer, claims, now, sign, sign_es256};
use crate::support::tollgate::cli;
use crate::support::{Tollgate, Upstream, eventually, get};

const HOST: (&str, &str) = ("host", "acme.app.test");

async fn start(anonymous: bool, providers: &[Value]) -> (Upstream, Tollgate, Keys) {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let options = fixture::options(&keys, anonymous, &["subdomain", "claim"], providers);
    let tollgate = Tollgate::start(upstream.addr, options);
    (upstream, tollgate, keys)
}

async fn status_with(tollgate: &Tollgate, authorization: &str) -> crate::support::client::Reply {
    get(
        tollgate.addr,
        "/x",
        &[HOST, ("authorization", authorization)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_every_supported_algorithm_are_accepted() {
    let (_upstream, tollgate, keys) = start(false, &[]).await;
    for (alg, kid) in [
        (Algorithm::HS256, "hs"),
        (Algorithm::RS256, "rs"),
        (Algorithm::ES256, "es"),
        (Algorithm::EdDSA, "ed"),
    ] {
        let mut body = claims("alice", "acme", &["viewer", "analyst"]);
        body["scope"] = json!("agents:read agents:write");
        body["mfa"] = json!(true);
        let reply = status_with(&tollgate, &bearer(&sign(&keys, alg, kid, &body))).await;
        assert_eq!(reply.status, 200, "{alg:?}: {:?}", reply.body);
        assert_eq!(reply.upstream_header("x-user-id").as_deref(), Some("alice"));
        assert_eq!(
            reply.upstream_header("x-user-roles").as_deref(),
            Some("viewer,analyst")
        );
        assert_eq!(
            reply.upstream_header("x-user-scopes").as_deref(),
            Some("agents:read agents:write")
        );
        assert_eq!(reply.upstream_header("x-user-mfa").as_deref(), Some("true"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_misdirected_tokens_are_refused_with_401() {
    let (upstream, tollgate, keys) = start(false, &[]).await;
    let valid = claims("alice", "acme", &["viewer"]);
    let with = |key: &str, value: serde_json::Value| {
        let mut c = valid.clone();
        c[key] = value;
        c
    };
    let other_keys = Keys::generate();
    let payload = URL_SAFE_NO_PAD.encode(valid.to_string());
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            sign(
                &keys,
                Algorithm::ES256,
                "es",
                &with("exp", json!(now() - 3600)),
            ),
        ),
        (
            "not yet valid",
            sign(
                &keys,
                Algorithm::ES256,
                "es",
                &with("nbf", json!(now() + 3600)),
            ),
        ),
        (
            "nbf as a string",
            sign(
                &keys,
                Algorithm::ES256,
                "es",
                &with("nbf", json!("99999999999")),
            ),
        ),
        (
            "wrong audience",
            sign(
                &keys,
                Algorithm::ES256,
                "es",
                &with("aud", json!("someone-else")),
            ),
        ),
        (
            "wrong issuer",
            sign(
                &keys,
                Algorithm::ES256,
                "es",
                &with("iss", json!("https://evil.test")),
            ),
        ),
        (
            "forged signature",
            sign(&other_keys, Algorithm::ES256, "es", &valid),
        ),
        (
            "forged RSA signature",
            sign(&other_keys, Algorithm::RS256, "rs", &valid),
        ),
        (
            "alg none",
            format!(
                "{}.{payload}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"rs"}"#)
            ),
        ),
        (
            "alg none, no signature dot",
            format!("{}.{payload}", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#)),
        ),
        ("unknown kid", sign(&keys, Algorithm::ES256, "nope", &valid)),
        ("no exp", {
            let mut c = valid.clone();
            c.as_object_mut().unwrap().remove("exp");
            sign(&keys, Algorithm::ES256, "es", &c)
        }),
        ("no subject", {
            let mut c = valid.clone();
            c.as_object_mut().unwrap().remove("sub");
            sign(&keys, Algorithm::ES256, "es", &c)
        }),
        ("garbage", "not.a.token".to_string()),
    ];
    for (case, token) in cases {
        let reply = status_with(&tollgate, &bearer(&token)).await;
        reply.assert_problem(401, "invalid-credentials");
        let challenge = reply.headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{case}: {challenge}"
        );
    }
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hmac_token_keyed_with_the_rsa_public_key_is_refused() {
    let (_upstream, tollgate, keys) = start(false, &[]).await;
    let public_pem = keys.rsa.public_key_pem();
    let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
    header.kid = Some("rs".to_string());
    let confused = jsonwebtoken::encode(
        &header,
        &claims("mallory", "acme", &["super_admin"]),
        &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    status_with(&tollgate, &bearer(&confused))
        .await
        .assert_problem(401, "invalid-credentials");
    // Without a kid the RSA key is still never used as an HMAC secret.
    let no_kid = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims("mallory", "acme", &["super_admin"]),
        &jsonwebtoken::EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();
    status_with(&tollgate, &bearer(&no_kid))
        .await
        .assert_problem(401, "invalid-credentials");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_401_unless_anonymous_callers_are_allowed() {
    let (_upstream, strict, _keys) = start(false, &[]).await;
    let reply = get(strict.addr, "/x", &[HOST]).await;
    reply.assert_problem(401, "unauthenticated");
    assert_eq!(
        reply.headers["www-authenticate"],
        "Bearer realm=\"tollgate\""
    );
    status_with(&strict, "Basic YWxpY2U6c2VjcmV0")
        .await
        .assert_problem(401, "invalid-credentials");

    let (_upstream, open, _keys) = start(true, &[]).await;
    let reply = get(open.addr, "/x", &[HOST]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.upstream_header("x-auth-method").as_deref(),
        Some("anonymous")
    );
}

fn keys_create(tollgate: &Tollgate, tenant: &str, extra: &[&str]) -> (bool, String, String) {
    let run = crate::support::tollgate::keys_create(tollgate, tenant, extra);
    (run.ok, run.stdout, run.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_are_created_used_expired_and_revoked_by_editing_the_file() {
    let (_upstream, tollgate, _keys) = start(false, &[]).await;
    let (ok, key, stderr) = keys_create(
        &tollgate,
        "acme",
        &[
            "--role",
            "developer",
            "--scope",
            "agents:read",
            "--name",
            "ci",
        ],
    );
    assert!(ok, "{stderr}");
    assert!(key.starts_with("tgk_acme_"), "{key}");
    let stored = std::fs::read_to_string(tollgate.path("api-keys.yaml")).unwrap();
    assert!(!stored.contains(&key), "the key itself must not be stored");

    let addr = tollgate.addr;
    let key_header = key.clone();
    eventually("the new key is accepted", async || {
        get(addr, "/x", &[HOST, ("x-api-key", &key_header)])
            .await
            .status
            == 200
    })
    .await;
    let reply = get(addr, "/x", &[HOST, ("x-api-key", &key)]).await;
    assert_eq!(
        reply.upstream_header("x-auth-method").as_deref(),
        Some("api_key")
    );
    assert_eq!(reply.upstream_header("x-user-id").as_deref(), Some("ci"));
    assert_eq!(
        reply.upstream_header("x-user-roles").as_deref(),
        Some("developer")
    );
    assert_eq!(reply.upstream_header("x-api-key"), None);
    let as_bearer = bearer(&key);
    assert_eq!(
        status_with(&tollgate, &as_bearer).await.status,
        200,
        "a key also works as a bearer token"
    );

    // A key of acme on globex.
    get(
        addr,
        "/x",
        &[("host", "globex.app.test"), ("x-api-key", &key)],
    )
    .await
    .assert_problem(403, "tenant-mismatch");
    // Unknown keys, and a key for an unknown tenant.
    get(addr, "/x", &[HOST, ("x-api-key", "tgk_acme_0000")])
        .await
        .assert_problem(401, "invalid-credentials");
    assert!(!keys_create(&tollgate, "nobody", &[]).0);

    // An expired key (written the way an operator would, with a past expiry).
    let (expired_key, hash) = tollgate::identity::apikeys::generate("acme").unwrap();
    let entry = format!(
        "  - {{ id: old, tenant: acme, sha256: {hash}, expires_at: 2020-01-01T00:00:00Z }}\n"
    );
    let mut text = std::fs::read_to_string(tollgate.path("api-keys.yaml")).unwrap();
    text.push_str(&entry);
    std::fs::write(tollgate.path("api-keys.yaml"), &text).unwrap();
    eventually("the expired key is refused as expired", async || {
        let reply = get(addr, "/x", &[HOST, ("x-api-key", &expired_key)]).await;
        reply.status == 401 && String::from_utf8_lossy(&reply.body).contains("expired")
    })
    .await;

    // Revocation: delete the entry (only the expired one stays).
    std::fs::write(tollgate.path("api-keys.yaml"), format!("keys:\n{entry}")).unwrap();
    eventually("the revoked key is refused", async || {
        get(addr, "/x", &[HOST, ("x-api-key", &key)]).await.status == 401
    })
    .await;
}

/// Serves a JWKS whose contents the test changes.
async fn jwks_server(jwks: Arc<Mutex<String>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let jwks = jwks.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req| {
                    let body = jwks.lock().unwrap().clone();
                    async move { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn ec_jwk(kid: &str, key: &rcgen::KeyPair) -> serde_json::Value {
    let point = key.public_key_raw();
    json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_rotate_without_a_restart() {
    let first = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let second = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let jwks = Arc::new(Mutex::new(
        json!({ "keys": [ec_jwk("k1", &first)] }).to_string(),
    ));
    let jwks_addr = jwks_server(jwks.clone()).await;
    let provider = json!({
        "issuer": "https://idp.test",
        "audiences": [fixture::AUDIENCE],
        "jwks_url": format!("http://{jwks_addr}/jwks.json"),
        "jwks_refresh": "1s",
    });
    let (_upstream, tollgate, _keys) = start(false, &[provider]).await;
    let token = |sub: &str, kid: &str, key: &rcgen::KeyPair| {
        let mut body = claims(sub, "acme", &["user"]);
        body["iss"] = json!("https://idp.test");
        bearer(&sign_es256(key, kid, &body))
    };
    let old = token("dana", "k1", &first);
    let new = token("dana", "k2", &second);
    assert_eq!(status_with(&tollgate, &old).await.status, 200);
    status_with(&tollgate, &new)
        .await
        .assert_problem(401, "invalid-credentials");

    *jwks.lock().unwrap() = json!({ "keys": [ec_jwk("k2", &second)] }).to_string();
    let addr = tollgate.addr;
    eventually("the rotated-in key is accepted", async || {
        get(addr, "/x", &[HOST, ("authorization", &new)])
            .await
            .status
            == 200
    })
    .await;
    // Verified tokens are cached for their lifetime; a new token of the retired key is refused.
    let retired = token("erin", "k1", &first);
    eventually("the retired key is refused", async || {
        get(addr, "/x", &[HOST, ("authorization", &retired)])
            .await
            .status
            == 401
    })
    .await;
}

fn token_command(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["token", "--config", config.to_str().unwrap()];
    all.extend(args);
    let run = cli(&all, &[]);
    (run.ok, run.stdout, run.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_command_mints_tokens_the_proxy_accepts_and_needs_a_signing_key() {
    let (_upstream, tollgate, _keys) = start(false, &[]).await;
    let config = tollgate.path("tollgate.yaml");
    let (ok, token, stderr) = token_command(
        &config,
        &[
            "--tenant",
            "acme",
            "--sub",
            "bob",
            "--roles",
            "tenant_admin,analyst",
            "--mfa",
            "--ttl",
            "10m",
        ],
    );
    assert!(ok, "{stderr}");
    let reply = status_with(&tollgate, &bearer(&token)).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.upstream_header("x-user-id").as_deref(), Some("bob"));
    assert_eq!(
        reply.upstream_header("x-user-roles").as_deref(),
        Some("tenant_admin,analyst")
    );
    assert_eq!(reply.upstream_header("x-user-mfa").as_deref(), Some("true"));

    let (ok, _, stderr) = token_command(&config, &["--tenant", "nobody", "--sub", "x"]);
    assert!(!ok && stderr.contains("unknown tenant"), "{stderr}");

    // Only public keys: nothing to sign with.
    let mut doc = Document::read(&config);
    let keys = doc.get("identity.jwt.0.keys").unwrap().as_array().unwrap();
    let public: Vec<Value> = keys.iter().filter(|k| k["kid"] != "hs").cloned().collect();
    doc.set("identity.jwt.0.keys", public);
    doc.write(&tollgate.path("verify-only.yaml"));
    let (ok, _, stderr) = token_command(
        &tollgate.path("verify-only.yaml"),
        &["--tenant", "acme", "--sub", "x"],
    );
    assert!(
        !ok && stderr.contains("no JWT key that can sign"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwks_file_provider_with_nested_claims_maps_roles_tenant_and_mfa() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let provider = json!({
        "issuer": "https://keycloak.test/realms/acme",
        "jwks_file": "keys/jwks.json",
        "claims": {
            "subject": "preferred_username",
            "tenant": "org.id",
            "roles": "realm_access.roles",
            "scopes": "scp",
            "mfa": "amr",
        },
    });
    let mut options = fixture::options(&keys, false, &["subdomain", "claim"], &[provider]);
    options.files.push((
        "keys/jwks.json".to_string(),
        json!({ "keys": [ec_jwk("kc", &key)] }).to_string(),
    ));
    let tollgate = Tollgate::start(upstream.addr, options);

    let body = json!({
        "iss": "https://keycloak.test/realms/acme", "exp": now() + 600,
        "preferred_username": "frank", "org": { "id": "acme" },
        "realm_access": { "roles": ["analyst"] }, "scp": ["agents:read"], "amr": ["pwd", "mfa"],
    });
    let token = bearer(&sign_es256(&key, "kc", &body));
    let reply = get(
        tollgate.addr,
        "/x",
        &[("host", "127.0.0.1"), ("authorization", &token)],
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.upstream_header("x-tenant-id").as_deref(),
        Some("acme"),
        "tenant from the nested claim"
    );
    assert_eq!(reply.upstream_header("x-user-id").as_deref(), Some("frank"));
    assert_eq!(
        reply.upstream_header("x-user-roles").as_deref(),
        Some("analyst")
    );
    assert_eq!(
        reply.upstream_header("x-user-scopes").as_deref(),
        Some("agents:read")
    );
    assert_eq!(reply.upstream_header("x-user-mfa").as_deref(), Some("true"));
}
