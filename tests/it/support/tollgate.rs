//! A real Tollgate process, started from the built binary with a generated configuration.

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::config::Document;

pub const BIN: &str = env!("CARGO_BIN_EXE_tollgate");
/// The `admin.token` of every generated configuration; `admin_get` sends it.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// What a test's configuration adds to [`Document::base`], in this order: YAML blocks merged
/// under their section, values at dotted paths (`settings`), then `extra`; plus files and how
/// the process runs.
#[derive(Default, Clone)]
pub struct Options {
    /// Values set at dotted paths (`limits.backend`, `authorizer.0.gateway`).
    pub settings: Vec<(String, serde_json::Value)>,
    pub server: String,
    pub limits: String,
    pub upstream: String,
    pub forwarding: String,
    /// Replaces `http://<upstream addr>` as upstream.url.
    pub upstream_url: Option<String>,
    /// A `tls:` block under `server:`, written as lines (certificate paths are runtime values).
    pub tls: Option<String>,
    /// Environment variables for the process.
    pub env: Vec<(&'static str, &'static str)>,
    /// Where the process's stdout goes.
    pub stdout: Stdout,
    /// Files written beside the configuration before start (relative path, contents).
    pub files: Vec<(String, String)>,
    /// Top-level YAML merged into the configuration last (`tenancy:`, `audit:` …).
    pub extra: String,
}

/// Where a test Tollgate's stdout goes.
#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub enum Stdout {
    #[default]
    Null,
    /// A pipe closed at once: writes fail with EPIPE.
    Closed,
    /// A pipe held open and never read: once it is full, writes block.
    Held,
    /// `stdout.log` in the process's directory ([`Tollgate::stdout`]).
    File,
}

impl Options {
    /// Sets the value at a dotted path of the configuration.
    pub fn with(mut self, path: &str, value: impl Into<serde_json::Value>) -> Options {
        self.set(path, value);
        self
    }

    /// Sets the value at a dotted path of the configuration.
    pub fn set(&mut self, path: &str, value: impl Into<serde_json::Value>) {
        self.settings.push((path.to_string(), value.into()));
    }

    /// The whole configuration document for an upstream at `upstream`.
    pub fn document(&self, upstream: SocketAddr) -> Document {
        let url = self
            .upstream_url
            .clone()
            .unwrap_or_else(|| format!("http://{upstream}"));
        let mut doc = Document::base(&url, ADMIN_TOKEN);
        doc.merge_lines("server", &self.server);
        if let Some(tls) = &self.tls {
            doc.merge_lines("server.tls", tls);
        }
        doc.merge_lines("server.limits", &self.limits);
        doc.merge_lines("upstream", &self.upstream);
        doc.merge_lines("forwarding", &self.forwarding);
        for (path, value) in &self.settings {
            doc.set(path, value.clone());
        }
        // The test's own YAML is merged last: it is the most specific.
        doc.merge_yaml("", &self.extra);
        doc
    }
}

pub struct Tollgate {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The authorizer listeners, in configuration order.
    pub authorizers: Vec<SocketAddr>,
    pub dir: tempfile::TempDir,
    env: Vec<(&'static str, &'static str)>,
}

fn spawn(dir: &Path, env: &[(&'static str, &'static str)], stdout: Stdout) -> Child {
    let append = |name: &str| {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .unwrap()
    };
    let out = match stdout {
        Stdout::Closed | Stdout::Held => Stdio::piped(),
        Stdout::File => Stdio::from(append("stdout.log")),
        Stdout::Null => Stdio::null(),
    };
    Command::new(BIN)
        .args(["serve", "--config"])
        .arg(dir.join("tollgate.yaml"))
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(out)
        .stderr(append("tollgate.log"))
        .spawn()
        .map(|mut child| {
            // Held: the pipe stays in `child` (never read) for as long as the process runs.
            if stdout == Stdout::Closed {
                drop(child.stdout.take());
            }
            child
        })
        .unwrap()
}

/// Every port handed out so far in this test process.
static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// The first of `n` consecutive ports that were free a moment ago (the demo's authorizers).
pub fn free_ports_in_a_row(n: u16) -> u16 {
    loop {
        let first = free_port();
        let rest_free = (1..n).all(|i| {
            first
                .checked_add(i)
                .is_some_and(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        });
        if rest_free {
            GIVEN.lock().unwrap().extend((1..n).map(|i| first + i));
            return first;
        }
    }
}

/// A port that was free a moment ago, and never handed out before in this test process (the
/// kernel may offer a just-released port twice: two listeners of one Tollgate must not collide).
pub fn free_port() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Tollgate {
    pub fn start(upstream: SocketAddr, options: Options) -> Tollgate {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in &options.files {
            let path = dir.path().join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        // Every listener is on port 0 and Tollgate logs what it got: no port can be taken by
        // someone else between choosing it and binding it.
        options
            .document(upstream)
            .write(&dir.path().join("tollgate.yaml"));
        let unbound: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let (addr, admin) = (unbound, unbound);
        let child = spawn(dir.path(), &options.env, options.stdout);
        let mut tollgate = Tollgate {
            child,
            addr,
            admin,
            authorizers: Vec::new(),
            dir,
            env: options.env,
        };
        tollgate.wait_ready();
        tollgate
    }

    /// Starts the process again, same configuration, directory and ports (after it exited or was
    /// killed; a running one is killed first).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.dir.path(), &self.env, Stdout::File);
        self.wait_ready();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What the process wrote on stdout (with `Stdout::File`).
    pub fn stdout(&self) -> String {
        fs::read_to_string(self.path("stdout.log")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.path("tollgate.log")).unwrap_or_default()
    }

    /// The addresses the process logged it listens on, once it has.
    fn bound(&self) -> Option<(SocketAddr, SocketAddr, Vec<SocketAddr>)> {
        let log = self.log();
        let line = log.lines().rev().find(|l| l.contains("listening"))?;
        // `proxy=1.2.3.4:5` in human logs, `"proxy":"1.2.3.4:5"` in JSON ones.
        let field = |name: &str| {
            let (key, end) = if line.starts_with('{') {
                (format!("\"{name}\":\""), '"')
            } else {
                (format!("{name}="), ' ')
            };
            let at = line.find(&key)? + key.len();
            line[at..].split(end).next().map(str::to_string)
        };
        let authorizers = field("authorizers")?
            .split(',')
            .filter(|a| !a.is_empty())
            .map(|a| a.parse().ok())
            .collect::<Option<Vec<_>>>()?;
        Some((
            field("proxy")?.parse().ok()?,
            field("admin")?.parse().ok()?,
            authorizers,
        ))
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tollgate exited with {status}:\n{}", self.log());
            }
            if self.addr.port() == 0 {
                if let Some((addr, admin, authorizers)) = self.bound() {
                    (self.addr, self.admin, self.authorizers) = (addr, admin, authorizers);
                    self.pin_ports();
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            if admin_get(self.admin, "/readyz").is_some_and(|(status, _)| status == 200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tollgate did not become ready:\n{}", self.log());
    }

    /// Writes the bound ports into the configuration, so that a restart listens on them again.
    fn pin_ports(&self) {
        let config = self.path("tollgate.yaml");
        let mut doc = Document::read(&config);
        doc.set("server.listen", self.addr.to_string());
        doc.set("admin.listen", self.admin.to_string());
        for (i, addr) in self.authorizers.iter().enumerate() {
            doc.set(&format!("authorizer.{i}.listen"), addr.to_string());
        }
        doc.write(&config);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (`libc::SIGTERM`, …) to the process.
    pub fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// Waits for the process to exit (the deadline only stops a broken test from hanging).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tollgate did not exit:\n{}", self.log());
    }

    /// Peak resident memory of the process, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:")
    }

    /// Fetches an admin endpoint: (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        admin_get(self.admin, path).expect("admin listener answers")
    }

    /// The value of one sample line of `/metrics` (`name{labels}`), 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        let (_, text) = self.admin_get("/metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Tollgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn send_signal(pid: u32, signal: i32) {
    let pid = i32::try_from(pid).unwrap();
    // SAFETY: kill(2) has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}

pub fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A blocking one-shot GET, for readiness polling and admin endpoints.
pub fn admin_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// A new API key of `tenant` with `role`, made by `tollgate keys create` against the running
/// Tollgate's configuration (which reloads its keys file by itself).
pub fn create_key(tollgate: &Tollgate, tenant: &str, role: &str) -> String {
    let run = keys_create(tollgate, tenant, &["--role", role]);
    assert!(run.ok, "{}", run.stderr);
    run.stdout
}

/// `tollgate keys create --tenant <tenant> <extra>` against the running Tollgate's configuration.
pub fn keys_create(tollgate: &Tollgate, tenant: &str, extra: &[&str]) -> Run {
    let config = tollgate.path("tollgate.yaml");
    let mut args = vec![
        "keys",
        "create",
        "--config",
        config.to_str().unwrap(),
        "--tenant",
        tenant,
    ];
    args.extend(extra);
    cli(&args, &[])
}

/// What a run of the `tollgate` command printed.
pub struct Run {
    pub ok: bool,
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Trimmed.
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `tollgate` binary with arguments and extra environment variables.
pub fn cli(args: &[&str], env: &[(&str, &Path)]) -> Run {
    let output = Command::new(BIN)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .output()
        .unwrap();
    Run {
        ok: output.status.success(),
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).to_string(),
    }
}

/// Runs `tollgate check` on files and returns (success, stdout + stderr).
pub fn check(files: &[&Path]) -> (bool, String) {
    let output = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .args(files)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
