//! A salvo service monitored by rustmon; each request's event is printed as a JSON line.
//!
//! ```text
//! cargo run -p rustmon-salvo --example salvo_hello
//! curl http://127.0.0.1:3003/orders/42
//! ```

use rustmon_core::{Event, JsonLines, Kind, Monitor};
use salvo_core::conn::{Listener, TcpListener};
use salvo_core::{Request, Router, Server, Service, handler};

#[handler]
async fn hello() -> &'static str {
    "Hello, world!"
}

#[handler]
async fn order(req: &mut Request) -> String {
    // A child of the request's event.
    Event::start(Kind::Database, "SELECT orders").finish();
    format!("order {}", req.param::<u64>("id").unwrap_or_default())
}

#[handler]
async fn health() -> &'static str {
    "ok"
}

#[tokio::main]
async fn main() {
    let monitor = Monitor::builder("salvo-hello")
        .listener(JsonLines::stdout())
        .plugin_config(
            "http_server",
            serde_json::json!({ "ignore_routes": ["/health"], "request_remote_addr": true }),
        )
        .build()
        .expect("monitor");
    monitor.install_global();
    let router = Router::new()
        .get(hello)
        .push(Router::with_path("orders/{id}").get(order))
        .push(Router::with_path("health").get(health));
    let service = Service::new(router).hoop(rustmon_salvo::Monitor::new());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3003".into());
    eprintln!("listening on http://{addr}");
    Server::new(TcpListener::new(addr).bind().await)
        .serve(service)
        .await;
}
