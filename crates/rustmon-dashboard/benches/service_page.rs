//! How long the dashboard's pages wait for their data with 1,000,000 spans stored: the API
//! calls each page makes at once, measured end to end over HTTP against the collector
//! (in-process, real sockets, embedded store), plus each call alone. Pages: the service page
//! (`/services`, `/services/{s}/operations`, `/services/{s}/timeseries`, `/services/{s}/queries`),
//! the services page, the trace page, the operation page (`operations`, `timeseries`,
//! `histogram`, the slowest and the failed traces) and the errors page (`/errors`); range: last
//! hour.
//!
//! ```text
//! cargo bench -p rustmon-dashboard --bench service_page                  # 1,000,000 spans
//! cargo bench -p rustmon-dashboard --bench service_page -- --spans 200000
//! ```
//!
//! Spans: the collector's realistic test batches (5 services, HTTP server spans with a database
//! query, an outgoing call and a render step each) spread over the last hour, plus the demo
//! shop's traces (frontend → checkout → database/cache/payments). The page shown is `checkout`.
//!
//! RESULTS (2026-11-28, 2 cores shared with other engineers' builds, load average 6–9,
//! `cargo bench` = release with debug info; 1,003,110–1,003,164 spans; two runs, median / p95):
//!
//! | page (API calls at once) | run 1 | run 2 |
//! |---|---|---|
//! | service page (4 calls) | 17.2 / 24.4 ms | 19.0 / 25.7 ms |
//! | services page (13 calls) | 104.3 / 141.4 ms | 61.2 / 77.1 ms |
//! | trace page | 2.1 / 7.0 ms | 1.8 / 4.9 ms |
//! | operation page (5 calls) | 42.6 / 94.9 ms | 52.1 / 122.5 ms |
//! | — `histogram` alone | 4.6 / 8.1 ms | 8.9 / 9.9 ms |
//! | — `traces?…&sort=slowest&limit=10` alone | 16.8 / 24.5 ms | 27.9 / 95.0 ms |
//! | — `traces?…&status=error&limit=10` alone | 24.4 / 70.3 ms | 25.9 / 53.0 ms |
//! | errors page: `/errors` (12 groups) | 4.3 / 13.5 ms | 4.6 / 7.6 ms |
//! | `/services/checkout/errors` (5 groups) | 1.5 / 6.8 ms | 2.6 / 11.5 ms |
//!
//! Before the histogram endpoint and the block summaries the operation page took 1558–1653 ms
//! (median, load average 10–17), each of its three trace searches reading all 1M spans.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message;
use rustmon_server::testdata::{Rng, realistic_request};
use support::{Collector, Shop, TempDir, now_ns};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn p95(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * 0.95).ceil() as usize).min(v.len()) - 1]
}

/// GETs `paths` at once (one connection each, like a browser); returns the wall time in ms.
fn fetch_all(c: &Collector, paths: &[String]) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for p in paths {
            s.spawn(move || {
                let r = c.get(p);
                assert_eq!(r.status, 200, "GET {p}: {}", r.text());
            });
        }
    });
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let mut spans = 1_000_000usize;
    let mut runs = 30usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--spans" => spans = args.next().and_then(|v| v.parse().ok()).expect("--spans N"),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).expect("--runs N"),
            _ => {} // cargo bench passes --bench
        }
    }
    let dir = TempDir::new("bench");
    let c = Arc::new(Collector::start(&dir.0));
    let now = now_ns();
    let hour = 3_600_000_000_000u64;
    let batches = spans.div_ceil(1000);
    eprintln!("ingesting {spans} spans in batches of about 1000…");
    let t0 = Instant::now();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let rt = c.rt.as_ref().unwrap();
    rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        let workers = 4;
        for w in 0..workers {
            let ingest = c.ingest.clone();
            let sent = sent.clone();
            set.spawn(async move {
                let mut rng = Rng::new(1000 + w as u64);
                let mut shop = Shop::new();
                let mut b = w;
                while sent.load(std::sync::atomic::Ordering::Relaxed) < spans {
                    let slot = (b % batches) as u64;
                    let base = now - hour + (slot * (hour - 60_000_000_000)) / batches as u64;
                    // every fifth batch is the shop's traffic (about 9 spans per trace)
                    let req = if b % 5 == 0 {
                        shop.traces(&mut rng, base, hour / batches as u64, 110)
                    } else {
                        realistic_request(&mut rng, 1000, base)
                    };
                    let n: usize = req
                        .resource_spans
                        .iter()
                        .flat_map(|r| &r.scope_spans)
                        .map(|s| s.spans.len())
                        .sum();
                    let wal = prost::bytes::Bytes::from(req.encode_to_vec());
                    loop {
                        match ingest.traces(req.clone(), wal.clone()).await {
                            Ok(_) => break,
                            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                        }
                    }
                    sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    b += workers;
                }
            });
        }
        while set.join_next().await.is_some() {}
    });
    let stored = c.json("/api/v1/health")["spans"].as_u64().unwrap_or(0);
    eprintln!(
        "stored {stored} spans in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        stored as usize >= spans * 95 / 100,
        "stored {stored} of {spans}"
    );
    // let the store seal what it buffered, as it would have on a running collector
    std::thread::sleep(Duration::from_secs(6));

    let range = "from=-1h&to=now";
    let svc = "checkout";
    let page: Vec<String> = vec![
        format!("/api/v1/services/{svc}/operations?{range}"),
        format!("/api/v1/services/{svc}/timeseries?{range}"),
        format!("/api/v1/services/{svc}/queries?{range}"),
        format!("/api/v1/services?{range}"),
    ];
    let services = c.json(&format!("/api/v1/services?{range}"));
    let names: Vec<String> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap().to_string())
        .collect();
    let mut services_page = vec![format!("/api/v1/services?{range}")];
    for n in &names {
        services_page.push(format!("/api/v1/services/{n}/timeseries?{range}"));
        services_page.push(format!("/api/v1/services/{n}/operations?{range}"));
    }
    // warm up
    for _ in 0..3 {
        fetch_all(&c, &page);
    }
    let mut all: Vec<f64> = (0..runs).map(|_| fetch_all(&c, &page)).collect();
    println!(
        "| measurement ({spans} spans stored, {} services) | median | p95 |",
        names.len()
    );
    println!("|---|---|---|");
    println!(
        "| service page: its 4 API calls at once | {:.1} ms | {:.1} ms |",
        median(&mut all),
        p95(&mut all)
    );
    for p in &page {
        let mut v: Vec<f64> = (0..runs)
            .map(|_| fetch_all(&c, std::slice::from_ref(p)))
            .collect();
        let name = p.split('?').next().unwrap();
        println!(
            "| `{name}` alone | {:.1} ms | {:.1} ms |",
            median(&mut v),
            p95(&mut v)
        );
    }
    let mut v: Vec<f64> = (0..runs.min(10))
        .map(|_| fetch_all(&c, &services_page))
        .collect();
    println!(
        "| services page: its {} API calls at once | {:.1} ms | {:.1} ms |",
        services_page.len(),
        median(&mut v),
        p95(&mut v)
    );
    let trace = c.json(&format!(
        "/api/v1/traces?service={svc}&sort=slowest&limit=1&{range}"
    ));
    let id = trace["traces"][0]["trace_id"].as_str().unwrap().to_string();
    let mut v: Vec<f64> = (0..runs)
        .map(|_| fetch_all(&c, &[format!("/api/v1/traces/{id}")]))
        .collect();
    println!(
        "| trace page: `/api/v1/traces/{{id}}` | {:.1} ms | {:.1} ms |",
        median(&mut v),
        p95(&mut v)
    );
    let op = [
        format!("/api/v1/services/{svc}/operations?{range}&kind=server"),
        format!("/api/v1/services/{svc}/timeseries?{range}&kind=server&name=POST%20/orders"),
        format!("/api/v1/services/{svc}/histogram?{range}&kind=server&name=POST%20/orders"),
        format!(
            "/api/v1/traces?service={svc}&name=POST%20/orders&kind=server&sort=slowest&limit=10&{range}"
        ),
        format!(
            "/api/v1/traces?service={svc}&name=POST%20/orders&kind=server&status=error&limit=10&{range}"
        ),
    ];
    let mut v: Vec<f64> = (0..runs.min(10)).map(|_| fetch_all(&c, &op)).collect();
    println!(
        "| operation page: its {} API calls at once | {:.1} ms | {:.1} ms |",
        op.len(),
        median(&mut v),
        p95(&mut v)
    );
    for p in &op {
        let mut v: Vec<f64> = (0..runs.min(10))
            .map(|_| fetch_all(&c, std::slice::from_ref(p)))
            .collect();
        let (path, q) = p.split_once('?').unwrap();
        let q: Vec<&str> = q
            .split('&')
            .filter(|kv| !kv.starts_with("from=") && !kv.starts_with("to="))
            .collect();
        println!(
            "| `{path}?{}` alone | {:.1} ms | {:.1} ms |",
            q.join("&"),
            median(&mut v),
            p95(&mut v)
        );
    }
    for p in [
        format!("/api/v1/errors?limit=500&{range}"),
        format!("/api/v1/services/{svc}/errors?{range}"),
    ] {
        let mut v: Vec<f64> = (0..runs)
            .map(|_| fetch_all(&c, std::slice::from_ref(&p)))
            .collect();
        let groups = c.json(&p)["groups"].as_array().map_or(0, Vec::len);
        println!(
            "| errors page: `{}` ({groups} groups) | {:.1} ms | {:.1} ms |",
            p.split('?').next().unwrap(),
            median(&mut v),
            p95(&mut v)
        );
    }
}
