//! The runtime plugin without the tracking allocator: process and thread metrics through a real
//! monitor, CPU time under a busy loop, live configuration.

use std::hint::black_box;
use std::time::Duration;

use rustmon_core::Monitor;
use rustmon_core::metrics::{Metric, MetricData, Number};
use rustmon_runtime::{ProcessSampler, RuntimeConfig, RuntimePlugin, RuntimeSampler};
use rustmon_test::{Capture, WAIT};

fn value(m: &Metric) -> f64 {
    match &m.data {
        MetricData::Gauge(n) | MetricData::Sum { value: n, .. } => n.as_f64(),
        MetricData::Histogram(_) => panic!("{} is a histogram", m.name),
    }
}

fn attr<'a>(m: &'a Metric, key: &str) -> Option<&'a str> {
    m.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_str())
}

#[test]
fn the_plugin_exports_process_metrics_with_one_line() {
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .plugin_config("runtime", serde_json::json!({ "interval_ms": 50 }))
        .build()
        .unwrap();
    monitor.register_plugin(RuntimePlugin::new()).unwrap();

    let cpu = capture.wait_for_metric("process.cpu.time");
    let modes: Vec<_> = cpu.iter().filter_map(|m| attr(m, "cpu.mode")).collect();
    assert!(
        modes.contains(&"user") && modes.contains(&"system"),
        "{modes:?}"
    );
    assert!(matches!(
        cpu[0].data,
        MetricData::Sum {
            monotonic: true,
            delta: false,
            ..
        }
    ));
    assert!(cpu[0].start_unix_nanos < cpu[0].time_unix_nanos);
    for name in [
        "process.memory.usage",
        "process.memory.virtual",
        "process.thread.count",
        "process.open_file_descriptor.count",
        "process.context_switches",
        "process.uptime",
        "process.cpu.utilization",
        "rustmon.thread.count",
    ] {
        let points = capture.wait_for_metric(name);
        assert!(points.iter().all(|m| value(m) >= 0.0), "{name}");
    }
    let rss = capture.wait_for_metric("process.memory.usage");
    assert!(value(&rss[0]) > 1_000_000.0, "rss {}", value(&rss[0]));
    // The plugin's own sampler thread is named.
    let threads = capture.wait_for_metric("rustmon.thread.count");
    assert!(
        threads
            .iter()
            .any(|m| attr(m, "thread.name") == Some("rustmon-runtime")),
        "{threads:?}"
    );
    assert!(monitor.shutdown(WAIT));
}

#[test]
fn parts_can_be_switched_off_live() {
    let capture = Capture::new();
    let monitor = Monitor::builder("svc")
        .listener(capture.listener())
        .build()
        .unwrap();
    let config = monitor.register_plugin(RuntimePlugin::new()).unwrap();
    monitor
        .update_config(
            "runtime",
            &serde_json::json!({ "interval_ms": 20, "process": false }),
        )
        .unwrap();
    assert_eq!(config.get().interval_ms, 20);
    capture.wait_for_metric("rustmon.thread.count");
    monitor.flush(WAIT);
    capture.clear();
    capture.wait_for_metric("rustmon.thread.count");
    assert!(
        capture
            .metrics()
            .iter()
            .all(|m| !m.name.starts_with("process.")),
        "process metrics after switching them off"
    );
    let err = monitor
        .update_config("runtime", &serde_json::json!({ "interval_ms": 1 }))
        .unwrap_err();
    assert!(err.to_string().contains("interval_ms"), "{err}");
    let err = monitor
        .update_config(
            "runtime",
            &serde_json::json!({ "profile_order": "biggest" }),
        )
        .unwrap_err();
    assert!(err.to_string().contains("profile_order"), "{err}");
    assert!(monitor.shutdown(WAIT));
}

#[test]
fn defaults_are_the_seeds() {
    let c = RuntimeConfig::default();
    assert_eq!(c.interval_ms, 5000);
    assert!(c.process && c.threads && c.heap && c.tokio && c.profile);
    assert_eq!(c.profile_sample_bytes, 512 * 1024);
}

#[test]
fn cpu_time_grows_under_a_busy_loop() {
    if !ProcessSampler::available() {
        eprintln!("skipped: no process metrics on this platform");
        return;
    }
    let mut sampler = ProcessSampler::new();
    let before = sampler.sample().unwrap();
    // Work until the kernel's accounting (clock ticks) shows it, at most a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut x = 0_u64;
    let mut after = sampler.sample().unwrap();
    while after.cpu_user_s + after.cpu_system_s <= before.cpu_user_s + before.cpu_system_s + 0.05
        && std::time::Instant::now() < deadline
    {
        for i in 0..1_000_000_u64 {
            x = black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        after = sampler.sample().unwrap();
    }
    black_box(x);
    assert!(
        after.cpu_user_s > before.cpu_user_s,
        "user CPU time did not grow: {before:?} -> {after:?}"
    );

    // And utilisation is reported from the second reading on, between 0 and 1.
    let mut rs = RuntimeSampler::new();
    let cfg = RuntimeConfig::default();
    assert!(
        !rs.sample(&cfg)
            .iter()
            .any(|m| m.name == "process.cpu.utilization")
    );
    let m = rs.sample(&cfg);
    let u = m
        .iter()
        .find(|m| m.name == "process.cpu.utilization")
        .expect("utilisation on the second reading");
    assert!(matches!(u.data, MetricData::Gauge(Number::F64(v)) if (0.0..=1.0).contains(&v)));
}
