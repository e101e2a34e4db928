//! The tenant lifecycle API on the admin listener, with the embedded store: the admin token, the
//! file's validation and messages, every change served at once, kept across a restart, and
//! audited; file tenants read-only; conditional writes.

use serde_json::{Value, json};

use crate::support::admin::{admin, call};
use crate::support::fixture::{self, Keys};
use crate::support::tollgate::{ADMIN_TOKEN, cli};
use crate::support::{Options, Tollgate, Upstream, eventually, get};

fn options(keys: &Keys, store: Option<&str>) -> Options {
    let mut options = fixture::options(keys, true, &["header", "custom_domain"], &[]);
    options.extra = "audit:\n  file: { path: audit/audit.jsonl, fsync: always }\n".into();
    if let Some(store) = store {
        options = options
            .with("tenancy.store", store)
            .with("tenancy.store_path", "state/tenants.redb");
        options.files.push(("state/.keep".into(), String::new()));
    }
    options
}

async fn status_of(tollgate: &Tollgate, tenant: &str) -> (u16, String) {
    let reply = get(tollgate.addr, "/x", &[("x-tenant-id", tenant)]).await;
    let slug = if reply.status == 200 {
        reply.upstream_header("x-tenant-plan").unwrap_or_default()
    } else {
        reply.json()["type"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    };
    (reply.status.as_u16(), slug)
}

fn audit_records(tollgate: &Tollgate) -> Vec<Value> {
    std::fs::read_to_string(tollgate.path("audit/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|r: &Value| r["type"] == "admin")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_api_needs_the_admin_token_and_files_are_read_only() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, None));
    for (token, what) in [
        (None, "no token"),
        (Some("wrong-token-0123456789abc"), "a wrong token"),
    ] {
        for (method, path) in [
            ("GET", "/tenants"),
            ("GET", "/tenants/acme"),
            ("DELETE", "/tenants/acme"),
        ] {
            let reply = call(tollgate.admin, method, path, token, &[], None);
            reply.assert_problem(401, "admin-unauthorized");
            assert!(
                reply.head.contains("www-authenticate: bearer"),
                "{what}: {}",
                reply.head
            );
        }
    }
    // Nothing changed.
    assert_eq!(status_of(&tollgate, "acme").await.0, 200);
    let listed = admin(tollgate.admin, "GET", "/tenants?limit=1000", None).json();
    let ids: Vec<&str> = listed["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "acme", "globex", "initech", "newco", "oldco", "soylent", "umbrella"
        ]
    );
    assert_eq!(listed["tenants"][0]["origin"], "file");
    // With the files store, the file is the only source.
    let body = json!({ "plan": "basic", "status": "active" });
    admin(tollgate.admin, "PUT", "/tenants/newt", Some(&body))
        .assert_problem(409, "tenant-read-only");
    admin(
        tollgate.admin,
        "PATCH",
        "/tenants/acme",
        Some(&json!({"status": "suspended"})),
    )
    .assert_problem(409, "tenant-read-only");
    assert_eq!(status_of(&tollgate, "acme").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_tenant_gets_422_with_the_messages_check_gives() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, Some("embedded")));
    let cases = [
        (
            json!({ "plan": "gold", "status": "active" }),
            "{ id: bad, plan: gold, status: active }",
        ),
        (
            json!({ "plan": "basic", "status": "active", "billing_day": 31 }),
            "{ id: bad, plan: basic, status: active, billing_day: 31 }",
        ),
        (
            json!({ "plan": "basic", "status": "trial" }),
            "{ id: bad, plan: basic, status: trial }",
        ),
        (
            json!({ "plan": "basic", "status": "active", "domains": ["acme.example.org"] }),
            "{ id: bad, plan: basic, status: active, domains: [acme.example.org] }",
        ),
        (
            json!({ "plan": "basic", "status": "active", "rate_limits": { "daily": 5 } }),
            "{ id: bad, plan: basic, status: active, rate_limits: { daily: 5 } }",
        ),
    ];
    for (body, line) in cases {
        let reply = admin(tollgate.admin, "PUT", "/tenants/bad", Some(&body));
        reply.assert_problem(422, "tenant-invalid");
        let errors = reply.errors();
        assert!(!errors.is_empty(), "{}", reply.body);
        // `check` says the same of the same tenant in the file.
        let out = fixture::check_fails(line, &[], "");
        for error in &errors {
            let (key, message) = error.split_once(": ").unwrap();
            assert!(
                out.contains(&format!("(bad).{key}: {message}")),
                "API: {error}\ncheck: {out}"
            );
        }
    }
    // Unknown fields and wrong types name their key.
    let reply = admin(
        tollgate.admin,
        "PUT",
        "/tenants/bad",
        Some(&json!({ "plan": "basic", "status": "active", "colour": "red" })),
    );
    reply.assert_problem(422, "tenant-invalid");
    assert!(
        reply.errors()[0].contains("unknown field `colour`"),
        "{}",
        reply.body
    );
    let reply = admin(
        tollgate.admin,
        "PUT",
        "/tenants/bad",
        Some(&json!({ "plan": "basic", "status": "asleep" })),
    );
    assert!(
        reply.errors()[0].starts_with("status: unknown variant `asleep`"),
        "{}",
        reply.body
    );
    let reply = admin(
        tollgate.admin,
        "PUT",
        "/tenants/Bad_Id",
        Some(&json!({ "plan": "basic", "status": "active" })),
    );
    assert!(
        reply.errors()[0].starts_with("id: must be a DNS label"),
        "{}",
        reply.body
    );
    let reply = admin(
        tollgate.admin,
        "PUT",
        "/tenants/bad",
        Some(&json!({ "id": "other", "plan": "basic", "status": "active" })),
    );
    reply.assert_problem(422, "tenant-invalid");
    let reply = call(
        tollgate.admin,
        "PUT",
        "/tenants/bad",
        Some(ADMIN_TOKEN),
        &[],
        None,
    );
    reply.assert_problem(400, "malformed-request");
    // None of it was stored or served.
    admin(tollgate.admin, "GET", "/tenants/bad", None).assert_problem(404, "tenant-not-found");
    assert_eq!(
        status_of(&tollgate, "bad").await,
        (404, "unknown-tenant".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_lives_through_the_api_is_kept_across_a_restart_and_every_change_is_audited() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut tollgate = Tollgate::start(upstream.addr, options(&keys, Some("embedded")));
    let body = json!({ "id": "newt", "plan": "basic", "status": "active", "domains": ["Newt.Example.COM."] });
    let created = admin(tollgate.admin, "POST", "/tenants", Some(&body));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.json()["origin"], "store");
    assert_eq!(status_of(&tollgate, "newt").await, (200, "basic".into()));
    let by_domain = get(tollgate.addr, "/x", &[("host", "newt.example.com")]).await;
    assert_eq!(
        by_domain.upstream_header("x-tenant-id").as_deref(),
        Some("newt")
    );
    admin(tollgate.admin, "POST", "/tenants", Some(&body)).assert_problem(409, "tenant-exists");
    admin(
        tollgate.admin,
        "POST",
        "/tenants",
        Some(&json!({"id": "acme", "plan": "basic", "status": "active"})),
    )
    .assert_problem(409, "tenant-exists");
    admin(tollgate.admin, "DELETE", "/tenants/acme", None).assert_problem(409, "tenant-read-only");

    // A merge patch of what was read; a stale If-Match is refused.
    let read = admin(tollgate.admin, "GET", "/tenants/newt", None);
    let etag = read
        .head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .to_string();
    let patched = admin(
        tollgate.admin,
        "PATCH",
        "/tenants/newt",
        Some(&json!({ "status": "suspended", "plan": "professional" })),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        status_of(&tollgate, "newt").await,
        (403, "tenant-suspended".into())
    );
    let stale = call(
        tollgate.admin,
        "PATCH",
        "/tenants/newt",
        Some(ADMIN_TOKEN),
        &[("If-Match", &etag)],
        Some(&json!({"status": "active"})),
    );
    stale.assert_problem(412, "tenant-changed");
    assert_eq!(status_of(&tollgate, "newt").await.0, 403);

    // Kept across a restart.
    tollgate.restart();
    assert_eq!(
        status_of(&tollgate, "newt").await,
        (403, "tenant-suspended".into())
    );
    let listed = admin(
        tollgate.admin,
        "GET",
        "/tenants?status=suspended&origin=store",
        None,
    )
    .json();
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["tenants"][0]["plan"], "professional");
    let resumed = admin(
        tollgate.admin,
        "PATCH",
        "/tenants/newt",
        Some(&json!({ "status": "active" })),
    );
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    assert_eq!(
        status_of(&tollgate, "newt").await,
        (200, "professional".into())
    );
    let deleted = admin(tollgate.admin, "DELETE", "/tenants/newt", None);
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(
        status_of(&tollgate, "newt").await,
        (404, "unknown-tenant".into())
    );
    let gone = get(tollgate.addr, "/x", &[("host", "newt.example.com")]).await;
    assert_ne!(gone.status, 200);
    admin(tollgate.admin, "DELETE", "/tenants/newt", None).assert_problem(404, "tenant-not-found");

    // Every change, with who made it and the tenant before and after.
    let t = &tollgate;
    eventually("every change is on record", async || {
        audit_records(t).len() == 4
    })
    .await;
    let records = audit_records(&tollgate);
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["admin"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "patch", "patch", "delete"]);
    let credential = records[0]["admin"]["credential"].as_str().unwrap();
    assert!(
        credential.starts_with("admin-token:sha256:"),
        "{credential}"
    );
    assert!(!records.iter().any(|r| r.to_string().contains(ADMIN_TOKEN)));
    assert_eq!(records[0]["admin"]["before"], Value::Null);
    assert_eq!(records[1]["admin"]["before"]["status"], "active");
    assert_eq!(records[1]["admin"]["after"]["status"], "suspended");
    assert_eq!(records[3]["admin"]["after"], Value::Null);
    assert_eq!(records[3]["tenant"], "newt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenants_command_drives_the_api() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, Some("embedded")));
    let admin_addr = tollgate.admin.to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["tenants", "--admin", &admin_addr, "--token", ADMIN_TOKEN];
        all.extend_from_slice(args);
        cli(&all, &[])
    };
    let file = tollgate.path("signups.yaml");
    std::fs::write(
        &file,
        "tenants:\n  - { id: alpha, plan: basic, status: active }\n  - { id: beta, plan: gold, status: active }\n  - { id: gamma, plan: professional, status: trial, trial_ends_at: 2999-01-01T00:00:00Z }\n",
    )
    .unwrap();
    let applied = run(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(applied.code, Some(1), "one was refused: {}", applied.stderr);
    assert!(
        applied.stderr.contains("alpha: created"),
        "{}",
        applied.stderr
    );
    assert!(
        applied.stderr.contains(r#"beta: 422"#),
        "{}",
        applied.stderr
    );
    assert!(
        applied
            .stderr
            .contains(r#"  plan: unknown plan "gold" (known: basic, professional)"#),
        "{}",
        applied.stderr
    );
    assert!(
        applied.stderr.contains("gamma: created"),
        "{}",
        applied.stderr
    );
    assert_eq!(status_of(&tollgate, "alpha").await.0, 200);

    let suspended = run(&["suspend", "alpha"]);
    assert!(suspended.ok, "{}", suspended.stderr);
    assert_eq!(
        status_of(&tollgate, "alpha").await,
        (403, "tenant-suspended".into())
    );
    let listed = run(&["list", "--status", "suspended", "--format", "json"]);
    assert!(listed.ok, "{}", listed.stderr);
    let ids: Vec<Value> = serde_json::from_str::<Vec<Value>>(&listed.stdout)
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(ids, [json!("alpha"), json!("initech")]);
    let table = run(&["list", "--origin", "store"]);
    assert!(
        table.stdout.lines().count() == 3 && table.stdout.contains("gamma"),
        "{}",
        table.stdout
    );
    assert!(run(&["resume", "alpha"]).ok);
    assert_eq!(status_of(&tollgate, "alpha").await.0, 200);
    let got = run(&["get", "gamma"]);
    assert_eq!(
        serde_json::from_str::<Value>(&got.stdout).unwrap()["plan"],
        "professional"
    );
    assert!(run(&["delete", "gamma"]).ok);
    let missing = run(&["get", "gamma"]);
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("gamma: 404"), "{}", missing.stderr);
    // A wrong token, and no listener.
    let wrong = cli(
        &[
            "tenants",
            "--admin",
            &admin_addr,
            "--token",
            "nope-nope-nope-nope",
            "list",
        ],
        &[],
    );
    assert_eq!(wrong.code, Some(1), "{}", wrong.stderr);
    let nobody = cli(
        &[
            "tenants",
            "--admin",
            "127.0.0.1:1",
            "--token",
            ADMIN_TOKEN,
            "list",
        ],
        &[],
    );
    assert_eq!(nobody.code, Some(2), "{}", nobody.stderr);
    assert!(
        nobody
            .stderr
            .starts_with("error: no Tollgate admin listener answers at 127.0.0.1:1"),
        "{}",
        nobody.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_tenant_the_files_no_longer_admit_is_not_served_until_they_do() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, Some("embedded")));
    let body = json!({ "plan": "basic", "status": "active", "domains": ["newt.example.com"] });
    assert_eq!(
        admin(tollgate.admin, "PUT", "/tenants/newt", Some(&body)).status,
        201
    );
    assert_eq!(status_of(&tollgate, "newt").await.0, 200);
    // A file tenant takes its domain: the file wins, the stored tenant is not served.
    let tenants = tollgate.path("tenants.yaml");
    let original = std::fs::read_to_string(&tenants).unwrap();
    let taken = format!(
        "{original}  - {{ id: filed, plan: basic, status: active, domains: [newt.example.com] }}\n"
    );
    std::fs::write(&tenants, taken).unwrap();
    crate::support::eventually("the file's tenant is served", async || {
        status_of(&tollgate, "filed").await.0 == 200
    })
    .await;
    assert_eq!(
        status_of(&tollgate, "newt").await,
        (404, "unknown-tenant".into())
    );
    let shown = admin(tollgate.admin, "GET", "/tenants/newt", None).json();
    assert_eq!(shown["served"], false, "{shown}");
    assert_eq!(
        shown["errors"][0],
        r#"domains: "newt.example.com" already belongs to filed"#
    );
    let by_domain = get(tollgate.addr, "/x", &[("host", "newt.example.com")]).await;
    assert_eq!(
        by_domain.upstream_header("x-tenant-id").as_deref(),
        Some("filed")
    );
    // The file lets go of it: served again, as stored.
    std::fs::write(&tenants, original).unwrap();
    crate::support::eventually("the stored tenant is served again", async || {
        status_of(&tollgate, "newt").await.0 == 200
    })
    .await;
    assert_eq!(
        admin(tollgate.admin, "GET", "/tenants/newt", None).json()["served"],
        true
    );
}
