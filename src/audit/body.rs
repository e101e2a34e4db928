//! Bodies that report on themselves: `Counted` counts the bytes of a request body on its way to
//! the upstream; `Completing` counts a response body and writes the completion record when it
//! ends, or when it is dropped early (the client went away: `aborted`).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};

use super::Auditor;
use super::record::{self, Record};

pub struct Counted<B> {
    inner: B,
    count: Arc<AtomicU64>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        Counted { inner, count }
    }
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &poll
            && let Some(data) = frame.data_ref()
        {
            self.count
                .fetch_add(data.remaining() as u64, Ordering::Relaxed);
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What the completion record needs once the response is done.
pub struct Completion {
    pub auditor: Arc<Auditor>,
    /// The record to finish: a completion record, or the whole merged record.
    pub record: Record,
    pub started: Instant,
    /// Bytes of the request body the upstream received.
    pub received: Arc<AtomicU64>,
}

impl Completion {
    fn finish(self, sent: u64, aborted: bool) {
        let mut record = self.record;
        record.time = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
        record.bytes = Some(record::Bytes {
            received: self.received.load(Ordering::Relaxed),
            sent,
        });
        record.timing_us.total =
            Some(u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX));
        record.aborted = aborted;
        self.auditor.record_now(record);
    }
}

pub struct Completing<B: Body> {
    inner: B,
    sent: u64,
    completion: Option<Completion>,
}

impl<B: Body> Completing<B> {
    pub fn new(inner: B, completion: Option<Completion>) -> Self {
        Completing {
            inner,
            sent: 0,
            completion,
        }
    }
}

impl<B: Body + Unpin> Body for Completing<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.sent += data.remaining() as u64;
                }
                // A body with a known length may not be polled again after its last frame.
                if self.inner.is_end_stream() {
                    let sent = self.sent;
                    if let Some(completion) = self.completion.take() {
                        completion.finish(sent, false);
                    }
                }
            }
            Poll::Ready(None) => {
                let sent = self.sent;
                if let Some(completion) = self.completion.take() {
                    completion.finish(sent, false);
                }
            }
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B: Body> Drop for Completing<B> {
    fn drop(&mut self) {
        if let Some(completion) = self.completion.take() {
            // hyper stops polling a body that says it has ended; anything else is an abort.
            let aborted = !self.inner.is_end_stream();
            completion.finish(self.sent, aborted);
        }
    }
}
