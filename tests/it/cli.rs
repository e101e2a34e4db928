//! The command line as a newcomer meets it: the explain commands decide exactly as the proxy
//! does, exit codes say allow (0), deny (1) or a mistake (2), bad arguments are refused with a
//! message, and the commands take their options the same way.

use std::path::{Path, PathBuf};

use crate::support::tollgate::{Run, cli};
use crate::support::{Upstream, raw};

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tollgate.yaml")
}

/// A command with the shipped configuration (state in a directory of its own).
fn run(args: &[&str]) -> Run {
    let state = tempfile::tempdir().unwrap();
    let config = shipped();
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", config.to_str().unwrap()]);
    cli(&all, &[("TOLLGATE_STATE_DIR", state.path())])
}

fn authorize(extra: &[&str]) -> Run {
    let mut args = vec!["authorize", "--tenant", "acme"];
    args.extend(extra);
    run(&args)
}

#[test]
fn authorize_exits_0_on_allow_1_on_deny_and_2_on_a_mistake() {
    let allowed = authorize(&[
        "--user",
        "alice",
        "--roles",
        "viewer",
        "--path",
        "/api/v1/agents/7",
    ]);
    assert_eq!(
        allowed.code,
        Some(0),
        "{}{}",
        allowed.stdout,
        allowed.stderr
    );
    let denied = authorize(&[
        "--user",
        "alice",
        "--roles",
        "viewer",
        "--method",
        "DELETE",
        "--path",
        "/api/v1/agents/7",
    ]);
    assert_eq!(denied.code, Some(1), "{}{}", denied.stdout, denied.stderr);
    for mistake in [
        vec!["--user", "a", "--path", "/x", "--tenant", "nobody"],
        vec!["--user", "a", "--path", "no slash"],
        vec!["--user", "a", "--path", "/x", "--header", "nocolon"],
    ] {
        let mut args = vec!["authorize"];
        if !mistake.contains(&"--tenant") {
            args.extend(["--tenant", "acme"]);
        }
        args.extend(mistake.iter().copied());
        let out = run(&args);
        assert_eq!(out.code, Some(2), "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.starts_with("error"), "{args:?}: {}", out.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_takes_the_method_as_the_proxy_does_case_included() {
    // The proxy: `curl -X get` matches no route (methods are case-sensitive).
    let upstream = Upstream::start().await;
    let keys = crate::support::fixture::Keys::generate();
    let tollgate = crate::support::Tollgate::start(
        upstream.addr,
        crate::support::fixture::full_stack(&keys, ""),
    );
    let reply = raw(
        tollgate.addr,
        b"get /public/docs HTTP/1.1\r\nHost: acme.app.test\r\nConnection: close\r\n\r\n",
        std::time::Duration::from_secs(5),
    )
    .await
    .text;
    assert!(reply.starts_with("HTTP/1.1 403"), "{reply}");
    assert!(reply.contains("no-route"), "{reply}");
    // The explainer, on the same routes: the same answer.
    let lower = authorize(&[
        "--user",
        "alice",
        "--roles",
        "viewer",
        "--method",
        "get",
        "--path",
        "/public/docs",
    ]);
    assert_eq!(lower.code, Some(1), "{}", lower.stdout);
    assert!(lower.stdout.contains("no-route"), "{}", lower.stdout);
    let upper = authorize(&[
        "--user",
        "alice",
        "--roles",
        "viewer",
        "--method",
        "GET",
        "--path",
        "/public/docs",
    ]);
    assert_eq!(upper.code, Some(0), "{}", upper.stdout);
}

#[test]
fn bad_arguments_are_refused_with_a_message_and_exit_2() {
    for args in [
        vec!["usage", "--period", "2026-13"],
        vec!["usage", "--period", "nov"],
        vec!["usage", "--period", "2026-02-29"],
        vec!["usage", "--period", "2026-11-1"],
        vec!["audit", "--file", "/dev/null", "--decision", "denied"],
        vec!["token", "--sub", "x", "--ttl", "0s"],
        vec!["keys", "create", "--tenant", "acme", "--expires-in", "0s"],
    ] {
        let out = if args[0] == "audit" {
            cli(&args, &[])
        } else {
            run(&args)
        };
        assert_eq!(out.code, Some(2), "{args:?}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("error"), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?} printed {}", out.stdout);
    }
    // Real dates are fine, a leap day included.
    let out = run(&["usage", "--period", "2028-02-29", "--format", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn roles_are_taken_comma_separated_or_repeated_by_every_command() {
    let claims = |token: &str| -> serde_json::Value {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let listed = run(&[
        "token",
        "--tenant",
        "acme",
        "--sub",
        "a",
        "--roles",
        "viewer,analyst",
    ]);
    let repeated = run(&[
        "token", "--tenant", "acme", "--sub", "a", "--role", "viewer", "--role", "analyst",
    ]);
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert_eq!(repeated.code, Some(0), "{}", repeated.stderr);
    assert_eq!(
        claims(&listed.stdout)["roles"],
        serde_json::json!(["viewer", "analyst"])
    );
    assert_eq!(
        claims(&repeated.stdout)["roles"],
        claims(&listed.stdout)["roles"]
    );
    let out = authorize(&[
        "--user",
        "a",
        "--role",
        "viewer",
        "--role",
        "x",
        "--path",
        "/api/v1/agents/7",
    ]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}

#[test]
fn check_defaults_its_configuration_like_the_other_commands_and_takes_files_as_arguments() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let state = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(crate::support::tollgate::BIN)
        .arg("check")
        .current_dir(root)
        .env_remove("TOLLGATE_CONFIG")
        .env("TOLLGATE_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let shipped = shipped();
    let positional = cli(
        &["check", shipped.to_str().unwrap()],
        &[("TOLLGATE_STATE_DIR", state.path())],
    );
    assert_eq!(positional.code, Some(0), "{}", positional.stderr);
    let missing = cli(&["check", "/nonexistent/tollgate.yaml"], &[]);
    assert_eq!(
        missing.code,
        Some(1),
        "an invalid configuration is a negative answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warns_loudly_about_a_key_shipped_in_the_repository() {
    let upstream = Upstream::start().await;
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/keys/demo-es256.pub.pem"),
    )
    .unwrap();
    let mut options = crate::support::Options::default().with(
        "identity",
        serde_json::json!({
            "jwt": [{
                "issuer": "https://issuer.test",
                "keys": [{ "kid": "k", "alg": "ES256", "public_key_file": "keys/copied.pem" }],
            }],
        }),
    );
    options.files.push(("keys/copied.pem".into(), shipped));
    let tollgate = crate::support::Tollgate::start(upstream.addr, options);
    let log = tollgate.log();
    assert!(
        log.contains("WARN") && log.contains("copied.pem is the demo key shipped"),
        "{log}"
    );
}

#[test]
fn a_default_deny_is_explained_with_the_context_and_each_permit_that_did_not_apply() {
    let out = authorize(&[
        "--user",
        "alice",
        "--roles",
        "viewer",
        "--method",
        "DELETE",
        "--path",
        "/api/v1/agents/7",
    ]);
    assert_eq!(out.code, Some(1));
    let text = &out.stdout;
    for expected in [
        "principal: alice (jwt)",
        "roles: viewer; scopes: -; mfa: false; credentials of: acme",
        "action:    write on Agent::\"7\"",
        "\"plan\":\"professional\"",
        "\"features\":[\"advanced_analytics\"",
        "\"client_ip\":\"127.0.0.1\"",
        "\"mfa\":false",
        "policies:  - (no policy permits: default deny)",
        "not this:  viewer-read  ",
        "roles.cedar:3: its action is read, the route's is write",
        "not this:  tenant-admin-everything  ",
        "it is for role tenant_admin; the principal has [viewer]",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    // The same as JSON.
    let json = authorize(&[
        "--user",
        "alice",
        "--roles",
        "viewer",
        "--method",
        "DELETE",
        "--path",
        "/api/v1/agents/7",
        "--format",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["context"]["plan"], "professional");
    assert!(
        value["unmatched"]
            .as_array()
            .is_some_and(|u| u.iter().any(|p| p["id"] == "viewer-read"))
    );
}

#[test]
fn a_refused_token_is_explained_as_the_proxy_explains_it() {
    let out = authorize(&[
        "--token",
        "eyJhbGciOiJFUzI1NiIsImtpZCI6ImRlbW8tZXMyNTYifQ.e30.AAAA",
        "--path",
        "/api/v1/agents/7",
    ]);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stdout.contains("DENY (401 invalid-credentials)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("why:       bad signature"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_policy_test_file_can_bring_its_own_plans_and_tenants() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("fixture.yaml"),
        "plans:
  solo:
    features: [advanced_analytics]
  bare: {}
tenants:
  - { id: testco, plan: solo, status: active }
  - { id: plainco, plan: bare, status: active }
cases:
  - { name: with analytics, tenant: testco, principal: { id: ann, roles: [analyst] }, request: GET /api/v1/analytics/usage, expect: allow, policies: [analyst-read-analytics] }
  - { name: without analytics, tenant: plainco, principal: { id: ann, roles: [analyst] }, request: GET /api/v1/analytics/usage, expect: deny, policies: [analytics-needs-plan-feature] }
",
    )
    .unwrap();
    let out = run(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("policies: 2 passed, 0 failed"),
        "{}",
        out.stdout
    );
    // Without its fixture, testco is nobody: a mistake in the file (exit 2).
    std::fs::write(
        dir.path().join("fixture.yaml"),
        "cases:\n  - { name: x, tenant: testco, principal: { id: a }, request: GET /x, expect: deny }\n",
    )
    .unwrap();
    let out = run(&["test", dir.path().to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("unknown tenant \"testco\""),
        "{}",
        out.stderr
    );
}
