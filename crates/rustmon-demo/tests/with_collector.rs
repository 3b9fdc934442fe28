//! The demo against a real collector: what the dashboard pages show is there, through the API.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustmon_server::config::ServeArgs;
use serde_json::{Value, json};

type Http = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn call(client: &Http, method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = hyper::Request::builder().method(method).uri(url);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
    let resp = client
        .request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Polls `f` until it returns `Some`, for at most a minute.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn a_trace(client: &Http, api: &str, service: &str, name: &str) -> Value {
    let search = format!(
        "{api}/api/v1/traces?service={service}&name={}&limit=5",
        url_encode(name)
    );
    let trace_url = eventually(&format!("a trace of {name}"), || async {
        let (_, v) = call(client, "GET", &search, None).await;
        v["traces"]
            .as_array()?
            .first()?
            .get("trace_url")?
            .as_str()
            .map(str::to_owned)
    })
    .await;
    // Children may arrive in a later batch than the root: wait until the trace looks complete.
    let url = format!("{api}{trace_url}");
    eventually("the whole trace", || async {
        let (status, v) = call(client, "GET", &url, None).await;
        (status == 200 && v["span_count"].as_u64()? > 1).then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_populates_every_view() {
    let dir = std::env::temp_dir().join(format!("rustmon-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let settings = ServeArgs {
        data_dir: Some(dir.join("collector")),
        listen: Some("127.0.0.1:0".into()),
        otlp_http: Some("127.0.0.1:0".into()),
        otlp_grpc: Some("127.0.0.1:0".into()),
        ..ServeArgs::default()
    }
    .resolve()
    .unwrap();
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let collector = tokio::spawn(rustmon_server::server::run(
        settings,
        move |b| {
            let _ = bound_tx.send(b);
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let bound = bound_rx.await.unwrap();
    let api = format!("http://{}", bound.api);

    let mut options = rustmon_demo::Options::new(format!("http://{}", bound.otlp_http));
    options.api_url = Some(api.clone());
    options.data_dir = Some(dir.join("demo"));
    options.requests_per_second = 40.0;
    let demo = rustmon_demo::start(options).await.unwrap();
    let client: Http = Client::builder(TokioExecutor::new()).build_http();

    // Services page: both services.
    eventually("both services", || async {
        let (_, v) = call(
            &client,
            "GET",
            &format!("{api}/api/v1/services?from=-15m"),
            None,
        )
        .await;
        let names: Vec<&str> = v["services"]
            .as_array()?
            .iter()
            .filter_map(|s| s["service"].as_str())
            .collect();
        (names.contains(&"demo-shop") && names.contains(&"demo-inventory")).then_some(())
    })
    .await;

    // Trace page: the N+1 route has its statements as children of the request.
    let order = a_trace(&client, &api, "demo-shop", "GET /orders/{id}").await;
    let spans = order["spans"].as_array().unwrap();
    let root = spans
        .iter()
        .find(|s| s["name"] == "GET /orders/{id}")
        .unwrap();
    let lookups = spans
        .iter()
        .filter(|s| s["name"] == "SELECT name FROM products WHERE id = ?")
        .inspect(|s| assert_eq!(s["parent_span_id"], root["span_id"]))
        .count();
    assert_eq!(lookups, 6, "{order:#}");

    // Across services: the shop's call to the inventory continues the trace.
    let product = a_trace(&client, &api, "demo-shop", "GET /products/{id}").await;
    let services = eventually("the inventory's part of the trace", || async {
        let v = a_trace(&client, &api, "demo-shop", "GET /products/{id}").await;
        let s: Vec<String> = serde_json::from_value(v["services"].clone()).ok()?;
        (s.len() == 2).then_some(s)
    })
    .await;
    assert_eq!(services, ["demo-inventory", "demo-shop"], "{product:#}");

    // Database page: statements by fingerprint.
    let (_, queries) = call(
        &client,
        "GET",
        &format!("{api}/api/v1/services/demo-shop/queries?from=-15m"),
        None,
    )
    .await;
    assert!(
        queries["queries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["fingerprint"] == "SELECT name FROM products WHERE id = ?"),
        "{queries:#}"
    );

    // Runtime page: process metrics.
    eventually("runtime metrics", || async {
        let (_, v) = call(
            &client,
            "GET",
            &format!("{api}/api/v1/services/demo-shop/metrics?from=-15m"),
            None,
        )
        .await;
        v.to_string().contains("process.memory.usage").then_some(())
    })
    .await;

    // Settings page: a change the agent applies, visible in what it records next.
    let (status, _) = call(
        &client,
        "PUT",
        &format!("{api}/api/v1/config/demo-shop"),
        Some(json!({ "http_server": { "request_headers": true } })),
    )
    .await;
    assert_eq!(status, 200);
    eventually("the agent to apply version 1", || async {
        let (_, v) = call(
            &client,
            "GET",
            &format!("{api}/api/v1/config/demo-shop/status"),
            None,
        )
        .await;
        v.to_string().contains("\"version\":1").then_some(())
    })
    .await;
    eventually("request headers on new spans", || async {
        let v = a_trace(&client, &api, "demo-shop", "GET /products").await;
        v.to_string()
            .contains("http.request.header.host")
            .then_some(())
    })
    .await;

    demo.shutdown().await;
    let _ = stop_tx.send(());
    collector.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
