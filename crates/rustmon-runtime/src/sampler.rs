//! [`RuntimeSampler`]: one tick of runtime metrics, turned into OTLP-friendly [`Metric`]s.

use std::borrow::Cow;
use std::time::Instant;

use rustmon_core::KeyValue;
use rustmon_core::metrics::{Metric, MetricData, Number};

use crate::config::RuntimeConfig;
use crate::heap;
use crate::process::{ProcessSampler, thread_names};

pub(crate) trait ToNumber {
    fn to_number(self) -> Number;
}
impl ToNumber for i64 {
    fn to_number(self) -> Number {
        Number::I64(self)
    }
}
impl ToNumber for f64 {
    fn to_number(self) -> Number {
        Number::F64(self)
    }
}

pub(crate) fn gauge(
    name: &'static str,
    description: &'static str,
    unit: &'static str,
    attributes: Vec<KeyValue>,
    now_ns: u64,
    value: impl ToNumber,
) -> Metric {
    Metric {
        name: Cow::Borrowed(name),
        description: Cow::Borrowed(description),
        unit: Cow::Borrowed(unit),
        attributes,
        start_unix_nanos: now_ns,
        time_unix_nanos: now_ns,
        data: MetricData::Gauge(value.to_number()),
    }
}

/// A cumulative, monotonic sum since `start_ns`.
pub(crate) fn sum(
    name: &'static str,
    description: &'static str,
    unit: &'static str,
    attributes: Vec<KeyValue>,
    start_ns: u64,
    now_ns: u64,
    value: impl ToNumber,
) -> Metric {
    Metric {
        name: Cow::Borrowed(name),
        description: Cow::Borrowed(description),
        unit: Cow::Borrowed(unit),
        attributes,
        start_unix_nanos: start_ns,
        time_unix_nanos: now_ns,
        data: MetricData::Sum {
            value: value.to_number(),
            monotonic: true,
            delta: false,
        },
    }
}

/// Distinct thread names reported; the rest are counted under `_other`.
pub const MAX_THREAD_NAMES: usize = 64;

/// Takes one reading of every enabled part and returns it as metrics; keeps what it needs to turn
/// counters into rates and ratios between readings. The runtime plugin runs one on its thread;
/// use one directly to sample on your own schedule.
///
/// # Examples
/// ```
/// use rustmon_runtime::{RuntimeConfig, RuntimeSampler};
/// let mut sampler = RuntimeSampler::new();
/// let metrics = sampler.sample(&RuntimeConfig::default());
/// # #[cfg(target_os = "linux")]
/// assert!(metrics.iter().any(|m| m.name == "process.memory.usage"));
/// ```
#[derive(Debug)]
pub struct RuntimeSampler {
    process: ProcessSampler,
    process_failed: bool,
    start_ns: u64,
    last_cpu: Option<(Instant, f64)>,
    last_heap: Option<(Instant, u64)>,
    cpus: f64,
    #[cfg(feature = "tokio")]
    runtimes: Vec<crate::tokio_rt::Watched>,
    /// jemalloc's statistics: not looked up yet (`None`), looked up, or failed (`Some(None)`).
    #[cfg(feature = "jemalloc")]
    jemalloc: Option<Option<crate::jemalloc::JemallocReader>>,
}

impl Default for RuntimeSampler {
    fn default() -> Self {
        RuntimeSampler::new()
    }
}

impl RuntimeSampler {
    /// A sampler with no tokio runtime yet.
    pub fn new() -> Self {
        RuntimeSampler {
            process: ProcessSampler::new(),
            process_failed: false,
            start_ns: rustmon_core::now_unix_nanos(),
            last_cpu: None,
            last_heap: None,
            cpus: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
            #[cfg(feature = "tokio")]
            runtimes: Vec::new(),
            #[cfg(feature = "jemalloc")]
            jemalloc: None,
        }
    }

    /// Also reports the metrics of a tokio runtime, labelled `tokio.runtime = name`.
    ///
    /// # Examples
    /// ```
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let mut sampler = rustmon_runtime::RuntimeSampler::new();
    /// sampler.add_tokio_runtime("main", rt.handle().clone());
    /// let m = sampler.sample(&rustmon_runtime::RuntimeConfig::default());
    /// assert!(m.iter().any(|m| m.name == "tokio.tasks.alive"));
    /// ```
    #[cfg(feature = "tokio")]
    pub fn add_tokio_runtime(&mut self, name: impl Into<String>, handle: tokio::runtime::Handle) {
        self.runtimes
            .push(crate::tokio_rt::Watched::new(name.into(), handle));
    }

    /// How many tokio runtimes are watched.
    pub fn tokio_runtimes(&self) -> usize {
        #[cfg(feature = "tokio")]
        {
            self.runtimes.len()
        }
        #[cfg(not(feature = "tokio"))]
        {
            0
        }
    }

    /// What this sampler cannot report in this build and process, by metric name (or name
    /// pattern), each with the reason: tokio's unstable metrics without `--cfg tokio_unstable`,
    /// tokio metrics when no runtime is watched, heap metrics without the tracking allocator,
    /// jemalloc's statistics (feature `jemalloc`) when jemalloc is not the global allocator,
    /// process metrics off Linux.
    ///
    /// # Examples
    /// ```
    /// let sampler = rustmon_runtime::RuntimeSampler::new();
    /// // No tokio runtime added, no tracking allocator in this doctest:
    /// let missing = sampler.unavailable();
    /// assert!(missing.iter().any(|(what, _)| *what == "rustmon.heap.*"));
    /// ```
    pub fn unavailable(&self) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if !ProcessSampler::available() {
            out.push(("process.*", "not implemented on this platform"));
            out.push(("rustmon.thread.count", "not implemented on this platform"));
        }
        #[cfg(feature = "jemalloc")]
        let jemalloc = crate::jemalloc::is_global_allocator();
        #[cfg(not(feature = "jemalloc"))]
        let jemalloc = false;
        #[cfg(feature = "jemalloc")]
        if !jemalloc {
            out.push((
                "rustmon.heap.jemalloc.*",
                "jemalloc is not the global allocator",
            ));
        }
        if !heap::is_installed() {
            out.push((
                if jemalloc {
                    // jemalloc's own statistics are reported.
                    "rustmon.heap.{allocated,freed,allocations,deallocations,live,live_objects,allocation_rate}"
                } else {
                    "rustmon.heap.*"
                },
                "the TrackingAllocator is not the global allocator",
            ));
            out.push((
                "heap.profile",
                "the TrackingAllocator is not the global allocator",
            ));
        }
        if self.tokio_runtimes() == 0 {
            out.push((
                "tokio.*",
                "no tokio runtime watched (create the plugin inside one, or add one)",
            ));
        } else {
            #[cfg(feature = "tokio")]
            for name in crate::tokio_rt::UNAVAILABLE {
                out.push((name, "needs RUSTFLAGS=\"--cfg tokio_unstable\""));
            }
        }
        out
    }

    /// One reading of every part `config` enables.
    pub fn sample(&mut self, config: &RuntimeConfig) -> Vec<Metric> {
        let mut out = Vec::with_capacity(48);
        let now_ns = rustmon_core::now_unix_nanos();
        if config.process {
            self.sample_process(now_ns, &mut out);
        }
        if config.threads {
            if let Ok(names) = thread_names(MAX_THREAD_NAMES) {
                for (name, n) in names {
                    out.push(gauge(
                        "rustmon.thread.count",
                        "Threads of the process by name (names truncated to 15 bytes by the kernel)",
                        "{thread}",
                        vec![KeyValue::new("thread.name", name)],
                        now_ns,
                        n as i64,
                    ));
                }
            }
        }
        if config.heap && heap::is_installed() {
            self.sample_heap(now_ns, &mut out);
        }
        #[cfg(feature = "jemalloc")]
        if config.heap && crate::jemalloc::is_global_allocator() {
            self.sample_jemalloc(now_ns, &mut out);
        }
        #[cfg(feature = "tokio")]
        if config.tokio {
            for rt in &mut self.runtimes {
                rt.collect(self.start_ns, now_ns, &mut out);
            }
        }
        out
    }

    fn sample_process(&mut self, now_ns: u64, out: &mut Vec<Metric>) {
        let s = match self.process.sample() {
            Ok(s) => s,
            Err(e) => {
                if !self.process_failed {
                    self.process_failed = true;
                    eprintln!("rustmon-runtime: process metrics unavailable: {e}");
                }
                return;
            }
        };
        let start = if s.start_unix_nanos > 0 {
            s.start_unix_nanos
        } else {
            self.start_ns
        };
        for (mode, v) in [("user", s.cpu_user_s), ("system", s.cpu_system_s)] {
            out.push(sum(
                "process.cpu.time",
                "Total CPU seconds broken down by different CPU modes",
                "s",
                vec![KeyValue::new("cpu.mode", mode)],
                start,
                now_ns,
                v,
            ));
        }
        let cpu = s.cpu_user_s + s.cpu_system_s;
        let now = Instant::now();
        if let Some((at, last)) = self.last_cpu {
            let wall = now.duration_since(at).as_secs_f64();
            if wall > 0.0 {
                out.push(gauge(
                    "process.cpu.utilization",
                    "CPU time used since the last reading, divided by the elapsed time and the number of CPUs available",
                    "1",
                    Vec::new(),
                    now_ns,
                    // The kernel brings other threads' CPU time up to date at ticks and context
                    // switches, so a short window can be charged more than it lasted.
                    ((cpu - last) / (wall * self.cpus)).clamp(0.0, 1.0),
                ));
            }
        }
        self.last_cpu = Some((now, cpu));
        out.push(gauge(
            "process.memory.usage",
            "The amount of physical memory in use (resident set size)",
            "By",
            Vec::new(),
            now_ns,
            s.rss_bytes as i64,
        ));
        out.push(gauge(
            "process.memory.virtual",
            "The amount of committed virtual memory",
            "By",
            Vec::new(),
            now_ns,
            s.virtual_bytes as i64,
        ));
        out.push(gauge(
            "process.thread.count",
            "Process threads count",
            "{thread}",
            Vec::new(),
            now_ns,
            s.threads as i64,
        ));
        out.push(gauge(
            "process.open_file_descriptor.count",
            "Number of file descriptors in use by the process",
            "{file_descriptor}",
            Vec::new(),
            now_ns,
            s.open_fds as i64,
        ));
        for (kind, v) in [
            ("voluntary", s.voluntary_ctxt_switches),
            ("involuntary", s.involuntary_ctxt_switches),
        ] {
            out.push(sum(
                "process.context_switches",
                "Number of times the process has been context switched",
                "{context_switch}",
                vec![KeyValue::new("process.context_switch_type", kind)],
                start,
                now_ns,
                v as i64,
            ));
        }
        out.push(gauge(
            "process.uptime",
            "The time the process has been running",
            "s",
            Vec::new(),
            now_ns,
            now_ns.saturating_sub(start) as f64 / 1e9,
        ));
    }

    #[cfg(feature = "jemalloc")]
    fn sample_jemalloc(&mut self, now_ns: u64, out: &mut Vec<Metric>) {
        use crate::jemalloc::JemallocReader;
        let reader = self.jemalloc.get_or_insert_with(|| {
            JemallocReader::new()
                .inspect_err(|e| eprintln!("rustmon-runtime: jemalloc statistics unavailable: {e}"))
                .ok()
        });
        let Some(reader) = reader else {
            return;
        };
        let s = match reader.read() {
            Ok(s) => s,
            Err(e) => {
                // Reported once; jemalloc does not start failing a control it has answered.
                eprintln!("rustmon-runtime: jemalloc statistics unavailable: {e}");
                self.jemalloc = Some(None);
                return;
            }
        };
        let gauges: [(&'static str, &'static str, u64); 6] = [
            (
                "rustmon.heap.jemalloc.allocated",
                "Bytes allocated by the application, as jemalloc counts them (stats.allocated)",
                s.allocated,
            ),
            (
                "rustmon.heap.jemalloc.active",
                "Bytes in jemalloc's active pages (stats.active)",
                s.active,
            ),
            (
                "rustmon.heap.jemalloc.resident",
                "Bytes in physically resident pages mapped by jemalloc, metadata included (stats.resident)",
                s.resident,
            ),
            (
                "rustmon.heap.jemalloc.retained",
                "Bytes of virtual memory jemalloc keeps mapped instead of returning it to the system (stats.retained)",
                s.retained,
            ),
            (
                "rustmon.heap.jemalloc.mapped",
                "Bytes in active extents mapped by jemalloc (stats.mapped)",
                s.mapped,
            ),
            (
                "rustmon.heap.jemalloc.metadata",
                "Bytes of jemalloc's own metadata (stats.metadata)",
                s.metadata,
            ),
        ];
        for (name, description, v) in gauges {
            out.push(gauge(
                name,
                description,
                "By",
                Vec::new(),
                now_ns,
                i64::try_from(v).unwrap_or(i64::MAX),
            ));
        }
    }

    fn sample_heap(&mut self, now_ns: u64, out: &mut Vec<Metric>) {
        let h = heap::stats();
        let start = self.start_ns;
        let sums: [(&'static str, &'static str, &'static str, u64); 4] = [
            (
                "rustmon.heap.allocated",
                "Bytes allocated",
                "By",
                h.allocated_bytes,
            ),
            ("rustmon.heap.freed", "Bytes freed", "By", h.freed_bytes),
            (
                "rustmon.heap.allocations",
                "Allocations made",
                "{allocation}",
                h.allocated_objects,
            ),
            (
                "rustmon.heap.deallocations",
                "Allocations freed",
                "{allocation}",
                h.freed_objects,
            ),
        ];
        for (name, description, unit, v) in sums {
            out.push(sum(
                name,
                description,
                unit,
                Vec::new(),
                start,
                now_ns,
                v as i64,
            ));
        }
        out.push(gauge(
            "rustmon.heap.live",
            "Bytes allocated and not yet freed",
            "By",
            Vec::new(),
            now_ns,
            h.live_bytes() as i64,
        ));
        out.push(gauge(
            "rustmon.heap.live_objects",
            "Allocations not yet freed",
            "{allocation}",
            Vec::new(),
            now_ns,
            h.live_objects() as i64,
        ));
        let now = Instant::now();
        if let Some((at, last)) = self.last_heap {
            let secs = now.duration_since(at).as_secs_f64();
            if secs > 0.0 {
                out.push(gauge(
                    "rustmon.heap.allocation_rate",
                    "Bytes allocated per second since the last reading",
                    "By/s",
                    Vec::new(),
                    now_ns,
                    h.allocated_bytes.saturating_sub(last) as f64 / secs,
                ));
            }
        }
        self.last_heap = Some((now, h.allocated_bytes));
    }
}
