//! What both integrations share: starting a client event from a request, and recording the
//! response or the error on it.

use std::borrow::Cow;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use rustmon_core::{ConfigHandle, Event, Kind, Monitor, PluginConfig, SpanContext, Status};

use crate::config::HttpClientConfig;
use crate::error::{classify_error, message_chain};
use rustmon_core::intern::Interner;

/// How many distinct event names (`GET api.example.com`) a client interns; past that, names are
/// allocated per request.
const MAX_NAMES: usize = 1024;
use crate::timing::Slot;
use crate::url::redact_url;

/// A low-cardinality template for a request's target (`/users/{id}`), naming its event
/// `GET /users/{id}` instead of `GET api.example.com`; recorded as `url.template`.
///
/// Put it in the request's extensions (for reqwest-middleware, with
/// `RequestBuilder::with_extension`; for hyper, `request.extensions_mut().insert(..)`).
///
/// # Examples
/// ```
/// use rustmon_http_client::UrlTemplate;
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(UrlTemplate::new("/users/{id}"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlTemplate(pub Cow<'static, str>);

impl UrlTemplate {
    /// A template; use placeholders, never raw ids.
    pub fn new(template: impl Into<Cow<'static, str>>) -> Self {
        UrlTemplate(template.into())
    }
}

/// The name of requests whose URL has no host.
pub(crate) const NO_HOST: &str = "unknown";

/// The monitor an integration records into, its configuration and its interned names.
pub(crate) struct Shared {
    monitor: Option<Monitor>,
    config: OnceLock<ConfigHandle<HttpClientConfig>>,
    names: Interner,
}

impl Shared {
    pub(crate) fn new(monitor: Option<Monitor>) -> Shared {
        let config = OnceLock::new();
        if let Some(m) = &monitor {
            let _ = config.set(m.config::<HttpClientConfig>());
        }
        Shared {
            monitor,
            config,
            names: Interner::new(MAX_NAMES, usize::MAX),
        }
    }

    pub(crate) fn has_monitor(&self) -> bool {
        self.monitor.is_some()
    }

    #[inline]
    fn active(&self) -> Option<(&Monitor, &ConfigHandle<HttpClientConfig>)> {
        let m = match &self.monitor {
            Some(m) => m,
            None => rustmon_core::global()?,
        };
        if !m.is_enabled() {
            return None;
        }
        Some((
            m,
            self.config.get_or_init(|| m.config::<HttpClientConfig>()),
        ))
    }

    /// Starts the event for a request, or `None` when not monitoring (disabled, suppressed, or an
    /// ignored host). See [`Pending::inject`] for `traceparent`.
    pub(crate) fn start(&self, req: RequestInfo<'_>) -> Option<Pending> {
        let (monitor, config) = self.active()?;
        let config = config.get();
        if !config.ignored_hosts.is_empty() && req.host.is_some_and(|h| config.is_ignored(h)) {
            return None;
        }
        let method = method_str(req.method);
        let target = req.template.or(req.host).unwrap_or(NO_HOST);
        let mut event = monitor
            .start_event(Kind::Client, self.names.get_joined(method, target))
            .with_plugin(HttpClientConfig::NAME);
        if !event.is_recording() {
            return None;
        }
        let start = Instant::now();
        event.set("http.request.method", method);
        if method == "_OTHER" {
            event.set(
                "http.request.method_original",
                req.method.as_str().to_owned(),
            );
        }
        let full = match req.url {
            Url::Str(s) => redact_url(s).into_owned(),
            Url::Uri(u) => {
                let s = u.to_string();
                match redact_url(&s) {
                    Cow::Borrowed(_) => s,
                    Cow::Owned(o) => o,
                }
            }
        };
        event.set("url.full", full);
        if let Some(t) = req.template {
            event.set("url.template", t.to_owned());
        }
        if let Some(host) = req.host {
            event.set("server.address", host.to_owned());
        }
        if let Some(port) = req.port {
            event.set("server.port", i64::from(port));
        }
        if config.record_payload_size {
            if let Some(size) = req.body_size.or_else(|| content_length(req.headers)) {
                event.set("http.request.body.size", size);
            }
        }
        if config.request_headers {
            capture_headers(&mut event, "http.request.header.", req.headers, &config);
        }
        let ctx = event.context();
        let timings = &config.timings;
        let slot = (timings.dns || timings.connect).then(Slot::new);
        Some(Pending {
            event,
            ctx,
            slot,
            start,
            done: false,
            propagate: config.propagate_context,
            head: req.method == Method::HEAD,
            record_dns: timings.dns,
            record_connect: timings.connect,
            record_ttfb: timings.time_to_first_byte,
            record_size: config.record_payload_size,
            client_errors_are_errors: config.client_errors_are_errors,
            headers_config: config
                .response_headers
                .then(|| arc_swap::Guard::into_inner(config)),
        })
    }
}

/// What [`Shared::start`] needs to know about a request.
pub(crate) struct RequestInfo<'a> {
    pub(crate) method: &'a Method,
    pub(crate) url: Url<'a>,
    pub(crate) host: Option<&'a str>,
    pub(crate) port: Option<u16>,
    pub(crate) template: Option<&'a str>,
    pub(crate) body_size: Option<u64>,
    pub(crate) headers: &'a HeaderMap,
}

/// A request's URL, turned into a string only when the request is recorded.
pub(crate) enum Url<'a> {
    /// Already a string (reqwest).
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    Str(&'a str),
    /// An `http::Uri` (tower clients).
    Uri(&'a http::Uri),
}

/// Sets `traceparent` to `ctx` (replacing any), and `tracestate` to the trace's unless the
/// caller set one.
fn inject(ctx: &SpanContext, headers: &mut HeaderMap) {
    ctx.propagation_headers(|name, value| {
        let name = HeaderName::from_static(name);
        if name == "tracestate" && headers.contains_key(&name) {
            return;
        }
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
    });
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The method as a static string; unknown methods are `_OTHER`, keeping names low-cardinality.
#[inline]
pub(crate) fn method_str(m: &Method) -> &'static str {
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

const REDACTED_HEADER: &str = "[REDACTED]";

fn capture_headers(
    event: &mut Event,
    prefix: &str,
    headers: &HeaderMap,
    config: &HttpClientConfig,
) {
    for name in headers.keys() {
        let n = name.as_str();
        if !config.captures_header(n) {
            continue;
        }
        let value = if config.redacts_header(n) {
            REDACTED_HEADER.to_owned()
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

/// A request in flight: its event and what the response stage needs.
pub(crate) struct Pending {
    pub(crate) event: Event,
    pub(crate) ctx: Option<SpanContext>,
    pub(crate) slot: Option<Arc<Slot>>,
    start: Instant,
    done: bool,
    propagate: bool,
    head: bool,
    record_dns: bool,
    record_connect: bool,
    record_ttfb: bool,
    pub(crate) record_size: bool,
    client_errors_are_errors: bool,
    headers_config: Option<Arc<HttpClientConfig>>,
}

impl Pending {
    /// Sets `traceparent` in the request's headers (when configured), so that the callee
    /// continues the trace as a child of this event.
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        if let (true, Some(ctx)) = (self.propagate, &self.ctx) {
            inject(ctx, headers);
        }
    }

    /// A second handle on the timing slot, for the future that polls the inner client.
    pub(crate) fn slot_for_inner(&self) -> Option<Arc<Slot>> {
        self.slot.clone()
    }

    fn record_timings(&mut self, headers_arrived: bool) {
        if headers_arrived && self.record_ttfb {
            self.event.set(
                "rustmon.http.time_to_first_byte",
                self.start.elapsed().as_secs_f64(),
            );
        }
        if let Some(slot) = &self.slot {
            if self.record_dns {
                if let Some(n) = slot.dns_nanos() {
                    self.event.set("rustmon.http.dns.duration", n as f64 / 1e9);
                }
            }
            if self.record_connect {
                if let Some(n) = slot.connect_nanos() {
                    self.event
                        .set("rustmon.http.connect.duration", n as f64 / 1e9);
                }
            }
        }
    }

    /// Records the response head. Returns whether the response has no body (the event can end).
    pub(crate) fn on_response(
        &mut self,
        status: u16,
        headers: &HeaderMap,
        peer: Option<SocketAddr>,
    ) -> bool {
        self.record_timings(true);
        self.event
            .set("http.response.status_code", i64::from(status));
        if status >= 500 || (status >= 400 && self.client_errors_are_errors) {
            self.event.set_status(Status::Error);
            self.event.set("error.type", status.to_string());
        }
        if let Some(peer) = peer {
            self.event
                .set("network.peer.address", peer.ip().to_string());
            self.event.set("network.peer.port", i64::from(peer.port()));
        }
        if let Some(config) = self.headers_config.take() {
            capture_headers(&mut self.event, "http.response.header.", headers, &config);
        }
        if self.record_size {
            if let Some(len) = content_length(headers) {
                self.event.set("http.response.body.size", len);
            }
        }
        self.head || status < 200 || status == 204 || status == 304
    }

    /// Records a failed request and finishes the event.
    pub(crate) fn on_error(mut self, err: &(dyn Error + 'static)) {
        self.record_timings(false);
        let kind = match &self.slot {
            Some(s) if s.dns_failed() => "dns",
            _ => classify_error(err),
        };
        let kind = match (kind, &self.slot) {
            ("_OTHER", Some(s)) if s.connect_failed() => "connect",
            (k, _) => k,
        };
        self.event.set("error.type", kind);
        self.event.record_error(kind, message_chain(err));
        self.done = true;
    }

    /// Records a redirect followed inside the client (`rustmon.http.redirected`, with the final
    /// URL, redacted, as `rustmon.http.final_url`).
    #[cfg(feature = "reqwest")]
    pub(crate) fn on_redirected(&mut self, final_url: &str) {
        self.event.set("rustmon.http.redirected", true);
        self.event
            .set("rustmon.http.final_url", redact_url(final_url).into_owned());
    }

    /// Takes the event out (to end with the response body).
    pub(crate) fn into_event(mut self) -> Event {
        self.done = true;
        std::mem::replace(&mut self.event, Event::inert())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            // Dropped before a response or an error: the caller gave up (a timeout around the
            // client, a cancelled task).
            self.record_timings(false);
            self.event.set("rustmon.cancelled", true);
        }
    }
}
