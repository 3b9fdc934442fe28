//! The actix-web middleware under a real actix-web server on 127.0.0.1, called with a real HTTP
//! client.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use actix_web::http::StatusCode as ActixStatus;
use actix_web::web::{self, Bytes as ActixBytes, ServiceConfig};
use actix_web::{App, HttpResponse, HttpServer};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use rustmon_core::context::{FutureExt, SpanContext};
use rustmon_core::{Kind, Monitor, Status};
use rustmon_test::Capture;
use rustmon_test::http::{TestClient, wait};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

type Routes = Arc<dyn Fn(&mut ServiceConfig, Monitor) + Send + Sync>;

struct Harness {
    monitor: Monitor,
    capture: Capture,
    http: TestClient,
    server: actix_web::dev::ServerHandle,
}

impl std::ops::Deref for Harness {
    type Target = TestClient;
    fn deref(&self) -> &TestClient {
        &self.http
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        drop(self.server.stop(false));
    }
}

/// Serves the routes on 127.0.0.1:0 with the rustmon middleware, on its own actix system thread.
fn serve(routes: Routes) -> Harness {
    let capture = Capture::new();
    let monitor = Monitor::builder("actix-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let m = monitor.clone();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                let routes = routes.clone();
                let m2 = m.clone();
                App::new()
                    .wrap(rustmon_actix::Monitor::with_monitor(m.clone()))
                    .configure(move |cfg| routes(cfg, m2))
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            tx.send(server.handle()).unwrap();
            server.await.unwrap();
        });
    });
    Harness {
        monitor,
        capture,
        http: TestClient::new(addr),
        server: rx.recv().unwrap(),
    }
}

impl Harness {
    fn config(&self, patch: serde_json::Value) {
        self.monitor.update_config("http_server", &patch).unwrap();
    }
}

fn routes() -> Routes {
    Arc::new(|cfg: &mut ServiceConfig, _m: Monitor| {
        cfg.route(
            "/orders/{id}",
            web::get().to(|id: web::Path<u32>| async move { format!("order {id}") }),
        )
        .route(
            "/missing",
            web::get().to(|| async { HttpResponse::NotFound().finish() }),
        )
        .route(
            "/boom",
            web::get().to(|| async { HttpResponse::InternalServerError().body("broken") }),
        )
        .route(
            "/error",
            web::get().to(|| async {
                Err::<String, _>(actix_web::error::ErrorServiceUnavailable("db down"))
            }),
        )
        .route(
            "/orders",
            web::post().to(|body: ActixBytes| async move { body.len().to_string() }),
        )
        .route("/health", web::get().to(|| async { "ok" }));
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_use_route_patterns_and_record_http_attributes() {
    let h = serve(routes());
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
            .no_attr("rustmon.cancelled")
            .one();
        assert_eq!(e.plugin, "http_server");
        h.capture
            .expect("GET unmatched")
            .no_attr("http.route")
            .attr("url.path", "/no/such/path/123")
            .attr("http.response.status_code", 404_i64)
            .one();
        h.capture
            .expect("POST /orders")
            .attr("http.request.body.size", 10_i64)
            .attr("user_agent.original", "rustmon-test/1")
            .attr("http.response.body.size", 2_i64)
            .one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_classes_and_actix_errors_drive_the_event_status() {
    let h = serve(routes());
    h.get("/missing").await;
    h.get("/boom").await;
    assert_eq!(h.get("/error").await.0, StatusCode::SERVICE_UNAVAILABLE);
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
        let e = h
            .capture
            .expect("GET /error")
            .attr("http.response.status_code", 503_i64)
            .status(Status::Error)
            .one();
        assert_eq!(e.errors[0].message, "db down");
    });
    h.config(json!({ "client_errors_are_errors": true }));
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").status(Status::Error).one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_captured_with_redaction_after_a_live_config_change() {
    let h = serve(Arc::new(|cfg: &mut ServiceConfig, _| {
        cfg.route(
            "/h",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .insert_header(("set-cookie", "session=abc"))
                    .insert_header(("x-request-id", "r-1"))
                    .body("ok")
            }),
        );
    }));
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

struct ChannelStream(mpsc::Receiver<ActixBytes>);

impl futures_core::Stream for ChannelStream {
    type Item = Result<ActixBytes, actix_web::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|o| o.map(Ok))
    }
}

type Feeder = Arc<Mutex<Option<mpsc::Sender<ActixBytes>>>>;

fn bodies(feeder: Feeder) -> Routes {
    Arc::new(move |cfg: &mut ServiceConfig, _| {
        let feeder = feeder.clone();
        cfg.route("/text", web::get().to(|| async { "hello world" }))
            .route(
                "/stream",
                web::get().to(move || {
                    let feeder = feeder.clone();
                    async move {
                        let (tx, rx) = mpsc::channel(1);
                        tx.send(ActixBytes::from_static(b"first;")).await.unwrap();
                        *feeder.lock().unwrap() = Some(tx);
                        HttpResponse::Ok().streaming(ChannelStream(rx))
                    }
                }),
            );
    })
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
    let resp = h
        .open(h.req("GET", "/stream").body(Full::default()).unwrap())
        .await
        .unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first;");
    let tx = feeder.lock().unwrap().take().unwrap();
    tx.send(ActixBytes::from_static(b"second")).await.unwrap();
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
    let h = serve(routes());
    h.config(json!({ "ignore_routes": ["/health", "/orders/{id}"] }));
    assert_eq!(h.get("/health").await.0, StatusCode::OK);
    assert_eq!(h.get("/orders/7").await.0, StatusCode::OK);
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").one();
    });
    assert_eq!(h.capture.events().len(), 1, "{}", h.capture.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_continues_the_callers_trace() {
    let h = serve(routes());
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let caller = SpanContext::from_traceparent(tp).unwrap();
    h.send(
        h.req("GET", "/orders/1")
            .header("traceparent", tp)
            .body(Full::default())
            .unwrap(),
    )
    .await;
    wait(|| {
        let e = h.capture.expect("GET /orders/{id}").one();
        assert_eq!(e.trace_id, caller.trace_id);
        assert_eq!(e.parent_span_id, Some(caller.span_id));
        assert!(e.parent_remote);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_started_in_the_handler_are_children_of_the_request() {
    let h = serve(Arc::new(|cfg: &mut ServiceConfig, m: Monitor| {
        cfg.route(
            "/work",
            web::get().to(move || {
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
            }),
        );
    }));
    h.get("/work").await;
    wait(|| {
        let server = h.capture.expect("GET /work").one();
        h.capture.expect("SELECT orders").child_of(&server).one();
        h.capture.expect("GET payments").child_of(&server).one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_recorded_and_behaves_as_without_rustmon() {
    // actix-web does not catch handler panics: the worker thread dies, the connection closes
    // without an answer, and actix-server starts a new worker. rustmon records the panic and lets
    // it continue.
    let h = serve(Arc::new(|cfg: &mut ServiceConfig, _| {
        cfg.route(
            "/panic",
            web::get().to(|| async {
                if std::hint::black_box(true) {
                    panic!("kaboom");
                }
                "unreachable"
            }),
        )
        .route("/ok", web::get().to(|| async { "ok" }));
    }));
    let res = h
        .open(h.req("GET", "/panic").body(Full::default()).unwrap())
        .await;
    assert!(
        res.is_err(),
        "expected the connection to close, got {res:?}"
    );
    wait(|| {
        let e = h.capture.expect("GET /panic").status(Status::Error).one();
        assert_eq!(e.errors[0].error_type, "panic");
        assert_eq!(e.errors[0].message, "kaboom");
    });
    // A new worker serves the next requests.
    let mut ok = false;
    for _ in 0..50 {
        let r = h
            .open(h.req("GET", "/ok").body(Full::default()).unwrap())
            .await;
        if r.is_ok_and(|r| r.status() == ActixStatus::OK.as_u16()) {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "the server never answered again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_server_stops_is_recorded_as_cancelled() {
    // actix-web does not notice a client going away while its handler runs (only when it next
    // writes), so the handler's future is dropped when the server stops.
    let (tx, rx) = oneshot::channel::<()>();
    let started = Arc::new(Mutex::new(Some(tx)));
    let h = serve(Arc::new(move |cfg: &mut ServiceConfig, _| {
        let started = started.clone();
        cfg.route(
            "/slow",
            web::get().to(move || {
                let started = started.clone();
                async move {
                    if let Some(tx) = started.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                    std::future::pending::<()>().await;
                    "never"
                }
            }),
        );
    }));
    let mut conn = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    conn.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    rx.await.unwrap();
    drop(conn);
    h.server.stop(false).await;
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
    let h = serve(bodies(feeder.clone()));
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
    // actix notices the client is gone when a write fails; it then drops the body.
    let tx = feeder.lock().unwrap().take().unwrap();
    for _ in 0..500 {
        if tx.send(ActixBytes::from_static(b"more")).await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    wait(|| {
        h.capture
            .expect("GET /stream")
            .attr("rustmon.cancelled", true)
            .attr("http.response.status_code", 200_i64)
            .has_attr("http.response.body.size")
            .one();
    });
}
