//! Structured logs with `tracing`: human-readable or JSON lines. `RUST_LOG` overrides the
//! configured level, `TOLLGATE_LOG_FORMAT` (`human`/`json`) the configured format.
//!
//! A log line that cannot be written (stderr redirected to a file on a full disk, a closed pipe)
//! is dropped: logging never fails a request, and never panics the thread that logs.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::EnvFilter;

use crate::config::{Log, LogFormat};

pub fn init(config: &Log) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let format = match std::env::var("TOLLGATE_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        Ok("human") => LogFormat::Human,
        _ => config.format,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| Lossy(io::stderr()));
    // A second init (tests calling in twice) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder.compact().try_init(),
    };
}

/// stderr, reporting every write as done: tracing-subscriber reacts to a failed write by
/// printing to stderr with `eprintln!`, which panics when stderr fails.
struct Lossy(io::Stderr);

impl Write for Lossy {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}
