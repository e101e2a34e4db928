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
