//! An actix-web service monitored by rustmon; each request's event is printed as a JSON line.
//!
//! ```text
//! cargo run -p rustmon-actix --example actix_hello
//! curl http://127.0.0.1:3001/orders/42
//! ```

use actix_web::{App, HttpServer, web};
use rustmon_core::{JsonLines, Kind, Monitor};

fn main() -> std::io::Result<()> {
    let monitor = Monitor::builder("actix-hello")
        .listener(JsonLines::stdout())
        .plugin_config(
            "http_server",
            serde_json::json!({ "ignore_routes": ["/health"], "request_remote_addr": true }),
        )
        .build()
        .expect("monitor");
    monitor.install_global();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    eprintln!("listening on http://{addr}");
    actix_web::rt::System::new().block_on(
        HttpServer::new(|| {
            App::new()
                .wrap(rustmon_actix::Monitor::new())
                .route("/", web::get().to(|| async { "Hello, world!" }))
                .route(
                    "/orders/{id}",
                    web::get().to(|id: web::Path<u64>| async move {
                        // A child of the request's event.
                        rustmon_core::Event::start(Kind::Database, "SELECT orders").finish();
                        format!("order {id}")
                    }),
                )
                .route("/health", web::get().to(|| async { "ok" }))
        })
        .bind(addr)?
        .run(),
    )
}
