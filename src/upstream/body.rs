//! What the upstream receives of a request body: the bytes as the client sent them; request
//! trailers only on routes that allow them, and then without hop-by-hop or reserved names (a
//! trailer is a header that arrives late: `X-User-Id` there is as forged as in the head); and a
//! client's broken framing (a bad chunk size, a missing CRLF) told apart from an upstream failure.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderName;
use http_body::{Body, Frame, SizeHint};

use http_body_util::Limited;
use hyper::body::Incoming;

use crate::audit::body::Counted;
use crate::headers;

/// The body Tollgate sends upstream: the client's body, streamed, trailers guarded, with the
/// size limit applied, counted for the audit record.
pub(crate) type UpstreamBody = Counted<Limited<Guarded<Incoming>>>;

/// The client's request body failed to parse: the client's fault, answered 400.
#[derive(Debug)]
pub struct ClientBodyError(hyper::Error);

impl fmt::Display for ClientBodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reading the client's request body failed")
    }
}

impl std::error::Error for ClientBodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A request body on its way upstream.
pub struct Guarded<B> {
    inner: B,
    /// Forward trailers, without these names besides the reserved ones; `None`: drop them.
    trailers: Option<Arc<[HeaderName]>>,
    allow_underscores: bool,
}

impl<B> Guarded<B> {
    pub fn new(inner: B, trailers: Option<Arc<[HeaderName]>>, allow_underscores: bool) -> Self {
        Guarded {
            inner,
            trailers,
            allow_underscores,
        }
    }
}

impl<B: Body<Data = Bytes, Error = hyper::Error> + Unpin> Body for Guarded<B> {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        loop {
            let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => frame,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(ClientBodyError(e)))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            match (frame.into_trailers(), &self.trailers) {
                (Ok(_), None) => continue,
                (Ok(mut trailers), Some(extra)) => {
                    headers::strip_hop_by_hop(&mut trailers);
                    headers::strip_reserved(&mut trailers, extra, self.allow_underscores);
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                (Err(data), _) => return Poll::Ready(Some(Ok(data))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
