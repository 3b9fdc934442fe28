//! Realistic OTLP batches for tests, the load benchmark and fuzz seeds.
//!
//! Each trace is an HTTP server span with three children: a database query, an outgoing HTTP
//! call and an internal rendering step, with the attributes the OpenTelemetry semantic
//! conventions give such spans.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

/// A small deterministic random number generator (xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

fn kv(k: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(k: &str, v: impl Into<String>) -> KeyValue {
    kv(k, any_value::Value::StringValue(v.into()))
}

fn i(k: &str, v: i64) -> KeyValue {
    kv(k, any_value::Value::IntValue(v))
}

const ROUTES: [(&str, &str); 8] = [
    ("GET", "/orders/{id}"),
    ("POST", "/orders"),
    ("GET", "/users/{id}"),
    ("GET", "/products/{id}"),
    ("GET", "/search"),
    ("PUT", "/cart/{id}"),
    ("GET", "/health"),
    ("DELETE", "/sessions/{id}"),
];

const TABLES: [&str; 6] = [
    "orders",
    "users",
    "products",
    "carts",
    "sessions",
    "inventory",
];

/// A resource-spans group of `traces` traces (4 spans each) for `service`, starting around
/// `base_ns`.
pub fn service_spans(rng: &mut Rng, service: &str, traces: usize, base_ns: u64) -> ResourceSpans {
    let mut spans = Vec::with_capacity(traces * 4);
    for t in 0..traces {
        let mut tid = [0u8; 16];
        tid[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
        tid[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
        let root = rng.next_u64().to_le_bytes().to_vec();
        let start = base_ns + t as u64 * 1_000_000 + rng.below(1_000_000);
        // log-normal-ish durations: 1–200 ms
        let dur = 1_000_000 + rng.below(20_000_000) * (1 + rng.below(10));
        let (method, route) = ROUTES[rng.below(ROUTES.len() as u64) as usize];
        let id = rng.below(100_000);
        let path = route.replace("{id}", &id.to_string());
        let status = if rng.below(50) == 0 { 500 } else { 200 };
        let table = TABLES[rng.below(TABLES.len() as u64) as usize];
        spans.push(Span {
            trace_id: tid.to_vec(),
            span_id: root.clone(),
            name: format!("{method} {route}"),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur,
            attributes: vec![
                s("http.request.method", method),
                s("http.route", route),
                s("url.path", path),
                s("url.scheme", "http"),
                i("http.response.status_code", status),
                s("network.protocol.version", "1.1"),
                s("server.address", "api.example.com"),
                s(
                    "client.address",
                    format!("10.0.{}.{}", rng.below(4), rng.below(256)),
                ),
                s(
                    "user_agent.original",
                    "Mozilla/5.0 (X11; Linux x86_64) rustmon-load/1.0",
                ),
            ],
            status: (status == 500).then(|| Status {
                message: "internal error".into(),
                code: 2,
            }),
            ..Default::default()
        });
        let db_start = start + 50_000 + rng.below(100_000);
        let db_dur = 200_000 + rng.below(dur / 4);
        spans.push(Span {
            trace_id: tid.to_vec(),
            span_id: rng.next_u64().to_le_bytes().to_vec(),
            parent_span_id: root.clone(),
            name: format!("SELECT {table}"),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: db_start,
            end_time_unix_nano: db_start + db_dur,
            attributes: vec![
                s("db.system.name", "postgresql"),
                s("db.namespace", "shop"),
                s(
                    "db.query.text",
                    format!(
                        "SELECT id, name, price FROM {table} WHERE id = $1 AND tenant = {}",
                        rng.below(20)
                    ),
                ),
                s("db.operation.name", "SELECT"),
                s("server.address", "db.internal"),
                i("server.port", 5432),
                i("db.response.returned_rows", rng.below(20) as i64),
            ],
            ..Default::default()
        });
        let c_start = db_start + db_dur + 10_000;
        let c_dur = 100_000 + rng.below(dur / 3);
        spans.push(Span {
            trace_id: tid.to_vec(),
            span_id: rng.next_u64().to_le_bytes().to_vec(),
            parent_span_id: root.clone(),
            name: "GET".into(),
            kind: span::SpanKind::Client as i32,
            start_time_unix_nano: c_start,
            end_time_unix_nano: c_start + c_dur,
            attributes: vec![
                s("http.request.method", "GET"),
                s(
                    "url.full",
                    format!("http://inventory.internal:8080/stock/{}", rng.below(10_000)),
                ),
                s("server.address", "inventory.internal"),
                i("server.port", 8080),
                i("http.response.status_code", 200),
            ],
            ..Default::default()
        });
        let r_start = c_start + c_dur + 5_000;
        spans.push(Span {
            trace_id: tid.to_vec(),
            span_id: rng.next_u64().to_le_bytes().to_vec(),
            parent_span_id: root,
            name: "render".into(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: r_start,
            end_time_unix_nano: r_start + 50_000 + rng.below(500_000),
            attributes: vec![
                s("code.function.name", "shop::views::render"),
                i("template.size", rng.below(5000) as i64),
            ],
            ..Default::default()
        });
    }
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![
                s("service.name", service),
                s("service.version", "1.4.2"),
                s("host.name", "web-7f9c"),
                i("process.pid", 4242),
                s("telemetry.sdk.language", "rust"),
                s("telemetry.sdk.name", "opentelemetry"),
                s("telemetry.sdk.version", "0.33.0"),
            ],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "rustmon".into(),
                version: "0.1.0".into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A request of `spans` spans (rounded down to whole traces of 4) from one of five services.
pub fn realistic_request(rng: &mut Rng, spans: usize, base_ns: u64) -> ExportTraceServiceRequest {
    const SERVICES: [&str; 5] = ["checkout", "catalog", "users", "payments", "search"];
    let svc = SERVICES[rng.below(SERVICES.len() as u64) as usize];
    ExportTraceServiceRequest {
        resource_spans: vec![service_spans(rng, svc, spans / 4, base_ns)],
    }
}
