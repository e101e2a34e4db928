//! `tollgate audit` on the files a real deployment has: streamed (a closed pipe ends it quietly),
//! over rotated files oldest first, and followed while they grow and rotate.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::tollgate::{BIN, cli};

fn record(id: &str, tenant: &str, decision: &str) -> String {
    let time = humantime::format_rfc3339_micros(std::time::SystemTime::now());
    format!(
        "{{\"v\":1,\"type\":\"decision\",\"time\":\"{time}\",\"request_id\":\"{id}\",\"tenant\":\"{tenant}\",\"decision\":\"{decision}\"}}\n"
    )
}

fn ids(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let text: String = (0..200_000)
        .map(|i| record(&format!("r{i}"), "acme", "allow"))
        .collect();
    std::fs::write(&file, text).unwrap();
    // `tollgate audit --file F | head -1`.
    let mut child = Command::new(BIN)
        .args(["audit", "--file"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("\"request_id\":\"r0\""), "{first}");
    drop(stdout);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn rotated_files_are_read_oldest_first_from_a_directory_or_a_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, ids: &[&str]| {
        let text: String = ids.iter().map(|id| record(id, "acme", "allow")).collect();
        std::fs::write(dir.path().join(name), text).unwrap();
    };
    write("audit.jsonl", &["c1", "c2"]);
    write("audit.jsonl.20261202T061500.000002Z", &["b1"]);
    write("audit.jsonl.20261201T061500.000001Z", &["a1", "a2"]);
    let expected = ["a1", "a2", "b1", "c1", "c2"];
    let by_dir = cli(&["audit", "--file", dir.path().to_str().unwrap()], &[]);
    assert_eq!(by_dir.code, Some(0), "{}", by_dir.stderr);
    assert_eq!(ids(&by_dir.stdout), expected);
    let pattern = dir.path().join("audit.jsonl*");
    let by_pattern = cli(&["audit", "--file", pattern.to_str().unwrap()], &[]);
    assert_eq!(ids(&by_pattern.stdout), expected, "{}", by_pattern.stderr);
    // Only the current file when it is named alone.
    let alone = dir.path().join("audit.jsonl");
    let current = cli(&["audit", "--file", alone.to_str().unwrap()], &[]);
    assert_eq!(ids(&current.stdout), ["c1", "c2"]);
    let nothing = dir.path().join("nothing*");
    let none = cli(&["audit", "--file", nothing.to_str().unwrap()], &[]);
    assert_eq!(none.code, Some(2), "{}", none.stderr);
}

/// Reads lines from a followed command until `want` have come (the deadline only stops a broken
/// test from hanging).
fn read_lines(lines: &std::sync::mpsc::Receiver<String>, want: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_millis(100)) {
            got.push(line);
        }
    }
    got
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn follow_prints_what_is_appended_across_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    std::fs::write(&file, record("old", "acme", "allow")).unwrap();
    let mut child = Command::new(BIN)
        .args(["audit", "--follow", "--tenant", "acme", "--file"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = send.send(line);
        }
    });
    assert_eq!(ids(&read_lines(&lines, 1).join("\n")), ["old"]);
    // A record written in two pieces is printed once, whole.
    let new = record("new", "acme", "deny");
    let (head, tail) = new.split_at(20);
    append(&file, head);
    std::thread::sleep(Duration::from_millis(500));
    append(&file, tail);
    append(&file, &record("other-tenant", "globex", "allow"));
    assert_eq!(ids(&read_lines(&lines, 1).join("\n")), ["new"]);
    // Rotation: the file is renamed and a new one started.
    append(&file, &record("before-rotation", "acme", "allow"));
    std::fs::rename(
        &file,
        dir.path().join("audit.jsonl.20261202T061500.000001Z"),
    )
    .unwrap();
    std::fs::write(&file, record("after-rotation", "acme", "allow")).unwrap();
    assert_eq!(
        ids(&read_lines(&lines, 2).join("\n")),
        ["before-rotation", "after-rotation"]
    );
    let _ = child.kill();
    let _ = child.wait();
}
