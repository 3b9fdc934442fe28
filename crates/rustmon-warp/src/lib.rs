//! warp monitoring: rustmon's tower layer around [`warp::service`], with route templates given by
//! a filter.
//!
//! warp routes with filters, inside the service, so the layer cannot know the route when the
//! request arrives: [`layer()`] leaves a [`RouteSlot`] in each request, and the [`route`] filter,
//! placed last in each route (just before the handler), writes the route's template into it. The
//! event is named by it when the request ends (`GET /orders/{id}`); requests no route claimed are
//! `GET unmatched`. Everything else is the tower layer's behaviour (see `rustmon-tower`):
//! attributes, the live `http_server` configuration (ignored routes match templates set this way
//! too), `traceparent`, the event current in handlers, panics, cancellation.
//!
//! # Examples
//! ```
//! use warp::Filter;
//! use rustmon_tower::Layer;
//!
//! let orders = warp::path!("orders" / u64)
//!     .and(rustmon_warp::route("/orders/{id}"))
//!     .map(|id: u64| format!("order {id}"));
//! // A tower service; serve it with hyper (`hyper_util::service::TowerToHyperService`).
//! let service = rustmon_warp::layer().layer(warp::service(orders));
//! # let _ = service;
//! ```

use std::convert::Infallible;

use rustmon_tower::MonitorLayer;
pub use rustmon_tower::RouteSlot;
use warp::Filter;

/// The layer for a [`warp::service`]: [`MonitorLayer`] recording into the global monitor (see
/// [`MonitorLayer::with_monitor`]), leaving a [`RouteSlot`] in each request for [`route`].
pub fn layer() -> MonitorLayer {
    MonitorLayer::new().with_route_slot()
}

/// A filter that names the request by `template` (`"/orders/{id}"`); it extracts nothing and
/// never rejects. Place it after the filters that match the route, just before the handler.
///
/// # Examples
/// ```
/// use warp::Filter;
/// let health = warp::path("health")
///     .and(rustmon_warp::route("/health"))
///     .map(|| "ok");
/// # let _ = health;
/// ```
pub fn route(
    template: &'static str,
) -> impl Filter<Extract = (), Error = Infallible> + Copy + Send + Sync + 'static {
    warp::ext::optional::<RouteSlot>()
        .map(move |slot: Option<RouteSlot>| {
            if let Some(slot) = slot {
                slot.set(template);
            }
        })
        .untuple_one()
}
