//! The access log (`log.access`): one line per answered request on stdout, in the Common Log
//! Format with Tollgate's fields after it, or as JSON. Lines are formatted on the request's
//! thread and written by a thread of their own through a bounded queue, so a slow stdout never
//! slows a request: when the queue is full the line is dropped and counted
//! (`tollgate_access_log_dropped_total`).

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use http::{Method, StatusCode};
use prometheus::IntCounter;

use crate::config::AccessLog;

/// Lines waiting to be written.
const QUEUE: usize = 16_384;

/// What one line says.
pub struct Entry<'a> {
    pub client_ip: std::net::IpAddr,
    pub principal: Option<&'a str>,
    pub method: &'a Method,
    pub path: &'a str,
    pub version: http::Version,
    pub status: StatusCode,
    pub user_agent: Option<&'a str>,
    pub request_id: &'a str,
    pub tenant: Option<&'a str>,
    pub stage: &'static str,
    pub problem: Option<&'static str>,
    /// Microseconds until the answer's head.
    pub micros: u64,
}

pub struct Access {
    format: AccessLog,
    queue: SyncSender<String>,
    dropped: IntCounter,
}

impl Access {
    /// The access log of `format`, or `None` when it is off.
    pub fn start(format: AccessLog, dropped: IntCounter) -> Option<Arc<Access>> {
        if format == AccessLog::Off {
            return None;
        }
        let (queue, lines) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("tollgate-access".into())
            .spawn(move || write_lines(&lines))
            .ok()?;
        Some(Arc::new(Access {
            format,
            queue,
            dropped,
        }))
    }

    pub fn log(&self, entry: &Entry<'_>) {
        let line = match self.format {
            AccessLog::Json => json(entry),
            AccessLog::Common | AccessLog::Off => common(entry),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(line)
        {
            self.dropped.inc();
        }
    }
}

/// Writes lines as they come, flushing whenever the queue runs dry; a failing stdout drops them.
fn write_lines(lines: &Receiver<String>) {
    let mut out = std::io::BufWriter::new(std::io::stdout());
    while let Ok(line) = lines.recv() {
        let _ = writeln!(out, "{line}");
        while let Ok(line) = lines.try_recv() {
            let _ = writeln!(out, "{line}");
        }
        let _ = out.flush();
    }
}

/// `client - user [time] "METHOD path HTTP/x" status - "-" "agent" rid=… tenant=… stage=…
/// problem=… us=…`: the Common Log Format (bytes unknown at the head: `-`), then Tollgate's.
fn common(e: &Entry<'_>) -> String {
    let time = chrono_like(std::time::SystemTime::now());
    let quoted = |s: Option<&str>| s.map_or_else(|| "-".to_string(), |s| s.replace('"', "\\\""));
    format!(
        "{ip} - {user} [{time}] \"{method} {path} {version:?}\" {status} - \"-\" \"{agent}\" rid={rid} tenant={tenant} stage={stage} problem={problem} us={us}",
        ip = e.client_ip,
        user = e.principal.unwrap_or("-").replace([' ', '"'], "_"),
        method = e.method,
        path = e.path.replace('"', "%22"),
        version = e.version,
        status = e.status.as_u16(),
        agent = quoted(e.user_agent),
        rid = e.request_id,
        tenant = e.tenant.unwrap_or("-"),
        stage = e.stage,
        problem = e.problem.unwrap_or("-"),
        us = e.micros,
    )
}

fn json(e: &Entry<'_>) -> String {
    serde_json::json!({
        "type": "access",
        "time": humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
        "request_id": e.request_id,
        "client_ip": e.client_ip.to_string(),
        "principal": e.principal,
        "method": e.method.as_str(),
        "path": e.path,
        "status": e.status.as_u16(),
        "user_agent": e.user_agent,
        "tenant": e.tenant,
        "stage": e.stage,
        "problem": e.problem,
        "duration_us": e.micros,
    })
    .to_string()
}

/// `02/Dec/2026:06:32:23 +0000`, the Common Log Format's time, in UTC.
fn chrono_like(time: std::time::SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // RFC 3339 `2026-12-02T06:32:23Z`, rearranged.
    let text = humantime::format_rfc3339_seconds(time).to_string();
    let (year, month, day) = (&text[0..4], &text[5..7], &text[8..10]);
    let month = month
        .parse::<usize>()
        .ok()
        .and_then(|m| MONTHS.get(m.wrapping_sub(1)))
        .unwrap_or(&"Jan");
    format!("{day}/{month}/{year}:{} +0000", &text[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_log_time_is_day_month_year() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_193_143);
        assert_eq!(chrono_like(t), "02/Dec/2026:06:32:23 +0000");
    }
}
