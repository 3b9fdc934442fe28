//! [`ResponseBody`]: passes the response body through, counting (and optionally copying) bytes,
//! and finishes the request's event at the end of the stream.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use rustmon_core::Event;
use rustmon_core::context::{self, SpanContext};

use crate::layer::panic_message;

/// The request's event while the response body streams.
pub(crate) struct BodyState {
    event: Event,
    ctx: Option<SpanContext>,
    bytes: u64,
    /// Responses that carry no body (HEAD, 1xx, 204, 304): dropping them unpolled is normal.
    no_body: bool,
    capture_max: usize,
    captured: Vec<u8>,
}

impl BodyState {
    pub(crate) fn new(
        event: Event,
        ctx: Option<SpanContext>,
        no_body: bool,
        capture_max: usize,
    ) -> BodyState {
        BodyState {
            event,
            ctx,
            bytes: 0,
            no_body,
            capture_max,
            captured: Vec::new(),
        }
    }

    fn data<D: Buf>(&mut self, data: &D) {
        self.bytes += data.remaining() as u64;
        if self.captured.len() < self.capture_max {
            let mut slices = [std::io::IoSlice::new(&[]); 16];
            let n = data.chunks_vectored(&mut slices);
            for s in &slices[..n] {
                let room = self.capture_max - self.captured.len();
                if room == 0 {
                    break;
                }
                self.captured.extend_from_slice(&s[..s.len().min(room)]);
            }
        }
    }

    fn finish(mut self, cancelled: bool) {
        self.event.set("http.response.body.size", self.bytes);
        if self.capture_max > 0 {
            let body = String::from_utf8_lossy(&self.captured).into_owned();
            self.event.set("http.response.body", body);
        }
        if cancelled {
            self.event.set("rustmon.cancelled", true);
        }
        self.event.finish();
    }
}

pin_project! {
    /// The response body of a monitored request: the inner body unchanged (frames are passed on
    /// as they come, never buffered), with the request's event current while it is polled.
    ///
    /// The event finishes when the body ends; dropped before its end (the client went away), the
    /// event is recorded with `rustmon.cancelled = true`.
    pub struct ResponseBody<B>
    where
        B: Body,
    {
        #[pin]
        inner: B,
        state: Option<BodyState>,
    }

    impl<B> PinnedDrop for ResponseBody<B>
    where
        B: Body,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(state) = this.state.take() {
                let cancelled = !state.no_body && !this.inner.is_end_stream();
                state.finish(cancelled);
            }
        }
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn passthrough(inner: B) -> Self {
        ResponseBody { inner, state: None }
    }

    pub(crate) fn monitored(inner: B, state: BodyState) -> Self {
        ResponseBody {
            inner,
            state: Some(state),
        }
    }
}

impl<B: Body> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("monitored", &self.state.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let Some(ctx) = this.state.as_ref().map(|s| s.ctx) else {
            return this.inner.poll_frame(cx);
        };
        let polled = {
            let _current = context::attach(ctx);
            catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll_frame(cx)))
        };
        let polled = match polled {
            Ok(p) => p,
            Err(panic) => {
                if let Some(mut state) = this.state.take() {
                    state.event.record_error("panic", panic_message(&*panic));
                    state.finish(false);
                }
                resume_unwind(panic)
            }
        };
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(state)) = (frame.data_ref(), this.state.as_mut()) {
                    state.data(data);
                }
                if this.inner.is_end_stream() {
                    if let Some(state) = this.state.take() {
                        state.finish(false);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(mut state) = this.state.take() {
                    state.event.record_error(
                        std::any::type_name::<B::Error>(),
                        "the response body failed while streaming",
                    );
                    state.finish(false);
                }
            }
            Poll::Ready(None) => {
                if let Some(state) = this.state.take() {
                    state.finish(false);
                }
            }
        }
        polled
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
