//! Audit records leave the request path through a bounded queue to one writer thread.
//!
//! `required`: a sender waits up to a second for room, then the request is refused with 503
//! `audit-unavailable`; when a sink fails (disk full, closed pipe) the auditor turns unhealthy,
//! new requests are refused, and the records already accepted are retried until written.
//! `best-effort`: nothing waits; a record that finds the queue full, or whose write fails, is
//! counted in `tollgate_audit_lost_records_total` and logged. Either way nothing is dropped
//! silently, and shutdown writes everything queued before the process exits.

pub mod body;
pub mod chain;
pub mod inputs;
pub mod query;
pub mod record;
pub mod sink;
pub mod verify;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{
    Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError, sync_channel,
};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};

use crate::config::{Audit, AuditMode, AuditRecords, Redaction};
use crate::error::{Problem, Refusal};
use crate::metrics::Metrics;

use chain::Chain;
use record::Record;
use sink::{FileSink, Sinks};

enum Message {
    Record(Box<Record>),
    Stop,
}

pub struct Auditor {
    tx: SyncSender<Message>,
    mode: AuditMode,
    pub records: AuditRecords,
    client_ip: Redaction,
    user_agent: Redaction,
    healthy: Arc<AtomicBool>,
    depth: Arc<AtomicI64>,
    metrics: Arc<Metrics>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// The writer polls this often while records arrive, and for `BUSY` after the last one; then it
/// sleeps until the next record wakes it.
const POLL: Duration = Duration::from_millis(1);
const BUSY: Duration = Duration::from_millis(200);
/// Records written together, at most.
const BATCH: u64 = 1024;

fn unavailable() -> Refusal {
    Refusal::new(
        Problem::AuditUnavailable,
        "the audit log cannot take records; retry shortly",
    )
    .retry_after(1)
}

impl Auditor {
    pub fn start(config: &Audit, metrics: Arc<Metrics>) -> Result<Auditor, String> {
        let file = config.file.as_ref().map(FileSink::open).transpose()?;
        // Only a regular file is read back (opening a pipe to read it would block).
        let chain = Chain::start(
            config
                .file
                .as_ref()
                .filter(|_| file.as_ref().is_some_and(|f| f.regular))
                .map(|f| f.path.as_path()),
            file.as_ref().map_or(0, |f| f.dropped),
        );
        let sinks = Sinks::new(config.stdout, file);
        let (tx, rx) = sync_channel(config.queue);
        let healthy = Arc::new(AtomicBool::new(true));
        let depth = Arc::new(AtomicI64::new(0));
        let writer = Writer {
            rx,
            sinks,
            chain,
            mode: config.mode,
            healthy: healthy.clone(),
            depth: depth.clone(),
            metrics: metrics.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("tollgate-audit".into())
            .spawn(move || writer.run())
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(Auditor {
            tx,
            mode: config.mode,
            records: config.records,
            client_ip: config.client_ip,
            user_agent: config.user_agent,
            healthy,
            depth,
            metrics,
            writer: Mutex::new(Some(handle)),
        })
    }

    /// Records before the request goes on: in `required` mode a record that cannot be queued
    /// refuses the request.
    pub async fn record(&self, record: Record) -> Result<(), Refusal> {
        if self.mode == AuditMode::BestEffort {
            self.record_now(record);
            return Ok(());
        }
        if !self.healthy.load(Ordering::Acquire) {
            return Err(unavailable());
        }
        let deadline = Instant::now() + Duration::from_secs(1);
        let mut message = Message::Record(Box::new(record));
        loop {
            // Counted before it is sent: the writer may take it at once.
            self.queued(1);
            match self.tx.try_send(message) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    self.queued(-1);
                    message = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err(_) => {
                    self.queued(-1);
                    return Err(unavailable());
                }
            }
        }
    }

    /// Records without waiting (completion records, refusals): if the queue is full the record
    /// is counted as lost and logged.
    pub(crate) fn record_now(&self, record: Record) {
        self.queued(1);
        if self.tx.try_send(Message::Record(Box::new(record))).is_err() {
            self.queued(-1);
            lost(&self.metrics, 1, "the audit queue is full");
        }
    }

    fn queued(&self, change: i64) {
        let depth = self.depth.fetch_add(change, Ordering::AcqRel) + change;
        self.metrics.audit_queue.set(depth);
    }

    /// The client address as configured: kept, hashed or dropped.
    pub fn client_ip(&self, ip: &str) -> Option<String> {
        redact(self.client_ip, ip)
    }

    pub fn user_agent(&self, agent: Option<&str>) -> Option<String> {
        agent.and_then(|a| redact(self.user_agent, a))
    }

    /// Writes everything queued so far and stops the writer. Blocks: call from a blocking task.
    pub fn close(&self) {
        let _ = self.tx.send(Message::Stop);
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn redact(how: Redaction, value: &str) -> Option<String> {
    match how {
        Redaction::Keep => Some(value.to_string()),
        Redaction::Drop => None,
        Redaction::Hash => {
            let hash = digest(&SHA256, value.as_bytes());
            Some(
                hash.as_ref()[..8]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect(),
            )
        }
    }
}

fn lost(metrics: &Metrics, count: u64, why: &str) {
    metrics.audit_lost.inc_by(count);
    tracing::error!(records = count, reason = why, "audit records lost");
}

struct Writer {
    rx: Receiver<Message>,
    sinks: Sinks,
    chain: Chain,
    mode: AuditMode,
    healthy: Arc<AtomicBool>,
    depth: Arc<AtomicI64>,
    metrics: Arc<Metrics>,
}

impl Writer {
    fn run(mut self) {
        let mut pending: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut count: u64 = 0;
        let mut last_record = Instant::now();
        let mut full_batch = false;
        loop {
            let first = if count == 0 && full_batch {
                // The last batch was full: more records are waiting, take them at once.
                self.rx.try_recv().ok()
            } else if count == 0 && last_record.elapsed() < BUSY {
                // Records are flowing: poll rather than sleep in `recv`, so that queuing a record
                // never has to wake this thread (a futex call on the request's path).
                std::thread::sleep(POLL);
                match self.rx.try_recv() {
                    Ok(message) => Some(message),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => break,
                }
            } else if count == 0 {
                match self.rx.recv() {
                    Ok(message) => Some(message),
                    Err(_) => break,
                }
            } else {
                // Records are waiting for a failed sink: retry once a second.
                match self.rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(message) => Some(message),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            };
            let mut stop = false;
            if let Some(message) = first {
                last_record = Instant::now();
                stop |= self.take(message, &mut pending, &mut count);
            }
            while !stop && count < BATCH {
                match self.rx.try_recv() {
                    Ok(message) => stop |= self.take(message, &mut pending, &mut count),
                    Err(_) => break,
                }
            }
            full_batch = count >= BATCH;
            if stop || self.chain.due() {
                self.chain.checkpoint(&mut pending, stop);
                count += 1;
            }
            if count > 0 {
                self.write(&mut pending, &mut count);
            }
            if stop {
                let unwritten = self.unwritten(&pending);
                if unwritten > 0 {
                    lost(
                        &self.metrics,
                        unwritten,
                        "the audit sink failed until shutdown",
                    );
                }
                let _ = self.sinks.sync();
                return;
            }
        }
    }

    /// Adds a record to the pending lines; true for the stop message.
    fn take(&mut self, message: Message, pending: &mut Vec<u8>, count: &mut u64) -> bool {
        match message {
            Message::Record(record) => {
                let start = pending.len();
                if serde_json::to_writer(&mut *pending, &record).is_ok() {
                    self.chain.seal(pending, start);
                    pending.push(b'\n');
                    *count += 1;
                } else {
                    pending.truncate(start);
                }
                let depth = self.depth.fetch_sub(1, Ordering::AcqRel) - 1;
                self.metrics.audit_queue.set(depth);
                false
            }
            Message::Stop => true,
        }
    }

    /// Records of `pending` that some sink has not written yet.
    fn unwritten(&self, pending: &[u8]) -> u64 {
        let rest = &pending[self.sinks.written(pending)..];
        rest.iter().filter(|b| **b == b'\n').count() as u64
    }

    fn write(&mut self, pending: &mut Vec<u8>, count: &mut u64) {
        match self.sinks.write(pending) {
            Ok(()) => {
                pending.clear();
                self.sinks.clear();
                *count = 0;
                if !self.healthy.swap(true, Ordering::AcqRel) {
                    tracing::info!("the audit sink works again");
                }
            }
            Err(e) => {
                self.metrics.audit_write_errors.inc();
                tracing::error!(error = %e, "writing audit records failed");
                if self.mode == AuditMode::BestEffort {
                    // Exactly the records that did not reach every sink.
                    let unwritten = self.unwritten(pending);
                    lost(&self.metrics, unwritten, "the audit sink failed");
                    pending.clear();
                    self.sinks.clear();
                    *count = 0;
                } else {
                    self.healthy.store(false, Ordering::Release);
                }
            }
        }
    }
}
