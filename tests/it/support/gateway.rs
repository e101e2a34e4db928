//! A gateway in front of Tollgate (nginx, Envoy), run from a shipped `deploy/` configuration with
//! this test's addresses, killed when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tollgate::free_port;

/// A free loopback address for a gateway to listen on.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

pub struct Gateway {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file under deploy/.
pub fn shipped(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// Runs a validating command (`nginx -t`, `envoy --mode validate`) and asserts it succeeded.
pub fn assert_valid(command: &mut Command) {
    let output = command
        .output()
        .expect("the gateway binary (scripts/test.sh installs it)");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Gateway {
    /// Writes `deploy/<path>` with each `(shipped, test)` text replaced (addresses), runs
    /// `command(dir, file)` and waits until the gateway accepts connections on `addr`.
    pub fn start(
        path: &str,
        addr: SocketAddr,
        replace: &[(&str, String)],
        command: impl FnOnce(&Path, &Path) -> Command,
    ) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let mut config = std::fs::read_to_string(shipped(path)).unwrap();
        for (from, to) in replace {
            assert!(config.contains(from), "{path} mentions {from}");
            config = config.replace(from, to);
        }
        let file = dir.path().join(Path::new(path).file_name().unwrap());
        std::fs::write(&file, config).unwrap();
        let child = command(dir.path(), &file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the gateway binary (scripts/test.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "{path}: the gateway did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Gateway {
            child,
            addr,
            _dir: dir,
        }
    }
}
