//! `tollgate audit verify`: follows the hash chain (`chain.rs`) through the files, oldest first,
//! and names the first line where it breaks: a changed line (the next one's `prev` is not its
//! hash), removed lines (a gap in `seq`), an inserted or repeated line, two lines in the wrong
//! order, a line that is not a chained record, or an incomplete last line. A restart (a new
//! writer linked to the line before it) and a crash (a new writer that dropped an incomplete
//! line) are reported as what they are, not as tampering.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::chain::digest;

/// One line as the chain sees it.
struct Link {
    file: PathBuf,
    line: usize,
    writer: String,
    seq: u64,
    prev: String,
    resumed: bool,
    dropped: u64,
    hash: String,
}

/// What verifying found: every event (restarts, crashes, checkpoints) and the first break.
#[derive(Default)]
pub struct Report {
    pub records: u64,
    pub checkpoints: u64,
    pub notes: Vec<String>,
    pub broken: Option<String>,
}

impl Report {
    /// What `tollgate audit verify` prints: the notes, then the verdict.
    pub fn text(&self) -> String {
        let mut out: String = self.notes.iter().map(|n| format!("note: {n}\n")).collect();
        match &self.broken {
            Some(why) => out.push_str(&format!("broken: {why}\n")),
            None => out.push_str(&format!(
                "ok: {} records, {} checkpoints, the chain holds\n",
                self.records, self.checkpoints
            )),
        }
        out
    }
}

fn at(file: &Path, line: usize) -> String {
    format!("{}:{line}", file.display())
}

/// Reads one line into a link, or says why it is not one.
fn link(file: &Path, line: usize, text: &[u8]) -> Result<(Link, bool), String> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|_| format!("{}: not a JSON record", at(file, line)))?;
    let chain = &value["chain"];
    let (Some(writer), Some(seq), Some(prev)) = (
        chain["writer"].as_str(),
        chain["seq"].as_u64(),
        chain["prev"].as_str(),
    ) else {
        return Err(format!(
            "{}: a record without its chain (inserted, or written without one)",
            at(file, line)
        ));
    };
    Ok((
        Link {
            file: file.to_path_buf(),
            line,
            writer: writer.to_string(),
            seq,
            prev: prev.to_string(),
            resumed: chain["resumed"] == true,
            dropped: chain["dropped_bytes"].as_u64().unwrap_or(0),
            hash: digest(text),
        },
        value["type"] == "checkpoint",
    ))
}

/// Verifies `files` in the order given (rotated files first, as `query::files` orders them).
pub fn verify(files: &[PathBuf]) -> Result<Report, String> {
    let mut report = Report::default();
    let mut links: Vec<Link> = Vec::new();
    for (n, file) in files.iter().enumerate() {
        // Rotated files are at most `max_bytes` (100 MiB by default) each.
        let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
        let torn = lines.pop().is_some_and(|rest| !rest.is_empty());
        for (i, text) in lines.iter().enumerate() {
            if text.is_empty() {
                continue;
            }
            match link(file, i + 1, text) {
                Ok((link, checkpoint)) => {
                    report.checkpoints += u64::from(checkpoint);
                    report.records += u64::from(!checkpoint);
                    links.push(link);
                }
                Err(why) => {
                    report.broken = Some(why);
                    return Ok(report);
                }
            }
        }
        if torn {
            let last = n + 1 == files.len();
            report.broken = Some(format!(
                "{}: the last line is incomplete: {}",
                at(file, lines.len() + 1),
                if last {
                    "the file was cut, or the writer crashed (a restart drops it and says so)"
                } else {
                    "the file was cut"
                }
            ));
            return Ok(report);
        }
    }
    report.broken = check(&links, &mut report.notes);
    Ok(report)
}

/// The first break in the chain, with notes on restarts and crashes on the way.
fn check(links: &[Link], notes: &mut Vec<String>) -> Option<String> {
    let first = links.first()?;
    if first.seq != 0 || (!first.prev.is_empty() && !first.resumed) {
        notes.push(format!(
            "{}: the trail starts in the middle of a chain (earlier files were rotated away)",
            at(&first.file, first.line)
        ));
    }
    for i in 1..links.len() {
        let (before, this) = (&links[i - 1], &links[i]);
        let here = at(&this.file, this.line);
        if this.writer != before.writer {
            if this.seq != 0 {
                return Some(format!(
                    "{here}: a line of another writer (inserted, or the lines before it were removed)"
                ));
            }
            if this.prev != before.hash {
                return Some(format!(
                    "{here}: a restart that does not follow {}: lines were removed or changed before it",
                    at(&before.file, before.line)
                ));
            }
            notes.push(if this.dropped > 0 {
                format!(
                    "{here}: restarted after a crash ({} bytes of an incomplete record dropped)",
                    this.dropped
                )
            } else {
                format!("{here}: restarted")
            });
            continue;
        }
        if this.seq == before.seq + 1 {
            if this.prev != before.hash {
                return Some(format!(
                    "{}: the line was changed (the next line holds another hash of it)",
                    at(&before.file, before.line)
                ));
            }
            continue;
        }
        let next = links.get(i + 1);
        return Some(
            if this.seq > before.seq + 1 && next.is_some_and(|n| n.seq == before.seq + 1) {
                format!("{here}: this line and the next are in the wrong order")
            } else if this.seq > before.seq + 1 {
                format!(
                    "{here}: {} line(s) removed before this one",
                    this.seq - before.seq - 1
                )
            } else {
                format!("{here}: a repeated or inserted line (its place in the chain is taken)")
            },
        );
    }
    None
}
