//! Tokio runtime metrics: what tokio's stable `RuntimeMetrics` offers, and more with
//! `--cfg tokio_unstable`.

use std::time::Duration;

use rustmon_core::KeyValue;
use rustmon_core::metrics::Metric;
use tokio::runtime::Handle;

use crate::sampler::{gauge, sum};

/// Metrics this build cannot report (needs `RUSTFLAGS="--cfg tokio_unstable"`).
pub const UNAVAILABLE: &[&str] = if cfg!(tokio_unstable) {
    &[]
} else {
    &[
        "tokio.poll.duration",
        "tokio.worker.poll_count",
        "tokio.worker.steal_count",
        "tokio.worker.local_queue.depth",
        "tokio.worker.mean_poll_time",
        "tokio.tasks.spawned",
        "tokio.tasks.remote_scheduled",
        "tokio.tasks.budget_forced_yield",
        "tokio.blocking.threads",
        "tokio.blocking.queue.depth",
    ]
};

/// One monitored runtime and what is needed to turn its counters into ratios.
#[derive(Debug)]
pub(crate) struct Watched {
    pub(crate) name: String,
    pub(crate) handle: Handle,
    last_busy: Vec<Duration>,
    last_at: Option<std::time::Instant>,
    #[cfg(tokio_unstable)]
    last_histogram: Vec<u64>,
    #[cfg(tokio_unstable)]
    last_ns: u64,
}

impl Watched {
    pub(crate) fn new(name: String, handle: Handle) -> Self {
        Watched {
            name,
            handle,
            last_busy: Vec::new(),
            last_at: None,
            #[cfg(tokio_unstable)]
            last_histogram: Vec::new(),
            #[cfg(tokio_unstable)]
            last_ns: rustmon_core::now_unix_nanos(),
        }
    }

    pub(crate) fn collect(&mut self, start_ns: u64, now_ns: u64, out: &mut Vec<Metric>) {
        let m = self.handle.metrics();
        let name = self.name.clone();
        let rt = || vec![KeyValue::new("tokio.runtime", name.clone())];
        let workers = m.num_workers();
        out.push(gauge(
            "tokio.workers",
            "Worker threads of the runtime",
            "{thread}",
            rt(),
            now_ns,
            workers as i64,
        ));
        out.push(gauge(
            "tokio.tasks.alive",
            "Tasks spawned and not yet completed",
            "{task}",
            rt(),
            now_ns,
            m.num_alive_tasks() as i64,
        ));
        out.push(gauge(
            "tokio.global_queue.depth",
            "Tasks waiting in the runtime's global (injection) queue",
            "{task}",
            rt(),
            now_ns,
            m.global_queue_depth() as i64,
        ));
        #[cfg(target_has_atomic = "64")]
        {
            let now = std::time::Instant::now();
            let elapsed = self.last_at.map(|t| now.duration_since(t));
            self.last_busy.resize(workers, Duration::ZERO);
            for w in 0..workers {
                let attrs = || {
                    let mut a = rt();
                    a.push(KeyValue::new("tokio.worker", w as i64));
                    a
                };
                let busy = m.worker_total_busy_duration(w);
                if let Some(elapsed) = elapsed.filter(|e| !e.is_zero()) {
                    let delta = busy.saturating_sub(self.last_busy[w]);
                    out.push(gauge(
                        "tokio.worker.busy_ratio",
                        "Share of the last interval the worker spent running tasks",
                        "1",
                        attrs(),
                        now_ns,
                        (delta.as_secs_f64() / elapsed.as_secs_f64()).min(1.0),
                    ));
                }
                self.last_busy[w] = busy;
                out.push(sum(
                    "tokio.worker.busy_time",
                    "Time the worker spent running tasks",
                    "s",
                    attrs(),
                    start_ns,
                    now_ns,
                    busy.as_secs_f64(),
                ));
                out.push(sum(
                    "tokio.worker.park_count",
                    "Times the worker parked (went idle)",
                    "{park}",
                    attrs(),
                    start_ns,
                    now_ns,
                    m.worker_park_count(w) as i64,
                ));
                out.push(sum(
                    "tokio.worker.park_unpark_count",
                    "Times the worker parked or unparked",
                    "{park}",
                    attrs(),
                    start_ns,
                    now_ns,
                    m.worker_park_unpark_count(w) as i64,
                ));
                #[cfg(tokio_unstable)]
                {
                    out.push(sum(
                        "tokio.worker.poll_count",
                        "Tasks polled by the worker",
                        "{poll}",
                        attrs(),
                        start_ns,
                        now_ns,
                        m.worker_poll_count(w) as i64,
                    ));
                    out.push(sum(
                        "tokio.worker.steal_count",
                        "Tasks the worker stole from other workers",
                        "{task}",
                        attrs(),
                        start_ns,
                        now_ns,
                        m.worker_steal_count(w) as i64,
                    ));
                    out.push(gauge(
                        "tokio.worker.local_queue.depth",
                        "Tasks in the worker's local queue",
                        "{task}",
                        attrs(),
                        now_ns,
                        m.worker_local_queue_depth(w) as i64,
                    ));
                    out.push(gauge(
                        "tokio.worker.mean_poll_time",
                        "Moving average of the worker's poll durations",
                        "s",
                        attrs(),
                        now_ns,
                        m.worker_mean_poll_time(w).as_secs_f64(),
                    ));
                }
            }
            self.last_at = Some(now);
        }
        #[cfg(tokio_unstable)]
        {
            out.push(sum(
                "tokio.tasks.spawned",
                "Tasks spawned",
                "{task}",
                rt(),
                start_ns,
                now_ns,
                m.spawned_tasks_count() as i64,
            ));
            out.push(sum(
                "tokio.tasks.remote_scheduled",
                "Tasks scheduled from outside the runtime",
                "{task}",
                rt(),
                start_ns,
                now_ns,
                m.remote_schedule_count() as i64,
            ));
            out.push(sum(
                "tokio.tasks.budget_forced_yield",
                "Times a task was forced to yield by the coop budget",
                "{yield}",
                rt(),
                start_ns,
                now_ns,
                m.budget_forced_yield_count() as i64,
            ));
            out.push(gauge(
                "tokio.blocking.threads",
                "Threads of the blocking pool",
                "{thread}",
                rt(),
                now_ns,
                m.num_blocking_threads() as i64,
            ));
            out.push(gauge(
                "tokio.blocking.queue.depth",
                "Tasks waiting for a blocking thread",
                "{task}",
                rt(),
                now_ns,
                m.blocking_queue_depth() as i64,
            ));
            if m.poll_time_histogram_enabled() {
                let h = self.poll_histogram(&m, workers);
                out.push(Metric {
                    name: "tokio.poll.duration".into(),
                    description: "Task poll durations over the interval, all workers (tokio's buckets, re-bucketed at their midpoints)".into(),
                    unit: "s".into(),
                    attributes: rt(),
                    start_unix_nanos: self.last_ns,
                    time_unix_nanos: now_ns,
                    data: rustmon_core::metrics::MetricData::Histogram(h),
                });
            }
            self.last_ns = now_ns;
        }
    }

    /// The poll-time histogram's growth since the last reading, summed over workers, as an
    /// exponential histogram (each tokio bucket's count placed at the bucket's midpoint).
    #[cfg(tokio_unstable)]
    fn poll_histogram(
        &mut self,
        m: &tokio::runtime::RuntimeMetrics,
        workers: usize,
    ) -> rustmon_core::metrics::ExpHistogram {
        use rustmon_core::metrics::ExpHistogram;
        let buckets = m.poll_time_histogram_num_buckets();
        self.last_histogram.resize(workers * buckets, 0);
        let mut h = ExpHistogram::default();
        let mut by_index: std::collections::BTreeMap<i32, u64> = std::collections::BTreeMap::new();
        for b in 0..buckets {
            let range = m.poll_time_histogram_bucket_range(b);
            // The last bucket is open-ended: place it at its start.
            let mid = if range.end >= Duration::from_secs(3600) {
                range.start
            } else {
                (range.start + range.end) / 2
            };
            let v = mid.as_secs_f64().max(1e-9);
            let mut delta = 0;
            for w in 0..workers {
                let c = m.poll_time_histogram_bucket_count(w, b);
                let slot = &mut self.last_histogram[w * buckets + b];
                delta += c.saturating_sub(*slot);
                *slot = c;
            }
            if delta > 0 {
                h.count += delta;
                h.sum += v * delta as f64;
                h.min = h.min.min(v);
                h.max = h.max.max(v);
                *by_index.entry(h.index(v)).or_default() += delta;
            }
        }
        if let (Some((&first, _)), Some((&last, _))) =
            (by_index.first_key_value(), by_index.last_key_value())
        {
            h.offset = first;
            h.counts = vec![0; (last - first + 1) as usize];
            for (i, c) in by_index {
                h.counts[(i - first) as usize] += c;
            }
        }
        h
    }
}
