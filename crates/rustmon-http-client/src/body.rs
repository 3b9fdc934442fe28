//! [`ResponseBody`]: a response body that ends the request's event when it has been read.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use rustmon_core::Event;

/// The event of a response whose body is still being read.
pub(crate) struct BodyState {
    event: Event,
    bytes: u64,
    count: bool,
}

impl BodyState {
    pub(crate) fn new(event: Event, count: bool) -> BodyState {
        BodyState {
            event,
            bytes: 0,
            count,
        }
    }
}

pin_project! {
    /// A response body passed through unchanged, frame by frame, while the request's event counts
    /// the bytes received. The event ends when the body ends (`http.response.body.size` set to the
    /// bytes received), fails (error type `body`), or is dropped unread (ending the event then).
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        state: Option<BodyState>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut s) = this.project().state.take() {
                s.event.set("rustmon.http.body.unread", true);
                s.event.finish();
            }
        }
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn monitored(inner: B, state: BodyState) -> Self {
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
    B: Body,
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        let Some(state) = this.state.as_mut() else {
            return polled;
        };
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    state.bytes += data.remaining() as u64;
                }
            }
            Poll::Ready(None) => {
                if let Some(mut s) = this.state.take() {
                    if s.count {
                        s.event.set("http.response.body.size", s.bytes);
                    }
                    s.event.finish();
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(mut s) = this.state.take() {
                    s.event.set("error.type", "body");
                    s.event.record_error("body", e);
                    s.event.finish();
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
