//! Raw → typed. Collects every problem it finds rather than stopping at the first, so that an
//! operator fixes a file in one pass.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use ipnet::IpNet;

use super::model::{
    Admin, ApiKeys, Authorization, ClaimNames, Config, Forwarding, Identity, JwtKey, JwtProvider,
    Limits, LimitsStore, Log, Server, Tenancy, Tls, Upstream,
};
use super::raw::Backend;
use super::raw::{
    RawConfig, RawIdentity, RawJwtProvider, RawLimits, RawTenancy, RawTls, RawUpstream,
    TenantSource,
};

/// Collects errors as `key.path: message` lines.
struct Errors(Vec<String>);

impl Errors {
    fn push(&mut self, key: &str, msg: impl std::fmt::Display) {
        self.0.push(format!("{key}: {msg}"));
    }

    fn positive(
        &mut self,
        key: &str,
        value: Option<super::units::Dur>,
        default: Duration,
    ) -> Duration {
        let value = value.map_or(default, |d| d.0);
        if value.is_zero() {
            self.push(key, "must be greater than zero");
        }
        value
    }

    fn at_least(&mut self, key: &str, value: Option<usize>, default: usize, min: usize) -> usize {
        let value = value.unwrap_or(default);
        if value < min {
            self.push(key, format!("{value} is too small (minimum {min})"));
        }
        value
    }

    fn socket_addr(&mut self, key: &str, value: Option<&str>, default: &str) -> SocketAddr {
        let text = value.unwrap_or(default);
        text.parse().unwrap_or_else(|e| {
            self.push(
                key,
                format!("invalid address {text:?} ({e}); write e.g. \"0.0.0.0:8080\""),
            );
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }

    fn header_name(&mut self, key: &str, value: &str) -> http::HeaderName {
        http::HeaderName::from_bytes(value.as_bytes()).unwrap_or_else(|_| {
            self.push(key, format!("invalid header name {value:?}"));
            http::HeaderName::from_static("invalid")
        })
    }

    fn file(&mut self, key: &str, base: &Path, value: &str) -> PathBuf {
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
fn tidy(path: &Path) -> PathBuf {
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

pub fn validate(raw: RawConfig, source: &str, base: &Path) -> Result<Config, Vec<String>> {
    let mut errs = Errors(Vec::new());
    let listen = errs.socket_addr(
        "server.listen",
        raw.server.listen.as_deref(),
        "0.0.0.0:8080",
    );
    let tls = raw.server.tls.map(|t| tls(&mut errs, base, t));
    let server = Server {
        listen,
        tls,
        h2c: raw.server.h2c.unwrap_or(false),
        drain_timeout: errs.positive(
            "server.drain_timeout",
            raw.server.drain_timeout,
            Duration::from_secs(30),
        ),
        workers: raw.server.workers.unwrap_or(0),
        limits: limits(&mut errs, raw.server.limits),
    };
    let admin = Admin {
        listen: errs.socket_addr(
            "admin.listen",
            raw.admin.listen.as_deref(),
            "127.0.0.1:9090",
        ),
        token: raw.admin.token.filter(|t| !t.is_empty()),
    };
    if admin.token.as_ref().is_some_and(|t| t.len() < 16) {
        errs.push("admin.token", "must be at least 16 characters");
    }
    if admin.listen == server.listen {
        errs.push(
            "admin.listen",
            format!("{} is also server.listen", admin.listen),
        );
    }
    let upstream = upstream(&mut errs, base, raw.upstream);
    let trusted_proxies = raw
        .forwarding
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let parsed = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
            parsed
                .map_err(|_| {
                    errs.push(
                        &format!("forwarding.trusted_proxies[{i}]"),
                        format!("invalid address or CIDR {text:?}"),
                    )
                })
                .ok()
        })
        .collect();
    let forwarding = Forwarding {
        preserve_host: raw.forwarding.preserve_host.unwrap_or(true),
        trusted_proxies,
        allow_underscores: raw.forwarding.allow_underscores.unwrap_or(false),
    };
    let level = raw.log.level.unwrap_or_else(|| "info".to_string());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
        errs.push("log.level", format!("invalid level {level:?} ({e})"));
    }
    let log = Log {
        format: raw.log.format.unwrap_or_default(),
        level,
    };
    let tenancy = raw.tenancy.map(|t| tenancy(&mut errs, base, t));
    let identity = match raw.identity {
        Some(raw) => identity(&mut errs, base, raw),
        // Without an identity section every caller is anonymous, as with a plain proxy.
        None => Identity {
            anonymous: true,
            api_keys: None,
            jwt: Vec::new(),
            operator_roles: Vec::new(),
            strip_headers: Vec::new(),
            forward_token: true,
            token_cache: super::model::TOKEN_CACHE,
        },
    };
    let authorization = raw.authorization.map(|a| {
        let policies_dir = tidy(&base.join(&a.policies_dir));
        if !policies_dir.is_dir() {
            errs.push(
                "authorization.policies_dir",
                format!(
                    "directory {:?} not found (looked at {})",
                    a.policies_dir,
                    policies_dir.display()
                ),
            );
        }
        Authorization {
            routes_file: errs.file("authorization.routes_file", base, &a.routes_file),
            policies_dir,
            unmatched: a.unmatched.unwrap_or(super::model::Unmatched::Deny),
            decision_cache: a
                .decision_cache
                .map_or(super::model::DECISION_CACHE, |b| b.0),
        }
    });
    let limits = match raw.limits {
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
                super::model::RedisStore {
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
    };
    let audit = raw.audit.map(|a| {
        if !a.stdout && a.file.is_none() {
            errs.push("audit", "needs a sink: `stdout: true` and/or a `file`");
        }
        let file = a.file.map(|f| super::model::AuditFile {
            path: tidy(&base.join(f.path)),
            max_bytes: f.max_bytes.map_or(100 * 1024 * 1024, |b| b.0),
            max_age: errs.positive(
                "audit.file.max_age",
                f.max_age,
                Duration::from_secs(24 * 3600),
            ),
            keep: f.keep.unwrap_or(10),
            fsync: f.fsync.unwrap_or(super::model::Fsync::Interval),
        });
        super::model::Audit {
            stdout: a.stdout,
            file,
            queue: errs.at_least("audit.queue", a.queue, 10_000, 1),
            mode: a.mode.unwrap_or(super::model::AuditMode::Required),
            records: a.records.unwrap_or(super::model::AuditRecords::Split),
            client_ip: a.redact.client_ip.unwrap_or(super::model::Redaction::Keep),
            user_agent: a.redact.user_agent.unwrap_or(super::model::Redaction::Keep),
        }
    });
    let mut authorizers: Vec<super::model::Authorizer> = Vec::new();
    let many = raw.authorizer.as_ref().is_some_and(|a| a.0.len() > 1);
    for (i, a) in raw
        .authorizer
        .map(|a| a.0)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let at = if many {
            format!("authorizer[{i}]")
        } else {
            "authorizer".to_string()
        };
        let listen = errs.socket_addr(&format!("{at}.listen"), Some(&a.listen), "0.0.0.0:8082");
        if listen == server.listen
            || listen == admin.listen
            || authorizers.iter().any(|other| other.listen == listen)
        {
            errs.push(
                &format!("{at}.listen"),
                format!("{listen} is already used by another listener"),
            );
        }
        let Some(gateway) = a.gateway else {
            errs.push(
                &format!("{at}.gateway"),
                "say which gateway asks on this listener (nginx, traefik or envoy): only its hint headers are read",
            );
            continue;
        };
        if a.envoy_path_prefix.is_some() && gateway != super::model::Gateway::Envoy {
            errs.push(
                &format!("{at}.envoy_path_prefix"),
                "only an envoy listener has a path prefix",
            );
        }
        let prefix = a.envoy_path_prefix.unwrap_or_else(|| "/envoy".to_string());
        authorizers.push(super::model::Authorizer {
            listen,
            gateway,
            envoy_path_prefix: format!("/{}", prefix.trim_matches('/')),
        });
    }
    if authorization.is_some() && tenancy.is_none() {
        errs.push(
            "authorization",
            "needs a tenancy section: policies are evaluated per tenant",
        );
    }
    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    Ok(Config {
        source: source.to_string(),
        server,
        admin,
        upstream,
        forwarding,
        log,
        tenancy,
        identity,
        authorization,
        limits,
        audit,
        metrics_max_tenants: raw.metrics.max_tenants.unwrap_or(1000),
        authorizers,
    })
}

fn tenancy(errs: &mut Errors, base: &Path, raw: RawTenancy) -> Tenancy {
    let sources = raw.sources.unwrap_or_else(|| {
        vec![
            TenantSource::Subdomain,
            TenantSource::CustomDomain,
            TenantSource::Header,
            TenantSource::PathPrefix,
            TenantSource::Claim,
        ]
    });
    if sources.is_empty() {
        errs.push("tenancy.sources", "must name at least one source");
    }
    for (i, source) in sources.iter().enumerate() {
        if sources[..i].contains(source) {
            errs.push(
                &format!("tenancy.sources[{i}]"),
                format!("{source:?} is listed twice"),
            );
        }
    }
    let base_domains = raw
        .base_domains
        .iter()
        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
        .collect();
    let prefix = raw.path_prefix.unwrap_or_else(|| "/t/".to_string());
    let path_prefix = format!("/{}/", prefix.trim_matches('/'));
    if path_prefix == "//" {
        errs.push("tenancy.path_prefix", "must not be empty");
    }
    Tenancy {
        tenants_file: errs.file("tenancy.tenants_file", base, &raw.tenants_file),
        plans_file: errs.file("tenancy.plans_file", base, &raw.plans_file),
        base_domains,
        sources,
        header: errs.header_name(
            "tenancy.header",
            raw.header.as_deref().unwrap_or("x-tenant-id"),
        ),
        path_prefix,
        strip_path_prefix: raw.strip_path_prefix.unwrap_or(true),
        reload_interval: errs.positive(
            "tenancy.reload_interval",
            raw.reload_interval,
            Duration::from_secs(2),
        ),
    }
}

fn identity(errs: &mut Errors, base: &Path, raw: RawIdentity) -> Identity {
    let api_keys = raw.api_keys.map(|k| ApiKeys {
        file: errs.file("identity.api_keys.file", base, &k.file),
        header: errs.header_name(
            "identity.api_keys.header",
            k.header.as_deref().unwrap_or("x-api-key"),
        ),
    });
    let jwt = raw
        .jwt
        .into_iter()
        .enumerate()
        .map(|(i, p)| jwt_provider(errs, base, &format!("identity.jwt[{i}]"), p))
        .collect();
    let strip_headers = raw
        .strip_headers
        .iter()
        .enumerate()
        .map(|(i, h)| errs.header_name(&format!("identity.strip_headers[{i}]"), h))
        .collect();
    Identity {
        anonymous: raw.anonymous.unwrap_or(false),
        api_keys,
        jwt,
        operator_roles: raw.operator_roles,
        strip_headers,
        forward_token: raw.forward_token.unwrap_or(true),
        token_cache: raw.token_cache.map_or(super::model::TOKEN_CACHE, |b| b.0),
    }
}

fn jwt_provider(errs: &mut Errors, base: &Path, key: &str, raw: RawJwtProvider) -> JwtProvider {
    if raw.keys.is_empty() && raw.jwks_file.is_none() && raw.jwks_url.is_none() {
        errs.push(key, "needs keys, jwks_file or jwks_url");
    }
    if let Some(url) = &raw.jwks_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        errs.push(
            &format!("{key}.jwks_url"),
            format!("{url:?} is not an http(s) URL"),
        );
    }
    let keys = raw
        .keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let at = format!("{key}.keys[{i}]");
            let alg = k.alg.parse::<jsonwebtoken::Algorithm>().unwrap_or_else(|_| {
                errs.push(
                    &format!("{at}.alg"),
                    format!("unknown algorithm {:?} (HS256, RS256, ES256, EdDSA, …)", k.alg),
                );
                jsonwebtoken::Algorithm::HS256
            });
            let symmetric = matches!(
                alg,
                jsonwebtoken::Algorithm::HS256
                    | jsonwebtoken::Algorithm::HS384
                    | jsonwebtoken::Algorithm::HS512
            );
            match (symmetric, &k.secret, &k.public_key_file) {
                (true, Some(secret), None) if secret.len() >= 32 => {}
                (true, Some(_), None) => errs.push(
                    &format!("{at}.secret"),
                    "must be at least 32 bytes for an HMAC key",
                ),
                (true, _, _) => errs.push(&at, format!("{:?} needs `secret` and no key files", k.alg)),
                (false, None, Some(_)) => {}
                (false, _, _) => errs.push(
                    &at,
                    format!("{:?} needs `public_key_file` (and `private_key_file` only to mint tokens), no `secret`", k.alg),
                ),
            }
            JwtKey {
                kid: k.kid,
                alg,
                secret: k.secret,
                public_key_file: k
                    .public_key_file
                    .map(|f| errs.file(&format!("{at}.public_key_file"), base, &f)),
                private_key_file: k
                    .private_key_file
                    .map(|f| errs.file(&format!("{at}.private_key_file"), base, &f)),
            }
        })
        .collect();
    let claims = raw.claims;
    JwtProvider {
        issuer: raw.issuer,
        audiences: raw.audiences,
        leeway: raw.leeway.map_or(Duration::from_secs(30), |d| d.0),
        keys,
        jwks_file: raw
            .jwks_file
            .map(|f| errs.file(&format!("{key}.jwks_file"), base, &f)),
        jwks_url: raw.jwks_url,
        jwks_refresh: errs.positive(
            &format!("{key}.jwks_refresh"),
            raw.jwks_refresh,
            Duration::from_secs(300),
        ),
        claims: ClaimNames {
            subject: claims.subject.unwrap_or_else(|| "sub".to_string()),
            tenant: claims.tenant.unwrap_or_else(|| "tenant".to_string()),
            roles: claims.roles.unwrap_or_else(|| "roles".to_string()),
            scopes: claims.scopes.unwrap_or_else(|| "scope".to_string()),
            mfa: claims.mfa.unwrap_or_else(|| "mfa".to_string()),
        },
        tenants: raw.tenants,
        grants_operator_roles: raw.grants_operator_roles.unwrap_or(false),
    }
}

fn tls(errs: &mut Errors, base: &Path, raw: RawTls) -> Tls {
    let cert_file = errs.file("server.tls.cert_file", base, &raw.cert_file);
    let key_file = errs.file("server.tls.key_file", base, &raw.key_file);
    if cert_file.is_file()
        && key_file.is_file()
        && let Err(e) = crate::pem::load_certified_key(&cert_file, &key_file)
    {
        errs.push("server.tls", e);
    }
    Tls {
        cert_file,
        key_file,
        reload_interval: errs.positive(
            "server.tls.reload_interval",
            raw.reload_interval,
            Duration::from_secs(10),
        ),
    }
}

fn limits(errs: &mut Errors, raw: RawLimits) -> Limits {
    let max_header_bytes = raw.max_header_bytes.map_or(32 * 1024, |b| b.0);
    if !(1024..=1024 * 1024).contains(&max_header_bytes) {
        errs.push(
            "server.limits.max_header_bytes",
            format!("{max_header_bytes} is out of range (1KiB to 1MiB)"),
        );
    }
    let max_body_bytes = raw.max_body_bytes.map_or(10 * 1024 * 1024, |b| b.0);
    Limits {
        header_read_timeout: errs.positive(
            "server.limits.header_read_timeout",
            raw.header_read_timeout,
            Duration::from_secs(10),
        ),
        idle_timeout: errs.positive(
            "server.limits.idle_timeout",
            raw.idle_timeout,
            Duration::from_secs(60),
        ),
        // The range check above makes this conversion lossless on every platform.
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(1024 * 1024),
        max_headers: errs.at_least("server.limits.max_headers", raw.max_headers, 100, 8),
        max_body_bytes: (max_body_bytes > 0).then_some(max_body_bytes),
        max_connections: errs.at_least(
            "server.limits.max_connections",
            raw.max_connections,
            10_000,
            1,
        ),
        max_in_flight: errs.at_least("server.limits.max_in_flight", raw.max_in_flight, 10_000, 1),
    }
}

fn upstream(errs: &mut Errors, base: &Path, raw: RawUpstream) -> Upstream {
    let mut scheme = http::uri::Scheme::HTTP;
    let mut authority = http::uri::Authority::from_static("invalid");
    match raw.url.parse::<Uri>() {
        Ok(uri) => {
            match (uri.scheme(), uri.authority()) {
                (Some(s), Some(a))
                    if *s == http::uri::Scheme::HTTP || *s == http::uri::Scheme::HTTPS =>
                {
                    scheme = s.clone();
                    authority = a.clone();
                }
                _ => errs.push(
                    "upstream.url",
                    format!("{:?} must be an absolute http:// or https:// URL", raw.url),
                ),
            }
            if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
                errs.push(
                    "upstream.url",
                    format!(
                        "{:?} has a path or query; the upstream receives the request's own path, so give only scheme://host:port",
                        raw.url
                    ),
                );
            }
        }
        Err(e) => errs.push("upstream.url", format!("invalid URL {:?} ({e})", raw.url)),
    }
    let ca_file = raw.ca_file.map(|f| {
        let path = errs.file("upstream.ca_file", base, &f);
        if path.is_file()
            && let Err(e) = crate::pem::load_roots(&path)
        {
            errs.push("upstream.ca_file", e);
        }
        path
    });
    Upstream {
        scheme,
        authority,
        connect_timeout: errs.positive(
            "upstream.connect_timeout",
            raw.connect_timeout,
            Duration::from_secs(2),
        ),
        response_timeout: errs.positive(
            "upstream.response_timeout",
            raw.response_timeout,
            Duration::from_secs(60),
        ),
        http2: raw.http2.unwrap_or(false),
        ca_file,
        pool_idle_timeout: errs.positive(
            "upstream.pool.idle_timeout",
            raw.pool.idle_timeout,
            Duration::from_secs(90),
        ),
        pool_max_idle_per_host: raw.pool.max_idle_per_host.unwrap_or(256),
    }
}
