//! Where audit lines go: stdout and/or an append-only file with size- and age-based rotation and
//! a configurable fsync policy. Written by one dedicated thread, off the request path.
//!
//! `interval` syncs in a short-lived thread of its own, once a second: an fsync can take longer
//! than the queue takes to fill at full load, and the writer must keep draining meanwhile.
//!
//! A failed write (a full disk, a file-size limit) never leaves a torn record and never writes one
//! twice: each sink knows exactly how much of the pending lines it has written, a regular file is
//! truncated back to its last complete line, and a retry goes on from there.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{AuditFile, Fsync};

pub(crate) struct FileSink {
    config: AuditFile,
    file: File,
    size: u64,
    opened: Instant,
    synced: Instant,
    /// The `interval` sync in progress.
    syncing: Option<JoinHandle<io::Result<()>>>,
    /// Only regular files rotate, sync and are truncated (a device such as `/dev/full`, or a
    /// pipe, is written as is).
    pub regular: bool,
    /// A truncation back to the last complete line failed: redo it before writing on.
    torn: bool,
    /// Bytes of an incomplete last line dropped when the file was opened.
    pub dropped: u64,
}

/// The length of `path` up to the end of its last complete line.
fn complete_lines(path: &PathBuf) -> io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut end = size;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let part = &mut chunk[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(part)?;
        if let Some(at) = part.iter().rposition(|b| *b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// A write that failed after `written` bytes of whole lines reached the sink.
pub struct Partial {
    pub written: usize,
    pub error: io::Error,
}

impl From<io::Error> for Partial {
    fn from(error: io::Error) -> Partial {
        Partial { written: 0, error }
    }
}

/// Writes as much of `bytes` as the sink takes; the count, and the error that stopped it.
fn write_some(out: &mut impl Write, bytes: &[u8]) -> (usize, io::Result<()>) {
    let mut written = 0;
    while written < bytes.len() {
        match out.write(&bytes[written..]) {
            Ok(0) => return (written, Err(io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Err(e)),
        }
    }
    (written, Ok(()))
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
        let mut size = metadata.len();
        // An incomplete last line (a crash mid-write) is dropped, so that the next record
        // starts a line of its own; the chain's next line says how much was dropped.
        let mut dropped = 0;
        if metadata.is_file() && size > 0 {
            let whole = complete_lines(&config.path)
                .map_err(|e| format!("{}: {e}", config.path.display()))?;
            if whole < size {
                file.set_len(whole)
                    .map_err(|e| format!("{}: {e}", config.path.display()))?;
                dropped = size - whole;
                size = whole;
            }
        }
        Ok(FileSink {
            config: config.clone(),
            dropped,
            size,
            regular: metadata.is_file(),
            file,
            opened: Instant::now(),
            synced: Instant::now(),
            syncing: None,
            torn: false,
        })
    }

    /// Writes whole lines. On failure the file holds exactly the whole lines written (counted in
    /// [`Partial::written`]), never a part of one.
    pub fn write(&mut self, lines: &[u8]) -> Result<(), Partial> {
        if self.torn {
            self.file.set_len(self.size)?;
            self.torn = false;
        }
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
        let (written, result) = write_some(&mut self.file, lines);
        if let Err(error) = result {
            // What a pipe took is gone; a regular file goes back to its last complete line.
            let whole = if self.regular {
                lines[..written]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |end| end + 1)
            } else {
                written
            };
            self.size += whole as u64;
            if whole < written && self.file.set_len(self.size).is_err() {
                self.torn = true;
            }
            return Err(Partial {
                written: whole,
                error,
            });
        }
        self.size += lines.len() as u64;
        if !self.regular {
            // A pipe or a device cannot be synced (EINVAL); a log collector reading a pipe
            // must not turn the auditor unhealthy.
            return Ok(());
        }
        let written = |error| Partial {
            written: lines.len(),
            error,
        };
        match self.config.fsync {
            Fsync::Always => self.file.sync_data().map_err(written)?,
            Fsync::Interval
                if self.syncing.is_none() && self.synced.elapsed() >= Duration::from_secs(1) =>
            {
                let file = self.file.try_clone().map_err(written)?;
                let thread = std::thread::Builder::new().name("tollgate-audit-sync".into());
                self.syncing = Some(thread.spawn(move || file.sync_data()).map_err(written)?);
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

/// Every configured sink, each with how many bytes of the pending lines it has written: a retry
/// after a failure writes each sink only what it lacks.
pub(crate) struct Sinks {
    stdout: bool,
    file: Option<FileSink>,
    stdout_done: usize,
    file_done: usize,
}

impl Sinks {
    pub fn new(stdout: bool, file: Option<FileSink>) -> Sinks {
        Sinks {
            stdout,
            file,
            stdout_done: 0,
            file_done: 0,
        }
    }

    /// Writes what each sink has not written yet of `lines` (which only ever grows until
    /// [`Sinks::clear`]). A failing sink does not keep the others from being written; the first
    /// error is returned.
    pub fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        let mut failed = None;
        if self.stdout && self.stdout_done < lines.len() {
            let mut out = io::stdout().lock();
            let (written, result) = write_some(&mut out, &lines[self.stdout_done..]);
            self.stdout_done += written;
            if let Err(e) = result.and_then(|()| out.flush()) {
                failed = Some(e);
            }
        }
        if let Some(file) = &mut self.file
            && self.file_done < lines.len()
        {
            match file.write(&lines[self.file_done..]) {
                Ok(()) => self.file_done = lines.len(),
                Err(partial) => {
                    self.file_done += partial.written;
                    failed = failed.or(Some(partial.error));
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// How many bytes of the pending lines every sink has written.
    pub fn written(&self, lines: &[u8]) -> usize {
        let stdout = if self.stdout {
            self.stdout_done
        } else {
            lines.len()
        };
        let file = if self.file.is_some() {
            self.file_done
        } else {
            lines.len()
        };
        stdout.min(file)
    }

    /// The pending lines were let go of: start counting afresh.
    pub fn clear(&mut self) {
        self.stdout_done = 0;
        self.file_done = 0;
    }

    pub fn sync(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.sync(),
            None => Ok(()),
        }
    }
}
