//! The rustmon collector: OTLP receivers (HTTP and gRPC), an embedded store (write-ahead log,
//! compressed columnar segments, SQLite for rollups and configuration), a JSON query API with
//! an OpenAPI description, central configuration for agents, and Prometheus self-metrics.
//!
//! The `rustmon` binary (`rustmon serve`) is the usual way in; the library is what it, the tests,
//! the load benchmark and the fuzz target are built from.

pub mod api;
pub mod codec;
pub mod config;
pub mod errors;
pub mod fingerprint;
pub mod histogram;
pub mod ingest;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod otlp;
pub mod server;
pub mod store;
pub mod testdata;
pub mod wire;
