//! [`HttpClientLayer`], [`HttpClient`] and [`ResponseFuture`]: one client event per request sent
//! through a tower HTTP client service (hyper-util's legacy `Client`, or any
//! `Service<http::Request<B>, Response = http::Response<R>>`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use rustmon_core::Monitor;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{BodyState, ResponseBody};
use crate::error::ClientError;
use crate::record::{Pending, RequestInfo, Shared, Url, UrlTemplate};
use crate::timing::Scoped;
use crate::url::default_port;

/// A tower [`Layer`] recording one [`Kind::Client`](rustmon_core::Kind::Client) event per
/// request sent through the wrapped HTTP client service.
///
/// The event (named `GET api.example.com`, or `GET {template}` with a [`UrlTemplate`] extension)
/// is a child of the caller's current context, and its `traceparent` is injected into the
/// request. It ends when the response body has been read (or dropped), so its duration covers the
/// whole exchange; `rustmon.http.time_to_first_byte` marks the response head. Connection timings
/// are recorded when the client's connector is wrapped in
/// [`ConnectTiming`](crate::ConnectTiming) (see [`timed_http_connector`](crate::timed_http_connector)).
///
/// Place it inside retry and redirect-following layers so that each attempt or hop is its own
/// event. Events go to the global monitor unless [`monitor`](HttpClientLayer::monitor) names one.
///
/// # Examples
/// ```
/// # #[cfg(feature = "hyper")] {
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use rustmon_http_client::{timed_http_connector, HttpClientLayer};
/// use tower_layer::Layer;
///
/// let client = Client::builder(TokioExecutor::new())
///     .build::<_, http_body_util::Empty<bytes::Bytes>>(timed_http_connector());
/// let client = HttpClientLayer::new().layer(client);
/// # let _ = client; }
/// ```
#[derive(Clone)]
pub struct HttpClientLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for HttpClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientLayer")
            .field("monitor", &self.shared.has_monitor())
            .finish()
    }
}

impl Default for HttpClientLayer {
    fn default() -> Self {
        HttpClientLayer::new()
    }
}

impl HttpClientLayer {
    /// A layer recording into the global monitor.
    pub fn new() -> Self {
        HttpClientLayer {
            shared: Arc::new(Shared::new(None)),
        }
    }

    /// Records into `monitor` instead of the global one.
    pub fn monitor(self, monitor: Monitor) -> Self {
        HttpClientLayer {
            shared: Arc::new(Shared::new(Some(monitor))),
        }
    }
}

impl<S> Layer<S> for HttpClientLayer {
    type Service = HttpClient<S>;

    fn layer(&self, inner: S) -> HttpClient<S> {
        HttpClient {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`HttpClientLayer`] wraps around an HTTP client `S`.
#[derive(Clone)]
pub struct HttpClient<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for HttpClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> HttpClient<S> {
    /// The wrapped client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpClient<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: ClientError,
    ReqBody: Body,
    ResBody: Body,
    ResBody::Error: fmt::Display,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let body_size = req.body().size_hint().exact();
        let (mut parts, body) = req.into_parts();
        let pending = {
            let uri = &parts.uri;
            let template = parts.extensions.get::<UrlTemplate>();
            self.shared.start(RequestInfo {
                method: &parts.method,
                url: Url::Uri(uri),
                host: uri.host(),
                port: uri.port_u16().or_else(|| default_port(uri.scheme_str())),
                template: template.map(|t| &*t.0),
                body_size,
                headers: &parts.headers,
            })
        };
        if let Some(p) = &pending {
            p.inject(&mut parts.headers);
        }
        let req = Request::from_parts(parts, body);
        let Some(pending) = pending else {
            return ResponseFuture {
                inner: Scoped::new(self.inner.call(req), None, None),
                state: None,
            };
        };
        let mut slot = pending.slot_for_inner();
        let inner = {
            let _ctx = rustmon_core::context::attach(pending.ctx);
            let _slot = crate::timing::Attached::new(&mut slot);
            self.inner.call(req)
        };
        ResponseFuture {
            inner: Scoped::new(inner, pending.ctx, slot),
            state: Some(pending),
        }
    }
}

pin_project! {
    /// The future of [`HttpClient`]: the inner client's response, with the request's event and
    /// timing slot current while it is polled. Dropped before completion, the event is recorded
    /// with `rustmon.cancelled = true`.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: Scoped<F>,
        state: Option<Pending>,
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
    E: ClientError,
    B: Body,
    B::Error: fmt::Display,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let Some(mut pending) = this.state.take() else {
            return Poll::Ready(result.map(|r| r.map(ResponseBody::passthrough)));
        };
        match result {
            Ok(resp) => {
                let no_body = pending.on_response(resp.status().as_u16(), resp.headers(), None);
                let count = pending.record_size;
                let event = pending.into_event();
                if no_body || resp.body().is_end_stream() {
                    let mut event = event;
                    if count && !no_body {
                        event.set("http.response.body.size", 0_u64);
                    }
                    event.finish();
                    return Poll::Ready(Ok(resp.map(ResponseBody::passthrough)));
                }
                let state = BodyState::new(event, count);
                Poll::Ready(Ok(resp.map(|b| ResponseBody::monitored(b, state))))
            }
            Err(e) => {
                pending.on_error(e.as_error());
                Poll::Ready(Err(e))
            }
        }
    }
}
