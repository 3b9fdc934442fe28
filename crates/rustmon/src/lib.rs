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
