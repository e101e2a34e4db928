//! The shipped nginx configuration (deploy/nginx/nginx.conf), run by a real nginx in front of the
//! echo upstream, with `auth_request` to a real Tollgate: allowed requests reach the upstream
//! with the trusted identity, refusals reach the client exactly as proxy mode would answer them.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::authorizer::{Setup, request, start};
use crate::support::tollgate::free_port;

struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shipped() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/nginx.conf"))
        .unwrap()
}

/// The shipped configuration with this test's addresses.
fn start_nginx(s: &Setup) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = shipped()
        .replace("127.0.0.1:8082", &s.authorizer.to_string())
        .replace("127.0.0.1:8081", &s.upstream.addr.to_string())
        .replace("127.0.0.1:8088", &addr.to_string());
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, config).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&file)
        .args(["-e", "stderr", "-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (scripts/test.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx {
        child,
        addr,
        _dir: dir,
    }
}

#[test]
fn the_shipped_nginx_configuration_passes_nginx_t() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new("nginx")
        .arg("-t")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx/nginx.conf"))
        .args(["-e", "stderr"])
        .output()
        .expect("nginx (scripts/test.sh installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_with_auth_request_forwards_allowed_requests_and_answers_refusals_like_tollgate() {
    let s = start().await;
    let nginx = start_nginx(&s);
    let viewer = s.token("alice", "acme", &["viewer"], false);

    let allowed = request(
        nginx.addr,
        "GET",
        "/api/v1/agents/7",
        &[
            ("host", "acme.app.test"),
            ("authorization", &viewer),
            ("x-user-roles", "super_admin"),
            ("x-tenant-id", "globex"),
        ],
    )
    .await;
    assert_eq!(allowed.status, 200, "{:?}", allowed.body);
    assert_eq!(
        allowed.upstream_header("x-tenant-id").as_deref(),
        Some("acme")
    );
    assert_eq!(
        allowed.upstream_header("x-user-id").as_deref(),
        Some("alice")
    );
    assert_eq!(
        allowed.upstream_header("x-user-roles").as_deref(),
        Some("viewer"),
        "spoofed roles replaced"
    );
    assert_eq!(
        allowed.upstream_header("x-request-id"),
        allowed
            .headers
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string())
    );

    let unauthenticated = request(
        nginx.addr,
        "GET",
        "/api/v1/agents",
        &[("host", "acme.app.test")],
    )
    .await;
    unauthenticated.assert_problem(401, "unauthenticated");
    assert_eq!(
        unauthenticated.headers["www-authenticate"],
        "Bearer realm=\"tollgate\""
    );

    let forbidden = request(
        nginx.addr,
        "DELETE",
        "/api/v1/agents/7",
        &[("host", "acme.app.test"), ("authorization", &viewer)],
    )
    .await;
    forbidden.assert_problem(403, "forbidden");
    request(
        nginx.addr,
        "GET",
        "/api/v1/agents",
        &[("host", "nobody.app.test")],
    )
    .await
    .assert_problem(404, "unknown-tenant");
    request(
        nginx.addr,
        "GET",
        "/public/x",
        &[("host", "umbrella.app.test")],
    )
    .await
    .assert_problem(402, "subscription-inactive");

    let carol = s.token("carol", "globex", &["user"], false);
    let globex = [
        ("host", "globex.app.test"),
        ("authorization", carol.as_str()),
    ];
    assert_eq!(
        request(nginx.addr, "GET", "/api/v1/agents", &globex)
            .await
            .status,
        200
    );
    let limited = request(nginx.addr, "GET", "/api/v1/agents", &globex).await;
    limited.assert_problem(429, "rate-limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert!(
        limited.headers.contains_key("ratelimit")
            && limited.headers.contains_key("ratelimit-policy")
    );

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
}
