//! `tollgate demo`: the shipped example configuration (tenants, plans, keys), embedded and written
//! to a temporary directory, in front of the built-in echo upstream. Prints tokens for a few demo
//! users, an API key, and ready-to-paste `curl` lines.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::commands::{self, KeyRequest, TokenRequest};
use crate::config::{Config, Gateway};
use crate::server::Server;
use crate::snapshot::Snapshot;

/// The shipped example files, compiled in so the demo runs from anywhere.
const FILES: [(&str, &str); 11] = [
    (
        "config/tollgate.yaml",
        include_str!("../config/tollgate.yaml"),
    ),
    (
        "config/tenants.yaml",
        include_str!("../config/tenants.yaml"),
    ),
    ("config/plans.yaml", include_str!("../config/plans.yaml")),
    ("config/routes.yaml", include_str!("../config/routes.yaml")),
    (
        "config/api-keys.yaml",
        include_str!("../config/api-keys.yaml"),
    ),
    (
        "config/keys/demo-es256.pem",
        include_str!("../config/keys/demo-es256.pem"),
    ),
    (
        "config/keys/demo-es256.pub.pem",
        include_str!("../config/keys/demo-es256.pub.pem"),
    ),
    (
        "policies/schema.cedarschema",
        include_str!("../policies/schema.cedarschema"),
    ),
    (
        "policies/roles.cedar",
        include_str!("../policies/roles.cedar"),
    ),
    (
        "policies/guards.cedar",
        include_str!("../policies/guards.cedar"),
    ),
    (
        "policies/tenants/acme/admin-network.cedar",
        include_str!("../policies/tenants/acme/admin-network.cedar"),
    ),
];

pub struct DemoAddrs {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub upstream: SocketAddr,
    /// The authorizer listener (for deploy/nginx and other gateways).
    pub authorizer: SocketAddr,
}

pub async fn run(addrs: DemoAddrs, shutdown: CancellationToken) -> Result<(), String> {
    let dir = tempfile::Builder::new()
        .prefix("tollgate-demo-")
        .tempdir()
        .map_err(|e| format!("cannot create a directory for the demo: {e}"))?;
    for (name, text) in FILES {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let mut config =
        Config::load(&dir.path().join("config/tollgate.yaml")).map_err(|e| e.to_string())?;
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

    let mut credentials = credentials(&config)?;
    if let Some(token) = &config.admin.token {
        credentials.push(("ADMIN_TOKEN", token.clone(), "the admin listener's /usage"));
    }
    let audit_file = config
        .audit
        .as_ref()
        .and_then(|a| a.file.as_ref())
        .map_or_else(
            || "(no audit file)".to_string(),
            |f| f.path.display().to_string(),
        );
    let upstream = TcpListener::bind(addrs.upstream)
        .await
        .map_err(|e| format!("cannot listen on {} (echo upstream): {e}", addrs.upstream))?;
    let server = Server::bind(config).await?;
    let proxy = server.proxy_addr().unwrap_or(addrs.listen);
    let admin = server.admin_addr().unwrap_or(addrs.admin);
    let stop_echo = CancellationToken::new();
    tokio::spawn(crate::echo::serve(upstream, stop_echo.clone()));
    println!(
        "{}",
        banner(
            proxy,
            admin,
            addrs.upstream,
            dir.path(),
            &credentials,
            &audit_file,
            addrs.authorizer,
        )
    );
    server.serve(shutdown).await;
    stop_echo.cancel();
    Ok(())
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
            name: Some("globex-demo"),
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

fn banner(
    proxy: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    dir: &Path,
    credentials: &[(&str, String, &str)],
    audit_file: &str,
    authorizer: SocketAddr,
) -> String {
    let exports: String = credentials
        .iter()
        .map(|(name, value, what)| format!("  export {name}='{value}'   # {what}\n"))
        .collect();
    let port = proxy.port();
    format!(
        "Tollgate demo
  proxy     http://{proxy}   -> echo upstream http://{upstream}
  admin     http://{admin}   (/healthz /readyz /metrics /usage)
  authorizer http://{authorizer} (nginx auth_request), :{envoy} (Envoy ext_authz), :{traefik} (Traefik forwardAuth): see deploy/
  config    {dir}   (edit config/*.yaml or policies/*.cedar: reloaded within 2s)

Tenants: acme (professional; also owns the domain localhost), globex (basic), initech (suspended),
umbrella (trial ended), hooli (enterprise), soylent (pending)

Credentials, valid 24h:
{exports}
Try:
  curl -s http://{proxy}/anything                                        # a public route; localhost is acme's domain
  curl -s -H 'Host: acme.localhost' -H \"Authorization: Bearer $ALICE\" localhost:{port}/api/v1/agents/7
  curl -si -X DELETE -H 'Host: acme.localhost' -H \"Authorization: Bearer $ALICE\" localhost:{port}/api/v1/agents/7   # 403: viewers read
  curl -si -H 'Host: globex.localhost' -H \"Authorization: Bearer $CAROL\" localhost:{port}/api/v1/analytics/usage  # 403: basic plan
  curl -s -H 'Host: acme.localhost' -H \"Authorization: Bearer $BOB\" localhost:{port}/admin/users         # tenant_admin with mfa
  curl -s -H 'Host: acme.localhost' -H 'X-Tenant-Id: globex' localhost:{port}/public/docs   # spoofed header: still acme
  curl -s -H \"X-API-Key: $GLOBEX_KEY\" 127.0.0.1:{port}/t/globex/api/v1/agents     # path prefix, API key
  curl -si -H 'Host: globex.localhost' -H \"Authorization: Bearer $ALICE\" localhost:{port}/api/v1/agents  # 403 tenant-mismatch
  curl -si -H 'Host: initech.localhost' localhost:{port}/public/x              # 403 tenant-suspended
  curl -si -H 'Host: umbrella.localhost' localhost:{port}/public/x             # 402 subscription-inactive
  curl -si localhost:{port}/api/v1/agents                                      # 401 unauthenticated
  curl -si localhost:{port}/nowhere                                            # 403 no-route
  curl -s --path-as-is 'http://{proxy}/public/../admin'                  # judged and forwarded as /admin: 401
  for i in $(seq 60); do curl -s -o /dev/null -w '%{{http_code}} ' -H 'Host: globex.localhost' \\
    -H \"Authorization: Bearer $CAROL\" localhost:{port}/api/v1/agents; done; echo   # 429 after 50
  curl -si -H 'Host: globex.localhost' -H \"Authorization: Bearer $CAROL\" localhost:{port}/api/v1/agents | grep -i ratelimit
  cargo run -q -- usage --tenant globex                                  # quota use (kept across restarts)
  curl -s -H \"Authorization: Bearer $ADMIN_TOKEN\" http://{admin}/usage/globex   # the same, from the admin listener
  cargo run -q -- audit --file {audit_file} --since 10m                   # the audit records
  curl -s http://{admin}/metrics | grep tollgate_requests_total

Ctrl-C stops the demo.",
        dir = dir.display(),
        envoy = authorizer.port().saturating_add(1),
        traefik = authorizer.port().saturating_add(2),
    )
}
