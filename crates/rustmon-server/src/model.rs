//! The collector's own span and metric types, and their conversion from OTLP.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use rustc_hash::FxHashSet;
use serde::Serialize;
use serde_json::{Value as Json, json};

use crate::fingerprint::fingerprint;

/// Span kind, as in OTLP (0 = unspecified).
pub const KIND_NAMES: [&str; 6] = [
    "unspecified",
    "internal",
    "server",
    "client",
    "producer",
    "consumer",
];

/// Parses a span kind name (`server`, `client`, …) into its OTLP number.
pub fn kind_from_name(s: &str) -> Option<u8> {
    KIND_NAMES
        .iter()
        .position(|k| k.eq_ignore_ascii_case(s))
        .map(|p| p as u8)
}

/// Status code: unset.
pub const STATUS_UNSET: u8 = 0;
/// Status code: ok.
pub const STATUS_OK: u8 = 1;
/// Status code: error.
pub const STATUS_ERROR: u8 = 2;

/// Attribute key under which the collector stores a computed statement fingerprint.
pub const FINGERPRINT_KEY: &str = "db.query.summary";

/// A typed attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// A string.
    Str(String),
    /// A signed integer.
    Int(i64),
    /// A float.
    Double(f64),
    /// A boolean.
    Bool(bool),
}

impl AttrValue {
    /// The value as JSON.
    pub fn to_json(&self) -> Json {
        match self {
            AttrValue::Str(s) => Json::String(s.clone()),
            AttrValue::Int(i) => json!(i),
            AttrValue::Double(d) => json!(d),
            AttrValue::Bool(b) => json!(b),
        }
    }

    /// Whether the value's text form equals `s` (used by `attr.KEY=VALUE` filters).
    pub fn matches(&self, s: &str) -> bool {
        match self {
            AttrValue::Str(v) => v == s,
            AttrValue::Int(i) => s.parse::<i64>() == Ok(*i),
            AttrValue::Double(d) => s.parse::<f64>() == Ok(*d),
            AttrValue::Bool(b) => s.parse::<bool>() == Ok(*b),
        }
    }
}

/// An attribute key: usually one of the few names every span repeats, shared (see [`key`]).
pub type Key = Cow<'static, str>;

/// Key/value attributes.
pub type Attrs = Vec<(Key, AttrValue)>;

/// Distinct attribute keys shared process-wide; keys beyond these are allocated per span.
const MAX_KEYS: usize = 4096;
/// Longer keys are never shared.
const MAX_KEY_LEN: usize = 128;

static KEYS: Mutex<Option<FxHashSet<&'static str>>> = Mutex::new(None);

thread_local! {
    static LOCAL_KEYS: RefCell<FxHashSet<&'static str>> = RefCell::default();
}

/// The attribute key `k`, shared with every other span that has it.
///
/// A span's attribute names repeat in every span (`http.route`, `db.query.text`, …), and
/// allocating each again cost about a third of the allocations of ingest. The first
/// [`MAX_KEYS`] distinct keys of at most [`MAX_KEY_LEN`] bytes are kept for the life of the
/// process (at most 512 KiB, so that a client sending random keys cannot grow memory); a
/// thread finds them in its own set without a lock after the first time.
pub fn key(k: &str) -> Key {
    if k.len() > MAX_KEY_LEN {
        return Cow::Owned(k.to_string());
    }
    if let Some(s) = LOCAL_KEYS.with(|l| l.borrow().get(k).copied()) {
        return Cow::Borrowed(s);
    }
    let shared = {
        let mut g = KEYS.lock().unwrap_or_else(|e| e.into_inner());
        let set = g.get_or_insert_with(FxHashSet::default);
        match set.get(k) {
            Some(&s) => Some(s),
            None if set.len() < MAX_KEYS => {
                let s: &'static str = Box::leak(k.into());
                set.insert(s);
                Some(s)
            }
            None => None,
        }
    };
    match shared {
        Some(s) => {
            LOCAL_KEYS.with(|l| l.borrow_mut().insert(s));
            Cow::Borrowed(s)
        }
        None => Cow::Owned(k.to_string()),
    }
}

/// An event inside a span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    /// Event name.
    pub name: String,
    /// Time, Unix nanoseconds.
    pub time_ns: u64,
    /// Attributes.
    pub attributes: Attrs,
}

/// One finished span as the collector stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
    /// Parent span id, if any.
    pub parent_span_id: Option<[u8; 8]>,
    /// `service.name` of the resource.
    pub service: Arc<str>,
    /// OTLP span kind number.
    pub kind: u8,
    /// Span name (low cardinality).
    pub name: String,
    /// Start, Unix nanoseconds.
    pub start_ns: u64,
    /// Duration in nanoseconds.
    pub duration_ns: u64,
    /// Status code ([`STATUS_UNSET`], [`STATUS_OK`], [`STATUS_ERROR`]).
    pub status: u8,
    /// Status message.
    pub status_message: String,
    /// Span attributes.
    pub attributes: Attrs,
    /// Span events.
    pub events: Vec<SpanEvent>,
    /// Resource attributes other than `service.name`.
    pub resource: Arc<Attrs>,
}

impl SpanRecord {
    /// An attribute by key.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .or_else(|| self.resource.iter().find(|(k, _)| k == key).map(|(_, v)| v))
    }

    /// A string attribute by key.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attr(key) {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer attribute by key.
    pub fn attr_int(&self, key: &str) -> Option<i64> {
        match self.attr(key) {
            Some(AttrValue::Int(i)) => Some(*i),
            Some(AttrValue::Str(s)) => s.parse().ok(),
            _ => None,
        }
    }

    /// Whether the span is an error.
    pub fn is_error(&self) -> bool {
        self.status == STATUS_ERROR
    }

    /// The span as JSON for the query API.
    pub fn to_json(&self) -> Json {
        json!({
            "trace_id": hex(&self.trace_id),
            "span_id": hex(&self.span_id),
            "parent_span_id": self.parent_span_id.map(|p| hex(&p)),
            "service": &*self.service,
            "kind": KIND_NAMES.get(self.kind as usize).copied().unwrap_or("unspecified"),
            "name": self.name,
            "start": format_ns(self.start_ns),
            "start_unix_nano": self.start_ns,
            "duration_ms": self.duration_ns as f64 / 1e6,
            "status": status_name(self.status),
            "status_message": if self.status_message.is_empty() { Json::Null } else { Json::String(self.status_message.clone()) },
            "attributes": attrs_json(&self.attributes),
            "resource": attrs_json(&self.resource),
            "events": self.events.iter().map(|e| json!({
                "name": e.name,
                "time": format_ns(e.time_ns),
                "attributes": attrs_json(&e.attributes),
            })).collect::<Vec<_>>(),
        })
    }
}

/// The name of a status code.
pub fn status_name(s: u8) -> &'static str {
    match s {
        STATUS_OK => "ok",
        STATUS_ERROR => "error",
        _ => "unset",
    }
}

/// Attributes as a JSON object.
pub fn attrs_json(a: &Attrs) -> Json {
    Json::Object(
        a.iter()
            .map(|(k, v)| (k.to_string(), v.to_json()))
            .collect(),
    )
}

/// Lowercase hex of bytes.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

/// Parses hex into exactly `N` bytes.
pub fn parse_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for i in 0..N {
        let hi = (b[2 * i] as char).to_digit(16)?;
        let lo = (b[2 * i + 1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// RFC 3339 text of Unix nanoseconds.
pub fn format_ns(ns: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
    humantime::format_rfc3339_nanos(t).to_string()
}

/// Converts an OTLP value to ours; arrays and maps become their JSON text.
pub fn any_value(v: Option<AnyValue>) -> AttrValue {
    match v.and_then(|v| v.value) {
        Some(any_value::Value::StringValue(s)) => AttrValue::Str(s),
        Some(any_value::Value::IntValue(i)) => AttrValue::Int(i),
        Some(any_value::Value::DoubleValue(d)) => AttrValue::Double(d),
        Some(any_value::Value::BoolValue(b)) => AttrValue::Bool(b),
        Some(any_value::Value::BytesValue(b)) => AttrValue::Str(hex(&b)),
        Some(other) => AttrValue::Str(any_json(&other).to_string()),
        None => AttrValue::Str(String::new()),
    }
}

fn any_json(v: &any_value::Value) -> Json {
    match v {
        any_value::Value::StringValue(s) => json!(s),
        any_value::Value::IntValue(i) => json!(i),
        any_value::Value::DoubleValue(d) => json!(d),
        any_value::Value::BoolValue(b) => json!(b),
        any_value::Value::BytesValue(b) => json!(hex(b)),
        any_value::Value::ArrayValue(a) => Json::Array(
            a.values
                .iter()
                .map(|x| x.value.as_ref().map(any_json).unwrap_or(Json::Null))
                .collect(),
        ),
        any_value::Value::KvlistValue(kv) => Json::Object(
            kv.values
                .iter()
                .map(|x| {
                    (
                        x.key.clone(),
                        x.value
                            .as_ref()
                            .and_then(|v| v.value.as_ref())
                            .map(any_json)
                            .unwrap_or(Json::Null),
                    )
                })
                .collect(),
        ),
        #[allow(unreachable_patterns)]
        _ => Json::Null,
    }
}

/// Converts OTLP attributes.
pub fn convert_attrs(kvs: Vec<KeyValue>) -> Attrs {
    kvs.into_iter()
        .map(|kv| (key(&kv.key), any_value(kv.value)))
        .collect()
}

/// Result of converting an export request.
#[derive(Debug, Default)]
pub struct Converted {
    /// Spans accepted, each in the allocation the store keeps (made by the receiving thread, so
    /// the store's single writer thread only links them in).
    pub spans: Vec<Arc<SpanRecord>>,
    /// Spans rejected.
    pub rejected: u64,
    /// Why the first rejected span was rejected.
    pub error: Option<String>,
}

/// Service name used when a resource has none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Converts an OTLP trace export request into span records, rejecting invalid spans
/// (trace id not 16 bytes or all zero, span id not 8 bytes, parent id of the wrong length).
pub fn convert_traces(req: ExportTraceServiceRequest) -> Converted {
    let mut out = Converted::default();
    let n: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| r.scope_spans.iter())
        .map(|s| s.spans.len())
        .sum();
    out.spans.reserve(n);
    for rs in req.resource_spans {
        let mut service: Arc<str> = Arc::from(UNKNOWN_SERVICE);
        let mut resource = Vec::new();
        for kv in rs.resource.map(|r| r.attributes).unwrap_or_default() {
            let v = any_value(kv.value);
            if kv.key == "service.name" {
                if let AttrValue::Str(s) = &v {
                    if !s.is_empty() {
                        service = Arc::from(s.as_str());
                    }
                }
            } else {
                resource.push((key(&kv.key), v));
            }
        }
        let resource = Arc::new(resource);
        for ss in rs.scope_spans {
            for s in ss.spans {
                let reject = |out: &mut Converted, why: String| {
                    out.rejected += 1;
                    if out.error.is_none() {
                        out.error = Some(why);
                    }
                };
                let Ok(trace_id) = <[u8; 16]>::try_from(s.trace_id.as_slice()) else {
                    reject(
                        &mut out,
                        format!(
                            "span {:?}: trace_id must be 16 bytes, got {}",
                            s.name,
                            s.trace_id.len()
                        ),
                    );
                    continue;
                };
                if trace_id == [0; 16] {
                    reject(&mut out, format!("span {:?}: trace_id is all zero", s.name));
                    continue;
                }
                let Ok(span_id) = <[u8; 8]>::try_from(s.span_id.as_slice()) else {
                    reject(
                        &mut out,
                        format!(
                            "span {:?}: span_id must be 8 bytes, got {}",
                            s.name,
                            s.span_id.len()
                        ),
                    );
                    continue;
                };
                let parent_span_id = match s.parent_span_id.len() {
                    0 => None,
                    8 => {
                        let p: [u8; 8] = s.parent_span_id.as_slice().try_into().unwrap_or([0; 8]);
                        (p != [0; 8]).then_some(p)
                    }
                    n => {
                        reject(
                            &mut out,
                            format!("span {:?}: parent_span_id must be 8 bytes, got {n}", s.name),
                        );
                        continue;
                    }
                };
                let (status, status_message) = match s.status {
                    Some(st) => (st.code.clamp(0, 2) as u8, st.message),
                    None => (STATUS_UNSET, String::new()),
                };
                let mut attributes = convert_attrs(s.attributes);
                add_fingerprint(&mut attributes);
                out.spans.push(Arc::new(SpanRecord {
                    trace_id,
                    span_id,
                    parent_span_id,
                    service: service.clone(),
                    kind: s.kind.clamp(0, 5) as u8,
                    name: s.name,
                    start_ns: s.start_time_unix_nano,
                    duration_ns: s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano),
                    status,
                    status_message,
                    attributes,
                    events: s
                        .events
                        .into_iter()
                        .map(|e| SpanEvent {
                            name: e.name,
                            time_ns: e.time_unix_nano,
                            attributes: convert_attrs(e.attributes),
                        })
                        .collect(),
                    resource: resource.clone(),
                }));
            }
        }
    }
    out
}

/// Adds [`FINGERPRINT_KEY`] computed from `db.query.text` (or the older `db.statement`) when
/// the agent did not send one.
pub(crate) fn add_fingerprint(attrs: &mut Attrs) {
    let mut text = None;
    for (k, v) in attrs.iter() {
        match &**k {
            FINGERPRINT_KEY => return,
            "db.query.text" | "db.statement" => {
                if let AttrValue::Str(s) = v {
                    text = Some(s.as_str());
                }
            }
            _ => {}
        }
    }
    if let Some(t) = text {
        let f = fingerprint(t);
        // the agent's attributes were sized exactly: grow by one, not by doubling
        attrs.reserve_exact(1);
        attrs.push((Cow::Borrowed(FINGERPRINT_KEY), AttrValue::Str(f)));
    }
}

/// One metric data point as stored.
#[derive(Debug, Clone, Serialize)]
pub struct MetricPoint {
    /// `service.name` of the resource.
    pub service: String,
    /// Metric name.
    pub name: String,
    /// Unit.
    pub unit: String,
    /// `gauge`, `sum`, `histogram`, `exponential_histogram` or `summary`.
    pub kind: &'static str,
    /// Time, Unix nanoseconds.
    pub time_ns: u64,
    /// Point attributes as JSON text (sorted keys), the series identity.
    pub attributes: String,
    /// Value: the number for gauges and sums, the sum for histograms.
    pub value: f64,
    /// Count for histograms and summaries.
    pub count: Option<u64>,
}
