//! The tower layer under a real axum server on 127.0.0.1, called with a real HTTP client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use rustmon_core::context::{FutureExt, SpanContext};
use rustmon_core::{EventRecord, Kind, Monitor, Status};
use rustmon_test::Capture;
use rustmon_test::http::{TestClient, wait};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

struct Harness {
    monitor: Monitor,
    capture: Capture,
    http: TestClient,
}

impl std::ops::Deref for Harness {
    type Target = TestClient;
    fn deref(&self) -> &TestClient {
        &self.http
    }
}

fn monitor() -> (Monitor, Capture) {
    let capture = Capture::new();
    let monitor = Monitor::builder("web-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (monitor, capture)
}

/// Serves `app` (built with the monitor, which it must layer itself) on 127.0.0.1:0.
async fn serve_with(monitor: Monitor, capture: Capture, app: Router) -> Harness {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    Harness {
        monitor,
        capture,
        http: TestClient::new(addr),
    }
}

/// Serves `routes(monitor)` with the rustmon layer added by `Router::layer`.
async fn serve(routes: impl FnOnce(Monitor) -> Router) -> Harness {
    let (monitor, capture) = monitor();
    let app =
        routes(monitor.clone()).layer(rustmon_tower::axum::layer().with_monitor(monitor.clone()));
    serve_with(monitor, capture, app).await
}

impl Harness {
    fn config(&self, patch: serde_json::Value) {
        self.monitor.update_config("http_server", &patch).unwrap();
    }
}

fn routes(_: Monitor) -> Router {
    Router::new()
        .route(
            "/orders/{id}",
            get(|axum::extract::Path(id): axum::extract::Path<u32>| async move {
                format!("order {id}")
            }),
        )
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "broken") }),
        )
        .route("/orders", post(|body: Bytes| async move { body.len().to_string() }))
        .route("/health", get(|| async { "ok" }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_use_route_templates_and_record_http_attributes() {
    let h = serve(routes).await;
    let (status, _, body) = h.get("/orders/42").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"order 42"[..]));
    let (status, _, _) = h.get("/no/such/path/123").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = h
        .send(
            h.req("POST", "/orders")
                .header("user-agent", "rustmon-test/1")
                .body(Full::new(Bytes::from_static(b"0123456789")))
                .unwrap(),
        )
        .await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"10"[..]));

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
            .attr("network.protocol.version", "1.1")
            .attr("http.response.status_code", 200_i64)
            .attr("http.response.body.size", 8_i64)
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
            .expect("POST /orders")
            .attr("http.request.body.size", 10_i64)
            .attr("user_agent.original", "rustmon-test/1")
            .attr("http.response.body.size", 2_i64)
            .one();
        // No event is ever named by a raw path.
        assert!(
            h.capture.events().iter().all(|e| !e.name.contains("42")),
            "{}",
            h.capture.summary()
        );
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_classes_drive_the_event_status() {
    let h = serve(routes).await;
    h.get("/missing").await;
    h.get("/boom").await;
    wait(|| {
        h.capture
            .expect("GET /missing")
            .attr("http.response.status_code", 404_i64)
            .status(Status::Unset)
            .one();
        h.capture
            .expect("GET /boom")
            .attr("http.response.status_code", 500_i64)
            .status(Status::Error)
            .one();
    });
    // 4xx as errors, and no status code attribute: both live.
    h.config(json!({ "client_errors_are_errors": true, "response_code": false }));
    h.get("/missing").await;
    wait(|| {
        h.capture
            .expect("GET /missing")
            .status(Status::Error)
            .no_attr("http.response.status_code")
            .one();
    });
}

fn echo_headers(_: Monitor) -> Router {
    Router::new().route(
        "/h",
        get(|| async {
            let mut resp = "ok".into_response();
            let h = resp.headers_mut();
            h.insert("set-cookie", HeaderValue::from_static("session=abc"));
            h.insert("x-request-id", HeaderValue::from_static("r-1"));
            resp
        }),
    )
}

async fn get_with_secret_headers(h: &Harness) {
    h.send(
        h.req("GET", "/h")
            .header("authorization", "Bearer s3cret")
            .header("cookie", "id=1")
            .header("x-api-key", "k-123")
            .header("x-auth-token", "t-123")
            .header("accept", "text/plain")
            .header("x-custom", "a")
            .header("x-custom", "b")
            .body(Full::default())
            .unwrap(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_captured_with_redaction_and_lists_and_live_config() {
    let h = serve(echo_headers).await;
    // Defaults: nothing captured.
    get_with_secret_headers(&h).await;
    wait(|| {
        h.capture
            .expect("GET /h")
            .no_attr("http.request.header.accept")
            .no_attr("http.response.header.x-request-id")
            .no_attr("client.address")
            .one();
    });
    h.capture.clear();

    // A live change takes effect on the next request, without restart.
    h.config(
        json!({ "request_headers": true, "response_headers": true, "request_remote_addr": true }),
    );
    get_with_secret_headers(&h).await;
    wait(|| {
        h.capture
            .expect("GET /h")
            .attr("http.request.header.accept", "text/plain")
            .attr("http.request.header.x-custom", "a, b")
            .attr("http.request.header.authorization", "[REDACTED]")
            .attr("http.request.header.cookie", "[REDACTED]")
            .attr("http.request.header.x-api-key", "[REDACTED]")
            .attr("http.request.header.x-auth-token", "[REDACTED]")
            .attr("http.response.header.x-request-id", "r-1")
            .attr("http.response.header.set-cookie", "[REDACTED]")
            .attr("client.address", "127.0.0.1")
            .has_attr("client.port")
            .one();
    });
    h.capture.clear();

    // Allow and deny lists; redaction can be turned off.
    h.config(json!({
        "header_allow": ["Accept", "Authorization", "X-Custom"],
        "header_deny": ["x-custom"],
        "redact_sensitive_headers": false,
        "response_headers": false,
    }));
    get_with_secret_headers(&h).await;
    wait(|| {
        h.capture
            .expect("GET /h")
            .attr("http.request.header.accept", "text/plain")
            .attr("http.request.header.authorization", "Bearer s3cret")
            .no_attr("http.request.header.x-custom")
            .no_attr("http.request.header.cookie")
            .no_attr("http.response.header.x-request-id")
            .one();
    });
}

/// A body fed frame by frame through a channel, to show that frames pass through unbuffered.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

type Feeder = Arc<Mutex<Option<mpsc::Sender<Bytes>>>>;

fn bodies(feeder: Feeder) -> impl FnOnce(Monitor) -> Router {
    move |_| {
        Router::new()
            .route("/text", get(|| async { "hello world" }))
            .route(
                "/stream",
                get(move || async move {
                    let (tx, rx) = mpsc::channel(1);
                    tx.send(Bytes::from_static(b"first;")).await.unwrap();
                    *feeder.lock().unwrap() = Some(tx);
                    Body::new(ChannelBody(rx))
                }),
            )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_are_captured_within_the_limit_and_streams_are_not_buffered() {
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

    // Streaming with capture off: the first frame reaches the client before the second exists.
    let resp = h
        .open(h.req("GET", "/stream").body(Full::default()).unwrap())
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first;");
    let tx = feeder.lock().unwrap().take().unwrap();
    tx.send(Bytes::from_static(b"second")).await.unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second");
    wait(|| {
        h.capture
            .expect("GET /stream")
            .attr("http.response.body.size", 12_i64)
            .no_attr("rustmon.cancelled")
            .one();
    });

    h.config(json!({ "response_body": true, "response_body_max_size": 5 }));
    h.get("/text").await;
    wait(|| {
        h.capture
            .expect("GET /text")
            .attr("http.response.body", "hello")
            .attr("http.response.body.size", 11_i64)
            .one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_routes_produce_no_event() {
    let h = serve(routes).await;
    h.config(json!({ "ignore_routes": ["/health", "/orders/{id}"] }));
    assert_eq!(h.get("/health").await.0, StatusCode::OK);
    assert_eq!(h.get("/orders/7").await.0, StatusCode::OK);
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").one();
    });
    h.capture.expect("GET /health").none();
    h.capture.expect("GET /orders/{id}").none();
    assert_eq!(h.capture.events().len(), 1, "{}", h.capture.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_monitor_records_nothing_and_serves_normally() {
    let h = serve(routes).await;
    h.monitor.disable();
    assert_eq!(h.get("/orders/1").await.2, "order 1");
    h.monitor.enable();
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").one();
    });
    h.capture.expect("GET /orders/{id}").none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_continues_the_callers_trace() {
    let h = serve(routes).await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let caller = SpanContext::from_traceparent(tp).unwrap();
    h.send(
        h.req("GET", "/orders/1")
            .header("traceparent", tp)
            .body(Full::default())
            .unwrap(),
    )
    .await;
    h.send(
        h.req("GET", "/missing")
            .header("traceparent", "00-garbage")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    wait(|| {
        let e = h.capture.expect("GET /orders/{id}").one();
        assert_eq!(e.trace_id, caller.trace_id);
        assert_eq!(e.parent_span_id, Some(caller.span_id));
        assert!(e.parent_remote && e.sampled);
        h.capture.expect("GET /missing").root().one();
    });
}

fn with_children(m: Monitor) -> Router {
    Router::new().route(
        "/work",
        get(move || async move {
            tokio::task::yield_now().await;
            m.start_event(Kind::Database, "SELECT orders").finish();
            let m2 = m.clone();
            tokio::spawn(
                async move {
                    tokio::task::yield_now().await;
                    m2.start_event(Kind::Client, "GET payments").finish();
                }
                .in_current_context(),
            )
            .await
            .unwrap();
            "done"
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_started_in_the_handler_are_children_of_the_request() {
    let h = serve(with_children).await;
    h.get("/work").await;
    wait(|| {
        let server: EventRecord = h.capture.expect("GET /work").one();
        h.capture.expect("SELECT orders").child_of(&server).one();
        h.capture.expect("GET payments").child_of(&server).one();
    });
}

fn panicking(_: Monitor) -> Router {
    Router::new().route("/ok", get(|| async { "ok" })).route(
        "/panic",
        get(|| async {
            tokio::task::yield_now().await;
            if std::hint::black_box(true) {
                panic!("kaboom");
            }
            "unreachable"
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_under_catch_panic_is_recorded_and_answered_with_500() {
    let (monitor, capture) = monitor();
    let app = panicking(monitor.clone())
        .layer(rustmon_tower::axum::layer().with_monitor(monitor.clone()))
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    let h = serve_with(monitor, capture, app).await;
    assert_eq!(h.get("/panic").await.0, StatusCode::INTERNAL_SERVER_ERROR);
    wait(|| {
        let e = h
            .capture
            .expect("GET /panic")
            .status(Status::Error)
            .no_attr("rustmon.cancelled")
            .one();
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].error_type, "panic");
        assert_eq!(e.errors[0].message, "kaboom");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_without_catch_panic_is_recorded_and_the_connection_closes_as_before() {
    // Without a catch-panic layer, axum's connection task panics and hyper closes the connection
    // without an answer: rustmon records the panic and lets it continue, so the client sees the
    // same as without rustmon.
    let h = serve(panicking).await;
    let err = h
        .open(h.req("GET", "/panic").body(Full::default()).unwrap())
        .await;
    assert!(
        err.is_err(),
        "expected the connection to close, got {err:?}"
    );
    wait(|| {
        let e = h.capture.expect("GET /panic").status(Status::Error).one();
        assert_eq!(e.errors[0].error_type, "panic");
    });
    // The server still serves.
    assert_eq!(h.get("/ok").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_client_goes_away_is_recorded_as_cancelled() {
    let started: Arc<Mutex<Option<oneshot::Sender<()>>>> = Arc::default();
    let (tx, rx) = oneshot::channel();
    *started.lock().unwrap() = Some(tx);
    let s = started.clone();
    let h = serve(move |_| {
        Router::new().route(
            "/slow",
            get(move || async move {
                if let Some(tx) = s.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                std::future::pending::<()>().await;
                "never"
            }),
        )
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    conn.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    rx.await.unwrap();
    drop(conn);
    wait(|| {
        h.capture
            .expect("GET /slow")
            .attr("rustmon.cancelled", true)
            .no_attr("http.response.status_code")
            .one();
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
    // Keep the stream open until hyper notices the client is gone.
    let _keep = feeder.lock().unwrap().take();
    wait(|| {
        h.capture
            .expect("GET /stream")
            .attr("rustmon.cancelled", true)
            .attr("http.response.status_code", 200_i64)
            .attr("http.response.body.size", 6_i64)
            .one();
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_without_a_body_are_not_mistaken_for_cancelled_ones() {
    let h = serve(|_| {
        Router::new()
            .route("/orders/{id}", get(|| async { "order" }))
            .route("/nothing", get(|| async { StatusCode::NO_CONTENT }))
    })
    .await;
    assert_eq!(
        h.send(h.req("HEAD", "/orders/1").body(Full::default()).unwrap())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(h.get("/nothing").await.0, StatusCode::NO_CONTENT);
    wait(|| {
        h.capture
            .expect("HEAD /orders/{id}")
            .attr("http.response.status_code", 200_i64)
            .no_attr("rustmon.cancelled")
            .one();
        h.capture
            .expect("GET /nothing")
            .attr("http.response.status_code", 204_i64)
            .attr("http.response.body.size", 0_i64)
            .no_attr("rustmon.cancelled")
            .one();
    });
}
