//! The response body of a monitored request: rocket's body, read through unchanged, counted (and,
//! with body capture on, its first bytes copied), finishing the request's event when rocket has
//! read it to the end.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use rocket::Response;
use rocket::response::Body;
use rocket::tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use rustmon_core::context;
use rustmon_tower::BodyRecord;

/// Puts `record` around the body of `res`. Sized bodies stay sized (rocket still sends
/// `Content-Length`), streamed bodies stay streamed: nothing is buffered.
pub(crate) async fn monitor(res: &mut Response<'_>, record: BodyRecord) {
    if !record.is_open() {
        return;
    }
    let body = res.body_mut();
    if body.is_none() {
        record.end();
        return;
    }
    let max_chunk = body.max_chunk_size();
    // For a seekable body of unknown size this seeks to its end and back, as rocket would do
    // just before sending it; `None` means a streamed body.
    let size = body.size().await;
    let inner = body.take();
    let monitored = MonitoredBody {
        inner,
        record: Some(record),
        remaining: size.map(|n| n as u64),
        position: 0,
    };
    match size {
        Some(n) => res.set_sized_body(n, monitored),
        None => res.set_streamed_body(monitored),
    }
    res.set_max_chunk_size(max_chunk);
}

/// See the module documentation. Dropped before the end of the body (the client went away and
/// rocket stopped writing), the request is recorded with `rustmon.cancelled = true`.
struct MonitoredBody<'r> {
    inner: Body<'r>,
    record: Option<BodyRecord>,
    /// Bytes still to come, for sized bodies: the event ends with the last one.
    remaining: Option<u64>,
    /// Bytes read so far.
    position: u64,
}

impl AsyncRead for MonitoredBody<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(record) = this.record.as_ref() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let before = buf.filled().len();
        let room = buf.remaining() > 0;
        let polled = {
            let _current = context::attach(record.context());
            catch_unwind(AssertUnwindSafe(|| {
                Pin::new(&mut this.inner).poll_read(cx, buf)
            }))
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
            Poll::Ready(Ok(())) => {
                let chunk = &buf.filled()[before..];
                this.position += chunk.len() as u64;
                if chunk.is_empty() {
                    if room {
                        // End of the body.
                        if let Some(record) = this.record.take() {
                            record.end();
                        }
                    }
                } else {
                    if let Some(record) = this.record.as_mut() {
                        if record.wants_bytes() {
                            record.data(chunk);
                        } else {
                            record.count(chunk.len());
                        }
                    }
                    if let Some(rem) = this.remaining.as_mut() {
                        *rem = rem.saturating_sub(chunk.len() as u64);
                        if *rem == 0 {
                            if let Some(record) = this.record.take() {
                                record.end();
                            }
                        }
                    }
                }
            }
            Poll::Ready(Err(e)) => {
                if let Some(record) = this.record.take() {
                    record.failed("io", e);
                }
            }
        }
        polled
    }
}

/// Rocket's sized bodies must be seekable, but it only seeks a body whose size is unknown, and
/// this one's is always given: only the position query (`SeekFrom::Current(0)`) is answered.
impl AsyncSeek for MonitoredBody<'_> {
    fn start_seek(self: Pin<&mut Self>, position: io::SeekFrom) -> io::Result<()> {
        match position {
            io::SeekFrom::Current(0) => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a monitored response body can not seek",
            )),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.position))
    }
}
