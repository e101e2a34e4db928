//! Collecting every problem of a configuration file as `key.path: message` lines, and the
//! checks each section shares.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Collects errors as `key.path: message` lines.
pub(crate) struct Errors(pub Vec<String>);

impl Errors {
    pub fn push(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }

    pub(crate) fn positive(
        &mut self,
        key: &str,
        value: Option<crate::config::units::Dur>,
        default: Duration,
    ) -> Duration {
        let value = value.map_or(default, |d| d.0);
        if value.is_zero() {
            self.push(key, "must be greater than zero");
        }
        value
    }

    pub(crate) fn at_least(
        &mut self,
        key: &str,
        value: Option<usize>,
        default: usize,
        min: usize,
    ) -> usize {
        let value = value.unwrap_or(default);
        if value < min {
            self.push(key, format!("{value} is too small (minimum {min})"));
        }
        value
    }

    pub(crate) fn socket_addr(
        &mut self,
        key: &str,
        value: Option<&str>,
        default: &str,
    ) -> SocketAddr {
        let text = value.unwrap_or(default);
        text.parse().unwrap_or_else(|e| {
            self.push(
                key,
                format!("invalid address {text:?} ({e}); write e.g. \"0.0.0.0:8080\""),
            );
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }

    pub(crate) fn header_name(&mut self, key: &str, value: &str) -> http::HeaderName {
        http::HeaderName::from_bytes(value.as_bytes()).unwrap_or_else(|_| {
            self.push(key, format!("invalid header name {value:?}"));
            http::HeaderName::from_static("invalid")
        })
    }

    pub fn file(&mut self, key: &str, base: &Path, value: &str) -> PathBuf {
        let path = tidy(&base.join(value));
        if !path.is_file() {
            self.push(
                key,
                format!("file {value:?} not found (looked at {})", path.display()),
            );
        }
        path
    }
}

/// Resolves `..` lexically (`config/../policies` → `policies`) so that messages show the path an
/// operator would write.
pub(crate) fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        out
    }
}
