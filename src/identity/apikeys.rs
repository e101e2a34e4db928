//! API keys: `tgk_<tenant>_<48 hex digits>`, stored only as SHA-256 hashes in a YAML file, each
//! with its tenant, roles, scopes and optional expiry. Revoking a key is deleting its entry.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::config::yaml;

use super::principal::{AuthMethod, Principal};

/// Every API key starts with this, so a key sent as a bearer token is recognised.
pub(crate) const PREFIX: &str = "tgk_";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeysFile {
    /// A bare `keys:` (null) is an empty list, so that entries can be appended under it.
    #[serde(default)]
    keys: Option<Vec<KeyEntry>>,
}

/// One entry of the keys file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    pub id: String,
    pub tenant: String,
    pub sha256: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct ApiKeyStore {
    by_hash: HashMap<[u8; 32], Arc<Principal>>,
}

impl ApiKeyStore {
    /// Loads the keys file. `known_tenant` rejects keys of tenants that do not exist.
    pub fn load(path: &Path, known_tenant: impl Fn(&str) -> bool) -> Result<Self, Vec<String>> {
        let file = path.display();
        let (text, raw): (String, RawKeysFile) = yaml::load(path)?;
        let mut errors = Vec::new();
        let mut by_hash = HashMap::new();
        // (tenant, name) → the index of the entry that has it first.
        let mut names: HashMap<(String, String), usize> = HashMap::new();
        for (i, entry) in raw.keys.unwrap_or_default().into_iter().enumerate() {
            let line = text
                .lines()
                .position(|l| l.contains(&entry.sha256))
                .map(|n| format!(" (line {})", n + 1))
                .unwrap_or_default();
            let at = format!("{file}: keys[{i}] ({})", entry.id);
            let mut fail = |msg: String| errors.push(format!("{at}: {msg}{line}"));
            let Some(hash) = parse_hex32(&entry.sha256) else {
                fail("sha256 must be 64 hex digits".into());
                continue;
            };
            if let Some(first) = names.insert((entry.tenant.clone(), entry.id.clone()), i) {
                fail(format!(
                    "id {:?} is used twice for tenant {:?} (first at keys[{first}]): a principal must name one key",
                    entry.id, entry.tenant
                ));
            }
            if !known_tenant(&entry.tenant) {
                fail(format!("unknown tenant {:?}", entry.tenant));
            }
            let expires = match entry
                .expires_at
                .as_deref()
                .map(humantime::parse_rfc3339_weak)
            {
                Some(Ok(time)) => Some(time),
                Some(Err(e)) => {
                    fail(format!("expires_at is not an RFC 3339 time ({e})"));
                    None
                }
                None => None,
            };
            let principal = match Principal::new(
                entry.id,
                AuthMethod::ApiKey,
                Some(entry.tenant),
                entry.roles,
                entry.scopes,
                false,
                expires,
            ) {
                Ok(principal) => principal,
                Err(why) => {
                    fail(why.to_string());
                    continue;
                }
            };
            if by_hash.insert(hash, Arc::new(principal)).is_some() {
                fail("the same key is listed twice".into());
            }
        }
        if errors.is_empty() {
            Ok(ApiKeyStore { by_hash })
        } else {
            Err(errors)
        }
    }

    /// (tenant, name) of every key.
    pub(crate) fn names(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_hash
            .values()
            .map(|p| (p.tenant.as_deref().unwrap_or_default(), p.id.as_str()))
    }

    /// The principal of a presented key, or why it is refused.
    pub(crate) fn lookup(
        &self,
        key: &str,
        now: SystemTime,
    ) -> Result<Arc<Principal>, &'static str> {
        let hash = sha256(key);
        let principal = self
            .by_hash
            .get(&hash)
            .ok_or("unknown or revoked API key")?;
        if principal.valid_until.is_some_and(|until| until <= now) {
            return Err("the API key has expired");
        }
        Ok(principal.clone())
    }
}

pub fn sha256(key: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, key.as_bytes()).as_ref());
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.strip_prefix("sha256:").unwrap_or(text);
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A new random key for `tenant` and the hex SHA-256 to store.
pub fn generate(tenant: &str) -> Result<(String, String), String> {
    let mut secret = [0u8; 24];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| "the system random generator failed".to_string())?;
    let key = format!("{PREFIX}{tenant}_{}", hex(&secret));
    let hash = hex(&sha256(&key));
    Ok((key, hash))
}

/// Appends an entry to the keys file, refusing to write a file that would no longer load.
/// The file is replaced by a rename, so a watcher never reads half of it.
pub fn append(path: &Path, entry: &KeyEntry) -> Result<(), String> {
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "keys:\n".to_string(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let item = serde_yaml::to_string(&[entry]).map_err(|e| e.to_string())?;
    let indented: String = item.lines().map(|l| format!("  {l}\n")).collect();
    let mut next = current.clone();
    if !next.is_empty() && !next.ends_with('\n') {
        next.push('\n');
    }
    next.push_str(&indented);
    let parsed: Result<RawKeysFile, _> = yaml::parse(&next);
    let appended = parsed.is_ok_and(|file| {
        file.keys
            .unwrap_or_default()
            .iter()
            .any(|k| k.sha256 == entry.sha256)
    });
    if !appended {
        return Err(format!(
            "cannot append to {} (it must end with its `keys:` list); add this entry by hand:\n{indented}",
            path.display()
        ));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, next).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot replace {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_hash_to_what_is_stored_and_look_up() {
        let (key, hash) = generate("acme").unwrap();
        assert!(key.starts_with("tgk_acme_") && key.len() == 9 + 48);
        assert_eq!(parse_hex32(&hash), Some(sha256(&key)));
        assert_eq!(parse_hex32(&format!("sha256:{hash}")), Some(sha256(&key)));
        assert_eq!(parse_hex32("abc"), None);
    }
}
