//! The reqwest-middleware middleware against a real server on 127.0.0.1 (monitored by
//! rustmon-tower, which continues the trace).

mod common;

use std::time::Duration;

use common::{OK_BODY, check_timings, closed_port, monitor, server};
use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use rustmon_core::context::FutureExt;
use rustmon_core::{Kind, Monitor, SpanContext, Status};
use rustmon_http_client::{ReqwestMiddleware, UrlTemplate, instrument_reqwest};

fn client(monitor: &Monitor) -> ClientWithMiddleware {
    let inner = instrument_reqwest(reqwest::Client::builder())
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    ClientBuilder::new(inner)
        .with(ReqwestMiddleware::new().monitor(monitor.clone()))
        .build()
}

fn wait<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_continues_the_trace_with_timings() {
    let (monitor, capture) = monitor();
    let addr = server(monitor.clone()).await;
    let client = client(&monitor);
    // The caller's trace carries a tracestate, which travels on with the trace.
    let caller = SpanContext::from_headers(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        Some("congo=t61rcWkgMzE"),
    );
    let parent = monitor.start_event_with_parent(Kind::Server, "GET /checkout", caller);
    let ctx = parent.context();
    let port = addr.port();
    let body = async {
        let resp = client
            .get(format!("http://localhost:{port}/ok?token=secret&page=2"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.url().path(), "/ok");
        resp.text().await.unwrap()
    }
    .with_context(ctx)
    .await;
    assert_eq!(body, OK_BODY);
    parent.finish();

    wait(|| {
        let parent = capture.expect("GET /checkout").one();
        let client_event = capture
            .expect("GET localhost")
            .kind(Kind::Client)
            .child_of(&parent)
            .attr("http.request.method", "GET")
            .attr("http.response.status_code", 200_i64)
            .attr(
                "url.full",
                format!("http://localhost:{port}/ok?token=REDACTED&page=REDACTED"),
            )
            .attr("server.address", "localhost")
            .attr("server.port", i64::from(port))
            .attr("http.response.body.size", OK_BODY.len() as i64)
            .attr("network.peer.address", "127.0.0.1")
            .one();
        assert_ne!(client_event.status, Status::Error);
        check_timings(&client_event, true, true);
        // The server continued the trace from the injected traceparent.
        let server_event = capture
            .expect("GET /ok")
            .kind(Kind::Server)
            .child_of(&client_event)
            .one();
        assert!(server_event.parent_remote);
        assert_eq!(server_event.trace_state, Some("congo=t61rcWkgMzE"));
        assert_eq!(client_event.plugin, "http_client");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_and_server_errors() {
    let (monitor, capture) = monitor();
    let addr = server(monitor.clone()).await;
    let client = client(&monitor);
    for path in ["/missing", "/boom"] {
        let resp = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        resp.bytes().await.unwrap();
    }
    wait(|| {
        let missing = capture
            .expect("GET 127.0.0.1")
            .attr("http.response.status_code", 404_i64)
            .attr("error.type", "404")
            .status(Status::Error)
            .one();
        let boom = capture
            .expect("GET 127.0.0.1")
            .attr("http.response.status_code", 500_i64)
            .attr("error.type", "500")
            .status(Status::Error)
            .one();
        capture.expect("GET /missing").child_of(&missing).one();
        capture.expect("GET /boom").child_of(&boom).one();
        // An IP address needs no name resolution: connect timing only.
        check_timings(&missing, true, false);
        assert!(missing.attribute("rustmon.http.dns.duration").is_none());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_dns_failure_and_timeout() {
    let (monitor, capture) = monitor();
    let addr = server(monitor.clone()).await;
    let client = client(&monitor);
    let refused = client
        .get(format!("http://127.0.0.1:{}/", closed_port()))
        .send()
        .await;
    assert!(refused.is_err());
    let dns = client.get("http://no-such-host.invalid/x").send().await;
    assert!(dns.is_err());
    let slow = client.get(format!("http://{addr}/slow")).send().await;
    assert!(slow.unwrap_err().is_timeout());

    wait(|| {
        let e = capture
            .expect("GET 127.0.0.1")
            .attr("error.type", "connection_refused")
            .status(Status::Error)
            .no_attr("http.response.status_code")
            .one();
        assert_eq!(e.errors[0].error_type, "connection_refused");
        let e = capture
            .expect("GET no-such-host.invalid")
            .attr("error.type", "dns")
            .status(Status::Error)
            .one();
        assert!(e.attribute("rustmon.http.dns.duration").is_some());
        capture
            .expect("GET 127.0.0.1")
            .attr("error.type", "timeout")
            .status(Status::Error)
            .attr("url.full", format!("http://{addr}/slow"))
            .one();
    });
}

/// Retries once on a 5xx, handing the same extensions to both attempts.
struct RetryOnce;

#[async_trait::async_trait]
impl Middleware for RetryOnce {
    async fn handle(
        &self,
        req: reqwest::Request,
        ext: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let again = req.try_clone();
        let resp = next.clone().run(req, ext).await?;
        match again {
            Some(req) if resp.status().is_server_error() => next.run(req, ext).await,
            _ => Ok(resp),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_redirects_templates_headers_and_sizes() {
    let (monitor, capture) = monitor();
    monitor
        .update_config(
            "http_client",
            &serde_json::json!({ "request_headers": true, "header_deny": ["traceparent"] }),
        )
        .unwrap();
    let addr = server(monitor.clone()).await;
    let inner = reqwest::Client::new();
    let client = ClientBuilder::new(inner)
        .with(RetryOnce)
        .with(ReqwestMiddleware::new().monitor(monitor.clone()))
        .build();
    client
        .get(format!("http://{addr}/boom"))
        .send()
        .await
        .unwrap();
    let resp = client
        .get(format!("http://{addr}/redirect"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.url().path(), "/ok");
    assert_eq!(resp.text().await.unwrap(), OK_BODY);
    let echoed = client
        .post(format!("http://{addr}/echo"))
        .with_extension(UrlTemplate::new("/echo"))
        .header("authorization", "Bearer hunter2")
        .header("x-request-source", "test")
        .body("abc")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(echoed, "3");
    // The callee sees the client event's context, not the caller's.
    let seen = client
        .get(format!("http://{addr}/traceparent"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    wait(|| {
        let attempts = capture
            .expect("GET 127.0.0.1")
            .attr("http.response.status_code", 500_i64)
            .count(2);
        assert!(attempts[0].attribute("http.request.resend_count").is_none());
        assert_eq!(
            attempts[1]
                .attribute("http.request.resend_count")
                .and_then(|v| v.as_i64()),
            Some(1)
        );
        let redirected = capture
            .expect("GET 127.0.0.1")
            .attr("rustmon.http.redirected", true)
            .attr("rustmon.http.final_url", format!("http://{addr}/ok"))
            .attr("url.full", format!("http://{addr}/redirect"))
            .attr("http.response.status_code", 200_i64)
            .one();
        // Both hops reached the server, each continuing the client event's trace.
        capture.expect("GET /redirect").child_of(&redirected).one();
        capture.expect("GET /ok").child_of(&redirected).one();
        capture
            .expect("POST /echo")
            .kind(Kind::Client)
            .attr("url.template", "/echo")
            .attr("http.request.body.size", 3_i64)
            .attr("http.response.body.size", 1_i64)
            .attr("http.request.header.authorization", "[REDACTED]")
            .attr("http.request.header.x-request-source", "test")
            .no_attr("http.request.header.traceparent")
            .one();
        let tp = capture
            .expect("GET 127.0.0.1")
            .attr("url.full", format!("http://{addr}/traceparent"))
            .one();
        assert_eq!(seen, tp.context().traceparent());
        // Without instrument_reqwest there are no connection timings.
        assert!(tp.attribute("rustmon.http.connect.duration").is_none());
        assert!(tp.attribute("rustmon.http.time_to_first_byte").is_some());
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_hosts_suppression_and_disabled_monitoring() {
    let (monitor, capture) = monitor();
    let addr = server(monitor.clone()).await;
    let client = client(&monitor);
    monitor
        .update_config(
            "http_client",
            &serde_json::json!({ "ignored_hosts": ["127.0.0.1"] }),
        )
        .unwrap();
    let seen = client
        .get(format!("http://{addr}/traceparent"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(seen, "", "an ignored host gets no traceparent");
    monitor
        .update_config("http_client", &serde_json::json!({ "ignored_hosts": [] }))
        .unwrap();
    {
        let _quiet = rustmon_core::context::suppress();
        // The request future is polled on this thread while suppressed only for its first poll;
        // events are started in that first poll.
        let fut = client.get(format!("http://{addr}/ok")).send();
        let resp = fut.await.unwrap();
        resp.bytes().await.unwrap();
    }
    client
        .get(format!("http://{addr}/missing"))
        .send()
        .await
        .unwrap();
    wait(|| {
        capture.expect("GET /missing").count(1);
        capture.expect("GET 127.0.0.1").count(1);
        capture.expect("GET /traceparent").root().one();
        capture.expect("GET /ok").root().one();
    });
}
