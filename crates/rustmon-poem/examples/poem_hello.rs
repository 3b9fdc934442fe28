//! A poem service monitored by rustmon; each request's event is printed as a JSON line.
//!
//! ```text
//! cargo run -p rustmon-poem --example poem_hello
//! curl http://127.0.0.1:3002/orders/42
//! ```

use poem::endpoint::make;
use poem::listener::TcpListener;
use poem::{EndpointExt, Route, Server, get};
use rustmon_core::{Event, JsonLines, Kind, Monitor};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let monitor = Monitor::builder("poem-hello")
        .listener(JsonLines::stdout())
        .plugin_config(
            "http_server",
            serde_json::json!({ "ignore_routes": ["/health"], "request_remote_addr": true }),
        )
        .build()
        .expect("monitor");
    monitor.install_global();
    let app = Route::new()
        .at("/", get(make(|_| async { "Hello, world!" })))
        .at(
            "/orders/:id",
            get(make(|req| async move {
                // A child of the request's event.
                Event::start(Kind::Database, "SELECT orders").finish();
                format!("order {}", req.raw_path_param("id").unwrap_or_default())
            })),
        )
        .at("/health", get(make(|_| async { "ok" })))
        .with(rustmon_poem::Monitor::new());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3002".into());
    eprintln!("listening on http://{addr}");
    Server::new(TcpListener::bind(addr)).run(app).await
}
