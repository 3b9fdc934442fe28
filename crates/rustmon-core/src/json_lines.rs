//! A listener writing one JSON object per event (and metric) per line, for debugging.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value as Json, json};

use crate::attr::{KeyValue, Value};
use crate::event::EventRecord;
use crate::listener::{Batch, Listener};
use crate::metrics::{Metric, MetricData, Number};
use crate::monitor::Resource;

/// Writes events and metrics as JSON lines to stdout, a file or any writer.
///
/// # Examples
/// ```
/// use rustmon_core::{JsonLines, Monitor};
/// let monitor = Monitor::builder("svc").listener(JsonLines::stdout()).build().unwrap();
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
pub struct JsonLines {
    out: Box<dyn Write + Send>,
}

impl std::fmt::Debug for JsonLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonLines")
    }
}

impl JsonLines {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        JsonLines::new(io::stdout())
    }

    /// Appends to the file at `path`, creating it if needed.
    pub fn file(path: impl AsRef<Path>) -> io::Result<Self> {
        let file = File::options().create(true).append(true).open(path)?;
        Ok(JsonLines::new(file))
    }

    /// Writes to `out` (buffered).
    pub fn new(out: impl Write + Send + 'static) -> Self {
        JsonLines {
            out: Box::new(BufWriter::new(out)),
        }
    }

    fn write(&mut self, line: &Json) {
        // A debugging aid: a failing writer loses lines but never disturbs the program.
        let _ = serde_json::to_writer(&mut self.out, line);
        let _ = self.out.write_all(b"\n");
    }
}

impl Listener for JsonLines {
    fn on_events(&mut self, batch: &Batch<'_>) {
        let service = &batch.resource().service_name;
        for e in batch.iter() {
            let line = event_json(service, e);
            self.write(&line);
        }
        let _ = self.out.flush();
    }

    fn on_metrics(&mut self, metrics: &[Metric], resource: &Resource) {
        for m in metrics {
            let line = metric_json(&resource.service_name, m);
            self.write(&line);
        }
        let _ = self.out.flush();
    }

    fn flush(&mut self, _timeout: Duration) {
        let _ = self.out.flush();
    }
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => json!(b),
        Value::I64(i) => json!(i),
        Value::U64(u) => json!(u),
        Value::F64(f) => json!(f),
        Value::Str(s) => json!(s),
    }
}

fn attrs_json(attrs: &[KeyValue]) -> Json {
    let mut map = Map::new();
    for kv in attrs {
        map.insert(kv.key.to_string(), value_json(&kv.value));
    }
    Json::Object(map)
}

/// An event as the JSON object [`JsonLines`] writes.
pub fn event_json(service: &str, e: &EventRecord) -> Json {
    json!({
        "type": "event",
        "service": service,
        "trace_id": e.trace_id.to_string(),
        "span_id": e.span_id.to_string(),
        "parent_span_id": e.parent_span_id.map(|p| p.to_string()),
        "kind": e.kind.as_str(),
        "name": e.name,
        "plugin": e.plugin,
        "status": e.status.as_str(),
        "start_unix_nanos": e.start_unix_nanos,
        "duration_nanos": e.duration_nanos,
        "attributes": attrs_json(&e.attributes),
        "errors": e.errors.iter().map(|err| json!({
            "type": err.error_type,
            "message": err.message,
            "backtrace": err.backtrace,
        })).collect::<Vec<_>>(),
        "span_events": e.span_events.iter().map(|s| json!({
            "name": s.name,
            "time_unix_nanos": s.time_unix_nanos,
            "attributes": attrs_json(&s.attributes),
        })).collect::<Vec<_>>(),
    })
}

fn metric_json(service: &str, m: &Metric) -> Json {
    let number = |n: &Number| match n {
        Number::I64(i) => json!(i),
        Number::F64(f) => json!(f),
    };
    let data = match &m.data {
        MetricData::Gauge(n) => json!({ "gauge": number(n) }),
        MetricData::Sum {
            value,
            monotonic,
            delta,
        } => {
            json!({ "sum": number(value), "monotonic": monotonic, "delta": delta })
        }
        MetricData::Histogram(h) => json!({
            "histogram": {
                "count": h.count, "sum": h.sum,
                "min": if h.count > 0 { json!(h.min) } else { Json::Null },
                "max": if h.count > 0 { json!(h.max) } else { Json::Null },
                "p50": h.quantile(0.5), "p99": h.quantile(0.99),
            }
        }),
    };
    json!({
        "type": "metric",
        "service": service,
        "name": m.name,
        "unit": m.unit,
        "time_unix_nanos": m.time_unix_nanos,
        "attributes": attrs_json(&m.attributes),
        "data": data,
    })
}
