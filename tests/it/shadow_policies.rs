//! A shadow policy set (`authorization.shadow_policies_dir`) decides every request beside the
//! enforced one: each disagreement is audited and counted per policy, and the answer always
//! comes from the enforced set.

use serde_json::Value;

use crate::authz::{shipped_policy_files, start_with};
use crate::support::eventually;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_set_is_audited_and_counted_and_never_changes_an_answer() {
    // The shadow set: the shipped one without `viewer-read`, and a forbid of workflows for users.
    let mut shadow: Vec<(String, String)> = shipped_policy_files()
        .into_iter()
        .filter(|(name, _)| name.starts_with("policies/"))
        .map(|(name, text)| {
            let text = text.replace(
                "@id(\"viewer-read\")\npermit (principal in Role::\"viewer\", action == Action::\"read\", resource);\n",
                "",
            );
            (name.replacen("policies/", "shadow/", 1), text)
        })
        .collect();
    shadow.push((
        "shadow/candidate.cedar".into(),
        "@id(\"no-workflows-for-users\")\nforbid (principal in Role::\"user\", action == Action::\"read\", resource is Workflow);\n".into(),
    ));
    let s = start_with(
        shadow,
        "  shadow_policies_dir: shadow\naudit:\n  file: { path: audit/audit.jsonl, fsync: always }\n",
    )
    .await;
    let cases = [
        ("acme", "alice", "viewer", "GET", "/api/v1/agents/7", 200),
        ("acme", "dave", "developer", "POST", "/api/v1/agents", 200),
        ("acme", "erin", "user", "GET", "/api/v1/workflows", 200),
        ("acme", "alice", "viewer", "DELETE", "/api/v1/agents/7", 403),
    ];
    let mut ids = Vec::new();
    for (tenant, sub, role, method, path, status) in cases {
        let token = s.token(sub, tenant, &[role], false);
        let reply = s.call(method, tenant, path, Some(&token)).await;
        assert_eq!(
            reply.status, status,
            "the enforced set answers: {sub} {method} {path}"
        );
        ids.push(reply.headers["x-request-id"].to_str().unwrap().to_string());
    }
    let path = s.tollgate.path("audit/audit.jsonl");
    let decisions = || -> Vec<Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["type"] == "decision")
            .collect()
    };
    eventually("every decision is on record", async || {
        decisions().len() >= 4
    })
    .await;
    let records = decisions();
    let of = |id: &str| records.iter().find(|r| r["request_id"] == id).unwrap();
    assert_eq!(
        of(&ids[0])["shadow_decision"],
        serde_json::json!({ "decision": "deny", "policies": [] })
    );
    assert!(of(&ids[1]).get("shadow_decision").is_none(), "they agree");
    assert_eq!(
        of(&ids[2])["shadow_decision"],
        serde_json::json!({ "decision": "deny", "policies": ["no-workflows-for-users"] })
    );
    assert!(
        of(&ids[3]).get("shadow_decision").is_none(),
        "both deny by default"
    );
    let metric = |policy: &str| {
        s.tollgate.metric(&format!(
            "tollgate_shadow_disagreements_total{{policy=\"{policy}\"}}"
        ))
    };
    assert_eq!(metric("viewer-read"), 1.0);
    assert_eq!(metric("no-workflows-for-users"), 1.0);
    assert_eq!(metric("user-read-execute"), 1.0);
}
