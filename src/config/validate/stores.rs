//! The sections that say where state and records go: authorization (routes, policies, the
//! decision cache), limits (memory, embedded, Redis), audit and the authorizer listeners.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::errors::{Errors, tidy};
use crate::config::model::{
    Audit, AuditFile, AuditMode, AuditRecords, Authorization, Authorizer, DECISION_CACHE, Fsync,
    Gateway, LimitsStore, Redaction, RedisStore, TenantStore, Unmatched,
};
use crate::config::raw::{
    Backend, RawAudit, RawAuthorization, RawAuthorizers, RawLimitsStore, RawTenancy,
    TenantStoreKind,
};

pub fn authorization(errs: &mut Errors, base: &Path, a: RawAuthorization) -> Authorization {
    let mut dir = |key: &str, written: &str| {
        let dir = tidy(&base.join(written));
        if !dir.is_dir() {
            errs.push(
                key,
                format!(
                    "directory {written:?} not found (looked at {})",
                    dir.display()
                ),
            );
        }
        dir
    };
    let policies_dir = dir("authorization.policies_dir", &a.policies_dir);
    let shadow_policies_dir = a
        .shadow_policies_dir
        .as_deref()
        .map(|d| dir("authorization.shadow_policies_dir", d));
    Authorization {
        routes_file: errs.file("authorization.routes_file", base, &a.routes_file),
        policies_dir,
        shadow_policies_dir,
        unmatched: a.unmatched.unwrap_or(Unmatched::Deny),
        decision_cache: a.decision_cache.map_or(DECISION_CACHE, |b| b.0),
    }
}

/// `tenancy.store` and `tenancy.store_path`: the embedded store needs a path, the Redis store
/// the limits section's Redis.
pub(crate) fn tenant_store(
    errs: &mut Errors,
    base: &Path,
    raw: &RawTenancy,
    limits: &LimitsStore,
) -> TenantStore {
    match raw.store.unwrap_or(TenantStoreKind::Files) {
        TenantStoreKind::Files => TenantStore::Files,
        TenantStoreKind::Embedded => match &raw.store_path {
            Some(path) => TenantStore::Embedded(tidy(&base.join(path))),
            None => {
                errs.push(
                    "tenancy.store_path",
                    "the embedded tenant store needs a file path",
                );
                TenantStore::Files
            }
        },
        TenantStoreKind::Redis => match &limits.redis {
            Some(redis) => TenantStore::Redis(redis.clone()),
            None => {
                errs.push(
                    "tenancy.store",
                    "the redis tenant store uses limits.redis: give it a url",
                );
                TenantStore::Files
            }
        },
    }
}

pub(crate) fn limits_store(
    errs: &mut Errors,
    base: &Path,
    raw: Option<RawLimitsStore>,
) -> LimitsStore {
    match raw {
        None => LimitsStore {
            backend: Backend::Memory,
            path: None,
            flush_interval: Duration::from_secs(1),
            legacy_headers: false,
            redis: None,
        },
        Some(l) => {
            let backend = l.backend.unwrap_or(Backend::Embedded);
            let path = l.path.map(|p| tidy(&base.join(p)));
            if backend == Backend::Embedded && path.is_none() {
                errs.push("limits.path", "the embedded backend needs a file path");
            }
            if backend == Backend::Redis && l.redis.is_none() {
                errs.push(
                    "limits.redis",
                    "the redis backend needs a redis section with a url",
                );
            }
            let redis = l.redis.map(|r| {
                if !(r.url.starts_with("redis://") || r.url.starts_with("rediss://")) {
                    errs.push(
                        "limits.redis.url",
                        format!("{:?} is not a redis:// URL", r.url),
                    );
                }
                RedisStore {
                    url: r.url,
                    timeout: errs.positive(
                        "limits.redis.timeout",
                        r.timeout,
                        Duration::from_millis(20),
                    ),
                    replicas: r.replicas.unwrap_or(1).max(1),
                    breaker_failures: r.breaker_failures.unwrap_or(3).max(1),
                    breaker_cooldown: errs.positive(
                        "limits.redis.breaker_cooldown",
                        r.breaker_cooldown,
                        Duration::from_secs(5),
                    ),
                    prefix: r.prefix.unwrap_or_else(|| "tollgate".to_string()),
                }
            });
            LimitsStore {
                backend,
                path,
                flush_interval: errs.positive(
                    "limits.flush_interval",
                    l.flush_interval,
                    Duration::from_secs(1),
                ),
                legacy_headers: l.legacy_headers.unwrap_or(false),
                redis,
            }
        }
    }
}

pub fn audit(errs: &mut Errors, base: &Path, a: RawAudit) -> Audit {
    if !a.stdout && a.file.is_none() {
        errs.push("audit", "needs a sink: `stdout: true` and/or a `file`");
    }
    let file = a.file.map(|f| AuditFile {
        path: tidy(&base.join(f.path)),
        max_bytes: f.max_bytes.map_or(100 * 1024 * 1024, |b| b.0),
        max_age: errs.positive(
            "audit.file.max_age",
            f.max_age,
            Duration::from_secs(24 * 3600),
        ),
        keep: f.keep.unwrap_or(10),
        fsync: f.fsync.unwrap_or(Fsync::Interval),
    });
    Audit {
        stdout: a.stdout,
        file,
        queue: errs.at_least("audit.queue", a.queue, 10_000, 1),
        mode: a.mode.unwrap_or(AuditMode::Required),
        records: a.records.unwrap_or(AuditRecords::Split),
        client_ip: a.redact.client_ip.unwrap_or(Redaction::Keep),
        user_agent: a.redact.user_agent.unwrap_or(Redaction::Keep),
    }
}

/// The authorizer listeners; `taken` are the addresses of the other listeners, `tls` whether
/// `server.tls` is configured.
pub fn authorizers(
    errs: &mut Errors,
    raw: Option<RawAuthorizers>,
    taken: &[SocketAddr],
    tls: bool,
) -> Vec<Authorizer> {
    let mut authorizers: Vec<Authorizer> = Vec::new();
    let many = raw.as_ref().is_some_and(|a| a.0.len() > 1);
    for (i, a) in raw.map(|a| a.0).unwrap_or_default().into_iter().enumerate() {
        let at = if many {
            format!("authorizer[{i}]")
        } else {
            "authorizer".to_string()
        };
        let listen = errs.socket_addr(&format!("{at}.listen"), Some(&a.listen), "0.0.0.0:8082");
        // Port 0 asks the system for a free port: two of them never collide.
        let reused = taken.contains(&listen) || authorizers.iter().any(|o| o.listen == listen);
        if reused && listen.port() != 0 {
            errs.push(
                &format!("{at}.listen"),
                format!("{listen} is already used by another listener"),
            );
        }
        let Some(gateway) = a.gateway else {
            errs.push(
                &format!("{at}.gateway"),
                "say which gateway asks on this listener (nginx, traefik, envoy or envoy-grpc): only its hint headers are read",
            );
            continue;
        };
        if a.envoy_path_prefix.is_some() && gateway != Gateway::Envoy {
            errs.push(
                &format!("{at}.envoy_path_prefix"),
                "only an envoy listener has a path prefix",
            );
        }
        if a.tls && !tls {
            errs.push(
                &format!("{at}.tls"),
                "an authorizer listener is served with server.tls's certificate: configure server.tls",
            );
        }
        let prefix = a.envoy_path_prefix.unwrap_or_else(|| "/envoy".to_string());
        authorizers.push(Authorizer {
            listen,
            gateway,
            envoy_path_prefix: format!("/{}", prefix.trim_matches('/')),
            tls: a.tls,
        });
    }
    authorizers
}
