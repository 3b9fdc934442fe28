//! A collector with the dashboard mounted, filled with an hour of a sample shop's traffic and
//! fed more every few seconds; a simulated agent polls the central configuration and reports
//! the version it applied. Used by the browser test (`ci.sh`) and to look at the dashboard:
//!
//! ```text
//! cargo run -p rustmon-dashboard --example dashboard_demo -- --listen 127.0.0.1:7070
//! ```
//!
//! Prints `listening api=… otlp_http=…` once ready; stops on Ctrl-C or SIGTERM. With `--empty`
//! it sends nothing (to see the empty states).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use rustmon_server::testdata::Rng;
use support::{Collector, Shop, TempDir, now_ns, request, runtime_metrics};

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut listen, mut otlp, mut data) =
        ("127.0.0.1:0".to_string(), "127.0.0.1:0".to_string(), None);
    let mut empty = false;
    while let Some(a) = args.next() {
        if a == "--empty" {
            empty = true;
            continue;
        }
        let v = args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = v,
            "--otlp-http" => otlp = v,
            "--data-dir" => data = Some(std::path::PathBuf::from(v)),
            _ => panic!("unknown flag {a}: expected --listen, --otlp-http or --data-dir"),
        }
    }
    let tmp = TempDir::new("demo");
    let dir = data.unwrap_or_else(|| tmp.0.clone());
    std::fs::create_dir_all(&dir).expect("data dir");
    let c = Collector::start_on(&dir, &listen, &otlp);
    if !empty {
        c.seed(60, 40);
    }
    println!("rustmon dashboard demo: http://{}/ui/", c.api_addr);
    println!("listening api={} otlp_http={}", c.api_addr, c.otlp_addr);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop = stop.clone();
        let rt = c.rt.as_ref().unwrap();
        rt.spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            tokio::select! { _ = tokio::signal::ctrl_c() => {}, _ = term.recv() => {} }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let mut rng = Rng::new(99);
    let mut shop = Shop::new();
    let mut last = now_ns();
    let mut applied = 0u64;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let now = now_ns();
        if empty || now - last < 3_000_000_000 {
            continue;
        }
        let n = 3 + rng.below(5);
        c.send_traces(&shop.traces(&mut rng, last, now - last, n));
        c.send_metrics(&runtime_metrics(&mut rng, last, now));
        last = now;
        // the simulated agent of `checkout`: polls its configuration, reports what it applied
        let r = c.get("/api/v1/config/checkout");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let version = v["version"].as_u64().unwrap_or(0);
        if version != applied || applied == 0 {
            applied = version;
            let body = format!(
                r#"{{"instance": "checkout-7f9c (simulated agent)", "version": {version}, "error": null}}"#
            );
            request(
                c.api_addr,
                "POST",
                "/api/v1/config/checkout/status",
                &[("content-type", "application/json")],
                body.as_bytes(),
            );
        }
    }
    drop(c);
    println!("stopped");
}
