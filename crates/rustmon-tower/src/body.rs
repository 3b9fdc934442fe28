//! [`ResponseBody`]: passes the response body through, counting (and optionally copying) bytes,
//! and finishes the request's event at the end of the stream.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use rustmon_core::context;

use crate::recorder::BodyRecord;

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
        record: Option<BodyRecord>,
    }

    impl<B> PinnedDrop for ResponseBody<B>
    where
        B: Body,
    {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(record) = this.record.take() {
                if this.inner.is_end_stream() {
                    record.end();
                }
                // Otherwise dropping the record marks the request cancelled (unless the
                // response carries no body).
            }
        }
    }
}

impl<B: Body> ResponseBody<B> {
    pub(crate) fn passthrough(inner: B) -> Self {
        ResponseBody {
            inner,
            record: None,
        }
    }

    /// Wraps `inner`, counting its bytes into `record` and finishing it at the end of the body
    /// (for framework adapters that hand their response body to hyper as an `http_body::Body`).
    pub fn monitored(inner: B, record: BodyRecord) -> Self {
        ResponseBody {
            inner,
            record: Some(record),
        }
    }
}

impl<B: Body> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

fn count<D: Buf>(record: &mut BodyRecord, data: &D) {
    if record.wants_bytes() {
        let mut slices = [std::io::IoSlice::new(&[]); 16];
        let n = data.chunks_vectored(&mut slices);
        let mut seen = 0;
        for s in &slices[..n] {
            record.data(s);
            seen += s.len();
        }
        record.count(data.remaining() - seen);
    } else {
        record.count(data.remaining());
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
        let Some(record) = this.record.as_ref() else {
            return this.inner.poll_frame(cx);
        };
        let polled = {
            let _current = context::attach(record.context());
            catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll_frame(cx)))
        };
        let polled = match polled {
            Ok(p) => p,
            Err(panic) => {
                if let Some(record) = this.record.take() {
                    record.panicked(&*panic);
                }
                resume_unwind(panic)
            }
        };
        match &polled {
            Poll::Pending => {}
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(record)) = (frame.data_ref(), this.record.as_mut()) {
                    count(record, data);
                }
                if this.inner.is_end_stream() {
                    if let Some(record) = this.record.take() {
                        record.end();
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(record) = this.record.take() {
                    record.failed(
                        std::any::type_name::<B::Error>(),
                        &"the response body failed while streaming",
                    );
                }
            }
            Poll::Ready(None) => {
                if let Some(record) = this.record.take() {
                    record.end();
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
