//! Tokio runtime metrics and the per-request scheduling measurements, without the tracking
//! allocator.

use std::time::{Duration, Instant};

use rustmon_core::metrics::{Metric, MetricData};
use rustmon_core::{Kind, Monitor, Value};
use rustmon_runtime::{MeasureExt, RuntimeConfig, RuntimePlugin, RuntimeSampler};
use rustmon_test::{Capture, WAIT};

fn config() -> RuntimeConfig {
    RuntimeConfig {
        process: false,
        threads: false,
        ..RuntimeConfig::default()
    }
}

fn gauge(metrics: &[Metric], name: &str) -> Vec<f64> {
    metrics
        .iter()
        .filter(|m| m.name == name)
        .map(|m| match &m.data {
            MetricData::Gauge(n) | MetricData::Sum { value: n, .. } => n.as_f64(),
            MetricData::Histogram(_) => panic!("histogram"),
        })
        .collect()
}

/// Samples until `pred` holds for `tokio.tasks.alive` (tasks are released shortly after they
/// complete), at most [`WAIT`].
fn alive_until(sampler: &mut RuntimeSampler, what: &str, pred: impl Fn(f64) -> bool) -> f64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let alive = gauge(&sampler.sample(&config()), "tokio.tasks.alive")[0];
        if pred(alive) {
            return alive;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: alive tasks stayed {alive}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn task_counts_follow_spawned_tasks() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let mut sampler = RuntimeSampler::new();
    sampler.add_tokio_runtime("app", rt.handle().clone());
    let m = sampler.sample(&config());
    assert_eq!(gauge(&m, "tokio.workers"), [2.0]);
    assert_eq!(gauge(&m, "tokio.tasks.alive"), [0.0]);
    assert_eq!(gauge(&m, "tokio.global_queue.depth").len(), 1);
    let labels: Vec<_> = m
        .iter()
        .filter(|m| m.name == "tokio.worker.park_count")
        .map(|m| m.attributes.clone())
        .collect();
    assert_eq!(labels.len(), 2, "one park count per worker");
    assert!(
        labels[0]
            .iter()
            .any(|kv| kv.key == "tokio.runtime" && kv.value == Value::from("app"))
    );

    let (tx, rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let mut rx = rx.clone();
            rt.spawn(async move {
                let _ = rx.wait_for(|go| *go).await;
            })
        })
        .collect();
    assert_eq!(
        alive_until(&mut sampler, "after spawning 50", |n| n == 50.0),
        50.0
    );
    tx.send(true).unwrap();
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    alive_until(&mut sampler, "after all completed", |n| n == 0.0);

    // Busy ratios come from the second reading on, one per worker, within 0..=1.
    let m = sampler.sample(&config());
    let ratios = gauge(&m, "tokio.worker.busy_ratio");
    assert_eq!(ratios.len(), 2);
    assert!(ratios.iter().all(|r| (0.0..=1.0).contains(r)), "{ratios:?}");
    assert!(gauge(&m, "tokio.worker.park_count").iter().sum::<f64>() > 0.0);
}

#[test]
fn the_unavailable_metrics_are_named() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut sampler = RuntimeSampler::new();
    let missing = sampler.unavailable();
    assert!(
        missing.iter().any(|(what, _)| *what == "tokio.*"),
        "{missing:?}"
    );
    assert!(
        missing.iter().any(|(what, _)| *what == "rustmon.heap.*"),
        "{missing:?}"
    );
    sampler.add_tokio_runtime("app", rt.handle().clone());
    let missing = sampler.unavailable();
    assert!(!missing.iter().any(|(what, _)| *what == "tokio.*"));
    let poll_count = missing
        .iter()
        .any(|(what, _)| *what == "tokio.worker.poll_count");
    if cfg!(tokio_unstable) {
        assert!(rustmon_runtime::TOKIO_UNAVAILABLE_METRICS.is_empty());
        assert!(!poll_count);
    } else {
        assert!(rustmon_runtime::TOKIO_UNAVAILABLE_METRICS.contains(&"tokio.worker.poll_count"));
        assert!(poll_count, "{missing:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plugin_finds_the_runtime_it_is_created_in() {
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .plugin_config(
            "runtime",
            serde_json::json!({ "interval_ms": 20, "process": false, "threads": false }),
        )
        .build()
        .unwrap();
    monitor.register_plugin(RuntimePlugin::new()).unwrap();
    let m = tokio::task::spawn_blocking(move || capture.wait_for_metric("tokio.workers"))
        .await
        .unwrap();
    assert!(
        m[0].attributes
            .iter()
            .any(|kv| kv.value == Value::from("main"))
    );
    tokio::task::spawn_blocking(move || monitor.shutdown(WAIT))
        .await
        .unwrap();
}

#[test]
fn a_request_reports_time_waiting_to_be_scheduled() {
    // One worker, kept busy by a blocking task for a while after the request is woken: the
    // request waits to be scheduled at least as long as that task holds the worker.
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let hog = Duration::from_millis(30);
    rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let request = tokio::spawn(
            async move {
                let _ = rx.await;
            }
            .in_event(monitor.start_event(Kind::Server, "GET /wait")),
        );
        tokio::task::yield_now().await; // the request polls once and waits
        tx.send(()).unwrap(); // woken now...
        std::thread::sleep(hog); // ...but the only thread is busy here
        request.await.unwrap();
    });
    monitor.flush(WAIT);
    let e = capture.expect("GET /wait").one();
    let int = |k: &str| match e.attribute(k) {
        Some(Value::I64(v)) => *v,
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(int("rustmon.task.polls"), 2);
    assert!(
        int("rustmon.task.sched_wait_ns") >= hog.as_nanos() as i64,
        "{e:?}"
    );
    assert!(int("rustmon.task.poll_ns") > 0);
    assert!(
        e.attribute("rustmon.alloc.bytes").is_none(),
        "no tracking allocator here"
    );
    assert!(monitor.shutdown(WAIT));
}

#[test]
fn a_cancelled_request_is_still_recorded() {
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .build()
        .unwrap();
    let fut =
        std::future::pending::<()>().in_event(monitor.start_event(Kind::Server, "GET /never"));
    drop(fut);
    monitor.flush(WAIT);
    capture
        .expect("GET /never")
        .attr("rustmon.task.cancelled", true)
        .attr("rustmon.task.polls", 0_i64)
        .one();
    assert!(monitor.shutdown(WAIT));
}

/// Run with `RUSTFLAGS="--cfg tokio_unstable"`.
#[cfg(tokio_unstable)]
#[test]
fn unstable_metrics_are_reported_with_tokio_unstable() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_metrics_poll_time_histogram()
        .build()
        .unwrap();
    let mut sampler = RuntimeSampler::new();
    sampler.add_tokio_runtime("app", rt.handle().clone());
    sampler.sample(&config());
    rt.block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|i| tokio::spawn(async move { std::hint::black_box(i) }))
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let m = sampler.sample(&config());
    assert!(gauge(&m, "tokio.worker.poll_count").iter().sum::<f64>() >= 100.0);
    assert!(gauge(&m, "tokio.tasks.spawned")[0] >= 100.0);
    for name in [
        "tokio.worker.steal_count",
        "tokio.worker.local_queue.depth",
        "tokio.worker.mean_poll_time",
        "tokio.tasks.remote_scheduled",
        "tokio.tasks.budget_forced_yield",
        "tokio.blocking.threads",
        "tokio.blocking.queue.depth",
    ] {
        assert!(!gauge(&m, name).is_empty(), "{name}");
    }
    let hist = m
        .iter()
        .find(|m| m.name == "tokio.poll.duration")
        .expect("the poll-time histogram");
    let MetricData::Histogram(h) = &hist.data else {
        panic!("tokio.poll.duration is a histogram")
    };
    assert!(h.count >= 100, "{h:?}");
    assert_eq!(h.counts.iter().sum::<u64>() + h.zero_count, h.count);
}
