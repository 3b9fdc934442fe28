//! salvo monitoring: a hoop (middleware) recording one server event per request.
//!
//! [`Monitor`] is a salvo [`Handler`] used as a hoop
//! (`Service::new(router).hoop(rustmon_salvo::Monitor::new())`). Each request becomes a
//! [`Kind::Server`](rustmon_core::Kind::Server) event recorded exactly as the tower layer records
//! it (see `rustmon-tower`): named by method and salvo's matched route path
//! ([`Request::matched_path`]: `GET /orders/{id}`, or `GET unmatched`), with the OpenTelemetry
//! HTTP attributes, status from the status class, the live
//! [`HttpServerConfig`](rustmon_tower::HttpServerConfig) (plugin `http_server`: headers with
//! redaction, remote address, body capture, ignored routes), the caller's `traceparent`
//! continued, the event current while the handlers and the response body run, panics recorded
//! then resumed, and requests dropped before completion recorded with `rustmon.cancelled = true`.
//!
//! salvo routes before it runs hoops, so the route is known when the request starts. A response
//! without a body of its own (an error status left to salvo's catcher) is recorded as it is
//! finally sent, after the catcher, through salvo's response observers.
//!
//! # Examples
//! ```
//! use salvo_core::prelude::*;
//!
//! #[handler]
//! async fn order(req: &mut Request) -> String {
//!     format!("order {}", req.param::<u64>("id").unwrap_or_default())
//! }
//!
//! let router = Router::with_path("orders/{id}").get(order);
//! let service = Service::new(router).hoop(rustmon_salvo::Monitor::new());
//! // Server::new(TcpListener::new("0.0.0.0:5800").bind().await).serve(service).await;
//! # let _ = service;
//! ```

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use pin_project_lite::pin_project;
use rustmon_core::context;
use rustmon_tower::{RequestHead, RequestRecord, ResponseBody, ServerRecorder, protocol_version};
use salvo_core::http::header;
use salvo_core::http::uri::Scheme;
use salvo_core::http::{ResBody, StatusCode};
use salvo_core::{Depot, FlowCtrl, Handler, Request, Response, async_trait};

/// The salvo hoop: records one server event per request.
///
/// Events go to the global monitor unless [`with_monitor`](Monitor::with_monitor) names one.
/// Add it to the [`Service`](salvo_core::Service) (`Service::hoop`), which runs it for every
/// request, unmatched ones included; a hoop on a `Router` runs only for requests that router
/// matched.
///
/// # Examples
/// ```
/// use salvo_core::prelude::*;
///
/// #[handler]
/// async fn hello() -> &'static str {
///     "hello"
/// }
///
/// let service = Service::new(Router::new().get(hello)).hoop(rustmon_salvo::Monitor::new());
/// # let _ = service;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Monitor {
    recorder: ServerRecorder,
}

impl Monitor {
    /// The hoop, recording into the global monitor.
    pub fn new() -> Self {
        Monitor::default()
    }

    /// Records into `monitor` instead of the global one.
    pub fn with_monitor(monitor: rustmon_core::Monitor) -> Self {
        Monitor {
            recorder: ServerRecorder::new(Some(monitor)),
        }
    }

    /// Starts the request's event, or `None` when not monitoring or the route is ignored.
    fn start(&self, req: &Request, res: &Response) -> Option<RequestRecord> {
        let matched = req.matched_path();
        // salvo sets the matched path only for a request a route matched; the root route's is
        // empty too, but an unmatched request reaches the service's hoops already answered
        // 404 or 405.
        let unmatched = matched.is_empty()
            && matches!(
                res.status_code,
                Some(StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED)
            );
        let mut stack = [0u8; 128];
        let owned: String;
        let route = if unmatched {
            None
        } else if matched.len() < stack.len() {
            stack[0] = b'/';
            stack[1..=matched.len()].copy_from_slice(matched.as_bytes());
            std::str::from_utf8(&stack[..=matched.len()]).ok()
        } else {
            owned = format!("/{matched}");
            Some(owned.as_str())
        };
        let headers = req.headers();
        let remote = req.remote_addr();
        let head = RequestHead {
            method: req.method().as_str(),
            route,
            path: req.uri().path(),
            https: *req.scheme() == Scheme::HTTPS,
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
            client_addr: remote
                .as_ipv4()
                .map(|a| SocketAddr::V4(*a))
                .or_else(|| remote.as_ipv6().map(|a| SocketAddr::V6(*a))),
        };
        self.recorder.start(&head, headers)
    }
}

#[async_trait]
impl Handler for Monitor {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        let Some(record) = self.start(req, res) else {
            ctrl.call_next(req, depot, res).await;
            return;
        };
        // Dropped with this future (the client went away), the record marks the request
        // cancelled.
        let mut record = Some(record);
        Monitored {
            inner: ctrl.call_next(req, depot, res),
            record: &mut record,
        }
        .await;
        if let Some(record) = record {
            respond(record, req, res);
        }
    }
}

/// Records the response once the hoops and the handler are done.
fn respond(mut record: RequestRecord, req: &mut Request, res: &mut Response) {
    if let ResBody::Error(e) = &res.body
        && e.code.is_server_error()
        && let Some(ev) = record.event_mut()
    {
        ev.record_error("salvo::StatusError", e);
    }
    if res.body.is_none() || res.body.is_error() {
        // salvo's catcher writes the body of an error status after the hoops: record the
        // response as it is finally sent.
        if let Err(observer) = req.try_on_response(move |res: &Response| respond_final(record, res))
        {
            observer(res);
        }
        return;
    }
    let status = res.status_code.unwrap_or(StatusCode::OK);
    let body = record.respond(status.as_u16(), res.headers());
    let inner = std::mem::take(&mut res.body);
    res.body = ResBody::Boxed(Box::pin(
        ResponseBody::monitored(inner, body).map_err(salvo_core::BoxedError::from),
    ));
}

/// Records a response whose body salvo (its catcher) made after the hoops; such bodies are in
/// memory, so their size is known.
fn respond_final(record: RequestRecord, res: &Response) {
    let status = res.status_code.unwrap_or(match &res.body {
        ResBody::Error(e) => e.code,
        ResBody::None => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    });
    let mut body = record.respond(status.as_u16(), res.headers());
    match &res.body {
        ResBody::Once(bytes) => body.data(bytes),
        ResBody::Chunks(chunks) => chunks.iter().for_each(|c| body.data(c)),
        _ => {}
    }
    body.end();
}

pin_project! {
    /// The rest of the chain, with the request's event current while it is polled; a panic is
    /// recorded on the event, then resumed.
    struct Monitored<'r, F> {
        #[pin]
        inner: F,
        record: &'r mut Option<RequestRecord>,
    }
}

impl<F> fmt::Debug for Monitored<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitored").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Monitored<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let polled = {
            let _current = context::attach(this.record.as_ref().and_then(|r| r.context()));
            catch_unwind(AssertUnwindSafe(|| this.inner.poll(cx)))
        };
        match polled {
            Ok(p) => p,
            Err(panic) => {
                if let Some(record) = this.record.take() {
                    record.panicked(&*panic);
                }
                resume_unwind(panic)
            }
        }
    }
}
