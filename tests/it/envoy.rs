//! The shipped Envoy configuration (deploy/envoy/envoy.yaml), run by a real Envoy in front of the
//! echo upstream, with `ext_authz` (HTTP service) to a real Tollgate: allowed requests reach the
//! upstream with the trusted identity and the canonical path, refusals reach the client exactly as
//! proxy mode would answer them, and an unreachable Tollgate means 503, never open.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use crate::authorizer::{request, start};
use crate::gateways;
use crate::support::gateway::{Gateway, assert_valid, free_addr, shipped};

/// The shipped configuration, asking `authorizer` (under the test setup's path prefix) about
/// requests for `application`.
fn start_envoy(authorizer: SocketAddr, application: SocketAddr) -> Gateway {
    let addr = free_addr();
    let port = |p: u16| format!("port_value: {p}");
    let replace = [
        ("port_value: 8089", port(addr.port())),
        ("port_value: 8081", port(application.port())),
        ("port_value: 8083", port(authorizer.port())),
        ("127.0.0.1:8083", authorizer.to_string()),
        ("port_value: 9901", port(free_addr().port())),
        ("path_prefix: /envoy", "path_prefix: /ext_authz".to_string()),
    ];
    Gateway::start("envoy/envoy.yaml", addr, &replace, envoy)
}

/// Envoy run with one worker on `file`.
pub fn envoy(_dir: &Path, file: &Path) -> Command {
    let mut command = Command::new("envoy");
    command.arg("-c").arg(file).args([
        "--concurrency",
        "1",
        "--disable-hot-restart",
        "-l",
        "error",
    ]);
    command
}

#[test]
fn the_shipped_envoy_configurations_pass_envoy_mode_validate() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["envoy/envoy.yaml", "envoy/envoy-grpc.yaml"] {
        let mut command = envoy(dir.path(), &shipped(file));
        assert_valid(command.args(["--mode", "validate"]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_answers_503_when_tollgate_cannot_be_reached() {
    let s = start().await;
    let envoy = start_envoy(free_addr(), s.upstream.addr);
    gateways::closed_when_tollgate_is_unreachable(envoy.addr, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_with_ext_authz_forwards_allowed_requests_and_answers_refusals_like_tollgate() {
    let s = start().await;
    let envoy = start_envoy(s.envoy, s.upstream.addr);
    let viewer = gateways::allows_and_refuses_like_tollgate(envoy.addr, &s).await;
    let acme = [("host", "acme.app.test")];

    gateways::forwards_what_was_judged(envoy.addr, &viewer, &[]).await;
    let refused = request(envoy.addr, "GET", "/api/v1/agents", &acme).await;
    assert!(!refused.headers.contains_key("x-tollgate-problem"));
    let decoded = request(envoy.addr, "GET", "/%70ublic//x", &acme).await;
    assert_eq!(decoded.json()["path"], "/public/x");

    let seen = s.upstream.seen();
    assert_eq!(
        seen.len(),
        4,
        "only the allowed requests reached the upstream: {seen:?}"
    );
    gateways::keeps_secrets_and_reserved_headers_from_the_application(envoy.addr, &s).await;
}
