//! Tenants with their own identity providers: two local OIDC issuers bound to two tenants made
//! through the admin API. Each issuer's tokens act on its tenant only; keys come from discovery,
//! follow a rotation, and a flood of unknown `kid`s refetches them at most once per interval;
//! a tenant's provider is validated like the file and never grants an operator role.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::admin::admin;
use crate::support::fixture::{self, Keys, bearer};
use crate::support::oidc::Oidc;
use crate::support::tollgate::check;
use crate::support::{Options, Tollgate, Upstream, eventually, get};

const AUDIENCE: &str = "tollgate-app";

fn options(keys: &Keys, refetch: &str) -> Options {
    let mut options = fixture::options(keys, false, &["header", "claim"], &[])
        .with("tenancy.store", "embedded")
        .with("tenancy.store_path", "state/tenants.redb")
        .with("identity.unknown_kid_refetch", refetch);
    options.files.push(("state/.keep".into(), String::new()));
    options
}

fn tenant(id: &str, idp: &Oidc) -> Value {
    json!({
        "id": id, "plan": "basic", "status": "active",
        "identity_providers": [{
            "issuer": idp.issuer,
            "audiences": [AUDIENCE],
            "group_roles": { format!("{id}-admins"): ["tenant_admin"], "everyone": ["user"] },
        }],
    })
}

fn create(tollgate: &Tollgate, body: &Value) {
    let id = body["id"].as_str().unwrap();
    let reply = admin(tollgate.admin, "PUT", &format!("/tenants/{id}"), Some(body));
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// The status and problem slug (or the upstream's `x-tenant-id`) of a request with `token`,
/// on `tenant` (`None`: no tenant header, so the token's issuer names it).
async fn call(tollgate: &Tollgate, token: &str, tenant: Option<&str>) -> (u16, String) {
    let auth = bearer(token);
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend(tenant.map(|t| ("x-tenant-id", t)));
    let reply = get(tollgate.addr, "/x", &headers).await;
    let what = if reply.status == 200 {
        reply.upstream_header("x-tenant-id").unwrap_or_default()
    } else {
        let kind = reply.json()["type"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        kind.rsplit('/').next().unwrap_or_default().to_string()
    };
    (reply.status.as_u16(), what)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tenants_issuer_acts_on_its_own_tenant_only() {
    let keys = Keys::generate();
    let (tyrell_idp, wayne_idp) = (Oidc::start().await, Oidc::start().await);
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, "30s"));
    create(&tollgate, &tenant("tyrell", &tyrell_idp));
    create(&tollgate, &tenant("wayne", &wayne_idp));

    let rachel = tyrell_idp.sign(
        &tyrell_idp.claims("rachel", AUDIENCE, &["tyrell-admins", "everyone"]),
        None,
    );
    let bruce = wayne_idp.sign(&wayne_idp.claims("bruce", AUDIENCE, &[]), None);
    // On its own tenant, named by the request or by nothing but the issuer.
    let reply = get(
        tollgate.addr,
        "/x",
        &[
            ("authorization", &bearer(&rachel)),
            ("x-tenant-id", "tyrell"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.upstream_header("x-user-id").unwrap(), "rachel");
    assert_eq!(
        reply.upstream_header("x-user-roles").unwrap(),
        "tenant_admin,user"
    );
    assert_eq!(call(&tollgate, &rachel, None).await, (200, "tyrell".into()));
    assert_eq!(
        call(&tollgate, &bruce, Some("wayne")).await,
        (200, "wayne".into())
    );
    // On any other tenant: the API's, the file's.
    for (token, other) in [(&rachel, "wayne"), (&bruce, "tyrell"), (&rachel, "acme")] {
        assert_eq!(
            call(&tollgate, token, Some(other)).await,
            (403, "tenant-mismatch".into()),
            "{other}"
        );
    }
    // A `tenant` claim is not read: the issuer's tenant is the token's.
    let mut claims = tyrell_idp.claims("rachel", AUDIENCE, &[]);
    claims["tenant"] = json!("acme");
    let claiming = tyrell_idp.sign(&claims, None);
    assert_eq!(
        call(&tollgate, &claiming, Some("acme")).await,
        (403, "tenant-mismatch".into())
    );
    assert_eq!(
        call(&tollgate, &claiming, None).await,
        (200, "tyrell".into())
    );

    // Refused outright: an operator role, another audience, another issuer's key, no subject.
    let mut operator = tyrell_idp.claims("roy", AUDIENCE, &[]);
    operator["roles"] = json!(["super_admin"]);
    let mut forged = tyrell_idp.claims("roy", AUDIENCE, &[]);
    forged["iss"] = json!(wayne_idp.issuer);
    let mut nobody = tyrell_idp.claims("roy", AUDIENCE, &[]);
    nobody.as_object_mut().unwrap().remove("sub");
    for (what, token) in [
        ("an operator role", tyrell_idp.sign(&operator, None)),
        (
            "another audience",
            tyrell_idp.sign(&tyrell_idp.claims("roy", "other-app", &[]), None),
        ),
        (
            "signed by tyrell's IdP as wayne's",
            tyrell_idp.sign(&forged, None),
        ),
        ("no subject", tyrell_idp.sign(&nobody, None)),
    ] {
        assert_eq!(
            call(&tollgate, &token, Some("tyrell")).await,
            (401, "invalid-credentials".into()),
            "{what}"
        );
    }

    // The provider removed: its tokens, verified and cached a moment ago, are refused at once.
    let reply = admin(
        tollgate.admin,
        "PATCH",
        "/tenants/tyrell",
        Some(&json!({ "identity_providers": [] })),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        call(&tollgate, &rachel, Some("tyrell")).await,
        (401, "invalid-credentials".into())
    );
    assert_eq!(
        call(&tollgate, &bruce, Some("wayne")).await,
        (200, "wayne".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_follow_a_rotation_and_unknown_kids_refetch_at_most_once_per_interval() {
    let keys = Keys::generate();
    let idp = Oidc::start().await;
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, "3s"));
    create(&tollgate, &tenant("tyrell", &idp));
    let first = idp.sign(&idp.claims("rachel", AUDIENCE, &[]), None);
    assert_eq!(call(&tollgate, &first, None).await, (200, "tyrell".into()));
    assert_eq!((idp.discovery_fetches(), idp.jwks_fetches()), (1, 1));

    // A flood of tokens naming kids the set lacks, all at once, twice: inside one interval of
    // the last fetch it fetches nothing; after the interval, once.
    let flood = async |round: usize| {
        let tokens: Vec<String> = (0..60)
            .map(|i| {
                idp.sign(
                    &idp.claims("mallory", AUDIENCE, &[]),
                    Some(&format!("r{round}-{i}")),
                )
            })
            .collect();
        let replies = futures_util::future::join_all(
            tokens.iter().map(|t| call(&tollgate, t, Some("tyrell"))),
        )
        .await;
        assert!(
            replies
                .iter()
                .all(|r| *r == (401, "invalid-credentials".into())),
            "{replies:?}"
        );
    };
    flood(0).await;
    assert_eq!(idp.jwks_fetches(), 1);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    flood(1).await;
    assert_eq!(idp.jwks_fetches(), 2);
    assert_eq!(idp.discovery_fetches(), 1);

    // A rotation: the new key's tokens are accepted without a restart; a token of the retired
    // key not seen before is refused (one verified before stays cached until its `exp`).
    let mut unseen = idp.claims("rachel", AUDIENCE, &[]);
    unseen["jti"] = json!("unseen");
    let retired = idp.sign(&unseen, None);
    idp.rotate();
    let rotated = idp.sign(&idp.claims("rachel", AUDIENCE, &[]), None);
    let addr = tollgate.addr;
    eventually("the rotated-in key is accepted", async || {
        let auth = bearer(&rotated);
        get(
            addr,
            "/x",
            &[("authorization", &auth), ("x-tenant-id", "tyrell")],
        )
        .await
        .status
            == 200
    })
    .await;
    assert_eq!(
        call(&tollgate, &retired, None).await,
        (401, "invalid-credentials".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idp_outage_keeps_the_keys_it_had() {
    let keys = Keys::generate();
    let idp = Oidc::start().await;
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, "1s"));
    let mut body = tenant("tyrell", &idp);
    body["identity_providers"][0]["jwks_refresh"] = json!("1s");
    create(&tollgate, &body);
    let token = |sub: &str| idp.sign(&idp.claims(sub, AUDIENCE, &[]), None);
    assert_eq!(
        call(&tollgate, &token("a"), None).await,
        (200, "tyrell".into())
    );
    idp.set_down(true);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The set is due for a refresh, which fails: the keys it had still verify new tokens.
    assert_eq!(
        call(&tollgate, &token("b"), None).await,
        (200, "tyrell".into())
    );
    assert!(idp.jwks_fetches() >= 2, "a refresh was tried");
    idp.set_down(false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_document_for_another_issuer_is_not_trusted() {
    let keys = Keys::generate();
    let idp = Oidc::start().await;
    idp.claim_issuer("https://someone-else.example");
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, "30s"));
    create(&tollgate, &tenant("tyrell", &idp));
    let token = idp.sign(&idp.claims("rachel", AUDIENCE, &[]), None);
    assert_eq!(
        call(&tollgate, &token, None).await,
        (401, "invalid-credentials".into())
    );
    assert_eq!(
        idp.jwks_fetches(),
        0,
        "no keys are fetched from an untrusted document"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_providers_are_validated_with_the_messages_check_gives() {
    let keys = Keys::generate();
    let idp = Oidc::start().await;
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, "30s"));
    create(&tollgate, &tenant("tyrell", &idp));
    let provider = |changes: Value| {
        let mut p = json!({ "issuer": "https://login.wayne.example", "audiences": [AUDIENCE] });
        for (k, v) in changes.as_object().unwrap() {
            p[k] = v.clone();
        }
        json!({ "id": "wayne", "plan": "basic", "status": "active", "identity_providers": [p] })
    };
    let cases = [
        (
            json!({ "issuer": "http://login.wayne.example" }),
            "identity_providers[0].issuer: \"http://login.wayne.example\" must be https (http only to a loopback address)",
        ),
        (
            json!({ "audiences": [] }),
            "identity_providers[0].audiences: name at least one audience",
        ),
        (
            json!({ "issuer": fixture::ISSUER }),
            "is a global issuer (identity.jwt)",
        ),
        (json!({ "issuer": idp.issuer }), "is already tyrell's"),
        (
            json!({ "group_roles": { "admins": ["super_admin"] } }),
            "identity_providers[0].group_roles.admins: \"super_admin\" is an operator role",
        ),
        (
            json!({ "leeway": "soon" }),
            "identity_providers[0].leeway: not a duration",
        ),
        (
            json!({ "jwks_url": "ftp://keys.example" }),
            "identity_providers[0].jwks_url: \"ftp://keys.example\" is not an http(s) URL",
        ),
    ];
    for (change, message) in &cases {
        let reply = admin(
            tollgate.admin,
            "PUT",
            "/tenants/wayne",
            Some(&provider(change.clone())),
        );
        reply.assert_problem(422, "tenant-invalid");
        assert!(
            reply.errors().iter().any(|e| e.contains(message)),
            "{change}: {:?}",
            reply.errors()
        );
    }
    // The tenants file is held to the same rules, with the same messages.
    let bad = &cases[0];
    let tenants = format!(
        "tenants:\n  - {}\n",
        serde_json::to_string(&provider(bad.0.clone())).unwrap()
    );
    std::fs::write(tollgate.path("tenants.yaml"), tenants).unwrap();
    let (ok, out) = check(&[&tollgate.path("tollgate.yaml")]);
    assert!(!ok, "{out}");
    assert!(out.contains(bad.1), "{out}");
}
