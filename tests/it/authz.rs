//! Authorization: the shipped routes and policy pack through a live Tollgate; path tricks;
//! fail-closed evaluation errors; shadow routes; reloads and the decision cache; the policy tools.

use std::path::{Path, PathBuf};

use jsonwebtoken::Algorithm;

use crate::support::fixture::{self, Keys, bearer, claims, sign};
use crate::support::{Options, Tollgate, Upstream, eventually};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The shipped routes and policies, as files for the test's directory.
pub fn shipped_policy_files() -> Vec<(String, String)> {
    let mut files = vec![(
        "routes.yaml".to_string(),
        std::fs::read_to_string(repo("config/routes.yaml")).unwrap(),
    )];
    for name in [
        "schema.cedarschema",
        "roles.cedar",
        "guards.cedar",
        "tenants/acme/admin-network.cedar",
    ] {
        files.push((
            format!("policies/{name}"),
            std::fs::read_to_string(repo(&format!("policies/{name}"))).unwrap(),
        ));
    }
    files
}

fn options(keys: &Keys, extra_files: Vec<(String, String)>) -> Options {
    let mut options = fixture::options(keys, false, &["subdomain", "claim"], &[]);
    options.files.extend(shipped_policy_files());
    options.files.extend(extra_files);
    options
        .extra
        .push_str("authorization:\n  routes_file: routes.yaml\n  policies_dir: policies\n");
    options
}

pub struct Setup {
    pub upstream: Upstream,
    pub tollgate: Tollgate,
    keys: Keys,
}

async fn start(extra_files: Vec<(String, String)>) -> Setup {
    start_with(extra_files, "").await
}

/// The shipped routes and policies with `extra_files` over them, and `extra` top-level YAML.
pub async fn start_with(extra_files: Vec<(String, String)>, extra: &str) -> Setup {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut options = options(&keys, extra_files);
    options.extra.push_str(extra);
    let tollgate = Tollgate::start(upstream.addr, options);
    Setup {
        upstream,
        tollgate,
        keys,
    }
}

impl Setup {
    pub fn token(&self, sub: &str, tenant: &str, roles: &[&str], mfa: bool) -> String {
        let mut body = claims(sub, tenant, roles);
        body["mfa"] = mfa.into();
        bearer(&sign(&self.keys, Algorithm::ES256, "es", &body))
    }

    pub async fn call(
        &self,
        method: &str,
        tenant: &str,
        path: &str,
        token: Option<&str>,
    ) -> crate::support::client::Reply {
        use bytes::Bytes;
        use http_body_util::Empty;
        let host = format!("{tenant}.app.test");
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        let request = request.body(Empty::<Bytes>::new()).unwrap();
        crate::support::collect(crate::support::send(self.tollgate.addr, request).await).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_policies_allow_and_deny_as_written() {
    let s = start(vec![]).await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    assert_eq!(
        s.call("GET", "acme", "/api/v1/agents/7", Some(&viewer))
            .await
            .status,
        200
    );
    s.call("DELETE", "acme", "/api/v1/agents/7", Some(&viewer))
        .await
        .assert_problem(403, "forbidden");

    let analyst_globex = s.token("gus", "globex", &["analyst"], false);
    s.call(
        "GET",
        "globex",
        "/api/v1/analytics/usage",
        Some(&analyst_globex),
    )
    .await
    .assert_problem(403, "forbidden");
    let analyst_acme = s.token("ann", "acme", &["analyst"], false);
    assert_eq!(
        s.call(
            "GET",
            "acme",
            "/api/v1/analytics/usage",
            Some(&analyst_acme)
        )
        .await
        .status,
        200,
        "plan feature"
    );

    let admin = s.token("gina", "globex", &["tenant_admin"], false);
    s.call("GET", "globex", "/admin/users", Some(&admin))
        .await
        .assert_problem(403, "forbidden");
    let admin_mfa = s.token("gina", "globex", &["tenant_admin"], true);
    assert_eq!(
        s.call("GET", "globex", "/admin/users", Some(&admin_mfa))
            .await
            .status,
        200,
        "mfa"
    );

    // Anonymous: public pages only; other routes want credentials.
    assert_eq!(
        s.call("GET", "acme", "/public/pricing", None).await.status,
        200
    );
    s.call("GET", "acme", "/api/v1/agents", None)
        .await
        .assert_problem(401, "unauthenticated");
    // Unmatched routes are denied, even for a super admin.
    let root = s.token("ops", "acme", &["super_admin"], true);
    s.call("GET", "acme", "/internal/debug", Some(&root))
        .await
        .assert_problem(403, "no-route");
    // Cross tenant: another tenant's token never acts here; an operator may.
    s.call("GET", "acme", "/api/v1/agents", Some(&analyst_globex))
        .await
        .assert_problem(403, "tenant-mismatch");
    let operator = s.token("ops", "hooli", &["super_admin"], false);
    assert_eq!(
        s.call("GET", "acme", "/api/v1/agents", Some(&operator))
            .await
            .status,
        200
    );
    assert!(!s.upstream.seen().iter().any(|p| p.contains("/internal")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_never_reach_the_admin_area_without_the_admin_decision() {
    let s = start(vec![]).await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    for path in [
        "/public/../admin",
        "/public/%2e%2e/admin",
        "//admin",
        "/admin/.",
        "/public/./../admin/users",
        "/%61dmin",
    ] {
        // Judged as the admin area (forbidden), or matching no route at all (`/admin/`): a deny.
        let reply = s.call("GET", "acme", path, Some(&viewer)).await;
        assert_eq!(reply.status, 403, "{path}: {:?}", reply.body);
    }
    for path in [
        "/public%2F..%2Fadmin",
        "/public/..%2Fadmin",
        "/public/..;/admin",
    ] {
        s.call("GET", "acme", path, Some(&viewer))
            .await
            .assert_problem(400, "ambiguous-path");
    }
    assert!(s.upstream.seen().is_empty(), "{:?}", s.upstream.seen());
    // With the admin decision the upstream gets exactly the path that was authorized.
    let admin = s.token("bob", "acme", &["tenant_admin"], true);
    let reply = s
        .call("GET", "acme", "/public/../admin", Some(&admin))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["path"], "/admin");
}

const ERRORING: &str = r#"
@id("erroring-guard")
forbid (principal, action, resource)
when { context.weekday + 9223372036854775807 > 0 };
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_that_fails_to_evaluate_denies_the_request() {
    // A forbid whose condition overflows: Cedar skips it, Tollgate denies.
    let s = start(vec![(
        "policies/tenants/globex/erroring.cedar".to_string(),
        ERRORING.to_string(),
    )])
    .await;
    let developer = s.token("dev", "globex", &["developer"], false);
    s.call("GET", "globex", "/api/v1/agents", Some(&developer))
        .await
        .assert_problem(403, "forbidden");
    assert!(
        s.tollgate.log().contains("policy evaluation failed"),
        "{}",
        s.tollgate.log()
    );
    // Other tenants do not carry globex's policy.
    let acme_dev = s.token("dev", "acme", &["developer"], false);
    assert_eq!(
        s.call("GET", "acme", "/api/v1/agents", Some(&acme_dev))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_route_forwards_and_records_the_would_be_deny() {
    let routes = std::fs::read_to_string(repo("config/routes.yaml"))
        .unwrap()
        .replace(
            "{ id: change-agent, methods: [PUT, PATCH, DELETE],",
            "{ id: change-agent, shadow: true, methods: [PUT, PATCH, DELETE],",
        );
    let s = start(vec![("routes.yaml".to_string(), routes)]).await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    let reply = s
        .call("DELETE", "acme", "/api/v1/agents/7", Some(&viewer))
        .await;
    assert_eq!(reply.status, 200, "shadow routes do not enforce");
    assert_eq!(
        s.tollgate
            .metric("tollgate_authz_decisions_total{decision=\"deny\",shadow=\"true\"}"),
        1.0
    );
    assert!(
        s.tollgate.log().contains("shadow route: would deny"),
        "{}",
        s.tollgate.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_policy_reload_keeps_the_old_set_and_a_valid_one_is_never_served_stale() {
    let s = start(vec![]).await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    s.call("DELETE", "acme", "/api/v1/agents/7", Some(&viewer))
        .await
        .assert_problem(403, "forbidden");
    s.call("DELETE", "acme", "/api/v1/agents/7", Some(&viewer))
        .await
        .assert_problem(403, "forbidden");
    assert!(
        s.tollgate
            .metric("tollgate_decision_cache_requests_total{result=\"hit\"}")
            >= 1.0
    );

    let extra = s.tollgate.path("policies/viewers-delete.cedar");
    std::fs::write(&extra, "@id(\"viewers-delete\")\npermit (principal in Role::\"viewer\", action == Action::\"write\", resource) when { context.nope };\n").unwrap();
    let t = &s.tollgate;
    eventually("the invalid policy is refused", async || {
        t.metric("tollgate_config_reloads_total{result=\"error\"}") >= 1.0
    })
    .await;
    assert!(t.log().contains("viewers-delete.cedar:2"), "{}", t.log());
    s.call("DELETE", "acme", "/api/v1/agents/7", Some(&viewer))
        .await
        .assert_problem(403, "forbidden");

    std::fs::write(&extra, "@id(\"viewers-delete\")\npermit (principal in Role::\"viewer\", action == Action::\"write\", resource);\n").unwrap();
    let addr = s.tollgate.addr;
    let token = viewer.clone();
    eventually(
        "the valid policy applies, despite the cached deny",
        async || {
            let request = http::Request::delete("/api/v1/agents/7")
                .header("host", "acme.app.test")
                .header("authorization", &token)
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap();
            crate::support::send(addr, request).await.status() == 200
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_cache_never_serves_across_a_role_change() {
    let s = start(vec![]).await;
    let as_viewer = s.token("alice", "acme", &["viewer"], false);
    let as_admin = s.token("alice", "acme", &["tenant_admin"], false);
    for _ in 0..2 {
        s.call("DELETE", "acme", "/api/v1/agents/7", Some(&as_viewer))
            .await
            .assert_problem(403, "forbidden");
        assert_eq!(
            s.call("DELETE", "acme", "/api/v1/agents/7", Some(&as_admin))
                .await
                .status,
            200
        );
    }
    assert_eq!(
        s.tollgate
            .metric("tollgate_decision_cache_requests_total{result=\"hit\"}"),
        2.0
    );
    assert_eq!(
        s.tollgate
            .metric("tollgate_decision_cache_requests_total{result=\"miss\"}"),
        2.0
    );
}

fn tollgate(args: &[&str]) -> (bool, String) {
    let run = crate::support::tollgate::cli(args, &[]);
    (run.ok, format!("{}{}", run.stdout, run.stderr))
}

#[test]
fn authorize_names_the_deciding_policy_and_its_location() {
    let config = repo("config/tollgate.yaml");
    let config = config.to_str().unwrap();
    let (ok, out) = tollgate(&[
        "authorize",
        "--config",
        config,
        "--tenant",
        "globex",
        "--user",
        "gus",
        "--roles",
        "analyst",
        "--path",
        "/api/v1/analytics/usage",
    ]);
    assert!(!ok, "a deny exits non-zero: {out}");
    assert!(
        out.contains("DENY (403 forbidden)") && out.contains("stage:     authorize"),
        "{out}"
    );
    assert!(
        out.contains("analytics-needs-plan-feature  ") && out.contains("policies/guards.cedar:"),
        "{out}"
    );

    let (ok, out) = tollgate(&[
        "authorize",
        "--config",
        config,
        "--tenant",
        "acme",
        "--user",
        "alice",
        "--roles",
        "viewer",
        "--path",
        "/api/v1/agents/7",
        "--format",
        "json",
    ]);
    assert!(ok, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["decision"], "allow");
    assert_eq!(json["policies"][0]["id"], "viewer-read");
    assert!(
        json["policies"][0]["location"]
            .as_str()
            .unwrap()
            .ends_with("policies/roles.cedar:3"),
        "{json}"
    );
}

#[test]
fn the_shipped_policy_tests_pass_and_a_flipped_expectation_fails() {
    let config = repo("config/tollgate.yaml");
    let config = config.to_str().unwrap();
    let (ok, out) = tollgate(&["test", "--config", config]);
    assert!(ok, "{out}");
    assert!(out.contains(" passed, 0 failed"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo("policies/tests/default-pack.yaml")).unwrap();
    let flipped = shipped.replacen(
        "request: GET /api/v1/agents/7, expect: allow",
        "request: GET /api/v1/agents/7, expect: deny",
        1,
    );
    assert_ne!(flipped, shipped);
    std::fs::write(dir.path().join("flipped.yaml"), flipped).unwrap();
    let (ok, out) = tollgate(&["test", "--config", config, dir.path().to_str().unwrap()]);
    assert!(!ok, "{out}");
    // The FAIL names the file and line of the case.
    let flipped_file = dir.path().join("flipped.yaml");
    assert!(
        out.contains(&format!(
            "FAIL  {}:6: a viewer reads an agent",
            flipped_file.display()
        )) && out.contains(", 1 failed"),
        "{out}"
    );

    // JUnit for CI: one testcase per case, the failing one with its failure.
    let (ok, junit) = tollgate(&[
        "test",
        "--config",
        config,
        dir.path().to_str().unwrap(),
        "--format",
        "junit",
    ]);
    assert!(!ok);
    assert!(junit.starts_with("<?xml"), "{junit}");
    assert_eq!(junit.matches("<testcase ").count(), 24, "{junit}");
    assert_eq!(junit.matches("<failure ").count(), 1, "{junit}");
    assert!(junit.contains("tests=\"24\" failures=\"1\""), "{junit}");
    assert!(
        junit.contains("name=\"a viewer reads an agent\"") && junit.contains("line=\"6\""),
        "{junit}"
    );

    // Coverage: a case file exercising one policy leaves the others named.
    let one = tempfile::tempdir().unwrap();
    std::fs::write(
        one.path().join("one.yaml"),
        "cases:\n  - { name: a viewer reads, tenant: acme, principal: { id: a, roles: [viewer] }, request: GET /api/v1/agents/7, expect: allow }\n",
    )
    .unwrap();
    let (ok, out) = tollgate(&["test", "--config", config, one.path().to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("coverage: 1 of 11 policies determine a case"),
        "{out}"
    );
    assert!(
        out.contains("not exercised: tenant-admin-everything"),
        "{out}"
    );
    assert!(!out.contains("not exercised: viewer-read"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_quota_cost_is_charged_to_its_own_metric() {
    let plans = fixture::PLANS.replace(
        "  professional:\n",
        "  professional:\n    quotas: { agent_executions: { limit: 1, period: day }, api_calls: { limit: 100, period: month } }\n",
    );
    let s = start(vec![("plans.yaml".to_string(), plans)]).await;
    let developer = s.token("dev", "acme", &["developer"], false);
    assert_eq!(
        s.call("POST", "acme", "/api/v1/agents/7/execute", Some(&developer))
            .await
            .status,
        200
    );
    let refused = s
        .call("POST", "acme", "/api/v1/agents/7/execute", Some(&developer))
        .await;
    refused.assert_problem(429, "quota-exceeded");
    assert!(String::from_utf8_lossy(&refused.body).contains("agent_executions"));
    assert_eq!(
        s.call("GET", "acme", "/api/v1/agents/7", Some(&developer))
            .await
            .status,
        200,
        "reads cost no executions"
    );
}

#[test]
fn the_documented_policy_test_example_runs_and_passes() {
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    let section = readme.split("### Policy tests").nth(1).unwrap();
    let example = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("documented.yaml"), example).unwrap();
    let config = repo("config/tollgate.yaml");
    let (ok, out) = tollgate(&[
        "test",
        "--config",
        config.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("PASS  a viewer reads an agent  (Allow by viewer-read)"),
        "{out}"
    );
}
