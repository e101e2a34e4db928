//! The audit file when writes fail part-way, as on a full disk: here a file-size limit set on
//! the running process (`prlimit`), which makes a write stop in the middle of a record exactly as
//! `ENOSPC` does. No torn line and no duplicate is left behind in either mode, best-effort losses
//! are counted exactly, and `tollgate audit` reads past a line that is not a record. The limit
//! holds for Tollgate's log file (its stderr) too: a log that cannot be written fails no request.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::support::fixture::{self, Keys};
use crate::support::tollgate::cli;
use crate::support::{Tollgate, Upstream, eventually, get};

/// Sets the soft file-size limit of process `pid` (`None`: unlimited).
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let limit = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    let pid = i32::try_from(pid).unwrap();
    // SAFETY: valid pointers to a local rlimit; no old value asked for.
    let done = unsafe {
        libc::prlimit(
            pid,
            libc::RLIMIT_FSIZE,
            &raw const limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Every record of the file; panics on a line that is not one, on a last line without its
/// newline, and on a record written twice.
fn records(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "a torn last line:\n{text}"
    );
    let mut seen = HashSet::new();
    text.lines()
        .map(|line| {
            let record: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("a torn line ({e}): {line}"));
            let key = format!("{}/{}", record["request_id"], record["type"]);
            assert!(seen.insert(key.clone()), "written twice: {key}");
            record
        })
        .collect()
}

/// The records of the file's complete lines, while the writer may be in the middle of one (the
/// final check is [`records`], once every record is accounted for).
fn written(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a torn line ({e}): {line}"))
        })
        .collect()
}

fn audited(keys: &Keys, mode: &str) -> crate::support::Options {
    fixture::full_stack(
        keys,
        &format!("audit:\n  file: {{ path: audit/audit.jsonl, fsync: never }}\n  mode: {mode}\n"),
    )
}

const ACME: [(&str, &str); 1] = [("host", "acme.app.test")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn best_effort_losses_on_a_full_disk_are_exact_and_leave_no_torn_line() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, audited(&keys, "best-effort"));
    let file = tollgate.path("audit/audit.jsonl");
    for _ in 0..3 {
        assert_eq!(get(tollgate.addr, "/public/x", &ACME).await.status, 200);
    }
    eventually("the first records are written", async || {
        written(&file).len() == 6
    })
    .await;

    // Room for part of one more record.
    let size = std::fs::metadata(&file).unwrap().len();
    limit_file_size(tollgate.pid(), Some(size + 200));
    for _ in 0..10 {
        assert_eq!(get(tollgate.addr, "/public/x", &ACME).await.status, 200);
    }
    let t = &tollgate;
    let lost = async || t.metric("tollgate_audit_lost_records_total");
    eventually("every record is written or counted lost", async || {
        written(&file).len() as f64 + lost().await == 26.0
    })
    .await;
    assert_eq!(records(&file).len() as f64 + lost().await, 26.0);
    assert!(lost().await >= 1.0, "the limit was reached");

    // Room again: records are written again, and the accounting stays exact.
    limit_file_size(tollgate.pid(), None);
    for _ in 0..2 {
        assert_eq!(get(tollgate.addr, "/public/x", &ACME).await.status, 200);
    }
    eventually("the new records are written", async || {
        written(&file).len() as f64 + lost().await == 30.0
    })
    .await;
    assert!(records(&file).len() >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_records_survive_a_full_disk_once_each_and_whole() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, audited(&keys, "required"));
    let file = tollgate.path("audit/audit.jsonl");
    assert_eq!(get(tollgate.addr, "/public/x", &ACME).await.status, 200);
    eventually("the first records are written", async || {
        written(&file).len() == 2
    })
    .await;

    let size = std::fs::metadata(&file).unwrap().len();
    limit_file_size(tollgate.pid(), Some(size + 700));
    // Served until the auditor notices the failed write, then refused.
    let mut served = Vec::new();
    let addr = tollgate.addr;
    eventually("requests are refused once the sink fails", async || {
        let reply = get(addr, "/public/x", &ACME).await;
        if reply.status == 200 {
            served.push(reply.headers["x-request-id"].to_str().unwrap().to_string());
            return false;
        }
        reply.assert_problem(503, "audit-unavailable");
        true
    })
    .await;
    assert!(!served.is_empty());

    limit_file_size(tollgate.pid(), None);
    eventually("the auditor is healthy again", async || {
        get(addr, "/public/x", &ACME).await.status == 200
    })
    .await;
    let t = &tollgate;
    eventually("every served request is on record", async || {
        let ids: HashSet<String> = written(&file)
            .iter()
            .filter(|r| r["type"] == "decision")
            .map(|r| r["request_id"].as_str().unwrap().to_string())
            .collect();
        served.iter().all(|id| ids.contains(id))
    })
    .await;
    assert_eq!(t.metric("tollgate_audit_lost_records_total"), 0.0);
    // Nothing more is sent: once the writer is between records, the whole file is checked.
    eventually("the writer is between records", async || {
        std::fs::read_to_string(&file).is_ok_and(|text| text.ends_with('\n'))
    })
    .await;
    records(&file);
}

#[test]
fn the_audit_command_reports_an_unreadable_line_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let record = |id: &str, tenant: &str| {
        format!(
            "{{\"type\":\"decision\",\"request_id\":\"{id}\",\"tenant\":\"{tenant}\",\"decision\":\"allow\",\"time\":\"2026-12-01T00:00:00Z\"}}\n"
        )
    };
    let mut text = record("r1", "acme").into_bytes();
    text.extend_from_slice(b"{\"type\":\"decision\",\"request_id\":\"torn\n");
    text.extend_from_slice(b"\xff\xfe not utf-8\n");
    text.extend_from_slice(record("r2", "acme").as_bytes());
    std::fs::write(&file, text).unwrap();
    let run = cli(
        &[
            "audit",
            "--file",
            file.to_str().unwrap(),
            "--tenant",
            "acme",
        ],
        &[],
    );
    assert!(run.ok, "{}", run.stderr);
    let ids: Vec<&str> = run
        .stdout
        .lines()
        .map(|l| if l.contains("\"r1\"") { "r1" } else { "r2" })
        .collect();
    assert_eq!(ids, ["r1", "r2"], "{}", run.stdout);
    assert!(
        run.stderr.contains("audit.jsonl:2: not a JSON record"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("audit.jsonl:3: not UTF-8"),
        "{}",
        run.stderr
    );
}

/// A sink that fails (here stdout, a pipe nobody reads any more) never keeps the records from the
/// other: the file gets every one, and each is counted lost once, for stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stdout_sink_keeps_no_record_from_the_file() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut options = fixture::full_stack(
        &keys,
        "audit:\n  stdout: true\n  file: { path: audit/audit.jsonl, fsync: never }\n  mode: best-effort\n",
    );
    options.stdout = crate::support::tollgate::Stdout::Closed;
    let tollgate = Tollgate::start(upstream.addr, options);
    for _ in 0..5 {
        assert_eq!(get(tollgate.addr, "/public/x", &ACME).await.status, 200);
    }
    let file = tollgate.path("audit/audit.jsonl");
    eventually("every record reaches the file", async || {
        written(&file).len() == 10
    })
    .await;
    let t = &tollgate;
    eventually("and is counted lost for stdout", async || {
        t.metric("tollgate_audit_lost_records_total") == 10.0
    })
    .await;
}
