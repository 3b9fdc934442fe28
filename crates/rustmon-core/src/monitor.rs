//! [`Monitor`]: the application scope, the seed's Gomon — collects events and distributes them.

use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use serde::{Deserialize, Serialize};

use crate::annotate::Annotations;
use crate::attr::{Key, KeyValue, Value};
use crate::config::{ConfigError, ConfigHandle, ConfigRegistry, FieldError, PluginConfig};
use crate::context::SpanContext;
use crate::event::{Event, EventRecord, Kind, Sink};
use crate::ids::{SpanId, TraceId};
use crate::listener::Listener;
use crate::metrics::Metric;
use crate::pipeline::{self, Command};
use crate::plugin::{Plugin, PluginContext, PluginError, Running, RunningPlugin};

/// The monitored application: what every exported event and metric is about.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// `service.name`.
    pub service_name: String,
    /// `service.version`.
    pub service_version: Option<String>,
    /// `deployment.environment.name`.
    pub environment: Option<String>,
    /// `host.name`.
    pub host: String,
    /// `service.instance.id`: unique per process run (the seed's execution id).
    pub instance_id: String,
    /// `rustmon.app.id`: groups services into one application.
    pub app_id: Option<String>,
    /// Further resource attributes (e.g. from `OTEL_RESOURCE_ATTRIBUTES`).
    pub attributes: Vec<KeyValue>,
}

impl Resource {
    /// A resource for `service_name` with this host and a fresh instance id.
    pub fn new(service_name: impl Into<String>) -> Self {
        Resource {
            service_name: service_name.into(),
            service_version: None,
            environment: None,
            host: hostname(),
            instance_id: TraceId::random().to_string(),
            app_id: None,
            attributes: Vec::new(),
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// rustmon's own configuration, the plugin `core`. All fields are live except `queue_capacity`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    /// Monitoring on or off.
    pub enabled: bool,
    /// Head sampling: the share of traces kept, 0..=1. Metrics always count every event.
    pub sample_rate: f64,
    /// Events at least this slow (ms) are kept even when their trace was sampled out.
    pub slow_threshold_ms: u64,
    /// Events the queue holds before new ones are dropped (read at start).
    pub queue_capacity: usize,
    /// Events per batch handed to listeners.
    pub batch_size: usize,
    /// The longest an event waits before its batch is handed over (ms).
    pub batch_interval_ms: u64,
    /// How often metrics (RED, segments, self-metrics) are exported (ms).
    pub metrics_interval_ms: u64,
    /// Longer event names are truncated (bytes).
    pub max_name_len: usize,
    /// Longer string attribute values are truncated (bytes).
    pub max_attribute_len: usize,
    /// More attributes per event are dropped.
    pub max_attributes: usize,
    /// Distinct event names per kind kept in metrics; later ones are counted under `_other`.
    pub max_names: usize,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            enabled: true,
            sample_rate: 1.0,
            slow_threshold_ms: 1000,
            queue_capacity: 16_384,
            batch_size: 512,
            batch_interval_ms: 1000,
            metrics_interval_ms: 10_000,
            max_name_len: 128,
            max_attribute_len: 1024,
            max_attributes: 64,
            max_names: 1000,
        }
    }
}

impl PluginConfig for CoreConfig {
    const NAME: &'static str = "core";

    fn validate(&self) -> Result<(), FieldError> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(FieldError::new(
                "sample_rate",
                format!("must be between 0 and 1, got {}", self.sample_rate),
            ));
        }
        let at_least = |field: &str, value: u64, min: u64| {
            if value < min {
                Err(FieldError::new(
                    field,
                    format!("must be at least {min}, got {value}"),
                ))
            } else {
                Ok(())
            }
        };
        at_least("queue_capacity", self.queue_capacity as u64, 64)?;
        at_least("batch_size", self.batch_size as u64, 1)?;
        at_least("batch_interval_ms", self.batch_interval_ms, 1)?;
        at_least("metrics_interval_ms", self.metrics_interval_ms, 100)?;
        at_least("max_name_len", self.max_name_len as u64, 8)?;
        at_least("max_attribute_len", self.max_attribute_len as u64, 8)?;
        at_least("max_names", self.max_names as u64, 1)?;
        Ok(())
    }
}

/// Counters of what the monitor did, for self-monitoring.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events taken from the queue by the pipeline.
    pub recorded: u64,
    /// Events dropped because the queue was full or the monitor had shut down.
    pub dropped: u64,
    /// Events left out of traces by sampling (still counted in metrics).
    pub sampled_out: u64,
    /// Items exporters reported as delivered.
    pub exported: u64,
    /// Items exporters reported as lost.
    pub export_errors: u64,
    /// Events waiting in the queue now.
    pub queue_depth: u64,
    /// Panics caught in listeners.
    pub listener_panics: u64,
    /// Metric points dropped because their buffer was full.
    pub metrics_dropped: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) recorded: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) sampled_out: AtomicU64,
    pub(crate) exported: AtomicU64,
    pub(crate) export_errors: AtomicU64,
    pub(crate) listener_panics: AtomicU64,
    pub(crate) metrics_dropped: AtomicU64,
}

/// One producer-side slice of the queue. Threads are spread over shards so that two threads
/// recording at once do not contend on the same cache lines.
#[derive(Debug)]
pub(crate) struct Shard {
    pub(crate) queue: ArrayQueue<Box<EventRecord>>,
    dropped: AtomicU64,
}

/// What the monitor shares with its pipeline thread.
#[derive(Debug)]
pub(crate) struct Queues {
    pub(crate) shards: Box<[crossbeam_utils::CachePadded<Shard>]>,
    accepting: AtomicBool,
    pub(crate) counters: Counters,
    pub(crate) metrics: Mutex<Vec<Metric>>,
    pub(crate) annotations: Annotations,
}

const MAX_PENDING_METRICS: usize = 100_000;

impl Queues {
    fn new(capacity: usize) -> Queues {
        let shards = std::thread::available_parallelism()
            .map_or(4, |n| n.get())
            .clamp(2, 32)
            .next_power_of_two()
            * 2;
        let per_shard = (capacity / shards).max(32);
        Queues {
            shards: (0..shards)
                .map(|_| {
                    crossbeam_utils::CachePadded::new(Shard {
                        queue: ArrayQueue::new(per_shard),
                        dropped: AtomicU64::new(0),
                    })
                })
                .collect(),
            accepting: AtomicBool::new(true),
            counters: Counters::default(),
            metrics: Mutex::new(Vec::new()),
            annotations: Annotations::default(),
        }
    }

    #[inline]
    fn push(&self, record: Box<EventRecord>) {
        let shard = &self.shards[shard_index() % self.shards.len()];
        if !self.accepting.load(Ordering::Relaxed) {
            shard.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Err(record) = shard.queue.push(record) {
            shard.dropped.fetch_add(1, Ordering::Relaxed);
            crate::pool::recycle(record);
        }
    }

    pub(crate) fn depth(&self) -> u64 {
        self.shards.iter().map(|s| s.queue.len() as u64).sum()
    }

    pub(crate) fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            recorded: c.recorded.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed)
                + self
                    .shards
                    .iter()
                    .map(|s| s.dropped.load(Ordering::Relaxed))
                    .sum::<u64>(),
            sampled_out: c.sampled_out.load(Ordering::Relaxed),
            exported: c.exported.load(Ordering::Relaxed),
            export_errors: c.export_errors.load(Ordering::Relaxed),
            queue_depth: self.depth(),
            listener_panics: c.listener_panics.load(Ordering::Relaxed),
            metrics_dropped: c.metrics_dropped.load(Ordering::Relaxed),
        }
    }
}

#[inline]
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        let v = i.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Ordering::Relaxed);
        i.set(v);
        v
    })
}

/// Monitor-wide switches read on the hot path.
#[derive(Debug)]
struct Tuning {
    enabled: AtomicBool,
    /// A root event is sampled when the low 64 bits of its trace id are below this.
    sample_threshold: AtomicU64,
}

impl Tuning {
    fn apply(&self, config: &CoreConfig) {
        self.sample_threshold
            .store(sample_threshold(config.sample_rate), Ordering::Relaxed);
    }
}

fn sample_threshold(rate: f64) -> u64 {
    if rate >= 1.0 {
        u64::MAX
    } else {
        (rate.max(0.0) * u64::MAX as f64) as u64
    }
}

struct Shared {
    tuning: Arc<Tuning>,
    queues: Arc<Queues>,
    resource: Arc<Resource>,
    configs: ConfigRegistry,
    core: ConfigHandle<CoreConfig>,
    control: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    plugins: Mutex<Vec<Box<dyn RunningPlugin>>>,
    shut_down: AtomicBool,
}

/// The application scope (the seed's Gomon): it collects finished events into a bounded queue, and
/// a pipeline thread aggregates metrics, samples and hands batches to listeners.
///
/// Cloning is cheap (a reference count). Create one with [`Monitor::builder`]; the application
/// makes it global with [`Monitor::install_global`] (libraries never do).
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use rustmon_core::{listener_fn, Kind, Monitor};
/// let monitor = Monitor::builder("checkout")
///     .version("1.4.2")
///     .listener(listener_fn(|batch| for e in batch.iter() { println!("{} {:?}", e.name, e.duration()) }))
///     .build()
///     .unwrap();
/// monitor.start_event(Kind::Custom, "nightly-report").finish();
/// monitor.shutdown(Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("service", &self.shared.resource.service_name)
            .field("enabled", &self.is_enabled())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Monitor`].
#[must_use]
pub struct MonitorBuilder {
    resource: Resource,
    core: CoreConfig,
    enabled: bool,
    listeners: Vec<(Box<dyn Listener>, &'static str)>,
    configs: Vec<(String, serde_json::Value)>,
}

impl fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorBuilder")
            .field("resource", &self.resource)
            .field("core", &self.core)
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

/// Why a monitor could not be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A configuration value was invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pipeline thread could not be spawned.
    #[error("cannot start the pipeline thread: {0}")]
    Thread(#[from] std::io::Error),
}

impl MonitorBuilder {
    /// `service.version`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.resource.service_version = Some(version.into());
        self
    }

    /// `deployment.environment.name`, e.g. `production`.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.resource.environment = Some(environment.into());
        self
    }

    /// `host.name` (default: this machine's host name).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.resource.host = host.into();
        self
    }

    /// `service.instance.id` (default: random per process run).
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.resource.instance_id = id.into();
        self
    }

    /// An application id grouping several services.
    pub fn app_id(mut self, id: impl Into<String>) -> Self {
        self.resource.app_id = Some(id.into());
        self
    }

    /// A further resource attribute.
    pub fn resource_attribute(mut self, kv: KeyValue) -> Self {
        self.resource.attributes.push(kv);
        self
    }

    /// The whole resource, replacing what was set so far.
    pub fn resource(mut self, resource: Resource) -> Self {
        self.resource = resource;
        self
    }

    /// rustmon's own configuration (validated in [`build`](Self::build)).
    pub fn core_config(mut self, config: CoreConfig) -> Self {
        self.core = config;
        self
    }

    /// Start with monitoring disabled (default: enabled).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Adds a listener.
    pub fn listener<L: Listener>(mut self, listener: L) -> Self {
        self.listeners
            .push((Box::new(listener), std::any::type_name::<L>()));
        self
    }

    /// A configuration patch for plugin `name`, applied when the plugin registers (validated
    /// then). `core` patches are validated in [`build`](Self::build).
    pub fn plugin_config(mut self, name: impl Into<String>, patch: serde_json::Value) -> Self {
        self.configs.push((name.into(), patch));
        self
    }

    /// Starts the pipeline thread and returns the monitor.
    pub fn build(self) -> Result<Monitor, MonitorError> {
        let configs = ConfigRegistry::default();
        let (core, _) = configs.register::<CoreConfig>();
        core.set(self.core)?;
        for (name, patch) in &self.configs {
            configs.update(name, patch)?;
        }
        let mut core_now = (**core.get()).clone();
        core_now.enabled &= self.enabled;
        core.set(core_now.clone())?;

        let tuning = Arc::new(Tuning {
            enabled: AtomicBool::new(core_now.enabled),
            sample_threshold: AtomicU64::new(sample_threshold(core_now.sample_rate)),
        });
        let queues = Arc::new(Queues::new(core_now.queue_capacity));
        let resource = Arc::new(self.resource);
        let (tx, rx) = mpsc::channel();
        let thread = pipeline::spawn(
            rx,
            queues.clone(),
            core.clone(),
            resource.clone(),
            self.listeners,
        )?;
        {
            let tuning = tuning.clone();
            core.on_change(move |c| {
                tuning.apply(c);
                set_enabled_flag(&tuning, c.enabled);
            });
        }
        Ok(Monitor {
            shared: Arc::new(Shared {
                tuning,
                queues,
                resource,
                configs,
                core,
                control: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
                plugins: Mutex::new(Vec::new()),
                shut_down: AtomicBool::new(false),
            }),
        })
    }
}

impl Monitor {
    /// A builder for the service `service_name`.
    pub fn builder(service_name: impl Into<String>) -> MonitorBuilder {
        MonitorBuilder {
            resource: Resource::new(service_name),
            core: CoreConfig::default(),
            enabled: true,
            listeners: Vec::new(),
            configs: Vec::new(),
        }
    }

    /// The application this monitor describes.
    pub fn resource(&self) -> &Resource {
        &self.shared.resource
    }

    /// Starts an event recorded by this monitor, as a child of the current context.
    #[inline]
    pub fn start_event(&self, kind: Kind, name: impl Into<Cow<'static, str>>) -> Event {
        if !self.is_enabled() {
            return Event::inert();
        }
        match crate::context::parent_for_new_event() {
            Some(parent) => {
                Event::begin(self, Sink::Monitor(self.clone()), kind, name.into(), parent)
            }
            None => Event::inert(),
        }
    }

    /// Starts an event recorded by this monitor with an explicit parent (`None`: a new trace).
    #[inline]
    pub fn start_event_with_parent(
        &self,
        kind: Kind,
        name: impl Into<Cow<'static, str>>,
        parent: Option<SpanContext>,
    ) -> Event {
        if !self.is_enabled() || crate::context::is_suppressed() {
            return Event::inert();
        }
        Event::begin(self, Sink::Monitor(self.clone()), kind, name.into(), parent)
    }

    /// The head-sampling decision for a new trace.
    #[inline]
    pub(crate) fn sample(&self, trace_id: TraceId) -> bool {
        let threshold = self.shared.tuning.sample_threshold.load(Ordering::Relaxed);
        threshold == u64::MAX || (trace_id.0 as u64) < threshold
    }

    #[inline]
    pub(crate) fn enqueue(&self, record: Box<EventRecord>) {
        self.shared.queues.push(record);
    }

    /// Adds an attribute to a running event of this monitor known only by its id, typically
    /// the parent of the current event: the attribute is applied when that event finishes, and
    /// the event is then kept whatever the sampling decision. A later value for the same key
    /// replaces the earlier one.
    ///
    /// Up to 4096 events can have annotations waiting; returns `false` (and drops the
    /// annotation) beyond that. Do not annotate a remote parent: it never finishes here.
    ///
    /// # Examples
    /// ```
    /// # use rustmon_core::{Event, Kind, Monitor};
    /// let monitor = Monitor::builder("svc").build().unwrap();
    /// let request = monitor.start_event(Kind::Server, "GET /orders");
    /// let parent = request.context().unwrap();
    /// {
    ///     let _q = request.new_child(Kind::Database, "SELECT ?");
    ///     monitor.annotate(parent.span_id, "db.n_plus_one.count", 12_i64);
    /// }
    /// request.finish(); // recorded with db.n_plus_one.count = 12
    /// # monitor.shutdown(std::time::Duration::from_secs(1));
    /// ```
    pub fn annotate(&self, span: SpanId, key: impl Into<Key>, value: impl Into<Value>) -> bool {
        self.shared
            .queues
            .annotations
            .add(span, KeyValue::new(key, value))
    }

    /// Whether monitoring is on.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.shared.tuning.enabled.load(Ordering::Relaxed)
    }

    /// Turns monitoring on or off at run time; returns the previous state. While off, starting an
    /// event costs one relaxed atomic load and records nothing.
    pub fn set_enabled(&self, enabled: bool) -> bool {
        let was = self.is_enabled();
        if self.shared.shut_down.load(Ordering::Acquire) {
            return was;
        }
        let mut c = (**self.shared.core.get()).clone();
        c.enabled = enabled;
        // Only `enabled` changed, which is always valid.
        let _ = self.shared.core.set(c);
        was
    }

    /// Turns monitoring on.
    pub fn enable(&self) {
        self.set_enabled(true);
    }

    /// Turns monitoring off.
    pub fn disable(&self) {
        self.set_enabled(false);
    }

    /// Flips monitoring on/off; returns the new state.
    pub fn toggle(&self) -> bool {
        let now = !self.is_enabled();
        self.set_enabled(now);
        now
    }

    /// rustmon's own live configuration.
    pub fn core_config(&self) -> &ConfigHandle<CoreConfig> {
        &self.shared.core
    }

    /// The live configuration of plugin `C`, registering it on first use (a configuration set
    /// earlier under its name applies now; if invalid, the defaults stay and the error is
    /// reported on stderr).
    pub fn config<C: PluginConfig>(&self) -> ConfigHandle<C> {
        let (handle, error) = self.shared.configs.register::<C>();
        if let Some(e) = error {
            eprintln!("rustmon: deferred configuration rejected: {e}");
        }
        handle
    }

    /// Applies a JSON patch to plugin `name`'s configuration (or keeps it until that plugin
    /// registers). An invalid patch is rejected whole, naming the field; the old configuration
    /// stays in force.
    pub fn update_config(&self, name: &str, patch: &serde_json::Value) -> Result<(), ConfigError> {
        self.shared.configs.update(name, patch)
    }

    /// Applies patches to several plugins all or nothing (e.g. a version of the central
    /// configuration): if any is rejected, none is applied and the error names the field.
    pub fn update_configs(
        &self,
        patches: &[(String, serde_json::Value)],
    ) -> Result<(), ConfigError> {
        self.shared.configs.update_all(patches)
    }

    /// Every plugin's configuration: `(name, version, value)`.
    pub fn config_snapshot(&self) -> Vec<(String, u64, serde_json::Value)> {
        self.shared.configs.snapshot()
    }

    /// Registers and starts a plugin (the seed's Register); its configuration is registered too.
    pub fn register_plugin<P: Plugin>(
        &self,
        mut plugin: P,
    ) -> Result<ConfigHandle<P::Config>, PluginError> {
        if self.shared.shut_down.load(Ordering::Acquire) {
            return Err(PluginError::ShutDown);
        }
        let mut plugins = self
            .shared
            .plugins
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if plugins.iter().any(|p| p.name() == P::Config::NAME) {
            return Err(PluginError::AlreadyRegistered(P::Config::NAME));
        }
        let config = self.config::<P::Config>();
        plugin.start(PluginContext {
            monitor: self.clone(),
            config: config.clone(),
        })?;
        plugins.push(Box::new(Running(plugin)));
        Ok(config)
    }

    /// Adds a listener; it receives batches from the next delivery on.
    pub fn add_listener<L: Listener>(&self, listener: L) {
        self.send(Command::AddListener(
            Box::new(listener),
            std::any::type_name::<L>(),
        ));
    }

    /// Hands metric points to the listeners (plugins use this for runtime metrics). Never blocks;
    /// past a bound, points are dropped and counted.
    pub fn record_metrics(&self, metrics: impl IntoIterator<Item = Metric>) {
        let mut pending = self
            .shared
            .queues
            .metrics
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for m in metrics {
            if pending.len() >= MAX_PENDING_METRICS {
                self.shared
                    .queues
                    .counters
                    .metrics_dropped
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                pending.push(m);
            }
        }
    }

    /// What the monitor has done so far.
    pub fn stats(&self) -> Stats {
        self.shared.queues.stats()
    }

    /// Hands everything recorded so far to the listeners and asks them to deliver it; waits at
    /// most `timeout`. Returns whether it completed in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Command::Flush(tx, timeout)) && rx.recv_timeout(timeout).is_ok()
    }

    /// Stops plugins, flushes, and stops the pipeline, waiting at most `timeout`. Idempotent: later
    /// calls return `true` at once. Events finished afterwards are dropped and counted. Returns
    /// whether everything was delivered in time.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        if self.shared.shut_down.swap(true, Ordering::AcqRel) {
            return true;
        }
        let plugins = std::mem::take(
            &mut *self
                .shared
                .plugins
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for mut p in plugins {
            p.stop();
        }
        set_enabled_flag(&self.shared.tuning, false);
        self.shared.queues.accepting.store(false, Ordering::Release);
        let (tx, rx) = mpsc::sync_channel(1);
        let sent = self.send(Command::Shutdown(tx, timeout));
        let done = sent && rx.recv_timeout(timeout).is_ok();
        let thread = self
            .shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(thread);
        if done {
            if let Some(t) = self
                .shared
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                let _ = t.join();
            }
        }
        done
    }

    fn send(&self, cmd: Command) -> bool {
        self.shared
            .control
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|tx| tx.send(cmd).is_ok())
    }

    /// Makes this monitor the process-wide one that [`Event::start`] and integrations record to.
    /// Only the application should do this. Installing again replaces the previous monitor.
    pub fn install_global(&self) {
        let ptr = Box::into_raw(Box::new(self.clone()));
        // The previous global is leaked on purpose: events in flight may still hold a reference
        // to it. Re-installing is rare (tests, reconfiguration).
        GLOBAL.store(ptr, Ordering::Release);
        GLOBAL_ENABLED.store(self.is_enabled(), Ordering::Relaxed);
    }

    pub(crate) fn queues(&self) -> &Arc<Queues> {
        &self.shared.queues
    }
}

static GLOBAL: AtomicPtr<Monitor> = AtomicPtr::new(std::ptr::null_mut());
static GLOBAL_ENABLED: AtomicBool = AtomicBool::new(false);

/// The global monitor, if the application installed one.
#[inline]
pub fn global() -> Option<&'static Monitor> {
    let ptr = GLOBAL.load(Ordering::Acquire);
    // SAFETY: the pointer is either null or came from `Box::into_raw` in `install_global` and is
    // never freed, so it stays valid for the rest of the process.
    unsafe { ptr.as_ref() }
}

/// Whether a global monitor is installed and enabled: one relaxed atomic load.
#[inline]
pub(crate) fn global_enabled() -> bool {
    GLOBAL_ENABLED.load(Ordering::Relaxed)
}

fn set_enabled_flag(tuning: &Arc<Tuning>, enabled: bool) {
    tuning.enabled.store(enabled, Ordering::Relaxed);
    if global().is_some_and(|g| Arc::ptr_eq(&g.shared.tuning, tuning)) {
        GLOBAL_ENABLED.store(enabled, Ordering::Relaxed);
    }
}
