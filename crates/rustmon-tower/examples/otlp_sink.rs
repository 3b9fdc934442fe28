//! A tiny OTLP/HTTP sink for load benchmarks: answers every POST with 200 and an empty body,
//! counting requests and bytes (printed every 10 s to stderr).
//!
//! ```text
//! cargo run --release -p rustmon-tower --example otlp_sink -- 127.0.0.1:4318
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    bytes: AtomicU64,
}

async fn sink(State(c): State<Arc<Counts>>, body: Bytes) -> impl IntoResponse {
    c.requests.fetch_add(1, Ordering::Relaxed);
    c.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        Bytes::new(),
    )
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4318".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let counts = Arc::new(Counts::default());
        let app = Router::new()
            .route("/v1/traces", post(sink))
            .route("/v1/metrics", post(sink))
            .route("/v1/logs", post(sink))
            .with_state(counts.clone());
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        eprintln!("otlp sink on http://{}", listener.local_addr()?);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!(
                    "otlp sink: {} requests, {} bytes",
                    counts.requests.load(Ordering::Relaxed),
                    counts.bytes.load(Ordering::Relaxed)
                );
            }
        });
        axum::serve(listener, app).await
    })
}
