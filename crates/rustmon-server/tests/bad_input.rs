//! Bad input: each answered with the right status and a message, nothing panics.

mod common;

use std::io::Write;

use common::{Collector, TempDir};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use rustmon_server::testdata::{Rng, realistic_request};
use serde_json::{Value, json};

fn post(url: &str, ct: &str, ce: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut r = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", ct)
        .body(body);
    if let Some(ce) = ce {
        r = r.header("content-encoding", ce);
    }
    let r = r.send().unwrap();
    (r.status().as_u16(), r.text().unwrap())
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[test]
fn otlp_bad_input() {
    let dir = TempDir::new("bad");
    let c = Collector::start(&dir.0, &["--max-request-size", "64KiB"]);
    let traces = format!("{}/v1/traces", c.otlp_http);
    let metrics = format!("{}/v1/metrics", c.otlp_http);

    let (st, body) = post(&traces, "text/plain", None, b"hello".to_vec());
    assert_eq!(st, 415, "{body}");
    assert!(body.contains("unsupported content type"), "{body}");

    let (st, body) = post(&traces, "application/x-protobuf", None, vec![0xff; 64]);
    assert_eq!(st, 400, "{body}");
    let (st, body) = post(
        &traces,
        "application/json",
        None,
        b"{\"resourceSpans\": [".to_vec(),
    );
    assert_eq!(st, 400);
    assert!(body.contains("malformed JSON"), "{body}");
    let (st, _) = post(&metrics, "application/json", None, b"[1,2]".to_vec());
    assert_eq!(st, 400);
    let (st, body) = post(
        &traces,
        "application/x-protobuf",
        Some("gzip"),
        b"not gzip".to_vec(),
    );
    assert_eq!(st, 400);
    assert!(body.contains("gzip"), "{body}");
    let (st, _) = post(&traces, "application/x-protobuf", Some("br"), b"x".to_vec());
    assert_eq!(st, 415);

    // oversized, plain and as a gzip bomb
    let mut rng = Rng::new(7);
    let big = realistic_request(&mut rng, 1000, 1_700_000_000_000_000_000).encode_to_vec();
    assert!(big.len() > 64 * 1024);
    let (st, body) = post(&traces, "application/x-protobuf", None, big.clone());
    assert_eq!(st, 413, "{body}");
    assert!(body.contains("larger than the limit"), "{body}");
    let bomb = gzip(&vec![0u8; 1 << 20]);
    let (st, _) = post(&traces, "application/x-protobuf", Some("gzip"), bomb);
    assert_eq!(st, 413);

    // invalid ids: partial success naming the problem
    let mut req = realistic_request(&mut rng, 8, 1_700_000_000_000_000_000);
    req.resource_spans[0].scope_spans[0].spans[0].trace_id = vec![1, 2, 3];
    req.resource_spans[0].scope_spans[0].spans[1].span_id = vec![];
    let (st, body) = {
        let r = reqwest::blocking::Client::new()
            .post(&traces)
            .header("content-type", "application/x-protobuf")
            .body(req.encode_to_vec())
            .send()
            .unwrap();
        (r.status().as_u16(), r.bytes().unwrap())
    };
    assert_eq!(st, 200);
    let resp = ExportTraceServiceResponse::decode(&body[..]).unwrap();
    let ps = resp.partial_success.unwrap();
    assert_eq!(ps.rejected_spans, 2);
    assert!(
        ps.error_message.contains("trace_id must be 16 bytes"),
        "{}",
        ps.error_message
    );

    // JSON: a trace id that is not hex
    let j = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "zz", "spanId": "0102030405060708", "name": "x", "kind": 2,
        "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]});
    let (st, body) = post(
        &traces,
        "application/json",
        None,
        j.to_string().into_bytes(),
    );
    assert_eq!(st, 400, "{body}");
    // JSON: valid, wrong length → partial success
    let j = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "0102", "spanId": "0102030405060708", "name": "x", "kind": 2,
        "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]});
    let (st, body) = post(
        &traces,
        "application/json",
        None,
        j.to_string().into_bytes(),
    );
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("trace_id"),
        "{v}"
    );

    // wrong path and method
    let (st, _) = post(
        &format!("{}/v1/logs", c.otlp_http),
        "application/x-protobuf",
        None,
        vec![],
    );
    assert_eq!(st, 404);
    // empty request is fine
    let (st, _) = post(
        &traces,
        "application/x-protobuf",
        None,
        ExportTraceServiceRequest::default().encode_to_vec(),
    );
    assert_eq!(st, 200);
    // the collector is still healthy
    c.ok("/api/v1/health");
    c.stop();
}

#[test]
fn api_bad_input() {
    let dir = TempDir::new("badapi");
    let c = Collector::start(&dir.0, &[]);
    let cases: &[(&str, u16, &str)] = &[
        (
            "/api/v1/services?color=red",
            400,
            "unknown query parameter `color`",
        ),
        ("/api/v1/services?from=-1h&to=-2h", 400, "must be before"),
        ("/api/v1/services?from=yesterday", 400, "invalid `from`"),
        (
            "/api/v1/services?from=2024-13-45T00:00:00Z",
            400,
            "invalid `from`",
        ),
        (
            "/api/v1/services/x/operations?kind=sideways",
            400,
            "invalid `kind`",
        ),
        (
            "/api/v1/services/x/timeseries?step=30s",
            400,
            "whole number of minutes",
        ),
        (
            "/api/v1/services/x/timeseries?step=1m&from=-30d",
            400,
            "buckets",
        ),
        ("/api/v1/traces?limit=0", 400, "invalid `limit`"),
        (
            "/api/v1/traces?min_duration_ms=fast",
            400,
            "min_duration_ms",
        ),
        ("/api/v1/traces?status=meh", 400, "invalid `status`"),
        ("/api/v1/traces?sort=random", 400, "invalid `sort`"),
        ("/api/v1/traces/xyz", 400, "32 hex digits"),
        (
            "/api/v1/traces/00000000000000000000000000000000",
            400,
            "all zero",
        ),
        (
            "/api/v1/traces/0123456789abcdef0123456789abcdef",
            404,
            "not found",
        ),
        ("/api/v1/nothing", 404, "openapi"),
        ("/api/v1/health?x=1", 400, "unknown query parameter"),
    ];
    for (path, want, msg) in cases {
        let (st, v) = c.get(path);
        assert_eq!(st, *want, "GET {path}: {v}");
        let e = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("GET {path}: no error message in {v}"));
        assert!(e.contains(msg), "GET {path}: {e:?} lacks {msg:?}");
    }
    c.stop();
}

#[test]
fn config_etag_and_versions() {
    let dir = TempDir::new("config");
    let c = Collector::start(&dir.0, &[]);
    let http = reqwest::blocking::Client::new();
    let url = format!("{}/api/v1/config/checkout", c.api);
    let r = http.get(&url).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "\"0\"");
    let put = |body: &str, if_match: Option<&str>| {
        let mut r = http
            .put(&url)
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(m) = if_match {
            r = r.header("if-match", m);
        }
        let r = r.send().unwrap();
        let st = r.status().as_u16();
        let tag = r
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string());
        (st, tag, r.json::<Value>().unwrap())
    };
    let (st, tag, v) = put(r#"{"sqlx": {"enabled": true, "slow_ms": 50}}"#, None);
    assert_eq!(st, 200, "{v}");
    assert_eq!(tag.as_deref(), Some("\"1\""));
    assert_eq!(v["version"], 1);
    // poll: unchanged → 304
    let r = http
        .get(&url)
        .header("if-none-match", "\"1\"")
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    // same body: version stays
    let (_, tag, _) = put(r#"{"sqlx": {"enabled": true, "slow_ms": 50}}"#, None);
    assert_eq!(tag.as_deref(), Some("\"1\""));
    let (_, tag, v) = put(r#"{"config": {"sqlx": {"enabled": false}}}"#, Some("\"1\""));
    assert_eq!(tag.as_deref(), Some("\"2\""));
    assert_eq!(v["config"]["sqlx"]["enabled"], false);
    let r = http
        .get(&url)
        .header("if-none-match", "\"1\"")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["version"], 2);
    // stale If-Match
    let (st, _, v) = put(r#"{"a": {}}"#, Some("\"1\""));
    assert_eq!(st, 412, "{v}");
    // not an object, not JSON, wrong type
    let (st, _, v) = put("[1]", None);
    assert_eq!(st, 400, "{v}");
    let (st, _, _) = put("{", None);
    assert_eq!(st, 400);
    let r = http
        .put(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);
    // agent status report
    let r = http
        .post(format!("{url}/status"))
        .header("content-type", "application/json")
        .body(r#"{"instance": "pod-1", "version": 1, "error": "sqlx.slow_ms: expected integer"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    let v = c.ok("/api/v1/config/checkout/status");
    assert_eq!(v["agents"][0]["instance"], "pod-1");
    assert_eq!(v["agents"][0]["version"], 1);
    // survives a restart
    c.stop();
    let c = Collector::start(&dir.0, &[]);
    let v = c.ok("/api/v1/config/checkout");
    assert_eq!(v["version"], 2);
    c.stop();
}

#[test]
fn self_metrics_and_openapi() {
    let dir = TempDir::new("meta");
    let c = Collector::start(&dir.0, &[]);
    let mut rng = Rng::new(3);
    let req = realistic_request(&mut rng, 100, 1_700_000_000_000_000_000);
    let (st, _) = post(
        &format!("{}/v1/traces", c.otlp_http),
        "application/x-protobuf",
        None,
        req.encode_to_vec(),
    );
    assert_eq!(st, 200);
    let text = reqwest::blocking::get(format!("{}/metrics", c.api))
        .unwrap()
        .text()
        .unwrap();
    for m in [
        "rustmon_spans_received_total 100",
        "rustmon_spans_stored_total 100",
        "rustmon_spans_rejected_total 0",
        "rustmon_queue_depth",
        "rustmon_batch_latency_seconds_count",
        "rustmon_store_bytes",
    ] {
        assert!(text.contains(m), "{m} missing from\n{text}");
    }
    let v = c.ok("/api/v1/openapi.json");
    assert_eq!(v["openapi"], "3.1.0");
    for p in [
        "/api/v1/health",
        "/api/v1/services",
        "/api/v1/services/{service}/operations",
        "/api/v1/services/{service}/timeseries",
        "/api/v1/traces",
        "/api/v1/traces/{trace_id}",
        "/api/v1/services/{service}/queries",
        "/api/v1/services/{service}/metrics",
        "/api/v1/services/{service}/histogram",
        "/api/v1/services/{service}/errors",
        "/api/v1/errors",
        "/api/v1/dependencies",
        "/api/v1/config/{service}",
    ] {
        assert!(
            v["paths"][p].is_object(),
            "{p} missing from the OpenAPI document"
        );
    }
    c.stop();
}

#[test]
fn cli_errors_name_the_value() {
    let run = |args: &[&str]| {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_rustmon"))
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let (code, out) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("serve"), "{out}");
    let (code, out) = run(&["serve", "--help"]);
    assert_eq!(code, Some(0));
    for f in [
        "--data-dir",
        "--listen",
        "--otlp-http",
        "--otlp-grpc",
        "--config",
        "--retention",
        "RUSTMON_RETENTION",
    ] {
        assert!(out.contains(f), "{f} missing from serve --help:\n{out}");
    }
    let (code, out) = run(&["serve", "--retention", "forever"]);
    assert_eq!(code, Some(2));
    assert!(
        out.contains("--retention") && out.contains("forever"),
        "{out}"
    );
    let (code, out) = run(&["serve", "--listen", "nowhere"]);
    assert_eq!(code, Some(2));
    assert!(
        out.contains("--listen") && out.contains("HOST:PORT"),
        "{out}"
    );
    let (code, _) = run(&["serve", "--colour"]);
    assert_eq!(code, Some(2));
    let dir = TempDir::new("cli");
    let cfg = dir.0.join("rustmon.toml");
    std::fs::write(&cfg, "retention = \"1d\"\nlisten_addr = \"x\"\n").unwrap();
    let (code, out) = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(out.contains("listen_addr"), "{out}");
    std::fs::write(&cfg, "max_request_size = \"lots\"\n").unwrap();
    let (code, out) = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        out.contains("--max-request-size") && out.contains("lots"),
        "{out}"
    );
}

/// Writes the fuzz seed corpus (run with `RUSTMON_WRITE_FUZZ_SEEDS=1`; otherwise a no-op):
/// the first byte selects the path (bit 0 JSON, bit 1 gzip, bit 2 metrics, bit 3 segment round trip).
#[test]
fn write_fuzz_seeds() {
    if std::env::var_os("RUSTMON_WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng::new(11);
    let req = realistic_request(&mut rng, 8, 1_700_000_000_000_000_000);
    let pb = req.encode_to_vec();
    let js = serde_json::to_vec(&req).unwrap();
    let seed = |sel: u8, body: &[u8]| [&[sel][..], body].concat();
    std::fs::write(dir.join("traces-protobuf"), seed(0x08, &pb)).unwrap();
    std::fs::write(dir.join("traces-json"), seed(0x09, &js)).unwrap();
    std::fs::write(dir.join("traces-protobuf-gzip"), seed(0x0a, &gzip(&pb))).unwrap();
    let m =
        opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest::default();
    std::fs::write(dir.join("metrics-empty"), seed(0x04, &m.encode_to_vec())).unwrap();
}
