//! Shared by the tests and the benchmark: the collector started
//! in-process (store, OTLP/HTTP receiver, query API) with the dashboard merged into the API
//! router, a tiny blocking HTTP client, and a generator of realistic OTLP traffic for a small
//! shop (frontend → checkout → database / cache / payment provider, catalog → database / CDN).
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use rustmon_server::api::Api;
use rustmon_server::ingest::{Ingest, http_router};
use rustmon_server::metrics::SelfMetrics;
use rustmon_server::store::{EmbeddedStore, Store, StoreOptions};
use rustmon_server::testdata::Rng;

/// A collector running on a runtime of its own, with the dashboard mounted.
pub struct Collector {
    /// `http://127.0.0.1:port` of the API and dashboard.
    pub api: String,
    /// Address of the API.
    pub api_addr: SocketAddr,
    /// Address of the OTLP/HTTP receiver.
    pub otlp_addr: SocketAddr,
    /// The receivers' state (for in-process ingest in the benchmark).
    pub ingest: Ingest,
    pub store: Arc<dyn Store>,
    pub rt: Option<tokio::runtime::Runtime>,
}

impl Collector {
    /// Opens a store in `dir` and serves the API (with the dashboard) and OTLP/HTTP on free
    /// ports of 127.0.0.1.
    pub fn start(dir: &Path) -> Collector {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let metrics = Arc::new(SelfMetrics::default());
        let mut opts = StoreOptions::new(dir);
        opts.seal_interval = Duration::from_secs(5);
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(opts, metrics.clone()).expect("open the store"));
        let ingest = Ingest {
            store: store.clone(),
            metrics: metrics.clone(),
            max_body: 16 << 20,
            inflight: Arc::new(tokio::sync::Semaphore::new(64)),
        };
        let app = rustmon_server::api::router(Api {
            store: store.clone(),
            metrics,
        })
        .merge(rustmon_dashboard::router());
        let otlp_app = http_router(ingest.clone());
        let (api_addr, otlp_addr) = rt.block_on(async {
            let a = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind api");
            let o = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind otlp");
            let addrs = (a.local_addr().unwrap(), o.local_addr().unwrap());
            tokio::spawn(axum::serve(a, app).into_future());
            tokio::spawn(axum::serve(o, otlp_app).into_future());
            addrs
        });
        Collector {
            api: format!("http://{api_addr}"),
            api_addr,
            otlp_addr,
            ingest,
            store,
            rt: Some(rt),
        }
    }

    /// GET on the API/dashboard address.
    pub fn get(&self, path: &str) -> Resp {
        request(self.api_addr, "GET", path, &[], b"")
    }

    /// GET that must answer 200 with JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        serde_json::from_slice(&r.body).expect("JSON")
    }

    /// Sends a trace export to the OTLP/HTTP receiver.
    pub fn send_traces(&self, req: &ExportTraceServiceRequest) {
        let r = request(
            self.otlp_addr,
            "POST",
            "/v1/traces",
            &[("content-type", "application/x-protobuf")],
            &req.encode_to_vec(),
        );
        assert_eq!(r.status, 200, "POST /v1/traces: {}", r.text());
    }

    /// Sends a metrics export to the OTLP/HTTP receiver.
    pub fn send_metrics(&self, req: &ExportMetricsServiceRequest) {
        let r = request(
            self.otlp_addr,
            "POST",
            "/v1/metrics",
            &[("content-type", "application/x-protobuf")],
            &req.encode_to_vec(),
        );
        assert_eq!(r.status, 200, "POST /v1/metrics: {}", r.text());
    }

    /// Sends the shop's traffic of the last `minutes` minutes and waits until it is queryable.
    pub fn seed(&self, minutes: u64, traces_per_minute: u64) {
        let mut rng = Rng::new(7);
        let now = now_ns();
        let mut shop = Shop::new();
        for m in (0..minutes).rev() {
            let base = now - (m + 1) * 60_000_000_000;
            let req = shop.traces(&mut rng, base, 60_000_000_000, traces_per_minute);
            self.send_traces(&req);
        }
        self.send_metrics(&runtime_metrics(
            &mut rng,
            now - minutes * 60_000_000_000,
            now,
        ));
        self.wait_for_services(3);
    }

    /// Waits until `/api/v1/services` lists at least `n` services.
    pub fn wait_for_services(&self, n: usize) {
        for _ in 0..200 {
            let v = self.json("/api/v1/services?from=-2h");
            if v["services"].as_array().is_some_and(|a| a.len() >= n) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("services did not appear");
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
        self.store.shutdown();
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "rustmon-dashboard-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An HTTP response.
pub struct Resp {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, k: &str) -> &str {
        self.headers.get(k).map(String::as_str).unwrap_or("")
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let mut hs = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            hs.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let mut body = buf[end + 4..].to_vec();
    if hs
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers: hs,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 4 + n..];
    }
    out
}

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
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

fn b(k: &str, v: bool) -> KeyValue {
    kv(k, any_value::Value::BoolValue(v))
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            s("service.name", service),
            s("service.version", "1.4.2"),
            s("service.instance.id", format!("{service}-7f9c")),
            s("host.name", "web-1"),
            s("telemetry.sdk.language", "rust"),
            s("telemetry.sdk.name", "rustmon"),
        ],
        ..Default::default()
    }
}

/// Builds the spans of one trace.
struct TraceBuilder<'a> {
    rng: &'a mut Rng,
    tid: Vec<u8>,
    spans: Vec<(&'static str, Span)>,
}

impl TraceBuilder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn span(
        &mut self,
        service: &'static str,
        parent: Option<&[u8]>,
        name: &str,
        kind: span::SpanKind,
        start: u64,
        dur: u64,
        attributes: Vec<KeyValue>,
        error: Option<&str>,
    ) -> Vec<u8> {
        let id = self.rng.next_u64().to_le_bytes().to_vec();
        self.spans.push((
            service,
            Span {
                trace_id: self.tid.clone(),
                span_id: id.clone(),
                parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
                name: name.to_string(),
                kind: kind as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + dur,
                attributes,
                status: error.map(|m| Status {
                    message: m.to_string(),
                    code: 2,
                }),
                ..Default::default()
            },
        ));
        id
    }

    fn exception(&mut self, ty: &str, msg: &str) {
        if let Some((_, sp)) = self.spans.last_mut() {
            sp.events.push(span::Event {
                time_unix_nano: sp.end_time_unix_nano,
                name: "exception".into(),
                attributes: vec![s("exception.type", ty), s("exception.message", msg)],
                ..Default::default()
            });
        }
    }
}

const MS: u64 = 1_000_000;

/// The sample shop's traffic.
pub struct Shop {
    order: u64,
}

impl Default for Shop {
    fn default() -> Self {
        Self::new()
    }
}

impl Shop {
    pub fn new() -> Shop {
        Shop { order: 1000 }
    }

    /// `n` traces starting within `[base, base + window)`.
    pub fn traces(
        &mut self,
        rng: &mut Rng,
        base: u64,
        window: u64,
        n: u64,
    ) -> ExportTraceServiceRequest {
        let mut all: Vec<(&'static str, Span)> = Vec::new();
        for _ in 0..n {
            let start = base + rng.below(window);
            let mut tid = [0u8; 16];
            tid[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            tid[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            let mut t = TraceBuilder {
                rng,
                tid: tid.to_vec(),
                spans: Vec::new(),
            };
            match t.rng.below(10) {
                0..=3 => self.checkout(&mut t, start),
                4..=8 => product(&mut t, start),
                _ => search(&mut t, start),
            }
            all.append(&mut t.spans);
        }
        let mut by: BTreeMap<&str, Vec<Span>> = BTreeMap::new();
        for (svc, sp) in all {
            by.entry(svc).or_default().push(sp);
        }
        ExportTraceServiceRequest {
            resource_spans: by
                .into_iter()
                .map(|(svc, spans)| ResourceSpans {
                    resource: Some(resource(svc)),
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
                })
                .collect(),
        }
    }

    /// frontend `POST /checkout` → checkout `POST /orders`: an N+1 over order items, a cache
    /// lookup, the payment provider (sometimes declining), an insert (rarely deadlocking).
    fn checkout(&mut self, t: &mut TraceBuilder<'_>, start: u64) {
        self.order += 1;
        let order = self.order;
        let items = 3 + t.rng.below(6);
        let declined = t.rng.below(25) == 0;
        let deadlock = !declined && t.rng.below(60) == 0;
        let slow = t.rng.below(40) == 0;
        let err = declined || deadlock;
        let mut c = start + 2 * MS;
        // children of checkout's server span, timed first
        let root = t.span(
            "frontend",
            None,
            "POST /checkout",
            span::SpanKind::Server,
            start,
            0,
            vec![
                s("http.request.method", "POST"),
                s("http.route", "/checkout"),
                s("url.path", "/checkout"),
                i("http.response.status_code", if err { 502 } else { 303 }),
                s("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
            ],
            err.then_some("upstream checkout failed"),
        );
        let call = t.span(
            "frontend",
            Some(&root),
            "POST",
            span::SpanKind::Client,
            c,
            0,
            vec![
                s("http.request.method", "POST"),
                s("url.full", "http://checkout:8080/orders"),
                s("server.address", "checkout"),
                i("server.port", 8080),
                i("http.response.status_code", if err { 500 } else { 201 }),
            ],
            err.then_some("500 Internal Server Error"),
        );
        let srv_start = c + MS;
        let srv = t.span(
            "checkout",
            Some(&call),
            "POST /orders",
            span::SpanKind::Server,
            srv_start,
            0,
            vec![
                s("http.request.method", "POST"),
                s("http.route", "/orders"),
                s("url.path", "/orders"),
                i("http.response.status_code", if err { 500 } else { 201 }),
            ],
            if declined {
                Some("payment declined")
            } else if deadlock {
                Some("database error")
            } else {
                None
            },
        );
        if declined {
            t.exception(
                "checkout::PaymentError",
                &format!("payment declined for order {order}: card_declined"),
            );
        }
        c = srv_start + MS / 2;
        let d = 300_000 + t.rng.below(700_000);
        t.span(
            "checkout",
            Some(&srv),
            "GET",
            span::SpanKind::Client,
            c,
            d,
            vec![
                s("db.system.name", "redis"),
                s("db.operation.name", "GET"),
                s("db.query.text", "GET cart:?"),
                s("server.address", "redis.internal"),
                i("server.port", 6379),
            ],
            None,
        );
        c += d + 100_000;
        let d = if slow {
            600 * MS + t.rng.below(300) * MS
        } else {
            MS + t.rng.below(3 * MS)
        };
        t.span(
            "checkout",
            Some(&srv),
            "SELECT orders",
            span::SpanKind::Client,
            c,
            d,
            db(&format!(
                "SELECT id, customer_id, total FROM orders WHERE id = {order}"
            ))
            .into_iter()
            .chain([i("db.response.returned_rows", 1)])
            .chain(slow.then(|| b("db.slow", true)))
            .collect(),
            None,
        );
        c += d + 100_000;
        for n in 0..items {
            let d = 400_000 + t.rng.below(900_000);
            let mut a = db(&format!(
                "SELECT sku, qty, price FROM order_items WHERE order_id = {order} AND line = {n}"
            ));
            a.push(i("db.response.returned_rows", 1));
            if n + 1 >= 5 {
                a.push(b("db.n_plus_one", true));
                a.push(i("db.n_plus_one.count", (n + 1) as i64));
            }
            t.span(
                "checkout",
                Some(&srv),
                "SELECT order_items",
                span::SpanKind::Client,
                c,
                d,
                a,
                None,
            );
            c += d + 50_000;
        }
        let d = 20 * MS + t.rng.below(60 * MS);
        t.span(
            "checkout",
            Some(&srv),
            "POST",
            span::SpanKind::Client,
            c,
            d,
            vec![
                s("http.request.method", "POST"),
                s("url.full", "https://api.payments.example/v1/charges"),
                s("server.address", "api.payments.example"),
                i("server.port", 443),
                i(
                    "http.response.status_code",
                    if declined { 402 } else { 200 },
                ),
            ],
            declined.then_some("402 Payment Required"),
        );
        c += d + 200_000;
        if !declined {
            let d = 2 * MS + t.rng.below(4 * MS);
            let (dollars, cents) = (t.rng.below(300), t.rng.below(100));
            t.span(
                "checkout",
                Some(&srv),
                "INSERT payments",
                span::SpanKind::Client,
                c,
                d,
                db(&format!(
                    "INSERT INTO payments (order_id, amount) VALUES ({order}, {dollars}.{cents:02})"
                ))
                .into_iter()
                .chain([i("db.response.returned_rows", 1)])
                .collect(),
                deadlock.then_some("deadlock detected"),
            );
            if deadlock {
                t.exception(
                    "sqlx::Error::Database",
                    &format!("deadlock detected while inserting payment for order {order}"),
                );
            }
            c += d;
        }
        // close the parents around their children
        let srv_end = c + MS / 2;
        let end = srv_end + MS / 2;
        set_end(&mut t.spans, &srv, srv_end);
        set_end(&mut t.spans, &call, end);
        let render = 500_000 + t.rng.below(2 * MS);
        t.span(
            "frontend",
            Some(&root),
            "render checkout",
            span::SpanKind::Internal,
            end + 100_000,
            render,
            vec![s("code.function.name", "frontend::views::checkout")],
            None,
        );
        set_end(&mut t.spans, &root, end + 200_000 + render);
    }
}

fn db(text: &str) -> Vec<KeyValue> {
    vec![
        s("db.system.name", "postgresql"),
        s("db.namespace", "shop"),
        s("db.query.text", text),
        s("server.address", "db.internal"),
        i("server.port", 5432),
    ]
}

fn set_end(spans: &mut [(&'static str, Span)], id: &[u8], end: u64) {
    if let Some((_, sp)) = spans.iter_mut().find(|(_, sp)| sp.span_id == id) {
        sp.end_time_unix_nano = end.max(sp.start_time_unix_nano + 1);
    }
}

/// frontend `GET /products/{id}` → catalog `GET /products/{id}` → database, CDN.
fn product(t: &mut TraceBuilder<'_>, start: u64) {
    let id = t.rng.below(5000);
    let missing = t.rng.below(30) == 0;
    let root = t.span(
        "frontend",
        None,
        "GET /products/{id}",
        span::SpanKind::Server,
        start,
        0,
        vec![
            s("http.request.method", "GET"),
            s("http.route", "/products/{id}"),
            s("url.path", format!("/products/{id}")),
            i("http.response.status_code", if missing { 404 } else { 200 }),
        ],
        None,
    );
    let c0 = start + MS;
    let call = t.span(
        "frontend",
        Some(&root),
        "GET",
        span::SpanKind::Client,
        c0,
        0,
        vec![
            s("http.request.method", "GET"),
            s("url.full", format!("http://catalog:8080/products/{id}")),
            s("server.address", "catalog"),
            i("server.port", 8080),
            i("http.response.status_code", if missing { 404 } else { 200 }),
        ],
        None,
    );
    let s0 = c0 + 500_000;
    let srv = t.span(
        "catalog",
        Some(&call),
        "GET /products/{id}",
        span::SpanKind::Server,
        s0,
        0,
        vec![
            s("http.request.method", "GET"),
            s("http.route", "/products/{id}"),
            s("url.path", format!("/products/{id}")),
            i("http.response.status_code", if missing { 404 } else { 200 }),
        ],
        None,
    );
    let mut c = s0 + 300_000;
    let d = MS + t.rng.below(6 * MS);
    let mut a = db(&format!(
        "SELECT id, name, price, stock FROM products WHERE id = {id}"
    ));
    a.push(i("db.response.returned_rows", i64::from(!missing)));
    t.span(
        "catalog",
        Some(&srv),
        "SELECT products",
        span::SpanKind::Client,
        c,
        d,
        a,
        None,
    );
    c += d + 100_000;
    if !missing {
        let d = 3 * MS + t.rng.below(25 * MS);
        let fail = t.rng.below(80) == 0;
        t.span(
            "catalog",
            Some(&srv),
            "GET",
            span::SpanKind::Client,
            c,
            d,
            vec![
                s("http.request.method", "GET"),
                s("url.full", format!("https://images.cdn.example/p/{id}.jpg")),
                s("server.address", "images.cdn.example"),
                i("server.port", 443),
                i("http.response.status_code", if fail { 503 } else { 200 }),
            ],
            fail.then_some("503 Service Unavailable"),
        );
        c += d;
    }
    let end = c + 300_000;
    set_end(&mut t.spans, &srv, end);
    set_end(&mut t.spans, &call, end + 200_000);
    set_end(&mut t.spans, &root, end + 700_000 + t.rng.below(MS));
}

/// catalog `GET /search`: slow-ish full-text query; the route name carries markup, which the
/// dashboard must show as text.
fn search(t: &mut TraceBuilder<'_>, start: u64) {
    let hostile = t.rng.below(20) == 0;
    let name = if hostile {
        "GET /search/<img src=x onerror=alert(1)>"
    } else {
        "GET /search"
    };
    let srv = t.span(
        "catalog",
        None,
        name,
        span::SpanKind::Server,
        start,
        0,
        vec![
            s("http.request.method", "GET"),
            s("http.route", "/search"),
            s("url.path", "/search"),
            s("url.query", "q=<script>alert(1)</script>"),
            i("http.response.status_code", 200),
        ],
        None,
    );
    let d = 15 * MS + t.rng.below(120 * MS);
    t.span(
        "catalog",
        Some(&srv),
        "SELECT products",
        span::SpanKind::Client,
        start + MS,
        d,
        db("SELECT id, name FROM products WHERE to_tsvector(name) @@ plainto_tsquery('red shoes') LIMIT 20")
            .into_iter()
            .chain([i("db.response.returned_rows", 20)])
            .collect(),
        None,
    );
    set_end(&mut t.spans, &srv, start + 2 * MS + d);
}

/// Runtime gauges every 10 s for the shop's services.
pub fn runtime_metrics(rng: &mut Rng, from: u64, to: u64) -> ExportMetricsServiceRequest {
    let mut out = Vec::new();
    for (k, svc) in ["frontend", "checkout", "catalog"].into_iter().enumerate() {
        let mut pts: BTreeMap<(&str, &str), Vec<NumberDataPoint>> = BTreeMap::new();
        // points every 10 s on the clock, values a function of the time: calls join up
        let mut t = from.div_ceil(10_000_000_000) * 10_000_000_000;
        while t < to {
            let x = t as f64 / 60e9;
            // grows for 30 minutes, then a cache is dropped
            let heap = 40e6
                + k as f64 * 10e6
                + (x % 30.0) * 1.2e6
                + 3e6 * (x / 3.0).sin()
                + rng.below(500_000) as f64;
            let vals = [
                (
                    "process.cpu.utilization",
                    "1",
                    0.15 + 0.1 * (x / 7.0).sin().abs() + rng.below(50) as f64 / 1000.0,
                ),
                (
                    "process.memory.usage",
                    "By",
                    heap * 1.6 + 20e6 + rng.below(1_000_000) as f64,
                ),
                ("rustmon.heap.live", "By", heap),
                (
                    "tokio.tasks.alive",
                    "{task}",
                    (20 + rng.below(30) + (x as u64 % 13)) as f64,
                ),
                ("process.thread.count", "{thread}", (9 + k) as f64),
            ];
            for (name, unit, v) in vals {
                pts.entry((name, unit)).or_default().push(NumberDataPoint {
                    time_unix_nano: t,
                    value: Some(number_data_point::Value::AsDouble(v)),
                    ..Default::default()
                });
            }
            t += 10_000_000_000;
        }
        out.push(ResourceMetrics {
            resource: Some(resource(svc)),
            scope_metrics: vec![ScopeMetrics {
                metrics: pts
                    .into_iter()
                    .map(|((name, unit), data_points)| Metric {
                        name: name.into(),
                        unit: unit.into(),
                        data: Some(metric::Data::Gauge(Gauge { data_points })),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: out,
    }
}
