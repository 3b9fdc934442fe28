//! The tower layer around hyper-util's legacy client against a real server on 127.0.0.1
//! (monitored by rustmon-tower, which continues the trace).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{OK_BODY, check_timings, closed_port, monitor, server};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustmon_core::context::FutureExt;
use rustmon_core::{Kind, Status};
use rustmon_http_client::{HttpClientLayer, UrlTemplate, timed_http_connector};
use tower::{Service, ServiceExt};
use tower_layer::Layer;

fn get(url: String) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

fn wait<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_client_success_errors_and_timings() {
    let (monitor, capture) = monitor();
    let addr = server(monitor.clone()).await;
    let port = addr.port();
    let hyper_client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(timed_http_connector());
    let mut client = HttpClientLayer::new()
        .monitor(monitor.clone())
        .layer(hyper_client.clone());

    let parent = monitor.start_event(Kind::Server, "job");
    let ctx = parent.context();
    let body = async {
        let resp = client
            .ready()
            .await
            .unwrap()
            .call(get(format!("http://localhost:{port}/ok?q=1")))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap().to_bytes()
    }
    .with_context(ctx)
    .await;
    assert_eq!(body, OK_BODY);
    parent.finish();

    for path in ["/missing", "/boom"] {
        let resp = client
            .call(get(format!("http://{addr}{path}")))
            .await
            .unwrap();
        resp.into_body().collect().await.unwrap();
    }
    let mut req = Request::post(format!("http://{addr}/echo"))
        .body(Full::from("hello"))
        .unwrap();
    req.extensions_mut().insert(UrlTemplate::new("/echo"));
    let resp = client.call(req).await.unwrap();
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "5");

    let refused = client
        .call(get(format!("http://127.0.0.1:{}/", closed_port())))
        .await;
    assert!(refused.is_err());
    let dns = client
        .call(get("http://no-such-host.invalid/".into()))
        .await;
    assert!(dns.is_err());

    // A timeout inside the monitored layer: its error is recorded.
    let mut timed = tower::ServiceBuilder::new()
        .layer(HttpClientLayer::new().monitor(monitor.clone()))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
            300,
        )))
        .service(hyper_client.clone());
    let slow = timed
        .ready()
        .await
        .unwrap()
        .call(get(format!("http://{addr}/slow")))
        .await;
    assert!(slow.is_err());

    wait(|| {
        let parent = capture.expect("job").one();
        let ok = capture
            .expect("GET localhost")
            .kind(Kind::Client)
            .child_of(&parent)
            .attr("http.response.status_code", 200_i64)
            .attr("url.full", format!("http://localhost:{port}/ok?q=REDACTED"))
            .attr("server.address", "localhost")
            .attr("server.port", i64::from(port))
            .attr("http.response.body.size", OK_BODY.len() as i64)
            .one();
        check_timings(&ok, true, true);
        let server_ok = capture
            .expect("GET /ok")
            .kind(Kind::Server)
            .child_of(&ok)
            .one();
        assert!(server_ok.parent_remote);

        let missing = capture
            .expect("GET 127.0.0.1")
            .attr("http.response.status_code", 404_i64)
            .attr("error.type", "404")
            .status(Status::Error)
            .one();
        capture.expect("GET /missing").child_of(&missing).one();
        capture
            .expect("GET 127.0.0.1")
            .attr("http.response.status_code", 500_i64)
            .attr("error.type", "500")
            .status(Status::Error)
            .one();
        let echo = capture
            .expect("POST /echo")
            .attr("url.template", "/echo")
            .attr("http.request.body.size", 5_i64)
            .attr("http.response.body.size", 1_i64)
            .one();
        capture
            .expect("POST /echo")
            .kind(Kind::Server)
            .child_of(&echo)
            .one();
        capture
            .expect("GET 127.0.0.1")
            .attr("error.type", "connection_refused")
            .status(Status::Error)
            .one();
        let dns = capture
            .expect("GET no-such-host.invalid")
            .attr("error.type", "dns")
            .status(Status::Error)
            .one();
        assert!(dns.attribute("rustmon.http.dns.duration").is_some());
        capture
            .expect("GET 127.0.0.1")
            .attr("error.type", "timeout")
            .attr("url.full", format!("http://{addr}/slow"))
            .status(Status::Error)
            .one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_record_no_connect_time_and_dropped_bodies_end_the_event() {
    let (monitor, capture) = monitor();
    let addr = server(monitor.clone()).await;
    let hyper_client: Client<_, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build(timed_http_connector());
    let client = HttpClientLayer::new()
        .monitor(monitor.clone())
        .layer(hyper_client);
    for _ in 0..2 {
        let resp = client
            .clone()
            .oneshot(get(format!("http://{addr}/ok")))
            .await
            .unwrap();
        resp.into_body().collect().await.unwrap();
        // hyper hands the connection back to its pool from the connection task, after the body
        // ends: give it that moment, or the next request races it and dials a second connection.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resp = client
        .clone()
        .oneshot(get(format!("http://{addr}/ok")))
        .await
        .unwrap();
    drop(resp);
    wait(|| {
        let events = capture.expect("GET 127.0.0.1").count(3);
        assert!(
            events[0]
                .attribute("rustmon.http.connect.duration")
                .is_some()
        );
        assert!(
            events[1]
                .attribute("rustmon.http.connect.duration")
                .is_none()
        );
        assert!(events[2].attribute("rustmon.http.body.unread").is_some());
    });
}
