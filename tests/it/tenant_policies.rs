//! A tenant's own Cedar policy files through the admin API: put, read, replace, delete; applied
//! to that tenant alone, at once, on every replica (a real redis-server), kept across a restart;
//! validated against the schema with the messages `check` gives for the same file; audited; a
//! tenant written through the tenant API keeps them; file tenants are read-only here.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

use crate::authz::shipped_policy_files;
use crate::support::admin::{AdminReply, admin, send};
use crate::support::fixture::{self, Keys, bearer, claims, sign};
use crate::support::redis::RedisServer;
use crate::support::tollgate::{ADMIN_TOKEN, cli};
use crate::support::{Options, Tollgate, Upstream, eventually, get};

const AUDITORS: &str = "// Auditors read everything.\n@id(\"newt-auditors-read\")\npermit (principal in Role::\"auditor\", action == Action::\"read\", resource);\n";

fn options(keys: &Keys) -> Options {
    let mut options = fixture::options(keys, false, &["subdomain", "claim"], &[]);
    options.files.extend(shipped_policy_files());
    options
        .extra
        .push_str("authorization:\n  routes_file: routes.yaml\n  policies_dir: policies\n");
    options
        .extra
        .push_str("audit:\n  file: { path: audit/audit.jsonl, fsync: always }\n");
    options
}

fn embedded(keys: &Keys) -> Options {
    let mut options = options(keys)
        .with("tenancy.store", "embedded")
        .with("tenancy.store_path", "state/tenants.redb");
    options.files.push(("state/.keep".into(), String::new()));
    options
}

/// A tenant's policy file, put (`text` `Some`) or deleted.
fn policy(tollgate: &Tollgate, tenant: &str, name: &str, text: Option<&str>) -> AdminReply {
    let path = format!("/tenants/{tenant}/policies/{name}");
    let token = Some(ADMIN_TOKEN);
    match text {
        Some(text) => send(
            tollgate.admin,
            "PUT",
            &path,
            token,
            &[],
            ("text/plain", text),
        ),
        None => send(
            tollgate.admin,
            "DELETE",
            &path,
            token,
            &[],
            ("text/plain", ""),
        ),
    }
}

/// A read of the agents by `sub` of `tenant` with `roles`: the status.
async fn read(tollgate: &Tollgate, keys: &Keys, tenant: &str, roles: &[&str]) -> u16 {
    let token = bearer(&sign(
        keys,
        Algorithm::ES256,
        "es",
        &claims("ann", tenant, roles),
    ));
    let host = format!("{tenant}.app.test");
    get(
        tollgate.addr,
        "/api/v1/agents",
        &[("host", &host), ("authorization", &token)],
    )
    .await
    .status
    .as_u16()
}

fn create(tollgate: &Tollgate, id: &str) {
    let body = json!({ "plan": "basic", "status": "active" });
    let reply = admin(
        tollgate.admin,
        "PUT",
        &format!("/tenants/{id}"),
        Some(&body),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_policy_applies_to_it_alone_and_is_kept() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut tollgate = Tollgate::start(upstream.addr, embedded(&keys));
    create(&tollgate, "newt");
    create(&tollgate, "other");
    assert_eq!(read(&tollgate, &keys, "newt", &["auditor"]).await, 403);

    let put = policy(&tollgate, "newt", "auditors", Some(AUDITORS));
    assert_eq!(put.status, 201, "{}", put.body);
    assert_eq!(put.json()["policies"], json!(["auditors"]));
    assert!(
        put.head
            .contains("location: /tenants/newt/policies/auditors"),
        "{}",
        put.head
    );
    assert_eq!(read(&tollgate, &keys, "newt", &["auditor"]).await, 200);
    assert_eq!(
        read(&tollgate, &keys, "other", &["auditor"]).await,
        403,
        "another tenant's policy"
    );
    assert_eq!(read(&tollgate, &keys, "acme", &["auditor"]).await, 403);

    // Read back: the text as put, the names with the tenant.
    let text = admin(
        tollgate.admin,
        "GET",
        "/tenants/newt/policies/auditors",
        None,
    );
    assert_eq!((text.status, text.body.as_str()), (200, AUDITORS));
    let listed = admin(tollgate.admin, "GET", "/tenants/newt/policies", None).json();
    assert_eq!(listed["policies"], json!(["auditors"]));
    let tenant = admin(tollgate.admin, "GET", "/tenants/newt", None).json();
    assert_eq!(tenant["policies"], json!(["auditors"]));

    // The tenant API changes the tenant and keeps its files: a patch, and a replace of what
    // was read (its `policies` names are ignored on the way in).
    let patched = admin(
        tollgate.admin,
        "PATCH",
        "/tenants/newt",
        Some(&json!({ "plan": "professional" })),
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    let mut replaced = patched.json();
    replaced["name"] = json!("Newt");
    replaced["policies"] = json!({ "sneaky": "permit (principal, action, resource);" });
    let replaced = admin(tollgate.admin, "PUT", "/tenants/newt", Some(&replaced));
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.json()["policies"], json!(["auditors"]));
    assert_eq!(read(&tollgate, &keys, "newt", &["auditor"]).await, 200);
    assert_eq!(read(&tollgate, &keys, "newt", &["nobody"]).await, 403);

    // Kept across a restart (the embedded store).
    tollgate.restart();
    assert_eq!(read(&tollgate, &keys, "newt", &["auditor"]).await, 200);

    // A replace narrows it; a delete removes it, at once.
    let narrowed = AUDITORS.replace("resource);", "resource is Workflow);");
    let put = policy(&tollgate, "newt", "auditors", Some(&narrowed));
    assert_eq!(put.status, 200, "{}", put.body);
    assert_eq!(read(&tollgate, &keys, "newt", &["auditor"]).await, 403);
    let deleted = policy(&tollgate, "newt", "auditors", None);
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    policy(&tollgate, "newt", "auditors", None).assert_problem(404, "policy-not-found");
    admin(
        tollgate.admin,
        "GET",
        "/tenants/newt/policies/auditors",
        None,
    )
    .assert_problem(404, "policy-not-found");
    assert_eq!(
        admin(tollgate.admin, "GET", "/tenants/newt/policies", None).json()["policies"],
        json!([])
    );

    // Audited with the file's text before and after, and the admin credential (the writer
    // thread may be a moment behind the answer).
    let file = tollgate.path("audit/audit.jsonl");
    let changes = || -> Vec<Value> {
        std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|r: &Value| r["type"] == "admin" && r["admin"]["action"] != "create")
            .collect()
    };
    eventually("every change is on record", async || changes().len() >= 5).await;
    let records = changes();
    let actions: Vec<&str> = records
        .iter()
        .map(|r| r["admin"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "put-policy",
            "patch",
            "replace",
            "put-policy",
            "delete-policy"
        ]
    );
    assert_eq!(records[0]["admin"]["before"], Value::Null);
    assert_eq!(
        records[0]["admin"]["after"],
        json!({ "policy": "auditors", "text": AUDITORS })
    );
    assert_eq!(records[3]["admin"]["after"]["text"], json!(narrowed));
    assert_eq!(records[4]["admin"]["before"]["text"], json!(narrowed));
    assert_eq!(records[4]["admin"]["after"], Value::Null);
    assert!(
        records[0]["admin"]["credential"]
            .as_str()
            .unwrap()
            .starts_with("admin-token:sha256:")
    );
}

/// `check`'s messages for `text` as the file `policies/tenants/newt/bad.cedar`, after the file.
fn check_says(text: &str) -> Vec<String> {
    let mut files = shipped_policy_files();
    files.push(("policies/tenants/newt/bad.cedar".into(), text.into()));
    let out = fixture::check_fails(
        "{ id: newt, plan: basic, status: active }",
        &files,
        "authorization: { routes_file: routes.yaml, policies_dir: policies }\n",
    );
    out.lines()
        .filter_map(|l| l.split_once("bad.cedar").map(|(_, rest)| rest.to_string()))
        .collect()
}

/// A message with each file path made relative to its deployment's directory.
fn unrooted(message: &str) -> String {
    message
        .split(' ')
        .map(|word| word.find("/policies/").map_or(word, |at| &word[at..]))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_gets_422_with_the_messages_check_gives() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, embedded(&keys));
    create(&tollgate, "newt");
    let cases = [
        // Not in the schema.
        "@id(\"bad-attr\")\npermit (principal, action == Action::\"read\", resource)\nwhen { resource.nope };\n",
        // Not Cedar.
        "@id(\"bad-syntax\")\npermit (principal, action, resource)\n",
        // No id.
        "permit (principal, action == Action::\"read\", resource);\n",
        // An id of the global set.
        "@id(\"viewer-read\")\npermit (principal, action == Action::\"read\", resource);\n",
        // A template.
        "@id(\"bad-template\")\npermit (principal == ?principal, action, resource);\n",
    ];
    for text in cases {
        let reply = policy(&tollgate, "newt", "bad", Some(text));
        reply.assert_problem(422, "tenant-invalid");
        let errors = reply.errors();
        assert!(!errors.is_empty(), "{}", reply.body);
        let said = check_says(text);
        for error in &errors {
            // `check` prints one line a message; a message may go on with the policy's text.
            let first = error.lines().next().unwrap_or_default();
            let rest = first
                .strip_prefix("/tenants/newt/policies/bad")
                .unwrap_or_else(|| panic!("placed at the file: {error}"));
            assert!(
                said.iter().any(|s| unrooted(s) == unrooted(rest)),
                "API: {error}\ncheck: {said:?}"
            );
        }
    }
    // Nothing was stored.
    assert_eq!(
        admin(tollgate.admin, "GET", "/tenants/newt/policies", None).json()["policies"],
        json!([])
    );
    // A bad name, a file tenant, no such tenant, no token.
    policy(&tollgate, "newt", "Bad.Name", Some(AUDITORS)).assert_problem(422, "tenant-invalid");
    policy(&tollgate, "acme", "auditors", Some(AUDITORS)).assert_problem(409, "tenant-read-only");
    policy(&tollgate, "nobody", "auditors", Some(AUDITORS)).assert_problem(404, "tenant-not-found");
    for token in [None, Some("wrong-token-0123456789abc")] {
        send(
            tollgate.admin,
            "PUT",
            "/tenants/newt/policies/auditors",
            token,
            &[],
            ("text/plain", AUDITORS),
        )
        .assert_problem(401, "admin-unauthorized");
    }
    assert_eq!(read(&tollgate, &keys, "newt", &["auditor"]).await, 403);
    // A stale If-Match is refused.
    let stale = send(
        tollgate.admin,
        "PUT",
        "/tenants/newt/policies/auditors",
        Some(ADMIN_TOKEN),
        &[("if-match", "\"99\"")],
        ("text/plain", AUDITORS),
    );
    stale.assert_problem(412, "tenant-changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_put_through_one_replica_applies_on_the_other() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let redis = RedisServer::start();
    let shared = |keys: &Keys| {
        options(keys).with("tenancy.store", "redis").with(
            "limits",
            json!({ "backend": "memory", "redis": { "url": redis.url(), "prefix": "tg:" } }),
        )
    };
    let a = Tollgate::start(upstream.addr, shared(&keys));
    let b = Tollgate::start(upstream.addr, shared(&keys));
    create(&a, "newt");
    let put = policy(&a, "newt", "auditors", Some(AUDITORS));
    assert_eq!(put.status, 201, "{}", put.body);
    eventually("B applies the policy put through A", async || {
        read(&b, &keys, "newt", &["auditor"]).await == 200
    })
    .await;
    assert_eq!(read(&b, &keys, "newt", &["viewer"]).await, 200);
    let deleted = policy(&a, "newt", "auditors", None);
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    eventually("B drops the policy deleted through A", async || {
        read(&b, &keys, "newt", &["auditor"]).await == 403
    })
    .await;
}

#[test]
fn a_tenant_of_the_file_keeps_its_policies_in_the_policies_directory() {
    let out = fixture::check_fails(
        "{ id: newt, plan: basic, status: active, policies: { own: \"permit (principal, action, resource);\" } }",
        &[],
        "",
    );
    assert!(
        out.contains("(newt).policies: a tenant of the tenants file keeps its policies as files in the policies directory's tenants/newt/"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_puts_reads_lists_and_deletes_a_tenants_policy_files() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, embedded(&keys));
    create(&tollgate, "newt");
    let admin_addr = tollgate.admin.to_string();
    let run = |args: &[&str]| {
        let mut all = vec![
            "tenants",
            "--admin",
            &admin_addr,
            "--token",
            ADMIN_TOKEN,
            "policy",
        ];
        all.extend_from_slice(args);
        cli(&all, &[])
    };
    let file = tollgate.path("auditors.cedar");
    std::fs::write(&file, AUDITORS).unwrap();
    let file = file.to_str().unwrap();
    let put = run(&["put", "newt", "auditors", "-f", file]);
    assert_eq!(
        (put.code, put.stdout.as_str()),
        (Some(0), "newt/auditors: created"),
        "{}",
        put.stderr
    );
    assert_eq!(read(&tollgate, &keys, "newt", &["auditor"]).await, 200);
    let again = run(&["put", "newt", "auditors", "-f", file]);
    assert_eq!(again.stdout, "newt/auditors: replaced", "{}", again.stderr);
    assert_eq!(run(&["list", "newt"]).stdout, "auditors");
    assert_eq!(
        run(&["get", "newt", "auditors"]).stdout,
        AUDITORS.trim_end()
    );

    // A refusal prints every message of the 422 and exits 1; nothing changes.
    let bad = tollgate.path("bad.cedar");
    std::fs::write(
        &bad,
        "@id(\"x\")\npermit (principal, action, resource) when { resource.nope };\n",
    )
    .unwrap();
    let refused = run(&["put", "newt", "auditors", "-f", bad.to_str().unwrap()]);
    assert_eq!(refused.code, Some(1), "{}", refused.stdout);
    assert!(
        refused.stderr.contains("newt: 422")
            && refused
                .stderr
                .contains("/tenants/newt/policies/auditors:2: policy \"x\""),
        "{}",
        refused.stderr
    );
    assert_eq!(read(&tollgate, &keys, "newt", &["auditor"]).await, 200);

    let deleted = run(&["delete", "newt", "auditors"]);
    assert_eq!(
        deleted.stdout, "newt/auditors: deleted",
        "{}",
        deleted.stderr
    );
    assert_eq!(read(&tollgate, &keys, "newt", &["auditor"]).await, 403);
    let missing = run(&["get", "newt", "auditors"]);
    assert_eq!(missing.code, Some(1));
    assert!(missing.stderr.contains("newt: 404"), "{}", missing.stderr);
}
