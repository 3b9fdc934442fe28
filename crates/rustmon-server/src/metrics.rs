//! The collector's own metrics, rendered in the Prometheus text format at `/metrics`.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::store::StoreStats;

const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// A Prometheus histogram of seconds with fixed buckets.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    inner: Mutex<(Vec<u64>, u64, f64)>,
}

impl LatencyHistogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.0.is_empty() {
            g.0 = vec![0; LATENCY_BUCKETS.len()];
        }
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            if s <= *b {
                g.0[i] += 1;
            }
        }
        g.1 += 1;
        g.2 += s;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, b) in LATENCY_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                g.0.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", g.1);
        let _ = writeln!(out, "{name}_sum {}", g.2);
        let _ = writeln!(out, "{name}_count {}", g.1);
    }
}

/// Counters shared by the receivers and the store.
#[derive(Debug, Default)]
pub struct SelfMetrics {
    /// Spans decoded from requests.
    pub spans_received: AtomicU64,
    /// Spans rejected as invalid (partial success).
    pub spans_rejected: AtomicU64,
    /// Spans durably stored.
    pub spans_stored: AtomicU64,
    /// Metric points stored.
    pub metric_points_received: AtomicU64,
    /// Metric points rejected.
    pub metric_points_rejected: AtomicU64,
    /// Requests refused because the ingest queue was full.
    pub requests_throttled: AtomicU64,
    /// Requests refused as malformed, too large or of a wrong type.
    pub requests_invalid: AtomicU64,
    /// WAL group commits (fsyncs).
    pub wal_syncs: AtomicU64,
    /// Segments sealed.
    pub segments_sealed: AtomicU64,
    /// Time to make one group of batches durable and visible.
    pub batch_latency: LatencyHistogram,
}

impl SelfMetrics {
    /// Renders everything in the Prometheus text format.
    pub fn render(&self, st: &StoreStats) -> String {
        let mut o = String::with_capacity(4096);
        let c = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let g = |o: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        c(
            &mut o,
            "rustmon_spans_received_total",
            "Spans received over OTLP.",
            l(&self.spans_received),
        );
        c(
            &mut o,
            "rustmon_spans_rejected_total",
            "Spans rejected as invalid.",
            l(&self.spans_rejected),
        );
        c(
            &mut o,
            "rustmon_spans_stored_total",
            "Spans durably stored.",
            l(&self.spans_stored),
        );
        c(
            &mut o,
            "rustmon_metric_points_received_total",
            "Metric points stored.",
            l(&self.metric_points_received),
        );
        c(
            &mut o,
            "rustmon_metric_points_rejected_total",
            "Metric points rejected.",
            l(&self.metric_points_rejected),
        );
        c(
            &mut o,
            "rustmon_requests_throttled_total",
            "Requests refused because the ingest queue was full (HTTP 429, gRPC RESOURCE_EXHAUSTED).",
            l(&self.requests_throttled),
        );
        c(
            &mut o,
            "rustmon_requests_invalid_total",
            "Requests refused as malformed, too large or of an unsupported type.",
            l(&self.requests_invalid),
        );
        c(
            &mut o,
            "rustmon_wal_syncs_total",
            "Write-ahead log group commits.",
            l(&self.wal_syncs),
        );
        c(
            &mut o,
            "rustmon_segments_sealed_total",
            "Span segments sealed.",
            l(&self.segments_sealed),
        );
        g(
            &mut o,
            "rustmon_queue_depth",
            "Batches waiting in the ingest queue.",
            st.queue_depth,
        );
        g(
            &mut o,
            "rustmon_queue_bytes",
            "Estimated bytes waiting in the ingest queue.",
            st.queue_bytes,
        );
        g(
            &mut o,
            "rustmon_store_spans",
            "Spans in the store.",
            st.spans,
        );
        g(
            &mut o,
            "rustmon_store_segments",
            "Sealed segments in the store.",
            st.segments,
        );
        g(
            &mut o,
            "rustmon_store_bytes",
            "Bytes on disk: segments, write-ahead log and database.",
            st.disk_bytes,
        );
        self.batch_latency.render(
            &mut o,
            "rustmon_batch_latency_seconds",
            "Time to make a group of batches durable (write + fsync) and queryable.",
        );
        o
    }
}
