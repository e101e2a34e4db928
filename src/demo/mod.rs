//! `tollgate demo`: the shipped example configuration (tenants, plans, keys), embedded and written
//! to a temporary directory, in front of the built-in echo upstream. Prints tokens for a few demo
//! users, an API key, and ready-to-paste `curl` lines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commands::{self, KeyRequest, TokenRequest};
use crate::config::{Config, Gateway};
use crate::server::Server;
use crate::snapshot::Snapshot;

mod banner;
mod keys;
use banner::{Banner, shell_word};

/// The shipped example files, compiled in so the demo runs from anywhere.
const FILES: [(&str, &str); 9] = [
    (
        "config/tollgate.yaml",
        include_str!("../../config/tollgate.yaml"),
    ),
    (
        "config/tenants.yaml",
        include_str!("../../config/tenants.yaml"),
    ),
    ("config/plans.yaml", include_str!("../../config/plans.yaml")),
    (
        "config/routes.yaml",
        include_str!("../../config/routes.yaml"),
    ),
    (
        "config/api-keys.yaml",
        include_str!("../../config/api-keys.yaml"),
    ),
    (
        "policies/schema.cedarschema",
        include_str!("../../policies/schema.cedarschema"),
    ),
    (
        "policies/roles.cedar",
        include_str!("../../policies/roles.cedar"),
    ),
    (
        "policies/guards.cedar",
        include_str!("../../policies/guards.cedar"),
    ),
    (
        "policies/tenants/acme/admin-network.cedar",
        include_str!("../../policies/tenants/acme/admin-network.cedar"),
    ),
];

pub struct DemoAddrs {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub upstream: SocketAddr,
    /// The authorizer listener (for deploy/nginx and other gateways).
    pub authorizer: SocketAddr,
}

/// Where the demo's files live: a temporary copy removed on exit, or a directory of the user's
/// (`--dir`), where files are written only if missing so that edits survive a restart.
enum Place {
    Temporary(tempfile::TempDir),
    Kept(PathBuf),
}

impl Place {
    fn prepare(dir: Option<&Path>) -> Result<Place, String> {
        let place = match dir {
            Some(dir) => Place::Kept(
                std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?,
            ),
            None => Place::Temporary(
                tempfile::Builder::new()
                    .prefix("tollgate-demo-")
                    .tempdir()
                    .map_err(|e| format!("cannot create a directory for the demo: {e}"))?,
            ),
        };
        for (name, text) in FILES {
            let path = place.path().join(name);
            if matches!(place, Place::Kept(_)) && path.exists() {
                continue;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        // The signing pair the configuration names, made here: never one anybody else has.
        let private = place.path().join("config/keys/demo-es256.pem");
        if !private.exists() {
            let (private_pem, public_pem) = keys::generate()?;
            let public = place.path().join("config/keys/demo-es256.pub.pem");
            std::fs::create_dir_all(place.path().join("config/keys"))
                .map_err(|e| format!("{}: {e}", place.path().display()))?;
            std::fs::write(&public, public_pem)
                .and_then(|()| std::fs::write(&private, private_pem))
                .map_err(|e| format!("{}: {e}", private.display()))?;
        }
        Ok(place)
    }

    fn path(&self) -> &Path {
        match self {
            Place::Temporary(dir) => dir.path(),
            Place::Kept(dir) => dir,
        }
    }
}

pub async fn run(
    addrs: DemoAddrs,
    dir: Option<&Path>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let place = Place::prepare(dir)?;
    // Its own state (usage store, audit file) unless TOLLGATE_STATE_DIR says otherwise.
    let state = std::env::var_os("TOLLGATE_STATE_DIR")
        .map_or_else(|| place.path().join("state"), PathBuf::from);
    let main_file = place.path().join("config/tollgate.yaml");
    let mut config = Config::load_with(&main_file, |name| match name {
        "TOLLGATE_STATE_DIR" => Some(state.display().to_string()),
        _ => std::env::var(name).ok(),
    })
    .map_err(|e| e.to_string())?;
    config.server.listen = addrs.listen;
    config.admin.listen = addrs.admin;
    config.authorizers = authorizers(addrs.authorizer);
    // /usage needs the admin token: TOLLGATE_ADMIN_TOKEN, or one made for this run.
    if config.admin.token.is_none() {
        config.admin.token = Some(random_token()?);
    }
    config.upstream.scheme = http::uri::Scheme::HTTP;
    config.upstream.authority = addrs
        .upstream
        .to_string()
        .parse()
        .map_err(|e| format!("upstream address: {e}"))?;
    crate::logging::init(&config.log);

    let credentials = credentials(&config)?;
    let audit_file = config
        .audit
        .as_ref()
        .and_then(|a| a.file.as_ref())
        .map(|f| f.path.display().to_string());
    let admin_token = config.admin.token.clone().unwrap_or_default();
    let upstream = TcpListener::bind(addrs.upstream)
        .await
        .map_err(|e| format!("cannot listen on {} (echo upstream): {e}", addrs.upstream))?;
    let server = Server::bind(config).await?;
    let stop_echo = CancellationToken::new();
    tokio::spawn(crate::echo::serve(upstream, stop_echo.clone()));
    let banner = Banner {
        proxy: reachable(server.proxy_addr().unwrap_or(addrs.listen)),
        admin: reachable(server.admin_addr().unwrap_or(addrs.admin)),
        upstream: reachable(addrs.upstream),
        authorizer: reachable(addrs.authorizer),
        dir: place.path(),
        kept: matches!(place, Place::Kept(_)),
        state: &state,
        main_file: &main_file,
        bin: std::env::current_exe().map_or_else(
            |_| "tollgate".to_string(),
            |p| shell_word(&p.display().to_string()),
        ),
        credentials: &credentials,
        admin_token: &admin_token,
        audit_file: audit_file.as_deref(),
    };
    println!("{}", banner.render());
    server.serve(shutdown).await;
    stop_echo.cancel();
    Ok(())
}

/// The address a client on this machine connects to: a wildcard listener is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        ip if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

/// 32 random bytes as hex.
fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| "no randomness for the admin token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The demo's authorizer listeners: nginx on `first`, Envoy and Traefik on the next two ports.
pub fn authorizers(first: SocketAddr) -> Vec<crate::config::Authorizer> {
    [Gateway::Nginx, Gateway::Envoy, Gateway::Traefik]
        .into_iter()
        .enumerate()
        .map(|(i, gateway)| crate::config::Authorizer {
            listen: SocketAddr::new(first.ip(), first.port().saturating_add(i as u16)),
            gateway,
            envoy_path_prefix: "/envoy".to_string(),
            tls: false,
        })
        .collect()
}

/// Tokens for the demo users and a fresh API key for globex (its hash goes into the demo's keys
/// file, exactly as `tollgate keys create` does).
fn credentials(config: &Config) -> Result<Vec<(&'static str, String, &'static str)>, String> {
    let snapshot = Snapshot::load(config.clone(), 1).map_err(|e| e.join("\n"))?;
    let day = Duration::from_secs(24 * 3600);
    let token = |tenant, subject, roles: &[&str], mfa| {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let request = TokenRequest {
            tenant: Some(tenant),
            subject,
            roles: &roles,
            scopes: &[],
            mfa,
            ttl: day,
        };
        commands::token(&snapshot, &request)
    };
    let key = commands::create_key(
        &snapshot,
        &KeyRequest {
            tenant: "globex",
            // Named after its hash: a kept demo directory gets a new key each run.
            name: None,
            roles: &["developer".to_string()],
            scopes: &[],
            expires_in: Some(day),
        },
    )?;
    Ok(vec![
        (
            "ALICE",
            token("acme", "alice", &["viewer"], false)?,
            "acme, viewer",
        ),
        (
            "BOB",
            token("acme", "bob", &["tenant_admin"], true)?,
            "acme, tenant_admin, mfa",
        ),
        (
            "CAROL",
            token("globex", "carol", &["user", "analyst"], false)?,
            "globex, user and analyst",
        ),
        ("GLOBEX_KEY", key, "globex API key, developer"),
    ])
}
