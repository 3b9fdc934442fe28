//! [`MatchRoute`]: how the layer learns a request's route template.

use std::net::SocketAddr;

use http::{Extensions, HeaderMap, Method, Uri};

/// The parts of a request a [`MatchRoute`] may look at.
#[derive(Debug)]
#[non_exhaustive]
pub struct RouteRequest<'r> {
    /// The request method.
    pub method: &'r Method,
    /// The request target.
    pub uri: &'r Uri,
    /// The request headers.
    pub headers: &'r HeaderMap,
    /// The request extensions, where routers leave what they matched.
    pub extensions: &'r Extensions,
}

/// Tells the layer a request's route template (`/orders/{id}`) and, optionally, its peer address.
///
/// The route becomes the event's name (`GET /orders/{id}`) and `http.route`; `None` means the
/// request matched no route, and it is named `GET unmatched`. Return templates, never raw paths:
/// names must stay low-cardinality.
///
/// Closures `Fn(&RouteRequest<'_>) -> Option<&str>` are accepted through
/// [`MonitorLayer::route_fn`](crate::MonitorLayer::route_fn) (wrapped in [`RouteFn`]). With the
/// `axum` feature, `rustmon_tower::axum::AxumRoute` reads axum's `MatchedPath`.
///
/// # Examples
/// ```
/// use rustmon_tower::MonitorLayer;
///
/// // A service that routes by the first path segment.
/// let layer = MonitorLayer::new().route_fn(|req| {
///     match req.uri.path() {
///         "/" => Some("/"),
///         p if p.starts_with("/users/") => Some("/users/{name}"),
///         _ => None,
///     }
/// });
/// # let _ = layer;
/// ```
pub trait MatchRoute: Clone + Send + Sync + 'static {
    /// The route template of `req`, or `None` when no route matched.
    fn route<'r>(&self, req: &RouteRequest<'r>) -> Option<&'r str>;

    /// The peer's address, recorded as `client.address` when `request_remote_addr` is on. By
    /// default, a `SocketAddr` found in the request extensions.
    fn client_addr(&self, req: &RouteRequest<'_>) -> Option<SocketAddr> {
        req.extensions.get::<SocketAddr>().copied()
    }
}

/// A closure used as a [`MatchRoute`]; made by [`MonitorLayer::route_fn`](crate::MonitorLayer::route_fn).
#[derive(Clone, Copy)]
pub struct RouteFn<F>(pub F);

impl<F> std::fmt::Debug for RouteFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteFn")
    }
}

impl<F> MatchRoute for RouteFn<F>
where
    F: for<'r> Fn(&RouteRequest<'r>) -> Option<&'r str> + Clone + Send + Sync + 'static,
{
    #[inline]
    fn route<'r>(&self, req: &RouteRequest<'r>) -> Option<&'r str> {
        (self.0)(req)
    }
}

/// No router information: every request is named `{METHOD} unmatched`. Give the layer a
/// [`MatchRoute`] to name requests by route.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRoute;

impl MatchRoute for NoRoute {
    #[inline]
    fn route<'r>(&self, _req: &RouteRequest<'r>) -> Option<&'r str> {
        None
    }
}
