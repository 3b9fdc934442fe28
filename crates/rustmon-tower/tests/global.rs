//! The layer without `with_monitor`: events go to the global monitor, installed after the layer
//! was built (this test binary owns the process's global monitor).

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustmon_core::{Kind, Monitor};
use rustmon_test::Capture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_into_the_global_monitor_installed_later() {
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(rustmon_tower::axum::layer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let get = |path: &str| client.get(format!("http://{addr}{path}").parse().unwrap());

    // No global monitor yet: requests pass through.
    get("/orders/1")
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();

    let capture = Capture::new();
    let monitor = Monitor::builder("global-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    monitor.install_global();
    monitor
        .update_config("http_server", &serde_json::json!({ "response_body": true }))
        .unwrap();
    get("/orders/2")
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    tokio::task::block_in_place(|| {
        capture
            .expect("GET /orders/{id}")
            .kind(Kind::Server)
            .attr("url.path", "/orders/2")
            .attr("http.response.body", "order")
            .one();
    });
    assert_eq!(capture.events().len(), 1, "{}", capture.summary());
}
