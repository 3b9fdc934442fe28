//! The layer around a plain tower service served by hyper (no framework), with a route closure.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustmon_core::{Kind, Monitor, Status};
use rustmon_test::Capture;
use rustmon_tower::{Layer, MonitorLayer};
use tower::ServiceExt;

#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused by the service")
    }
}

impl std::error::Error for Refused {}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Refused> {
    match req.uri().path() {
        "/refuse" => Err(Refused),
        p if p.starts_with("/users/") => Ok(Response::new(Full::from("user"))),
        _ => Ok(Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::default())
            .unwrap()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyper_service_with_a_route_closure() {
    let capture = Capture::new();
    let monitor = Monitor::builder("tower-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    monitor
        .update_config(
            "http_server",
            &serde_json::json!({ "request_remote_addr": true }),
        )
        .unwrap();
    let layer = MonitorLayer::new()
        .with_monitor(monitor.clone())
        .route_fn(|req| {
            req.uri
                .path()
                .starts_with("/users/")
                .then_some("/users/{name}")
        });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, peer) = listener.accept().await.unwrap();
            let svc = layer.layer(tower::service_fn(handle));
            tokio::spawn(async move {
                let hyper_svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    // The peer address, where the default `MatchRoute::client_addr` looks.
                    req.extensions_mut().insert::<SocketAddr>(peer);
                    svc.clone().oneshot(req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_svc)
                    .await;
            });
        }
    });

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for path in ["/users/ada", "/other", "/refuse"] {
        let resp = client
            .get(format!("http://{addr}{path}").parse().unwrap())
            .await;
        if let Ok(resp) = resp {
            resp.into_body().collect().await.unwrap();
        }
    }

    tokio::task::block_in_place(|| {
        capture
            .expect("GET /users/{name}")
            .kind(Kind::Server)
            .attr("http.route", "/users/{name}")
            .attr("url.path", "/users/ada")
            .attr("http.response.status_code", 200_i64)
            .attr("client.address", "127.0.0.1")
            .one();
        // Both unrouted requests share one name.
        capture.expect("GET unmatched").count(2);
        let refused = capture
            .expect("GET unmatched")
            .status(Status::Error)
            .attr("url.path", "/refuse")
            .one();
        assert_eq!(refused.errors[0].error_type, "service");
        assert_eq!(refused.errors[0].message, "refused by the service");
    });
}
