//! The sections that describe the process and its callers: TLS, listener limits, the upstream,
//! tenancy and identity.

use std::path::Path;
use std::time::Duration;

use http::Uri;

use crate::config::model::{
    ApiKeys, ClaimNames, Identity, JwtKey, JwtProvider, Limits, TOKEN_CACHE, Tenancy, TenantStore,
    Tls, Upstream,
};
use crate::config::raw::{
    RawIdentity, RawJwtProvider, RawLimits, RawTenancy, RawTls, RawUpstream, TenantSource,
};

use super::errors::Errors;

pub fn tenancy(errs: &mut Errors, base: &Path, raw: RawTenancy) -> Tenancy {
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
        // Settled in `tenant_store`, once the limits section (and its Redis) is known.
        store: TenantStore::Files,
    }
}

pub fn identity(errs: &mut Errors, base: &Path, raw: RawIdentity) -> Identity {
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
        token_cache: raw.token_cache.map_or(TOKEN_CACHE, |b| b.0),
        unknown_kid_refetch: errs.positive(
            "identity.unknown_kid_refetch",
            raw.unknown_kid_refetch,
            Duration::from_secs(30),
        ),
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

pub fn tls(errs: &mut Errors, base: &Path, raw: RawTls) -> Tls {
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

pub fn limits(errs: &mut Errors, raw: RawLimits) -> Limits {
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

pub fn upstream(errs: &mut Errors, base: &Path, raw: RawUpstream) -> Upstream {
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
