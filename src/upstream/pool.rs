//! The HTTP/1.1 keep-alive pool for a cleartext upstream, the sidecar's case and the hot path.
//!
//! A request takes an idle connection that is ready (or opens one), sends on it from its own
//! task, and the connection comes back when the response body has ended: the response body
//! ([`Streamed`]) carries it. No connector service, no pool key to hash, no task spawned per
//! request to wait for the connection to become idle again. A connection whose response was
//! not read to the end, or that was upgraded, is never reused.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::body::UpstreamBody;
use super::error::UpstreamError;
use crate::config::Upstream;

type Sender = SendRequest<UpstreamBody>;

pub struct Pool {
    authority: Authority,
    /// The `Host` a request gets when it carries none (`forwarding.preserve_host: false`).
    host: Option<HeaderValue>,
    connect_timeout: Duration,
    max_idle: usize,
    /// Idle connections, the most recently used last, each with the reaper's tick it came back at.
    idle: Mutex<Vec<(Sender, u64)>>,
    /// Advanced by the reaper every half idle timeout.
    tick: AtomicU64,
}

impl Pool {
    /// The pool, and the reaper that closes connections idle longer than the idle timeout
    /// (between one and one and a half times it). The reaper ends with the pool.
    pub fn start(config: &Upstream) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            authority: config.authority.clone(),
            host: HeaderValue::from_str(config.authority.as_str()).ok(),
            connect_timeout: config.connect_timeout,
            max_idle: config.pool_max_idle_per_host,
            idle: Mutex::new(Vec::new()),
            tick: AtomicU64::new(0),
        });
        let period = config.pool_idle_timeout / 2;
        tokio::spawn(reap(Arc::downgrade(&pool), period));
        pool
    }

    /// The request target as HTTP/1.1 sends it to an origin server: the path and query.
    pub fn target(path_and_query: PathAndQuery) -> Uri {
        Uri::from(path_and_query)
    }

    /// Sends the request on a ready idle connection or a new one. A request that an idle
    /// connection gave back unsent (it closed under us) is sent once more, on a new connection.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Streamed>, UpstreamError> {
        // HTTP/1.1 requires a Host; without the client's, the upstream's own authority.
        if let Some(host) = &self.host
            && !request.headers().contains_key(HOST)
        {
            request.headers_mut().insert(HOST, host.clone());
        }
        let reusable = !upgrades(&request);
        let mut pooled = self.take();
        loop {
            let (mut sender, fresh) = match pooled.take() {
                Some(sender) => (sender, false),
                // Boxed: connecting is rare, and its future is larger than all the rest.
                None => (Box::pin(self.connect()).await?, true),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = reusable.then(|| Lease {
                        pool: self.clone(),
                        sender,
                    });
                    return Ok(Streamed::new(response, lease));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(UpstreamError::Request(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection that is ready now; closed ones are dropped.
    fn take(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(sender, _)| !sender.is_closed());
        let ready = idle.iter().rposition(|(sender, _)| sender.is_ready())?;
        Some(idle.swap_remove(ready).0)
    }

    fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let tick = self.tick.load(Ordering::Relaxed);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < self.max_idle {
            idle.push((sender, tick));
        }
    }

    async fn connect(&self) -> Result<Sender, UpstreamError> {
        let address = (
            self.authority.host(),
            self.authority.port_u16().unwrap_or(80),
        );
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return Err(UpstreamError::Connect(e)),
                Err(_) => {
                    return Err(UpstreamError::Connect(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "connect timed out",
                    )));
                }
            };
        stream.set_nodelay(true).map_err(UpstreamError::Connect)?;
        let (mut sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Request)?;
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        sender.ready().await.map_err(UpstreamError::Request)?;
        Ok(sender)
    }
}

/// Closes connections that stayed idle for two ticks.
async fn reap(pool: Weak<Pool>, period: Duration) {
    let mut interval = tokio::time::interval(period.max(Duration::from_millis(10)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let now = pool.tick.fetch_add(1, Ordering::Relaxed) + 1;
        let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(sender, since)| now - since < 2 && !sender.is_closed());
    }
}

/// A connection on loan to one response, given back when its body has ended.
struct Lease {
    pool: Arc<Pool>,
    sender: Sender,
}

/// The upstream's response body, streamed; it returns its connection to the pool at its end.
pub struct Streamed {
    body: Incoming,
    lease: Option<Lease>,
}

impl Streamed {
    fn new(response: Response<Incoming>, lease: Option<Lease>) -> Response<Self> {
        // A switched protocol owns the connection from now on.
        let lease = lease.filter(|_| response.status() != http::StatusCode::SWITCHING_PROTOCOLS);
        let mut response = response.map(|body| Streamed { body, lease });
        if response.body().body.is_end_stream() {
            response.body_mut().release();
        }
        response
    }

    /// A body from a client that pools by itself.
    pub(crate) fn unpooled(body: Incoming) -> Self {
        Streamed { body, lease: None }
    }

    fn release(&mut self) {
        if let Some(Lease { pool, sender }) = self.lease.take() {
            pool.put(sender);
        }
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            Some(Err(_)) => this.lease = None,
            None => this.release(),
            Some(Ok(_)) if this.body.is_end_stream() => this.release(),
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Whether a request asks for a protocol upgrade (its connection is not reused).
fn upgrades<B>(request: &Request<B>) -> bool {
    request.headers().contains_key(http::header::UPGRADE)
}
