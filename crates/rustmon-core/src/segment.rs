//! Named code sections timed and aggregated per name and `file:line` (the seed's segments).
//!
//! `segment!("name")` returns a guard; when it drops, the section's duration is added to counters
//! of that call site (count, total, max). The global monitor exports them every metrics interval
//! as `rustmon.segment.count`, `rustmon.segment.time`, `rustmon.segment.mean` and
//! `rustmon.segment.max`. Cost: a few atomic operations, no allocation; nothing when monitoring is
//! disabled.

use crate::clock::Instant;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::attr::KeyValue;
use crate::metrics::{Metric, MetricData, Number};
use crate::monitor;

/// Times a named code section until the returned guard drops.
///
/// # Examples
/// ```
/// fn parse(input: &str) -> usize {
///     let _s = rustmon_core::segment!("parse");
///     input.split(',').count()
/// }
/// assert_eq!(parse("a,b"), 2);
/// ```
#[macro_export]
macro_rules! segment {
    ($name:expr) => {{
        static SITE: $crate::segment::Callsite =
            $crate::segment::Callsite::new($name, file!(), line!());
        SITE.start()
    }};
}

/// One `segment!` call site and its counters.
#[derive(Debug)]
pub struct Callsite {
    name: &'static str,
    file: &'static str,
    line: u32,
    count: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
    registered: AtomicBool,
}

static SITES: Mutex<Vec<&'static Callsite>> = Mutex::new(Vec::new());

impl Callsite {
    /// A call site; use [`segment!`](crate::segment!) rather than this.
    pub const fn new(name: &'static str, file: &'static str, line: u32) -> Self {
        Callsite {
            name,
            file,
            line,
            count: AtomicU64::new(0),
            total_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
            registered: AtomicBool::new(false),
        }
    }

    /// Starts timing a run of this section.
    #[inline]
    pub fn start(&'static self) -> SegmentGuard {
        if !monitor::global_enabled() {
            return SegmentGuard { running: None };
        }
        if !self.registered.load(Ordering::Acquire) {
            self.register();
        }
        SegmentGuard {
            running: Some((self, Instant::now())),
        }
    }

    #[cold]
    fn register(&'static self) {
        let mut sites = SITES.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.registered.swap(true, Ordering::AcqRel) {
            sites.push(self);
        }
    }
}

/// Records the section's duration when dropped.
#[must_use = "the section is timed until the guard drops"]
#[derive(Debug)]
pub struct SegmentGuard {
    running: Option<(&'static Callsite, Instant)>,
}

impl Drop for SegmentGuard {
    #[inline]
    fn drop(&mut self) {
        if let Some((site, start)) = self.running {
            let nanos = start.elapsed().as_nanos() as u64;
            site.count.fetch_add(1, Ordering::Relaxed);
            site.total_nanos.fetch_add(nanos, Ordering::Relaxed);
            site.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        }
    }
}

/// The aggregate of one call site.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentStats {
    /// The section's name.
    pub name: &'static str,
    /// Source file of the call site.
    pub file: &'static str,
    /// Line of the call site.
    pub line: u32,
    /// Runs so far.
    pub count: u64,
    /// Total time so far, ns.
    pub total_nanos: u64,
    /// Longest run since the last export, ns.
    pub max_nanos: u64,
}

impl SegmentStats {
    /// Mean duration in ns (0 before the first run).
    pub fn mean_nanos(&self) -> u64 {
        self.total_nanos.checked_div(self.count).unwrap_or(0)
    }
}

/// The current aggregates of every call site that has run.
pub fn snapshot() -> Vec<SegmentStats> {
    collect(false)
}

fn collect(reset_max: bool) -> Vec<SegmentStats> {
    let sites = SITES.lock().unwrap_or_else(PoisonError::into_inner);
    sites
        .iter()
        .map(|s| SegmentStats {
            name: s.name,
            file: s.file,
            line: s.line,
            count: s.count.load(Ordering::Relaxed),
            total_nanos: s.total_nanos.load(Ordering::Relaxed),
            max_nanos: if reset_max {
                s.max_nanos.swap(0, Ordering::Relaxed)
            } else {
                s.max_nanos.load(Ordering::Relaxed)
            },
        })
        .collect()
}

pub(crate) fn export(started: u64, interval_start: u64, now: u64, out: &mut Vec<Metric>) {
    for s in collect(true) {
        let attributes = vec![
            KeyValue::new("rustmon.segment.name", s.name),
            KeyValue::new("code.filepath", s.file),
            KeyValue::new("code.lineno", i64::from(s.line)),
        ];
        let metric = |name: &'static str,
                      description: &'static str,
                      unit: &'static str,
                      start: u64,
                      data| Metric {
            name: Cow::Borrowed(name),
            description: Cow::Borrowed(description),
            unit: Cow::Borrowed(unit),
            attributes: attributes.clone(),
            start_unix_nanos: start,
            time_unix_nanos: now,
            data,
        };
        out.push(metric(
            "rustmon.segment.count",
            "Runs of a code segment",
            "{run}",
            started,
            MetricData::Sum {
                value: Number::I64(s.count as i64),
                monotonic: true,
                delta: false,
            },
        ));
        out.push(metric(
            "rustmon.segment.time",
            "Total time spent in a code segment",
            "s",
            started,
            MetricData::Sum {
                value: Number::F64(s.total_nanos as f64 / 1e9),
                monotonic: true,
                delta: false,
            },
        ));
        out.push(metric(
            "rustmon.segment.mean",
            "Mean duration of a code segment",
            "s",
            started,
            MetricData::Gauge(Number::F64(s.mean_nanos() as f64 / 1e9)),
        ));
        out.push(metric(
            "rustmon.segment.max",
            "Longest run of a code segment in the interval",
            "s",
            interval_start,
            MetricData::Gauge(Number::F64(s.max_nanos as f64 / 1e9)),
        ));
    }
}
