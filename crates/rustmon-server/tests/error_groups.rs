//! Error groups (`/api/v1/errors`, `/api/v1/services/{service}/errors`) and the latency
//! histogram (`/api/v1/services/{service}/histogram`) of a running `rustmon serve`, fed spans
//! over OTLP/HTTP: exact counts, first/last seen, fingerprint grouping, examples, the bound on
//! distinct groups, retention, and 400s naming the bad parameter.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Collector, TempDir};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use rustmon_server::histogram::bucket_index;
use rustmon_server::model::{format_ns, hex};
use serde_json::Value;

const MINUTE: u64 = 60_000_000_000;
const MS: u64 = 1_000_000;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The start of the minute `minutes_ago` minutes before the current one.
fn minute_start(minutes_ago: u64) -> u64 {
    (now_ns() / MINUTE - minutes_ago) * MINUTE
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(k: &str, v: &str) -> KeyValue {
    kv(k, any_value::Value::StringValue(v.into()))
}

fn int(k: &str, v: i64) -> KeyValue {
    kv(k, any_value::Value::IntValue(v))
}

/// A span of its own trace (trace id from `n`), started at `start`.
fn span(n: u64, name: &str, kind: span::SpanKind, start: u64, dur: u64) -> Span {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&(n + 1).to_be_bytes());
    trace_id[8..].copy_from_slice(&0x5eed_u64.to_be_bytes());
    Span {
        trace_id: trace_id.to_vec(),
        span_id: (n + 1).to_be_bytes().to_vec(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start + dur,
        ..Default::default()
    }
}

/// Marks `sp` failed with `status_message`.
fn failed(mut sp: Span, status_message: &str) -> Span {
    sp.status = Some(Status {
        message: status_message.into(),
        code: 2,
    });
    sp
}

/// Adds an `exception` event, as rustmon's agents and OpenTelemetry SDKs record errors.
fn exception(mut sp: Span, ty: &str, msg: &str) -> Span {
    sp.events.push(span::Event {
        time_unix_nano: sp.end_time_unix_nano,
        name: "exception".into(),
        attributes: vec![s("exception.type", ty), s("exception.message", msg)],
        ..Default::default()
    });
    sp
}

fn send(c: &Collector, service: &str, spans: Vec<Span>) {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![s("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/traces", c.otlp_http))
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    let answer = ExportTraceServiceResponse::decode(r.bytes().unwrap()).unwrap();
    assert_eq!(answer.partial_success, None, "every span accepted");
}

/// Polls until `f` holds; a generous cap turns a hang into a failure message.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_sealed(c: &Collector, spans: u64) {
    let start = Instant::now();
    loop {
        let health = c.ok("/api/v1/health");
        if health["sealed_spans"] == spans {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "gave up waiting for {spans} spans to be sealed: {health}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn trace_hex(n: u64) -> String {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&(n + 1).to_be_bytes());
    t[8..].copy_from_slice(&0x5eed_u64.to_be_bytes());
    hex(&t)
}

fn group<'a>(v: &'a Value, ty: &str) -> &'a Value {
    v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["type"] == ty)
        .unwrap_or_else(|| panic!("group {ty} in {v:#}"))
}

/// The shop's failures, sent in two batches: `first` (true) or the rest.
fn shop_spans(base: u64, first: bool) -> Vec<Span> {
    let mut out = Vec::new();
    // 30 declined payments, one per second; 20 in the first batch
    let range = if first { 0..20 } else { 20..30 };
    for i in range {
        let sp = span(
            i,
            "POST /orders",
            span::SpanKind::Server,
            base + i * 1000 * MS,
            5 * MS,
        );
        let sp = failed(sp, "payment declined");
        out.push(exception(
            sp,
            "shop::PaymentError",
            &format!("payment declined for order {}: card_declined", 1000 + i * 7),
        ));
    }
    if first {
        // 7 deadlocks on statements: no exception, the status message names them
        for i in 0..7 {
            let mut sp = span(
                100 + i,
                "INSERT payments",
                span::SpanKind::Client,
                base + i * MS,
                MS,
            );
            sp.attributes = vec![s("db.system.name", "postgresql")];
            out.push(failed(
                sp,
                &format!("deadlock detected on tuple ({i},{})", i * 13),
            ));
        }
        // 2 statements on a missing table: the agent reports the SQLSTATE as the type
        for i in 0..2 {
            let mut sp = span(
                150 + i,
                "SELECT stock",
                span::SpanKind::Client,
                base + i * MS,
                MS,
            );
            sp.attributes = vec![
                s("db.system.name", "postgresql"),
                s("db.response.status_code", "42P01"),
                s("error.type", "42P01"),
            ];
            let sp = failed(sp, "");
            out.push(exception(sp, "42P01", "relation \"stock\" does not exist"));
        }
        // 5 failed upstream calls: only a status code
        for i in 0..5 {
            let mut sp = span(
                200 + i,
                "GET /stock",
                span::SpanKind::Server,
                base + i * MS,
                MS,
            );
            sp.attributes = vec![int("http.response.status_code", 503)];
            out.push(failed(sp, ""));
        }
        // 40 successful requests: not errors
        for i in 0..40 {
            out.push(span(
                300 + i,
                "POST /orders",
                span::SpanKind::Server,
                base + i * MS,
                MS,
            ));
        }
    }
    out
}

#[test]
fn error_groups_count_every_failed_span() {
    let dir = TempDir::new("errors");
    let c = Collector::start(&dir.0, &["--seal-interval", "1s"]);
    let base = minute_start(5) + 10 * 1000 * MS;
    send(&c, "shop", shop_spans(base, true));
    let timeout = failed(
        span(400, "GET /rates", span::SpanKind::Client, base, MS),
        "timed out after 30s",
    );
    let mut timeout = timeout;
    timeout.attributes = vec![s("error.type", "timeout")];
    send(&c, "billing", vec![timeout]);
    // the first batch is sealed into the database; the rest merges into the same rows
    wait_sealed(&c, 20 + 7 + 2 + 5 + 40 + 1);
    send(&c, "shop", shop_spans(base, false));

    let check = |c: &Collector| {
        let v = c.ok("/api/v1/services/shop/errors?from=-1h");
        assert_eq!(v["service"], "shop");
        assert_eq!(v["total"], 44, "{v:#}");
        assert_eq!(v["groups"].as_array().unwrap().len(), 4, "{v:#}");
        assert_eq!(v["truncated"], false);
        let pay = group(&v, "shop::PaymentError");
        assert_eq!(v["groups"][0], *pay, "most frequent first");
        assert_eq!(pay["count"], 30);
        assert_eq!(pay["service"], "shop");
        assert_eq!(
            pay["fingerprint"],
            "payment declined for order <n>: card_declined"
        );
        assert_eq!(
            pay["message"],
            "payment declined for order 1000: card_declined"
        );
        assert_eq!(pay["first_seen"], format_ns(base).as_str());
        assert_eq!(pay["last_seen"], format_ns(base + 29_000 * MS).as_str());
        assert_eq!(
            pay["operations"],
            serde_json::json!([{"kind": "server", "name": "POST /orders", "count": 30}])
        );
        let examples: Vec<&str> = pay["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["trace_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            examples,
            [trace_hex(29), trace_hex(28), trace_hex(27)],
            "latest first"
        );
        let db = group(&v, "database error");
        assert_eq!(db["count"], 7);
        assert_eq!(db["fingerprint"], "deadlock detected on tuple (<n>,<n>)");
        assert_eq!(db["operations"][0]["kind"], "client");
        let missing = group(&v, "postgresql 42P01");
        assert_eq!(missing["count"], 2);
        assert_eq!(missing["fingerprint"], "relation <str> does not exist");
        let http = group(&v, "HTTP 503");
        assert_eq!(http["count"], 5);
        assert_eq!(http["fingerprint"], "");
        assert_eq!(http["last_seen"], format_ns(base + 4 * MS).as_str());
        // all services, and the service filter of the all-services form
        let all = c.ok("/api/v1/errors?from=-1h");
        assert_eq!(all["total"], 45);
        let t = group(&all, "timeout");
        assert_eq!(
            (&t["service"], &t["fingerprint"]),
            (&"billing".into(), &"timed out after <n>s".into())
        );
        let billing = c.ok("/api/v1/errors?from=-1h&service=billing");
        assert_eq!(billing["groups"].as_array().unwrap().len(), 1);
        let top = c.ok("/api/v1/errors?from=-1h&limit=1");
        assert_eq!(
            (top["groups"].as_array().unwrap().len(), &top["truncated"]),
            (1, &true.into())
        );
        // a range that ends before the errors has none
        let before = format_ns(base - 2 * MINUTE);
        let v = c.ok(&format!(
            "/api/v1/services/shop/errors?from=-1h&to={before}"
        ));
        assert_eq!(
            (&v["total"], v["groups"].as_array().unwrap().len()),
            (&0.into(), 0)
        );
    };
    check(&c);
    // after a restart the groups come from the database alone
    c.stop();
    let c = Collector::start(&dir.0, &[]);
    check(&c);
    c.stop();
}

/// `n` failed spans of service `flood` in one minute, each with an error type of its own.
fn flood(from: u64, n: u64, base: u64) -> Vec<Span> {
    (from..from + n)
        .map(|i| {
            let start = base + (i - from) * 100 * MS;
            let sp = failed(span(i, "GET /flood", span::SpanKind::Server, start, MS), "");
            exception(sp, &format!("flood::E{}", letters(i)), "unique")
        })
        .collect()
}

/// `i` written with letters (digits would be masked in messages; types are kept verbatim).
fn letters(mut i: u64) -> String {
    let mut s = String::new();
    loop {
        s.push((b'a' + (i % 26) as u8) as char);
        i /= 26;
        if i == 0 {
            return s;
        }
    }
}

#[test]
fn distinct_error_groups_are_bounded_per_service_and_minute() {
    let dir = TempDir::new("errors-bound");
    let c = Collector::start(&dir.0, &["--seal-interval", "1s"]);
    let base = minute_start(3);
    // 60 groups, sealed into the database; then 10 of them again and 190 new ones
    send(&c, "flood", flood(0, 60, base));
    wait_sealed(&c, 60);
    let mut more: Vec<Span> = flood(0, 10, base)
        .into_iter()
        .map(|mut sp| {
            sp.span_id = (u64::from(sp.span_id[7]) + 1000).to_be_bytes().to_vec();
            sp
        })
        .collect();
    more.extend(flood(60, 190, base + 10_000 * MS));
    send(&c, "flood", more);
    wait_sealed(&c, 260);
    // a second minute has a limit of its own
    send(&c, "flood", flood(1000, 3, base + MINUTE));
    let v = c.ok("/api/v1/services/flood/errors?from=-1h&limit=1000");
    assert_eq!(v["total"], 263);
    let groups = v["groups"].as_array().unwrap();
    let other = group(&v, "_OTHER");
    assert_eq!(other["fingerprint"], "_OTHER");
    assert_eq!(
        other["count"], 150,
        "250 groups in one minute, 100 kept: 60 + 40 new ones"
    );
    assert_eq!(groups.len(), 100 + 1 + 3, "{v:#}");
    let repeated = groups.iter().filter(|g| g["count"] == 2).count();
    assert_eq!(repeated, 10, "known groups still count in a full minute");
    assert!(group(&v, &format!("flood::E{}", letters(1001)))["count"] == 1);
    c.stop();
}

#[test]
fn retention_deletes_error_groups() {
    let dir = TempDir::new("errors-retention");
    let c = Collector::start(&dir.0, &["--retention", "1h", "--seal-interval", "1s"]);
    let old = minute_start(180);
    send(
        &c,
        "legacy",
        vec![exception(
            failed(span(1, "GET /old", span::SpanKind::Server, old, MS), ""),
            "Old",
            "gone",
        )],
    );
    wait_for("the old segment to be deleted", || {
        let h = c.ok("/api/v1/health");
        h["spans"] == 0 && h["segments"] == 0
    });
    send(
        &c,
        "fresh",
        vec![exception(
            failed(
                span(2, "GET /new", span::SpanKind::Server, minute_start(1), MS),
                "",
            ),
            "New",
            "here",
        )],
    );
    let v = c.ok("/api/v1/errors?from=-4h");
    let types: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["New"], "{v:#}");
    c.stop();
}

#[test]
fn histogram_counts_every_span_of_the_operation() {
    let dir = TempDir::new("histogram");
    let c = Collector::start(&dir.0, &[]);
    let base = minute_start(10);
    // GET /h takes 1..=100 ms; GET /other 7 ms (10 times); a client span of the same name
    let mut spans: Vec<Span> = (0..100)
        .map(|i| {
            span(
                i,
                "GET /h",
                span::SpanKind::Server,
                base + i * 1000 * MS,
                (i + 1) * MS,
            )
        })
        .collect();
    spans.extend((0..10).map(|i| {
        span(
            200 + i,
            "GET /other",
            span::SpanKind::Server,
            base + i * MS,
            7 * MS,
        )
    }));
    spans.push(span(300, "GET /h", span::SpanKind::Client, base, 500 * MS));
    send(&c, "api", spans);

    let v = c.ok("/api/v1/services/api/histogram?from=-1h&name=GET%20/h&kind=server");
    assert_eq!(
        (&v["count"], &v["kind"]),
        (&100.into(), &"server".into()),
        "{v:#}"
    );
    let buckets = v["buckets"].as_array().unwrap();
    let first = bucket_index(MS as f64);
    let last = bucket_index(100.0 * MS as f64);
    assert_eq!(buckets.len() as i32, last - first + 1, "{v:#}");
    for (k, b) in buckets.iter().enumerate() {
        let want = (1..=100u64)
            .filter(|d| bucket_index((d * MS) as f64) == first + k as i32)
            .count();
        assert_eq!(b["count"], want, "bucket {b}");
        assert!(b["lower_ms"].as_f64() < b["upper_ms"].as_f64());
    }
    assert!(
        buckets[0]["lower_ms"].as_f64().unwrap() < 1.0
            && buckets[0]["upper_ms"].as_f64().unwrap() >= 1.0
    );
    // without a kind both kinds count; without a name, the service's requests
    let v = c.ok("/api/v1/services/api/histogram?from=-1h&name=GET%20/h");
    assert_eq!(v["count"], 101);
    let v = c.ok("/api/v1/services/api/histogram?from=-1h");
    assert_eq!(v["count"], 110);
    let v = c.ok("/api/v1/services/nobody/histogram?from=-1h");
    assert_eq!(
        (&v["count"], v["buckets"].as_array().unwrap().len()),
        (&0.into(), 0)
    );
    c.stop();
}

#[test]
fn bad_parameters_are_named_in_a_400() {
    let dir = TempDir::new("errors-bad");
    let c = Collector::start(&dir.0, &[]);
    for (path, names) in [
        ("/api/v1/services/x/errors?limit=0", "`limit`"),
        ("/api/v1/errors?limit=many", "`limit`"),
        ("/api/v1/errors?from=yesterday", "`from`"),
        ("/api/v1/services/x/errors?to=soon", "`to`"),
        ("/api/v1/services/x/errors?service=y", "`service`"),
        ("/api/v1/errors?bogus=1", "`bogus`"),
        ("/api/v1/services/x/histogram?kind=sideways", "`kind`"),
        ("/api/v1/services/x/histogram?step=1m", "`step`"),
        ("/api/v1/services/x/histogram?from=-1h&to=-2h", "`from`"),
    ] {
        let (st, v) = c.get(path);
        assert_eq!(st, 400, "{path}: {v}");
        let msg = v["error"].as_str().unwrap_or_else(|| panic!("{path}: {v}"));
        assert!(msg.contains(names), "{path}: {msg}");
    }
    c.stop();
}
