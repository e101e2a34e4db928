//! `tollgate test`: policy test cases (YAML, documented in README.md#policy-tests), each a request
//! decided by the real pipeline ([`explain`]) against an expected decision and, optionally, the
//! policies expected to determine it. Reported as text (a `PASS`/`FAIL` line per case, a FAIL
//! naming its `file:line`, then which policies no case exercises) or as JUnit XML for CI.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::yaml;
use crate::explain::{Ask, PrincipalSpec, explain};
use crate::snapshot::Snapshot;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// The file's own plans and tenants (as in plans.yaml and tenants.yaml), in place of the
    /// configuration's: its cases then depend on no production data.
    plans: Option<serde_json::Value>,
    tenants: Option<serde_json::Value>,
    cases: Vec<TestCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestCase {
    name: String,
    tenant: String,
    principal: PrincipalSpec,
    /// `METHOD /path`.
    request: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    ip: Option<IpAddr>,
    expect: Expect,
    /// The determining policy ids, when the case pins them.
    policies: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Allow,
    Deny,
}

/// One case's result.
pub struct CaseResult {
    pub file: PathBuf,
    pub line: usize,
    pub name: String,
    /// What is wrong; empty when it passed.
    pub problems: Vec<String>,
    /// What decided: the policy ids, or the stage.
    pub by: String,
    allowed: bool,
}

/// Every case's result, and the policies none of them was determined by.
pub struct Report {
    pub cases: Vec<CaseResult>,
    /// (id, `file:line`) of the policies no case exercises.
    pub unexercised: Vec<(String, String)>,
    pub policies: usize,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.problems.is_empty())
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        for case in &self.cases {
            let verdict = if case.allowed { "Allow" } else { "Deny" };
            if case.problems.is_empty() {
                out.push_str(&format!(
                    "PASS  {}  ({verdict} by {})\n",
                    case.name, case.by
                ));
            } else {
                out.push_str(&format!(
                    "FAIL  {}:{}: {}  ({})\n",
                    case.file.display(),
                    case.line,
                    case.name,
                    case.problems.join("; ")
                ));
            }
        }
        let exercised = self.policies - self.unexercised.len();
        out.push_str(&format!(
            "coverage: {exercised} of {} policies determine a case\n",
            self.policies
        ));
        for (id, at) in &self.unexercised {
            out.push_str(&format!("  not exercised: {id}  {at}\n"));
        }
        let failed = self.cases.iter().filter(|c| !c.problems.is_empty()).count();
        out.push_str(&format!(
            "policies: {} passed, {failed} failed\n",
            self.cases.len() - failed
        ));
        out
    }

    /// JUnit XML, one `testsuite` per file.
    pub fn junit(&self) -> String {
        let files: BTreeSet<&Path> = self.cases.iter().map(|c| c.file.as_path()).collect();
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"tollgate policies\">\n",
        );
        for file in files {
            let cases: Vec<&CaseResult> = self.cases.iter().filter(|c| c.file == file).collect();
            let failures = cases.iter().filter(|c| !c.problems.is_empty()).count();
            let name = xml(&file.display().to_string());
            out.push_str(&format!(
                "  <testsuite name=\"{name}\" tests=\"{}\" failures=\"{failures}\">\n",
                cases.len()
            ));
            for case in cases {
                out.push_str(&format!(
                    "    <testcase name=\"{}\" classname=\"{name}\" file=\"{name}\" line=\"{}\"",
                    xml(&case.name),
                    case.line
                ));
                if case.problems.is_empty() {
                    out.push_str("/>\n");
                } else {
                    out.push_str(&format!(
                        ">\n      <failure message=\"{}\"/>\n    </testcase>\n",
                        xml(&case.problems.join("; "))
                    ));
                }
            }
            out.push_str("  </testsuite>\n");
        }
        out.push_str("</testsuites>\n");
        out
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The 1-based line of the `n`-th case named `name` in `text`.
fn case_line(text: &str, name: &str, n: usize) -> usize {
    let needle = format!("name: {name}");
    text.match_indices(&needle)
        .nth(n)
        .map_or(1, |(at, _)| text[..at].lines().count().max(1))
}

/// Runs every `*.yaml` test file in `dir`.
pub async fn run(snapshot: &Snapshot, dir: &Path) -> Result<Report, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(format!("{}: no test files (*.yaml)", dir.display()));
    }
    let mut cases = Vec::new();
    let mut determining: BTreeSet<String> = BTreeSet::new();
    for file in files {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let tests: TestFile = yaml::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let fixture = fixture(snapshot, &file, &tests)?;
        let snapshot = fixture.as_ref().unwrap_or(snapshot);
        let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for case in &tests.cases {
            let nth = seen.entry(case.name.as_str()).or_insert(0);
            let line = case_line(&text, &case.name, *nth);
            *nth += 1;
            let result = run_case(snapshot, &file, line, case).await?;
            determining.extend(result.1);
            cases.push(result.0);
        }
    }
    let all: Vec<(String, String)> = snapshot
        .authz
        .as_ref()
        .map(|authz| {
            let mut ids: Vec<String> = authz
                .policies
                .policies()
                .filter_map(|p| p.annotation("id").map(str::to_string))
                .collect();
            ids.sort();
            ids.dedup();
            ids.into_iter()
                .map(|id| {
                    let at = authz.policies.location(&id).unwrap_or("-").to_string();
                    (id, at)
                })
                .collect()
        })
        .unwrap_or_default();
    let policies = all.len();
    let unexercised = all
        .into_iter()
        .filter(|(id, _)| !determining.contains(id))
        .collect();
    Ok(Report {
        cases,
        unexercised,
        policies,
    })
}

/// The snapshot a file with its own `plans` and `tenants` runs against: the configuration with
/// those in place of its tenancy files (written, as JSON, to a directory of its own).
fn fixture(snapshot: &Snapshot, file: &Path, tests: &TestFile) -> Result<Option<Snapshot>, String> {
    let (plans, tenants) = match (&tests.plans, &tests.tenants) {
        (None, None) => return Ok(None),
        (Some(plans), Some(tenants)) => (plans, tenants),
        _ => {
            return Err(format!(
                "{}: a test file with its own plans needs its own tenants, and the other way round",
                file.display()
            ));
        }
    };
    let mut config = (*snapshot.config).clone();
    let tenancy = config.tenancy.as_mut().ok_or_else(|| {
        format!(
            "{}: the configuration has no tenancy section",
            file.display()
        )
    })?;
    let dir = tempfile::tempdir().map_err(|e| format!("a directory for the fixture: {e}"))?;
    let write = |name: &str, key: &str, value: &serde_json::Value| {
        let path = dir.path().join(name);
        let text = serde_json::json!({ key: value }).to_string();
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok::<_, String>(path)
    };
    tenancy.plans_file = write("plans.yaml", "plans", plans)?;
    tenancy.tenants_file = write("tenants.yaml", "tenants", tenants)?;
    let at = |e: Vec<String>| format!("{}: its fixture:\n{}", file.display(), e.join("\n"));
    Snapshot::load_fixture(config).map(Some).map_err(at)
}

/// One case, and the policies that determined it.
async fn run_case(
    snapshot: &Snapshot,
    file: &Path,
    line: usize,
    case: &TestCase,
) -> Result<(CaseResult, Vec<String>), String> {
    let at = format!("{}:{line}: case {:?}", file.display(), case.name);
    let (method, path) = case
        .request
        .split_once(' ')
        .ok_or_else(|| format!("{at}: request must be `METHOD /path`"))?;
    let ask = Ask {
        tenant: &case.tenant,
        principal: Some(&case.principal),
        method,
        path: path.trim(),
        headers: &case.headers,
        client_ip: case.ip.unwrap_or(IpAddr::from([127, 0, 0, 1])),
    };
    let outcome = explain(snapshot, &ask)
        .await
        .map_err(|e| format!("{at}: {e}"))?;
    let got = if outcome.allowed {
        Expect::Allow
    } else {
        Expect::Deny
    };
    let ids: Vec<String> = outcome.policies.iter().map(|(id, _)| id.clone()).collect();
    let mut problems = Vec::new();
    if got != case.expect {
        problems.push(format!(
            "expected {:?}, got {got:?} at stage {}",
            case.expect, outcome.stage
        ));
    }
    if let Some(expected) = &case.policies {
        let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
        let mut have: Vec<&str> = ids.iter().map(String::as_str).collect();
        want.sort_unstable();
        have.sort_unstable();
        if want != have {
            problems.push(format!("expected policies {want:?}, got {have:?}"));
        }
    }
    let by = if ids.is_empty() {
        outcome.stage.to_string()
    } else {
        ids.join(", ")
    };
    let result = CaseResult {
        file: file.to_path_buf(),
        line,
        name: case.name.clone(),
        problems,
        by,
        allowed: outcome.allowed,
    };
    Ok((result, ids))
}
