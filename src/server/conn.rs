//! One client connection: optional TLS handshake, HTTP/1.1 or HTTP/2 via hyper, an idle
//! keep-alive timeout, and graceful shutdown when the server drains.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::pipeline;

use super::Shared;

/// What a request knows about the connection it came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
}

pub async fn serve(
    stream: TcpStream,
    info: ConnInfo,
    acceptor: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    http: Arc<auto::Builder<TokioExecutor>>,
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
    http: &auto::Builder<TokioExecutor>,
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
                let response = pipeline::handle(&shared, info, request).await;
                drop(busy);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let conn = http.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        let wait = activity
            .idle_for()
            .map_or(idle_timeout, |idle| idle_timeout.saturating_sub(idle));
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = drain.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep(wait), if !closing => {
                if activity.idle_for().is_some_and(|idle| idle >= idle_timeout) {
                    // Graceful: a response still streaming its body finishes first.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
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
