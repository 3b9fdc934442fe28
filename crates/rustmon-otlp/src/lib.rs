//! rustmon's OTLP support: the [mapping] from rustmon events, metrics and resources to
//! OpenTelemetry protocol messages, and [`OtlpExporter`], a [`Listener`](rustmon_core::Listener)
//! that sends them over OTLP/HTTP (protobuf, optionally gzip) to the rustmon collector or any OTLP backend.
//!
//! The exporter never blocks the application or rustmon's pipeline: it encodes on the pipeline
//! thread and sends from its own worker thread with a blocking HTTP client, so it needs no async
//! runtime and works under a current-thread tokio runtime or none. Failed requests are retried
//! with exponential backoff into a bounded buffer that drops the oldest request when full; what is
//! delivered and what is lost is counted in the monitor's [`Stats`](rustmon_core::Stats).
//!
//! Plain `http://` endpoints work out of the box; `https://` needs the crate feature `tls`.
//!
//! # Examples
//! ```no_run
//! use std::time::Duration;
//! use rustmon_core::{Kind, Monitor};
//! use rustmon_otlp::OtlpExporter;
//!
//! // Endpoint from OTEL_EXPORTER_OTLP_ENDPOINT, else http://127.0.0.1:4318.
//! let exporter = OtlpExporter::builder().timeout(Duration::from_secs(5)).build()?;
//! let monitor = Monitor::builder("checkout").listener(exporter).build().unwrap();
//! monitor.start_event(Kind::Custom, "nightly-report").finish();
//! monitor.shutdown(Duration::from_secs(5));
//! # Ok::<(), rustmon_otlp::Error>(())
//! ```

mod config;
mod encode;
mod error;
mod exporter;
pub mod mapping;
mod remote_config;

pub use config::{
    Compression, DEFAULT_ENDPOINT, DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_BATCH,
    DEFAULT_MAX_QUEUE, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT,
    MAX_RETRY_AFTER, OtlpExporterBuilder,
};
pub use error::Error;
pub use exporter::{ExporterHandle, ExporterStats, OtlpExporter};
pub use remote_config::{
    RemoteConfig, RemoteConfigHandle, RemoteConfigSettings, RemoteConfigStatus,
};

/// The `opentelemetry-proto` crate this crate maps to, re-exported so that users can decode and
/// inspect what is sent with the same types.
pub use opentelemetry_proto as proto;
