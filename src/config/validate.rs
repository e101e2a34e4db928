//! Raw → typed. Collects every problem it finds rather than stopping at the first, so that an
//! operator fixes a file in one pass.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Uri;
use ipnet::IpNet;

use super::raw::{RawConfig, RawLimits, RawTls, RawUpstream};
use super::{Admin, Config, Forwarding, Limits, Log, Server, Tls, Upstream};

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

    fn file(&mut self, key: &str, base: &Path, value: &str) -> PathBuf {
        let path = base.join(value);
        if !path.is_file() {
            self.push(
                key,
                format!("file {value:?} not found (looked at {})", path.display()),
            );
        }
        path
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
        limits: limits(&mut errs, raw.server.limits),
    };
    let admin = Admin {
        listen: errs.socket_addr("admin.listen", raw.admin.listen.as_deref(), "0.0.0.0:9090"),
    };
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
    };
    let level = raw.log.level.unwrap_or_else(|| "info".to_string());
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
        errs.push("log.level", format!("invalid level {level:?} ({e})"));
    }
    let log = Log {
        format: raw.log.format.unwrap_or_default(),
        level,
    };
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
    })
}

fn tls(errs: &mut Errors, base: &Path, raw: RawTls) -> Tls {
    let cert_file = errs.file("server.tls.cert_file", base, &raw.cert_file);
    let key_file = errs.file("server.tls.key_file", base, &raw.key_file);
    if cert_file.is_file()
        && key_file.is_file()
        && let Err(e) = crate::server::tls::load_certified_key(&cert_file, &key_file)
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
            && let Err(e) = crate::upstream::load_roots(&path)
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
