//! The shipped nginx configuration (deploy/nginx/nginx.conf), run by a real nginx in front of the
//! echo upstream, with `auth_request` to a real Tollgate: allowed requests reach the upstream
//! with the trusted identity, refusals reach the client exactly as proxy mode would answer them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::authorizer::{request, start};
use crate::gateways;
use crate::support::gateway::{Gateway, assert_valid, free_addr, shipped};

/// The shipped configuration, asking `authorizer` about requests for `application`.
fn start_nginx(authorizer: SocketAddr, application: SocketAddr) -> Gateway {
    let addr = free_addr();
    let replace = [
        ("127.0.0.1:8082", authorizer.to_string()),
        ("127.0.0.1:8081", application.to_string()),
        ("127.0.0.1:8088", addr.to_string()),
    ];
    Gateway::start("nginx/nginx.conf", addr, &replace, nginx)
}

fn nginx(dir: &Path, file: &Path) -> Command {
    let mut command = Command::new("nginx");
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(file)
        .args(["-e", "stderr", "-g", "daemon off;"]);
    command
}

#[test]
fn the_shipped_nginx_configuration_passes_nginx_t() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = nginx(dir.path(), &shipped("nginx/nginx.conf"));
    assert_valid(command.arg("-t"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_answers_503_when_tollgate_cannot_be_reached() {
    let s = start().await;
    let nginx = start_nginx(free_addr(), s.upstream.addr);
    gateways::closed_when_tollgate_is_unreachable(nginx.addr, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_auth_request_forwards_allowed_requests_and_answers_refusals_like_tollgate() {
    let s = start().await;
    let nginx = start_nginx(s.nginx, s.upstream.addr);
    let viewer = gateways::allows_and_refuses_like_tollgate(nginx.addr, &s).await;

    // Path tricks in the original URI are judged on the canonical path, as in proxy mode.
    request(
        nginx.addr,
        "GET",
        "/public/../admin",
        &[("host", "acme.app.test"), ("authorization", &viewer)],
    )
    .await
    .assert_problem(403, "forbidden");
    let seen = s.upstream.seen();
    assert_eq!(
        seen.len(),
        2,
        "only the allowed requests reached the upstream: {seen:?}"
    );
    gateways::keeps_secrets_and_reserved_headers_from_the_application(nginx.addr, &s).await;
}
