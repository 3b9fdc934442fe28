//! poem monitoring: a middleware recording one server event per request.
//!
//! [`Monitor`] is a poem [`Middleware`] (`route.with(rustmon_poem::Monitor::new())`). Each
//! request becomes a [`Kind::Server`](rustmon_core::Kind::Server) event recorded exactly as the
//! tower layer records it (see `rustmon-tower`): named by method and poem's route pattern
//! ([`PathPattern`]: `GET /orders/:id`, or `GET unmatched`), with the OpenTelemetry HTTP
//! attributes, status from the status class, the live
//! [`HttpServerConfig`](rustmon_tower::HttpServerConfig) (plugin `http_server`: headers with
//! redaction, remote address, body capture, ignored routes), the caller's `traceparent`
//! continued, the event current while the endpoint and the response body run, panics recorded
//! then resumed, and requests dropped before completion (the client went away) recorded with
//! `rustmon.cancelled = true`.
//!
//! Wrapped around a [`Route`](poem::Route), the middleware learns the pattern from the response
//! (poem's router attaches it there), so the event is named when the response comes, and a
//! request that ends without one (a panic, a request dropped when the server stops) is named
//! `GET unmatched`, its raw path in `url.path`. Wrapped around one endpoint inside a route, it
//! reads the pattern from the request before the handler runs.
//!
//! # Examples
//! ```
//! use poem::{EndpointExt, Route, get, handler, web::Path};
//!
//! #[handler]
//! fn order(Path(id): Path<u64>) -> String {
//!     format!("order {id}")
//! }
//!
//! let app = Route::new()
//!     .at("/orders/:id", get(order))
//!     .with(rustmon_poem::Monitor::new());
//! // poem::Server::new(poem::listener::TcpListener::bind("0.0.0.0:3000")).run(app).await
//! # let _ = app;
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use pin_project_lite::pin_project;
use poem::PathPattern;
use poem::http::StatusCode;
use poem::http::header;
use poem::{Body, Endpoint, IntoResponse, Middleware, Request, Response};
use rustmon_core::context;
use rustmon_tower::{RequestHead, RequestRecord, ResponseBody, ServerRecorder, protocol_version};

/// The poem middleware: records one server event per request.
///
/// Events go to the global monitor unless [`with_monitor`](Monitor::with_monitor) names one.
/// Wrap it around the whole [`Route`](poem::Route) (`route.with(Monitor::new())`) so that every
/// request, unmatched ones included, is recorded.
///
/// # Examples
/// ```
/// use poem::{EndpointExt, Route, get, handler};
///
/// #[handler]
/// fn hello() -> &'static str {
///     "hello"
/// }
///
/// let app = Route::new().at("/", get(hello)).with(rustmon_poem::Monitor::new());
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

impl<E: Endpoint> Middleware<E> for Monitor {
    type Output = MonitorEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        MonitorEndpoint {
            inner: ep,
            recorder: self.recorder.clone(),
        }
    }
}

/// The endpoint [`Monitor`] wraps around an endpoint.
///
/// An endpoint's `Err` is passed on unchanged (poem's server turns it into the response after
/// every middleware): the event records its status, and the error when it is a server error.
pub struct MonitorEndpoint<E> {
    inner: E,
    recorder: ServerRecorder,
}

impl<E> fmt::Debug for MonitorEndpoint<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorEndpoint")
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl<E: Endpoint> MonitorEndpoint<E> {
    /// Starts the request's event, or `None` when not monitoring or the route is ignored.
    fn start(&self, req: &Request) -> Option<RequestRecord> {
        let headers = req.headers();
        let head = RequestHead {
            method: req.method().as_str(),
            route: req.data::<PathPattern>().map(|p| &*p.0),
            path: req.original_uri().path(),
            https: *req.scheme() == poem::http::uri::Scheme::HTTPS,
            authority: req
                .uri()
                .authority()
                .map(|a| a.as_str())
                .or_else(|| headers.get(header::HOST)?.to_str().ok()),
            version: protocol_version(req.version()),
            user_agent: headers.get(header::USER_AGENT).map(|v| v.as_bytes()),
            content_length: headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok()),
            traceparent: headers.get("traceparent").map(|v| v.as_bytes()),
            tracestate: headers.get("tracestate").map(|v| v.as_bytes()),
            client_addr: req.remote_addr().as_socket_addr().copied(),
        };
        self.recorder.start(&head, headers)
    }

    fn monitored(
        &self,
        req: Request,
    ) -> ResponseFuture<'_, impl Future<Output = poem::Result<E::Output>> + Send + '_> {
        let record = self.start(&req);
        let route_known = req.data::<PathPattern>().is_some();
        let inner = {
            let _current = record.as_ref().map(|r| context::attach(r.context()));
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            record,
            recorder: &self.recorder,
            route_known,
        }
    }
}

impl<E: Endpoint> Endpoint for MonitorEndpoint<E> {
    type Output = Response;

    fn call(&self, req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        self.monitored(req)
    }
}

pin_project! {
    /// The future of [`MonitorEndpoint`]: the endpoint's response, with the request's event
    /// current while it is polled. A panic is recorded and resumed; dropped early (the client
    /// went away), the event is recorded as cancelled.
    struct ResponseFuture<'a, F> {
        #[pin]
        inner: F,
        record: Option<RequestRecord>,
        recorder: &'a ServerRecorder,
        route_known: bool,
    }
}

impl<F> fmt::Debug for ResponseFuture<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, T> Future for ResponseFuture<'_, F>
where
    F: Future<Output = poem::Result<T>>,
    T: IntoResponse,
{
    type Output = poem::Result<Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(record) = this.record.as_ref() else {
            return this
                .inner
                .poll(cx)
                .map(|r| r.map(IntoResponse::into_response));
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
            return Poll::Ready(result.map(IntoResponse::into_response));
        };
        Poll::Ready(match result {
            Ok(out) => Ok(respond(
                record,
                this.recorder,
                *this.route_known,
                out.into_response(),
            )),
            Err(err) => {
                // poem's server turns the error into a response after every middleware: record
                // its status, and the error itself when it is a server error.
                if !*this.route_known {
                    if let Some(p) = err.data::<PathPattern>() {
                        record.set_route(this.recorder, &p.0);
                    }
                }
                let status = err.status();
                if status.is_server_error() {
                    if let Some(ev) = record.event_mut() {
                        ev.record_error("poem::Error", &err);
                    }
                }
                record.respond(status.as_u16(), &()).end_unseen();
                Err(err)
            }
        })
    }
}

/// Records the response head and hands the body to a [`ResponseBody`] that counts it and
/// finishes the event at its end.
fn respond(
    mut record: RequestRecord,
    recorder: &ServerRecorder,
    route_known: bool,
    mut resp: Response,
) -> Response {
    if !route_known {
        if let Some(p) = resp.data::<PathPattern>() {
            record.set_route(recorder, &p.0);
        }
    }
    let status: StatusCode = resp.status();
    let body = record.respond(status.as_u16(), resp.headers());
    let inner: BoxBody<Bytes, io::Error> = resp.take_body().into();
    resp.set_body(Body::from(BoxBody::new(ResponseBody::monitored(
        inner, body,
    ))));
    resp
}
