//! The framework-neutral recorder behind every HTTP server integration: [`ServerRecorder`] turns
//! a request's head into a [`RequestRecord`], which becomes a [`BodyRecord`] once the response
//! head is known, which is finished when the body ends. The tower layer, the actix-web middleware
//! and the other framework integrations are thin adapters over it.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use rustmon_core::context::{self, SpanContext};
use rustmon_core::{ConfigHandle, Event, Kind, Monitor, PluginConfig, Status};

use crate::config::HttpServerConfig;
use rustmon_core::intern::Interner;

use crate::names::{MAX_INTERNED, UNMATCHED};

/// What the recorder needs from a request's head. Adapters fill it from their framework's request
/// type; every field is a cheap borrow.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestHead<'a> {
    /// The method, e.g. `GET`.
    pub method: &'a str,
    /// The matched route template (`/orders/{id}`); `None` when no route matched.
    pub route: Option<&'a str>,
    /// The raw path, without the query.
    pub path: &'a str,
    /// Whether the request arrived over TLS.
    pub https: bool,
    /// `host[:port]` from the URI authority or the `Host` header.
    pub authority: Option<&'a str>,
    /// The protocol version: `1.0`, `1.1`, `2` or `3`; empty when the framework does not tell
    /// (rocket 0.5), and then not recorded.
    pub version: &'static str,
    /// The `User-Agent` header.
    pub user_agent: Option<&'a [u8]>,
    /// The `Content-Length` header, parsed.
    pub content_length: Option<u64>,
    /// The `traceparent` header.
    pub traceparent: Option<&'a [u8]>,
    /// The `tracestate` header.
    pub tracestate: Option<&'a [u8]>,
    /// The peer's address.
    pub client_addr: Option<SocketAddr>,
}

/// Header access for capture: calls `f` with each header's lowercase name and value (a name may
/// repeat). Only called when the configuration asks for headers.
pub trait Headers {
    /// Calls `f` for each header.
    fn each(&self, f: &mut dyn FnMut(&str, &[u8]));
}

impl Headers for http::HeaderMap {
    fn each(&self, f: &mut dyn FnMut(&str, &[u8])) {
        for (name, value) in self {
            f(name.as_str(), value.as_bytes());
        }
    }
}

/// No headers.
impl Headers for () {
    fn each(&self, _f: &mut dyn FnMut(&str, &[u8])) {}
}

/// A request's route template, set by the router while it handles the request, for routers that
/// route inside the monitored service (warp filters). The layer puts one in the request
/// extensions when built with [`MonitorLayer::with_route_slot`](crate::MonitorLayer::with_route_slot);
/// the router sets it; the event is renamed when the response (or panic, or cancellation) comes.
///
/// # Examples
/// ```
/// use rustmon_tower::RouteSlot;
/// let slot = RouteSlot::default();
/// slot.set("/orders/{id}");
/// assert_eq!(slot.get(), Some("/orders/{id}"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct RouteSlot(Arc<std::sync::Mutex<Option<&'static str>>>);

impl RouteSlot {
    /// Sets the template; the last call wins (a router that tried a route and moved on to
    /// another one sets the final one last).
    pub fn set(&self, template: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(template);
    }

    /// The template, if set.
    pub fn get(&self) -> Option<&'static str> {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Starts server events for one integration instance: where they go (a given monitor, or the
/// global one), the live [`HttpServerConfig`], and interned event names. Cheap to clone.
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_tower::{RequestHead, ServerRecorder};
///
/// let monitor = Monitor::builder("svc").build().unwrap();
/// let recorder = ServerRecorder::new(Some(monitor.clone()));
/// let head = RequestHead { method: "GET", route: Some("/orders/{id}"), path: "/orders/7", version: "1.1", ..Default::default() };
/// let request = recorder.start(&head, &()).expect("monitoring is on");
/// let mut body = request.respond(200, &());
/// body.data(b"hello");
/// body.end();
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone)]
pub struct ServerRecorder {
    shared: Arc<Shared>,
}

struct Shared {
    monitor: Option<Monitor>,
    config: OnceLock<ConfigHandle<HttpServerConfig>>,
    names: Interner,
    /// `server.address` values (bounded), so that they do not allocate per request.
    hosts: Interner,
    /// `user_agent.original` values (bounded).
    user_agents: Interner,
}

impl fmt::Debug for ServerRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerRecorder")
            .field("monitor", &self.shared.monitor.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for ServerRecorder {
    fn default() -> Self {
        ServerRecorder::new(None)
    }
}

/// The method as a static string; unknown methods are `_OTHER` (OpenTelemetry), which keeps names
/// low-cardinality whatever clients send.
#[inline]
pub(crate) fn method_str(m: &str) -> &'static str {
    match m {
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

const REDACTED: &str = "[REDACTED]";

/// Records headers as `{prefix}{name}` attributes, as `config` allows; repeated names are joined
/// with `, `.
fn capture_headers(
    event: &mut Event,
    prefix: &str,
    headers: &dyn Headers,
    config: &HttpServerConfig,
) {
    let mut captured: Vec<(String, String)> = Vec::new();
    headers.each(&mut |name, value| {
        if !config.captures_header(name) {
            return;
        }
        let value: Cow<'_, str> = if config.redacts_header(name) {
            Cow::Borrowed(REDACTED)
        } else {
            String::from_utf8_lossy(value)
        };
        match captured.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) if v != REDACTED => {
                v.push_str(", ");
                v.push_str(&value);
            }
            Some(_) => {}
            None => captured.push((name.to_ascii_lowercase(), value.into_owned())),
        }
    });
    for (name, value) in captured {
        event.set(format!("{prefix}{name}"), value);
    }
}

/// `host[:port]`, with IPv6 brackets kept off the host.
pub(crate) fn split_authority(authority: &str) -> (&str, Option<u16>) {
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
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "the handler panicked".to_owned()
    }
}

impl ServerRecorder {
    /// A recorder for `monitor`, or for the global monitor when `None` (resolved at the first
    /// request; its configuration handle is kept from then on).
    pub fn new(monitor: Option<Monitor>) -> Self {
        let config = OnceLock::new();
        if let Some(m) = &monitor {
            let _ = config.set(m.config::<HttpServerConfig>());
        }
        ServerRecorder {
            shared: Arc::new(Shared {
                monitor,
                config,
                names: Interner::new(MAX_INTERNED, usize::MAX),
                hosts: Interner::new(64, 64),
                user_agents: Interner::new(256, 128),
            }),
        }
    }

    /// The monitor to record into and its configuration, if monitoring is on.
    #[inline]
    fn active(&self) -> Option<(&Monitor, &ConfigHandle<HttpServerConfig>)> {
        let m = match &self.shared.monitor {
            Some(m) => m,
            None => rustmon_core::global()?,
        };
        if !m.is_enabled() {
            return None;
        }
        Some((
            m,
            self.shared
                .config
                .get_or_init(|| m.config::<HttpServerConfig>()),
        ))
    }

    /// Starts the request's server event: `None` when monitoring is off or the route is ignored.
    ///
    /// Reads the configuration once. The parent is the caller's `traceparent`, else the current
    /// context. `headers` is only read when request headers are captured.
    pub fn start(&self, head: &RequestHead<'_>, headers: &dyn Headers) -> Option<RequestRecord> {
        let (monitor, config) = self.active()?;
        let config = config.get();
        if !config.ignore_routes.is_empty() && config.is_ignored(head.route, head.path) {
            return None;
        }
        let method = method_str(head.method);
        let name = self
            .shared
            .names
            .get_joined(method, head.route.unwrap_or(UNMATCHED));
        let parent = head
            .traceparent
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|tp| {
                let ts = head.tracestate.and_then(|v| std::str::from_utf8(v).ok());
                SpanContext::from_headers(tp, ts)
            })
            .or_else(context::current);
        let route_attr: Option<Cow<'static, str>> = head.route.map(|r| match &name {
            // The interned name ends with the route: reuse it without allocating.
            Cow::Borrowed(n) => Cow::Borrowed(&n[method.len() + 1..]),
            Cow::Owned(_) => Cow::Owned(r.to_owned()),
        });
        let mut event = monitor
            .start_event_with_parent(Kind::Server, name, parent)
            .with_plugin(HttpServerConfig::NAME);
        event.set("http.request.method", method);
        if method == "_OTHER" {
            event.set("http.request.method_original", head.method.to_owned());
        }
        // A route without parameters is its own path: share the interned string.
        let path: Cow<'static, str> = match &route_attr {
            Some(Cow::Borrowed(r)) if *r == head.path => Cow::Borrowed(r),
            _ => Cow::Owned(head.path.to_owned()),
        };
        if let Some(r) = route_attr {
            event.set("http.route", r);
        }
        event.set("url.path", path);
        event.set("url.scheme", if head.https { "https" } else { "http" });
        if let Some(authority) = head.authority {
            let (host, port) = split_authority(authority);
            event.set("server.address", self.shared.hosts.get(host));
            if let Some(port) = port {
                event.set("server.port", i64::from(port));
            }
        }
        if !head.version.is_empty() {
            event.set("network.protocol.version", head.version);
        }
        if let Some(ua) = head.user_agent {
            let ua: Cow<'static, str> = match std::str::from_utf8(ua) {
                Ok(ua) => self.shared.user_agents.get(ua),
                Err(_) => Cow::Owned(String::from_utf8_lossy(ua).into_owned()),
            };
            event.set("user_agent.original", ua);
        }
        if let Some(len) = head.content_length {
            event.set("http.request.body.size", len);
        }
        if config.request_remote_addr {
            if let Some(addr) = head.client_addr {
                event.set("client.address", addr.ip().to_string());
                event.set("client.port", i64::from(addr.port()));
            }
        }
        if config.request_headers {
            capture_headers(&mut event, "http.request.header.", headers, &config);
        }
        Some(RequestRecord {
            late_route: None,
            pending: Some(Pending {
                method,
                ctx: event.context(),
                event,
                head: head.method == "HEAD",
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
            }),
        })
    }
}

struct Pending {
    method: &'static str,
    event: Event,
    ctx: Option<SpanContext>,
    head: bool,
    response_code: bool,
    client_errors_are_errors: bool,
    body_capture: usize,
    /// The configuration, kept only when response headers are captured.
    headers_config: Option<Arc<HttpServerConfig>>,
}

/// A request being handled, until its response head is known.
///
/// Make [`context`](RequestRecord::context) current while the handler runs. Then
/// [`respond`](RequestRecord::respond), [`failed`](RequestRecord::failed) or
/// [`panicked`](RequestRecord::panicked); dropped without any of these (the request's future was
/// dropped: the client went away), the event is recorded with `rustmon.cancelled = true`.
#[must_use = "dropping a RequestRecord records the request as cancelled"]
pub struct RequestRecord {
    pending: Option<Pending>,
    /// A route template the router sets later, and the recorder to name the event with it.
    late_route: Option<(ServerRecorder, RouteSlot)>,
}

impl fmt::Debug for RequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestRecord")
            .field("ctx", &self.context())
            .finish_non_exhaustive()
    }
}

impl RequestRecord {
    /// Names the event from `slot` when the request ends (see [`RouteSlot`]).
    pub fn route_later(&mut self, recorder: &ServerRecorder, slot: RouteSlot) {
        self.late_route = Some((recorder.clone(), slot));
    }

    /// Names the event by `route`, a template the router reports with the response (poem,
    /// salvo): `{METHOD} {route}` and `http.route`, or discards the event when the route is
    /// ignored. Call it before [`respond`](RequestRecord::respond).
    pub fn set_route(&mut self, recorder: &ServerRecorder, route: &str) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        if let Some((_, config)) = recorder.active() {
            let config = config.get();
            if !config.ignore_routes.is_empty() && config.is_ignored(Some(route), "") {
                std::mem::replace(&mut p.event, Event::inert()).discard();
                return;
            }
        }
        let name = recorder.shared.names.get_joined(p.method, route);
        let route: Cow<'static, str> = match &name {
            Cow::Borrowed(n) => Cow::Borrowed(&n[p.method.len() + 1..]),
            Cow::Owned(_) => Cow::Owned(route.to_owned()),
        };
        p.event.set_name(name);
        p.event.set("http.route", route);
    }

    /// Applies a late route: renames the event, or discards it when the route is ignored.
    fn resolve_route(&mut self) {
        let Some((recorder, slot)) = self.late_route.take() else {
            return;
        };
        let (Some(route), Some(p)) = (slot.get(), self.pending.as_mut()) else {
            return;
        };
        if let Some((_, config)) = recorder.active() {
            if !config.get().ignore_routes.is_empty() && config.get().is_ignored(Some(route), "") {
                std::mem::replace(&mut p.event, Event::inert()).discard();
                return;
            }
        }
        let name = recorder.shared.names.get_joined(p.method, route);
        p.event.set_name(name);
        p.event.set("http.route", route);
    }

    /// The request's event context: make it current while the handler runs.
    #[inline]
    pub fn context(&self) -> Option<SpanContext> {
        self.pending.as_ref().and_then(|p| p.ctx)
    }

    /// The request's event, to add framework-specific attributes.
    pub fn event_mut(&mut self) -> Option<&mut Event> {
        self.pending.as_mut().map(|p| &mut p.event)
    }

    /// The response head is known: records the status (and headers, if configured); returns the
    /// record of the body, which finishes the event when the body ends.
    pub fn respond(mut self, status: u16, headers: &dyn Headers) -> BodyRecord {
        self.resolve_route();
        let Some(mut p) = self.pending.take() else {
            return BodyRecord { state: None };
        };
        if p.response_code {
            p.event.set("http.response.status_code", i64::from(status));
        }
        if status >= 500 || (status >= 400 && p.client_errors_are_errors) {
            p.event.set_status(Status::Error);
        }
        if let Some(config) = &p.headers_config {
            capture_headers(&mut p.event, "http.response.header.", headers, config);
        }
        let no_body = p.head || status < 200 || status == 204 || status == 304;
        BodyRecord {
            state: Some(BodyState {
                event: p.event,
                ctx: p.ctx,
                bytes: 0,
                no_body,
                capture_max: p.body_capture,
                captured: Vec::new(),
            }),
        }
    }

    /// The handler failed without a response: records the error and finishes the event.
    pub fn failed(mut self, error_type: &'static str, message: &dyn fmt::Display) {
        self.resolve_route();
        if let Some(mut p) = self.pending.take() {
            p.event.record_error(error_type, message);
            p.event.finish();
        }
    }

    /// The handler panicked: records the panic (error type `panic`) and finishes the event. The
    /// caller then resumes the panic.
    pub fn panicked(mut self, payload: &(dyn Any + Send)) {
        self.resolve_route();
        if let Some(mut p) = self.pending.take() {
            p.event.record_error("panic", panic_message(payload));
            p.event.finish();
        }
    }
}

impl Drop for RequestRecord {
    fn drop(&mut self) {
        self.resolve_route();
        if let Some(mut p) = self.pending.take() {
            p.event.set("rustmon.cancelled", true);
            p.event.finish();
        }
    }
}

struct BodyState {
    event: Event,
    ctx: Option<SpanContext>,
    bytes: u64,
    /// Responses that carry no body (HEAD, 1xx, 204, 304): dropping them unread is normal.
    no_body: bool,
    capture_max: usize,
    captured: Vec<u8>,
}

/// A response body being sent: counts (and, if configured, copies the first) bytes, and finishes
/// the event at [`end`](BodyRecord::end). Dropped before the end, the event is recorded with
/// `rustmon.cancelled = true` (unless the response has no body: HEAD, 1xx, 204, 304).
#[must_use = "dropping a BodyRecord before `end` records the request as cancelled"]
pub struct BodyRecord {
    state: Option<BodyState>,
}

impl fmt::Debug for BodyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyRecord")
            .field("bytes", &self.state.as_ref().map(|s| s.bytes))
            .finish_non_exhaustive()
    }
}

impl BodyRecord {
    /// The request's event context: make it current while the body is produced.
    #[inline]
    pub fn context(&self) -> Option<SpanContext> {
        self.state.as_ref().and_then(|s| s.ctx)
    }

    /// Whether the event is still open.
    #[inline]
    pub fn is_open(&self) -> bool {
        self.state.is_some()
    }

    /// Counts a chunk of body bytes that went out.
    #[inline]
    pub fn data(&mut self, chunk: &[u8]) {
        if let Some(s) = &mut self.state {
            s.bytes += chunk.len() as u64;
            if s.captured.len() < s.capture_max {
                let room = s.capture_max - s.captured.len();
                s.captured
                    .extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
        }
    }

    /// Whether body bytes are still being copied (capture on and not full yet).
    #[inline]
    pub fn wants_bytes(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| s.captured.len() < s.capture_max)
    }

    /// Counts `n` body bytes that went out, without copying any.
    #[inline]
    pub fn count(&mut self, n: usize) {
        if let Some(s) = &mut self.state {
            s.bytes += n as u64;
        }
    }

    /// The body ended: finishes the event.
    pub fn end(mut self) {
        self.close(false);
    }

    /// The body is produced out of the middleware's sight (poem turns an endpoint's `Err` into
    /// the response after every middleware): finishes the event without claiming a body size or
    /// a captured body.
    pub fn end_unseen(mut self) {
        if let Some(s) = self.state.take() {
            s.event.finish();
        }
    }

    /// The body failed while streaming: records the error and finishes the event.
    pub fn failed(mut self, error_type: &'static str, message: &dyn fmt::Display) {
        if let Some(s) = &mut self.state {
            s.event.record_error(error_type, message);
        }
        self.close(false);
    }

    /// Producing the body panicked: records it and finishes the event; the caller resumes the
    /// panic.
    pub fn panicked(mut self, payload: &(dyn Any + Send)) {
        if let Some(s) = &mut self.state {
            s.event.record_error("panic", panic_message(payload));
        }
        self.close(false);
    }

    fn close(&mut self, cancelled: bool) {
        if let Some(mut s) = self.state.take() {
            s.event.set("http.response.body.size", s.bytes);
            if s.capture_max > 0 {
                let body = String::from_utf8_lossy(&s.captured).into_owned();
                s.event.set("http.response.body", body);
            }
            if cancelled {
                s.event.set("rustmon.cancelled", true);
            }
            s.event.finish();
        }
    }
}

impl Drop for BodyRecord {
    fn drop(&mut self) {
        let cancelled = self.state.as_ref().is_some_and(|s| !s.no_body);
        self.close(cancelled);
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
        assert_eq!(method_str("GET"), "GET");
        assert_eq!(method_str("BREW"), "_OTHER");
    }
}
