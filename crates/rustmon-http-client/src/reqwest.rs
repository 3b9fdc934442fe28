//! [`ReqwestMiddleware`] for reqwest-middleware, and [`instrument_reqwest`] for connection
//! timings.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use http::Extensions;
use http_body::Body as _;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name as HyperName};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::{Request, Response, ResponseBuilderExt};
use reqwest_middleware::{Middleware, Next};
use rustmon_core::Monitor;
use tower_service::Service;

use crate::body::{BodyState, ResponseBody};
use crate::record::{RequestInfo, Shared, Url, UrlTemplate};
use crate::timing::{ConnectTimingLayer, DnsError, DnsTimer, Scoped};

/// A reqwest-middleware [`Middleware`] recording one [`Kind::Client`](rustmon_core::Kind::Client)
/// event per request.
///
/// The event (named `GET api.example.com`, or `GET {template}` with a [`UrlTemplate`]
/// extension) is a child of the caller's current context and its `traceparent` is injected. It
/// ends when the response body has been read (or dropped): the response's body is wrapped (the
/// `Response` keeps its URL, status, headers and remote address), so its duration covers the
/// whole exchange and `http.response.body.size` counts the bytes read;
/// `rustmon.http.time_to_first_byte` marks the response head. DNS and connect timings need a
/// client built with [`instrument_reqwest`].
///
/// **Retries**: each call of this middleware is its own event. Put it after a retry middleware
/// (`.with(retry).with(rustmon)`) to see every attempt; attempts after the first carry
/// `http.request.resend_count`. **Redirects** are followed inside reqwest's client, below any
/// middleware: one event covers the chain and, when the final URL differs, records
/// `rustmon.http.redirected = true` and `rustmon.http.final_url`. To see each hop as its own
/// event, build the client with `redirect::Policy::none()` and follow redirects in a middleware
/// placed before this one.
///
/// # Examples
/// ```
/// use rustmon_http_client::{instrument_reqwest, ReqwestMiddleware};
/// let client = instrument_reqwest(reqwest::Client::builder()).build().unwrap();
/// let client = reqwest_middleware::ClientBuilder::new(client)
///     .with(ReqwestMiddleware::new())
///     .build();
/// # let _ = client;
/// ```
#[derive(Clone)]
pub struct ReqwestMiddleware {
    shared: Arc<Shared>,
}

impl fmt::Debug for ReqwestMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestMiddleware")
            .field("monitor", &self.shared.has_monitor())
            .finish()
    }
}

impl Default for ReqwestMiddleware {
    fn default() -> Self {
        ReqwestMiddleware::new()
    }
}

impl ReqwestMiddleware {
    /// A middleware recording into the global monitor.
    pub fn new() -> Self {
        ReqwestMiddleware {
            shared: Arc::new(Shared::new(None)),
        }
    }

    /// Records into `monitor` instead of the global one.
    pub fn monitor(self, monitor: Monitor) -> Self {
        ReqwestMiddleware {
            shared: Arc::new(Shared::new(Some(monitor))),
        }
    }
}

/// How many times this middleware has seen the request (in the middleware's extensions, which a
/// retry middleware hands to every attempt).
#[derive(Clone, Copy, Debug)]
struct Attempts(u32);

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s.as_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[async_trait::async_trait]
impl Middleware for ReqwestMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let attempt = extensions.get::<Attempts>().map_or(0, |a| a.0);
        extensions.insert(Attempts(attempt + 1));
        let url = req.url();
        let pending = self.shared.start(RequestInfo {
            method: req.method(),
            url: Url::Str(url.as_str()),
            host: url.host_str(),
            port: url.port_or_known_default(),
            template: extensions.get::<UrlTemplate>().map(|t| &*t.0),
            body_size: req
                .body()
                .and_then(|b| b.as_bytes())
                .map(|b| b.len() as u64),
            headers: req.headers(),
        });
        let Some(mut pending) = pending else {
            return next.run(req, extensions).await;
        };
        let url_hash = fnv(req.url().as_str());
        pending.inject(req.headers_mut());
        if attempt > 0 {
            pending
                .event
                .set("http.request.resend_count", i64::from(attempt));
        }
        let result = Scoped::new(
            next.run(req, extensions),
            pending.ctx,
            pending.slot_for_inner(),
        )
        .await;
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                pending.on_error(&e);
                return Err(e);
            }
        };
        if fnv(resp.url().as_str()) != url_hash {
            pending.on_redirected(resp.url().as_str());
        }
        let no_body =
            pending.on_response(resp.status().as_u16(), resp.headers(), resp.remote_addr());
        let count = pending.record_size;
        let event = pending.into_event();
        if no_body {
            event.finish();
            return Ok(resp);
        }
        let url = resp.url().clone();
        let (mut parts, body) = http::Response::<reqwest::Body>::from(resp).into_parts();
        if body.is_end_stream() {
            let mut event = event;
            if count {
                event.set("http.response.body.size", 0_u64);
            }
            event.finish();
            return Ok(rebuild(parts, body, url));
        }
        if let Ok(carrier) = http::Response::builder().url(url.clone()).body(()) {
            parts.extensions.extend(carrier.into_parts().0.extensions);
        }
        let body = reqwest::Body::wrap(ResponseBody::monitored(body, BodyState::new(event, count)));
        Ok(Response::from(http::Response::from_parts(parts, body)))
    }
}

fn rebuild(mut parts: http::response::Parts, body: reqwest::Body, url: reqwest::Url) -> Response {
    if let Ok(carrier) = http::Response::builder().url(url).body(()) {
        parts.extensions.extend(carrier.into_parts().0.extensions);
    }
    Response::from(http::Response::from_parts(parts, body))
}

/// Adds DNS and connect timings to a reqwest client: installs [`TimedReqwestResolver`] (the
/// system resolver, `getaddrinfo`, timed) and [`ConnectTimingLayer`] around reqwest's
/// connector. Overrides set with `ClientBuilder::resolve` still apply; do not call
/// `dns_resolver` after this.
///
/// # Examples
/// ```
/// let client = rustmon_http_client::instrument_reqwest(reqwest::Client::builder())
///     .build()
///     .unwrap();
/// # let _ = client;
/// ```
pub fn instrument_reqwest(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder
        .dns_resolver(Arc::new(TimedReqwestResolver::default()))
        .connector_layer(ConnectTimingLayer)
}

/// reqwest's system resolver (`getaddrinfo` on a blocking thread), timed: records
/// `rustmon.http.dns.duration` on the request's event and reports failures as [`DnsError`].
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use rustmon_http_client::TimedReqwestResolver;
/// let builder = reqwest::Client::builder().dns_resolver(Arc::new(TimedReqwestResolver::default()));
/// # let _ = builder;
/// ```
#[derive(Clone, Debug)]
pub struct TimedReqwestResolver {
    inner: GaiResolver,
}

impl Default for TimedReqwestResolver {
    fn default() -> Self {
        TimedReqwestResolver {
            inner: GaiResolver::new(),
        }
    }
}

impl Resolve for TimedReqwestResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let timer = DnsTimer::start();
        let mut gai = self.inner.clone();
        let parsed = HyperName::from_str(name.as_str());
        Box::pin(async move {
            let result = match parsed {
                Ok(n) => gai.call(n).await.map_err(DnsError::new),
                Err(e) => Err(DnsError::new(e)),
            };
            timer.done(result.is_ok());
            match result {
                Ok(addrs) => Ok(Box::new(addrs) as Addrs),
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}
