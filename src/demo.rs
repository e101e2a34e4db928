//! `tollgate demo`: the shipped example configuration, embedded, in front of the built-in echo
//! upstream, with ready-to-paste `curl` lines.

use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::server::Server;

/// The shipped example configuration, compiled in so the demo needs no files.
pub const CONFIG: &str = include_str!("../config/tollgate.yaml");

pub struct DemoAddrs {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub upstream: SocketAddr,
}

pub async fn run(addrs: DemoAddrs, shutdown: CancellationToken) -> Result<(), String> {
    let mut config = Config::from_text(CONFIG, "<embedded config/tollgate.yaml>", Path::new("."))
        .map_err(|e| e.to_string())?;
    config.server.listen = addrs.listen;
    config.admin.listen = addrs.admin;
    config.upstream.scheme = http::uri::Scheme::HTTP;
    config.upstream.authority = addrs
        .upstream
        .to_string()
        .parse()
        .map_err(|e| format!("upstream address: {e}"))?;
    crate::logging::init(&config.log);

    let upstream = TcpListener::bind(addrs.upstream)
        .await
        .map_err(|e| format!("cannot listen on {} (echo upstream): {e}", addrs.upstream))?;
    let server = Server::bind(config).await?;
    let proxy = server.proxy_addr().unwrap_or(addrs.listen);
    let admin = server.admin_addr().unwrap_or(addrs.admin);
    let stop_echo = CancellationToken::new();
    tokio::spawn(crate::echo::serve(upstream, stop_echo.clone()));
    println!("{}", banner(proxy, admin, addrs.upstream));
    server.serve(shutdown).await;
    stop_echo.cancel();
    Ok(())
}

fn banner(proxy: SocketAddr, admin: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        "Tollgate demo
  proxy     http://{proxy}   -> echo upstream http://{upstream}
  admin     http://{admin}   (/healthz /readyz /metrics)

Try:
  curl -s http://{proxy}/anything
  curl -s -H 'X-Forwarded-For: 6.6.6.6' http://{proxy}/whoami       # spoofed XFF is replaced
  curl -s --path-as-is 'http://{proxy}/public/../admin'            # upstream sees /admin
  curl -si 'http://{proxy}/files/a%2Fb'                             # ambiguous path: 400 problem+json
  curl -s http://{admin}/metrics | grep tollgate_http

Ctrl-C stops the demo."
    )
}
