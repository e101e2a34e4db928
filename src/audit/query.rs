//! `tollgate audit`: audit files filtered, for people who want an answer now rather than a log
//! pipeline. Records are streamed as they are read (a closed pipe ends the command quietly), over
//! the current file and its rotated ones (`<file>.<UTC time>`), oldest first, and `--follow` goes
//! on reading what is appended, across rotations. A completion record is kept when its decision
//! record is. A line that is not a record (torn by a crash, not UTF-8, not JSON) is reported with
//! its `file:line` and skipped: the rest is still the answer.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::Value;

pub struct Filter<'a> {
    pub tenant: Option<&'a str>,
    /// `allow` or `deny`.
    pub decision: Option<&'a str>,
    pub since: Option<Duration>,
}

/// Where matching lines go, and where the reports of skipped lines go.
pub trait Output {
    /// One matching line, as written; an error ends the query (a closed pipe).
    fn record(&mut self, line: &str) -> io::Result<()>;
    /// A line that is not a record, with its `file:line`.
    fn skipped(&mut self, message: &str);
}

/// How a query ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Every file was read.
    Done,
    /// The output was closed (`| head`): nothing more is wanted.
    Closed,
}

/// The files `names` stand for, oldest first: a file as it is; a directory's files; a pattern
/// with `*` or `?` in its last part, the files it matches. A rotated file
/// (`<name>.<UTC time>`) comes before the file it was rotated from.
pub fn files(names: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for name in names {
        let text = name.to_string_lossy();
        let pattern = name
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| n.contains(['*', '?']));
        let mut found: Vec<PathBuf> = if name.is_dir() {
            list(name, |_| true)?
        } else if let Some(pattern) = pattern {
            let dir = name.parent().filter(|d| !d.as_os_str().is_empty());
            list(dir.unwrap_or(Path::new(".")), |file| {
                matches(&pattern, file)
            })?
        } else {
            vec![name.clone()]
        };
        if found.is_empty() {
            return Err(format!("{text}: no audit files there"));
        }
        found.sort_by_key(|p| age_key(p));
        out.extend(found);
    }
    Ok(out)
}

/// The regular files of `dir` whose name `keep` accepts.
fn list(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| p.file_name().is_some_and(|n| keep(&n.to_string_lossy())))
        .collect())
}

/// `*` (any run) and `?` (one character) against a whole file name.
fn matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    go(&p, &n)
}

/// Sorts a file after the files rotated from it, and those by their time.
fn age_key(path: &Path) -> (String, u8, String) {
    let name = path.to_string_lossy().into_owned();
    let parts: Vec<&str> = name.rsplitn(3, '.').collect();
    match parts[..] {
        [fraction, time, base] if is_stamp(time, fraction) => {
            (base.to_string(), 0, format!("{time}.{fraction}"))
        }
        _ => (name, 1, String::new()),
    }
}

/// `20261202T061500` and `123456Z`: the time `rotate` puts after a rotated file's name.
fn is_stamp(time: &str, fraction: &str) -> bool {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (Some(date), Some(clock)) = (time.get(..8), time.get(9..)) else {
        return false;
    };
    time.as_bytes().get(8) == Some(&b'T')
        && digits(date)
        && digits(clock)
        && fraction.strip_suffix('Z').is_some_and(digits)
}

/// What to do with a last line that has no newline yet.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Read it as it is (a file nobody writes to any more: a torn line is reported).
    Read,
    /// Leave it until it is whole (`--follow`: it is still being written).
    Wait,
}

/// A query over a sequence of files.
pub struct Query<'a> {
    filter: &'a Filter<'a>,
    oldest: Option<SystemTime>,
    kept_ids: HashSet<String>,
}

impl<'a> Query<'a> {
    pub fn new(filter: &'a Filter<'a>) -> Query<'a> {
        Query {
            filter,
            oldest: filter.since.map(|since| SystemTime::now() - since),
            kept_ids: HashSet::new(),
        }
    }

    /// Reads `files` in order; with `follow`, then goes on reading what is appended to the last
    /// one (from its start again when it is rotated or truncated), until the output closes.
    pub fn run(
        &mut self,
        files: &[PathBuf],
        follow: bool,
        out: &mut dyn Output,
    ) -> Result<End, String> {
        let Some((last, earlier)) = files.split_last() else {
            return Ok(End::Done);
        };
        for file in earlier {
            if self.read(file, open(file)?, &mut 0, Tail::Read, out) == End::Closed {
                return Ok(End::Closed);
            }
        }
        let mut reader = open(last)?;
        let mut line_no = 0;
        let tail = if follow { Tail::Wait } else { Tail::Read };
        match self.read(last, &mut reader, &mut line_no, tail, out) {
            End::Closed => Ok(End::Closed),
            End::Done if !follow => Ok(End::Done),
            End::Done => self.follow(last, reader, line_no, out),
        }
    }

    /// `--follow`: polls the file for what is appended; a new file under its name (rotation) or a
    /// shorter one (truncation) is read from its start.
    fn follow(
        &mut self,
        path: &Path,
        mut reader: BufReader<std::fs::File>,
        mut line_no: usize,
        out: &mut dyn Output,
    ) -> Result<End, String> {
        use std::os::unix::fs::MetadataExt;
        let identity = |m: &std::fs::Metadata| (m.dev(), m.ino());
        let mut current = reader.get_ref().metadata().map(|m| identity(&m)).ok();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let position = reader.stream_position().unwrap_or(0);
            let now = std::fs::metadata(path).ok();
            let replaced = now.as_ref().map(identity) != current;
            let shorter = now.as_ref().is_some_and(|m| m.len() < position);
            if (replaced || shorter) && now.is_some() {
                // What was appended before the rotation, then the new file.
                if self.read(path, &mut reader, &mut line_no, Tail::Wait, out) == End::Closed {
                    return Ok(End::Closed);
                }
                reader = open(path)?;
                current = now.as_ref().map(identity);
                line_no = 0;
            }
            if self.read(path, &mut reader, &mut line_no, Tail::Wait, out) == End::Closed {
                return Ok(End::Closed);
            }
        }
    }

    /// Reads the lines of `reader` from where it is.
    fn read(
        &mut self,
        path: &Path,
        mut reader: impl BufRead + Seek,
        line_no: &mut usize,
        tail: Tail,
        out: &mut dyn Output,
    ) -> End {
        let mut line = Vec::new();
        loop {
            line.clear();
            let start = reader.stream_position().unwrap_or(0);
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => return End::Done,
                Ok(_) if !line.ends_with(b"\n") && tail == Tail::Wait => {
                    // Still being written: read it whole next time.
                    let _ = reader.seek(SeekFrom::Start(start));
                    return End::Done;
                }
                Ok(_) => {}
                Err(e) => {
                    out.skipped(&format!("{}: {e}", path.display()));
                    return End::Done;
                }
            }
            *line_no += 1;
            let at = format!("{}:{line_no}", path.display());
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if self.line(&at, text, out).is_err() {
                return End::Closed;
            }
        }
    }

    /// One line: written to `out` if it matches.
    fn line(&mut self, at: &str, bytes: &[u8], out: &mut dyn Output) -> io::Result<()> {
        let Ok(line) = std::str::from_utf8(bytes) else {
            out.skipped(&format!("{at}: not UTF-8; skipped"));
            return Ok(());
        };
        if line.trim().is_empty() {
            return Ok(());
        }
        let record: Value = match serde_json::from_str(line) {
            Ok(record) => record,
            Err(e) => {
                out.skipped(&format!("{at}: not a JSON record ({e}); skipped"));
                return Ok(());
            }
        };
        if self.keeps(&record) {
            out.record(line)?;
        }
        Ok(())
    }

    fn keeps(&mut self, record: &Value) -> bool {
        let field = |name: &str| record.get(name).and_then(Value::as_str);
        let id = field("request_id").unwrap_or_default().to_string();
        let recent = match (
            self.oldest,
            field("time").map(humantime::parse_rfc3339_weak),
        ) {
            (Some(oldest), Some(Ok(time))) => time >= oldest,
            (Some(_), _) => false,
            (None, _) => true,
        };
        let keep = if field("type") == Some("completion") {
            self.kept_ids.contains(&id)
        } else {
            recent
                && self
                    .filter
                    .tenant
                    .is_none_or(|t| field("tenant") == Some(t))
                && self
                    .filter
                    .decision
                    .is_none_or(|d| field("decision") == Some(d))
        };
        if keep {
            self.kept_ids.insert(id);
        }
        keep
    }
}

fn open(path: &Path) -> Result<BufReader<std::fs::File>, String> {
    std::fs::File::open(path)
        .map(BufReader::new)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Records printed on stdout (flushed after each one with `--follow`), warnings on stderr.
pub struct Stdout {
    out: std::io::BufWriter<std::io::StdoutLock<'static>>,
    follow: bool,
}

impl Stdout {
    pub fn new(follow: bool) -> Stdout {
        Stdout {
            out: std::io::BufWriter::new(std::io::stdout().lock()),
            follow,
        }
    }

    /// Flushes what is left; a pipe closed at the end is an answer taken, not an error.
    pub fn finish(mut self) {
        let _ = std::io::Write::flush(&mut self.out);
    }
}

impl Output for Stdout {
    fn record(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write;
        writeln!(self.out, "{line}")?;
        if self.follow {
            self.out.flush()?;
        }
        Ok(())
    }

    fn skipped(&mut self, message: &str) {
        eprintln!("warning: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_names() {
        assert!(matches("audit.jsonl*", "audit.jsonl"));
        assert!(matches("audit.jsonl*", "audit.jsonl.20261202T061500.1Z"));
        assert!(matches("a?c", "abc"));
        assert!(!matches("audit.jsonl*", "other.jsonl"));
        assert!(!matches("a?c", "ac"));
    }

    #[test]
    fn rotated_files_come_before_the_file_they_were_rotated_from() {
        let mut files = vec![
            PathBuf::from("/d/audit.jsonl"),
            PathBuf::from("/d/audit.jsonl.20261202T061500.000002Z"),
            PathBuf::from("/d/audit.jsonl.20261201T061500.000001Z"),
        ];
        files.sort_by_key(|p| age_key(p));
        assert_eq!(
            files,
            [
                PathBuf::from("/d/audit.jsonl.20261201T061500.000001Z"),
                PathBuf::from("/d/audit.jsonl.20261202T061500.000002Z"),
                PathBuf::from("/d/audit.jsonl"),
            ]
        );
    }
}
