//! axum: route templates from [`MatchedPath`], client addresses from [`ConnectInfo`].

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath};

use crate::layer::MonitorLayer;
use crate::route::{MatchRoute, RouteRequest};

/// Reads the route template axum matched (`/orders/{id}`) from the request's [`MatchedPath`],
/// and the peer address from [`ConnectInfo<SocketAddr>`] (present when the app is served with
/// `into_make_service_with_connect_info::<SocketAddr>()`).
///
/// `MatchedPath` is set by the router before it calls the route, so the layer must sit inside the
/// router: add it with [`Router::layer`](axum::Router::layer) (which also wraps the fallback;
/// requests reaching the fallback are named `{METHOD} unmatched`).
#[derive(Clone, Copy, Debug, Default)]
pub struct AxumRoute;

impl MatchRoute for AxumRoute {
    #[inline]
    fn route<'r>(&self, req: &RouteRequest<'r>) -> Option<&'r str> {
        req.extensions.get::<MatchedPath>().map(MatchedPath::as_str)
    }

    fn client_addr(&self, req: &RouteRequest<'_>) -> Option<SocketAddr> {
        req.extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0)
            .or_else(|| req.extensions.get::<SocketAddr>().copied())
    }
}

/// The layer for an axum [`Router`](axum::Router): [`MonitorLayer`] with [`AxumRoute`], recording
/// into the global monitor (use [`MonitorLayer::with_monitor`] for another one).
///
/// # Examples
/// ```
/// use axum::{Router, routing::get};
///
/// let app: Router = Router::new()
///     .route("/orders/{id}", get(|| async { "order" }))
///     .layer(rustmon_tower::axum::layer());
/// # let _ = app;
/// ```
pub fn layer() -> MonitorLayer<AxumRoute> {
    MonitorLayer::new().route(AxumRoute)
}
