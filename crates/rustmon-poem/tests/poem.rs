//! The poem middleware under a real poem server on 127.0.0.1, called with a real HTTP client.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use poem::endpoint::{BoxEndpoint, make};
use poem::listener::TcpAcceptor;
use poem::middleware::CatchPanic;
use poem::{Body, EndpointExt, Response, Route, Server, get, post};
use rustmon_core::context::{FutureExt, SpanContext};
use rustmon_core::{Kind, Monitor, Status};
use rustmon_test::Capture;
use rustmon_test::http::{TestClient, wait};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::oneshot;

struct Harness {
    monitor: Monitor,
    capture: Capture,
    http: TestClient,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::ops::Deref for Harness {
    type Target = TestClient;
    fn deref(&self) -> &TestClient {
        &self.http
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Harness {
    /// Stops the server and waits until it has (requests in flight are dropped).
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// Serves `app(monitor)`, wrapped in the rustmon middleware, on 127.0.0.1:0.
fn serve(app: impl FnOnce(Monitor) -> Route) -> Harness {
    serve_endpoint(|m| {
        app(m.clone())
            .with(rustmon_poem::Monitor::with_monitor(m))
            .boxed()
    })
}

/// Serves the endpoint `app(monitor)` builds on 127.0.0.1:0.
fn serve_endpoint(app: impl FnOnce(Monitor) -> BoxEndpoint<'static>) -> Harness {
    let capture = Capture::new();
    let monitor = Monitor::builder("poem-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TcpAcceptor::from_std(listener).unwrap();
    let ep = app(monitor.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(
        Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            ep,
            async move {
                let _ = stopped.await;
            },
            Some(std::time::Duration::ZERO),
        ),
    );
    Harness {
        monitor,
        capture,
        http: TestClient::new(addr),
        stop: Some(stop),
        server: Some(server),
    }
}

impl Harness {
    fn config(&self, patch: serde_json::Value) {
        self.monitor.update_config("http_server", &patch).unwrap();
    }
}

fn routes(_m: Monitor) -> Route {
    Route::new()
        .at(
            "/orders/:id",
            get(make(|req| async move {
                format!("order {}", req.raw_path_param("id").unwrap_or_default())
            })),
        )
        .at(
            "/orders",
            post(make(|req: poem::Request| async move {
                let body = req.into_body().into_bytes().await?;
                Ok::<_, poem::Error>(body.len().to_string())
            })),
        )
        .at("/missing", get(make(|_| async { StatusCode::NOT_FOUND })))
        .at(
            "/boom",
            get(make(|_| async {
                Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body("broken")
            })),
        )
        .at(
            "/error",
            get(make(|_| async {
                Err::<String, _>(poem::Error::from_string(
                    "db down",
                    StatusCode::SERVICE_UNAVAILABLE,
                ))
            })),
        )
        .at("/health", get(make(|_| async { "ok" })))
        .nest(
            "/api",
            Route::new().at("/items/:id", get(make(|_| async { "item" }))),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_use_route_patterns_and_record_http_attributes() {
    let h = serve(routes);
    let (status, _, body) = h.get("/orders/42").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"order 42"[..]));
    assert_eq!(h.get("/no/such/path/123").await.0, StatusCode::NOT_FOUND);
    let (_, _, body) = h
        .send(
            h.req("POST", "/orders")
                .header("user-agent", "rustmon-test/1")
                .body(Full::new(Bytes::from_static(b"0123456789")))
                .unwrap(),
        )
        .await;
    assert_eq!(&body[..], b"10");
    assert_eq!(h.get("/api/items/9").await.2, "item");
    wait(|| {
        let e = h
            .capture
            .expect("GET /orders/:id")
            .kind(Kind::Server)
            .status(Status::Unset)
            .root()
            .attr("http.request.method", "GET")
            .attr("http.route", "/orders/:id")
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
        h.capture
            .expect("GET /api/items/:id")
            .attr("http.route", "/api/items/:id")
            .attr("url.path", "/api/items/9")
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
async fn status_classes_and_poem_errors_drive_the_event_status() {
    let h = serve(routes);
    h.get("/missing").await;
    let (status, _, body) = h.get("/boom").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::INTERNAL_SERVER_ERROR, &b"broken"[..])
    );
    let (status, _, body) = h.get("/error").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::SERVICE_UNAVAILABLE, &b"db down"[..])
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
        let e = h
            .capture
            .expect("GET /error")
            .attr("http.route", "/error")
            .attr("http.response.status_code", 503_i64)
            .status(Status::Error)
            .no_attr("rustmon.cancelled")
            .one();
        assert_eq!(e.errors[0].error_type, "poem::Error");
        assert_eq!(e.errors[0].message, "db down");
    });
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_captured_with_redaction_after_a_live_config_change() {
    let h = serve(|_| {
        Route::new().at(
            "/h",
            get(make(|_| async {
                Response::builder()
                    .header("set-cookie", "session=abc")
                    .header("x-request-id", "r-1")
                    .body("ok")
            })),
        )
    });
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
    send().await;
    wait(|| {
        h.capture
            .expect("GET /h")
            .no_attr("http.request.header.accept")
            .no_attr("client.address")
            .one();
    });
    h.capture.clear();
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

type Feeder = Arc<Mutex<Option<DuplexStream>>>;

/// `/text` answers "hello world"; `/stream` sends "first;" and then whatever the test writes
/// into the feeder, ending when the test drops it.
fn bodies(feeder: Feeder) -> impl FnOnce(Monitor) -> Route {
    move |_| {
        Route::new()
            .at("/text", get(make(|_| async { "hello world" })))
            .at(
                "/stream",
                get(make(move |_| {
                    let feeder = feeder.clone();
                    async move {
                        let (mut tx, rx) = tokio::io::duplex(64);
                        tx.write_all(b"first;").await.unwrap();
                        *feeder.lock().unwrap() = Some(tx);
                        Body::from_async_read(rx)
                    }
                })),
            )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_captured_within_the_limit_and_streams_are_not_buffered() {
    let feeder = Feeder::default();
    let h = serve(bodies(feeder.clone()));
    h.get("/text").await;
    wait(|| {
        h.capture
            .expect("GET /text")
            .attr("http.response.body.size", 11_i64)
            .no_attr("http.response.body")
            .one();
    });
    // The first chunk reaches the client while the handler's stream is still open: the body is
    // passed through, not buffered.
    let resp = h
        .open(h.req("GET", "/stream").body(Full::default()).unwrap())
        .await
        .unwrap();
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
    let h = serve(routes);
    h.config(json!({ "ignore_routes": ["/health", "/orders/:id"] }));
    assert_eq!(h.get("/health").await.0, StatusCode::OK);
    assert_eq!(h.get("/orders/7").await.0, StatusCode::OK);
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").one();
    });
    h.capture.expect("GET /health").none();
    h.capture.expect("GET /orders/:id").none();
    assert_eq!(h.capture.events().len(), 1, "{}", h.capture.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_continues_the_callers_trace() {
    let h = serve(routes);
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let caller = SpanContext::from_traceparent(tp).unwrap();
    h.send(
        h.req("GET", "/orders/1")
            .header("traceparent", tp)
            .header("tracestate", "vendor=abc")
            .body(Full::default())
            .unwrap(),
    )
    .await;
    wait(|| {
        let e = h.capture.expect("GET /orders/:id").one();
        assert_eq!(e.trace_id, caller.trace_id);
        assert_eq!(e.parent_span_id, Some(caller.span_id));
        assert!(e.parent_remote);
        assert_eq!(e.trace_state, Some("vendor=abc"));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_started_in_the_handler_are_children_of_the_request() {
    let h = serve(|m| {
        Route::new().at(
            "/work",
            get(make(move |_| {
                let m = m.clone();
                async move {
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
                }
            })),
        )
    });
    assert_eq!(h.get("/work").await.2, "done");
    wait(|| {
        let server = h.capture.expect("GET /work").one();
        h.capture.expect("SELECT orders").child_of(&server).one();
        h.capture.expect("GET payments").child_of(&server).one();
    });
}

fn panicking(_m: Monitor) -> Route {
    Route::new()
        .at(
            "/panic",
            get(make(|_| async {
                if std::hint::black_box(true) {
                    panic!("kaboom");
                }
                "unreachable"
            })),
        )
        .at("/ok", get(make(|_| async { "ok" })))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_recorded_and_the_connection_closes_as_without_rustmon() {
    // poem's server catches a panicking connection task and closes the connection without an
    // answer; rustmon records the panic and lets it continue. poem's router reports the route
    // pattern with the response, which a panic never produces: around the whole `Route` the
    // event is named `GET unmatched` (with the raw path in `url.path`).
    let h = serve(panicking);
    let res = h
        .open(h.req("GET", "/panic").body(Full::default()).unwrap())
        .await;
    assert!(
        res.is_err(),
        "expected the connection to close, got {res:?}"
    );
    wait(|| {
        let e = h
            .capture
            .expect("GET unmatched")
            .attr("url.path", "/panic")
            .status(Status::Error)
            .no_attr("rustmon.cancelled")
            .one();
        assert_eq!(e.errors[0].error_type, "panic");
        assert_eq!(e.errors[0].message, "kaboom");
    });
    // The server still serves.
    assert_eq!(h.get("/ok").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_catch_panic_the_client_gets_a_500_and_the_panic_is_recorded() {
    // On the endpoint, inside the route, the middleware knows the pattern before the handler
    // runs, so a panic is named by it; CatchPanic outside answers 500.
    let h = serve_endpoint(|m| {
        Route::new()
            .at(
                "/panic/:n",
                get(make(|_| async {
                    if std::hint::black_box(true) {
                        panic!("kaboom");
                    }
                    "unreachable"
                }))
                .with(rustmon_poem::Monitor::with_monitor(m)),
            )
            .with(CatchPanic::new())
            .boxed()
    });
    assert_eq!(h.get("/panic/1").await.0, StatusCode::INTERNAL_SERVER_ERROR);
    wait(|| {
        let e = h
            .capture
            .expect("GET /panic/:n")
            .attr("http.route", "/panic/:n")
            .status(Status::Error)
            .no_attr("http.response.status_code")
            .no_attr("rustmon.cancelled")
            .one();
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].error_type, "panic");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_server_stops_is_recorded_as_cancelled() {
    // poem (hyper's HTTP/1 connection) does not notice a client going away while the handler
    // runs, only when it next writes; the handler's future is dropped when the server stops.
    // Around the whole `Route`, a request that never answered has no pattern: `GET unmatched`.
    let (tx, rx) = oneshot::channel::<()>();
    let started = Arc::new(Mutex::new(Some(tx)));
    let mut h = serve(move |_| {
        Route::new().at(
            "/slow",
            get(make(move |_| {
                let started = started.clone();
                async move {
                    if let Some(tx) = started.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    std::future::pending::<()>().await;
                    "never"
                }
            })),
        )
    });
    let mut conn = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    conn.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    rx.await.unwrap();
    drop(conn);
    h.stop().await;
    wait(|| {
        h.capture
            .expect("GET unmatched")
            .attr("url.path", "/slow")
            .attr("rustmon.cancelled", true)
            .no_attr("http.response.status_code")
            .one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_dropped_mid_stream_is_recorded_as_cancelled() {
    let feeder = Feeder::default();
    let mut h = serve(bodies(feeder.clone()));
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
    // Keep the stream open until the server notices the client is gone, or stops.
    let _keep = feeder.lock().unwrap().take();
    h.stop().await;
    wait(|| {
        h.capture
            .expect("GET /stream")
            .attr("rustmon.cancelled", true)
            .attr("http.response.status_code", 200_i64)
            .attr("http.response.body.size", 6_i64)
            .one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_monitor_records_nothing_and_serves_normally() {
    let h = serve(routes);
    h.monitor.disable();
    assert_eq!(h.get("/orders/1").await.2, "order 1");
    h.monitor.enable();
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").one();
    });
    h.capture.expect("GET /orders/:id").none();
}
