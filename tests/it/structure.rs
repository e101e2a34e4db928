//! The house rules that keep the code easy to carry on: no file in `src/` over 400 lines, and no
//! import cycle between modules (`scripts/cycles.py`, which CI also runs), shown to catch one.

use std::path::{Path, PathBuf};
use std::process::Command;

const MAX_LINES: usize = 400;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_file_is_over_400_lines() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these: {long:?}");
}

fn cycles(src: &Path) -> std::process::Output {
    Command::new("python3")
        .arg(repo().join("scripts/cycles.py"))
        .arg(src)
        .output()
        .expect("python3")
}

#[test]
fn the_modules_import_each_other_in_no_cycle() {
    let out = cycles(&repo().join("src"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn the_cycle_check_finds_a_cycle_through_a_grouped_import_and_a_child_path() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("b")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod c;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::{b::{inner::X}, c};\n").unwrap();
    std::fs::write(src.join("b/mod.rs"), "pub mod inner;\n").unwrap();
    // A doc link is no import: this comment must not make a second cycle.
    std::fs::write(
        src.join("b/inner.rs"),
        "//! See [`crate::a`].\npub struct X;\n",
    )
    .unwrap();
    std::fs::write(src.join("c.rs"), "pub fn f() { crate::b::inner::X; }\n").unwrap();
    assert!(cycles(src).status.success(), "no cycle yet");
    std::fs::write(
        src.join("b/inner.rs"),
        "pub struct X;\nfn g() { super::super::a::h(); }\n",
    )
    .unwrap();
    let out = cycles(src);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("a, b::inner"), "{report}");
}

/// The `TOLLGATE_*` names in `text`.
fn tollgate_variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("TOLLGATE_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // Part of a longer name (`X_TOLLGATE_…`, a header constant) is not a variable.
        let inside = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        rest = &rest[at + name.len()..];
        if !inside && name.len() > "TOLLGATE_".len() && !name.ends_with('_') {
            names.push(name);
        }
    }
    names
}

#[test]
fn every_environment_variable_the_code_and_examples_read_is_in_the_readme() {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    files.extend(crate::support::shipped_yaml("config"));
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let mut missing: Vec<String> = files
        .iter()
        .flat_map(|f| tollgate_variables(&std::fs::read_to_string(f).unwrap()))
        .filter(|name| !readme.contains(&format!("`{name}`")))
        .collect();
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "not in README.md: {missing:?}");
    assert_eq!(
        tollgate_variables("${TOLLGATE_LISTEN:-x} TOLLGATE_ X_TOLLGATE_AUTH"),
        ["TOLLGATE_LISTEN"]
    );
}

#[test]
fn the_crate_says_which_rust_it_needs() {
    let manifest = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(
        manifest
            .lines()
            .any(|l| l.starts_with("rust-version = \"1.")),
        "Cargo.toml has no rust-version"
    );
}
