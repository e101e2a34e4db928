//! Audit records: one decision record (and a completion record when forwarded) per request in
//! every outcome, the documented schema, counts under load and at shutdown, failing sinks in both
//! modes, rotation, and metrics that parse and match the traffic.

use std::collections::HashMap;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::support::fixture::{self, Keys, bearer, claims, sign};
use crate::support::{Options, Tollgate, Upstream, eventually, get};

/// The full stack with the given audit section.
fn options(keys: &Keys, audit: &str) -> Options {
    fixture::full_stack(keys, audit)
}

const AUDIT: &str = "audit:\n  file: { path: audit/audit.jsonl, fsync: always }\n";

/// Records by request id, from every audit file in the directory (rotated ones too).
fn records(tollgate: &Tollgate) -> HashMap<String, Vec<Value>> {
    let mut by_id: HashMap<String, Vec<Value>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(tollgate.path("audit")) else {
        return by_id;
    };
    for entry in entries {
        // Rotation may rename a file between listing and reading; the next poll sees it again.
        let Ok(text) = std::fs::read_to_string(entry.unwrap().path()) else {
            continue;
        };
        // The writer may be halfway through a line: read complete lines only.
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        for line in complete.lines() {
            let record: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            // A checkpoint seals the chain; it records no request.
            if record["type"] == "checkpoint" {
                continue;
            }
            by_id
                .entry(record["request_id"].as_str().unwrap().to_string())
                .or_default()
                .push(record);
        }
    }
    by_id
}

fn total(by_id: &HashMap<String, Vec<Value>>) -> usize {
    by_id.values().map(Vec::len).sum()
}

/// (name, tenant, path, authorization, expected status, expected deciding stage).
type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_leaves_its_decision_record_and_forwarded_ones_a_completion() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, AUDIT));
    let token = |sub: &str, tenant: &str, roles: &[&str]| {
        bearer(&sign(
            &keys,
            Algorithm::HS256,
            "hs",
            &claims(sub, tenant, roles),
        ))
    };
    let (viewer, carol) = (
        token("alice", "acme", &["viewer"]),
        token("carol", "globex", &["user"]),
    );
    let cases: Vec<Case> = vec![
        (
            "allowed",
            "acme",
            "/api/v1/agents/7",
            Some(&viewer),
            200,
            "forward",
        ),
        (
            "unknown tenant",
            "nobody",
            "/api/v1/agents",
            None,
            404,
            "tenant",
        ),
        (
            "no credentials",
            "acme",
            "/api/v1/agents",
            None,
            401,
            "identity",
        ),
        ("no route", "acme", "/nowhere", Some(&viewer), 403, "route"),
        (
            "rate limit passes",
            "globex",
            "/api/v1/agents",
            Some(&carol),
            200,
            "forward",
        ),
        (
            "rate limited",
            "globex",
            "/api/v1/agents",
            Some(&carol),
            429,
            "ratelimit",
        ),
    ];
    let mut ids = Vec::new();
    for (name, tenant, path, auth, status, _) in &cases {
        let host = format!("{tenant}.app.test");
        let mut headers = vec![("host", host.as_str()), ("user-agent", "audit-test/1")];
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        let reply = get(tollgate.addr, path, &headers).await;
        assert_eq!(reply.status.as_u16(), *status, "{name}");
        ids.push(reply.headers["x-request-id"].to_str().unwrap().to_string());
    }
    // A policy deny, with its determining policy, by DELETE.
    let delete = http::Request::delete("/api/v1/agents/7")
        .header("host", "acme.app.test")
        .header("authorization", &viewer)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let denied = crate::support::collect(crate::support::send(tollgate.addr, delete).await).await;
    denied.assert_problem(403, "forbidden");
    let denied_id = denied.headers["x-request-id"].to_str().unwrap().to_string();

    let t = &tollgate;
    eventually("every record is written", async || total(&records(t)) >= 9).await;
    let by_id = records(&tollgate);
    for ((name, tenant, _, _, status, stage), id) in cases.iter().zip(&ids) {
        let recs = &by_id[id];
        let decision = recs
            .iter()
            .find(|r| r["type"] == "decision")
            .unwrap_or_else(|| panic!("{name}: no decision record"));
        assert_eq!(decision["stage"], *stage, "{name}: {decision}");
        assert_eq!(decision["v"], 1);
        if *status == 200 {
            assert_eq!(recs.len(), 2, "{name}: decision + completion: {recs:?}");
            assert_eq!(decision["decision"], "allow");
            let completion = recs.iter().find(|r| r["type"] == "completion").unwrap();
            assert_eq!(completion["http"]["status"], 200);
            assert!(completion["bytes"]["out"].as_u64().unwrap() > 0);
            assert!(completion["timing_us"]["total"].as_u64().is_some());
            assert_eq!(decision["tenant"], *tenant);
        } else {
            assert_eq!(recs.len(), 1, "{name}: a refusal has one record: {recs:?}");
            assert_eq!(decision["decision"], "deny");
            assert_eq!(decision["http"]["status"], *status);
            assert!(decision["problem"].is_string(), "{name}");
        }
    }
    let allowed = &by_id[&ids[0]];
    let decision = allowed.iter().find(|r| r["type"] == "decision").unwrap();
    assert_eq!(decision["policies"], serde_json::json!(["viewer-read"]));
    assert_eq!(
        decision["principal"],
        serde_json::json!({"id": "alice", "kind": "user", "auth": "jwt"})
    );
    assert_eq!(
        decision["resource"],
        serde_json::json!({"type": "Agent", "id": "7"})
    );
    assert_eq!(decision["client"]["user_agent"], "audit-test/1");
    let denied = &by_id[&denied_id][0];
    assert_eq!(denied["stage"], "authorize");
    assert_eq!(denied["action"], "write");
}

/// The documented schema (README.md#audit-records): every key a record may have.
const DOCUMENTED: &[&str] = &[
    "v",
    "type",
    "time",
    "request_id",
    "tenant",
    "plan",
    "principal",
    "route",
    "action",
    "resource",
    "decision",
    "stage",
    "problem",
    "policies",
    "errors",
    "shadow",
    "http",
    "client",
    "bytes",
    "timing_us",
    "aborted",
    "traceparent",
    "chain",
    "inputs",
    "shadow_decision",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_follow_the_documented_schema_and_redaction_applies() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let audit = "audit:\n  file: { path: audit/audit.jsonl }\n  redact: { client_ip: hash, user_agent: drop }\n";
    let tollgate = Tollgate::start(upstream.addr, options(&keys, audit));
    let viewer = bearer(&sign(
        &keys,
        Algorithm::HS256,
        "hs",
        &claims("alice", "acme", &["viewer"]),
    ));
    get(
        tollgate.addr,
        "/api/v1/agents",
        &[
            ("host", "acme.app.test"),
            ("authorization", &viewer),
            ("user-agent", "secret-agent"),
        ],
    )
    .await;
    let t = &tollgate;
    eventually("records are written", async || total(&records(t)) >= 2).await;
    readme_documents_the_schema();
    for record in records(&tollgate).values().flatten() {
        for key in record.as_object().unwrap().keys() {
            assert!(
                DOCUMENTED.contains(&key.as_str()),
                "undocumented key {key}: {record}"
            );
        }
        assert!(humantime::parse_rfc3339_weak(record["time"].as_str().unwrap()).is_ok());
        let client = &record["client"];
        if let Some(ip) = client.get("ip") {
            assert_eq!(ip.as_str().unwrap().len(), 16, "hashed: {ip}");
        }
        assert!(client.get("user_agent").is_none(), "dropped");
        // What the decision saw, redacted alike, and never a credential.
        if record["type"] == "decision" {
            let inputs = &record["inputs"];
            assert_eq!(inputs["v"], 1, "{record}");
            assert_eq!(inputs["principal"]["id"], "alice");
            assert_eq!(inputs["principal"]["roles"], serde_json::json!(["viewer"]));
            assert_eq!(inputs["principal"]["auth"], "jwt");
            assert_eq!(inputs["tenant"]["id"], "acme");
            assert_eq!(inputs["tenant"]["plan"], record["plan"]);
            assert_eq!(inputs["request"]["method"], "GET");
            assert_eq!(inputs["request"]["path"], "/api/v1/agents");
            assert_eq!(inputs["request"]["client_ip"], client["ip"]);
        }
        let text = record.to_string();
        assert!(!text.contains(&viewer[7..]), "the token is not on record");
    }
}

fn readme_documents_the_schema() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
            .unwrap();
    for key in DOCUMENTED {
        assert!(
            readme.contains(&format!("`{key}`")),
            "README.md does not document `{key}`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_concurrent_load_and_at_sigterm_every_request_is_on_record() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut tollgate = Tollgate::start(
        upstream.addr,
        options(
            &keys,
            "audit:\n  file: { path: audit/audit.jsonl, fsync: never }\n",
        ),
    );
    let viewer = bearer(&sign(
        &keys,
        Algorithm::HS256,
        "hs",
        &claims("alice", "acme", &["viewer"]),
    ));
    let addr = tollgate.addr;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let auth = viewer.clone();
            let path = if i % 4 == 0 {
                "/nowhere"
            } else {
                "/api/v1/agents"
            };
            tokio::spawn(async move {
                get(
                    addr,
                    path,
                    &[("host", "acme.app.test"), ("authorization", &auth)],
                )
                .await
                .status
                .as_u16()
            })
        })
        .collect();
    let (mut allowed, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            200 => allowed += 1,
            _ => refused += 1,
        }
    }
    assert_eq!((allowed, refused), (150, 50));
    // Slow requests in flight when SIGTERM arrives still end up on record.
    let slow: Vec<_> = (0..20)
        .map(|_| {
            let auth = viewer.clone();
            tokio::spawn(async move {
                get(
                    addr,
                    "/public/slow",
                    &[("host", "acme.app.test"), ("authorization", &auth)],
                )
                .await
                .status
                .as_u16()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    tollgate.signal(libc::SIGTERM);
    for task in slow {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert!(tollgate.wait_exit().success());
    let by_id = records(&tollgate);
    assert_eq!(by_id.len(), 220, "one id per request");
    assert_eq!(total(&by_id), 2 * 150 + 50 + 2 * 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_sink_is_never_synced_and_keeps_every_record() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("audit.pipe");
    let path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path and a plain mode.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    // A log collector reading the pipe (it also lets Tollgate's open of the pipe complete).
    let reader = std::thread::spawn({
        let fifo = fifo.clone();
        move || std::fs::read_to_string(fifo).unwrap()
    });
    // `required` and `fsync: always`: a sync of the pipe (EINVAL) would refuse the request.
    let audit = format!(
        "audit:\n  file: {{ path: {}, fsync: always }}\n  mode: required\n",
        fifo.display()
    );
    let mut tollgate = Tollgate::start(upstream.addr, options(&keys, &audit));
    for _ in 0..3 {
        let reply = get(tollgate.addr, "/public/x", &[("host", "acme.app.test")]).await;
        assert_eq!(reply.status, 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tollgate.metric("tollgate_audit_write_errors_total"), 0.0);
    tollgate.signal(libc::SIGTERM);
    assert!(tollgate.wait_exit().success());
    let lines = reader.join().unwrap();
    let (checkpoints, records): (Vec<&str>, Vec<&str>) = lines
        .lines()
        .partition(|l| l.contains("\"type\":\"checkpoint\""));
    assert_eq!(
        checkpoints.len(),
        1,
        "the writer seals the chain when it stops"
    );
    assert_eq!(
        records.len(),
        6,
        "a decision and a completion record per request"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_refuses_requests_when_required_and_counts_losses_when_best_effort() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    let required = Tollgate::start(
        upstream.addr,
        options(
            &keys,
            "audit:\n  file: { path: /dev/full }\n  mode: required\n",
        ),
    );
    let addr = required.addr;
    eventually("requests are refused once the sink fails", async || {
        let reply = get(addr, "/public/x", &[("host", "acme.app.test")]).await;
        reply.status == 503 && String::from_utf8_lossy(&reply.body).contains("audit-unavailable")
    })
    .await;
    assert!(required.metric("tollgate_audit_write_errors_total") >= 1.0);

    let best_effort = Tollgate::start(
        upstream.addr,
        options(
            &keys,
            "audit:\n  file: { path: /dev/full }\n  mode: best-effort\n",
        ),
    );
    for _ in 0..5 {
        assert_eq!(
            get(best_effort.addr, "/public/x", &[("host", "acme.app.test")])
                .await
                .status,
            200
        );
    }
    let t = &best_effort;
    eventually("every lost record is counted", async || {
        t.metric("tollgate_audit_lost_records_total") >= 10.0
    })
    .await;
    assert!(best_effort.log().contains("audit records lost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_every_line() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let audit = "audit:\n  file: { path: audit/audit.jsonl, max_bytes: 2KiB, keep: 1000 }\n";
    let tollgate = Tollgate::start(upstream.addr, options(&keys, audit));
    let t = &tollgate;
    // Six rounds, each written before the next starts: every round is a write of its own, over
    // 2 KiB, so each one after the first rotates, however the writer's timing batches lines.
    for round in 1..=6 {
        for _ in 0..10 {
            let reply = get(tollgate.addr, "/public/x", &[("host", "acme.app.test")]).await;
            assert_eq!(reply.status, 200);
        }
        eventually("the round's records are written", async || {
            total(&records(t)) == 20 * round
        })
        .await;
    }
    let files = std::fs::read_dir(tollgate.path("audit")).unwrap().count();
    assert!(files > 2, "rotated into {files} files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_records_are_one_per_request_written_at_completion() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(
        upstream.addr,
        options(
            &keys,
            "audit:\n  file: { path: audit/audit.jsonl }\n  records: merged\n",
        ),
    );
    let reply = get(tollgate.addr, "/public/x", &[("host", "acme.app.test")]).await;
    let id = reply.headers["x-request-id"].to_str().unwrap().to_string();
    let t = &tollgate;
    eventually("the record is written", async || total(&records(t)) >= 1).await;
    let recs = &records(&tollgate)[&id];
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["type"], "request");
    assert_eq!(recs[0]["decision"], "allow");
    assert_eq!(recs[0]["http"]["status"], 200);
    assert!(recs[0]["bytes"]["out"].as_u64().unwrap() > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_parse_as_prometheus_text_and_match_the_traffic() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, AUDIT));
    for _ in 0..3 {
        get(tollgate.addr, "/public/x", &[("host", "acme.app.test")]).await;
    }
    get(
        tollgate.addr,
        "/api/v1/agents",
        &[("host", "acme.app.test")],
    )
    .await;
    let (_, text) = tollgate.admin_get("/metrics");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    assert_eq!(
        value(
            "tollgate_requests_total",
            &[
                ("tenant", "acme"),
                ("decision", "allow"),
                ("stage", "forward")
            ]
        ),
        3.0
    );
    assert_eq!(
        value(
            "tollgate_requests_total",
            &[
                ("tenant", "acme"),
                ("decision", "deny"),
                ("stage", "identity")
            ]
        ),
        1.0
    );
    assert_eq!(
        value("tollgate_http_requests_total", &[("code", "200")]),
        3.0
    );
    assert_eq!(
        value("tollgate_http_requests_total", &[("code", "401")]),
        1.0
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "tollgate_stage_duration_seconds_count")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_labels_are_capped_and_the_audit_command_filters_records() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut options = options(&keys, AUDIT);
    options.extra.push_str("metrics:\n  max_tenants: 1\n");
    let tollgate = Tollgate::start(upstream.addr, options);
    for tenant in ["acme", "globex", "newco"] {
        get(
            tollgate.addr,
            "/public/x",
            &[("host", &format!("{tenant}.app.test"))],
        )
        .await;
    }
    get(
        tollgate.addr,
        "/api/v1/agents",
        &[("host", "acme.app.test")],
    )
    .await;
    let (_, metrics) = tollgate.admin_get("/metrics");
    let tenants: std::collections::BTreeSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("tollgate_requests_total{"))
        .filter_map(|l| l.split("tenant=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(
        tenants.into_iter().collect::<Vec<_>>(),
        ["acme", "other"],
        "{metrics}"
    );

    let t = &tollgate;
    eventually("records are written", async || total(&records(t)) >= 7).await;
    let file = tollgate.path("audit/audit.jsonl");
    let file = file.to_str().unwrap();
    let run = crate::support::tollgate::cli(
        &[
            "audit",
            "--file",
            file,
            "--decision",
            "deny",
            "--since",
            "1h",
        ],
        &[],
    );
    assert!(run.ok, "{}", run.stderr);
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["stage"], "identity");
    let run = crate::support::tollgate::cli(&["audit", "--file", file, "--tenant", "globex"], &[]);
    let kinds: Vec<String> = run
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["decision", "completion"],
        "a kept decision brings its completion"
    );
}
