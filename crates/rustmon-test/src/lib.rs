//! Test kit for rustmon integrations: a [`Capture`] listener that keeps every event and metric,
//! waits for them, and checks expectations with readable failure messages.
//!
//! # Examples
//! ```
//! use rustmon_core::{Kind, Monitor};
//! use rustmon_test::Capture;
//!
//! let capture = Capture::new();
//! let monitor = Monitor::builder("svc").listener(capture.listener()).build().unwrap();
//! let parent = monitor.start_event(Kind::Server, "GET /orders/{id}");
//! let child = parent.new_child(Kind::Database, "SELECT orders");
//! child.finish();
//! parent.finish();
//! monitor.flush(std::time::Duration::from_secs(5));
//!
//! let server = capture.expect("GET /orders/{id}").kind(Kind::Server).one();
//! capture.expect("SELECT orders").kind(Kind::Database).child_of(&server).one();
//! ```

#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "otlp")]
pub mod otlp_receiver;
#[cfg(feature = "web")]
pub mod web;

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustmon_core::metrics::Metric;
use rustmon_core::{Batch, EventRecord, Kind, Listener, Resource, Status, Value};

/// Keeps everything a monitor delivers. Clones share the same store.
#[derive(Clone, Default, Debug)]
pub struct Capture {
    shared: Arc<Shared>,
}

#[derive(Default, Debug)]
struct Shared {
    store: Mutex<Store>,
    changed: Condvar,
}

#[derive(Default, Debug)]
struct Store {
    events: Vec<EventRecord>,
    metrics: Vec<Metric>,
    resource: Option<Resource>,
}

/// The [`Listener`] half of a [`Capture`].
#[derive(Debug)]
pub struct CaptureListener {
    shared: Arc<Shared>,
}

impl Listener for CaptureListener {
    fn on_events(&mut self, batch: &Batch<'_>) {
        let mut store = self.shared.lock();
        store.resource = Some(batch.resource().clone());
        store.events.extend(batch.iter().cloned());
        self.shared.changed.notify_all();
    }

    fn on_metrics(&mut self, metrics: &[Metric], resource: &Resource) {
        let mut store = self.shared.lock();
        store.resource = Some(resource.clone());
        store.metrics.extend_from_slice(metrics);
        self.shared.changed.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// How long waits last before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

impl Capture {
    /// An empty capture.
    pub fn new() -> Self {
        Capture::default()
    }

    /// A listener feeding this capture; add it to a monitor.
    pub fn listener(&self) -> CaptureListener {
        CaptureListener {
            shared: self.shared.clone(),
        }
    }

    /// Every event received so far.
    pub fn events(&self) -> Vec<EventRecord> {
        self.shared.lock().events.clone()
    }

    /// Every metric point received so far.
    pub fn metrics(&self) -> Vec<Metric> {
        self.shared.lock().metrics.clone()
    }

    /// The resource of the last batch.
    pub fn resource(&self) -> Option<Resource> {
        self.shared.lock().resource.clone()
    }

    /// Forgets everything received so far.
    pub fn clear(&self) {
        let mut s = self.shared.lock();
        s.events.clear();
        s.metrics.clear();
    }

    /// Waits until `pred` holds for the events received, at most [`WAIT`]; returns whether it did.
    pub fn wait_until(&self, pred: impl Fn(&[EventRecord]) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        let mut store = self.shared.lock();
        loop {
            if pred(&store.events) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            store = self
                .shared
                .changed
                .wait_timeout(store, left.min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until at least `n` events have arrived (panics after [`WAIT`]).
    pub fn wait_for(&self, n: usize) -> Vec<EventRecord> {
        assert!(
            self.wait_until(|e| e.len() >= n),
            "expected at least {n} events, got {}: {}",
            self.events().len(),
            self.summary()
        );
        self.events()
    }

    /// Waits until a metric named `name` has arrived (panics after [`WAIT`]); returns all points
    /// with that name.
    pub fn wait_for_metric(&self, name: &str) -> Vec<Metric> {
        let deadline = Instant::now() + WAIT;
        loop {
            let found: Vec<Metric> = self
                .metrics()
                .into_iter()
                .filter(|m| m.name == name)
                .collect();
            if !found.is_empty() {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "no metric named {name:?} arrived"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts an expectation on events named `name`.
    pub fn expect(&self, name: &str) -> Expect<'_> {
        Expect {
            capture: self,
            name: name.to_owned(),
            checks: Vec::new(),
        }
    }

    /// One line per event, for failure messages.
    pub fn summary(&self) -> String {
        self.events()
            .iter()
            .map(|e| {
                format!(
                    "\n  {} {:?} status={} span={} parent={:?} attrs={:?}",
                    e.kind,
                    e.name,
                    e.status.as_str(),
                    e.span_id,
                    e.parent_span_id,
                    e.attributes
                        .iter()
                        .map(|kv| format!("{}={}", kv.key, kv.value))
                        .collect::<Vec<_>>()
                )
            })
            .collect()
    }
}

type Check = Box<dyn Fn(&EventRecord) -> bool>;

/// Expectations on events with a given name; see [`Capture::expect`].
#[must_use = "an expectation checks nothing until `one`, `count` or `all` is called"]
pub struct Expect<'a> {
    capture: &'a Capture,
    name: String,
    checks: Vec<(String, Check)>,
}

impl Expect<'_> {
    fn check(mut self, what: String, f: impl Fn(&EventRecord) -> bool + 'static) -> Self {
        self.checks.push((what, Box::new(f)));
        self
    }

    /// Of this kind.
    pub fn kind(self, kind: Kind) -> Self {
        self.check(format!("kind={kind}"), move |e| e.kind == kind)
    }

    /// With this status.
    pub fn status(self, status: Status) -> Self {
        self.check(format!("status={}", status.as_str()), move |e| {
            e.status == status
        })
    }

    /// With attribute `key` equal to `value`.
    pub fn attr(self, key: &'static str, value: impl Into<Value>) -> Self {
        let value = value.into();
        let what = format!("{key}={value}");
        self.check(what, move |e| match (e.attribute(key), &value) {
            (Some(v), want) if v == want => true,
            // Integers compare by value whatever their signedness.
            (Some(v), want) => v.as_i64().is_some() && v.as_i64() == want.as_i64(),
            (None, _) => false,
        })
    }

    /// With attribute `key` set to anything.
    pub fn has_attr(self, key: &'static str) -> Self {
        self.check(format!("has {key}"), move |e| e.attribute(key).is_some())
    }

    /// Without attribute `key`.
    pub fn no_attr(self, key: &'static str) -> Self {
        self.check(format!("no {key}"), move |e| e.attribute(key).is_none())
    }

    /// A direct child of `parent`, in the same trace.
    pub fn child_of(self, parent: &EventRecord) -> Self {
        let (trace, span) = (parent.trace_id, parent.span_id);
        self.check(format!("child of {span}"), move |e| {
            e.trace_id == trace && e.parent_span_id == Some(span)
        })
    }

    /// A root (no parent).
    pub fn root(self) -> Self {
        self.check("root".into(), |e| e.parent_span_id.is_none())
    }

    /// Matching a custom predicate.
    pub fn matching(self, what: &str, f: impl Fn(&EventRecord) -> bool + 'static) -> Self {
        self.check(what.to_owned(), f)
    }

    /// Waits for exactly one matching event and returns it.
    #[track_caller]
    pub fn one(self) -> EventRecord {
        let mut found = self.count(1);
        found.remove(0)
    }

    /// Waits for `n` matching events (panics, listing what arrived, if more or fewer arrive).
    #[track_caller]
    pub fn count(self, n: usize) -> Vec<EventRecord> {
        let matches = |events: &[EventRecord]| {
            events
                .iter()
                .filter(|e| e.name == self.name && self.checks.iter().all(|(_, c)| c(e)))
                .cloned()
                .collect::<Vec<_>>()
        };
        self.capture.wait_until(|e| matches(e).len() >= n);
        let found = matches(&self.capture.events());
        assert_eq!(
            found.len(),
            n,
            "expected {n} event(s) named {:?} with [{}]; received:{}",
            self.name,
            self.checks
                .iter()
                .map(|(w, _)| w.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            self.capture.summary()
        );
        found
    }

    /// Asserts that no matching event has arrived (checks what is there now, without waiting).
    #[track_caller]
    pub fn none(self) {
        let n = self
            .capture
            .events()
            .iter()
            .filter(|e| e.name == self.name && self.checks.iter().all(|(_, c)| c(e)))
            .count();
        assert_eq!(
            n,
            0,
            "expected no event named {:?}; received:{}",
            self.name,
            self.capture.summary()
        );
    }
}
