//! The monitor end to end: parents, context propagation, configuration, enable/disable, queue
//! overflow, listener panics, shutdown, sampling and RED metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustmon_core::context::{self, FutureExt, SpanContext};
use rustmon_core::metrics::MetricData;
use rustmon_core::{
    Batch, CoreConfig, Event, Kind, Listener, Monitor, PluginListener, Status, listener_fn,
};
use rustmon_test::Capture;
use serde_json::json;

const FLUSH: Duration = Duration::from_secs(10);

fn monitor_with(capture: &Capture) -> Monitor {
    Monitor::builder("test-svc")
        .listener(capture.listener())
        .build()
        .unwrap()
}

#[test]
fn children_in_sync_code_share_the_trace() {
    let capture = Capture::new();
    let m = monitor_with(&capture);
    let root = m.start_event(Kind::Server, "GET /orders/{id}");
    {
        let _g = root.enter();
        let mut db = m.start_event(Kind::Database, "SELECT orders");
        db.set("db.system.name", "postgresql");
        let _g2 = db.enter();
        m.start_event(Kind::Custom, "inner").finish();
    }
    let explicit = root.new_child(Kind::Client, "GET api");
    explicit.finish();
    root.finish();
    assert_eq!(context::current(), None);
    assert!(m.flush(FLUSH));

    let server = capture
        .expect("GET /orders/{id}")
        .kind(Kind::Server)
        .root()
        .one();
    let db = capture
        .expect("SELECT orders")
        .attr("db.system.name", "postgresql")
        .child_of(&server)
        .one();
    capture.expect("inner").child_of(&db).one();
    capture.expect("GET api").child_of(&server).one();
}

#[test]
fn context_survives_await_and_tokio_spawn() {
    let capture = Capture::new();
    let m = monitor_with(&capture);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let m2 = m.clone();
    rt.block_on(async move {
        let root = m2.start_event(Kind::Server, "POST /checkout");
        let ctx = root.context();
        let m3 = m2.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            m3.start_event(Kind::Database, "after-await").finish();
            let m4 = m3.clone();
            tokio::spawn(
                async move {
                    tokio::task::yield_now().await;
                    m4.start_event(Kind::Client, "in-spawn").finish();
                }
                .in_current_context(),
            )
            .await
            .unwrap();
            let m5 = m3.clone();
            tokio::task::spawn_blocking(context::bind(move || {
                m5.start_event(Kind::Custom, "in-blocking").finish();
            }))
            .await
            .unwrap();
        }
        .with_context(ctx)
        .await;
        root.finish();
    });
    let m6 = m.clone();
    std::thread::spawn(move || m6.start_event(Kind::Custom, "no-context").finish())
        .join()
        .unwrap();
    assert!(m.flush(FLUSH));
    let root = capture.expect("POST /checkout").root().one();
    for name in ["after-await", "in-spawn", "in-blocking"] {
        capture.expect(name).child_of(&root).one();
    }
    capture.expect("no-context").root().one();
}

#[test]
fn traceparent_continues_a_remote_trace() {
    let capture = Capture::new();
    let m = monitor_with(&capture);
    let incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let parent = SpanContext::from_traceparent(incoming);
    let server = m.start_event_with_parent(Kind::Server, "GET /", parent);
    let outgoing = server.context().unwrap().traceparent();
    server.finish();
    assert!(m.flush(FLUSH));
    let e = capture.expect("GET /").one();
    assert_eq!(e.trace_id.to_string(), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(e.parent_span_id.unwrap().to_string(), "b7ad6b7169203331");
    assert!(e.parent_remote);
    let back = SpanContext::from_traceparent(&outgoing).unwrap();
    assert_eq!((back.trace_id, back.span_id), (e.trace_id, e.span_id));

    // A malformed header starts a new trace.
    let fresh = m.start_event_with_parent(
        Kind::Server,
        "fresh",
        SpanContext::from_traceparent("00-zz"),
    );
    assert!(fresh.record().unwrap().parent_span_id.is_none());
    fresh.discard();
}

#[test]
fn tracestate_travels_with_the_trace() {
    let capture = Capture::new();
    let m = monitor_with(&capture);
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let parent = SpanContext::from_headers(tp, Some("rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE"));
    let server = m.start_event_with_parent(Kind::Server, "GET /", parent);
    let client = server.new_child(Kind::Client, "GET upstream");
    let outgoing = client.context().unwrap();
    assert_eq!(
        outgoing.trace_state,
        Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    );
    client.finish();
    server.finish();
    assert!(m.flush(FLUSH));
    let e = capture.expect("GET upstream").one();
    assert_eq!(
        e.trace_state,
        Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    );
    // An invalid or empty tracestate carries nothing; a root carries nothing.
    let bad = SpanContext::from_headers(tp, Some("a=1,a=2")).unwrap();
    assert_eq!(bad.trace_state, None);
    assert_eq!(
        SpanContext::from_headers(tp, Some(" "))
            .unwrap()
            .trace_state,
        None
    );
    let root = m.start_event(Kind::Server, "root");
    assert_eq!(root.context().unwrap().trace_state, None);
    root.discard();
}

#[test]
fn kept_and_annotated_events_survive_sampling() {
    let capture = Capture::new();
    let m = Monitor::builder("svc")
        .core_config(CoreConfig {
            sample_rate: 0.0,
            ..CoreConfig::default()
        })
        .listener(capture.listener())
        .build()
        .unwrap();
    let request = m.start_event(Kind::Server, "GET /orders");
    let parent = request.context().unwrap();
    for i in 1..=6_i64 {
        let mut q = request.new_child(Kind::Database, "SELECT ?");
        if i == 6 {
            q.keep();
        }
        assert!(m.annotate(parent.span_id, "db.n_plus_one.count", i));
        q.finish();
    }
    assert!(m.annotate(parent.span_id, "db.n_plus_one.statement", "SELECT ?"));
    request.finish();
    m.start_event(Kind::Server, "GET /other").finish();
    assert!(m.shutdown(FLUSH));
    let e = capture.expect("GET /orders").one();
    assert_eq!(
        e.attribute("db.n_plus_one.count").and_then(|v| v.as_i64()),
        Some(6)
    );
    assert_eq!(
        e.attribute("db.n_plus_one.statement")
            .and_then(|v| v.as_str()),
        Some("SELECT ?")
    );
    assert_eq!(
        e.attributes
            .iter()
            .filter(|kv| kv.key == "db.n_plus_one.count")
            .count(),
        1
    );
    capture.expect("SELECT ?").count(1);
    capture.expect("GET /other").none();
}

#[test]
fn dropping_finishes_and_discard_does_not() {
    let capture = Capture::new();
    let m = monitor_with(&capture);
    fn early_return(m: &Monitor) -> Result<(), &'static str> {
        let _e = m.start_event(Kind::Custom, "dropped");
        Err("boom")?;
        Ok(())
    }
    let _ = early_return(&m);
    m.start_event(Kind::Custom, "discarded").discard();
    let mut failed = m.start_event(Kind::Custom, "failed");
    failed.record_std_error(&std::io::Error::other("disk full"), true);
    failed.finish();
    assert!(m.flush(FLUSH));
    capture.expect("dropped").one();
    capture.expect("discarded").none();
    let f = capture.expect("failed").status(Status::Error).one();
    assert_eq!(f.errors[0].message, "disk full");
    assert_eq!(f.errors[0].error_type, "std::io::error::Error");
    assert!(f.errors[0].backtrace.is_some());
}

#[test]
fn enable_disable_toggle() {
    let capture = Capture::new();
    let m = monitor_with(&capture);
    m.disable();
    let e = m.start_event(Kind::Custom, "while-off");
    assert!(!e.is_recording());
    e.finish();
    assert!(m.toggle());
    m.start_event(Kind::Custom, "while-on").finish();
    // Through the live config too.
    m.update_config("core", &json!({ "enabled": false }))
        .unwrap();
    assert!(!m.is_enabled());
    m.enable();
    assert!(m.flush(FLUSH));
    capture.expect("while-off").none();
    capture.expect("while-on").one();
}

#[test]
fn live_config_update_rejection_and_deferred_plugin_config() {
    #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Web {
        capture_headers: bool,
    }
    impl rustmon_core::PluginConfig for Web {
        const NAME: &'static str = "web";
    }

    let m = Monitor::builder("svc")
        .plugin_config("web", json!({ "capture_headers": true }))
        .build()
        .unwrap();
    let err = m
        .update_config("core", &json!({ "sample_rate": 2.0 }))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config for `core`: field `sample_rate`: must be between 0 and 1, got 2"
    );
    let err = m
        .update_config("core", &json!({ "batch_size": "x" }))
        .unwrap_err();
    assert!(err.to_string().contains("field `batch_size`"), "{err}");
    assert_eq!(m.core_config().get().sample_rate, 1.0);
    m.update_config("core", &json!({ "sample_rate": 0.5 }))
        .unwrap();
    assert_eq!(m.core_config().get().sample_rate, 0.5);

    // Set before the plugin registered: applied when it does.
    let web = m.config::<Web>();
    assert!(web.get().capture_headers);
    m.update_config("web", &json!({ "capture_headers": false }))
        .unwrap();
    assert!(!web.get().capture_headers);
    assert!(
        m.config_snapshot()
            .iter()
            .any(|(n, v, _)| n == "web" && *v == 2)
    );
    m.shutdown(FLUSH);
}

#[test]
fn a_bad_core_config_fails_the_build() {
    let err = Monitor::builder("svc")
        .core_config(CoreConfig {
            batch_size: 0,
            ..CoreConfig::default()
        })
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config for `core`: field `batch_size`: must be at least 1, got 0"
    );
}

/// A listener that blocks until the gate opens, so the queue fills up.
struct Gate(Arc<AtomicBool>);
impl Listener for Gate {
    fn on_events(&mut self, _: &Batch<'_>) {
        while !self.0.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let open = Arc::new(AtomicBool::new(false));
    let m = Monitor::builder("svc")
        .core_config(CoreConfig {
            queue_capacity: 64,
            batch_size: 1,
            ..CoreConfig::default()
        })
        .listener(Gate(open.clone()))
        .build()
        .unwrap();
    // The first event blocks the pipeline inside the listener; the rest fill the queue.
    m.start_event(Kind::Custom, "first").finish();
    while m.stats().recorded == 0 {
        std::thread::yield_now();
    }
    for _ in 0..10_000 {
        m.start_event(Kind::Custom, "flood").finish();
    }
    // Reaching this line at all shows the producer never blocked on the stuck pipeline.
    let stats = m.stats();
    assert!(stats.dropped > 9_000, "{stats:?}");
    assert_eq!(stats.dropped + stats.queue_depth, 10_000, "{stats:?}");
    open.store(true, Ordering::SeqCst);
    assert!(m.shutdown(FLUSH));
    let stats = m.stats();
    assert_eq!(stats.recorded + stats.dropped, 10_001, "{stats:?}");
}

#[test]
fn a_panicking_listener_does_not_stop_the_others() {
    let capture = Capture::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let m = Monitor::builder("svc")
        .listener(listener_fn(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            panic!("listener bug");
        }))
        .listener(capture.listener())
        .build()
        .unwrap();
    m.start_event(Kind::Custom, "one").finish();
    assert!(m.flush(FLUSH));
    m.start_event(Kind::Custom, "two").finish();
    assert!(m.flush(FLUSH));
    capture.expect("one").one();
    capture.expect("two").one();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(m.stats().listener_panics, 2);
}

#[test]
fn plugin_listener_hears_only_its_plugin() {
    let all = Capture::new();
    let redis = Capture::new();
    let m = Monitor::builder("svc")
        .listener(all.listener())
        .listener(PluginListener::new("redis", redis.listener()))
        .build()
        .unwrap();
    m.start_event(Kind::Cache, "GET")
        .with_plugin("redis")
        .finish();
    m.start_event(Kind::Custom, "mine").finish();
    assert!(m.flush(FLUSH));
    all.wait_for(2);
    redis.expect("GET").one();
    assert_eq!(redis.events().len(), 1);
}

#[test]
fn shutdown_flushes_and_is_idempotent() {
    let capture = Capture::new();
    let m = monitor_with(&capture);
    for i in 0..1000 {
        m.start_event(Kind::Custom, if i % 2 == 0 { "even" } else { "odd" })
            .finish();
    }
    assert!(m.shutdown(FLUSH));
    assert_eq!(capture.events().len(), 1000);
    assert!(m.shutdown(FLUSH));
    // After shutdown nothing is recorded.
    let e = m.start_event(Kind::Custom, "late");
    assert!(!e.is_recording());
    // RED metrics were exported on shutdown: one histogram per name, counting every event.
    let red = capture.wait_for_metric(rustmon_core::RED_METRIC);
    let total: u64 = red
        .iter()
        .map(|m| match &m.data {
            MetricData::Histogram(h) => h.count,
            _ => 0,
        })
        .sum();
    assert_eq!(total, 1000);
    assert!(
        capture
            .metrics()
            .iter()
            .any(|m| m.name == "rustmon.agent.events.recorded")
    );
}

#[test]
fn sampling_keeps_errors_and_slow_events_but_metrics_count_all() {
    let capture = Capture::new();
    let m = Monitor::builder("svc")
        .core_config(CoreConfig {
            sample_rate: 0.0,
            // Far above what a preempted fast event takes on a loaded machine.
            slow_threshold_ms: 200,
            ..CoreConfig::default()
        })
        .listener(capture.listener())
        .build()
        .unwrap();
    for _ in 0..100 {
        m.start_event(Kind::Custom, "fast").finish();
    }
    let mut err = m.start_event(Kind::Custom, "broken");
    err.record_error("Timeout", "upstream timed out");
    err.finish();
    let slow = m.start_event(Kind::Custom, "slow");
    std::thread::sleep(Duration::from_millis(210));
    slow.finish();
    assert!(m.shutdown(FLUSH));
    capture.expect("fast").none();
    capture.expect("broken").one();
    capture.expect("slow").one();
    let stats = m.stats();
    assert_eq!(stats.sampled_out, 100);
    assert_eq!(stats.recorded, 102);
    let fast_count: u64 = capture
        .metrics()
        .iter()
        .filter(|m| {
            m.attributes
                .iter()
                .any(|kv| kv.value.as_str() == Some("fast"))
        })
        .map(|m| match &m.data {
            MetricData::Histogram(h) => h.count,
            _ => 0,
        })
        .sum();
    assert_eq!(fast_count, 100);
}

#[test]
fn names_beyond_the_cap_go_to_the_overflow_bucket() {
    let capture = Capture::new();
    let m = Monitor::builder("svc")
        .core_config(CoreConfig {
            max_names: 3,
            ..CoreConfig::default()
        })
        .listener(capture.listener())
        .build()
        .unwrap();
    for i in 0..10 {
        m.start_event(Kind::Custom, format!("name-{i}")).finish();
    }
    assert!(m.shutdown(FLUSH));
    let names: std::collections::BTreeSet<String> = capture
        .metrics()
        .iter()
        .filter(|m| m.name == rustmon_core::RED_METRIC)
        .filter_map(|m| {
            m.attributes
                .iter()
                .find(|kv| kv.key == "span.name")
                .map(|kv| kv.value.to_string())
        })
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(names.contains(rustmon_core::OVERFLOW_NAME));
}

#[test]
fn limits_truncate_names_and_attributes() {
    let capture = Capture::new();
    let m = Monitor::builder("svc")
        .core_config(CoreConfig {
            max_name_len: 8,
            max_attribute_len: 10,
            max_attributes: 2,
            ..CoreConfig::default()
        })
        .listener(capture.listener())
        .build()
        .unwrap();
    m.start_event(Kind::Custom, "a-very-long-name")
        .with("a", "0123456789abcdef")
        .with("b", 1_i64)
        .with("c", 2_i64)
        .finish();
    assert!(m.flush(FLUSH));
    let e = capture.expect("a-very-l").one();
    assert_eq!(e.attributes.len(), 2);
    assert_eq!(e.attribute("a").unwrap().as_str(), Some("0123456789"));
}

#[test]
fn global_monitor_and_segments() {
    let capture = Capture::new();
    let m = Monitor::builder("svc")
        .core_config(CoreConfig {
            metrics_interval_ms: 100,
            ..CoreConfig::default()
        })
        .listener(capture.listener())
        .build()
        .unwrap();
    assert!(!Event::start(Kind::Custom, "before-install").is_recording());
    m.install_global();
    {
        let root = Event::start(Kind::Custom, "global-root");
        let _g = root.enter();
        for _ in 0..3 {
            let _s = rustmon_core::segment!("hot-loop");
        }
        Event::start(Kind::Custom, "global-child").finish();
    }
    let seg = rustmon_core::segment::snapshot();
    let hot = seg.iter().find(|s| s.name == "hot-loop").unwrap();
    assert_eq!(hot.count, 3);
    assert!(hot.file.ends_with("monitor.rs"));
    assert!(m.flush(FLUSH));
    let root = capture.expect("global-root").one();
    capture.expect("global-child").child_of(&root).one();
    let counts = capture.wait_for_metric("rustmon.segment.count");
    assert!(counts.iter().any(|c| {
        c.attributes
            .iter()
            .any(|kv| kv.value.as_str() == Some("hot-loop"))
    }));
    m.disable();
    assert!(!Event::start(Kind::Custom, "after-disable").is_recording());
    m.shutdown(FLUSH);
}

#[test]
fn suppression_makes_events_on_this_thread_inert() {
    let capture = Capture::new();
    let m = monitor_with(&capture);
    {
        let _quiet = context::suppress();
        assert!(context::is_suppressed());
        assert!(!m.start_event(Kind::Client, "exporter-call").is_recording());
        assert!(
            !m.start_event_with_parent(Kind::Client, "exporter-call", None)
                .is_recording()
        );
        // Other threads are unaffected.
        let m2 = m.clone();
        std::thread::spawn(move || m2.start_event(Kind::Custom, "other-thread").finish())
            .join()
            .unwrap();
    }
    assert!(!context::is_suppressed());
    m.start_event(Kind::Custom, "after").finish();
    assert!(m.flush(FLUSH));
    capture.expect("exporter-call").none();
    capture.expect("other-thread").one();
    capture.expect("after").one();
}
