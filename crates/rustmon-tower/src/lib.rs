//! HTTP server monitoring for hyper, axum and any tower HTTP service: a tower [`Layer`] that
//! records one server event per request.
//!
//! [`MonitorLayer`] wraps a `Service<http::Request<_>, Response = http::Response<_>>` (http 1,
//! http-body 1). For each request it records a [`Kind::Server`](rustmon_core::Kind::Server)
//! event:
//!
//! - **name** `{METHOD} {route template}` (`GET /orders/{id}`), from a [`MatchRoute`]; a request
//!   that matched no route is `{METHOD} unmatched`, never its raw path; unknown methods are
//!   `_OTHER`;
//! - **attributes** `http.request.method`, `http.route`, `url.path`, `url.scheme`,
//!   `server.address`, `server.port`, `network.protocol.version`, `user_agent.original`,
//!   `http.request.body.size` (from `Content-Length`), `http.response.status_code`,
//!   `http.response.body.size` (bytes actually sent), and as configured `client.address`,
//!   `client.port`, `http.request.header.*`, `http.response.header.*`, `http.response.body`;
//! - **status** error for 5xx (and for 4xx when `client_errors_are_errors`); errors returned by
//!   the inner service are recorded (type `service`);
//! - **trace** continued from a W3C `traceparent` header; the event is the current context while
//!   the inner service and the response body are polled, so events the handler starts (also
//!   after `.await`s, and in tasks spawned with
//!   [`in_current_context`](rustmon_core::context::FutureExt::in_current_context)) are its
//!   children;
//! - **panics** in the handler: recorded (error type `panic`, with the message), the event is
//!   finished, and the panic continues exactly as without rustmon;
//! - **cancellation**: a request whose future or body is dropped before completion (the client
//!   went away) is recorded with `rustmon.cancelled = true`.
//!
//! The event ends when the response body has been sent. Bodies are never buffered: frames pass
//! through as they come and are only counted (and, with `response_body`, the first bytes copied).
//! What is captured is set by [`HttpServerConfig`] (plugin `http_server`), read once per request
//! from the monitor's live configuration.
//!
//! With the `axum` feature, `axum::layer()` reads axum's `MatchedPath`.
//!
//! # Examples
//! ```
//! use rustmon_tower::MonitorLayer;
//! use tower_layer::Layer;
//!
//! # fn wrap<S>(svc: S) -> impl Sized {
//! let svc = MonitorLayer::new()
//!     .route_fn(|req| (req.uri.path() == "/").then_some("/"))
//!     .layer(svc);
//! # svc }
//! ```

#[cfg(feature = "axum")]
pub mod axum;
mod body;
mod config;
mod layer;
mod names;
mod recorder;
mod route;

pub use body::ResponseBody;
pub use config::{HttpServerConfig, MAX_BODY_CAPTURE, is_sensitive_header};
pub use layer::{MonitorLayer, MonitorService, ResponseFuture, protocol_version};
pub use names::UNMATCHED;
pub use recorder::{
    BodyRecord, Headers, RequestHead, RequestRecord, RouteSlot, ServerRecorder, panic_message,
};
pub use route::{MatchRoute, NoRoute, RouteFn, RouteRequest};
pub use tower_layer::Layer;
