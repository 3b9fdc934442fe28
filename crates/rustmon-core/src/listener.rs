//! Listeners: what receives finished events and metrics, on the pipeline thread.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::event::EventRecord;
use crate::metrics::Metric;
use crate::monitor::{Queues, Resource};

/// Receives batches of finished events (and metric points) on the pipeline thread.
///
/// Listeners run on rustmon's own thread, never on the application's. A listener should not block
/// for long: an exporter hands batches to its own worker. A panic inside a listener is caught,
/// counted in [`Stats::listener_panics`](crate::Stats::listener_panics) and reported on stderr;
/// the listener keeps receiving, and the others are unaffected.
///
/// # Examples
/// ```
/// use rustmon_core::{Batch, Listener};
/// struct CountErrors(usize);
/// impl Listener for CountErrors {
///     fn on_events(&mut self, batch: &Batch<'_>) {
///         self.0 += batch.iter().filter(|e| !e.errors.is_empty()).count();
///     }
/// }
/// ```
pub trait Listener: Send + 'static {
    /// Called once, on the pipeline thread, before the first batch.
    fn start(&mut self, ctx: &ListenerContext) {
        let _ = ctx;
    }

    /// A batch of finished (and kept) events.
    fn on_events(&mut self, batch: &Batch<'_>);

    /// Metric points: RED metrics per operation, segments, self-metrics, plugin metrics.
    fn on_metrics(&mut self, metrics: &[Metric], resource: &Resource) {
        let _ = (metrics, resource);
    }

    /// Deliver everything received so far, waiting at most `timeout`.
    fn flush(&mut self, timeout: Duration) {
        let _ = timeout;
    }

    /// The monitor is shutting down: flush within `timeout` and release resources.
    fn shutdown(&mut self, timeout: Duration) {
        self.flush(timeout);
    }
}

/// A listener from a closure over each batch.
///
/// # Examples
/// ```
/// use rustmon_core::{listener_fn, Monitor};
/// let monitor = Monitor::builder("svc")
///     .listener(listener_fn(|batch| for e in batch.iter() { println!("{}", e.name) }))
///     .build()
///     .unwrap();
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
pub fn listener_fn<F>(f: F) -> FnListener<F>
where
    F: FnMut(&Batch<'_>) + Send + 'static,
{
    FnListener(f)
}

/// See [`listener_fn`].
#[derive(Debug)]
pub struct FnListener<F>(F);

impl<F> Listener for FnListener<F>
where
    F: FnMut(&Batch<'_>) + Send + 'static,
{
    fn on_events(&mut self, batch: &Batch<'_>) {
        (self.0)(batch)
    }
}

/// A listener that hears only the events of one plugin (the seed's PluginListener).
///
/// # Examples
/// ```
/// use rustmon_core::{listener_fn, Event, Kind, Monitor, PluginListener};
/// let monitor = Monitor::builder("svc")
///     .listener(PluginListener::new("redis", listener_fn(|batch| {
///         assert!(batch.iter().all(|e| e.plugin == "redis"));
///     })))
///     .build()
///     .unwrap();
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Debug)]
pub struct PluginListener<L> {
    plugin: &'static str,
    inner: L,
}

impl<L: Listener> PluginListener<L> {
    /// Wraps `inner` so that it receives only events whose `plugin` is `plugin`.
    pub fn new(plugin: &'static str, inner: L) -> Self {
        PluginListener { plugin, inner }
    }
}

impl<L: Listener> Listener for PluginListener<L> {
    fn start(&mut self, ctx: &ListenerContext) {
        self.inner.start(ctx)
    }
    fn on_events(&mut self, batch: &Batch<'_>) {
        let filtered = Batch {
            plugin: Some(self.plugin),
            ..*batch
        };
        if filtered.iter().next().is_some() {
            self.inner.on_events(&filtered);
        }
    }
    fn flush(&mut self, timeout: Duration) {
        self.inner.flush(timeout)
    }
    fn shutdown(&mut self, timeout: Duration) {
        self.inner.shutdown(timeout)
    }
}

/// A batch of finished events, as a listener sees it.
#[derive(Copy, Clone, Debug)]
pub struct Batch<'a> {
    pub(crate) resource: &'a Resource,
    pub(crate) events: &'a [Box<EventRecord>],
    pub(crate) plugin: Option<&'static str>,
}

impl<'a> Batch<'a> {
    /// A batch over `events` (for tests of listeners).
    pub fn new(resource: &'a Resource, events: &'a [Box<EventRecord>]) -> Self {
        Batch {
            resource,
            events,
            plugin: None,
        }
    }

    /// The application the events come from.
    pub fn resource(&self) -> &'a Resource {
        self.resource
    }

    /// The events.
    pub fn iter(&self) -> impl Iterator<Item = &'a EventRecord> + 'a {
        let plugin = self.plugin;
        self.events
            .iter()
            .map(|e| &**e)
            .filter(move |e| plugin.is_none_or(|p| e.plugin == p))
    }

    /// How many events the batch holds.
    pub fn len(&self) -> usize {
        match self.plugin {
            None => self.events.len(),
            Some(_) => self.iter().count(),
        }
    }

    /// Whether the batch holds no events.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
}

/// What a listener gets when it starts.
#[derive(Clone, Debug)]
pub struct ListenerContext {
    pub(crate) resource: Arc<Resource>,
    pub(crate) queues: Arc<Queues>,
}

impl ListenerContext {
    /// The application the events come from.
    pub fn resource(&self) -> &Arc<Resource> {
        &self.resource
    }

    /// Where an exporter reports what it sent and what it failed to send.
    pub fn reporter(&self) -> ExportReporter {
        ExportReporter {
            queues: self.queues.clone(),
        }
    }
}

/// Counts exported and failed items into the monitor's [`Stats`](crate::Stats).
#[derive(Clone, Debug)]
pub struct ExportReporter {
    queues: Arc<Queues>,
}

impl ExportReporter {
    /// `n` items were delivered.
    pub fn exported(&self, n: u64) {
        self.queues
            .counters
            .exported
            .fetch_add(n, Ordering::Relaxed);
    }

    /// `n` items could not be delivered and were dropped.
    pub fn failed(&self, n: u64) {
        self.queues
            .counters
            .export_errors
            .fetch_add(n, Ordering::Relaxed);
    }
}
