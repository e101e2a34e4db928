//! Raw → typed. Collects every problem it finds rather than stopping at the first, so that an
//! operator fixes a file in one pass.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;

use super::model::{Admin, Config, Forwarding, Identity, Log, Server, TOKEN_CACHE, Tenancy};
use super::raw::{RawAdmin, RawConfig, RawForwarding, RawLog, RawServer};

mod errors;
mod sections;
mod stores;

use errors::Errors;
use sections::{identity, limits, tenancy, tls, upstream};
use stores::{audit, authorization, authorizers, limits_store, tenant_store};

/// The configuration, and what is wrong with it (when something is, the configuration holds
/// defaults where values were wrong: good for finding the other files, never for serving).
pub fn validate(raw: RawConfig, source: &str, base: &Path) -> (Config, Vec<String>) {
    let mut errs = Errors(Vec::new());
    let server = server(&mut errs, base, raw.server);
    let admin = admin(&mut errs, raw.admin, &server);
    let upstream = upstream(&mut errs, base, raw.upstream);
    let forwarding = forwarding(&mut errs, raw.forwarding);
    let log = log(&mut errs, raw.log);
    let raw_tenancy = raw.tenancy;
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
            token_cache: TOKEN_CACHE,
            unknown_kid_refetch: std::time::Duration::from_secs(30),
        },
    };
    let authorization = raw.authorization.map(|a| authorization(&mut errs, base, a));
    let limits = limits_store(&mut errs, base, raw.limits);
    let tenancy = raw_tenancy.map(|t| {
        let store = tenant_store(&mut errs, base, &t, &limits);
        Tenancy {
            store,
            ..tenancy(&mut errs, base, t)
        }
    });
    let audit = raw.audit.map(|a| audit(&mut errs, base, a));
    let taken: Vec<_> = [server.listen, admin.listen]
        .into_iter()
        .filter(|a| a.port() != 0)
        .collect();
    let authorizers = authorizers(&mut errs, raw.authorizer, &taken, server.tls.is_some());
    if authorization.is_some() && tenancy.is_none() {
        errs.push(
            "authorization",
            "needs a tenancy section: policies are evaluated per tenant",
        );
    }
    let config = Config {
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
    };
    (config, errs.0)
}

/// `server`: the proxy listener, TLS, drain and header limits.
fn server(errs: &mut Errors, base: &Path, raw: RawServer) -> Server {
    let listen = errs.socket_addr("server.listen", raw.listen.as_deref(), "0.0.0.0:8080");
    let tls = raw.tls.map(|t| tls(errs, base, t));
    Server {
        listen,
        tls,
        h2c: raw.h2c.unwrap_or(false),
        drain_timeout: errs.positive(
            "server.drain_timeout",
            raw.drain_timeout,
            Duration::from_secs(30),
        ),
        workers: raw.workers.unwrap_or(0),
        limits: limits(errs, raw.limits),
    }
}

/// `admin`: its listener (never the proxy's) and token.
fn admin(errs: &mut Errors, raw: RawAdmin, server: &Server) -> Admin {
    let admin = Admin {
        listen: errs.socket_addr("admin.listen", raw.listen.as_deref(), "127.0.0.1:9090"),
        token: raw.token.filter(|t| !t.is_empty()),
    };
    if admin.token.as_ref().is_some_and(|t| t.len() < 16) {
        errs.push("admin.token", "must be at least 16 characters");
    }
    // Port 0 asks the system for a free port: two of them never collide.
    if admin.listen == server.listen && admin.listen.port() != 0 {
        errs.push(
            "admin.listen",
            format!("{} is also server.listen", admin.listen),
        );
    }
    admin
}

fn forwarding(errs: &mut Errors, raw: RawForwarding) -> Forwarding {
    let trusted_proxies = raw
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
    Forwarding {
        preserve_host: raw.preserve_host.unwrap_or(true),
        trusted_proxies,
        allow_underscores: raw.allow_underscores.unwrap_or(false),
    }
}

fn log(errs: &mut Errors, raw: RawLog) -> Log {
    let level = raw.level.unwrap_or_else(|| "info".to_string());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
        errs.push("log.level", format!("invalid level {level:?} ({e})"));
    }
    Log {
        format: raw.format.unwrap_or_default(),
        level,
        access: raw.access.unwrap_or_default(),
    }
}
