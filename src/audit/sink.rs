//! Where audit lines go: stdout and/or an append-only file with size- and age-based rotation and
//! a configurable fsync policy. Written by one dedicated thread, off the request path.
//!
//! `interval` syncs in a short-lived thread of its own, once a second: an fsync can take longer
//! than the queue takes to fill at full load, and the writer must keep draining meanwhile.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{AuditFile, Fsync};

pub struct FileSink {
    config: AuditFile,
    file: File,
    size: u64,
    opened: Instant,
    synced: Instant,
    /// The `interval` sync in progress.
    syncing: Option<JoinHandle<io::Result<()>>>,
    /// Only regular files rotate and sync (a device such as `/dev/full`, or a pipe, is written
    /// as is).
    regular: bool,
}

fn open(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl FileSink {
    pub fn open(config: &AuditFile) -> Result<FileSink, String> {
        if let Some(parent) = config.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let file = open(&config.path)
            .map_err(|e| format!("{}: cannot open the audit file: {e}", config.path.display()))?;
        let metadata = file.metadata().map_err(|e| e.to_string())?;
        Ok(FileSink {
            config: config.clone(),
            size: metadata.len(),
            regular: metadata.is_file(),
            file,
            opened: Instant::now(),
            synced: Instant::now(),
            syncing: None,
        })
    }

    pub fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        // A failed background sync fails this write: the lines stay queued and the auditor
        // turns unhealthy, as for any write error.
        if self.syncing.as_ref().is_some_and(JoinHandle::is_finished) {
            self.finish_sync()?;
        }
        if self.regular
            && (self.size >= self.config.max_bytes || self.opened.elapsed() >= self.config.max_age)
        {
            self.rotate()?;
        }
        self.file.write_all(lines)?;
        self.size += lines.len() as u64;
        if !self.regular {
            // A pipe or a device cannot be synced (EINVAL); a log collector reading a pipe
            // must not turn the auditor unhealthy.
            return Ok(());
        }
        match self.config.fsync {
            Fsync::Always => self.file.sync_data()?,
            Fsync::Interval
                if self.syncing.is_none() && self.synced.elapsed() >= Duration::from_secs(1) =>
            {
                let file = self.file.try_clone()?;
                let thread = std::thread::Builder::new().name("tollgate-audit-sync".into());
                self.syncing = Some(thread.spawn(move || file.sync_data())?);
                self.synced = Instant::now();
            }
            _ => {}
        }
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        self.finish_sync()?;
        if self.config.fsync == Fsync::Never || !self.regular {
            return Ok(());
        }
        self.file.sync_data()
    }

    /// Waits for the background sync, if one runs, and returns its result.
    fn finish_sync(&mut self) -> io::Result<()> {
        match self.syncing.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the audit sync thread panicked")),
        }
    }

    /// Renames the current file to `<name>.<UTC time>` and starts a new one; keeps `keep` old ones.
    fn rotate(&mut self) -> io::Result<()> {
        self.finish_sync()?;
        self.file.sync_data()?;
        let stamp = humantime::format_rfc3339_micros(SystemTime::now())
            .to_string()
            .replace([':', '-'], "");
        let mut rotated = self.config.path.clone().into_os_string();
        rotated.push(format!(".{stamp}"));
        std::fs::rename(&self.config.path, &rotated)?;
        self.file = open(&self.config.path)?;
        self.size = 0;
        self.opened = Instant::now();
        self.prune();
        Ok(())
    }

    fn prune(&self) {
        let (Some(dir), Some(name)) = (self.config.path.parent(), self.config.path.file_name())
        else {
            return;
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut old: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
            })
            .collect();
        old.sort();
        while old.len() > self.config.keep {
            let _ = std::fs::remove_file(old.remove(0));
        }
    }
}

/// Every configured sink.
pub struct Sinks {
    pub stdout: bool,
    pub file: Option<FileSink>,
}

impl Sinks {
    pub fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        if self.stdout {
            let mut out = io::stdout().lock();
            out.write_all(lines)?;
            out.flush()?;
        }
        if let Some(file) = &mut self.file {
            file.write(lines)?;
        }
        Ok(())
    }

    pub fn sync(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.sync(),
            None => Ok(()),
        }
    }
}
