//! The mapping from rustmon's [`EventRecord`]s, [`Metric`]s and [`Resource`] to OTLP messages
//! (the `opentelemetry-proto` types).
//!
//! | rustmon | OTLP |
//! |---|---|
//! | trace, span, parent ids | big-endian bytes (16, 8, 8; no parent: empty) |
//! | [`Kind::Server`] | `SPAN_KIND_SERVER` |
//! | [`Kind::Client`], [`Kind::Database`], [`Kind::Cache`], [`Kind::Rpc`] | `SPAN_KIND_CLIENT` (database and cache calls are client spans in OpenTelemetry; an RPC *server* is recorded as [`Kind::Server`]) |
//! | [`Kind::Messaging`] | `SPAN_KIND_PRODUCER`, or `SPAN_KIND_CONSUMER` when `messaging.operation.type` is `receive`, `process` or `deliver` |
//! | other kinds | `SPAN_KIND_INTERNAL` |
//! | status | `STATUS_CODE_UNSET` / `OK` / `ERROR` (message: the first error's message) |
//! | attributes | typed values; a `u64` above `i64::MAX` becomes a string; a later value for the same key wins |
//! | errors | span events named `exception` with `exception.type`, `exception.message`, `exception.stacktrace`, at the span's end time |
//! | span events | span events |
//! | sampled, remote parent | `flags`: W3C trace flags in bits 0–7 (the trace's head-sampling decision: failed and slow events are exported even when it is 0), bit 8 (whether the parent is remote is known) always set, bit 9 when the parent is remote |
//! | kind, plugin | attributes `rustmon.event.kind`, `rustmon.plugin` (the collector keeps the finer kind) |
//!
//! Spans are grouped by plugin into one `ScopeSpans` each, with scope name `rustmon` (version:
//! this crate's) and the scope attribute `rustmon.plugin`, all under one `ResourceSpans`.
//! Metrics: a [`MetricData::Gauge`] becomes a gauge, a [`MetricData::Sum`] a sum (delta or
//! cumulative), an [`ExpHistogram`] an exponential histogram with delta temporality; points of the
//! same name and shape share one OTLP metric.

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue as OtlpKeyValue, any_value,
};
use opentelemetry_proto::tonic::metrics::v1::{
    self as otlp_metrics, AggregationTemporality, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    exponential_histogram_data_point::Buckets, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource as OtlpResource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status as OtlpStatus, span, status,
};
use rustmon_core::metrics::{ExpHistogram, Metric, MetricData, Number};
use rustmon_core::{EventRecord, KeyValue, Kind, Resource, Status, Value};

/// The instrumentation scope name of everything rustmon exports.
pub const SCOPE_NAME: &str = "rustmon";

/// This crate's version, exported as the scope version and `telemetry.sdk.version`.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Span flag: the W3C `sampled` trace flag.
pub const FLAG_SAMPLED: u32 = 0x01;
/// Span flag: whether the parent is remote is known (`SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK`).
pub const FLAG_HAS_IS_REMOTE: u32 = 0x100;
/// Span flag: the parent is remote (`SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK`).
pub const FLAG_IS_REMOTE: u32 = 0x200;

/// An OTLP attribute value from a rustmon one; a `u64` that does not fit an `i64` becomes a
/// string (OTLP has no unsigned integers).
///
/// # Examples
/// ```
/// use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
/// use rustmon_core::Value;
/// let v = rustmon_otlp::mapping::any_value(&Value::U64(u64::MAX));
/// assert_eq!(v.value, Some(V::StringValue(u64::MAX.to_string())));
/// ```
pub fn any_value(value: &Value) -> AnyValue {
    let v = match value {
        Value::Bool(b) => any_value::Value::BoolValue(*b),
        Value::I64(i) => any_value::Value::IntValue(*i),
        Value::U64(u) => match i64::try_from(*u) {
            Ok(i) => any_value::Value::IntValue(i),
            Err(_) => any_value::Value::StringValue(u.to_string()),
        },
        Value::F64(f) => any_value::Value::DoubleValue(*f),
        Value::Str(s) => any_value::Value::StringValue(s.to_string()),
    };
    AnyValue { value: Some(v) }
}

fn kv(key: impl Into<String>, value: any_value::Value) -> OtlpKeyValue {
    OtlpKeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn str_kv(key: &str, value: impl Into<String>) -> OtlpKeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

/// Pushes `(key, value)`, replacing an earlier value of the same key in place.
fn upsert(out: &mut Vec<OtlpKeyValue>, item: OtlpKeyValue) {
    match out.iter_mut().find(|kv| kv.key == item.key) {
        Some(existing) => existing.value = item.value,
        None => out.push(item),
    }
}

/// OTLP attributes from rustmon ones; when a key repeats, the later value wins (in the position
/// of the first).
pub fn attributes<'a>(attrs: impl IntoIterator<Item = &'a KeyValue>) -> Vec<OtlpKeyValue> {
    let iter = attrs.into_iter();
    let mut out = Vec::with_capacity(iter.size_hint().0);
    for a in iter {
        upsert(
            &mut out,
            OtlpKeyValue {
                key: a.key.to_string(),
                value: Some(any_value(&a.value)),
                ..Default::default()
            },
        );
    }
    out
}

/// The OTLP span kind of an event (see the [module](self) table).
pub fn span_kind(record: &EventRecord) -> span::SpanKind {
    use span::SpanKind;
    match record.kind {
        Kind::Server => SpanKind::Server,
        Kind::Client | Kind::Database | Kind::Cache | Kind::Rpc => SpanKind::Client,
        Kind::Messaging => {
            let consumer = record
                .attribute("messaging.operation.type")
                .and_then(Value::as_str)
                .is_some_and(|op| matches!(op, "receive" | "process" | "deliver"));
            if consumer {
                SpanKind::Consumer
            } else {
                SpanKind::Producer
            }
        }
        Kind::Runtime | Kind::Custom | Kind::Segment | Kind::Network => SpanKind::Internal,
    }
}

/// The OTLP `flags` field of an event's span: trace flags plus the remote-parent bits.
pub fn span_flags(record: &EventRecord) -> u32 {
    let mut flags = FLAG_HAS_IS_REMOTE;
    if record.sampled {
        flags |= FLAG_SAMPLED;
    }
    if record.parent_span_id.is_some() && record.parent_remote {
        flags |= FLAG_IS_REMOTE;
    }
    flags
}

/// The OTLP span for a finished event.
///
/// # Examples
/// ```
/// use rustmon_core::{Event, Kind, Monitor};
/// # let monitor = Monitor::builder("svc").build().unwrap();
/// let mut e = monitor.start_event(Kind::Database, "SELECT orders");
/// e.set("db.system.name", "postgresql");
/// let span = rustmon_otlp::mapping::span(e.record().unwrap());
/// assert_eq!(span.name, "SELECT orders");
/// assert_eq!(span.kind, 3); // SPAN_KIND_CLIENT
/// # e.discard();
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
pub fn span(record: &EventRecord) -> Span {
    let end = record
        .start_unix_nanos
        .saturating_add(record.duration_nanos);
    let mut attrs = attributes(&record.attributes);
    upsert(
        &mut attrs,
        str_kv("rustmon.event.kind", record.kind.as_str()),
    );
    upsert(&mut attrs, str_kv("rustmon.plugin", record.plugin));

    let mut events = Vec::with_capacity(record.span_events.len() + record.errors.len());
    for e in &record.span_events {
        events.push(span::Event {
            time_unix_nano: e.time_unix_nanos,
            name: e.name.to_string(),
            attributes: attributes(&e.attributes),
            dropped_attributes_count: 0,
        });
    }
    for err in &record.errors {
        let mut attributes = vec![
            str_kv("exception.type", err.error_type.as_ref()),
            str_kv("exception.message", err.message.as_str()),
        ];
        if let Some(bt) = &err.backtrace {
            attributes.push(str_kv("exception.stacktrace", bt.as_str()));
        }
        events.push(span::Event {
            time_unix_nano: end,
            name: "exception".to_owned(),
            attributes,
            dropped_attributes_count: 0,
        });
    }

    let status = match record.status {
        Status::Unset => None,
        Status::Ok => Some(OtlpStatus {
            message: String::new(),
            code: status::StatusCode::Ok as i32,
        }),
        Status::Error => Some(OtlpStatus {
            message: record
                .errors
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default(),
            code: status::StatusCode::Error as i32,
        }),
    };

    Span {
        trace_id: record.trace_id.to_bytes().to_vec(),
        span_id: record.span_id.to_bytes().to_vec(),
        trace_state: record.trace_state.unwrap_or_default().to_owned(),
        parent_span_id: record
            .parent_span_id
            .map(|p| p.to_bytes().to_vec())
            .unwrap_or_default(),
        flags: span_flags(record),
        name: record.name.to_string(),
        kind: span_kind(record) as i32,
        start_time_unix_nano: record.start_unix_nanos,
        end_time_unix_nano: end,
        attributes: attrs,
        dropped_attributes_count: 0,
        events,
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status,
    }
}

/// The OTLP resource for the monitored application: `service.name`, `service.version`,
/// `deployment.environment.name`, `host.name`, `service.instance.id`, `rustmon.app.id`, the extra
/// attributes (which never override the named fields; among themselves a later value wins), and
/// `telemetry.sdk.*`.
pub fn resource(resource: &Resource) -> OtlpResource {
    let mut attrs = vec![str_kv("service.name", resource.service_name.as_str())];
    if let Some(v) = &resource.service_version {
        attrs.push(str_kv("service.version", v.as_str()));
    }
    if let Some(v) = &resource.environment {
        attrs.push(str_kv("deployment.environment.name", v.as_str()));
    }
    attrs.push(str_kv("host.name", resource.host.as_str()));
    attrs.push(str_kv("service.instance.id", resource.instance_id.as_str()));
    if let Some(v) = &resource.app_id {
        attrs.push(str_kv("rustmon.app.id", v.as_str()));
    }
    attrs.push(str_kv("telemetry.sdk.name", "rustmon"));
    attrs.push(str_kv("telemetry.sdk.language", "rust"));
    attrs.push(str_kv("telemetry.sdk.version", SDK_VERSION));
    let named = attrs.len();
    for extra in &resource.attributes {
        if attrs[..named].iter().any(|a| a.key == extra.key) {
            continue;
        }
        upsert(
            &mut attrs,
            OtlpKeyValue {
                key: extra.key.to_string(),
                value: Some(any_value(&extra.value)),
                ..Default::default()
            },
        );
    }
    OtlpResource {
        attributes: attrs,
        ..Default::default()
    }
}

pub(crate) fn scope(plugin: Option<&str>) -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: SDK_VERSION.to_owned(),
        attributes: plugin
            .map(|p| vec![str_kv("rustmon.plugin", p)])
            .unwrap_or_default(),
        dropped_attributes_count: 0,
    }
}

/// One export request for `events`: one `ResourceSpans` with one `ScopeSpans` per plugin (in order
/// of first appearance).
pub fn traces_request<'a>(
    resource_: &Resource,
    events: impl IntoIterator<Item = &'a EventRecord>,
) -> ExportTraceServiceRequest {
    let mut scopes: Vec<(&'static str, Vec<Span>)> = Vec::new();
    for e in events {
        let s = span(e);
        match scopes.iter_mut().find(|(p, _)| *p == e.plugin) {
            Some((_, spans)) => spans.push(s),
            None => scopes.push((e.plugin, vec![s])),
        }
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(resource_)),
            scope_spans: scopes
                .into_iter()
                .map(|(plugin, spans)| ScopeSpans {
                    scope: Some(scope(Some(plugin))),
                    spans,
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        }],
    }
}

fn number_value(n: Number) -> number_data_point::Value {
    match n {
        Number::I64(v) => number_data_point::Value::AsInt(v),
        Number::F64(v) => number_data_point::Value::AsDouble(v),
    }
}

fn number_point(m: &Metric, n: Number) -> NumberDataPoint {
    NumberDataPoint {
        attributes: attributes(&m.attributes),
        start_time_unix_nano: m.start_unix_nanos,
        time_unix_nano: m.time_unix_nanos,
        value: Some(number_value(n)),
        ..Default::default()
    }
}

fn exp_histogram_point(
    m: &Metric,
    h: &ExpHistogram,
) -> otlp_metrics::ExponentialHistogramDataPoint {
    let seen = h.count > 0;
    otlp_metrics::ExponentialHistogramDataPoint {
        attributes: attributes(&m.attributes),
        start_time_unix_nano: m.start_unix_nanos,
        time_unix_nano: m.time_unix_nanos,
        count: h.count,
        sum: Some(h.sum),
        scale: h.scale,
        zero_count: h.zero_count,
        positive: Some(Buckets {
            offset: h.offset,
            bucket_counts: h.counts.clone(),
        }),
        negative: None,
        flags: 0,
        exemplars: Vec::new(),
        min: seen.then_some(h.min),
        max: seen.then_some(h.max),
        zero_threshold: 0.0,
    }
}

/// The OTLP data of one metric point.
pub fn metric_data(m: &Metric) -> metric::Data {
    match &m.data {
        MetricData::Gauge(n) => metric::Data::Gauge(otlp_metrics::Gauge {
            data_points: vec![number_point(m, *n)],
        }),
        MetricData::Sum {
            value,
            monotonic,
            delta,
        } => metric::Data::Sum(otlp_metrics::Sum {
            data_points: vec![number_point(m, *value)],
            aggregation_temporality: temporality(*delta) as i32,
            is_monotonic: *monotonic,
        }),
        MetricData::Histogram(h) => {
            metric::Data::ExponentialHistogram(otlp_metrics::ExponentialHistogram {
                data_points: vec![exp_histogram_point(m, h)],
                aggregation_temporality: AggregationTemporality::Delta as i32,
            })
        }
    }
}

fn temporality(delta: bool) -> AggregationTemporality {
    if delta {
        AggregationTemporality::Delta
    } else {
        AggregationTemporality::Cumulative
    }
}

/// Appends the points of `from` to `into` when both have the same shape; gives `from` back if not.
fn merge_data(into: &mut metric::Data, from: metric::Data) -> Result<(), metric::Data> {
    use metric::Data as D;
    match (into, from) {
        (D::Gauge(a), D::Gauge(b)) => a.data_points.extend(b.data_points),
        (D::Sum(a), D::Sum(b))
            if a.is_monotonic == b.is_monotonic
                && a.aggregation_temporality == b.aggregation_temporality =>
        {
            a.data_points.extend(b.data_points)
        }
        (D::ExponentialHistogram(a), D::ExponentialHistogram(b))
            if a.aggregation_temporality == b.aggregation_temporality =>
        {
            a.data_points.extend(b.data_points)
        }
        (_, from) => return Err(from),
    }
    Ok(())
}

/// One export request for `metrics`: one `ResourceMetrics`, one `ScopeMetrics` (scope `rustmon`);
/// points with the same name, unit and shape share one OTLP metric.
pub fn metrics_request<'a>(
    resource_: &Resource,
    metrics: impl IntoIterator<Item = &'a Metric>,
) -> ExportMetricsServiceRequest {
    let mut out: Vec<otlp_metrics::Metric> = Vec::new();
    for m in metrics {
        let mut data = metric_data(m);
        if let Some(existing) = out
            .iter_mut()
            .find(|o| o.name == m.name && o.unit == m.unit)
        {
            if let Some(d) = existing.data.as_mut() {
                match merge_data(d, data) {
                    Ok(()) => continue,
                    Err(back) => data = back,
                }
            }
        }
        out.push(otlp_metrics::Metric {
            name: m.name.to_string(),
            description: m.description.to_string(),
            unit: m.unit.to_string(),
            metadata: Vec::new(),
            data: Some(data),
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(resource_)),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope(None)),
                metrics: out,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustmon_core::{Attributes, ErrorInfo, SpanId, TraceId};
    use std::borrow::Cow;

    fn record(kind: Kind) -> EventRecord {
        EventRecord {
            trace_id: TraceId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            span_id: SpanId(0x1112_1314_1516_1718),
            parent_span_id: None,
            parent_remote: false,
            sampled: true,
            keep: false,
            trace_state: None,
            kind,
            status: Status::Unset,
            name: Cow::Borrowed("op"),
            plugin: "custom",
            start_unix_nanos: 1_000,
            duration_nanos: 500,
            attributes: Attributes::new(),
            errors: Vec::new(),
            span_events: Vec::new(),
        }
    }

    #[test]
    fn ids_are_big_endian() {
        let s = span(&record(Kind::Custom));
        assert_eq!(s.trace_id, (1..=16).collect::<Vec<u8>>());
        assert_eq!(s.span_id, (0x11..=0x18).collect::<Vec<u8>>());
        assert!(s.parent_span_id.is_empty());
        assert_eq!(
            (s.start_time_unix_nano, s.end_time_unix_nano),
            (1_000, 1_500)
        );
    }

    #[test]
    fn kinds() {
        use span::SpanKind as K;
        for (kind, want) in [
            (Kind::Server, K::Server),
            (Kind::Client, K::Client),
            (Kind::Database, K::Client),
            (Kind::Cache, K::Client),
            (Kind::Rpc, K::Client),
            (Kind::Messaging, K::Producer),
            (Kind::Runtime, K::Internal),
            (Kind::Custom, K::Internal),
            (Kind::Segment, K::Internal),
            (Kind::Network, K::Internal),
        ] {
            assert_eq!(span_kind(&record(kind)), want, "{kind}");
            let s = span(&record(kind));
            assert!(s.attributes.iter().any(|a| a.key == "rustmon.event.kind"
                && a.value
                    == Some(AnyValue {
                        value: Some(any_value::Value::StringValue(kind.as_str().into()))
                    })));
        }
        for (op, want) in [
            ("receive", K::Consumer),
            ("process", K::Consumer),
            ("deliver", K::Consumer),
            ("send", K::Producer),
            ("create", K::Producer),
        ] {
            let mut r = record(Kind::Messaging);
            r.attributes
                .push(KeyValue::new("messaging.operation.type", op));
            assert_eq!(span_kind(&r), want, "{op}");
        }
    }

    #[test]
    fn flags() {
        let mut r = record(Kind::Custom);
        assert_eq!(span_flags(&r), FLAG_HAS_IS_REMOTE | FLAG_SAMPLED);
        r.sampled = false;
        assert_eq!(span_flags(&r), FLAG_HAS_IS_REMOTE);
        r.parent_span_id = Some(SpanId(9));
        r.parent_remote = true;
        assert_eq!(span_flags(&r), FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE);
    }

    #[test]
    fn integer_bounds() {
        let v = |x: u64| any_value(&Value::U64(x)).value.unwrap();
        assert_eq!(v(i64::MAX as u64), any_value::Value::IntValue(i64::MAX));
        assert_eq!(
            v(i64::MAX as u64 + 1),
            any_value::Value::StringValue("9223372036854775808".into())
        );
    }

    #[test]
    fn error_status_without_errors_has_no_message() {
        let mut r = record(Kind::Custom);
        r.status = Status::Error;
        let st = span(&r).status.unwrap();
        assert_eq!(
            (st.code, st.message.as_str()),
            (status::StatusCode::Error as i32, "")
        );
        r.errors.push(ErrorInfo {
            error_type: Cow::Borrowed("E"),
            message: "boom".into(),
            backtrace: None,
        });
        assert_eq!(span(&r).status.unwrap().message, "boom");
    }

    #[test]
    fn spans_are_grouped_by_plugin() {
        let a = record(Kind::Custom);
        let mut b = record(Kind::Database);
        b.plugin = "sqlx";
        let c = record(Kind::Custom);
        let req = traces_request(&Resource::new("svc"), [&a, &b, &c]);
        assert_eq!(req.resource_spans.len(), 1);
        let scopes = &req.resource_spans[0].scope_spans;
        assert_eq!(scopes.len(), 2);
        assert_eq!(scopes[0].spans.len(), 2);
        assert_eq!(scopes[1].spans.len(), 1);
        assert_eq!(
            scopes[1].scope.as_ref().unwrap().attributes[0].key,
            "rustmon.plugin"
        );
    }

    #[test]
    fn resource_extras_never_override_named_fields() {
        let mut res = Resource::new("svc");
        res.attributes = vec![
            KeyValue::new("service.name", "other"),
            KeyValue::new("team", "a"),
            KeyValue::new("team", "b"),
        ];
        let r = resource(&res);
        let get = |k: &str| {
            r.attributes
                .iter()
                .filter(|a| a.key == k)
                .map(|a| a.value.clone().unwrap().value.unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            get("service.name"),
            [any_value::Value::StringValue("svc".into())]
        );
        assert_eq!(get("team"), [any_value::Value::StringValue("b".into())]);
        assert!(get("service.version").is_empty());
    }

    fn metric(name: &'static str, data: MetricData, attr: &'static str) -> Metric {
        Metric {
            name: Cow::Borrowed(name),
            description: Cow::Borrowed(""),
            unit: Cow::Borrowed("1"),
            attributes: vec![KeyValue::new("a", attr)],
            start_unix_nanos: 1,
            time_unix_nanos: 2,
            data,
        }
    }

    #[test]
    fn metrics_of_one_name_and_shape_share_an_otlp_metric() {
        let sum = |delta| MetricData::Sum {
            value: Number::I64(1),
            monotonic: true,
            delta,
        };
        let ms = [
            metric("m", sum(true), "x"),
            metric("m", sum(true), "y"),
            metric("m", sum(false), "z"),
            metric("h", MetricData::Histogram(ExpHistogram::default()), "x"),
        ];
        let req = metrics_request(&Resource::new("svc"), &ms);
        let out = &req.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(out.len(), 3, "a different temporality is another metric");
        let Some(metric::Data::Sum(s)) = &out[0].data else {
            panic!()
        };
        assert_eq!(s.data_points.len(), 2);
        let Some(metric::Data::ExponentialHistogram(h)) = &out[2].data else {
            panic!()
        };
        let p = &h.data_points[0];
        assert_eq!(
            (p.count, p.min, p.max),
            (0, None, None),
            "empty: no min/max"
        );
    }
}
