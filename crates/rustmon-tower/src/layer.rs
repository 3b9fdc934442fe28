//! [`MonitorLayer`], [`MonitorService`] and [`ResponseFuture`]: one server event per request.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use http::{HeaderMap, Method, Request, Response, Version};
use pin_project_lite::pin_project;
use rustmon_core::context::{self, SpanContext};
use rustmon_core::{ConfigHandle, Event, Kind, Monitor, PluginConfig, Status};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{BodyState, ResponseBody};
use crate::config::HttpServerConfig;
use crate::names::{Names, UNMATCHED};
use crate::route::{MatchRoute, NoRoute, RouteFn, RouteRequest};

/// A tower [`Layer`] that records one [`Kind::Server`] event per HTTP request.
///
/// Each request becomes an event named by method and route template (`GET /orders/{id}`, or
/// `GET unmatched`), continuing the caller's trace from a W3C `traceparent` header, and current
/// while the inner service handles the request, so events started by the handler (also after
/// `.await`s) are its children. The event ends when the response body has been sent (or dropped);
/// it records the attributes listed in the crate documentation, and what
/// [`HttpServerConfig`] asks for, read once per request from the monitor's live configuration.
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
    shared: Arc<Shared>,
    route: R,
}

struct Shared {
    monitor: Option<Monitor>,
    config: OnceLock<ConfigHandle<HttpServerConfig>>,
    names: Names,
}

impl Shared {
    fn new(monitor: Option<Monitor>) -> Shared {
        let config = OnceLock::new();
        if let Some(m) = &monitor {
            let _ = config.set(m.config::<HttpServerConfig>());
        }
        Shared {
            monitor,
            config,
            names: Names::default(),
        }
    }

    /// The monitor to record into and its configuration, if monitoring is on.
    #[inline]
    fn active(&self) -> Option<(&Monitor, &ConfigHandle<HttpServerConfig>)> {
        let m = match &self.monitor {
            Some(m) => m,
            None => rustmon_core::global()?,
        };
        if !m.is_enabled() {
            return None;
        }
        Some((
            m,
            self.config.get_or_init(|| m.config::<HttpServerConfig>()),
        ))
    }
}

impl fmt::Debug for MonitorLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorLayer")
            .field("monitor", &self.shared.monitor.is_some())
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
            shared: Arc::new(Shared::new(None)),
            route: NoRoute,
        }
    }
}

impl<R: MatchRoute> MonitorLayer<R> {
    /// Records into `monitor` instead of the global one (tests, several monitors in a process).
    pub fn with_monitor(self, monitor: Monitor) -> Self {
        MonitorLayer {
            shared: Arc::new(Shared::new(Some(monitor))),
            route: self.route,
        }
    }

    /// Learns route templates (and peer addresses) from `route`.
    pub fn route<R2: MatchRoute>(self, route: R2) -> MonitorLayer<R2> {
        MonitorLayer {
            shared: self.shared,
            route,
        }
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
            shared: self.shared.clone(),
            route: self.route.clone(),
        }
    }
}

/// The service [`MonitorLayer`] wraps around `S`.
#[derive(Clone)]
pub struct MonitorService<S, R = NoRoute> {
    inner: S,
    shared: Arc<Shared>,
    route: R,
}

impl<S: fmt::Debug, R> fmt::Debug for MonitorService<S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorService")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The method as a static string; unknown methods are `_OTHER` (OpenTelemetry), which keeps names
/// low-cardinality whatever clients send.
#[inline]
fn method_str(m: &Method) -> &'static str {
    match m.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "_OTHER",
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

const REDACTED: &str = "[REDACTED]";

static TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// Records `headers` as `{prefix}{name}` attributes, as `config` allows.
pub(crate) fn capture_headers(
    event: &mut Event,
    prefix: &str,
    headers: &HeaderMap,
    config: &HttpServerConfig,
) {
    for name in headers.keys() {
        let n = name.as_str();
        if !config.captures_header(n) {
            continue;
        }
        let value = if config.redacts_header(n) {
            REDACTED.to_owned()
        } else {
            let mut joined = String::new();
            for (i, v) in headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    joined.push_str(", ");
                }
                joined.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
            joined
        };
        event.set(format!("{prefix}{n}"), value);
    }
}

/// What the response stage needs from the request stage.
pub(crate) struct Pending {
    pub(crate) event: Event,
    pub(crate) ctx: Option<SpanContext>,
    pub(crate) no_body: bool,
    pub(crate) response_code: bool,
    pub(crate) client_errors_are_errors: bool,
    pub(crate) body_capture: usize,
    /// The configuration, kept only when response headers are captured.
    pub(crate) headers_config: Option<Arc<HttpServerConfig>>,
}

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

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let Some(pending) = self.start(&req) else {
            return ResponseFuture {
                inner: self.inner.call(req),
                state: None,
            };
        };
        let inner = {
            let _current = context::attach(pending.ctx);
            self.inner.call(req)
        };
        ResponseFuture {
            inner,
            state: Some(pending),
        }
    }
}

impl<S, R: MatchRoute> MonitorService<S, R> {
    /// Starts the request's event, or `None` when not monitoring or the route is ignored.
    #[inline]
    fn start<B>(&self, req: &Request<B>) -> Option<Pending> {
        let (monitor, config) = self.shared.active()?;
        let config = config.get();
        let parts = RouteRequest {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        };
        let route = self.route.route(&parts);
        let path = req.uri().path();
        if !config.ignore_routes.is_empty() && config.is_ignored(route, path) {
            return None;
        }
        let method = method_str(req.method());
        let name = self.shared.names.get(method, route.unwrap_or(UNMATCHED));
        let headers = req.headers();
        let parent = headers
            .get(&TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(SpanContext::from_traceparent)
            .or_else(context::current);
        let route_attr: Option<Cow<'static, str>> = route.map(|r| match &name {
            // The interned name ends with the route: reuse it without allocating.
            Cow::Borrowed(n) => Cow::Borrowed(&n[method.len() + 1..]),
            Cow::Owned(_) => Cow::Owned(r.to_owned()),
        });
        let mut event = monitor
            .start_event_with_parent(Kind::Server, name, parent)
            .with_plugin(HttpServerConfig::NAME);
        event.set("http.request.method", method);
        if method == "_OTHER" {
            event.set(
                "http.request.method_original",
                req.method().as_str().to_owned(),
            );
        }
        if let Some(r) = route_attr {
            event.set("http.route", r);
        }
        event.set("url.path", path.to_owned());
        event.set(
            "url.scheme",
            if req.uri().scheme_str() == Some("https") {
                "https"
            } else {
                "http"
            },
        );
        let authority = req
            .uri()
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(http::header::HOST)?.to_str().ok());
        if let Some(authority) = authority {
            let (host, port) = split_authority(authority);
            event.set("server.address", host.to_owned());
            if let Some(port) = port {
                event.set("server.port", i64::from(port));
            }
        }
        event.set("network.protocol.version", version_str(req.version()));
        if let Some(ua) = headers.get(http::header::USER_AGENT) {
            event.set(
                "user_agent.original",
                String::from_utf8_lossy(ua.as_bytes()).into_owned(),
            );
        }
        if let Some(len) = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        {
            event.set("http.request.body.size", len);
        }
        if config.request_remote_addr {
            if let Some(addr) = self.route.client_addr(&parts) {
                event.set("client.address", addr.ip().to_string());
                event.set("client.port", i64::from(addr.port()));
            }
        }
        if config.request_headers {
            capture_headers(&mut event, "http.request.header.", headers, &config);
        }
        Some(Pending {
            ctx: event.context(),
            event,
            no_body: req.method() == Method::HEAD,
            response_code: config.response_code,
            client_errors_are_errors: config.client_errors_are_errors,
            body_capture: if config.response_body {
                config.response_body_max_size
            } else {
                0
            },
            headers_config: config
                .response_headers
                .then(|| arc_swap::Guard::into_inner(config)),
        })
    }
}

/// `host[:port]`, with IPv6 brackets kept off the host.
fn split_authority(authority: &str) -> (&str, Option<u16>) {
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => match port.parse() {
            Ok(p) => (host, Some(p)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

/// The panic payload as a message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the handler panicked".to_owned()
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
        state: Option<Pending>,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut p) = this.project().state.take() {
                p.event.set("rustmon.cancelled", true);
                p.event.finish();
            }
        }
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
        let Some(ctx) = this.state.as_ref().map(|p| p.ctx) else {
            return this
                .inner
                .poll(cx)
                .map(|r| r.map(|resp| resp.map(ResponseBody::passthrough)));
        };
        let polled = {
            let _current = context::attach(ctx);
            catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx)))
        };
        let result = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(result)) => result,
            Err(panic) => {
                if let Some(mut p) = this.state.take() {
                    p.event.record_error("panic", panic_message(&*panic));
                    p.event.finish();
                }
                resume_unwind(panic)
            }
        };
        let Some(mut p) = this.state.take() else {
            return Poll::Ready(result.map(|resp| resp.map(ResponseBody::passthrough)));
        };
        match result {
            Ok(resp) => {
                let code = resp.status().as_u16();
                if p.response_code {
                    p.event.set("http.response.status_code", i64::from(code));
                }
                if code >= 500 || (code >= 400 && p.client_errors_are_errors) {
                    p.event.set_status(Status::Error);
                }
                if let Some(config) = &p.headers_config {
                    capture_headers(
                        &mut p.event,
                        "http.response.header.",
                        resp.headers(),
                        config,
                    );
                }
                let no_body = p.no_body || code < 200 || code == 204 || code == 304;
                let state = BodyState::new(p.event, p.ctx, no_body, p.body_capture);
                Poll::Ready(Ok(resp.map(|b| ResponseBody::monitored(b, state))))
            }
            Err(e) => {
                p.event.record_error("service", &e);
                p.event.finish();
                Poll::Ready(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_splitting() {
        assert_eq!(
            split_authority("example.com:8080"),
            ("example.com", Some(8080))
        );
        assert_eq!(split_authority("example.com"), ("example.com", None));
        assert_eq!(split_authority("[::1]:3000"), ("::1", Some(3000)));
        assert_eq!(split_authority("[::1]"), ("::1", None));
        assert_eq!(split_authority("user@h:1"), ("h", Some(1)));
        assert_eq!(split_authority("h:notaport"), ("h:notaport", None));
    }

    #[test]
    fn methods_are_normalised() {
        assert_eq!(method_str(&Method::GET), "GET");
        assert_eq!(method_str(&Method::from_bytes(b"BREW").unwrap()), "_OTHER");
    }
}
