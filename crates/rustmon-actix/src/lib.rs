//! actix-web monitoring: a middleware recording one server event per request.
//!
//! [`Monitor`] is an actix-web middleware (`App::wrap(rustmon_actix::Monitor::new())`). Each
//! request becomes a [`Kind::Server`](rustmon_core::Kind::Server) event recorded exactly as the
//! tower layer records it (see `rustmon-tower`): named by method and route pattern
//! (`GET /orders/{id}`, or `GET unmatched`), with the OpenTelemetry HTTP attributes, status from
//! the status class, the live [`HttpServerConfig`](rustmon_tower::HttpServerConfig) (plugin
//! `http_server`: headers with redaction, remote address, body capture, ignored routes), the
//! caller's `traceparent` continued, the event current while the handler and the response body
//! run, panics recorded then resumed, and requests dropped before completion recorded with
//! `rustmon.cancelled = true`.
//!
//! actix-web notices a client that went away only when it writes to the connection: a handler
//! still running then completes (and is recorded normally); a streaming body is dropped at the
//! next failed write and the request is recorded as cancelled; requests in flight when the server
//! stops are recorded as cancelled.
//!
//! # Examples
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//!
//! # async fn run() -> std::io::Result<()> {
//! HttpServer::new(|| {
//!     App::new()
//!         .wrap(rustmon_actix::Monitor::new())
//!         .route("/orders/{id}", web::get().to(|| async { "order" }))
//! })
//! .bind("127.0.0.1:8080")?
//! .run()
//! .await
//! # }
//! ```

use std::fmt;
use std::future::{Future, Ready, ready};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::Version;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::Bytes;
use pin_project_lite::pin_project;
use rustmon_core::context;
use rustmon_tower::{BodyRecord, Headers, RequestHead, RequestRecord, ServerRecorder};

/// The actix-web middleware: records one server event per request.
///
/// Events go to the global monitor unless [`with_monitor`](Monitor::with_monitor) names one.
/// Wrap it around the whole `App` (`App::wrap`): route patterns are resolved from the app's
/// resource map, so requests are named by pattern even though routing happens inside.
///
/// # Examples
/// ```
/// use actix_web::{App, web};
/// let app = App::new()
///     .wrap(rustmon_actix::Monitor::new())
///     .route("/", web::get().to(|| async { "hello" }));
/// # let _ = app;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Monitor {
    recorder: ServerRecorder,
}

impl Monitor {
    /// The middleware, recording into the global monitor.
    pub fn new() -> Self {
        Monitor::default()
    }

    /// Records into `monitor` instead of the global one.
    pub fn with_monitor(monitor: rustmon_core::Monitor) -> Self {
        Monitor {
            recorder: ServerRecorder::new(Some(monitor)),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Monitor
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<MonitoredBody<B>>;
    type Error = actix_web::Error;
    type Transform = MonitorMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(MonitorMiddleware {
            service: Rc::new(service),
            recorder: self.recorder.clone(),
        }))
    }
}

/// The service [`Monitor`] wraps around the app.
pub struct MonitorMiddleware<S> {
    service: Rc<S>,
    recorder: ServerRecorder,
}

impl<S> fmt::Debug for MonitorMiddleware<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorMiddleware").finish_non_exhaustive()
    }
}

struct ActixHeaders<'a>(&'a HeaderMap);

impl Headers for ActixHeaders<'_> {
    fn each(&self, f: &mut dyn FnMut(&str, &[u8])) {
        for (name, value) in self.0.iter() {
            f(name.as_str(), value.as_bytes());
        }
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "other",
    }
}

impl<S, B> Service<ServiceRequest> for MonitorMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<MonitoredBody<B>>;
    type Error = actix_web::Error;
    type Future = ResponseFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let record = self.start(&req);
        let inner = {
            let _current = record.as_ref().map(|r| context::attach(r.context()));
            self.service.call(req)
        };
        ResponseFuture { inner, record }
    }
}

impl<S> MonitorMiddleware<S> {
    #[inline]
    fn start(&self, req: &ServiceRequest) -> Option<RequestRecord> {
        let route = req.match_pattern();
        let headers = req.headers();
        let head = RequestHead {
            method: req.method().as_str(),
            route: route.as_deref(),
            path: req.path(),
            https: req.app_config().secure(),
            authority: req
                .uri()
                .authority()
                .map(|a| a.as_str())
                .or_else(|| headers.get(header::HOST)?.to_str().ok()),
            version: version_str(req.version()),
            user_agent: headers.get(header::USER_AGENT).map(|v| v.as_bytes()),
            content_length: headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok()),
            traceparent: headers.get("traceparent").map(|v| v.as_bytes()),
            tracestate: headers.get("tracestate").map(|v| v.as_bytes()),
            client_addr: req.peer_addr(),
        };
        self.recorder.start(&head, &ActixHeaders(headers))
    }
}

pin_project! {
    /// The future of [`MonitorMiddleware`]: the app's response, with the request's event current
    /// while it is polled. A panic is recorded and resumed; dropped early (the client went away),
    /// the event is recorded as cancelled.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        record: Option<RequestRecord>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<MonitoredBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(record) = this.record.as_ref() else {
            return this
                .inner
                .poll(cx)
                .map(|r| r.map(|res| res.map_body(|_, b| MonitoredBody::passthrough(b))));
        };
        let polled = {
            let _current = context::attach(record.context());
            catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx)))
        };
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result,
            Err(panic) => {
                if let Some(record) = this.record.take() {
                    record.panicked(&*panic);
                }
                resume_unwind(panic)
            }
        };
        let Some(mut record) = this.record.take() else {
            return Poll::Ready(
                result.map(|res| res.map_body(|_, b| MonitoredBody::passthrough(b))),
            );
        };
        match result {
            Ok(res) => {
                // A handler's `Err` has already become this response; the error rides along.
                if res.status().is_server_error() {
                    if let (Some(err), Some(ev)) = (res.response().error(), record.event_mut()) {
                        ev.record_error("actix_web::Error", err);
                    }
                }
                let body = record.respond(res.status().as_u16(), &ActixHeaders(res.headers()));
                Poll::Ready(Ok(res.map_body(|_, b| MonitoredBody::monitored(b, body))))
            }
            Err(e) => {
                // actix turns the error into a response after the middleware: record its status,
                // and the error itself when it is a server error.
                let status = e.as_response_error().status_code();
                if status.is_server_error() {
                    if let Some(ev) = record.event_mut() {
                        ev.record_error("actix_web::Error", &e);
                    }
                }
                record.respond(status.as_u16(), &()).end();
                Poll::Ready(Err(e))
            }
        }
    }
}

pin_project! {
    /// The response body of a monitored request: the app's body unchanged (chunks pass through
    /// as they come), counted, with the request's event current while it is polled. The event
    /// finishes at the end of the body; dropped before (the client went away), it is recorded as
    /// cancelled.
    pub struct MonitoredBody<B> {
        #[pin]
        inner: B,
        record: Option<BodyRecord>,
        remaining: Option<u64>,
    }
}

impl<B> fmt::Debug for MonitoredBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredBody")
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl<B: MessageBody> MonitoredBody<B> {
    fn passthrough(inner: B) -> Self {
        MonitoredBody {
            inner,
            record: None,
            remaining: None,
        }
    }

    fn monitored(inner: B, record: BodyRecord) -> Self {
        let (record, remaining) = match inner.size() {
            // Nothing to send: actix may never poll the body.
            BodySize::None | BodySize::Sized(0) => {
                record.end();
                (None, None)
            }
            BodySize::Sized(n) => (Some(record), Some(n)),
            BodySize::Stream => (Some(record), None),
        };
        MonitoredBody {
            inner,
            record,
            remaining,
        }
    }
}

impl<B: MessageBody> MessageBody for MonitoredBody<B> {
    type Error = B::Error;

    #[inline]
    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let mut this = self.project();
        let Some(record) = this.record.as_ref() else {
            return this.inner.poll_next(cx);
        };
        let polled = {
            let _current = context::attach(record.context());
            catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll_next(cx)))
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
            Poll::Ready(Some(Ok(chunk))) => {
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

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let MonitoredBody {
            inner,
            record,
            remaining,
        } = self;
        match inner.try_into_bytes() {
            Ok(bytes) => {
                if let Some(mut record) = record {
                    record.data(&bytes);
                    record.end();
                }
                Ok(bytes)
            }
            Err(inner) => Err(MonitoredBody {
                inner,
                record,
                remaining,
            }),
        }
    }
}
