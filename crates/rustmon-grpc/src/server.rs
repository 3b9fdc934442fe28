//! [`GrpcServerLayer`], [`GrpcServer`] and [`ServerFuture`]: one server event per gRPC call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use rustmon_core::context::{self, SpanContext};
use rustmon_core::{Kind, Monitor, PluginConfig};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{CallState, RequestBody, ResponseBody};
use crate::config::GrpcConfig;
use crate::frames::MessageCounter;
use crate::names::split_path;
use crate::shared::Shared;

/// A tower [`Layer`] for tonic servers (or any gRPC-over-HTTP/2 server) recording one
/// [`Kind::Server`] event per call.
///
/// The event is named `package.Service/Method`, continues the caller's trace from the
/// `traceparent` metadata entry, and is current while the handler runs and while its response
/// stream is polled (events the handler starts are its children). It ends when the response
/// stream ends, with `rpc.grpc.status_code` from the trailers (or the trailers-only response),
/// and the number of messages received and sent. Status codes that point at the server
/// (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`) make
/// the event an error; the others (`NOT_FOUND`, `INVALID_ARGUMENT`, …) are recorded only.
///
/// Requests reach the inner service with their body wrapped in a [`RequestBody`] (counted, not
/// copied): tonic's router accepts any body type.
///
/// # Examples
/// ```
/// use rustmon_grpc::GrpcServerLayer;
/// # fn build() {
/// let server = tonic::transport::Server::builder().layer(GrpcServerLayer::new());
/// # let _ = server; }
/// ```
#[derive(Clone)]
pub struct GrpcServerLayer {
    shared: Arc<Shared>,
}

impl fmt::Debug for GrpcServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServerLayer")
            .field("monitor", &self.shared.has_monitor())
            .finish()
    }
}

impl Default for GrpcServerLayer {
    fn default() -> Self {
        GrpcServerLayer::new()
    }
}

impl GrpcServerLayer {
    /// A layer recording into the global monitor.
    pub fn new() -> Self {
        GrpcServerLayer {
            shared: Arc::new(Shared::new(None)),
        }
    }

    /// Records into `monitor` instead of the global one.
    pub fn monitor(self, monitor: Monitor) -> Self {
        GrpcServerLayer {
            shared: Arc::new(Shared::new(Some(monitor))),
        }
    }
}

impl<S> Layer<S> for GrpcServerLayer {
    type Service = GrpcServer<S>;

    fn layer(&self, inner: S) -> GrpcServer<S> {
        GrpcServer {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`GrpcServerLayer`] wraps around a gRPC server `S`.
#[derive(Clone)]
pub struct GrpcServer<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for GrpcServer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcServer")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B, ResBody> Service<Request<B>> for GrpcServer<S>
where
    S: Service<Request<RequestBody<B>>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    B: Body<Data = Bytes>,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: fmt::Display,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ServerFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Some((state, requests)) = self.start(&req) else {
            return ServerFuture {
                inner: self.inner.call(req.map(|b| RequestBody::new(b, None))),
                state: None,
            };
        };
        let req = req.map(|b| RequestBody::new(b, requests));
        let inner = {
            let _current = context::attach(state.ctx);
            self.inner.call(req)
        };
        ServerFuture {
            inner,
            state: Some(state),
        }
    }
}

impl<S> GrpcServer<S> {
    fn start<B>(&self, req: &Request<B>) -> Option<(CallState, Option<Arc<AtomicU64>>)> {
        let (monitor, config) = self.shared.active()?;
        let config = config.get();
        let path = req.uri().path();
        let split = split_path(path);
        if let Some((service, method)) = split {
            if !config.ignored_methods.is_empty() && config.is_ignored(service, method) {
                return None;
            }
        }
        let parent = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(|tp| {
                let ts = req
                    .headers()
                    .get("tracestate")
                    .and_then(|v| v.to_str().ok());
                SpanContext::from_headers(tp, ts)
            })
            .or_else(context::current);
        let mut event = monitor
            .start_event_with_parent(Kind::Server, self.shared.names.get(path), parent)
            .with_plugin(GrpcConfig::NAME);
        if !event.is_recording() {
            return None;
        }
        event.set("rpc.system", "grpc");
        if let Some((service, method)) = split {
            event.set("rpc.service", service.to_owned());
            event.set("rpc.method", method.to_owned());
        }
        let requests = config
            .record_message_counts
            .then(|| Arc::new(AtomicU64::new(0)));
        Some((
            CallState {
                ctx: event.context(),
                event,
                server: true,
                counter: config.record_message_counts.then(MessageCounter::default),
                request_messages: requests.clone(),
                status: None,
                message: None,
                failed: false,
            },
            requests,
        ))
    }
}

pin_project! {
    /// The future of [`GrpcServer`]: the handler's response, with the call's event current while
    /// it is polled. Dropped before completion, the event is recorded with
    /// `rustmon.cancelled = true`.
    pub struct ServerFuture<F> {
        #[pin]
        inner: F,
        state: Option<CallState>,
    }

    impl<F> PinnedDrop for ServerFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut s) = this.project().state.take() {
                s.event.set("rustmon.cancelled", true);
                s.finish();
            }
        }
    }
}

impl<F> fmt::Debug for ServerFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ServerFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: fmt::Display,
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let ctx = this.state.as_ref().map(|s| s.ctx);
        let result = {
            let _current = ctx.map(context::attach);
            std::task::ready!(this.inner.poll(cx))
        };
        let Some(state) = this.state.take() else {
            return Poll::Ready(result.map(|r| r.map(ResponseBody::passthrough)));
        };
        Poll::Ready(crate::client::respond(state, result))
    }
}
