//! The OTLP exporter against a real HTTP server on 127.0.0.1: what it sends, decoded with the
//! `opentelemetry-proto` types and checked field by field, and how it handles failures.

use rustmon_test::otlp_receiver as common;

use std::borrow::Cow;
use std::time::Duration;

use common::{Recorded, Reply, TestServer, WAIT};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue as OtlpKv, any_value::Value as V};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric as OtlpMetric, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
use prost::Message;
use rustmon_core::context::{FutureExt, SpanContext};
use rustmon_core::metrics::{ExpHistogram, Metric, MetricData, Number};
use rustmon_core::{CoreConfig, EventRecord, KeyValue, Kind, Monitor, Status};
use rustmon_otlp::OtlpExporter;
use rustmon_test::Capture;

/// A core configuration that exports metrics only when asked (at shutdown) so tests see exactly
/// the requests they cause.
fn quiet_core() -> CoreConfig {
    CoreConfig {
        metrics_interval_ms: 3_600_000,
        ..CoreConfig::default()
    }
}

/// Attributes as `(key, value)` pairs.
type Attrs = Vec<(String, V)>;

fn attrs(kvs: &[OtlpKv]) -> Attrs {
    kvs.iter()
        .map(|kv| {
            (
                kv.key.clone(),
                kv.value
                    .as_ref()
                    .and_then(|v| v.value.clone())
                    .expect("every attribute has a value"),
            )
        })
        .collect()
}

fn s(v: &str) -> V {
    V::StringValue(v.to_owned())
}

fn spans_of(requests: &[Recorded]) -> Vec<(Span, Attrs, Attrs)> {
    // (span, resource attributes, scope attributes)
    let mut out = Vec::new();
    for r in requests.iter().filter(|r| r.path == "/v1/traces") {
        let req = r.traces();
        assert_eq!(req.resource_spans.len(), 1, "one ResourceSpans per request");
        let rs = &req.resource_spans[0];
        let resource = attrs(&rs.resource.as_ref().expect("a resource").attributes);
        for ss in &rs.scope_spans {
            let scope = ss.scope.as_ref().expect("a scope");
            assert_eq!(scope.name, "rustmon");
            assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
            for span in &ss.spans {
                out.push((span.clone(), resource.clone(), attrs(&scope.attributes)));
            }
        }
    }
    out
}

fn span_count(requests: &[Recorded]) -> usize {
    spans_of(requests).len()
}

fn find<'a>(events: &'a [EventRecord], name: &str) -> &'a EventRecord {
    events
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no event {name}"))
}

#[test]
fn spans_are_exported_field_by_field() {
    let server = TestServer::start();
    let capture = Capture::new();
    let exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .header("x-team", "checkout")
        .compression(rustmon_otlp::Compression::Gzip)
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = Monitor::builder("checkout-api")
        .version("1.4.2")
        .environment("staging")
        .host("host-7")
        .instance_id("instance-42")
        .app_id("shop")
        .resource_attribute(KeyValue::new("team", "payments"))
        .resource_attribute(KeyValue::new(
            "service.name",
            "ignored: the named field wins",
        ))
        .core_config(quiet_core())
        .listener(capture.listener())
        .listener(exporter)
        .build()
        .unwrap();

    // A server span with attributes of every type, and a database child with an error and a span
    // event; a consumer continuing a remote trace.
    let mut server_span = monitor.start_event(Kind::Server, "GET /orders/{id}");
    server_span
        .set("http.request.method", "GET")
        .set("http.response.status_code", 200_i64)
        .set("order.items", 3_u64)
        .set("order.huge", u64::MAX)
        .set("order.total", 12.5_f64)
        .set("order.gift", true)
        .set("order.note", String::from("first"))
        .set("order.note", "second, wins")
        .set_status(Status::Ok);
    let mut db = server_span
        .new_child(Kind::Database, "SELECT orders")
        .with_plugin("sqlx");
    db.set("db.system.name", "postgresql");
    db.add_span_event(
        "retrying",
        vec![
            KeyValue::new("attempt", 2_i64),
            KeyValue::new("reason", "deadlock"),
        ],
    );
    let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "statement timed out");
    db.record_std_error(&io, true);
    db.record_error("db.Second", "another failure");
    db.finish();
    server_span.finish();

    let remote =
        SpanContext::from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .unwrap();
    monitor
        .start_event_with_parent(Kind::Messaging, "orders process", Some(remote))
        .with("messaging.operation.type", "process")
        .finish();
    monitor
        .start_event(Kind::Messaging, "orders publish")
        .with("messaging.operation.type", "send")
        .finish();

    assert!(monitor.flush(WAIT), "flush completes");
    let events = capture.wait_for(4);
    assert_eq!(events.len(), 4, "the exporter records no events of its own");
    let requests = server.wait_until("4 spans", |r| span_count(r) >= 4);
    assert!(handle.flush(WAIT));

    // Transport: path, content type, gzip, the custom header.
    for r in &requests {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/v1/traces");
        assert_eq!(r.header("content-type"), Some("application/x-protobuf"));
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(r.header("x-team"), Some("checkout"));
        assert_eq!(&r.body[..2], &[0x1f, 0x8b], "gzip magic");
    }

    let spans = spans_of(&requests);
    assert_eq!(spans.len(), 4);

    // Resource.
    let resource = &spans[0].1;
    assert_eq!(
        resource,
        &vec![
            ("service.name".to_owned(), s("checkout-api")),
            ("service.version".to_owned(), s("1.4.2")),
            ("deployment.environment.name".to_owned(), s("staging")),
            ("host.name".to_owned(), s("host-7")),
            ("service.instance.id".to_owned(), s("instance-42")),
            ("rustmon.app.id".to_owned(), s("shop")),
            ("telemetry.sdk.name".to_owned(), s("rustmon")),
            ("telemetry.sdk.language".to_owned(), s("rust")),
            (
                "telemetry.sdk.version".to_owned(),
                s(env!("CARGO_PKG_VERSION"))
            ),
            ("team".to_owned(), s("payments")),
        ]
    );

    let span_for = |e: &EventRecord| {
        let (span, _, scope) = spans
            .iter()
            .find(|(sp, _, _)| sp.span_id == e.span_id.0.to_be_bytes())
            .unwrap_or_else(|| panic!("no span for {}", e.name));
        assert_eq!(
            scope,
            &vec![("rustmon.plugin".to_owned(), s(e.plugin))],
            "the scope names the plugin"
        );
        // Fields every span shares with its event.
        assert_eq!(span.trace_id, e.trace_id.0.to_be_bytes());
        assert_eq!(span.name, e.name);
        assert_eq!(span.start_time_unix_nano, e.start_unix_nanos);
        assert_eq!(
            span.end_time_unix_nano,
            e.start_unix_nanos + e.duration_nanos
        );
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        assert!(span.trace_state.is_empty() && span.links.is_empty());
        span.clone()
    };

    // The server span.
    let e = find(&events, "GET /orders/{id}");
    let sp = span_for(e);
    assert!(sp.parent_span_id.is_empty());
    assert_eq!(sp.kind, SpanKind::Server as i32);
    assert_eq!(sp.flags, 0x101, "sampled, parent not remote (known)");
    let st = sp.status.as_ref().unwrap();
    assert_eq!((st.code, st.message.as_str()), (StatusCode::Ok as i32, ""));
    assert_eq!(
        attrs(&sp.attributes),
        vec![
            ("http.request.method".to_owned(), s("GET")),
            ("http.response.status_code".to_owned(), V::IntValue(200)),
            ("order.items".to_owned(), V::IntValue(3)),
            ("order.huge".to_owned(), s("18446744073709551615")),
            ("order.total".to_owned(), V::DoubleValue(12.5)),
            ("order.gift".to_owned(), V::BoolValue(true)),
            ("order.note".to_owned(), s("second, wins")),
            ("rustmon.event.kind".to_owned(), s("server")),
            ("rustmon.plugin".to_owned(), s("custom")),
        ]
    );
    assert!(sp.events.is_empty());

    // The database child: CLIENT, two errors as `exception` events, a span event.
    let db = find(&events, "SELECT orders");
    let sp = span_for(db);
    assert_eq!(sp.parent_span_id, e.span_id.0.to_be_bytes());
    assert_eq!(db.trace_id, e.trace_id);
    assert_eq!(sp.kind, SpanKind::Client as i32);
    assert_eq!(sp.flags, 0x101);
    let st = sp.status.as_ref().unwrap();
    assert_eq!(st.code, StatusCode::Error as i32);
    assert_eq!(
        st.message, "statement timed out",
        "the first error's message"
    );
    assert_eq!(
        attrs(&sp.attributes),
        vec![
            ("db.system.name".to_owned(), s("postgresql")),
            ("rustmon.event.kind".to_owned(), s("database")),
            ("rustmon.plugin".to_owned(), s("sqlx")),
        ]
    );
    assert_eq!(sp.events.len(), 3);
    let retry = &sp.events[0];
    assert_eq!(retry.name, "retrying");
    assert_eq!(retry.time_unix_nano, db.span_events[0].time_unix_nanos);
    assert_eq!(
        attrs(&retry.attributes),
        vec![
            ("attempt".to_owned(), V::IntValue(2)),
            ("reason".to_owned(), s("deadlock")),
        ]
    );
    let end = db.start_unix_nanos + db.duration_nanos;
    let backtrace = db.errors[0]
        .backtrace
        .clone()
        .expect("a captured backtrace");
    assert!(!backtrace.is_empty());
    let exc = &sp.events[1];
    assert_eq!((exc.name.as_str(), exc.time_unix_nano), ("exception", end));
    assert_eq!(
        attrs(&exc.attributes),
        vec![
            ("exception.type".to_owned(), s("std::io::error::Error")),
            ("exception.message".to_owned(), s("statement timed out")),
            ("exception.stacktrace".to_owned(), s(&backtrace)),
        ]
    );
    let exc = &sp.events[2];
    assert_eq!(exc.name, "exception");
    assert_eq!(
        attrs(&exc.attributes),
        vec![
            ("exception.type".to_owned(), s("db.Second")),
            ("exception.message".to_owned(), s("another failure")),
        ],
        "no stacktrace attribute without a backtrace"
    );

    // The consumer continuing a remote trace: CONSUMER, remote-parent flag.
    let consumer = find(&events, "orders process");
    let sp = span_for(consumer);
    assert_eq!(sp.trace_id, remote.trace_id.0.to_be_bytes());
    assert_eq!(sp.parent_span_id, remote.span_id.0.to_be_bytes());
    assert_eq!(sp.kind, SpanKind::Consumer as i32);
    assert_eq!(sp.flags, 0x301, "sampled, parent known to be remote");
    assert!(sp.status.is_none(), "unset status");
    assert_eq!(
        attrs(&sp.attributes),
        vec![
            ("messaging.operation.type".to_owned(), s("process")),
            ("rustmon.event.kind".to_owned(), s("messaging")),
            ("rustmon.plugin".to_owned(), s("custom")),
        ]
    );

    // A messaging event that sends: PRODUCER.
    let sp = span_for(find(&events, "orders publish"));
    assert_eq!(sp.kind, SpanKind::Producer as i32);

    let stats = handle.stats();
    assert_eq!(stats.items_exported, 4);
    assert_eq!((stats.items_failed, stats.retries), (0, 0));
    assert!(monitor.shutdown(WAIT));
    assert_eq!(monitor.stats().export_errors, 0);
    assert!(monitor.stats().exported >= 4);
}

fn metric_named<'a>(metrics: &'a [OtlpMetric], name: &str) -> &'a OtlpMetric {
    metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"))
}

fn rustmon_attrs(kvs: &[KeyValue]) -> Attrs {
    let mut out: Attrs = Vec::new();
    for kv in kvs {
        let v = rustmon_otlp::mapping::any_value(&kv.value).value.unwrap();
        out.retain(|(k, _)| k != kv.key.as_ref());
        out.push((kv.key.to_string(), v));
    }
    out
}

#[test]
fn metrics_are_exported_field_by_field() {
    let server = TestServer::start();
    let capture = Capture::new();
    let exporter = OtlpExporter::builder()
        .endpoint(format!("{}/", server.endpoint()))
        .compression(rustmon_otlp::Compression::Gzip)
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = Monitor::builder("inventory")
        .core_config(quiet_core())
        .listener(capture.listener())
        .listener(exporter)
        .build()
        .unwrap();

    for i in 0..5 {
        let mut e = monitor.start_event(Kind::Server, "GET /items");
        if i == 4 {
            e.record_error("http.Status", "500");
        }
        e.finish();
    }
    monitor.start_event(Kind::Cache, "GET").finish();

    let mut zeroes = ExpHistogram::default();
    for v in [0.0, 0.0, 0.25, 0.5, 3.0] {
        zeroes.record(v);
    }
    monitor.record_metrics([
        Metric {
            name: Cow::Borrowed("app.pool.connections"),
            description: Cow::Borrowed("Connections in the pool"),
            unit: Cow::Borrowed("{connection}"),
            attributes: vec![KeyValue::new("pool", "primary")],
            start_unix_nanos: 1_000,
            time_unix_nanos: 2_000,
            data: MetricData::Gauge(Number::F64(7.5)),
        },
        Metric {
            name: Cow::Borrowed("app.jobs.done"),
            description: Cow::Borrowed("Jobs done"),
            unit: Cow::Borrowed("{job}"),
            attributes: Vec::new(),
            start_unix_nanos: 1_000,
            time_unix_nanos: 2_000,
            data: MetricData::Sum {
                value: Number::I64(42),
                monotonic: true,
                delta: true,
            },
        },
        Metric {
            name: Cow::Borrowed("app.job.size"),
            description: Cow::Borrowed("Job sizes"),
            unit: Cow::Borrowed("By"),
            attributes: Vec::new(),
            start_unix_nanos: 1_000,
            time_unix_nanos: 2_000,
            data: MetricData::Histogram(zeroes),
        },
    ]);
    // Shutdown exports the RED histograms and self-metrics, and flushes the exporter.
    assert!(monitor.shutdown(WAIT));
    let sent = capture.metrics();
    assert!(handle.flush(WAIT));
    let requests = server.requests();

    let mut otlp: Vec<OtlpMetric> = Vec::new();
    for r in requests.iter().filter(|r| r.path == "/v1/metrics") {
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        let req = r.metrics();
        assert_eq!(req.resource_metrics.len(), 1);
        let rm = &req.resource_metrics[0];
        let res = attrs(&rm.resource.as_ref().unwrap().attributes);
        assert_eq!(res[0], ("service.name".to_owned(), s("inventory")));
        assert_eq!(rm.scope_metrics.len(), 1);
        assert_eq!(rm.scope_metrics[0].scope.as_ref().unwrap().name, "rustmon");
        otlp.extend(rm.scope_metrics[0].metrics.iter().cloned());
    }
    // No metric name appears twice: points of one metric share it.
    let mut names: Vec<&str> = otlp.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "one OTLP metric per name: {names:?}");

    // Every point the pipeline produced arrives, field by field.
    assert!(!sent.is_empty());
    let mut points = 0;
    for m in &sent {
        let o = metric_named(&otlp, &m.name);
        assert_eq!(o.description, m.description);
        assert_eq!(o.unit, m.unit);
        let want_attrs = rustmon_attrs(&m.attributes);
        points += 1;
        match (&m.data, o.data.as_ref().unwrap()) {
            (MetricData::Gauge(n), Data::Gauge(g)) => {
                let p = g
                    .data_points
                    .iter()
                    .find(|p| attrs(&p.attributes) == want_attrs)
                    .unwrap_or_else(|| panic!("no point of {} {want_attrs:?}", m.name));
                assert_eq!(
                    (p.start_time_unix_nano, p.time_unix_nano),
                    (m.start_unix_nanos, m.time_unix_nanos)
                );
                assert_eq!(p.value, Some(number(*n)));
            }
            (
                MetricData::Sum {
                    value,
                    monotonic,
                    delta,
                },
                Data::Sum(sum),
            ) => {
                assert_eq!(sum.is_monotonic, *monotonic);
                let temporality = if *delta {
                    AggregationTemporality::Delta
                } else {
                    AggregationTemporality::Cumulative
                };
                assert_eq!(sum.aggregation_temporality, temporality as i32);
                let p = sum
                    .data_points
                    .iter()
                    .find(|p| attrs(&p.attributes) == want_attrs)
                    .unwrap_or_else(|| panic!("no point of {} {want_attrs:?}", m.name));
                assert_eq!(
                    (p.start_time_unix_nano, p.time_unix_nano),
                    (m.start_unix_nanos, m.time_unix_nanos)
                );
                assert_eq!(p.value, Some(number(*value)));
            }
            (MetricData::Histogram(h), Data::ExponentialHistogram(eh)) => {
                assert_eq!(
                    eh.aggregation_temporality,
                    AggregationTemporality::Delta as i32
                );
                let p = eh
                    .data_points
                    .iter()
                    .find(|p| attrs(&p.attributes) == want_attrs)
                    .unwrap_or_else(|| panic!("no point of {} {want_attrs:?}", m.name));
                assert_eq!(
                    (p.start_time_unix_nano, p.time_unix_nano),
                    (m.start_unix_nanos, m.time_unix_nanos)
                );
                assert_eq!(p.scale, h.scale);
                assert_eq!(p.count, h.count);
                assert_eq!(p.sum, Some(h.sum));
                assert_eq!(p.zero_count, h.zero_count);
                assert_eq!(p.min, Some(h.min));
                assert_eq!(p.max, Some(h.max));
                let b = p.positive.as_ref().unwrap();
                assert_eq!((b.offset, &b.bucket_counts), (h.offset, &h.counts));
                assert!(p.negative.is_none());
            }
            (want, got) => panic!("{}: {want:?} sent as {got:?}", m.name),
        }
    }
    let spans = span_count(&requests) as u64;
    assert_eq!(spans, 6);
    assert_eq!(handle.stats().items_exported, points + spans);

    // The points this test caused are among them.
    let red = metric_named(&otlp, rustmon_core::RED_METRIC);
    let Some(Data::ExponentialHistogram(red)) = &red.data else {
        panic!("RED durations are an exponential histogram")
    };
    let ok = red
        .data_points
        .iter()
        .find(|p| {
            let a = attrs(&p.attributes);
            a.contains(&("span.name".to_owned(), s("GET /items")))
                && a.contains(&("otel.status_code".to_owned(), s("UNSET")))
        })
        .unwrap();
    assert_eq!(ok.count, 4);
    let recorded = metric_named(&otlp, "rustmon.agent.events.recorded");
    let Some(Data::Sum(recorded)) = &recorded.data else {
        panic!("self-metrics are sums")
    };
    assert_eq!(
        recorded.data_points[0].value,
        Some(number_data_point::Value::AsInt(6))
    );
    let Some(Data::ExponentialHistogram(sizes)) = &metric_named(&otlp, "app.job.size").data else {
        panic!("histograms are exponential histograms")
    };
    assert_eq!(sizes.data_points[0].zero_count, 2);
}

fn number(n: Number) -> number_data_point::Value {
    match n {
        Number::I64(v) => number_data_point::Value::AsInt(v),
        Number::F64(v) => number_data_point::Value::AsDouble(v),
    }
}

fn monitor_with(exporter: OtlpExporter) -> Monitor {
    Monitor::builder("svc")
        .core_config(quiet_core())
        .listener(exporter)
        .build()
        .unwrap()
}

#[test]
fn unavailable_is_retried_honouring_retry_after() {
    let server = TestServer::start();
    server.script([Reply::status(503).header("Retry-After", "1")]);
    // Without Retry-After the first retry would wait about a minute: delivery within the test's
    // wait shows the header was honoured.
    let exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .initial_backoff(Duration::from_secs(60))
        .max_backoff(Duration::from_secs(60))
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = monitor_with(exporter);
    monitor.start_event(Kind::Custom, "a").finish();
    monitor.start_event(Kind::Custom, "b").finish();
    assert!(monitor.flush(WAIT));

    let requests = server.wait_until("a retry", |r| r.len() >= 2);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].body, requests[1].body, "the same request again");
    assert_eq!(span_count(&requests[1..]), 2);
    let stats = handle.stats();
    assert_eq!(stats.retries, 1);
    assert_eq!(stats.items_exported, 2);
    assert_eq!(stats.items_failed, 0);
    let core = monitor.stats();
    assert_eq!((core.exported, core.export_errors), (2, 0));
    monitor.shutdown(WAIT);
}

#[test]
fn too_many_requests_and_gateway_errors_are_retried() {
    let server = TestServer::start();
    server.script([Reply::status(429), Reply::status(502), Reply::status(504)]);
    let exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .initial_backoff(Duration::from_millis(10))
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = monitor_with(exporter);
    monitor.start_event(Kind::Custom, "a").finish();
    assert!(monitor.flush(WAIT));
    assert_eq!(server.wait_until("4 attempts", |r| r.len() >= 4).len(), 4);
    let stats = handle.stats();
    assert_eq!(
        (stats.retries, stats.items_exported, stats.items_failed),
        (3, 1, 0)
    );
    monitor.shutdown(WAIT);
}

#[test]
fn bad_request_is_not_retried() {
    let server = TestServer::start();
    server.set_default(Reply::status(400));
    let exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .initial_backoff(Duration::from_millis(10))
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = monitor_with(exporter);
    monitor.start_event(Kind::Custom, "a").finish();
    monitor.start_event(Kind::Custom, "b").finish();
    assert!(monitor.flush(WAIT));
    assert!(handle.flush(WAIT));

    assert_eq!(server.requests().len(), 1, "a 400 is not retried");
    let stats = handle.stats();
    assert_eq!(stats.retries, 0);
    assert_eq!((stats.items_exported, stats.items_failed), (0, 2));
    let core = monitor.stats();
    assert_eq!((core.exported, core.export_errors), (0, 2));
    monitor.shutdown(WAIT);
}

#[test]
fn partial_success_counts_rejected_spans() {
    let server = TestServer::start();
    let body = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess {
            rejected_spans: 1,
            error_message: "span too old".into(),
        }),
    }
    .encode_to_vec();
    server.script([Reply::status(200)
        .header("Content-Type", "application/x-protobuf")
        .body(body)]);
    let exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = monitor_with(exporter);
    monitor.start_event(Kind::Custom, "a").finish();
    monitor.start_event(Kind::Custom, "b").finish();
    monitor.start_event(Kind::Custom, "c").finish();
    assert!(monitor.flush(WAIT));
    let stats = handle.stats();
    assert_eq!((stats.items_exported, stats.items_failed), (2, 1));
    let core = monitor.stats();
    assert_eq!((core.exported, core.export_errors), (2, 1));
    monitor.shutdown(WAIT);
}

#[test]
fn a_receiver_slower_than_the_timeout_fails_after_retries() {
    let server = TestServer::start();
    server.set_default(Reply::status(200).delay(Duration::from_secs(5)));
    let exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .timeout(Duration::from_millis(200))
        .max_retries(2)
        .initial_backoff(Duration::from_millis(10))
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = monitor_with(exporter);
    monitor.start_event(Kind::Custom, "slow").finish();
    assert!(monitor.flush(WAIT));
    assert!(handle.flush(WAIT));

    assert_eq!(server.wait_until("3 attempts", |r| r.len() >= 3).len(), 3);
    let stats = handle.stats();
    assert_eq!(stats.retries, 2);
    assert_eq!((stats.items_exported, stats.items_failed), (0, 1));
    assert_eq!(monitor.stats().export_errors, 1);
    monitor.shutdown(Duration::from_secs(1));
}

#[test]
fn a_full_buffer_drops_the_oldest_and_never_blocks_recording() {
    // A receiver that accepts connections and never answers: every request hangs until the
    // timeout, so requests pile up.
    let endpoint = common::black_hole();
    let capture = Capture::new();
    let exporter = OtlpExporter::builder()
        .endpoint(endpoint)
        .timeout(Duration::from_secs(2))
        .max_retries(0)
        .max_batch(1)
        .max_queue(2)
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = Monitor::builder("svc")
        .core_config(quiet_core())
        .listener(exporter)
        .listener(capture.listener())
        .build()
        .unwrap();

    const N: usize = 40;
    for i in 0..N {
        monitor
            .start_event(Kind::Custom, "work")
            .with("i", i as i64)
            .finish();
    }
    // The pipeline keeps delivering to other listeners while the exporter is stuck.
    assert_eq!(capture.wait_for(N).len(), N);
    assert_eq!(
        monitor.stats().dropped,
        0,
        "nothing was dropped on the hot path"
    );

    let stats = handle.stats();
    assert!(
        stats.queued_requests <= 2,
        "the buffer stays bounded: {stats:?}"
    );
    assert!(
        stats.items_dropped > 0,
        "the oldest were dropped: {stats:?}"
    );
    assert_eq!(stats.items_exported, 0);

    // Shutdown gives up on what is left; everything is accounted for.
    monitor.shutdown(Duration::from_millis(100));
    assert!(handle.flush(WAIT), "the worker stops");
    let stats = handle.stats();
    assert!(stats.items_failed >= N as u64, "{stats:?}");
    assert_eq!(stats.items_exported, 0);
    assert_eq!(monitor.stats().export_errors, stats.items_failed);
}

#[test]
fn an_unreachable_receiver_counts_every_item_as_failed() {
    let exporter = OtlpExporter::builder()
        .endpoint(common::refused())
        .max_retries(1)
        .initial_backoff(Duration::from_millis(10))
        .max_batch(2)
        .max_queue(3)
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = monitor_with(exporter);
    for _ in 0..20 {
        monitor.start_event(Kind::Custom, "work").finish();
    }
    assert!(monitor.flush(WAIT));
    let stats = handle.stats();
    assert_eq!(stats.items_failed, 20, "{stats:?}");
    assert!(stats.items_dropped > 0, "{stats:?}");
    assert_eq!(monitor.stats().export_errors, 20);
    monitor.shutdown(Duration::from_secs(1));
}

#[tokio::test(flavor = "current_thread")]
async fn works_inside_a_current_thread_runtime() {
    let server = TestServer::start();
    let exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .with_env(false)
        .build()
        .unwrap();
    let monitor = monitor_with(exporter);

    let parent = monitor.start_event(Kind::Server, "GET /async");
    let ctx = parent.context();
    let m = monitor.clone();
    async move {
        tokio::task::yield_now().await;
        m.start_event(Kind::Client, "GET upstream").finish();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    .with_context(ctx)
    .await;
    parent.finish();

    // The runtime's only thread blocks here, and the exporter still delivers: it needs no runtime.
    assert!(monitor.flush(WAIT));
    let requests = server.wait_until("2 spans", |r| span_count(r) >= 2);
    let spans = spans_of(&requests);
    let parent_span = spans
        .iter()
        .find(|(s, _, _)| s.name == "GET /async")
        .unwrap();
    let child = spans
        .iter()
        .find(|(s, _, _)| s.name == "GET upstream")
        .unwrap();
    assert_eq!(child.0.parent_span_id, parent_span.0.span_id);
    assert_eq!(child.0.trace_id, parent_span.0.trace_id);
    assert_eq!(child.0.kind, SpanKind::Client as i32);
    monitor.shutdown(WAIT);
}

#[test]
fn an_exporter_used_alone_sends_what_it_is_given() {
    let server = TestServer::start();
    let mut exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .with_env(false)
        .build()
        .unwrap();
    let monitor = Monitor::builder("alone").build().unwrap();
    let mut e = monitor.start_event(Kind::Custom, "x");
    e.set("k", "v");
    let record = e.record().unwrap().clone();
    e.discard();
    exporter.export_events(monitor.resource(), [&record]);
    assert!(exporter.stop(WAIT));
    let spans = spans_of(&server.requests());
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].0.span_id, record.span_id.0.to_be_bytes());
    // After stop, new work is counted as failed, never sent.
    exporter.export_events(monitor.resource(), [&record]);
    assert_eq!(exporter.stats().items_failed, 1);
    assert_eq!(server.requests().len(), 1);
    monitor.shutdown(WAIT);
}

#[test]
fn bodies_are_uncompressed_by_default() {
    let server = TestServer::start();
    let exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .header("Authorization", "Bearer t0ken")
        .with_env(false)
        .build()
        .unwrap();
    assert!(
        !format!("{exporter:?}").contains("t0ken"),
        "header values are not printed"
    );
    let monitor = monitor_with(exporter);
    monitor.start_event(Kind::Custom, "plain").finish();
    assert!(monitor.flush(WAIT));
    let requests = server.wait_until("1 request", |r| !r.is_empty());
    assert_eq!(requests[0].header("content-encoding"), None);
    assert_eq!(requests[0].header("authorization"), Some("Bearer t0ken"));
    assert_eq!(spans_of(&requests)[0].0.name, "plain");
    monitor.shutdown(WAIT);
}

#[test]
fn the_oldest_requests_are_dropped_first() {
    let server = TestServer::start();
    // The first request is held while the others pile up behind it.
    server.script([Reply::status(200).delay(Duration::from_secs(1))]);
    let exporter = OtlpExporter::builder()
        .endpoint(server.endpoint())
        .max_batch(1)
        .max_queue(2)
        .with_env(false)
        .build()
        .unwrap();
    let handle = exporter.handle();
    let monitor = monitor_with(exporter);
    const N: i64 = 10;
    for i in 0..N {
        monitor
            .start_event(Kind::Custom, "work")
            .with("i", i)
            .finish();
    }
    assert!(monitor.flush(WAIT));
    let mut received: Vec<i64> = spans_of(&server.requests())
        .iter()
        .map(|(span, _, _)| {
            match attrs(&span.attributes)
                .into_iter()
                .find(|(k, _)| k == "i")
                .map(|(_, v)| v)
            {
                Some(V::IntValue(i)) => i,
                other => panic!("attribute i: {other:?}"),
            }
        })
        .collect();
    received.sort_unstable();
    // The newest two are always delivered; of the older ones at most one made it: the one the
    // exporter had already taken (usually the first, or a later one if the queue overflowed
    // before the exporter thread woke).
    assert!(received.ends_with(&[N - 2, N - 1]), "{received:?}");
    assert!(received.len() <= 3, "{received:?}");
    let stats = handle.stats();
    assert_eq!(stats.items_exported, received.len() as u64);
    assert_eq!(stats.items_dropped, (N as u64) - stats.items_exported);
    assert_eq!(monitor.stats().export_errors, stats.items_dropped);
    monitor.shutdown(WAIT);
}
