//! Span, rollup, metric and configuration storage.
//!
//! [`Store`] is what the receivers and the query API talk to; [`EmbeddedStore`] is the default
//! implementation that needs no external service (WAL + columnar segments + SQLite).

pub mod db;
mod embedded;
pub mod rollup;
pub mod segment;
pub mod wal;

use std::collections::HashMap;
use std::sync::Arc;

pub use db::{ErrorRow, OpRow};
pub use embedded::{EmbeddedStore, StoreOptions};
use prost::bytes::Bytes;
use rollup::Agg;

use crate::model::{MetricPoint, SpanRecord};

/// Errors from a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The ingest queue is full; retry later.
    #[error("ingest queue is full, retry later")]
    Full,
    /// The store is shutting down.
    #[error("store is shutting down")]
    Closed,
    /// A conditional update failed (`If-Match` did not match).
    #[error("version {0} does not match the current version {1}")]
    VersionMismatch(String, u64),
    /// File system error.
    #[error("store i/o: {0}")]
    Io(#[from] std::io::Error),
    /// SQLite error.
    #[error("store database: {0}")]
    Db(#[from] rusqlite::Error),
    /// Segment error.
    #[error(transparent)]
    Segment(#[from] segment::SegmentError),
    /// Other failure.
    #[error("{0}")]
    Other(String),
}

/// How trace search results are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Latest start first.
    Newest,
    /// Longest duration first.
    Slowest,
}

/// A span search: every set field must match.
#[derive(Debug, Clone)]
pub struct SpanQuery {
    /// Service.
    pub service: Option<String>,
    /// Span name.
    pub name: Option<String>,
    /// Span kind.
    pub kind: Option<u8>,
    /// Minimum duration, nanoseconds.
    pub min_duration_ns: u64,
    /// Status code.
    pub status: Option<u8>,
    /// Attributes that must equal the given text.
    pub attrs: Vec<(String, String)>,
    /// Start at or after, Unix nanoseconds.
    pub from_ns: u64,
    /// Start before, Unix nanoseconds.
    pub to_ns: u64,
    /// Maximum number of traces.
    pub limit: usize,
    /// Order.
    pub order: Order,
}

/// A stored configuration of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    /// Version, starting at 1 and increasing with each change.
    pub version: u64,
    /// The configuration document (JSON text).
    pub body: String,
    /// Last change, Unix nanoseconds.
    pub updated_ns: u64,
}

/// What an agent reported about a configuration it was given.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConfigStatus {
    /// Agent instance id.
    pub instance: String,
    /// Version the agent has in force.
    pub version: u64,
    /// Why a newer version was rejected, if it was.
    #[serde(default)]
    pub error: Option<String>,
    /// When reported, Unix nanoseconds.
    #[serde(default)]
    pub time_ns: u64,
}

/// Sizes and counts for self-monitoring.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// Spans stored (sealed and unsealed).
    pub spans: u64,
    /// Sealed segments.
    pub segments: u64,
    /// Bytes on disk (segments, WAL, database).
    pub disk_bytes: u64,
    /// Bytes of sealed segments.
    pub segment_bytes: u64,
    /// Spans in sealed segments.
    pub segment_spans: u64,
    /// Batches waiting in the ingest queue.
    pub queue_depth: u64,
    /// Estimated bytes waiting in the ingest queue.
    pub queue_bytes: u64,
}

/// A metric's summary for a service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MetricInfo {
    /// Name.
    pub name: String,
    /// Kind (`gauge`, `sum`, `histogram`, …).
    pub kind: String,
    /// Unit.
    pub unit: String,
    /// Number of points stored.
    pub points: u64,
}

/// A receiver for an acknowledgement: resolves once the batch is durable.
pub type Ack = tokio::sync::oneshot::Receiver<Result<(), String>>;

/// Storage for everything the collector keeps.
pub trait Store: Send + Sync + 'static {
    /// Queues spans for durable storage. `wal` is the OTLP protobuf request they came from,
    /// written to the log before acknowledging. Fails with [`StoreError::Full`] at once when the
    /// bounded queue has no room.
    fn submit_spans(&self, wal: Bytes, spans: Vec<Arc<SpanRecord>>) -> Result<Ack, StoreError>;
    /// Stores metric points durably.
    fn insert_metrics(&self, points: &[MetricPoint]) -> Result<(), StoreError>;
    /// Merges RED rollups an agent computed (from its `rustmon.operation.duration` metric).
    fn merge_agent_rollups(&self, rollups: &rollup::Rollups) -> Result<(), StoreError>;
    /// All spans of a trace.
    fn trace(&self, id: [u8; 16]) -> Result<Vec<SpanRecord>, StoreError>;
    /// Spans matching `q`, at most one per trace, best first.
    fn search(&self, q: &SpanQuery) -> Result<Vec<SpanRecord>, StoreError>;
    /// Operation rollups for minutes in `[from_min, to_min)`.
    fn op_rows(
        &self,
        service: Option<&str>,
        from_min: u64,
        to_min: u64,
    ) -> Result<Vec<OpRow>, StoreError>;
    /// Error group rollups for minutes in `[from_min, to_min)`.
    fn error_rows(
        &self,
        service: Option<&str>,
        from_min: u64,
        to_min: u64,
    ) -> Result<Vec<ErrorRow>, StoreError>;
    /// Statement rollups by fingerprint.
    fn db_rows(
        &self,
        service: &str,
        from_min: u64,
        to_min: u64,
    ) -> Result<HashMap<String, Agg>, StoreError>;
    /// Service map edges.
    fn edge_rows(
        &self,
        from_min: u64,
        to_min: u64,
    ) -> Result<HashMap<(String, String), Agg>, StoreError>;
    /// Metric names of a service.
    fn metric_names(&self, service: &str) -> Result<Vec<MetricInfo>, StoreError>;
    /// Points of one metric in a time range, ordered by time.
    fn metric_points(
        &self,
        service: &str,
        name: &str,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<MetricPoint>, StoreError>;
    /// The configuration of a service.
    fn get_config(&self, service: &str) -> Result<Option<ConfigEntry>, StoreError>;
    /// Replaces the configuration of a service; with `if_version`, only if that is current.
    fn put_config(
        &self,
        service: &str,
        body: &str,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry, StoreError>;
    /// Records an agent's report on its configuration.
    fn put_config_status(&self, service: &str, st: &ConfigStatus) -> Result<(), StoreError>;
    /// Agents' reports for a service.
    fn config_status(&self, service: &str) -> Result<Vec<ConfigStatus>, StoreError>;
    /// Sizes and counts.
    fn stats(&self) -> StoreStats;
    /// Seals what is buffered and stops background work; acknowledged data is durable.
    fn shutdown(&self);
}
