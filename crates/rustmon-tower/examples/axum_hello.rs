//! An axum service monitored by rustmon; each request's event is printed as a JSON line.
//!
//! ```text
//! cargo run -p rustmon-tower --features axum --example axum_hello
//! curl -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' \
//!      http://127.0.0.1:3000/orders/42
//! ```
//! (Applications normally install the global monitor with `rustmon::init("service")`, which
//! exports over OTLP; the layer then needs no `with_monitor`.)

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use rustmon_core::{JsonLines, Kind, Monitor};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let monitor = Monitor::builder("axum-hello")
        .listener(JsonLines::stdout())
        .plugin_config(
            "http_server",
            serde_json::json!({ "ignore_routes": ["/health"], "request_headers": true }),
        )
        .build()
        .expect("monitor");
    monitor.install_global();

    let app = Router::new()
        .route("/", get(|| async { "Hello, world!" }))
        .route(
            "/orders/{id}",
            get(|Path(id): Path<u64>| async move {
                // A child of the request's event.
                let mut load = rustmon_core::Event::start(Kind::Database, "SELECT orders");
                load.set("db.system.name", "postgresql");
                load.finish();
                format!("order {id}")
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .layer(rustmon_tower::axum::layer());

    let addr: SocketAddr = std::env::var("ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()
        .expect("ADDR");
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
