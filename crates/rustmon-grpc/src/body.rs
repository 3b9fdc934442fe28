//! Bodies that count gRPC messages as they stream, and end the call's event with its status.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use rustmon_core::context::{self, SpanContext};
use rustmon_core::{Event, Status};

use crate::frames::MessageCounter;
use crate::status::{self, status_name};

pin_project! {
    /// A request body passed through unchanged while its messages are counted.
    pub struct RequestBody<B> {
        #[pin]
        inner: B,
        counter: Option<(MessageCounter, Arc<AtomicU64>)>,
    }
}

impl<B> RequestBody<B> {
    pub(crate) fn new(inner: B, count_into: Option<Arc<AtomicU64>>) -> Self {
        RequestBody {
            inner,
            counter: count_into.map(|c| (MessageCounter::default(), c)),
        }
    }
}

impl<B> fmt::Debug for RequestBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody").finish_non_exhaustive()
    }
}

impl<B: Body<Data = Bytes>> Body for RequestBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some((counter, shared))) = (&polled, this.counter) {
            if let Some(data) = frame.data_ref() {
                counter.feed(data);
                shared.store(counter.messages, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Decodes a percent-encoded `grpc-message`.
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (raw[i], raw.get(i + 1).copied(), raw.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A call in flight: its event and what ends it.
pub(crate) struct CallState {
    pub(crate) event: Event,
    pub(crate) ctx: Option<SpanContext>,
    pub(crate) server: bool,
    pub(crate) counter: Option<MessageCounter>,
    pub(crate) request_messages: Option<Arc<AtomicU64>>,
    pub(crate) status: Option<i64>,
    pub(crate) message: Option<String>,
    /// The transport failed (already recorded as an error).
    pub(crate) failed: bool,
}

impl CallState {
    /// Reads `grpc-status` and `grpc-message` from response headers or trailers.
    pub(crate) fn read_status(&mut self, headers: &http::HeaderMap) {
        if let Some(code) = status::from_headers(headers) {
            self.status = Some(code);
            self.message = headers
                .get("grpc-message")
                .map(|m| percent_decode(m.as_bytes()));
        }
    }

    /// Ends the event with the status and message counts.
    pub(crate) fn finish(mut self) {
        if let Some(c) = &self.counter {
            self.event.set("rustmon.rpc.response.messages", c.messages);
        }
        if let Some(c) = &self.request_messages {
            self.event
                .set("rustmon.rpc.request.messages", c.load(Ordering::Relaxed));
        }
        match self.status {
            Some(code) => {
                self.event.set("rpc.grpc.status_code", code);
                if status::is_error(code, self.server) {
                    let name = status_name(code);
                    self.event.set("error.type", name);
                    self.event
                        .record_error(name, self.message.as_deref().unwrap_or(name));
                } else {
                    self.event
                        .set_status(if code == 0 { Status::Ok } else { Status::Unset });
                }
            }
            None if !self.server && !self.failed => {
                self.event.set("error.type", "missing_status");
                self.event
                    .record_error("missing_status", "the response ended without grpc-status");
            }
            None => {}
        }
        self.event.finish();
    }
}

pin_project! {
    /// A response body passed through unchanged, frame by frame, while the call's event counts
    /// its messages; the event ends with the status from the trailers when the body ends (or
    /// when it is dropped, with `rustmon.cancelled = true`).
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        state: Option<CallState>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut s) = this.project().state.take() {
                if s.status.is_none() {
                    s.event.set("rustmon.cancelled", true);
                    s.failed = true;
                }
                s.finish();
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn monitored(inner: B, state: CallState) -> Self {
        ResponseBody {
            inner,
            state: Some(state),
        }
    }

    pub(crate) fn passthrough(inner: B) -> Self {
        ResponseBody { inner, state: None }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("monitored", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let Some(state) = this.state.as_mut() else {
            return this.inner.poll_frame(cx);
        };
        let polled = {
            let _current = context::attach(state.ctx);
            this.inner.poll_frame(cx)
        };
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(c) = &mut state.counter {
                        c.feed(data);
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    // Trailers end a gRPC response: codecs stop polling once they have them.
                    state.read_status(trailers);
                    if let Some(s) = this.state.take() {
                        s.finish();
                    }
                }
            }
            Poll::Ready(None) => {
                if let Some(s) = this.state.take() {
                    s.finish();
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(mut s) = this.state.take() {
                    s.event.set("error.type", "body");
                    s.event.record_error("body", e);
                    s.failed = true;
                    s.finish();
                }
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(super::percent_decode(b"it%20broke%"), "it broke%");
        assert_eq!(super::percent_decode(b"caf%C3%A9"), "café");
    }
}
