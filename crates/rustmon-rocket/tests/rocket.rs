//! The rocket fairing under a real rocket server on 127.0.0.1, called with a real HTTP client.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use rocket::config::{LogLevel, Shutdown};
use rocket::fairing::AdHoc;
use rocket::http::{Header, Status as RocketStatus};
use rocket::response::{self, Responder};
use rocket::{Build, Rocket, State, catch, catchers, get, post, routes};
use rustmon_core::context::{FutureExt, SpanContext};
use rustmon_core::{Kind, Monitor, Status};
use rustmon_rocket::{RequestContext, catchers_in_context, in_context};
use rustmon_test::Capture;
use rustmon_test::http::{TestClient, wait};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;

struct Harness {
    monitor: Monitor,
    capture: Capture,
    http: TestClient,
    shutdown: rocket::Shutdown,
}

impl std::ops::Deref for Harness {
    type Target = TestClient;
    fn deref(&self) -> &TestClient {
        &self.http
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

/// Launches `build(rocket)` on 127.0.0.1 (a free port) with the rustmon fairing recording into a
/// capture, on the test's runtime; handlers find the monitor in managed state.
async fn serve(build: impl FnOnce(Rocket<Build>) -> Rocket<Build>) -> Harness {
    let capture = Capture::new();
    let monitor = Monitor::builder("rocket-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    let config = rocket::Config {
        address: Ipv4Addr::LOCALHOST.into(),
        port: 0,
        workers: 2,
        log_level: LogLevel::Off,
        cli_colors: false,
        shutdown: Shutdown {
            ctrlc: false,
            signals: HashSet::new(),
            grace: 1,
            mercy: 1,
            ..Shutdown::default()
        },
        ..rocket::Config::debug_default()
    };
    let (tx, rx) = oneshot::channel();
    let rocket = build(rocket::custom(config))
        .manage(monitor.clone())
        .attach(rustmon_rocket::Monitor::with_monitor(monitor.clone()))
        .attach(AdHoc::on_liftoff("test address", move |r| {
            let _ = tx.send((r.config().port, r.shutdown()));
            Box::pin(async {})
        }));
    let launched = tokio::spawn(rocket.launch());
    let Ok((port, shutdown)) = rx.await else {
        let error = launched.await.unwrap().err().map(|e| e.to_string());
        panic!("rocket did not launch: {error:?}");
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    Harness {
        monitor,
        capture,
        http: TestClient::new(addr),
        shutdown,
    }
}

impl Harness {
    fn config(&self, patch: serde_json::Value) {
        self.monitor.update_config("http_server", &patch).unwrap();
    }
}

#[get("/orders/<id>")]
fn order(id: u32) -> String {
    format!("order {id}")
}

#[post("/orders", data = "<body>")]
fn create(body: &str) -> String {
    body.len().to_string()
}

#[get("/files/<path..>")]
fn file(path: std::path::PathBuf) -> String {
    path.display().to_string()
}

#[get("/missing")]
fn missing() -> RocketStatus {
    RocketStatus::NotFound
}

#[get("/boom")]
fn boom() -> (RocketStatus, &'static str) {
    (RocketStatus::InternalServerError, "broken")
}

#[get("/unavailable")]
fn unavailable() -> Result<&'static str, RocketStatus> {
    Err(RocketStatus::ServiceUnavailable)
}

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

fn app(rocket: Rocket<Build>) -> Rocket<Build> {
    rocket
        .mount(
            "/",
            in_context(routes![order, create, missing, boom, unavailable, health]),
        )
        .mount("/static", routes![file])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_use_route_templates_and_record_http_attributes() {
    let h = serve(app).await;
    let (status, headers, body) = h.get("/orders/42").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"order 42"[..]));
    assert_eq!(headers["content-length"], "8", "sized bodies stay sized");
    assert_eq!(h.get("/no/such/path/123").await.0, StatusCode::NOT_FOUND);
    assert_eq!(h.get("/static/files/a/b.txt").await.0, StatusCode::OK);
    let (_, _, body) = h
        .send(
            h.req("POST", "/orders")
                .header("user-agent", "rustmon-test/1")
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"0123456789")))
                .unwrap(),
        )
        .await;
    assert_eq!(&body[..], b"10");
    let (status, _, _) = h
        .send(h.req("HEAD", "/orders/7").body(Full::default()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    wait(|| {
        let e = h
            .capture
            .expect("GET /orders/{id}")
            .kind(Kind::Server)
            .status(Status::Unset)
            .root()
            .attr("http.request.method", "GET")
            .attr("http.route", "/orders/{id}")
            .attr("url.path", "/orders/42")
            .attr("url.scheme", "http")
            .attr("server.address", "127.0.0.1")
            .attr("server.port", i64::from(h.addr().port()))
            .attr("http.response.status_code", 200_i64)
            .attr("http.response.body.size", 8_i64)
            // rocket 0.5 does not tell the HTTP version: not recorded rather than guessed.
            .no_attr("network.protocol.version")
            .no_attr("client.address")
            .no_attr("rustmon.cancelled")
            .one();
        assert_eq!(e.plugin, "http_server");
        h.capture
            .expect("GET unmatched")
            .no_attr("http.route")
            .attr("url.path", "/no/such/path/123")
            .attr("http.response.status_code", 404_i64)
            .status(Status::Unset)
            .one();
        h.capture
            .expect("GET /static/files/{*path}")
            .attr("http.route", "/static/files/{*path}")
            .attr("url.path", "/static/files/a/b.txt")
            .one();
        h.capture
            .expect("POST /orders")
            .attr("http.request.body.size", 10_i64)
            .attr("user_agent.original", "rustmon-test/1")
            .attr("http.response.body.size", 2_i64)
            .one();
        h.capture
            .expect("HEAD /orders/{id}")
            .attr("http.request.method", "HEAD")
            .attr("http.response.status_code", 200_i64)
            .no_attr("rustmon.cancelled")
            .one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_classes_drive_the_event_status() {
    let h = serve(app).await;
    assert_eq!(h.get("/missing").await.0, StatusCode::NOT_FOUND);
    assert_eq!(h.get("/boom").await.0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        h.get("/unavailable").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    wait(|| {
        h.capture
            .expect("GET /missing")
            .attr("http.response.status_code", 404_i64)
            .status(Status::Unset)
            .one();
        h.capture
            .expect("GET /boom")
            .attr("http.response.status_code", 500_i64)
            .attr("http.response.body.size", 6_i64)
            .status(Status::Error)
            .one();
        h.capture
            .expect("GET /unavailable")
            .attr("http.response.status_code", 503_i64)
            .status(Status::Error)
            .one();
    });
    h.capture.clear();
    h.config(json!({ "client_errors_are_errors": true }));
    h.get("/missing").await;
    h.get("/nowhere").await;
    wait(|| {
        h.capture.expect("GET /missing").status(Status::Error).one();
        h.capture
            .expect("GET unmatched")
            .status(Status::Error)
            .one();
    });
}

#[derive(rocket::Responder)]
struct WithHeaders {
    body: &'static str,
    cookie: Header<'static>,
    id: Header<'static>,
}

#[get("/h")]
fn with_headers() -> WithHeaders {
    WithHeaders {
        body: "ok",
        cookie: Header::new("Set-Cookie", "session=abc"),
        id: Header::new("X-Request-Id", "r-1"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_captured_with_redaction_after_a_live_config_change() {
    let h = serve(|r| r.mount("/", routes![with_headers])).await;
    let send = || {
        h.send(
            h.req("GET", "/h")
                .header("authorization", "Bearer s3cret")
                .header("cookie", "id=1")
                .header("x-api-key", "k-123")
                .header("accept", "text/plain")
                .body(Full::default())
                .unwrap(),
        )
    };
    let (_, headers, _) = send().await;
    assert_eq!(headers["x-request-id"], "r-1");
    wait(|| {
        h.capture
            .expect("GET /h")
            .no_attr("http.request.header.accept")
            .no_attr("http.response.header.x-request-id")
            .no_attr("client.address")
            .one();
    });
    h.capture.clear();
    // The same running server, reconfigured.
    h.config(
        json!({ "request_headers": true, "response_headers": true, "request_remote_addr": true }),
    );
    send().await;
    wait(|| {
        h.capture
            .expect("GET /h")
            .attr("http.request.header.accept", "text/plain")
            .attr("http.request.header.authorization", "[REDACTED]")
            .attr("http.request.header.cookie", "[REDACTED]")
            .attr("http.request.header.x-api-key", "[REDACTED]")
            .attr("http.response.header.x-request-id", "r-1")
            .attr("http.response.header.set-cookie", "[REDACTED]")
            .attr("client.address", "127.0.0.1")
            .has_attr("client.port")
            .one();
    });
    h.capture.clear();
    h.config(json!({ "header_allow": ["accept"], "response_headers": false }));
    send().await;
    wait(|| {
        h.capture
            .expect("GET /h")
            .attr("http.request.header.accept", "text/plain")
            .no_attr("http.request.header.authorization")
            .no_attr("http.response.header.x-request-id")
            .one();
    });
}

/// The write half of the body the last `/stream` request is answering.
type Feeder = Arc<Mutex<Option<DuplexStream>>>;

/// A streamed (unsized) body read from a pipe the test writes to.
struct Piped(DuplexStream);

impl<'r> Responder<'r, 'static> for Piped {
    fn respond_to(self, _req: &'r rocket::Request<'_>) -> response::Result<'static> {
        rocket::Response::build().streamed_body(self.0).ok()
    }
}

#[get("/stream")]
async fn stream(feeder: &State<Feeder>) -> Piped {
    let (mut tx, rx) = tokio::io::duplex(64);
    tx.write_all(b"first;").await.unwrap();
    *feeder.lock().unwrap() = Some(tx);
    Piped(rx)
}

#[get("/text")]
fn text() -> &'static str {
    "hello world"
}

fn bodies(feeder: Feeder) -> impl FnOnce(Rocket<Build>) -> Rocket<Build> {
    move |r| r.manage(feeder).mount("/", routes![stream, text])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_captured_within_the_limit_and_streams_are_not_buffered() {
    let feeder = Feeder::default();
    let h = serve(bodies(feeder.clone())).await;
    h.get("/text").await;
    wait(|| {
        h.capture
            .expect("GET /text")
            .attr("http.response.body.size", 11_i64)
            .no_attr("http.response.body")
            .one();
    });
    // The first chunk reaches the client while the handler's stream is still open.
    let resp = h
        .open(h.req("GET", "/stream").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("content-length"));
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first;");
    let mut tx = feeder.lock().unwrap().take().unwrap();
    tx.write_all(b"second").await.unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second");
    wait(|| {
        h.capture
            .expect("GET /stream")
            .attr("http.response.body.size", 12_i64)
            .no_attr("http.response.body")
            .no_attr("rustmon.cancelled")
            .one();
    });
    h.capture.clear();
    h.config(json!({ "response_body": true, "response_body_max_size": 5 }));
    let (_, headers, body) = h.get("/text").await;
    assert_eq!(
        (&headers["content-length"], &body[..]),
        (&"11".parse().unwrap(), &b"hello world"[..])
    );
    wait(|| {
        h.capture
            .expect("GET /text")
            .attr("http.response.body", "hello")
            .attr("http.response.body.size", 11_i64)
            .one();
    });
}

#[get("/ping/<n>")]
fn ping(n: u32, monitor: &State<Monitor>) -> String {
    monitor.start_event(Kind::Database, "SELECT 1").finish();
    n.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_routes_produce_no_event() {
    let h = serve(|r| app(r).mount("/", in_context(routes![ping]))).await;
    h.config(json!({ "ignore_routes": ["/health", "/orders/{id}", "/ping/{n}"] }));
    assert_eq!(h.get("/health").await.0, StatusCode::OK);
    assert_eq!(h.get("/orders/7").await.0, StatusCode::OK);
    assert_eq!(h.get("/ping/1").await.0, StatusCode::OK);
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").one();
        // What the handler of an ignored route records does not point at a discarded parent.
        h.capture.expect("SELECT 1").root().one();
    });
    assert_eq!(h.capture.events().len(), 2, "{}", h.capture.summary());
    // Back on without a restart.
    h.config(json!({ "ignore_routes": [] }));
    h.get("/orders/7").await;
    wait(|| {
        h.capture.expect("GET /orders/{id}").one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_continues_the_callers_trace() {
    let h = serve(app).await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let caller = SpanContext::from_traceparent(tp).unwrap();
    h.send(
        h.req("GET", "/orders/1")
            .header("traceparent", tp)
            .header("tracestate", "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    h.send(
        h.req("GET", "/orders/2")
            .header("traceparent", "garbage")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    wait(|| {
        let e = h
            .capture
            .expect("GET /orders/{id}")
            .attr("url.path", "/orders/1")
            .one();
        assert_eq!(e.trace_id, caller.trace_id);
        assert_eq!(e.parent_span_id, Some(caller.span_id));
        assert!(e.parent_remote);
        assert_eq!(
            e.trace_state,
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        let fresh = h
            .capture
            .expect("GET /orders/{id}")
            .attr("url.path", "/orders/2")
            .root()
            .one();
        assert_ne!(fresh.trace_id, caller.trace_id);
    });
}

#[get("/work")]
async fn work(monitor: &State<Monitor>) -> &'static str {
    tokio::task::yield_now().await;
    monitor
        .start_event(Kind::Database, "SELECT orders")
        .finish();
    let m = monitor.inner().clone();
    tokio::spawn(
        async move {
            tokio::task::yield_now().await;
            m.start_event(Kind::Client, "GET payments").finish();
        }
        .in_current_context(),
    )
    .await
    .unwrap();
    "done"
}

#[get("/guarded")]
async fn guarded(monitor: &State<Monitor>, ctx: RequestContext) -> &'static str {
    ctx.scope(async {
        tokio::task::yield_now().await;
        monitor.start_event(Kind::Cache, "GET session").finish();
    })
    .await;
    "done"
}

#[catch(404)]
async fn not_found(req: &rocket::Request<'_>) -> &'static str {
    tokio::task::yield_now().await;
    let monitor = req.rocket().state::<Monitor>().unwrap();
    monitor.start_event(Kind::Custom, "render 404").finish();
    "not here"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_started_in_the_handler_are_children_of_the_request() {
    let h = serve(|r| {
        r.mount("/", in_context(routes![work]))
            .mount("/", routes![guarded])
            .register("/", catchers_in_context(catchers![not_found]))
    })
    .await;
    assert_eq!(h.get("/work").await.0, StatusCode::OK);
    assert_eq!(h.get("/guarded").await.0, StatusCode::OK);
    let (status, _, body) = h.get("/nowhere").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::NOT_FOUND, &b"not here"[..])
    );
    wait(|| {
        let server = h.capture.expect("GET unmatched").one();
        h.capture.expect("render 404").child_of(&server).one();
        let server = h.capture.expect("GET /work").one();
        h.capture.expect("SELECT orders").child_of(&server).one();
        h.capture.expect("GET payments").child_of(&server).one();
        let server = h.capture.expect("GET /guarded").one();
        h.capture.expect("GET session").child_of(&server).one();
    });
}

#[get("/panic")]
async fn panics() -> &'static str {
    tokio::task::yield_now().await;
    if std::hint::black_box(true) {
        panic!("kaboom");
    }
    "unreachable"
}

#[get("/panic-plain")]
fn panics_plain() -> &'static str {
    if std::hint::black_box(true) {
        panic!("kaboom");
    }
    "unreachable"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_recorded_as_an_error() {
    // rocket catches handler panics and answers 500 through its catcher.
    let h = serve(|r| {
        r.mount("/", in_context(routes![panics]))
            .mount("/", routes![panics_plain])
    })
    .await;
    assert_eq!(h.get("/panic").await.0, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        h.get("/panic-plain").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    wait(|| {
        let e = h
            .capture
            .expect("GET /panic")
            .status(Status::Error)
            .attr("http.response.status_code", 500_i64)
            .one();
        assert_eq!(e.errors[0].error_type, "panic");
        assert_eq!(e.errors[0].message, "kaboom");
        // Without `in_context` only the 500 is seen.
        let e = h
            .capture
            .expect("GET /panic-plain")
            .status(Status::Error)
            .attr("http.response.status_code", 500_i64)
            .one();
        assert!(e.errors.is_empty());
    });
    // The server keeps serving.
    h.get("/panic").await;
    wait(|| {
        h.capture.expect("GET /panic").count(2);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dropped_mid_stream_is_recorded_as_cancelled() {
    let feeder = Feeder::default();
    let h = serve(bodies(feeder.clone())).await;
    let mut conn = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    conn.write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while !got.windows(6).any(|w| w == b"first;") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    drop(conn);
    // rocket stops sending when a write to the closed connection fails; it then drops the body,
    // and the pipe's write half fails.
    let mut tx = feeder.lock().unwrap().take().unwrap();
    let mut closed = false;
    for _ in 0..1500 {
        if tx.write_all(b"more").await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(closed, "rocket never dropped the body");
    wait(|| {
        h.capture
            .expect("GET /stream")
            .attr("rustmon.cancelled", true)
            .attr("http.response.status_code", 200_i64)
            .has_attr("http.response.body.size")
            .one();
    });
}
