//! The one-shot commands: `check`, `token`, `keys create`. Each returns what to print, or an
//! error message; `main.rs` turns those into output and exit codes.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::config::Config;
use crate::identity::apikeys::{self, KeyEntry};
use crate::identity::jwt::JwtVerifier;
use crate::snapshot::Snapshot;

/// Loads a configuration and everything it names, as `serve` would.
pub fn load(path: &Path) -> Result<Snapshot, String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    Snapshot::load(config, 1).map_err(|errors| errors.join("\n"))
}

/// [`load`], but when the main file has errors whose files all exist, the files it names are
/// checked too, so that one run reports every file's errors.
fn load_for_check(path: &Path) -> Result<Snapshot, String> {
    match Config::load(path) {
        Ok(config) => Snapshot::load(config, 1).map_err(|errors| errors.join("\n")),
        Err(e) => {
            let mut report = e.to_string();
            let files_exist = !e.errors.iter().any(|m| m.contains("not found"));
            if let Some(partial) = e.partial.filter(|_| files_exist)
                && let Err(more) = Snapshot::load(*partial, 1)
            {
                report.push('\n');
                report.push_str(&more.join("\n"));
            }
            Err(report)
        }
    }
}

/// `tollgate check`: validates each file and everything it names.
pub fn check(files: &[impl AsRef<Path>]) -> (Result<String, String>, Vec<String>) {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    let mut warnings = Vec::new();
    for file in files {
        let file = file.as_ref();
        if let Some(kind) = other_kind(file) {
            failed.push(format!(
                "{}: this is a {kind} file; `check` takes main configuration files (the one with \
                 `upstream:`) and checks the tenants, plans, keys, routes and policies each names: \
                 check the main file that names this one",
                file.display()
            ));
            continue;
        }
        match load_for_check(file) {
            Ok(snapshot) => {
                ok.push(format!("{}: ok", file.display()));
                warnings.extend(snapshot.warnings().iter().cloned());
                let shipped = crate::identity::shipped::shipped_keys(&snapshot.config);
                warnings.extend(shipped.iter().map(|p| crate::identity::shipped::warning(p)));
            }
            Err(e) => failed.push(e),
        }
    }
    let result = if failed.is_empty() {
        Ok(ok.join("\n"))
    } else {
        Err(failed.join("\n"))
    };
    (result, warnings)
}

/// The kind of a file that is not a main configuration (tenants, plans, keys, routes), by its
/// top-level keys; `None` for a main configuration or anything unreadable (load reports it).
fn other_kind(file: &Path) -> Option<&'static str> {
    let text = std::fs::read_to_string(file).ok()?;
    let top: std::collections::BTreeMap<String, serde::de::IgnoredAny> =
        crate::config::yaml::parse(&text).ok()?;
    let has = |key: &str| top.contains_key(key);
    if has("upstream") {
        return None;
    }
    [
        ("tenants", "tenants"),
        ("plans", "plans"),
        ("keys", "API keys"),
        ("routes", "routes"),
    ]
    .into_iter()
    .find(|(key, _)| has(key))
    .map(|(_, kind)| kind)
}

/// What a development token should say.
pub struct TokenRequest<'a> {
    pub tenant: Option<&'a str>,
    pub subject: &'a str,
    pub roles: &'a [String],
    pub scopes: &'a [String],
    pub mfa: bool,
    pub ttl: Duration,
}

/// `tollgate token`: mints a token with the first signing key of the configuration, using the
/// first JWT provider's claim names.
pub fn token(snapshot: &Snapshot, request: &TokenRequest<'_>) -> Result<String, String> {
    let identity = &snapshot.config.identity;
    let provider = identity
        .jwt
        .first()
        .ok_or("the configuration has no identity.jwt provider")?;
    if let (Some(tenant), Some(directory)) = (request.tenant, &snapshot.tenants)
        && directory.get(tenant).is_none()
    {
        return Err(format!("unknown tenant {tenant:?}"));
    }
    let names = &provider.claims;
    let mut claims = Value::Object(Map::new());
    set_claim(&mut claims, &names.subject, request.subject.into());
    if let Some(tenant) = request.tenant {
        set_claim(&mut claims, &names.tenant, tenant.into());
    }
    set_claim(&mut claims, &names.roles, request.roles.to_vec().into());
    set_claim(&mut claims, &names.scopes, request.scopes.join(" ").into());
    set_claim(&mut claims, &names.mfa, request.mfa.into());
    JwtVerifier::mint(&identity.jwt, &claims, request.ttl)
}

/// Sets a (possibly dotted) claim, creating the objects on its path.
fn set_claim(claims: &mut Value, path: &str, value: Value) {
    let mut parts = path.split('.').peekable();
    let mut node = claims;
    while let Some(part) = parts.next() {
        let Value::Object(map) = node else { return };
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        node = map
            .entry(part.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// What a new API key should carry.
pub struct KeyRequest<'a> {
    pub tenant: &'a str,
    pub name: Option<&'a str>,
    pub roles: &'a [String],
    pub scopes: &'a [String],
    pub expires_in: Option<Duration>,
}

/// `tollgate keys create`: generates a key, stores its hash in the configured keys file (a
/// running Tollgate picks it up on its next reload) and returns the key, shown only this once.
pub fn create_key(snapshot: &Snapshot, request: &KeyRequest<'_>) -> Result<String, String> {
    let file = &snapshot
        .config
        .identity
        .api_keys
        .as_ref()
        .ok_or("the configuration has no identity.api_keys.file")?
        .file;
    if snapshot
        .tenants
        .as_ref()
        .is_some_and(|d| d.get(request.tenant).is_none())
    {
        return Err(format!("unknown tenant {:?}", request.tenant));
    }
    if let Some(name) = request.name
        && snapshot.identity.has_key_named(request.tenant, name)
    {
        return Err(format!(
            "tenant {:?} already has a key named {name:?}: choose another --name",
            request.tenant
        ));
    }
    let (key, hash) = apikeys::generate(request.tenant)?;
    let id = match request.name {
        Some(name) => name.to_string(),
        None => format!("{}-{}", request.tenant, &hash[..8]),
    };
    let entry = KeyEntry {
        id,
        tenant: request.tenant.to_string(),
        sha256: hash,
        roles: request.roles.to_vec(),
        scopes: request.scopes.to_vec(),
        expires_at: request
            .expires_in
            .map(|ttl| humantime::format_rfc3339_seconds(SystemTime::now() + ttl).to_string()),
    };
    apikeys::append(file, &entry)?;
    Ok(key)
}

/// `tollgate usage`: quota usage against plan limits. A running Tollgate owns the usage store
/// (the embedded file is locked while it runs), so its admin listener is asked first, with the
/// configured `admin.token`; when nothing listens there, the store (the file, or Redis) is read
/// directly.
pub async fn usage(
    snapshot: &Snapshot,
    tenant: Option<&str>,
    period: Option<&str>,
) -> Result<(Vec<serde_json::Value>, String), String> {
    let config = &snapshot.config;
    let directory = snapshot
        .tenants
        .as_ref()
        .ok_or("the configuration has no tenancy section")?;
    if let Some(id) = tenant
        && directory.get(id).is_none()
    {
        return Err(format!("unknown tenant {id:?}"));
    }
    let mut path = tenant.map_or("/usage".to_string(), |t| format!("/usage/{t}"));
    if let Some(period) = period {
        path.push_str(&format!("?period={period}"));
    }
    let mut admin = config.admin.listen;
    if admin.ip().is_unspecified() {
        admin.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let (report, from) = match local_get(admin, &path, config.admin.token.as_deref()) {
        Ok(Some(body)) => (
            serde_json::from_str(&body)
                .map_err(|e| format!("the admin listener at {admin} answered: {e}"))?,
            format!("the running Tollgate at http://{admin}"),
        ),
        Ok(None) => {
            let limits = crate::limits::Limits::open(&config.limits)?;
            let report = limits.report(directory, tenant, period).await?;
            (report, store_name(&config.limits, admin))
        }
        Err(e) => return Err(format!("the admin listener at {admin} answered {e}")),
    };
    let reports = match report {
        serde_json::Value::Array(reports) => reports,
        single => vec![single],
    };
    Ok((reports, from))
}

/// Where `usage` read from when no Tollgate answered on the admin address.
fn store_name(limits: &crate::config::LimitsStore, admin: std::net::SocketAddr) -> String {
    use crate::config::Backend;
    let store = match (limits.backend, &limits.path, &limits.redis) {
        (Backend::Redis, _, Some(redis)) => format!("Redis at {}", redact_url(&redis.url)),
        (Backend::Embedded, Some(path), _) => format!("the usage store {}", path.display()),
        _ => "memory (counts are not kept by the memory backend)".to_string(),
    };
    format!("{store} (no Tollgate answers at http://{admin})")
}

/// A Redis URL without its password.
fn redact_url(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
        _ => url.to_string(),
    }
}

/// `GET path` from the running Tollgate's admin listener; `Ok(None)` when none listens.
fn local_get(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
) -> Result<Option<String>, String> {
    match crate::admin_client::request(addr, "GET", path, token, None)? {
        None => Ok(None),
        Some(answer) if answer.status == 200 => Ok(Some(answer.body)),
        Some(answer) => Err(format!("{}: {}", answer.status, answer.body.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::set_claim;
    use serde_json::json;

    #[test]
    fn dotted_claims_nest() {
        let mut claims = json!({});
        set_claim(&mut claims, "sub", json!("alice"));
        set_claim(&mut claims, "realm_access.roles", json!(["admin"]));
        assert_eq!(
            claims,
            json!({"sub": "alice", "realm_access": {"roles": ["admin"]}})
        );
    }
}
