//! One client connection: optional TLS handshake, HTTP/1.1 or HTTP/2 via hyper, an idle
//! keep-alive timeout, and graceful shutdown when the server drains.

use std::convert::Infallible;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::pipeline;
use crate::state::ConnInfo;

use crate::state::Shared;

/// The HTTP versions a listener speaks. hyper-util's auto builder detects HTTP/2 by its
/// preface, but its upgrade-capable connection ignores `http1_only`, so a listener that must not
/// speak h2c uses hyper's HTTP/1 builder directly.
pub enum Protocols {
    Http1(http1::Builder),
    Auto(auto::Builder<TokioExecutor>),
}

impl Protocols {
    pub fn new(limits: &Limits, allow_http2: bool) -> Self {
        // hyper's own limits sit well above ours so that admission answers with a problem+json
        // 431; hyper's bare 431 remains the backstop for absurd heads.
        let max_buf_size = (limits.max_header_bytes * 4).max(16 * 1024);
        let max_headers = limits.max_headers * 2;
        if !allow_http2 {
            let mut h1 = http1::Builder::new();
            h1.timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .max_buf_size(max_buf_size)
                .max_headers(max_headers);
            return Protocols::Http1(h1);
        }
        let mut auto = auto::Builder::new(TokioExecutor::new());
        auto.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(max_buf_size)
            .max_headers(max_headers);
        auto.http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes * 2).unwrap_or(u32::MAX));
        Protocols::Auto(auto)
    }
}

pub async fn serve(
    stream: TcpStream,
    info: ConnInfo,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    http: Arc<Protocols>,
    drain: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    shared.metrics.open_connections.inc();
    let limits = shared.snapshot.load().config.server.limits.clone();
    match acceptor {
        Some(acceptor) => {
            // The handshake gets the same budget as reading request headers: both are what a
            // slowloris client would stretch.
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => drive(tls, info, &shared, &http, &drain, limits.idle_timeout).await,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %info.peer, error = %e, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(peer = %info.peer, "TLS handshake timed out"),
            }
        }
        None => drive(stream, info, &shared, &http, &drain, limits.idle_timeout).await,
    }
    shared.metrics.open_connections.dec();
}

async fn drive<I>(
    io: I,
    info: ConnInfo,
    shared: &Arc<Shared>,
    http: &Protocols,
    drain: &CancellationToken,
    idle_timeout: Duration,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = {
        let shared = shared.clone();
        let activity = activity.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            let busy = Busy::begin(&activity);
            async move {
                let response = pipeline::entry::serve(&shared, info, request).await;
                drop(busy);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let io = TokioIo::new(io);
    let watch = Watch {
        info,
        activity: &activity,
        drain,
        idle_timeout,
    };
    match http {
        Protocols::Http1(h1) => {
            let conn = h1.serve_connection(io, service).with_upgrades();
            watch.run(conn, |c| c.graceful_shutdown()).await;
        }
        Protocols::Auto(auto) => {
            let conn = auto.serve_connection_with_upgrades(io, service);
            watch.run(conn, |c| c.graceful_shutdown()).await;
        }
    }
}

/// Drives a connection to its end, shutting it down gracefully when the server drains or the
/// connection has been idle for `idle_timeout`.
struct Watch<'a> {
    info: ConnInfo,
    activity: &'a Activity,
    drain: &'a CancellationToken,
    idle_timeout: Duration,
}

impl Watch<'_> {
    async fn run<C, E>(self, conn: C, shutdown: fn(Pin<&mut C>))
    where
        C: Future<Output = Result<(), E>>,
        E: Display,
    {
        tokio::pin!(conn);
        let mut closing = false;
        loop {
            let wait = self.activity.idle_for().map_or(self.idle_timeout, |idle| {
                self.idle_timeout.saturating_sub(idle)
            });
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.info.peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = self.drain.cancelled(), if !closing => {
                    shutdown(conn.as_mut());
                    closing = true;
                }
                () = tokio::time::sleep(wait), if !closing => {
                    if self.activity.idle_for().is_some_and(|idle| idle >= self.idle_timeout) {
                        // Graceful: a response still streaming its body finishes first.
                        shutdown(conn.as_mut());
                        closing = true;
                    }
                }
            }
        }
    }
}

/// Requests in progress on a connection and when the last one ended, for the idle timeout.
struct Activity {
    epoch: Instant,
    in_flight: AtomicUsize,
    last_end_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_end_ms: AtomicU64::new(0),
        }
    }

    /// How long the connection has had nothing in progress, or `None` while a request runs.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since_epoch = self.epoch.elapsed();
        let last_end = Duration::from_millis(self.last_end_ms.load(Ordering::Acquire));
        Some(since_epoch.saturating_sub(last_end))
    }
}

/// Marks a request in progress until dropped.
struct Busy(Arc<Activity>);

impl Busy {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end_ms.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}
