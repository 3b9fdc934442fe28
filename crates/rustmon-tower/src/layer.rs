//! [`MonitorLayer`], [`MonitorService`] and [`ResponseFuture`]: one server event per request.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response, Version};
use pin_project_lite::pin_project;
use rustmon_core::Monitor;
use rustmon_core::context;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::recorder::{RequestHead, RequestRecord, RouteSlot, ServerRecorder};
use crate::route::{MatchRoute, NoRoute, RouteFn, RouteRequest};

/// A tower [`Layer`] that records one [`Kind::Server`](rustmon_core::Kind::Server) event per HTTP request.
///
/// Each request becomes an event named by method and route template (`GET /orders/{id}`, or
/// `GET unmatched`), continuing the caller's trace from a W3C `traceparent` header, and current
/// while the inner service handles the request, so events started by the handler (also after
/// `.await`s) are its children. The event ends when the response body has been sent (or dropped);
/// it records the attributes listed in the crate documentation, and what
/// [`HttpServerConfig`](crate::HttpServerConfig) asks for, read once per request from the monitor's live configuration.
///
/// Events go to the global monitor unless [`with_monitor`](MonitorLayer::with_monitor) names one.
/// With no monitor, or monitoring disabled, requests pass through untouched.
///
/// # Examples
/// ```
/// use rustmon_tower::MonitorLayer;
/// use tower_layer::Layer;
///
/// # #[derive(Clone)] struct Svc;
/// let svc = MonitorLayer::new()
///     .route_fn(|req| (req.uri.path() == "/").then_some("/"))
///     .layer(Svc);
/// # let _ = svc;
/// ```
#[derive(Clone)]
pub struct MonitorLayer<R = NoRoute> {
    recorder: ServerRecorder,
    route: R,
    route_slot: bool,
}

impl fmt::Debug for MonitorLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorLayer")
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl Default for MonitorLayer {
    fn default() -> Self {
        MonitorLayer::new()
    }
}

impl MonitorLayer {
    /// A layer recording into the global monitor, with no route information (see
    /// [`route`](MonitorLayer::route)).
    pub fn new() -> Self {
        MonitorLayer {
            recorder: ServerRecorder::new(None),
            route: NoRoute,
            route_slot: false,
        }
    }
}

impl<R: MatchRoute> MonitorLayer<R> {
    /// Records into `monitor` instead of the global one (tests, several monitors in a process).
    pub fn with_monitor(self, monitor: Monitor) -> Self {
        MonitorLayer {
            recorder: ServerRecorder::new(Some(monitor)),
            route: self.route,
            route_slot: self.route_slot,
        }
    }

    /// Learns route templates (and peer addresses) from `route`.
    pub fn route<R2: MatchRoute>(self, route: R2) -> MonitorLayer<R2> {
        MonitorLayer {
            recorder: self.recorder,
            route,
            route_slot: self.route_slot,
        }
    }

    /// Puts a [`RouteSlot`] in each monitored request's extensions, for routers that route inside
    /// the service (warp filters): the template they set there names the event when the request
    /// ends. Costs one small allocation per request.
    pub fn with_route_slot(mut self) -> Self {
        self.route_slot = true;
        self
    }

    /// Learns route templates from a closure returning the template of a request (`None`: no
    /// route matched). Return templates, never raw paths.
    ///
    /// # Examples
    /// ```
    /// use rustmon_tower::MonitorLayer;
    /// let layer = MonitorLayer::new().route_fn(|req| match req.uri.path() {
    ///     "/" => Some("/"),
    ///     p if p.starts_with("/users/") => Some("/users/{name}"),
    ///     _ => None,
    /// });
    /// # let _ = layer;
    /// ```
    pub fn route_fn<F>(self, f: F) -> MonitorLayer<RouteFn<F>>
    where
        F: for<'r> Fn(&RouteRequest<'r>) -> Option<&'r str> + Clone + Send + Sync + 'static,
    {
        self.route(RouteFn(f))
    }
}

impl<S, R: MatchRoute> Layer<S> for MonitorLayer<R> {
    type Service = MonitorService<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        MonitorService {
            inner,
            recorder: self.recorder.clone(),
            route: self.route.clone(),
            route_slot: self.route_slot,
        }
    }
}

/// The service [`MonitorLayer`] wraps around `S`.
#[derive(Clone)]
pub struct MonitorService<S, R = NoRoute> {
    inner: S,
    recorder: ServerRecorder,
    route: R,
    route_slot: bool,
}

impl<S: fmt::Debug, R> fmt::Debug for MonitorService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// `network.protocol.version` for an `http` crate version: `1.0`, `1.1`, `2`, … (for adapters
/// of frameworks built on the `http` crate).
pub fn protocol_version(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "other",
    }
}

static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
static TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

impl<S, R, ReqBody, ResBody> Service<Request<ReqBody>> for MonitorService<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    R: MatchRoute,
    ResBody: http_body::Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let Some(mut record) = self.start(&req) else {
            return ResponseFuture {
                inner: self.inner.call(req),
                record: None,
            };
        };
        if self.route_slot {
            let slot = RouteSlot::default();
            req.extensions_mut().insert(slot.clone());
            record.route_later(&self.recorder, slot);
        }
        let inner = {
            let _current = context::attach(record.context());
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            record: Some(record),
        }
    }
}

impl<S, R: MatchRoute> MonitorService<S, R> {
    /// Starts the request's event, or `None` when not monitoring or the route is ignored.
    #[inline]
    fn start<B>(&self, req: &Request<B>) -> Option<RequestRecord> {
        let parts = RouteRequest {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        };
        let headers = req.headers();
        let head = RequestHead {
            method: req.method().as_str(),
            route: self.route.route(&parts),
            path: req.uri().path(),
            https: req.uri().scheme_str() == Some("https"),
            authority: req
                .uri()
                .authority()
                .map(|a| a.as_str())
                .or_else(|| headers.get(http::header::HOST)?.to_str().ok()),
            version: protocol_version(req.version()),
            user_agent: headers.get(http::header::USER_AGENT).map(|v| v.as_bytes()),
            content_length: headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok()),
            traceparent: headers.get(&TRACEPARENT).map(|v| v.as_bytes()),
            tracestate: headers.get(&TRACESTATE).map(|v| v.as_bytes()),
            client_addr: self.route.client_addr(&parts),
        };
        self.recorder.start(&head, headers)
    }
}

pin_project! {
    /// The future of [`MonitorService`]: the inner service's response, with the request's event
    /// current while it is polled.
    ///
    /// A panic while polling is recorded on the event (error type `panic`), which is then finished,
    /// and the panic continues unchanged. Dropped before completion (the client went away), the
    /// event is recorded with `rustmon.cancelled = true`.
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

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
    B: http_body::Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(record) = this.record.as_ref() else {
            return this
                .inner
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(ResponseBody::passthrough)));
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
        let Some(record) = this.record.take() else {
            return Poll::Ready(result.map(|resp| resp.map(ResponseBody::passthrough)));
        };
        match result {
            Ok(resp) => {
                let body = record.respond(resp.status().as_u16(), resp.headers());
                Poll::Ready(Ok(resp.map(|b| ResponseBody::monitored(b, body))))
            }
            Err(e) => {
                record.failed("service", &e);
                Poll::Ready(Err(e))
            }
        }
    }
}
