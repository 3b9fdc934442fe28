//! The load generator: realistic, varying traffic against the shop.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Semaphore, watch};

thread_local! {
    static RNG: Cell<u64> = Cell::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x2545_f491, |d| d.as_nanos() as u64)
            | 1,
    );
}

/// A pseudo-random number in `0..n` (xorshift; the demo needs variety, not security).
pub(crate) fn random_below(n: u64) -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        r.set(x);
        x % n.max(1)
    })
}

/// Sends requests until `stop` turns true, at a rate that drifts around `per_second`.
pub(crate) async fn generate(shop: SocketAddr, per_second: f64, mut stop: watch::Receiver<bool>) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let in_flight = Arc::new(Semaphore::new(32));
    let started = Instant::now();
    loop {
        // A slow wave over two minutes, plus jitter.
        let t = started.elapsed().as_secs_f64();
        let rate = (per_second * (1.0 + 0.6 * (t / 20.0).sin())).max(1.0);
        let jitter = 0.5 + random_below(1000) as f64 / 1000.0;
        let pause = Duration::from_secs_f64(jitter / rate);
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(pause) => {}
        }
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            continue;
        };
        let (method, path) = pick();
        let client = client.clone();
        tokio::spawn(async move {
            let request = hyper::Request::builder()
                .method(method)
                .uri(format!("http://{shop}{path}"))
                .body(Empty::new());
            if let Ok(request) = request {
                if let Ok(response) = client.request(request).await {
                    let _ = response.into_body().collect().await;
                }
            }
            drop(permit);
        });
    }
}

fn pick() -> (&'static str, String) {
    match random_below(100) {
        0..=29 => ("GET", "/products".into()),
        30..=59 => ("GET", format!("/products/{}", random_below(14) + 1)),
        60..=74 => ("GET", format!("/orders/{}", random_below(50) + 1)),
        75..=84 => ("GET", "/recommendations".into()),
        85..=92 => ("POST", "/checkout".into()),
        93..=96 => ("GET", "/health".into()),
        _ => ("GET", "/no/such/page".into()),
    }
}
