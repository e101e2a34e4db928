//! A body Tollgate writes itself (a problem document, an authorizer's answer): its bytes at once,
//! then, for gRPC, the trailers that carry the call's status.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

#[derive(Debug, Default)]
pub struct Fixed {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Fixed {
    pub fn new(data: Bytes) -> Fixed {
        Fixed {
            data: Some(data).filter(|d| !d.is_empty()),
            trailers: None,
        }
    }

    pub fn with_trailers(data: Bytes, trailers: HeaderMap) -> Fixed {
        Fixed {
            data: Some(data).filter(|d| !d.is_empty()),
            trailers: Some(trailers),
        }
    }
}

impl Body for Fixed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(data) = this.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let length = self.data.as_ref().map_or(0, |d| d.len() as u64);
        SizeHint::with_exact(length)
    }
}
