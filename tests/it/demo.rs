//! `tollgate demo` runs the shipped example configuration in front of the built-in echo upstream.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::get;
use crate::support::tollgate::{BIN, admin_get, free_port, send_signal};

struct Demo {
    child: Child,
    admin: SocketAddr,
    /// The demo's own usage store directory.
    state: tempfile::TempDir,
    addr: SocketAddr,
    /// The banner, as printed.
    banner: String,
    /// `export NAME='value'` lines of the banner.
    credentials: HashMap<String, String>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    start_demo_in(tempfile::tempdir().unwrap())
}

/// A demo whose usage store lives in `state` (so a second demo can find the first one's counts).
fn start_demo_in(state: tempfile::TempDir) -> Demo {
    let state_dir = state.path().to_path_buf();
    start_demo_with(state, &[("TOLLGATE_STATE_DIR", state_dir.as_os_str())], &[])
}

/// A demo with these environment variables and extra flags (`state` is kept for the test).
fn start_demo_with(
    state: tempfile::TempDir,
    env: &[(&str, &std::ffi::OsStr)],
    flags: &[&std::ffi::OsStr],
) -> Demo {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let upstream: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // nginx's authorizer here, Envoy's and Traefik's on the next two ports.
    let authorizer: SocketAddr = format!(
        "127.0.0.1:{}",
        crate::support::tollgate::free_ports_in_a_row(3)
    )
    .parse()
    .unwrap();
    let mut child = Command::new(BIN)
        .env_remove("TOLLGATE_STATE_DIR")
        .envs(env.iter().copied())
        .env(
            "TOLLGATE_ADMIN_TOKEN",
            crate::support::tollgate::ADMIN_TOKEN,
        )
        .args([
            "demo",
            "--listen",
            &addr.to_string(),
            "--admin-listen",
            &admin.to_string(),
        ])
        .args(["--upstream-listen", &upstream.to_string()])
        .args(["--authorizer-listen", &authorizer.to_string()])
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, banner_lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let mut banner = String::new();
    while let Ok(line) = banner_lines.recv_timeout(Duration::from_secs(60)) {
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("Ctrl-C stops the demo") {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin_get(admin, "/readyz").is_none_or(|(status, _)| status != 200) {
        assert!(
            Instant::now() < deadline,
            "demo never became ready:\n{banner}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let credentials = banner
        .lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| {
            let (name, rest) = l.split_once("='")?;
            Some((name.to_string(), rest.split_once('\'')?.0.to_string()))
        })
        .collect();
    Demo {
        child,
        state,
        admin,
        addr,
        banner,
        credentials,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_proxies_to_its_echo_upstream_and_prints_curl_lines() {
    let mut demo = start_demo();
    let reply = get(
        demo.addr,
        "/anything?x=1",
        &[("host", "localhost"), ("x-forwarded-for", "6.6.6.6")],
    )
    .await;
    assert_eq!(reply.status, 200);
    let echoed = reply.json();
    assert_eq!(echoed["method"], "GET");
    assert_eq!(echoed["path"], "/anything");
    assert_eq!(echoed["query"], "x=1");
    assert_eq!(echoed["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        echoed["headers"]["x-request-id"],
        reply.headers["x-request-id"].to_str().unwrap()
    );
    assert!(
        demo.banner.contains(&format!(
            "curl -si -H 'Host: acme.localhost' http://{}/anything",
            demo.addr
        )),
        "{}",
        demo.banner
    );

    send_signal(demo.child.id(), libc::SIGTERM);
    assert!(demo.child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_resolves_tenants_and_callers_as_its_banner_says() {
    let demo = start_demo();
    let alice = format!("Bearer {}", demo.credentials["ALICE"]);

    // A token of acme on acme's subdomain: trusted tenant and principal headers, spoofs ignored.
    let reply = get(
        demo.addr,
        "/api/v1/agents/7",
        &[
            ("host", "acme.localhost"),
            ("authorization", &alice),
            ("x-tenant-id", "globex"),
            ("x-user-roles", "super_admin"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.upstream_header("x-tenant-id").as_deref(),
        Some("acme")
    );
    assert_eq!(
        reply.upstream_header("x-tenant-plan").as_deref(),
        Some("professional")
    );
    assert_eq!(reply.upstream_header("x-user-id").as_deref(), Some("alice"));
    assert_eq!(
        reply.upstream_header("x-user-roles").as_deref(),
        Some("viewer")
    );
    assert_eq!(
        reply.upstream_header("x-auth-method").as_deref(),
        Some("jwt")
    );

    get(demo.addr, "/public/x", &[("host", "initech.localhost")])
        .await
        .assert_problem(403, "tenant-suspended");
    get(demo.addr, "/public/x", &[("host", "umbrella.localhost")])
        .await
        .assert_problem(402, "subscription-inactive");
    get(
        demo.addr,
        "/api/v1/agents",
        &[("host", "globex.localhost"), ("authorization", &alice)],
    )
    .await
    .assert_problem(403, "tenant-mismatch");

    let key = &demo.credentials["GLOBEX_KEY"];
    let reply = get(
        demo.addr,
        "/t/globex/api/v1/agents",
        &[("host", "127.0.0.1"), ("x-api-key", key)],
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.json()["path"], "/api/v1/agents");
    assert_eq!(
        reply.upstream_header("x-tenant-id").as_deref(),
        Some("globex")
    );
    // The key is named after its hash, as `tollgate keys create` names one.
    let name = reply.upstream_header("x-user-id").unwrap_or_default();
    assert!(
        name.starts_with("globex-") && name.len() == "globex-".len() + 8,
        "{name}"
    );
    assert_eq!(
        reply.upstream_header("x-api-key"),
        None,
        "the key itself is not forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_rate_limits_globex_and_its_usage_survives_a_restart() {
    let mut demo = start_demo();
    let carol = format!("Bearer {}", demo.credentials["CAROL"]);
    let headers = [
        ("host", "globex.localhost"),
        ("authorization", carol.as_str()),
    ];
    let mut passed = 0;
    let refused = loop {
        let reply = get(demo.addr, "/api/v1/agents", &headers).await;
        assert!(
            reply.headers.contains_key("ratelimit-policy")
                && reply.headers.contains_key("ratelimit")
        );
        if reply.status != 200 {
            break reply;
        }
        passed += 1;
        assert!(passed <= 1000, "never limited");
    };
    refused.assert_problem(429, "rate-limited");
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(
        refused.headers["ratelimit-policy"],
        "\"hourly\";q=1000;w=3600"
    );
    // basic: 1,000 an hour with the default burst of 5%; one more token every 3.6 s, which a
    // very slow run of this loop could see.
    assert!((50..=51).contains(&passed), "{passed} passed");

    send_signal(demo.child.id(), libc::SIGTERM);
    assert!(demo.child.wait().unwrap().success());
    // Nothing runs: `tollgate usage` reads the store the demo flushed on its way out.
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tollgate.yaml");
    let run = crate::support::tollgate::cli(
        &[
            "usage",
            "--config",
            config.to_str().unwrap(),
            "--tenant",
            "globex",
            "--format",
            "json",
        ],
        &[("TOLLGATE_STATE_DIR", demo.state.path())],
    );
    assert!(run.ok, "{}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let api_calls = |report: &serde_json::Value| {
        report["quotas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["metric"] == "api_calls")
            .unwrap()["used"]
            .clone()
    };
    assert_eq!(
        api_calls(&report[0]),
        passed,
        "rate-limited requests are not counted"
    );

    let state = std::mem::replace(&mut demo.state, tempfile::tempdir().unwrap());
    let restarted = start_demo_in(state);
    let (status, body) = admin_get(restarted.admin, "/usage/globex").unwrap();
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        api_calls(&report),
        passed,
        "the count is the same after restarting the demo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_audits_an_allowed_and_a_denied_request_and_counts_them_per_tenant() {
    let demo = start_demo();
    let alice = format!("Bearer {}", demo.credentials["ALICE"]);
    let carol = format!("Bearer {}", demo.credentials["CAROL"]);
    let allowed = get(
        demo.addr,
        "/api/v1/agents/7",
        &[("host", "acme.localhost"), ("authorization", &alice)],
    )
    .await;
    assert_eq!(allowed.status, 200);
    let denied = get(
        demo.addr,
        "/api/v1/analytics/usage",
        &[("host", "globex.localhost"), ("authorization", &carol)],
    )
    .await;
    denied.assert_problem(403, "forbidden");
    assert!(demo.banner.contains("audit --file"), "{}", demo.banner);

    let audit = demo.state.path().join("audit.jsonl");
    let decision_of = |id: &str| -> Option<serde_json::Value> {
        std::fs::read_to_string(&audit)
            .ok()?
            .lines()
            // A line still being written does not parse yet; the next poll sees it whole.
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|r| r["request_id"] == id && r["type"] == "decision")
    };
    let allowed_id = allowed.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let denied_id = denied.headers["x-request-id"].to_str().unwrap().to_string();
    crate::support::eventually("both decisions are on record", async || {
        decision_of(&allowed_id).is_some() && decision_of(&denied_id).is_some()
    })
    .await;
    let allowed = decision_of(&allowed_id).unwrap();
    assert_eq!(
        (allowed["decision"].as_str(), allowed["stage"].as_str()),
        (Some("allow"), Some("forward"))
    );
    assert_eq!(allowed["policies"], serde_json::json!(["viewer-read"]));
    let denied = decision_of(&denied_id).unwrap();
    assert_eq!(
        (denied["decision"].as_str(), denied["stage"].as_str()),
        (Some("deny"), Some("authorize"))
    );
    assert_eq!(
        denied["policies"],
        serde_json::json!(["analytics-needs-plan-feature"])
    );

    let (_, metrics) = admin_get(demo.admin, "/metrics").unwrap();
    let counted = |tenant: &str, decision: &str| {
        metrics.lines().any(|l| {
            l.starts_with("tollgate_requests_total{")
                && l.contains(&format!("tenant=\"{tenant}\""))
                && l.contains(&format!("decision=\"{decision}\""))
        })
    };
    assert!(
        counted("acme", "allow") && counted("globex", "deny"),
        "{metrics}"
    );
}

/// The line of the banner that starts with `label` (`files`, `state`), its first word after it.
fn banner_field(banner: &str, label: &str) -> String {
    banner
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {label} line in:\n{banner}"))
        .to_string()
}

#[test]
fn each_demo_has_its_own_state_and_dir_keeps_edits_across_runs() {
    // Without TOLLGATE_STATE_DIR, two demos never share a store (nor /tmp/tollgate).
    let one = start_demo_with(tempfile::tempdir().unwrap(), &[], &[]);
    let two = start_demo_with(tempfile::tempdir().unwrap(), &[], &[]);
    let (state_one, state_two) = (
        banner_field(&one.banner, "state"),
        banner_field(&two.banner, "state"),
    );
    assert_ne!(state_one, state_two);
    assert!(!state_one.starts_with("/tmp/tollgate/") && state_one.ends_with("/state"));
    let files_one = banner_field(&one.banner, "files");
    assert!(
        std::path::Path::new(&files_one)
            .join("config/tollgate.yaml")
            .exists()
    );
    // Its signing key is its own, never the repository's (which anyone can read).
    let key = |dir: &str| {
        std::fs::read_to_string(std::path::Path::new(dir).join("config/keys/demo-es256.pem"))
            .unwrap()
    };
    assert_ne!(key(&files_one), key(env!("CARGO_MANIFEST_DIR")));
    assert_ne!(key(&files_one), key(&banner_field(&two.banner, "files")));
    drop(one);
    drop(two);

    // --dir: the files are the user's; an edit is kept and used by the next run.
    let kept = tempfile::tempdir().unwrap();
    let dir = kept.path().join("demo");
    let flags = [std::ffi::OsStr::new("--dir"), dir.as_os_str()];
    let mut first = start_demo_with(tempfile::tempdir().unwrap(), &[], &flags);
    assert_eq!(
        banner_field(&first.banner, "files"),
        dir.display().to_string()
    );
    assert_eq!(
        banner_field(&first.banner, "state"),
        dir.join("state").display().to_string()
    );
    send_signal(first.child.id(), libc::SIGTERM);
    assert!(first.child.wait().unwrap().success());
    let tenants = dir.join("config/tenants.yaml");
    let edited = std::fs::read_to_string(&tenants)
        .unwrap()
        .replace("    status: suspended\n", "    status: active\n");
    std::fs::write(&tenants, &edited).unwrap();
    let second = start_demo_with(tempfile::tempdir().unwrap(), &[], &flags);
    assert_eq!(std::fs::read_to_string(&tenants).unwrap(), edited);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let reply = runtime.block_on(get(
        second.addr,
        "/public/x",
        &[("host", "initech.localhost")],
    ));
    assert_eq!(
        reply.status, 200,
        "the edit (initech active) is what runs: {:?}",
        reply.body
    );
    assert!(dir.join("state/usage.redb").exists());
}
