//! The hash chain that makes the audit trail tamper-evident. Every line gets
//! `"chain":{"writer":W,"seq":N,"prev":H}`: the writer (one per process run), its line number
//! from 0, and the SHA-256 of the line before it, exactly as written. A writer's first line links
//! to the last line the file already held (a restart), and says how many bytes of an incomplete
//! last line it dropped (a crash). Every [`CHECKPOINT`] records, and when the writer stops, a
//! `checkpoint` line seals what came before; its hash is logged too, outside the file. Changing,
//! removing, inserting or reordering a line breaks the chain where it happened
//! (`tollgate audit verify`, `verify.rs`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// Records between two checkpoints.
pub const CHECKPOINT: u64 = 1000;

/// The SHA-256 of a line, in hex.
pub fn digest(line: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, line)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) struct Chain {
    writer: String,
    seq: u64,
    prev: String,
    /// The first line says what it resumed after: bytes of a torn line dropped at start.
    dropped: Option<u64>,
    since_checkpoint: u64,
}

/// The last complete line of `path` (without its newline), if it has one.
fn last_line(path: &Path) -> Option<Vec<u8>> {
    let mut file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let mut tail = 64 * 1024u64;
    loop {
        let start = size.saturating_sub(tail);
        file.seek(SeekFrom::Start(start)).ok()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        let body = bytes.strip_suffix(b"\n")?;
        match body.iter().rposition(|b| *b == b'\n') {
            Some(at) => return Some(body[at + 1..].to_vec()),
            None if start == 0 => return Some(body.to_vec()).filter(|l| !l.is_empty()),
            None => tail *= 4,
        }
    }
}

impl Chain {
    /// A new writer, continuing after the last line of `file` (its hash), which dropped
    /// `dropped` bytes of an incomplete line when it opened.
    pub fn start(file: Option<&Path>, dropped: u64) -> Chain {
        let prev = file
            .and_then(last_line)
            .map_or(String::new(), |l| digest(&l));
        let resumed = !prev.is_empty() || dropped > 0;
        Chain {
            writer: uuid::Uuid::now_v7().to_string(),
            seq: 0,
            prev,
            dropped: Some(dropped).filter(|_| resumed),
            since_checkpoint: 0,
        }
    }

    /// Links the JSON object `pending[start..]` (one record, no newline yet) into the chain.
    pub fn seal(&mut self, pending: &mut Vec<u8>, start: usize) {
        if pending.last() != Some(&b'}') {
            return;
        }
        pending.pop();
        let resumed = match self.dropped.take() {
            Some(0) => ",\"resumed\":true".to_string(),
            Some(bytes) => format!(",\"resumed\":true,\"dropped_bytes\":{bytes}"),
            None => String::new(),
        };
        pending.extend_from_slice(
            format!(
                ",\"chain\":{{\"writer\":\"{}\",\"seq\":{},\"prev\":\"{}\"{resumed}}}}}",
                self.writer, self.seq, self.prev
            )
            .as_bytes(),
        );
        self.prev = digest(&pending[start..]);
        self.seq += 1;
        self.since_checkpoint += 1;
    }

    /// Whether a checkpoint is due.
    pub fn due(&self) -> bool {
        self.since_checkpoint >= CHECKPOINT
    }

    /// Appends a sealed checkpoint line to `pending` (newline included) and logs its hash.
    pub fn checkpoint(&mut self, pending: &mut Vec<u8>, last: bool) {
        let start = pending.len();
        let time = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        pending.extend_from_slice(
            format!("{{\"v\":1,\"type\":\"checkpoint\",\"time\":\"{time}\",\"last\":{last}}}")
                .as_bytes(),
        );
        self.seal(pending, start);
        pending.push(b'\n');
        self.since_checkpoint = 0;
        tracing::info!(
            writer = %self.writer,
            seq = self.seq - 1,
            head = %self.prev,
            "audit checkpoint"
        );
    }
}
