//! The tamper-evident audit trail: records written by a real Tollgate, across rotations, a
//! restart and a crash, pass `tollgate audit verify`; a changed field, a deleted line, a swapped
//! pair, an inserted line and a cut file are each named at the line where they happened.

use std::path::{Path, PathBuf};

use crate::support::fixture::{self, Keys};
use crate::support::tollgate::cli;
use crate::support::{Tollgate, Upstream, eventually, get};

const AUDIT: &str =
    "audit:\n  file: { path: audit/audit.jsonl, max_bytes: 2KiB, keep: 1000, fsync: always }\n";

fn lines(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| {
                    std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                        .count()
                })
                .sum()
        })
        .unwrap_or(0)
}

async fn traffic(tollgate: &Tollgate, requests: usize) {
    let before = lines(&tollgate.path("audit"));
    for _ in 0..requests {
        let reply = get(tollgate.addr, "/x", &[("x-tenant-id", "acme")]).await;
        assert_eq!(reply.status, 200);
    }
    let dir = tollgate.path("audit");
    // A decision and a completion record a request.
    eventually("the records are written", async || {
        lines(&dir) >= before + 2 * requests
    })
    .await;
}

fn stop(tollgate: &mut Tollgate) {
    tollgate.signal(15);
    assert!(tollgate.wait_exit().success());
}

/// `tollgate audit verify` on the files of `dir`: whether it passed, and what it printed.
fn verify(dir: &Path) -> (Option<i32>, String) {
    let pattern = dir.join("audit.jsonl*");
    let run = cli(&["audit", "verify", pattern.to_str().unwrap()], &[]);
    (run.code, format!("{}{}", run.stdout, run.stderr))
}

/// A copy of the trail in `dir`, with `change` applied to the lines of its first file (oldest).
fn tampered(dir: &Path, change: impl FnOnce(&mut Vec<String>)) -> (tempfile::TempDir, PathBuf) {
    let copy = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        std::fs::copy(file, copy.path().join(file.file_name().unwrap())).unwrap();
    }
    // `audit.jsonl` sorts before `audit.jsonl.<time>`: the oldest is the first rotated one.
    let oldest = copy.path().join(files[1].file_name().unwrap());
    let text = std::fs::read_to_string(&oldest).unwrap();
    let mut all: Vec<String> = text.lines().map(str::to_string).collect();
    change(&mut all);
    std::fs::write(&oldest, all.join("\n") + "\n").unwrap();
    (copy, oldest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_holds_across_rotation_restart_and_crash_and_names_each_kind_of_tampering() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut options = fixture::options(&keys, true, &["header"], &[]);
    options.extra = AUDIT.into();
    let mut tollgate = Tollgate::start(upstream.addr, options);
    traffic(&tollgate, 20).await;
    stop(&mut tollgate);
    // A crash mid-record: an incomplete line at the end, then a restart.
    let current = tollgate.path("audit/audit.jsonl");
    let mut text = std::fs::read(&current).unwrap();
    text.extend_from_slice(b"{\"v\":1,\"type\":\"decis");
    std::fs::write(&current, &text).unwrap();
    tollgate.restart();
    traffic(&tollgate, 20).await;
    stop(&mut tollgate);

    let dir = tollgate.path("audit");
    let files = std::fs::read_dir(&dir).unwrap().count();
    assert!(files > 2, "rotated into {files} files");
    let (code, said) = verify(&dir);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("restarted after a crash (20 bytes"), "{said}");
    assert!(said.contains("ok: 80 records, 2 checkpoints"), "{said}");

    type Change = Box<dyn FnOnce(&mut Vec<String>)>;
    let cases: [(&str, Change, &str); 5] = [
        (
            "a changed field",
            Box::new(|l| l[1] = l[1].replace("\"acme\"", "\"globex\"")),
            ":2: the line was changed",
        ),
        (
            "a deleted line",
            Box::new(|l| drop(l.remove(2))),
            ":3: 1 line(s) removed",
        ),
        (
            "a swapped pair",
            Box::new(|l| l.swap(1, 2)),
            ":2: this line and the next are in the wrong order",
        ),
        (
            "an inserted line",
            Box::new(|l| l.insert(2, "{\"v\":1,\"type\":\"decision\"}".into())),
            ":3: a record without its chain",
        ),
        (
            "a removed last line",
            Box::new(|l| drop(l.pop())),
            "line(s) removed before this one",
        ),
    ];
    for (what, change, expected) in cases {
        let (copy, _) = tampered(&dir, change);
        let (code, said) = verify(copy.path());
        assert_eq!(code, Some(1), "{what}: {said}");
        assert!(said.contains(expected), "{what}: {said}");
    }
    // A file cut in the middle of a line.
    let copy = tempfile::tempdir().unwrap();
    let text = std::fs::read(&current).unwrap();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(copy.path().join("audit.jsonl"), &text[..text.len() - 10]).unwrap();
    let (code, said) = verify(copy.path());
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("the last line is incomplete"), "{said}");
}
