//! Application performance monitoring for Rust services.
//!
//! One line starts monitoring; the guard flushes what was recorded when it drops:
//!
//! ```no_run
//! fn main() -> Result<(), rustmon::InitError> {
//!     let _guard = rustmon::init("checkout-api")?; // OTLP to OTEL_EXPORTER_OTLP_ENDPOINT
//!
//!     let mut order = rustmon::Event::start(rustmon::Kind::Custom, "place-order");
//!     order.set("order.items", 3_i64);
//!     order.finish();
//!     Ok(())
//! }
//! ```
//!
//! [`init`] reads the environment (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, `RUSTMON_*`; see [`Builder`]) and installs the global monitor
//! that integrations record into. [`builder`] sets everything else.

mod env;
mod init;

pub use init::{Builder, Guard, InitError, builder, init};
pub use rustmon_core as core;
pub use rustmon_core::config::{self, ConfigHandle, PluginConfig};
pub use rustmon_core::context::{self, FutureExt};
pub use rustmon_core::{
    Batch, CoreConfig, Event, EventRecord, KeyValue, Kind, Listener, Monitor, Plugin,
    PluginContext, PluginError, PluginListener, Resource, Stats, Status, Value, listener_fn,
    segment,
};
#[cfg(feature = "macros")]
pub use rustmon_macros::facade_monitor as monitor;
#[cfg(feature = "otlp")]
pub use rustmon_otlp as otlp;
#[cfg(feature = "tracing")]
pub use rustmon_tracing as tracing;

#[cfg(feature = "actix")]
pub use rustmon_actix as actix;
#[cfg(feature = "diesel")]
pub use rustmon_diesel as diesel;
#[cfg(feature = "grpc")]
pub use rustmon_grpc as grpc;
#[cfg(feature = "http-client")]
pub use rustmon_http_client as http_client;
#[cfg(feature = "kafka")]
pub use rustmon_kafka as kafka;
#[cfg(feature = "net")]
pub use rustmon_net as net;
#[cfg(feature = "poem")]
pub use rustmon_poem as poem;
#[cfg(feature = "postgres")]
pub use rustmon_postgres as postgres;
#[cfg(feature = "redis")]
pub use rustmon_redis as redis;
#[cfg(feature = "rocket")]
pub use rustmon_rocket as rocket;
#[cfg(feature = "runtime")]
pub use rustmon_runtime as runtime;
#[cfg(feature = "rusqlite")]
pub use rustmon_rusqlite as rusqlite;
#[cfg(feature = "salvo")]
pub use rustmon_salvo as salvo;
#[cfg(feature = "sea-orm")]
pub use rustmon_sea_orm as sea_orm;
#[cfg(feature = "sqlx")]
pub use rustmon_sqlx as sqlx;
#[cfg(feature = "tower")]
pub use rustmon_tower as tower;
#[cfg(feature = "axum")]
pub use rustmon_tower::axum;
#[cfg(feature = "warp")]
pub use rustmon_warp as warp;
