//! `tollgate replay`: the audit log of real traffic through a Tollgate with the shipped policies,
//! decided again against a candidate with one permit removed and one forbid added, reports
//! exactly the requests that flip, which a Tollgate running the candidate then answers so.

use std::io::Write;

use serde_json::Value;

use crate::authz::{Setup, start_with};
use crate::support::eventually;
use crate::support::tollgate::cli;

const AUDIT: &str = "audit:\n  file: { path: audit/audit.jsonl, fsync: always }\n";

/// The shipped roles without `viewer-read`, and a forbid of workflows for users.
fn candidate_files() -> Vec<(String, String)> {
    let roles = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/roles.cedar"),
    )
    .unwrap();
    let without = roles.replace(
        "@id(\"viewer-read\")\npermit (principal in Role::\"viewer\", action == Action::\"read\", resource);\n",
        "",
    );
    assert_ne!(without, roles, "the permit is there to remove");
    vec![
        ("policies/roles.cedar".into(), without),
        (
            "policies/candidate.cedar".into(),
            "@id(\"no-workflows-for-users\")\nforbid (principal in Role::\"user\", action == Action::\"read\", resource is Workflow);\n".into(),
        ),
    ]
}

/// The traffic, as (tenant, sub, roles, method, path).
const TRAFFIC: [(&str, &str, &str, &str, &str); 5] = [
    ("acme", "alice", "viewer", "GET", "/api/v1/agents/7"),
    ("acme", "alice", "viewer", "DELETE", "/api/v1/agents/7"),
    // globex's plan allows one request a minute in the fixture: one.
    ("globex", "carol", "user", "GET", "/api/v1/workflows"),
    ("acme", "erin", "user", "GET", "/api/v1/agents"),
    ("acme", "dave", "developer", "POST", "/api/v1/agents"),
];

async fn statuses(s: &Setup) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for (tenant, sub, role, method, path) in TRAFFIC {
        let token = s.token(sub, tenant, &[role], false);
        let reply = s.call(method, tenant, path, Some(&token)).await;
        let id = reply.headers["x-request-id"].to_str().unwrap().to_string();
        out.push((reply.status.as_u16(), id));
    }
    out
}

fn replay(args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["replay"];
    all.extend_from_slice(args);
    let run = cli(&all, &[]);
    (run.code, format!("{}{}", run.stdout, run.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reports_exactly_the_decisions_a_candidate_flips() {
    let recorded = start_with(vec![], AUDIT).await;
    let before = statuses(&recorded).await;
    let audit = recorded.tollgate.path("audit/audit.jsonl");
    let path = audit.clone();
    eventually("every decision is on record", async || {
        std::fs::read_to_string(&path)
            .is_ok_and(|t| t.matches("\"type\":\"decision\"").count() >= 5)
    })
    .await;
    let candidate = start_with(candidate_files(), "").await;
    let after = statuses(&candidate).await;
    // Which requests flip, according to a Tollgate running the candidate.
    let flipped: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|((a, _), (b, _))| (*a == 200) != (*b == 200))
        .map(|((_, id), _)| id.as_str())
        .collect();
    assert_eq!(flipped.len(), 2, "{before:?} {after:?}");

    let config = candidate.tollgate.path("tollgate.yaml");
    let (code, out) = replay(&[
        "--audit",
        audit.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(1), "{out}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["replayed"], 5, "{report}");
    let changes = report["changes"].as_array().unwrap();
    let mut examples: Vec<&str> = changes
        .iter()
        .flat_map(|c| c["examples"].as_array().unwrap())
        .map(|e| e.as_str().unwrap())
        .collect();
    examples.sort_unstable();
    let mut expected = flipped.clone();
    expected.sort_unstable();
    assert_eq!(examples, expected, "{report}");
    let viewer = changes.iter().find(|c| c["tenant"] == "acme").unwrap();
    assert_eq!(
        (
            viewer["route"].as_str(),
            viewer["from"].as_str(),
            viewer["to"].as_str()
        ),
        (Some("read-agent"), Some("allow"), Some("deny"))
    );
    assert_eq!(
        viewer["policies_before"],
        serde_json::json!(["viewer-read"])
    );
    let user = changes.iter().find(|c| c["tenant"] == "globex").unwrap();
    assert_eq!(
        user["policies_after"],
        serde_json::json!(["no-workflows-for-users"])
    );

    // gzip-compressed, with the text format, filtered to one tenant.
    let gz = recorded
        .tollgate
        .path("audit/audit.jsonl.20261203T000000Z.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    encoder.write_all(&std::fs::read(&audit).unwrap()).unwrap();
    encoder.finish().unwrap();
    let (code, out) = replay(&[
        "--audit",
        gz.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--tenant",
        "globex",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with("replayed 1 decisions")
            && out.contains("globex list-workflows allow -> deny: 1"),
        "{out}"
    );

    // Against the configuration that made them, nothing changes.
    let same = recorded.tollgate.path("tollgate.yaml");
    let (code, out) = replay(&[
        "--audit",
        audit.to_str().unwrap(),
        "--config",
        same.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(": 0 would change"), "{out}");
    // A mistake is exit 2.
    let (code, _) = replay(&[
        "--audit",
        "/nonexistent/audit.jsonl",
        "--config",
        same.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(2));
}
