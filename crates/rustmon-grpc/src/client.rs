//! [`GrpcClientLayer`], [`GrpcClient`] and [`ClientFuture`]: one client event per gRPC call.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use rustmon_core::context;
use rustmon_core::{Kind, Monitor, PluginConfig};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::{CallState, RequestBody, ResponseBody};
use crate::config::GrpcConfig;
use crate::frames::MessageCounter;
use crate::names::split_path;
use crate::shared::Shared;

/// A tower [`Layer`] for tonic clients (around a `tonic::transport::Channel`, or any
/// `Service<http::Request<tonic::body::Body>>`) recording one [`Kind::Rpc`] event per call.
///
/// The event is named `package.Service/Method`, is a child of the caller's current context, and
/// its `traceparent` is added to the call's metadata so that the server continues the trace. It
/// ends when the response stream ends, with `rpc.grpc.status_code` and the number of messages
/// sent and received; any status other than `OK` makes it an error. Transport failures are
/// recorded with `error.type = transport`.
///
/// # Examples
/// ```
/// use rustmon_grpc::GrpcClientLayer;
/// use tower_layer::Layer;
/// # async fn connect() -> Result<(), tonic::transport::Error> {
/// let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
/// let channel = GrpcClientLayer::new().layer(channel);
/// // let client = GreeterClient::new(channel);
/// # let _ = channel; Ok(()) }
/// ```
#[derive(Clone)]
pub struct GrpcClientLayer {
    shared: Arc<Shared>,
    server: Option<Arc<(String, u16)>>,
}

impl fmt::Debug for GrpcClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClientLayer")
            .field("monitor", &self.shared.has_monitor())
            .finish()
    }
}

impl Default for GrpcClientLayer {
    fn default() -> Self {
        GrpcClientLayer::new()
    }
}

impl GrpcClientLayer {
    /// A layer recording into the global monitor.
    pub fn new() -> Self {
        GrpcClientLayer {
            shared: Arc::new(Shared::new(None)),
            server: None,
        }
    }

    /// Records into `monitor` instead of the global one.
    pub fn monitor(self, monitor: Monitor) -> Self {
        GrpcClientLayer {
            shared: Arc::new(Shared::new(Some(monitor))),
            server: self.server,
        }
    }

    /// The server's host and port, recorded as `server.address` and `server.port` (tonic's
    /// channel adds the origin to request URIs below this layer, so the layer cannot see it).
    ///
    /// # Examples
    /// ```
    /// let layer = rustmon_grpc::GrpcClientLayer::new().server("inventory.internal", 50051);
    /// # let _ = layer;
    /// ```
    pub fn server(self, host: impl Into<String>, port: u16) -> Self {
        GrpcClientLayer {
            server: Some(Arc::new((host.into(), port))),
            ..self
        }
    }
}

impl<S> Layer<S> for GrpcClientLayer {
    type Service = GrpcClient<S>;

    fn layer(&self, inner: S) -> GrpcClient<S> {
        GrpcClient {
            inner,
            shared: self.shared.clone(),
            server: self.server.clone(),
        }
    }
}

/// The service [`GrpcClientLayer`] wraps around a gRPC client transport `S`.
#[derive(Clone)]
pub struct GrpcClient<S> {
    inner: S,
    shared: Arc<Shared>,
    server: Option<Arc<(String, u16)>>,
}

impl<S: fmt::Debug> fmt::Debug for GrpcClient<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrpcClient")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ResBody> Service<Request<tonic::body::Body>> for GrpcClient<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: fmt::Display,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ClientFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<tonic::body::Body>) -> Self::Future {
        let Some((state, propagate)) = self.start(&req) else {
            return ClientFuture {
                inner: self.inner.call(req),
                state: None,
            };
        };
        if let (true, Some(ctx)) = (propagate, state.ctx) {
            ctx.propagation_headers(|name, value| {
                if let Ok(v) = HeaderValue::from_bytes(value) {
                    req.headers_mut()
                        .insert(http::HeaderName::from_static(name), v);
                }
            });
        }
        let req = match &state.request_messages {
            Some(count) => {
                let count = count.clone();
                req.map(|b| tonic::body::Body::new(RequestBody::new(b, Some(count))))
            }
            None => req,
        };
        let inner = {
            let _current = context::attach(state.ctx);
            self.inner.call(req)
        };
        ClientFuture {
            inner,
            state: Some(state),
        }
    }
}

impl<S> GrpcClient<S> {
    fn start<B>(&self, req: &Request<B>) -> Option<(CallState, bool)> {
        let (monitor, config) = self.shared.active()?;
        let config = config.get();
        let path = req.uri().path();
        let split = split_path(path);
        if let Some((service, method)) = split {
            if !config.ignored_methods.is_empty() && config.is_ignored(service, method) {
                return None;
            }
        }
        let mut event = monitor
            .start_event(Kind::Rpc, self.shared.names.get(path))
            .with_plugin(GrpcConfig::NAME);
        if !event.is_recording() {
            return None;
        }
        event.set("rpc.system", "grpc");
        if let Some((service, method)) = split {
            event.set("rpc.service", service.to_owned());
            event.set("rpc.method", method.to_owned());
        }
        match (req.uri().host(), &self.server) {
            (Some(host), _) => {
                event.set("server.address", host.to_owned());
                if let Some(port) = req.uri().port_u16() {
                    event.set("server.port", i64::from(port));
                }
            }
            (None, Some(server)) => {
                event.set("server.address", server.0.clone());
                event.set("server.port", i64::from(server.1));
            }
            (None, None) => {}
        }
        let count = config.record_message_counts;
        Some((
            CallState {
                ctx: event.context(),
                event,
                server: false,
                counter: count.then(MessageCounter::default),
                request_messages: count.then(|| Arc::new(Default::default())),
                status: None,
                message: None,
                failed: false,
            },
            config.propagate_context,
        ))
    }
}

pin_project! {
    /// The future of [`GrpcClient`]. Dropped before completion (a deadline or cancellation in the
    /// caller), the event is recorded with `rustmon.cancelled = true`.
    pub struct ClientFuture<F> {
        #[pin]
        inner: F,
        state: Option<CallState>,
    }

    impl<F> PinnedDrop for ClientFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut s) = this.project().state.take() {
                s.event.set("rustmon.cancelled", true);
                s.failed = true;
                s.finish();
            }
        }
    }
}

impl<F> fmt::Debug for ClientFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientFuture").finish_non_exhaustive()
    }
}

/// Turns the inner service's result into the monitored response (both sides).
pub(crate) fn respond<B, E>(
    mut state: CallState,
    result: Result<Response<B>, E>,
) -> Result<Response<ResponseBody<B>>, E>
where
    B: Body<Data = Bytes>,
    E: fmt::Display,
{
    match result {
        Ok(resp) => {
            state.read_status(resp.headers());
            if resp.body().is_end_stream() {
                state.finish();
                return Ok(resp.map(ResponseBody::passthrough));
            }
            Ok(resp.map(|b| ResponseBody::monitored(b, state)))
        }
        Err(e) => {
            let kind = if state.server { "service" } else { "transport" };
            state.event.set("error.type", kind);
            state.event.record_error(kind, &e);
            state.failed = true;
            state.finish();
            Err(e)
        }
    }
}

impl<F, B, E> Future for ClientFuture<F>
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
        Poll::Ready(respond(state, result))
    }
}
