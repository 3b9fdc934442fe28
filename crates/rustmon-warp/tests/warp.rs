//! The layer around a real warp service, served by hyper on 127.0.0.1, called with a real client.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustmon_core::context::{FutureExt, SpanContext};
use rustmon_core::{Kind, Monitor, Status};
use rustmon_test::Capture;
use rustmon_tower::Layer;
use tower::ServiceExt;
use warp::Filter;
use warp::http::StatusCode;

struct Harness {
    addr: SocketAddr,
    monitor: Monitor,
    capture: Capture,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn routes(
    m: Monitor,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    let orders = warp::path!("orders" / u32)
        .and(warp::get())
        .and(rustmon_warp::route("/orders/{id}"))
        .map(|id: u32| format!("order {id}"));
    let boom = warp::path("boom")
        .and(rustmon_warp::route("/boom"))
        .map(|| warp::reply::with_status("broken", StatusCode::INTERNAL_SERVER_ERROR));
    let health = warp::path("health")
        .and(rustmon_warp::route("/health"))
        .map(|| "ok");
    let work = warp::path("work")
        .and(rustmon_warp::route("/work"))
        .then(move || {
            let m = m.clone();
            async move {
                tokio::task::yield_now().await;
                m.start_event(Kind::Database, "SELECT orders").finish();
                let m2 = m.clone();
                tokio::spawn(
                    async move { m2.start_event(Kind::Client, "GET payments").finish() }
                        .in_current_context(),
                )
                .await
                .unwrap();
                "done"
            }
        });
    let panics = warp::path("panic")
        .and(rustmon_warp::route("/panic"))
        .map(|| -> &'static str {
            if std::hint::black_box(true) {
                panic!("kaboom");
            }
            "unreachable"
        });
    orders.or(boom).or(health).or(work).or(panics)
}

async fn serve() -> Harness {
    let capture = Capture::new();
    let monitor = Monitor::builder("warp-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    let svc = rustmon_warp::layer()
        .with_monitor(monitor.clone())
        .layer(warp::service(routes(monitor.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let svc = svc.clone();
            tokio::spawn(async move {
                let hyper_svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    svc.clone().oneshot(req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_svc)
                    .await;
            });
        }
    });
    Harness {
        addr,
        monitor,
        capture,
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

impl Harness {
    async fn get(&self, path: &str, traceparent: Option<&str>) -> Result<(StatusCode, Bytes), ()> {
        let mut req = hyper::Request::get(format!("http://{}{path}", self.addr));
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        let resp = self
            .client
            .request(req.body(Full::default()).unwrap())
            .await
            .map_err(|_| ())?;
        let status = resp.status();
        Ok((status, resp.into_body().collect().await.unwrap().to_bytes()))
    }
}

fn wait<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_statuses_and_ignored_routes_come_from_the_route_filter() {
    let h = serve().await;
    assert_eq!(h.get("/orders/42", None).await.unwrap().1, "order 42");
    assert_eq!(h.get("/nope", None).await.unwrap().0, StatusCode::NOT_FOUND);
    assert_eq!(
        h.get("/boom", None).await.unwrap().0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    h.monitor
        .update_config(
            "http_server",
            &serde_json::json!({ "ignore_routes": ["/health"] }),
        )
        .unwrap();
    assert_eq!(h.get("/health", None).await.unwrap().1, "ok");
    h.get("/boom", None).await.unwrap();
    wait(|| {
        h.capture
            .expect("GET /orders/{id}")
            .kind(Kind::Server)
            .attr("http.route", "/orders/{id}")
            .attr("url.path", "/orders/42")
            .attr("http.response.status_code", 200_i64)
            .attr("http.response.body.size", 8_i64)
            .one();
        h.capture
            .expect("GET unmatched")
            .no_attr("http.route")
            .attr("url.path", "/nope")
            .attr("http.response.status_code", 404_i64)
            .one();
        h.capture
            .expect("GET /boom")
            .status(Status::Error)
            .attr("http.response.status_code", 500_i64)
            .count(2);
    });
    h.capture.expect("GET /health").none();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_and_children() {
    let h = serve().await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    h.get("/work", Some(tp)).await.unwrap();
    wait(|| {
        let server = h.capture.expect("GET /work").one();
        let caller = SpanContext::from_traceparent(tp).unwrap();
        assert_eq!(server.trace_id, caller.trace_id);
        assert_eq!(server.parent_span_id, Some(caller.span_id));
        h.capture.expect("SELECT orders").child_of(&server).one();
        h.capture.expect("GET payments").child_of(&server).one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_recorded_and_the_connection_closes_as_before() {
    // warp does not catch panics; served by hyper in a spawned task, the connection closes
    // without an answer, with or without rustmon.
    let h = serve().await;
    assert!(h.get("/panic", None).await.is_err());
    wait(|| {
        let e = h.capture.expect("GET /panic").status(Status::Error).one();
        assert_eq!(e.errors[0].error_type, "panic");
        assert_eq!(e.errors[0].message, "kaboom");
    });
    assert_eq!(h.get("/orders/1", None).await.unwrap().0, StatusCode::OK);
}
