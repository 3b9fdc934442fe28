//! A rocket service monitored by rustmon; each request's event is printed as a JSON line.
//!
//! ```text
//! cargo run -p rustmon-rocket --example rocket_hello
//! curl http://127.0.0.1:3002/orders/42
//! ```

use rocket::{get, routes};
use rustmon_core::{Event, JsonLines, Kind, Monitor};

#[get("/")]
fn index() -> &'static str {
    "Hello, world!"
}

#[get("/orders/<id>")]
async fn order(id: u64) -> String {
    // A child of the request's event (the route is mounted through `in_context`).
    Event::start(Kind::Database, "SELECT orders").finish();
    format!("order {id}")
}

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

#[rocket::main]
async fn main() -> Result<(), Box<rocket::Error>> {
    let monitor = Monitor::builder("rocket-hello")
        .listener(JsonLines::stdout())
        .plugin_config(
            "http_server",
            serde_json::json!({ "ignore_routes": ["/health"], "request_remote_addr": true }),
        )
        .build()
        .expect("monitor");
    monitor.install_global();
    let port = std::env::var("PORT").map_or(3002, |p| p.parse().expect("PORT"));
    let config = rocket::Config {
        port,
        log_level: rocket::config::LogLevel::Critical,
        ..rocket::Config::default()
    };
    eprintln!("listening on http://127.0.0.1:{port}");
    rocket::custom(config)
        .attach(rustmon_rocket::Monitor::new())
        .mount(
            "/",
            rustmon_rocket::in_context(routes![index, order, health]),
        )
        .launch()
        .await
        .map_err(Box::new)?;
    monitor.shutdown(std::time::Duration::from_secs(2));
    Ok(())
}
