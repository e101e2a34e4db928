pub mod admin;
pub mod client;
pub mod config;
pub mod fixture;
pub mod gateway;
pub mod oidc;
pub mod recorder;
pub mod redis;
pub mod tollgate;
pub mod upstream;

pub use client::{collect, get, raw, send};
pub use tollgate::{Options, Tollgate};
pub use upstream::Upstream;

/// The `.yaml` files of a directory of this repository, sorted.
pub fn shipped_yaml(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

/// Polls until `check` holds; the deadline only keeps a broken test from hanging.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
