//! Crash test: a sender posts batches while the collector is killed with SIGKILL; after a
//! restart every batch that got a 2xx is present.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Collector, TempDir};
use prost::Message;
use rustmon_server::model::hex;
use rustmon_server::testdata::{Rng, realistic_request};

/// Root trace ids and span count of a batch that got a 2xx.
type Acked = (Vec<String>, usize);

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let dir = TempDir::new("crash");
    // small segments so that sealing and WAL rotation happen while the kill lands
    let c = Collector::start(&dir.0, &["--seal-spans", "2000"]);
    let url = format!("{}/v1/traces", c.otlp_http);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for t in 0..2u64 {
        let (url, acked, count, stop) = (url.clone(), acked.clone(), count.clone(), stop.clone());
        senders.push(std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut rng = Rng::new(t + 1);
            let base = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                - 60_000_000_000;
            while !stop.load(Ordering::Relaxed) {
                let req = realistic_request(&mut rng, 400, base);
                let traces: Vec<String> = req.resource_spans[0].scope_spans[0]
                    .spans
                    .iter()
                    .filter(|s| s.parent_span_id.is_empty())
                    .map(|s| hex(&s.trace_id))
                    .collect();
                let n = req.resource_spans[0].scope_spans[0].spans.len();
                let res = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(req.encode_to_vec())
                    .send();
                match res {
                    Ok(r) if r.status().is_success() => {
                        acked.lock().unwrap().push((traces, n));
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) if r.status().as_u16() == 429 => continue,
                    _ => break, // the collector is gone
                }
            }
        }));
    }
    // kill once a good number of batches were acknowledged, while senders keep going
    while count.load(Ordering::Relaxed) < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    c.kill9();
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        s.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let spans: usize = acked.iter().map(|a| a.1).sum();
    assert!(acked.len() >= 60);

    let c = Collector::start(&dir.0, &["--seal-spans", "2000"]);
    let health = c.ok("/api/v1/health");
    assert!(
        health["spans"].as_u64().unwrap() >= spans as u64,
        "{} spans acknowledged, {health} after restart",
        spans
    );
    for (traces, _) in &acked {
        for t in traces.iter().step_by(7) {
            let v = c.ok(&format!("/api/v1/traces/{t}"));
            assert_eq!(v["span_count"], 4, "trace {t}");
        }
    }
    c.stop();
}
