//! `tollgate demo` runs the shipped config in front of the built-in echo upstream.

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::get;
use crate::support::tollgate::{BIN, admin_get, free_port, send_signal};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_proxies_to_its_echo_upstream_and_prints_curl_lines() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let upstream: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--listen",
            &addr.to_string(),
            "--admin-listen",
            &admin.to_string(),
        ])
        .args(["--upstream-listen", &upstream.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while admin_get(admin, "/readyz").is_none_or(|(status, _)| status != 200) {
        assert!(Instant::now() < deadline, "demo never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }

    let reply = get(addr, "/anything?x=1", &[("x-forwarded-for", "6.6.6.6")]).await;
    assert_eq!(reply.status, 200);
    let echoed = reply.json();
    assert_eq!(echoed["method"], "GET");
    assert_eq!(echoed["path"], "/anything");
    assert_eq!(echoed["query"], "x=1");
    assert_eq!(echoed["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        echoed["headers"]["x-request-id"],
        reply.headers["x-request-id"].to_str().unwrap()
    );

    send_signal(child.id(), libc::SIGTERM);
    assert!(child.wait().unwrap().success());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(
        stdout.contains(&format!("curl -s http://{addr}/anything")),
        "{stdout}"
    );
}
