//! A real HTTP server on 127.0.0.1 for the client tests, monitored by rustmon-tower's layer.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustmon_core::{EventRecord, Monitor, Value};
use rustmon_test::Capture;
use rustmon_tower::{Layer, MonitorLayer};
use tower::ServiceExt;

/// The body `/ok` answers with.
pub const OK_BODY: &str = "hello world";

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let traceparent = req
        .headers()
        .get("traceparent")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let received = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    let resp = match path.as_str() {
        "/ok" => Response::new(Full::from(OK_BODY)),
        "/echo" => Response::new(Full::from(format!("{received}"))),
        "/traceparent" => Response::new(Full::from(traceparent)),
        "/missing" => status(StatusCode::NOT_FOUND, "nope"),
        "/boom" => status(StatusCode::INTERNAL_SERVER_ERROR, "boom"),
        "/empty" => status(StatusCode::NO_CONTENT, ""),
        "/redirect" => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", "/ok")
            .body(Full::default())
            .unwrap_or_default(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Response::new(Full::default())
        }
        _ => status(StatusCode::NOT_FOUND, ""),
    };
    Ok(resp)
}

fn status(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::from(body));
    *r.status_mut() = code;
    r
}

/// Serves the test routes on 127.0.0.1 (port 0), monitored into `monitor` by rustmon-tower.
pub async fn server(monitor: Monitor) -> SocketAddr {
    let layer = MonitorLayer::new()
        .with_monitor(monitor)
        .route_fn(|req| match req.uri.path() {
            "/ok" => Some("/ok"),
            "/echo" => Some("/echo"),
            "/traceparent" => Some("/traceparent"),
            "/missing" => Some("/missing"),
            "/boom" => Some("/boom"),
            "/redirect" => Some("/redirect"),
            "/slow" => Some("/slow"),
            _ => None,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let svc = layer.layer(tower::service_fn(handle));
            tokio::spawn(async move {
                let hyper_svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    svc.clone().oneshot(req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), hyper_svc)
                    .await;
            });
        }
    });
    addr
}

/// A monitor feeding a fresh capture.
pub fn monitor() -> (Monitor, Capture) {
    let capture = Capture::new();
    let monitor = Monitor::builder("http-client-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (monitor, capture)
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An attribute as a float (timings).
pub fn secs(e: &EventRecord, key: &str) -> f64 {
    match e.attribute(key) {
        Some(Value::F64(v)) => *v,
        other => panic!(
            "{key}: expected a float, got {other:?} in {:?}",
            e.attributes
        ),
    }
}

/// Timings are present, non-negative, and consistent with the event's duration.
pub fn check_timings(e: &EventRecord, with_connect: bool, with_dns: bool) {
    let total = e.duration().as_secs_f64();
    let ttfb = secs(e, "rustmon.http.time_to_first_byte");
    assert!(ttfb >= 0.0 && ttfb <= total, "ttfb {ttfb} total {total}");
    if with_connect {
        let connect = secs(e, "rustmon.http.connect.duration");
        assert!(
            connect >= 0.0 && connect <= ttfb,
            "connect {connect} ttfb {ttfb}"
        );
    }
    if with_dns {
        let dns = secs(e, "rustmon.http.dns.duration");
        assert!(dns >= 0.0 && dns <= ttfb, "dns {dns} ttfb {ttfb}");
        if with_connect {
            let connect = secs(e, "rustmon.http.connect.duration");
            assert!(
                dns + connect <= total,
                "dns {dns} + connect {connect} > total {total}"
            );
        }
    }
}
