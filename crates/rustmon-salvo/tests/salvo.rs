//! The salvo hoop under a real salvo server on 127.0.0.1, called with a real HTTP client.

use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode as HttpStatus;
use rustmon_core::context::{FutureExt, SpanContext};
use rustmon_core::{Kind, Monitor, Status};
use rustmon_test::Capture;
use rustmon_test::http::{TestClient, wait};
use salvo_core::conn::{Acceptor, Listener, TcpListener};
use salvo_core::http::body::BodySender;
use salvo_core::http::{HeaderValue, ResBody, StatusCode, StatusError};
use salvo_core::server::ServerHandle;
use salvo_core::{Depot, FlowCtrl, Handler, Request, Response, Router, Server, Service};
use salvo_core::{async_trait, handler};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// What a test handler answers.
#[derive(Default)]
struct Reply {
    status: Option<StatusCode>,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<ResBody>,
}

fn text(s: impl Into<String>) -> Reply {
    Reply {
        body: Some(ResBody::Once(Bytes::from(s.into()))),
        ..Reply::default()
    }
}

fn status(code: StatusCode) -> Reply {
    Reply {
        status: Some(code),
        ..Reply::default()
    }
}

/// A handler from a closure of the request, returning a future of the reply.
struct Make<F>(F);

#[async_trait]
impl<F, Fut> Handler for Make<F>
where
    F: Fn(&Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    async fn handle(
        &self,
        req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let reply = (self.0)(req).await;
        if let Some(code) = reply.status {
            res.status_code(code);
        }
        for (name, value) in reply.headers {
            res.headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        if let Some(body) = reply.body {
            res.body = body;
        }
    }
}

struct Harness {
    monitor: Monitor,
    capture: Capture,
    http: TestClient,
    handle: ServerHandle,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl std::ops::Deref for Harness {
    type Target = TestClient;
    fn deref(&self) -> &TestClient {
        &self.http
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.handle.stop_forceful();
    }
}

/// Serves `router(monitor)` on 127.0.0.1:0, the rustmon hoop on the service.
async fn serve(router: impl FnOnce(Monitor) -> Router) -> Harness {
    let capture = Capture::new();
    let monitor = Monitor::builder("salvo-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    let acceptor = TcpListener::new("127.0.0.1:0").bind().await;
    let addr = acceptor.holdings()[0]
        .local_addr
        .clone()
        .into_std()
        .unwrap();
    let service = Service::new(router(monitor.clone()))
        .hoop(rustmon_salvo::Monitor::with_monitor(monitor.clone()));
    let server = Server::new(acceptor);
    let handle = server.handle();
    let server = tokio::spawn(server.serve(service));
    Harness {
        monitor,
        capture,
        http: TestClient::new(addr),
        handle,
        server: Some(server),
    }
}

impl Harness {
    fn config(&self, patch: serde_json::Value) {
        self.monitor.update_config("http_server", &patch).unwrap();
    }

    /// Stops the server, dropping the requests in flight, and waits until it has.
    async fn stop(&mut self) {
        self.handle.stop_forceful();
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}

#[handler]
async fn count(req: &mut Request) -> String {
    req.payload().await.map_or(0, |b| b.len()).to_string()
}

fn routes(_m: Monitor) -> Router {
    Router::new()
        .push(Router::with_path("orders/{id}").get(Make(|req: &Request| {
            let id = req.param::<String>("id").unwrap_or_default();
            async move { text(format!("order {id}")) }
        })))
        .push(Router::with_path("orders").post(count))
        .push(
            Router::with_path("missing")
                .get(Make(|_: &Request| async { status(StatusCode::NOT_FOUND) })),
        )
        .push(Router::with_path("boom").get(Make(|_: &Request| async {
            Reply {
                status: Some(StatusCode::INTERNAL_SERVER_ERROR),
                ..text("broken")
            }
        })))
        .push(Router::with_path("error").get(Make(|_: &Request| async {
            // What `res.render(StatusError::service_unavailable().brief("db down"))` does.
            Reply {
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
                body: Some(ResBody::Error(
                    StatusError::service_unavailable().brief("db down"),
                )),
                ..Reply::default()
            }
        })))
        .push(Router::with_path("health").get(Make(|_: &Request| async { text("ok") })))
        .push(
            Router::with_path("api").push(
                Router::with_path("items/{id}").get(Make(|_: &Request| async { text("item") })),
            ),
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_use_route_templates_and_record_http_attributes() {
    let h = serve(routes).await;
    let (status, _, body) = h.get("/orders/42").await;
    assert_eq!((status, &body[..]), (HttpStatus::OK, &b"order 42"[..]));
    let (status, _, body) = h.get("/no/such/path/123").await;
    assert_eq!(status, HttpStatus::NOT_FOUND);
    let not_found_len = body.len() as i64;
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
        // The 404 page salvo's catcher writes after the hoops is what is counted.
        h.capture
            .expect("GET unmatched")
            .no_attr("http.route")
            .attr("url.path", "/no/such/path/123")
            .attr("http.response.status_code", 404_i64)
            .attr("http.response.body.size", not_found_len)
            .status(Status::Unset)
            .one();
        h.capture
            .expect("POST /orders")
            .attr("http.request.body.size", 10_i64)
            .attr("user_agent.original", "rustmon-test/1")
            .attr("http.response.body.size", 2_i64)
            .one();
        h.capture
            .expect("GET /api/items/{id}")
            .attr("http.route", "/api/items/{id}")
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
async fn the_root_route_is_not_mistaken_for_an_unmatched_request() {
    let h = serve(|_| Router::new().get(Make(|_: &Request| async { text("root") }))).await;
    assert_eq!(h.get("/").await.2, "root");
    wait(|| {
        h.capture
            .expect("GET /")
            .attr("http.route", "/")
            .attr("http.response.status_code", 200_i64)
            .one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_classes_and_salvo_errors_drive_the_event_status() {
    let h = serve(routes).await;
    h.get("/missing").await;
    let (status, _, body) = h.get("/boom").await;
    assert_eq!(
        (status, &body[..]),
        (HttpStatus::INTERNAL_SERVER_ERROR, &b"broken"[..])
    );
    let (status, _, body) = h.get("/error").await;
    assert_eq!(status, HttpStatus::SERVICE_UNAVAILABLE);
    let error_len = body.len() as i64;
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
            .attr("http.response.body.size", error_len)
            .status(Status::Error)
            .no_attr("rustmon.cancelled")
            .one();
        assert_eq!(e.errors[0].error_type, "salvo::StatusError");
        assert!(
            e.errors[0].message.contains("db down"),
            "{}",
            e.errors[0].message
        );
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
        Router::with_path("h").get(Make(|_: &Request| async {
            Reply {
                headers: vec![("set-cookie", "session=abc"), ("x-request-id", "r-1")],
                ..text("ok")
            }
        }))
    })
    .await;
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

type Feeders = mpsc::UnboundedSender<BodySender>;

/// `/text` answers "hello world"; `/stream` sends "first;", then hands its body sender to the
/// test (through `feeders`), which sends the rest and ends the body by dropping it.
fn bodies(feeders: Feeders) -> impl FnOnce(Monitor) -> Router {
    move |_| {
        Router::new()
            .push(Router::with_path("text").get(Make(|_: &Request| async { text("hello world") })))
            .push(Router::with_path("stream").get(Make(move |_: &Request| {
                let feeders = feeders.clone();
                async move {
                    let (mut tx, body) = ResBody::channel();
                    // The channel hands a chunk over when the body is polled, after the handler.
                    tokio::spawn(async move {
                        tx.send_data("first;").await.unwrap();
                        let _ = feeders.send(tx);
                    });
                    Reply {
                        body: Some(body),
                        ..Reply::default()
                    }
                }
            })))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_captured_within_the_limit_and_streams_are_not_buffered() {
    let (feeders, mut fed) = mpsc::unbounded_channel();
    let h = serve(bodies(feeders)).await;
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
    let mut tx = fed.recv().await.unwrap();
    tx.send_data("second").await.unwrap();
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
    assert_eq!(h.get("/health").await.0, HttpStatus::OK);
    assert_eq!(h.get("/orders/7").await.0, HttpStatus::OK);
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").one();
    });
    h.capture.expect("GET /health").none();
    h.capture.expect("GET /orders/{id}").none();
    assert_eq!(h.capture.events().len(), 1, "{}", h.capture.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_continues_the_callers_trace() {
    let h = serve(routes).await;
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
        let e = h.capture.expect("GET /orders/{id}").one();
        assert_eq!(e.trace_id, caller.trace_id);
        assert_eq!(e.parent_span_id, Some(caller.span_id));
        assert!(e.parent_remote);
        assert_eq!(e.trace_state, Some("vendor=abc"));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_started_in_the_handler_are_children_of_the_request() {
    let h = serve(|m| {
        Router::with_path("work").get(Make(move |_: &Request| {
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
                text("done")
            }
        }))
    })
    .await;
    assert_eq!(h.get("/work").await.2, "done");
    wait(|| {
        let server = h.capture.expect("GET /work").one();
        h.capture.expect("SELECT orders").child_of(&server).one();
        h.capture.expect("GET payments").child_of(&server).one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_recorded_and_the_connection_closes_as_without_rustmon() {
    // salvo does not catch handler panics: the connection's task panics and the connection is
    // closed without an answer. rustmon records the panic and lets it continue.
    let h = serve(|_| {
        Router::new()
            .push(Router::with_path("panic").get(Make(|_: &Request| async {
                if std::hint::black_box(true) {
                    panic!("kaboom");
                }
                text("unreachable")
            })))
            .push(Router::with_path("ok").get(Make(|_: &Request| async { text("ok") })))
    })
    .await;
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
            .expect("GET /panic")
            .attr("http.route", "/panic")
            .status(Status::Error)
            .no_attr("http.response.status_code")
            .no_attr("rustmon.cancelled")
            .one();
        assert_eq!(e.errors[0].error_type, "panic");
        assert_eq!(e.errors[0].message, "kaboom");
    });
    // The server still serves.
    assert_eq!(h.get("/ok").await.0, HttpStatus::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_server_stops_is_recorded_as_cancelled() {
    // hyper's HTTP/1 connection does not notice a client going away while the handler runs;
    // the handler's future is dropped when the server stops.
    let (tx, rx) = oneshot::channel::<()>();
    let started = Arc::new(Mutex::new(Some(tx)));
    let mut h = serve(move |_| {
        Router::with_path("slow").get(Make(move |_: &Request| {
            let started = started.clone();
            async move {
                if let Some(tx) = started.lock().unwrap().take() {
                    let _ = tx.send(());
                }
                std::future::pending::<()>().await;
                text("never")
            }
        }))
    })
    .await;
    let mut conn = tokio::net::TcpStream::connect(h.addr()).await.unwrap();
    conn.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    rx.await.unwrap();
    drop(conn);
    h.stop().await;
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
    let (feeders, mut fed) = mpsc::unbounded_channel();
    let mut h = serve(bodies(feeders)).await;
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
    let _keep = fed.recv().await.unwrap();
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
