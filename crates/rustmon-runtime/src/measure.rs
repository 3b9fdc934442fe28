//! Per-request runtime measurements from a future's own polls: bytes allocated (on whichever
//! threads the future is polled), time being polled, and time waiting to be scheduled after a
//! wake-up. No `tokio_unstable` needed; works on any executor.
//!
//! # Attributes set on the event
//! | attribute | meaning |
//! |---|---|
//! | `rustmon.alloc.bytes` | bytes allocated while the future was being polled (tracking allocator installed only) |
//! | `rustmon.alloc.count` | allocations made while it was being polled (idem) |
//! | `rustmon.task.polls` | times the future was polled |
//! | `rustmon.task.poll_ns` | total time inside `poll` |
//! | `rustmon.task.sched_wait_ns` | total time from a wake-up (or creation) to the poll that followed: time spent runnable but not running |
//! | `rustmon.task.idle_ns` | the rest of the lifetime: waiting for I/O, timers, other tasks |

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use quanta::Instant;
use rustmon_core::Event;

use crate::heap;

/// Nanoseconds on a monotonic clock (TSC-based where available, as rustmon-core's), never 0.
fn now_ns() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    Instant::now().duration_since(base).as_nanos() as u64 + 1
}

/// What a [`Measured`] future measured.
///
/// # Examples
/// ```
/// use rustmon_runtime::TaskStats;
/// let s = TaskStats { polls: 3, poll_ns: 200, sched_wait_ns: 300, total_ns: 1000, ..TaskStats::default() };
/// assert_eq!(s.idle_ns(), 500);
/// let mut event = rustmon_core::Event::inert();
/// s.record(&mut event); // sets the attributes listed in the module docs
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskStats {
    /// Bytes allocated during polls (0 without the tracking allocator).
    pub alloc_bytes: u64,
    /// Allocations made during polls.
    pub alloc_count: u64,
    /// Times polled.
    pub polls: u64,
    /// Nanoseconds inside `poll`.
    pub poll_ns: u64,
    /// Nanoseconds between a wake-up (or creation) and the next poll.
    pub sched_wait_ns: u64,
    /// Nanoseconds from creation to completion.
    pub total_ns: u64,
}

impl TaskStats {
    /// Nanoseconds neither polled nor waiting to be scheduled.
    pub fn idle_ns(&self) -> u64 {
        self.total_ns
            .saturating_sub(self.poll_ns)
            .saturating_sub(self.sched_wait_ns)
    }

    /// Sets the attributes listed in the [module docs](self) on `event`.
    pub fn record(&self, event: &mut Event) {
        if heap::is_installed() {
            event.set("rustmon.alloc.bytes", self.alloc_bytes as i64);
            event.set("rustmon.alloc.count", self.alloc_count as i64);
        }
        event.set("rustmon.task.polls", self.polls as i64);
        event.set("rustmon.task.poll_ns", self.poll_ns as i64);
        event.set("rustmon.task.sched_wait_ns", self.sched_wait_ns as i64);
        event.set("rustmon.task.idle_ns", self.idle_ns() as i64);
    }
}

struct WakeRecorder {
    woken_at: AtomicU64,
    inner: Waker,
}

impl Wake for WakeRecorder {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // The first wake-up since the last poll is when the future became runnable.
        let _ = self
            .woken_at
            .compare_exchange(0, now_ns(), Ordering::Relaxed, Ordering::Relaxed);
        self.inner.wake_by_ref();
    }
}

/// A future that measures its own polls; its output is `(output, TaskStats)`.
///
/// Created by [`MeasureExt::measured`].
///
/// # Examples
/// ```
/// use rustmon_runtime::MeasureExt;
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let (out, stats) = rt.block_on(async { tokio::task::yield_now().await; 7 }.measured());
/// assert_eq!((out, stats.polls), (7, 2));
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Measured<F> {
    inner: F,
    stats: TaskStats,
    created_ns: u64,
    /// Our waker wrapping the executor's, and its shared state.
    recorder: Option<(Arc<WakeRecorder>, Waker)>,
}

impl std::fmt::Debug for WakeRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WakeRecorder")
    }
}

impl<F: Future> Future for Measured<F> {
    type Output = (F::Output, TaskStats);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`; the other fields
        // are plain data, never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let start = now_ns();
        // Time runnable but not running: since the wake-up, or since creation for the first poll.
        let runnable_since = match &this.recorder {
            None => this.created_ns,
            Some((rec, _)) => rec.woken_at.swap(0, Ordering::Relaxed),
        };
        if runnable_since != 0 {
            this.stats.sched_wait_ns += start.saturating_sub(runnable_since);
        }
        let reuse = matches!(&this.recorder, Some((rec, _)) if rec.inner.will_wake(cx.waker()));
        if !reuse {
            let rec = Arc::new(WakeRecorder {
                woken_at: AtomicU64::new(0),
                inner: cx.waker().clone(),
            });
            let waker = Waker::from(rec.clone());
            this.recorder = Some((rec, waker));
        }
        let waker = match &this.recorder {
            Some((_, w)) => w,
            None => cx.waker(),
        };
        let before = heap::thread_stats();
        let mut inner_cx = Context::from_waker(waker);
        // SAFETY: see above; `inner` is not moved.
        let res = unsafe { Pin::new_unchecked(&mut this.inner) }.poll(&mut inner_cx);
        let after = heap::thread_stats();
        this.stats.alloc_bytes += after.allocated_bytes.saturating_sub(before.allocated_bytes);
        this.stats.alloc_count += after
            .allocated_objects
            .saturating_sub(before.allocated_objects);
        let end = now_ns();
        this.stats.polls += 1;
        this.stats.poll_ns += end.saturating_sub(start);
        match res {
            Poll::Ready(out) => {
                this.stats.total_ns = end.saturating_sub(this.created_ns);
                Poll::Ready((out, this.stats))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A future that runs inside an [`Event`] (entered on every poll), measures itself, sets the
/// attributes of the [module docs](self) on the event and finishes it when it completes. If it is
/// dropped before completing, the event is finished with what was measured and
/// `rustmon.task.cancelled = true`.
///
/// Created by [`MeasureExt::in_event`].
///
/// # Examples
/// ```
/// use rustmon_core::{Kind, Monitor};
/// use rustmon_runtime::MeasureExt;
/// let monitor = Monitor::builder("svc").build().unwrap();
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// let event = monitor.start_event(Kind::Server, "GET /orders/{id}");
/// let n = rt.block_on(async { 42 }.in_event(event)); // the event is finished with its measurements
/// assert_eq!(n, 42);
/// # monitor.shutdown(std::time::Duration::from_secs(5));
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct InEvent<F> {
    inner: Measured<F>,
    event: Option<Event>,
}

impl<F: Future> Future for InEvent<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned and never moved; `event` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let _entered = this.event.as_ref().map(Event::enter);
        // SAFETY: see above.
        match unsafe { Pin::new_unchecked(&mut this.inner) }.poll(cx) {
            Poll::Ready((out, stats)) => {
                drop(_entered);
                if let Some(mut event) = this.event.take() {
                    stats.record(&mut event);
                    event.finish();
                }
                Poll::Ready(out)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<F> Drop for InEvent<F> {
    fn drop(&mut self) {
        if let Some(mut event) = self.event.take() {
            let mut stats = self.inner.stats;
            stats.total_ns = now_ns().saturating_sub(self.inner.created_ns);
            stats.record(&mut event);
            event.set("rustmon.task.cancelled", true);
            event.finish();
        }
    }
}

/// Adds [`measured`](MeasureExt::measured) and [`in_event`](MeasureExt::in_event) to futures.
///
/// # Examples
/// ```
/// use rustmon_runtime::MeasureExt;
/// let (sum, stats) = futures_lite_block_on(async { (1..=3).sum::<u32>() }.measured());
/// assert_eq!(sum, 6);
/// assert_eq!(stats.polls, 1);
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub trait MeasureExt: Future + Sized {
    /// Measures this future: output `(output, TaskStats)`. The clock starts now (so the delay
    /// before the first poll counts as waiting to be scheduled).
    fn measured(self) -> Measured<Self> {
        Measured {
            inner: self,
            stats: TaskStats::default(),
            created_ns: now_ns(),
            recorder: None,
        }
    }

    /// Runs this future inside `event` and records its measurements there when it completes.
    fn in_event(self, event: Event) -> InEvent<Self> {
        InEvent {
            inner: self.measured(),
            event: Some(event),
        }
    }
}

impl<F: Future> MeasureExt for F {}
