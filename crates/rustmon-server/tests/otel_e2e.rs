//! The `opentelemetry-otlp` exporter (HTTP protobuf, HTTP JSON + gzip, gRPC) sending spans and
//! metrics into a running `rustmon serve`, then every query endpoint checked.

mod common;

use std::time::{Duration, SystemTime};

use common::{Collector, TempDir, approx};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;

#[derive(Clone, Copy, PartialEq)]
enum Transport {
    HttpProto,
    HttpJsonGzip,
    Grpc,
}

/// Where to send.
#[derive(Clone)]
struct Endpoints {
    otlp_http: String,
    otlp_grpc: String,
}

fn tracer_provider(t: Transport, c: &Endpoints, service: &str) -> SdkTracerProvider {
    let exporter = match t {
        Transport::HttpProto => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{}/v1/traces", c.otlp_http))
            .build(),
        Transport::HttpJsonGzip => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpJson)
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .with_endpoint(format!("{}/v1/traces", c.otlp_http))
            .build(),
        Transport::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(c.otlp_grpc.clone())
            .build(),
    }
    .unwrap();
    SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build()
}

fn meter_provider(t: Transport, c: &Endpoints, service: &str) -> SdkMeterProvider {
    let exporter = match t {
        Transport::HttpProto | Transport::HttpJsonGzip => {
            opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("{}/v1/metrics", c.otlp_http))
                .build()
        }
        Transport::Grpc => opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(c.otlp_grpc.clone())
            .build(),
    }
    .unwrap();
    SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter).build())
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_string())
                .build(),
        )
        .build()
}

/// Sends the scenario: 100 `checkout` requests (1..=100 ms, every 10th an error), each with a
/// database span and an outgoing call; the first 10 calls reach an instrumented `inventory`.
/// Returns the trace id of request 0 (which has an inventory child) and of request 42.
fn send_scenario(t: Transport, c: &Endpoints) -> (String, String) {
    let checkout = tracer_provider(t, c, "checkout");
    let inventory = tracer_provider(t, c, "inventory");
    let tr = checkout.tracer("e2e");
    let inv = inventory.tracer("e2e");
    let base = SystemTime::now() - Duration::from_secs(120);
    let mut ids = (String::new(), String::new());
    for i in 0..100u64 {
        let start = base + Duration::from_millis(i * 500);
        let dur = Duration::from_millis(i + 1);
        let mut server = tr
            .span_builder("GET /orders/{id}")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/orders/{id}"),
                KeyValue::new("order.id", i as i64),
                KeyValue::new(
                    "http.response.status_code",
                    if i % 10 == 0 { 500 } else { 200 },
                ),
            ])
            .start(&tr);
        if i % 10 == 0 {
            server.set_status(Status::error("upstream failed"));
        }
        let trace_id = server.span_context().trace_id().to_string();
        if i == 0 {
            ids.0 = trace_id.clone();
        }
        if i == 42 {
            ids.1 = trace_id.clone();
        }
        let cx = opentelemetry::Context::current()
            .with_remote_span_context(server.span_context().clone());
        let mut db = tr
            .span_builder("SELECT orders")
            .with_kind(SpanKind::Client)
            .with_start_time(start + Duration::from_micros(100))
            .with_attributes([
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new(
                    "db.query.text",
                    format!("SELECT * FROM orders WHERE id = {i}"),
                ),
                KeyValue::new("server.address", "db.local"),
                KeyValue::new("db.response.returned_rows", 1i64),
            ])
            .start_with_context(&tr, &cx);
        db.end_with_timestamp(start + Duration::from_micros(600));
        let call_start = start + Duration::from_micros(700);
        let call_dur = dur.mul_f64(0.5);
        let mut call = tr
            .span_builder("GET inventory")
            .with_kind(SpanKind::Client)
            .with_start_time(call_start)
            .with_attributes([
                KeyValue::new("server.address", "inventory.local"),
                KeyValue::new("server.port", 8080i64),
            ])
            .start_with_context(&tr, &cx);
        if i < 10 {
            // the called service, a different process: parent is the remote client span
            let remote = SpanContext::new(
                call.span_context().trace_id(),
                call.span_context().span_id(),
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            );
            let rcx = opentelemetry::Context::current().with_remote_span_context(remote);
            let mut s = inv
                .span_builder("GET /stock/{sku}")
                .with_kind(SpanKind::Server)
                .with_start_time(call_start + Duration::from_micros(50))
                .start_with_context(&inv, &rcx);
            s.end_with_timestamp(call_start + call_dur - Duration::from_micros(50));
        }
        call.end_with_timestamp(call_start + call_dur);
        server.end_with_timestamp(start + dur);
    }
    checkout.shutdown().unwrap();
    inventory.shutdown().unwrap();

    let meters = meter_provider(t, c, "checkout");
    let m = meters.meter("e2e");
    let orders = m.u64_counter("orders.placed").build();
    orders.add(5, &[KeyValue::new("region", "eu")]);
    orders.add(2, &[KeyValue::new("region", "us")]);
    let mem = m.u64_gauge("process.memory.usage").with_unit("By").build();
    mem.record(123_456, &[]);
    meters.force_flush().unwrap();
    meters.shutdown().unwrap();
    ids
}

fn check_queries(c: &Collector, ids: &(String, String)) {
    let (tid0, tid42) = ids;
    // services
    let v = c.ok("/api/v1/services?from=-1h");
    let svcs = v["services"].as_array().unwrap();
    let co = svcs
        .iter()
        .find(|s| s["service"] == "checkout")
        .expect("checkout listed");
    assert_eq!(co["count"], 100, "{co}");
    assert_eq!(co["errors"], 10);
    approx(&co["error_rate"], 0.1, 1e-9, "error rate");
    approx(&co["p50_ms"], 50.0, 0.05, "p50");
    approx(&co["p95_ms"], 95.0, 0.05, "p95");
    approx(&co["p99_ms"], 99.0, 0.05, "p99");
    let inv = svcs
        .iter()
        .find(|s| s["service"] == "inventory")
        .expect("inventory listed");
    assert_eq!(inv["count"], 10);

    // operations
    let v = c.ok("/api/v1/services/checkout/operations");
    let ops = v["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 3, "{v}");
    let srv = ops
        .iter()
        .find(|o| o["name"] == "GET /orders/{id}")
        .unwrap();
    assert_eq!(srv["kind"], "server");
    assert_eq!(srv["count"], 100);
    assert_eq!(srv["errors"], 10);
    approx(&srv["avg_ms"], 50.5, 1e-6, "avg");
    let share: f64 = ops.iter().map(|o| o["time_share"].as_f64().unwrap()).sum();
    approx(&serde_json::json!(share), 1.0, 1e-6, "time shares");
    assert_eq!(ops[0]["name"], "GET /orders/{id}", "sorted by total time");
    let v = c.ok("/api/v1/services/checkout/operations?kind=client");
    assert_eq!(v["operations"].as_array().unwrap().len(), 2);

    // timeseries
    let v = c.ok("/api/v1/services/checkout/timeseries?from=-1h&step=1m");
    let pts = v["points"].as_array().unwrap();
    assert_eq!(pts.len(), 60);
    let total: u64 = pts.iter().map(|p| p["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 100);
    let v = c.ok("/api/v1/services/checkout/timeseries?name=SELECT%20orders&step=5m");
    let total: u64 = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 100);

    // trace search
    let v = c.ok("/api/v1/traces?service=checkout&min_duration_ms=90&sort=slowest");
    let tr = v["traces"].as_array().unwrap();
    assert_eq!(tr.len(), 11, "{v}");
    approx(&tr[0]["duration_ms"], 100.0, 1e-6, "slowest first");
    let v = c.ok("/api/v1/traces?service=checkout&status=error&limit=100");
    assert_eq!(v["traces"].as_array().unwrap().len(), 10);
    let v = c.ok("/api/v1/traces?attr.order.id=42");
    let tr = v["traces"].as_array().unwrap();
    assert_eq!(tr.len(), 1);
    assert_eq!(&tr[0]["trace_id"], tid42.as_str());
    let v = c.ok("/api/v1/traces?service=checkout&name=GET%20inventory");
    assert_eq!(
        v["traces"].as_array().unwrap().len(),
        20,
        "default limit 20"
    );

    // trace by id: 4 spans over two services, tree by parent links
    let v = c.ok(&format!("/api/v1/traces/{tid0}"));
    assert_eq!(v["span_count"], 4, "{v}");
    assert_eq!(v["services"], serde_json::json!(["checkout", "inventory"]));
    assert_eq!(v["root"]["name"], "GET /orders/{id}");
    let spans = v["spans"].as_array().unwrap();
    let stock = spans
        .iter()
        .find(|s| s["name"] == "GET /stock/{sku}")
        .unwrap();
    assert_eq!(stock["depth"], 2);
    let call = spans.iter().find(|s| s["name"] == "GET inventory").unwrap();
    assert_eq!(stock["parent_span_id"], call["span_id"]);
    assert_eq!(spans[0]["status"], "error");

    // queries by fingerprint
    let v = c.ok("/api/v1/services/checkout/queries");
    let q = v["queries"].as_array().unwrap();
    assert_eq!(q.len(), 1, "{v}");
    assert_eq!(q[0]["fingerprint"], "SELECT * FROM orders WHERE id = ?");
    assert_eq!(q[0]["calls"], 100);
    assert_eq!(q[0]["rows"], 100);
    approx(&q[0]["p95_ms"], 0.5, 0.05, "statement p95");

    // dependencies
    let v = c.ok("/api/v1/dependencies");
    let edges = v["edges"].as_array().unwrap();
    let edge = |a: &str, b: &str| {
        edges
            .iter()
            .find(|e| e["caller"] == a && e["callee"] == b)
            .unwrap_or_else(|| panic!("edge {a}->{b} in {v}"))
            .clone()
    };
    assert_eq!(edge("checkout", "inventory")["calls"], 10);
    assert_eq!(edge("checkout", "db.local")["calls"], 100);
    assert_eq!(edge("checkout", "inventory.local:8080")["calls"], 90);

    // metrics
    let v = c.ok("/api/v1/services/checkout/metrics");
    let names: Vec<&str> = v["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"orders.placed") && names.contains(&"process.memory.usage"),
        "{v}"
    );
    let v = c.ok("/api/v1/services/checkout/metrics?name=orders.placed");
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{v}");
    let eu = series
        .iter()
        .find(|s| s["attributes"]["region"] == "eu")
        .unwrap();
    assert_eq!(
        eu["points"].as_array().unwrap().last().unwrap()["value"],
        5.0
    );
}

fn run(t: Transport) {
    let dir = TempDir::new("e2e");
    let c = Collector::start(&dir.0, &[]);
    let ep = Endpoints {
        otlp_http: c.otlp_http.clone(),
        otlp_grpc: c.otlp_grpc.clone(),
    };
    let ids = if t == Transport::Grpc {
        // tonic channels are created inside a runtime; exporting blocks, so off its workers
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::task::spawn_blocking(move || send_scenario(Transport::Grpc, &ep))
                .await
                .unwrap()
        })
    } else {
        send_scenario(t, &ep)
    };
    check_queries(&c, &ids);
    // restart: everything acknowledged is still there (sealed on shutdown)
    c.stop();
    let c = Collector::start(&dir.0, &[]);
    check_queries(&c, &ids);
    c.stop();
}

#[test]
fn http_protobuf_exporter() {
    run(Transport::HttpProto);
}

#[test]
fn http_json_gzip_exporter() {
    run(Transport::HttpJsonGzip);
}

#[test]
fn grpc_exporter() {
    run(Transport::Grpc);
}
