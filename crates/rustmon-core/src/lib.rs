//! rustmon's core: [`Event`]s, the [`Monitor`] that collects them, [`Listener`]s and
//! [`Plugin`]s, live typed [configuration](config), [context] propagation and the pipeline.
//!
//! This crate has few dependencies and no async runtime. Applications normally use the `rustmon`
//! facade crate, which installs a global monitor with an OTLP exporter in one line; integrations
//! depend on this crate and record into the global monitor (or one they are given).
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use rustmon_core::{listener_fn, Event, Kind, Monitor};
//!
//! let monitor = Monitor::builder("checkout")
//!     .listener(listener_fn(|batch| {
//!         for e in batch.iter() {
//!             println!("{} took {:?}", e.name, e.duration());
//!         }
//!     }))
//!     .build()
//!     .unwrap();
//! monitor.install_global(); // the application does this, never a library
//!
//! let mut order = Event::start(Kind::Custom, "place-order");
//! order.set("order.items", 3_i64);
//! order.finish();
//! monitor.shutdown(Duration::from_secs(5));
//! ```

mod annotate;
mod attr;
mod clock;
pub mod config;
pub mod context;
mod event;
mod ids;
pub mod intern;
mod json_lines;
mod listener;
pub mod metrics;
mod monitor;
mod pipeline;
mod plugin;
mod pool;
pub mod secrets;
pub mod segment;

pub use attr::{Attributes, Key, KeyValue, Value};
pub use clock::now_unix_nanos;
pub use config::{ConfigError, ConfigHandle, PluginConfig};
pub use context::SpanContext;
pub use event::{ErrorInfo, Event, EventRecord, Kind, SpanEvent, Status};
pub use ids::{SpanId, TraceId};
pub use json_lines::{JsonLines, event_json};
pub use listener::{
    Batch, ExportReporter, FnListener, Listener, ListenerContext, PluginListener, listener_fn,
};
pub use monitor::{CoreConfig, Monitor, MonitorBuilder, MonitorError, Resource, Stats, global};
pub use pipeline::{OVERFLOW_NAME, RED_METRIC};
pub use plugin::{Plugin, PluginContext, PluginError};
