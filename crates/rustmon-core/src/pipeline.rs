//! The pipeline thread: drains the queue, computes RED metrics from every event, samples, batches
//! and fans out to listeners.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::attr::KeyValue;
use crate::clock;
use crate::config::ConfigHandle;
use crate::event::{EventRecord, Kind, Status};
use crate::listener::{Batch, Listener, ListenerContext};
use crate::metrics::{ExpHistogram, Metric, MetricData, Number};
use crate::monitor::{self, CoreConfig, Queues, Resource};
use crate::pool;
use crate::segment;

pub(crate) enum Command {
    AddListener(Box<dyn Listener>, &'static str),
    Flush(SyncSender<()>, Duration),
    Shutdown(SyncSender<()>, Duration),
}

/// The longest and shortest naps between drains.
const MAX_NAP: Duration = Duration::from_millis(10);
const MIN_NAP: Duration = Duration::from_millis(1);

/// The RED metric: a delta exponential histogram of durations (seconds) per operation, computed
/// from every event before sampling, with attributes `span.kind` (`server`, `client`, `producer`,
/// `internal`), `span.name`, `otel.status_code` (`ERROR`, `OK`, `UNSET`) and the finer
/// `rustmon.event.kind`. The collector takes it as the exact rollup of those operations.
pub const RED_METRIC: &str = "rustmon.operation.duration";

/// The name under which events beyond the `max_names` cap are counted.
pub const OVERFLOW_NAME: &str = "_other";

struct Slot {
    listener: Box<dyn Listener>,
    name: &'static str,
}

struct Pipeline {
    queues: Arc<Queues>,
    core: ConfigHandle<CoreConfig>,
    resource: Arc<Resource>,
    listeners: Vec<Slot>,
    // Boxed on purpose: records travel as pointers and are recycled into the pool.
    #[allow(clippy::vec_box)]
    batch: Vec<Box<EventRecord>>,
    batch_started: Option<Instant>,
    red: Red,
    last_metrics: Instant,
    last_metrics_unix: u64,
    started_unix: u64,
}

pub(crate) fn spawn(
    rx: Receiver<Command>,
    queues: Arc<Queues>,
    core: ConfigHandle<CoreConfig>,
    resource: Arc<Resource>,
    listeners: Vec<(Box<dyn Listener>, &'static str)>,
) -> std::io::Result<JoinHandle<()>> {
    let now = clock::now_unix_nanos();
    let mut p = Pipeline {
        queues,
        core,
        resource,
        listeners: Vec::new(),
        batch: Vec::new(),
        batch_started: None,
        red: Red::default(),
        last_metrics: Instant::now(),
        last_metrics_unix: now,
        started_unix: now,
    };
    std::thread::Builder::new()
        .name("rustmon-pipeline".into())
        .spawn(move || {
            for (l, name) in listeners {
                p.add_listener(l, name);
            }
            p.run(rx)
        })
}

impl Pipeline {
    fn run(&mut self, rx: Receiver<Command>) {
        // The nap between drains adapts to the rate events arrive at: long enough that each
        // wake-up takes a good batch (few wake-ups, which matter when the application has few
        // cores), short enough that a shard's queue stays under a quarter full; when a drain
        // finds a shard's worth of events waiting, there is no nap at all.
        let shard = self.queues.shards[0].queue.capacity();
        let (target, busy) = (shard / 4, shard / 2);
        let mut taken = 0;
        let mut nap = MAX_NAP;
        let mut last_drain = Instant::now();
        loop {
            let command = if taken >= busy {
                rx.try_recv().map_err(|e| match e {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            } else {
                let core = self.core.get();
                let wait = nap.min(self.time_to_next_deadline(&core));
                drop(core);
                rx.recv_timeout(wait)
            };
            match command {
                Ok(Command::AddListener(l, name)) => self.add_listener(l, name),
                Ok(Command::Flush(ack, timeout)) => {
                    self.drain_all();
                    self.deliver();
                    self.export_metrics(false);
                    for slot in &mut self.listeners {
                        guarded(&self.queues, slot.name, || slot.listener.flush(timeout));
                    }
                    let _ = ack.send(());
                }
                Ok(Command::Shutdown(ack, timeout)) => {
                    self.finish(timeout);
                    let _ = ack.send(());
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.finish(Duration::from_secs(5));
                    return;
                }
            }
            taken = self.drain();
            let since = last_drain.elapsed();
            last_drain = Instant::now();
            nap = match taken {
                0 => MAX_NAP,
                n => (since * target as u32 / n as u32).clamp(MIN_NAP, MAX_NAP),
            };
            let core = self.core.get();
            let batch_due = self
                .batch_started
                .is_some_and(|t| t.elapsed() >= Duration::from_millis(core.batch_interval_ms));
            let metrics_due =
                self.last_metrics.elapsed() >= Duration::from_millis(core.metrics_interval_ms);
            drop(core);
            if batch_due {
                self.deliver();
            }
            if metrics_due {
                self.export_metrics(true);
            } else {
                self.deliver_plugin_metrics();
            }
        }
    }

    fn time_to_next_deadline(&self, core: &CoreConfig) -> Duration {
        let batch = self.batch_started.map_or(Duration::MAX, |t| {
            Duration::from_millis(core.batch_interval_ms).saturating_sub(t.elapsed())
        });
        let metrics = Duration::from_millis(core.metrics_interval_ms)
            .saturating_sub(self.last_metrics.elapsed());
        batch.min(metrics)
    }

    fn finish(&mut self, timeout: Duration) {
        self.drain_all();
        self.deliver();
        self.export_metrics(true);
        for slot in &mut self.listeners {
            guarded(&self.queues, slot.name, || slot.listener.shutdown(timeout));
        }
    }

    fn add_listener(&mut self, mut listener: Box<dyn Listener>, name: &'static str) {
        let ctx = ListenerContext {
            resource: self.resource.clone(),
            queues: self.queues.clone(),
        };
        guarded(&self.queues, name, || listener.start(&ctx));
        self.listeners.push(Slot { listener, name });
    }

    /// Drains until the queue is empty, in a bounded number of rounds so that producers that
    /// never pause cannot hold a flush forever (what they add meanwhile goes in the next batch).
    fn drain_all(&mut self) {
        for _ in 0..16 {
            if self.drain() == 0 {
                break;
            }
        }
    }

    /// Moves what the shards hold into the batch; returns how many events were taken.
    fn drain(&mut self) -> usize {
        let core = self.core.get();
        let slow = core.slow_threshold_ms.saturating_mul(1_000_000);
        let mut taken = 0;
        for i in 0..self.queues.shards.len() {
            // Take at most what was there when we looked, so a busy producer cannot starve us.
            let n = self.queues.shards[i].queue.len();
            for _ in 0..n {
                let Some(mut record) = self.queues.shards[i].queue.pop() else {
                    break;
                };
                taken += 1;
                self.queues
                    .counters
                    .recorded
                    .fetch_add(1, Ordering::Relaxed);
                self.queues.annotations.apply(&mut record);
                apply_limits(&mut record, &core);
                self.red.record(&record, core.max_names);
                if record.sampled
                    || record.keep
                    || record.status == Status::Error
                    || record.duration_nanos >= slow
                {
                    if self.batch.is_empty() {
                        self.batch_started = Some(Instant::now());
                    }
                    self.batch.push(record);
                    if self.batch.len() >= core.batch_size {
                        self.deliver();
                    }
                } else {
                    self.queues
                        .counters
                        .sampled_out
                        .fetch_add(1, Ordering::Relaxed);
                    pool::recycle(record);
                }
            }
        }
        taken
    }

    fn deliver(&mut self) {
        self.batch_started = None;
        if self.batch.is_empty() {
            return;
        }
        let batch = Batch::new(&self.resource, &self.batch);
        for slot in &mut self.listeners {
            guarded(&self.queues, slot.name, || slot.listener.on_events(&batch));
        }
        for record in self.batch.drain(..) {
            pool::recycle(record);
        }
    }

    fn deliver_plugin_metrics(&mut self) {
        let pending = std::mem::take(
            &mut *self
                .queues
                .metrics
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        self.send_metrics(&pending);
    }

    fn export_metrics(&mut self, interval_ended: bool) {
        let now = clock::now_unix_nanos();
        let mut metrics = std::mem::take(
            &mut *self
                .queues
                .metrics
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        if interval_ended {
            self.red.export(self.last_metrics_unix, now, &mut metrics);
            if monitor::global().is_some_and(|g| Arc::ptr_eq(g.queues(), &self.queues)) {
                segment::export(self.started_unix, self.last_metrics_unix, now, &mut metrics);
            }
            self_metrics(&self.queues, self.started_unix, now, &mut metrics);
            self.last_metrics = Instant::now();
            self.last_metrics_unix = now;
        }
        self.send_metrics(&metrics);
    }

    fn send_metrics(&mut self, metrics: &[Metric]) {
        if metrics.is_empty() {
            return;
        }
        for slot in &mut self.listeners {
            guarded(&self.queues, slot.name, || {
                slot.listener.on_metrics(metrics, &self.resource)
            });
        }
    }
}

/// Runs a listener callback, catching and counting a panic so that other listeners keep working.
fn guarded(queues: &Queues, name: &str, f: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(f)) {
        let n = queues
            .counters
            .listener_panics
            .fetch_add(1, Ordering::Relaxed);
        if n < 10 {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            eprintln!(
                "rustmon: listener `{name}` panicked ({msg}); it stays registered, the others are unaffected"
            );
        }
    }
}

fn apply_limits(record: &mut EventRecord, core: &CoreConfig) {
    if record.name.len() > core.max_name_len {
        let mut v = crate::attr::Value::Str(std::mem::take(&mut record.name));
        v.truncate(core.max_name_len);
        if let crate::attr::Value::Str(s) = v {
            record.name = s;
        }
    }
    record.attributes.truncate(core.max_attributes);
    for kv in &mut record.attributes {
        kv.value.truncate(core.max_attribute_len);
    }
}

/// A fast, non-cryptographic hasher (FxHash) for the pipeline's own maps, whose keys are event
/// names chosen by the monitored program, not by remote input.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(word));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type Fx = std::hash::BuildHasherDefault<FxHasher>;
type ByName = HashMap<Cow<'static, str>, ExpHistogram, Fx>;

/// RED metrics: a latency histogram (with its count) per kind, status and name.
#[derive(Default)]
struct Red {
    series: HashMap<(Kind, Status), ByName, Fx>,
    /// Names admitted so far, for the `max_names` cap.
    names: HashSet<(Kind, Cow<'static, str>), Fx>,
}

impl Red {
    fn record(&mut self, e: &EventRecord, max_names: usize) {
        let seconds = e.duration_nanos as f64 / 1e9;
        let by_name = self.series.entry((e.kind, e.status)).or_default();
        if let Some(h) = by_name.get_mut(&*e.name) {
            h.record(seconds);
            return;
        }
        let key = (e.kind, e.name.clone());
        let name = if self.names.contains(&key) {
            key.1
        } else if self.names.len() < max_names {
            self.names.insert(key.clone());
            key.1
        } else {
            Cow::Borrowed(OVERFLOW_NAME)
        };
        by_name.entry(name).or_default().record(seconds);
    }

    fn export(&mut self, start: u64, now: u64, out: &mut Vec<Metric>) {
        for ((kind, status), by_name) in &mut self.series {
            for (name, histogram) in by_name.drain() {
                let status_code = match status {
                    Status::Error => "ERROR",
                    Status::Ok => "OK",
                    Status::Unset => "UNSET",
                };
                out.push(Metric {
                    name: Cow::Borrowed(RED_METRIC),
                    description: Cow::Borrowed("Duration of monitored operations, before sampling"),
                    unit: Cow::Borrowed("s"),
                    attributes: vec![
                        KeyValue::new("span.kind", kind.span_kind()),
                        KeyValue::new("span.name", name),
                        KeyValue::new("otel.status_code", status_code),
                        KeyValue::new("rustmon.event.kind", kind.as_str()),
                    ],
                    start_unix_nanos: start,
                    time_unix_nanos: now,
                    data: MetricData::Histogram(histogram),
                });
            }
        }
    }
}

fn self_metrics(queues: &Queues, start: u64, now: u64, out: &mut Vec<Metric>) {
    let s = queues.stats();
    let counter = |name: &'static str, description: &'static str, value: u64| Metric {
        name: Cow::Borrowed(name),
        description: Cow::Borrowed(description),
        unit: Cow::Borrowed("{event}"),
        attributes: Vec::new(),
        start_unix_nanos: start,
        time_unix_nanos: now,
        data: MetricData::Sum {
            value: Number::I64(value as i64),
            monotonic: true,
            delta: false,
        },
    };
    out.push(counter(
        "rustmon.agent.events.recorded",
        "Events taken from the queue",
        s.recorded,
    ));
    out.push(counter(
        "rustmon.agent.events.dropped",
        "Events dropped: queue full or shut down",
        s.dropped,
    ));
    out.push(counter(
        "rustmon.agent.events.sampled_out",
        "Events left out of traces by sampling",
        s.sampled_out,
    ));
    out.push(counter(
        "rustmon.agent.export.items",
        "Items delivered by exporters",
        s.exported,
    ));
    out.push(counter(
        "rustmon.agent.export.errors",
        "Items exporters failed to deliver",
        s.export_errors,
    ));
    out.push(counter(
        "rustmon.agent.listener.panics",
        "Panics caught in listeners",
        s.listener_panics,
    ));
    out.push(Metric {
        name: Cow::Borrowed("rustmon.agent.queue.depth"),
        description: Cow::Borrowed("Events waiting in the queue"),
        unit: Cow::Borrowed("{event}"),
        attributes: Vec::new(),
        start_unix_nanos: start,
        time_unix_nanos: now,
        data: MetricData::Gauge(Number::I64(s.queue_depth as i64)),
    });
}
