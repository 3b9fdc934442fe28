//! Retention and agent-sent RED metrics against a running collector.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Collector, TempDir};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics, metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use rustmon_server::model::hex;
use rustmon_server::testdata::{Rng, service_spans};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn post(url: &str, body: Vec<u8>) {
    let r = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
}

/// Polls until `f` holds; a generous cap turns a hang into a failure message.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn retention_deletes_old_segments() {
    let dir = TempDir::new("retention");
    let c = Collector::start(&dir.0, &["--retention", "1h", "--seal-interval", "1s"]);
    let traces = format!("{}/v1/traces", c.otlp_http);
    let mut rng = Rng::new(9);
    let old = service_spans(&mut rng, "legacy", 25, now_ns() - 3 * 3600 * 1_000_000_000);
    let old_trace = hex(&old.scope_spans[0].spans[0].trace_id);
    let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![old],
    };
    post(&traces, req.encode_to_vec());
    // sealed after a second, then deleted as a whole segment
    wait_for("old spans to be deleted", || {
        c.ok("/api/v1/health")["spans"] == 0 && c.ok("/api/v1/health")["segments"] == 0
    });
    let (st, _) = c.get(&format!("/api/v1/traces/{old_trace}"));
    assert_eq!(st, 404);
    let v = c.ok("/api/v1/services?from=-4h");
    assert_eq!(
        v["services"].as_array().unwrap().len(),
        0,
        "old rollups deleted: {v}"
    );
    // fresh data stays
    let fresh = service_spans(&mut rng, "fresh", 25, now_ns() - 60_000_000_000);
    let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![fresh],
    };
    post(&traces, req.encode_to_vec());
    wait_for("fresh spans to be sealed", || {
        c.ok("/api/v1/health")["sealed_spans"] == 100
    });
    assert_eq!(c.ok("/api/v1/health")["spans"], 100);
    c.stop();
}

fn s(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

#[test]
fn agent_red_metrics_replace_sampled_spans() {
    let dir = TempDir::new("red");
    let c = Collector::start(&dir.0, &[]);
    let mut rng = Rng::new(5);
    // a few sampled spans of service "catalog" (GET /products/{id} among others)
    let mut rs = service_spans(&mut rng, "catalog", 40, now_ns() - 120_000_000_000);
    for sp in &mut rs.scope_spans[0].spans {
        if sp.kind == 2 {
            sp.name = "GET /products/{id}".into();
        }
    }
    let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![rs],
    };
    post(&format!("{}/v1/traces", c.otlp_http), req.encode_to_vec());
    let v = c.ok("/api/v1/services/catalog/operations?kind=server");
    assert_eq!(v["operations"][0]["count"], 40);
    let clients_before =
        c.ok("/api/v1/services/catalog/operations?kind=client")["operations"].clone();
    // the agent's exact RED metric: 1000 requests, 50 errors, 10–100 ms
    let point = |err: bool, count: u64| HistogramDataPoint {
        attributes: vec![
            s("span.kind", "server"),
            s("span.name", "GET /products/{id}"),
            s("otel.status_code", if err { "ERROR" } else { "OK" }),
        ],
        time_unix_nano: now_ns() - 60_000_000_000,
        count,
        sum: Some(count as f64 * 0.05),
        bucket_counts: vec![0, count, 0],
        explicit_bounds: vec![0.01, 0.1],
        ..Default::default()
    };
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![s("service.name", "catalog")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: "rustmon.operation.duration".into(),
                    unit: "s".into(),
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: vec![point(false, 950), point(true, 50)],
                        aggregation_temporality: 1,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    post(&format!("{}/v1/metrics", c.otlp_http), req.encode_to_vec());
    let v = c.ok("/api/v1/services/catalog/operations?kind=server");
    let op = &v["operations"][0];
    assert_eq!(op["name"], "GET /products/{id}");
    assert_eq!(op["count"], 1000, "{v}");
    assert_eq!(op["errors"], 50);
    let p50 = op["p50_ms"].as_f64().unwrap();
    assert!(
        (10.0..=100.0).contains(&p50),
        "p50 {p50} within the 10–100 ms bucket"
    );
    let v = c.ok("/api/v1/services");
    let cat = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["service"] == "catalog")
        .unwrap()
        .clone();
    assert_eq!(cat["count"], 1000);
    // the span-derived client operations are untouched
    let v = c.ok("/api/v1/services/catalog/operations?kind=client");
    assert_eq!(v["operations"], clients_before);
    c.stop();
}

/// Trace searches over several sealed segments and the in-memory table find what a full scan
/// of the sent spans finds (the search skips blocks by their operation summaries).
#[test]
fn searches_across_segments_find_the_best_matches() {
    let dir = TempDir::new("search");
    let c = Collector::start(&dir.0, &["--seal-interval", "1s"]);
    let mut rng = Rng::new(11);
    let mut sent = Vec::new();
    for batch in 0..5u64 {
        let rs = service_spans(
            &mut rng,
            "svc",
            250,
            now_ns() - (30 - batch) * 60_000_000_000,
        );
        sent.extend(rs.scope_spans[0].spans.clone());
        let req = opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest {
            resource_spans: vec![rs],
        };
        post(&format!("{}/v1/traces", c.otlp_http), req.encode_to_vec());
        if batch < 4 {
            let want = (batch + 1) * 1000;
            wait_for("the batch to be sealed", || {
                c.ok("/api/v1/health")["sealed_spans"] == want
            });
        }
    }
    let dur = |s: &opentelemetry_proto::tonic::trace::v1::Span| {
        s.end_time_unix_nano - s.start_time_unix_nano
    };
    let found = |q: &str, field: &str| -> Vec<u64> {
        let v = c.ok(&format!("/api/v1/traces?service=svc&from=-1h&{q}"));
        v["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| match field {
                "duration" => (t["duration_ms"].as_f64().unwrap() * 1e6).round() as u64,
                _ => t["start_unix_nano"].as_u64().unwrap(),
            })
            .collect()
    };
    let top = |mut v: Vec<u64>, n: usize| {
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.truncate(n);
        v
    };
    let server = |s: &&opentelemetry_proto::tonic::trace::v1::Span| s.kind == 2;
    let slowest = top(sent.iter().filter(server).map(dur).collect(), 10);
    assert_eq!(
        found("kind=server&sort=slowest&limit=10", "duration"),
        slowest
    );
    let route = "GET /orders/{id}";
    let slowest = top(
        sent.iter().filter(|s| s.name == route).map(dur).collect(),
        5,
    );
    let q = format!("name={}&sort=slowest&limit=5", route.replace(' ', "%20"));
    assert_eq!(found(&q, "duration"), slowest);
    let newest = top(
        sent.iter()
            .filter(|s| s.name == route)
            .map(|s| s.start_time_unix_nano)
            .collect(),
        5,
    );
    let q = format!("name={}&limit=5", route.replace(' ', "%20"));
    assert_eq!(found(&q, "start"), newest);
    let failed = top(
        sent.iter()
            .filter(|s| s.status.as_ref().is_some_and(|st| st.code == 2))
            .map(|s| s.start_time_unix_nano)
            .collect(),
        3,
    );
    assert_eq!(found("status=error&limit=3", "start"), failed);
    // one match per trace: the newest of its spans of 150 ms or more
    let mut long: Vec<&[u8]> = sent
        .iter()
        .filter(|s| dur(s) >= 150_000_000)
        .map(|s| s.trace_id.as_slice())
        .collect();
    long.sort_unstable();
    long.dedup();
    assert_eq!(
        found("min_duration_ms=150&limit=1000", "start").len(),
        long.len()
    );
    c.stop();
}
