//! The `tracing` bridge against a real monitor and a capture listener.

use std::time::Duration;

use rustmon_core::context::{self, FutureExt as _};
use rustmon_core::{EventRecord, Kind, Monitor, Status, Value};
use rustmon_test::Capture;
use rustmon_tracing::{PLUGIN, RustmonLayer};
use tracing::instrument::WithSubscriber as _;
use tracing::{Dispatch, Instrument as _};
use tracing_subscriber::layer::SubscriberExt as _;

struct Setup {
    monitor: Monitor,
    capture: Capture,
    dispatch: Dispatch,
}

fn setup() -> Setup {
    let capture = Capture::new();
    let monitor = Monitor::builder("tracing-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    let dispatch = Dispatch::new(
        tracing_subscriber::registry().with(RustmonLayer::with_monitor(monitor.clone())),
    );
    Setup {
        monitor,
        capture,
        dispatch,
    }
}

impl Setup {
    /// Runs `f` with this setup's subscriber as the thread's default.
    fn run<R>(&self, f: impl FnOnce() -> R) -> R {
        tracing::dispatcher::with_default(&self.dispatch, f)
    }

    fn flush(&self) {
        assert!(self.monitor.flush(Duration::from_secs(5)));
    }
}

fn attr<'a>(e: &'a EventRecord, key: &str) -> &'a Value {
    e.attribute(key)
        .unwrap_or_else(|| panic!("{} has no attribute {key}", e.name))
}

#[test]
fn nested_spans_link_to_their_parents_in_one_trace() {
    let s = setup();
    s.run(|| {
        let outer = tracing::info_span!("outer");
        let _o = outer.enter();
        let middle = tracing::info_span!("middle");
        middle.in_scope(|| {
            tracing::debug_span!("inner").in_scope(|| {
                // An explicit parent wins over the context.
                let _explicit = tracing::info_span!(parent: &outer, "explicit");
                // `parent: None` starts a new trace.
                let _root = tracing::info_span!(parent: None, "detached");
            });
        });
    });
    s.flush();
    let c = &s.capture;
    let outer = c.expect("outer").root().kind(Kind::Custom).one();
    assert_eq!(outer.plugin, PLUGIN);
    let middle = c.expect("middle").child_of(&outer).one();
    c.expect("inner").child_of(&middle).one();
    c.expect("explicit").child_of(&outer).one();
    let detached = c.expect("detached").root().one();
    assert_ne!(detached.trace_id, outer.trace_id);
    assert_eq!(c.events().len(), 5, "{}", c.summary());
    // The inner span closed first, the outer one last, and lasted longest.
    let inner = c.expect("inner").one();
    assert!(outer.duration() >= middle.duration() && middle.duration() >= inner.duration());
}

#[test]
fn a_rustmon_event_inside_a_span_is_its_child() {
    let s = setup();
    s.run(|| {
        let span = tracing::info_span!("handler");
        span.in_scope(|| {
            let query = s.monitor.start_event(Kind::Database, "SELECT users");
            query.finish();
        });
        assert_eq!(
            context::current(),
            None,
            "exiting restores the empty context"
        );
        // A span entered again later still parents new events.
        span.in_scope(|| s.monitor.start_event(Kind::Cache, "GET user").finish());
    });
    s.flush();
    let handler = s.capture.expect("handler").root().one();
    s.capture
        .expect("SELECT users")
        .kind(Kind::Database)
        .child_of(&handler)
        .one();
    s.capture.expect("GET user").child_of(&handler).one();
}

#[test]
fn a_span_inside_a_rustmon_event_is_its_child_and_parents_further_events() {
    let s = setup();
    s.run(|| {
        let request = s.monitor.start_event(Kind::Server, "GET /users");
        let _g = request.enter();
        let span = tracing::info_span!("load");
        span.in_scope(|| {
            s.monitor.start_event(Kind::Database, "SELECT").finish();
            // A span created inside a rustmon event that is inside a span: the innermost wins.
            let nested = s.monitor.start_event(Kind::Custom, "step");
            let _n = nested.enter();
            let _leaf = tracing::info_span!("leaf");
        });
        assert_eq!(context::current(), request.context());
    });
    s.flush();
    let c = &s.capture;
    let request = c.expect("GET /users").root().one();
    let load = c.expect("load").child_of(&request).one();
    c.expect("SELECT").child_of(&load).one();
    let step = c.expect("step").child_of(&load).one();
    c.expect("leaf").child_of(&step).one();
}

#[test]
fn fields_become_typed_attributes() {
    let s = setup();
    s.run(|| {
        let span = tracing::info_span!(
            "typed",
            flag = true,
            neg = -3_i64,
            count = 7_u64,
            ratio = 1.5_f64,
            text = "hello",
            debug = ?vec![1, 2],
            display = %"shown",
            big = u128::MAX,
            later = tracing::field::Empty,
        );
        span.record("later", 42_i64);
    });
    s.flush();
    let e = s.capture.expect("typed").one();
    assert_eq!(attr(&e, "flag"), &Value::Bool(true));
    assert_eq!(attr(&e, "neg"), &Value::I64(-3));
    assert_eq!(attr(&e, "count"), &Value::U64(7));
    assert_eq!(attr(&e, "ratio"), &Value::F64(1.5));
    assert_eq!(attr(&e, "text").as_str(), Some("hello"));
    assert_eq!(attr(&e, "debug").as_str(), Some("[1, 2]"));
    assert_eq!(attr(&e, "display").as_str(), Some("shown"));
    assert_eq!(
        attr(&e, "big").as_str(),
        Some(u128::MAX.to_string().as_str())
    );
    assert_eq!(attr(&e, "later"), &Value::I64(42));
}

#[test]
fn events_become_span_events_and_errors_set_the_status() {
    let s = setup();
    s.run(|| {
        let ok = tracing::info_span!("quiet");
        ok.in_scope(|| tracing::info!(rows = 3_u64, "loaded"));
        let failing = tracing::info_span!("failing");
        failing.in_scope(|| {
            tracing::warn!("slow disk");
            tracing::error!(error.type = "io", error = %"disk full", "write failed");
        });
        let io = tracing::info_span!("std-error");
        io.in_scope(|| {
            let err = std::io::Error::other("broken pipe");
            tracing::error!(error = &err as &(dyn std::error::Error + 'static));
        });
        // Outside any span: ignored.
        tracing::error!("orphan");
    });
    s.flush();
    let c = &s.capture;
    let quiet = c.expect("quiet").status(Status::Unset).one();
    assert!(quiet.errors.is_empty());
    assert_eq!(quiet.span_events.len(), 1);
    let loaded = &quiet.span_events[0];
    assert_eq!(loaded.name, "loaded");
    let get = |key: &str| {
        loaded
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(get("rows"), Some(Value::U64(3)));
    assert_eq!(get("level"), Some(Value::from("INFO")));
    assert_eq!(get("target"), Some(Value::from("bridge")));

    let failing = c.expect("failing").status(Status::Error).one();
    assert_eq!(failing.span_events.len(), 2);
    assert_eq!(failing.span_events[1].name, "write failed");
    assert_eq!(failing.errors.len(), 1);
    assert_eq!(failing.errors[0].error_type, "io");
    assert_eq!(failing.errors[0].message, "write failed: disk full");

    let io = c.expect("std-error").status(Status::Error).one();
    assert_eq!(
        io.errors[0].error_type, "bridge",
        "the target without error.type"
    );
    assert_eq!(io.errors[0].message, "broken pipe");
    assert_eq!(c.events().len(), 3, "{}", c.summary());
}

#[test]
fn otel_fields_set_kind_name_and_status() {
    let s = setup();
    s.run(|| {
        let _client = tracing::info_span!(
            "request",
            otel.kind = "client",
            otel.name = "GET /inventory/{sku}",
            otel.status_code = "OK",
            http.request.method = "GET",
        );
        let _producer = tracing::info_span!("publish", otel.kind = "producer");
        let _server = tracing::info_span!("handle", otel.kind = ?"Server");
        let late = tracing::info_span!(
            "late",
            otel.name = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        late.record("otel.name", "renamed");
        late.record("otel.status_code", "error");
    });
    s.flush();
    let c = &s.capture;
    c.expect("GET /inventory/{sku}")
        .kind(Kind::Client)
        .status(Status::Ok)
        .attr("http.request.method", "GET")
        .no_attr("otel.kind")
        .no_attr("otel.name")
        .no_attr("otel.status_code")
        .one();
    c.expect("publish").kind(Kind::Messaging).one();
    c.expect("handle").kind(Kind::Server).one();
    c.expect("renamed").status(Status::Error).one();
    c.expect("late").none();
}

#[test]
fn exits_out_of_order_and_reentry_restore_contexts() {
    let s = setup();
    let (a_ctx, b_ctx) = s.run(|| {
        let a = tracing::info_span!("a");
        let b = tracing::info_span!(parent: None, "b");
        let ea = a.enter();
        let a_ctx = context::current().expect("a is current");
        let eb = b.enter();
        let b_ctx = context::current().expect("b is current");
        drop(ea);
        assert_eq!(context::current(), Some(b_ctx), "b stays current");
        drop(eb);
        assert_eq!(context::current(), None, "a's previous context is restored");

        // The same span entered twice, nested.
        a.in_scope(|| {
            a.in_scope(|| assert_eq!(context::current(), Some(a_ctx)));
            assert_eq!(context::current(), Some(a_ctx));
        });
        assert_eq!(context::current(), None);
        (a_ctx, b_ctx)
    });
    s.flush();
    let a = s.capture.expect("a").one();
    assert_eq!(a.span_id, a_ctx.span_id);
    let b = s.capture.expect("b").root().one();
    assert_eq!(b.span_id, b_ctx.span_id);
}

#[test]
fn disabled_monitoring_records_nothing_and_leaves_the_context_alone() {
    let s = setup();
    s.monitor.disable();
    s.run(|| {
        let span = tracing::info_span!("off", x = 1);
        span.in_scope(|| {
            assert_eq!(context::current(), None);
            tracing::error!("ignored");
        });
    });
    s.monitor.enable();
    s.run(|| tracing::info_span!("on").in_scope(|| {}));
    s.flush();
    s.capture.expect("on").one();
    s.capture.expect("off").none();
    assert_eq!(s.capture.events().len(), 1);
}

#[test]
fn a_span_entered_while_enabled_restores_the_context_after_disabling() {
    let s = setup();
    s.run(|| {
        let span = tracing::info_span!("toggled");
        let entered = span.enter();
        assert!(context::current().is_some());
        s.monitor.disable();
        drop(entered);
        assert_eq!(context::current(), None);
        s.monitor.enable();
    });
    s.flush();
    // Closed while enabled again: recorded, because it was started while enabled.
    s.capture.expect("toggled").one();
}

#[test]
fn instrumented_futures_keep_their_parent_across_awaits_and_threads() {
    let s = setup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let monitor = s.monitor.clone();
    rt.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|i| {
                let monitor = monitor.clone();
                tokio::spawn(
                    async move {
                        let job = tracing::info_span!("job", job.id = i);
                        async {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                            monitor.start_event(Kind::Database, "query").finish();
                            tokio::task::yield_now().await;
                            tracing::info_span!("step").in_scope(|| {});
                            tracing::info!("done");
                        }
                        .instrument(job)
                        .await;
                        assert_eq!(context::current(), None, "no context leaks out");
                    }
                    .with_subscriber(s.dispatch.clone()),
                )
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    s.flush();
    let c = &s.capture;
    let jobs = c.expect("job").root().count(4);
    for job in &jobs {
        assert_eq!(job.span_events.len(), 1);
        c.expect("query").child_of(job).one();
        c.expect("step").child_of(job).one();
    }
}

#[test]
fn spans_inside_a_future_carrying_a_rustmon_context_are_its_children() {
    let s = setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let request = s.monitor.start_event(Kind::Server, "POST /orders");
    let ctx = request.context();
    rt.block_on(
        async {
            tracing::info_span!("validate").in_scope(|| {});
            tokio::time::sleep(Duration::from_millis(1)).await;
            let save = tracing::info_span!("save");
            async {
                tokio::task::yield_now().await;
                s.monitor
                    .start_event(Kind::Database, "INSERT orders")
                    .finish();
            }
            .instrument(save)
            .await;
        }
        .with_context(ctx)
        .with_subscriber(s.dispatch.clone()),
    );
    request.finish();
    s.flush();
    let c = &s.capture;
    let request = c.expect("POST /orders").root().one();
    c.expect("validate").child_of(&request).one();
    let save = c.expect("save").child_of(&request).one();
    c.expect("INSERT orders").child_of(&save).one();
}

#[test]
fn a_per_layer_filter_skips_spans_and_parents_skip_over_them() {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::filter::LevelFilter;

    let capture = Capture::new();
    let monitor = Monitor::builder("filter-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    let layer = RustmonLayer::with_monitor(monitor.clone()).with_filter(LevelFilter::INFO);
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("kept").in_scope(|| {
            tracing::debug_span!("chatty").in_scope(|| {
                monitor.start_event(Kind::Database, "query").finish();
                let _explicit = tracing::info_span!("nested");
            });
        });
    });
    assert!(monitor.flush(Duration::from_secs(5)));
    let kept = capture.expect("kept").root().one();
    capture.expect("chatty").none();
    capture.expect("query").child_of(&kept).one();
    capture.expect("nested").child_of(&kept).one();
}

#[test]
fn span_events_are_capped_per_span_and_the_rest_counted() {
    let capture = Capture::new();
    let monitor = Monitor::builder("cap-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    let layer = RustmonLayer::with_monitor(monitor.clone()).with_max_span_events(2);
    let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("chatty").in_scope(|| {
            for i in 0..5 {
                tracing::info!(i, "tick");
            }
            // Past the span-event cap, an error is still recorded as an error.
            tracing::error!("failed");
        });
    });
    assert!(monitor.flush(Duration::from_secs(5)));
    let e = capture.expect("chatty").status(Status::Error).one();
    assert_eq!(e.span_events.len(), 2);
    assert_eq!(e.errors.len(), 1);
    assert_eq!(
        e.attribute("rustmon.span_events.dropped"),
        Some(&Value::U64(4))
    );
}

#[test]
fn a_span_entered_on_several_threads_at_once_parents_events_on_each() {
    let s = setup();
    let span = s.run(|| tracing::info_span!("shared"));
    std::thread::scope(|scope| {
        for i in 0..3 {
            let (span, s) = (span.clone(), &s);
            scope.spawn(move || {
                s.run(|| {
                    let _e = span.enter();
                    let name = ["t0", "t1", "t2"][i];
                    s.monitor.start_event(Kind::Custom, name).finish();
                });
                assert_eq!(context::current(), None);
            });
        }
    });
    drop(span);
    s.flush();
    let shared = s.capture.expect("shared").one();
    for name in ["t0", "t1", "t2"] {
        s.capture.expect(name).child_of(&shared).one();
    }
}
