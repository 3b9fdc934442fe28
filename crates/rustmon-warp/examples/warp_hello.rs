//! A warp service monitored by rustmon, served by hyper; each request's event is printed as a
//! JSON line.
//!
//! ```text
//! cargo run -p rustmon-warp --example warp_hello
//! curl http://127.0.0.1:3002/orders/42
//! ```

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustmon_core::{JsonLines, Monitor};
use rustmon_tower::Layer;
use tower::ServiceExt;
use warp::Filter;

fn routes()
-> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    let hello = warp::path::end()
        .and(rustmon_warp::route("/"))
        .map(|| "Hello, world!");
    let orders = warp::path!("orders" / u64)
        .and(rustmon_warp::route("/orders/{id}"))
        .map(|id: u64| format!("order {id}"));
    hello.or(orders)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let monitor = Monitor::builder("warp-hello")
        .listener(JsonLines::stdout())
        .build()
        .expect("monitor");
    monitor.install_global();

    let svc = rustmon_warp::layer().layer(warp::service(routes()));

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3002".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("listening on http://{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let svc = svc.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                svc.clone().oneshot(req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
