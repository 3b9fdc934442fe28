//! [`OtlpExporter`]: a [`Listener`] that sends spans and metrics over OTLP/HTTP (protobuf, optionally gzip)
//! from its own worker thread, with retries into a bounded buffer.

use std::collections::VecDeque;
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use rustmon_core::metrics::Metric;
use rustmon_core::{Batch, EventRecord, ExportReporter, Listener, ListenerContext, Resource};

use crate::config::{Compression, Config, MAX_RETRY_AFTER, OtlpExporterBuilder};
use crate::error::Error;
use crate::mapping;

/// Sends rustmon's spans and metrics to an OTLP/HTTP receiver (the rustmon collector, an
/// OpenTelemetry Collector, or any backend that speaks OTLP/HTTP with protobuf).
///
/// As a [`Listener`] it runs on rustmon's pipeline thread, where it only maps and encodes each
/// batch (split into requests of at most `max_batch` items) and hands the requests to its own
/// worker thread; it never blocks the pipeline on the network. The worker posts them with a
/// blocking HTTP client (no async runtime, so it works whatever runtime the application uses, or
/// none), gzip-compressed when configured, and retries connection errors, timeouts and HTTP 429, 502, 503 and 504
/// with exponential backoff (honouring `Retry-After`); other failures are not retried.
///
/// Requests wait in a bounded buffer (`max_queue` requests, `max_queue_bytes` bytes). When it is
/// full the **oldest** request is dropped. Every item (span or metric point) delivered is counted
/// in [`Stats::exported`](rustmon_core::Stats::exported), every item dropped or failed in
/// [`Stats::export_errors`](rustmon_core::Stats::export_errors); [`ExporterHandle::stats`] has
/// the details (retries, drops).
///
/// The exporter's own HTTP calls are not monitored: its worker records no events and runs with no
/// current context.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use rustmon_core::Monitor;
/// use rustmon_otlp::OtlpExporter;
///
/// let exporter = OtlpExporter::builder().endpoint("http://127.0.0.1:4318").build()?;
/// let monitor = Monitor::builder("checkout").listener(exporter).build().unwrap();
/// // ... record events ...
/// monitor.shutdown(Duration::from_secs(5)); // flushes the exporter
/// # Ok::<(), rustmon_otlp::Error>(())
/// ```
pub struct OtlpExporter {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("config", &self.shared.config)
            .field("stats", &self.shared.stats())
            .finish()
    }
}

/// What an exporter has done so far. Items are spans or metric points.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExporterStats {
    /// Requests the receiver accepted.
    pub requests_sent: u64,
    /// Items the receiver accepted.
    pub items_exported: u64,
    /// Items lost for any reason: dropped from a full buffer, rejected, or failed after retries.
    pub items_failed: u64,
    /// The part of `items_failed` dropped because the buffer was full.
    pub items_dropped: u64,
    /// Retries made (attempts after the first).
    pub retries: u64,
    /// Requests waiting in the buffer now.
    pub queued_requests: u64,
}

/// A cheap handle on a running exporter, to read its statistics or flush it from another thread
/// after the exporter itself was moved into a monitor.
#[derive(Clone)]
pub struct ExporterHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for ExporterHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExporterHandle")
            .field("stats", &self.shared.stats())
            .finish()
    }
}

impl ExporterHandle {
    /// What the exporter has done so far.
    pub fn stats(&self) -> ExporterStats {
        self.shared.stats()
    }

    /// Waits until every buffered request was delivered or given up, at most `timeout`; returns
    /// whether the buffer emptied in time.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.shared.wait_idle(deadline_in(timeout))
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn as_str(self) -> &'static str {
        match self {
            Signal::Traces => "traces",
            Signal::Metrics => "metrics",
        }
    }
}

struct Request {
    signal: Signal,
    /// Uncompressed protobuf.
    body: Vec<u8>,
    items: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Request>,
    queued_bytes: usize,
    in_flight: bool,
    /// Set by shutdown: deliver what is buffered until this instant, then stop.
    stop_at: Option<Instant>,
    /// The worker has exited.
    stopped: bool,
}

#[derive(Default)]
struct Counters {
    requests_sent: AtomicU64,
    items_exported: AtomicU64,
    items_failed: AtomicU64,
    items_dropped: AtomicU64,
    retries: AtomicU64,
}

struct Shared {
    config: Config,
    state: Mutex<State>,
    /// Wakes the worker: a new request or shutdown.
    work: Condvar,
    /// Wakes flushers: the worker went idle or stopped.
    idle: Condvar,
    reporter: OnceLock<ExportReporter>,
    counters: Counters,
    last_log: Mutex<Option<Instant>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stats(&self) -> ExporterStats {
        let c = &self.counters;
        ExporterStats {
            requests_sent: c.requests_sent.load(Ordering::Relaxed),
            items_exported: c.items_exported.load(Ordering::Relaxed),
            items_failed: c.items_failed.load(Ordering::Relaxed),
            items_dropped: c.items_dropped.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
            queued_requests: self.lock().queue.len() as u64,
        }
    }

    fn exported(&self, items: u64) {
        self.counters.requests_sent.fetch_add(1, Ordering::Relaxed);
        self.counters
            .items_exported
            .fetch_add(items, Ordering::Relaxed);
        if let Some(r) = self.reporter.get() {
            r.exported(items);
        }
    }

    fn failed(&self, items: u64) {
        if items == 0 {
            return;
        }
        self.counters
            .items_failed
            .fetch_add(items, Ordering::Relaxed);
        if let Some(r) = self.reporter.get() {
            r.failed(items);
        }
    }

    /// Reports a delivery problem on stderr, at most once a minute.
    fn log(&self, what: impl FnOnce() -> String) {
        let mut last = self.last_log.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            *last = Some(Instant::now());
            eprintln!(
                "rustmon-otlp: {} (further errors are counted in the monitor's export_errors; this message repeats at most once a minute)",
                what()
            );
        }
    }

    /// Buffers a request, dropping the oldest ones while the buffer is over its bounds.
    fn enqueue(&self, signal: Signal, body: Vec<u8>, items: u64) {
        if items == 0 {
            return;
        }
        let mut dropped = 0;
        {
            let mut st = self.lock();
            if st.stop_at.is_some() || st.stopped {
                drop(st);
                self.failed(items);
                return;
            }
            while !st.queue.is_empty()
                && (st.queue.len() >= self.config.max_queue
                    || st.queued_bytes + body.len() > self.config.max_queue_bytes)
            {
                if let Some(old) = st.queue.pop_front() {
                    st.queued_bytes -= old.body.len();
                    dropped += old.items;
                }
            }
            st.queued_bytes += body.len();
            st.queue.push_back(Request {
                signal,
                body,
                items,
            });
        }
        self.work.notify_one();
        if dropped > 0 {
            self.counters
                .items_dropped
                .fetch_add(dropped, Ordering::Relaxed);
            self.failed(dropped);
            self.log(|| {
                format!(
                    "the export buffer is full ({} requests); dropped the oldest ({dropped} items)",
                    self.config.max_queue
                )
            });
        }
    }

    /// Waits until nothing is buffered or in flight (or the worker stopped), until `deadline`.
    fn wait_idle(&self, deadline: Instant) -> bool {
        let mut st = self.lock();
        loop {
            if st.stopped || (st.queue.is_empty() && !st.in_flight) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .idle
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until the worker has exited, until `deadline`.
    fn wait_stopped(&self, deadline: Instant) -> bool {
        let mut st = self.lock();
        loop {
            if st.stopped {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .idle
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Sleeps `wait` unless shutdown's deadline comes first; returns `false` if it would.
    fn backoff(&self, wait: Duration) -> bool {
        let until = deadline_in(wait);
        let mut st = self.lock();
        loop {
            if st.stop_at.is_some_and(|d| d < until) {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            st = self
                .work
                .wait_timeout(st, until - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl OtlpExporter {
    /// A builder; see [`OtlpExporterBuilder`] for the options and their defaults.
    pub fn builder() -> OtlpExporterBuilder {
        OtlpExporterBuilder::new()
    }

    pub(crate) fn start(config: Config) -> Result<OtlpExporter, Error> {
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            idle: Condvar::new(),
            reporter: OnceLock::new(),
            counters: Counters::default(),
            last_log: Mutex::new(None),
        });
        let worker = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("rustmon-otlp".into())
                .spawn(move || Worker::new(shared).run())?
        };
        Ok(OtlpExporter {
            shared,
            worker: Some(worker),
        })
    }

    /// A handle to read statistics and flush after the exporter was moved into a monitor.
    pub fn handle(&self) -> ExporterHandle {
        ExporterHandle {
            shared: self.shared.clone(),
        }
    }

    /// What the exporter has done so far.
    pub fn stats(&self) -> ExporterStats {
        self.shared.stats()
    }

    /// Maps `events` to OTLP and buffers them for sending, in requests of at most `max_batch`
    /// spans. Never blocks on the network.
    pub fn export_events<'a>(
        &self,
        resource: &Resource,
        events: impl IntoIterator<Item = &'a EventRecord>,
    ) {
        let max = self.shared.config.max_batch;
        let mut chunk: Vec<&EventRecord> = Vec::with_capacity(max.min(1024));
        let send = |chunk: &mut Vec<&EventRecord>| {
            if chunk.is_empty() {
                return;
            }
            let body = crate::encode::traces_request(resource, chunk.iter().copied());
            self.shared
                .enqueue(Signal::Traces, body, chunk.len() as u64);
            chunk.clear();
        };
        for e in events {
            chunk.push(e);
            if chunk.len() >= max {
                send(&mut chunk);
            }
        }
        send(&mut chunk);
    }

    /// Maps `metrics` to OTLP and buffers them for sending, in requests of at most `max_batch`
    /// points. Never blocks on the network.
    pub fn export_metrics(&self, resource: &Resource, metrics: &[Metric]) {
        for chunk in metrics.chunks(self.shared.config.max_batch) {
            let request = mapping::metrics_request(resource, chunk);
            self.shared
                .enqueue(Signal::Metrics, request.encode_to_vec(), chunk.len() as u64);
        }
    }

    /// Waits until everything buffered was delivered or given up, at most `timeout`; returns
    /// whether the buffer emptied in time.
    pub fn force_flush(&self, timeout: Duration) -> bool {
        self.shared.wait_idle(deadline_in(timeout))
    }

    /// Delivers what is buffered within `timeout` (what is left then is counted as failed) and
    /// stops the worker; requests handed over afterwards are counted as failed. Idempotent.
    /// Returns whether the worker finished in time.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        let deadline = deadline_in(timeout);
        {
            let mut st = self.shared.lock();
            if st.stop_at.is_none_or(|d| d > deadline) {
                st.stop_at = Some(deadline);
            }
        }
        self.shared.work.notify_all();
        let stopped = self.shared.wait_stopped(deadline);
        if stopped {
            if let Some(w) = self.worker.take() {
                let _ = w.join();
            }
        }
        stopped
    }
}

impl Listener for OtlpExporter {
    fn start(&mut self, ctx: &ListenerContext) {
        let _ = self.shared.reporter.set(ctx.reporter());
    }

    fn on_events(&mut self, batch: &Batch<'_>) {
        self.export_events(batch.resource(), batch.iter());
    }

    fn on_metrics(&mut self, metrics: &[Metric], resource: &Resource) {
        self.export_metrics(resource, metrics);
    }

    fn flush(&mut self, timeout: Duration) {
        self.force_flush(timeout);
    }

    fn shutdown(&mut self, timeout: Duration) {
        self.stop(timeout);
    }
}

impl Drop for OtlpExporter {
    /// Asks the worker to stop without waiting: what is buffered is sent for at most the
    /// configured timeout. Call [`stop`](OtlpExporter::stop) (or shut the monitor down) to flush.
    fn drop(&mut self) {
        if self.worker.is_some() {
            let deadline = deadline_in(self.shared.config.timeout);
            let mut st = self.shared.lock();
            if st.stop_at.is_none_or(|d| d > deadline) {
                st.stop_at = Some(deadline);
            }
            drop(st);
            self.shared.work.notify_all();
        }
    }
}

/// What one attempt came to.
enum Attempt {
    Delivered {
        rejected: u64,
        message: String,
    },
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fail {
        reason: String,
    },
}

struct Worker {
    shared: Arc<Shared>,
    agent: ureq::Agent,
}

impl Worker {
    fn new(shared: Arc<Shared>) -> Worker {
        let agent = ureq::Agent::config_builder()
            // Clamped so that no deadline computation inside the client can overflow.
            .timeout_global(Some(
                shared.config.timeout.min(Duration::from_secs(24 * 3600)),
            ))
            .http_status_as_error(false)
            .user_agent(concat!("rustmon-otlp/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Worker { shared, agent }
    }

    fn run(self) {
        // The exporter's own work is never monitored: events started on this thread (say by an
        // instrumented HTTP client) are inert.
        let _quiet = rustmon_core::context::suppress();
        loop {
            let request = {
                let mut st = self.shared.lock();
                loop {
                    if st.stop_at.is_some_and(|d| Instant::now() >= d) {
                        let lost: u64 = st.queue.drain(..).map(|r| r.items).sum();
                        st.queued_bytes = 0;
                        st.stopped = true;
                        drop(st);
                        self.shared.failed(lost);
                        self.shared.idle.notify_all();
                        return;
                    }
                    if let Some(r) = st.queue.pop_front() {
                        st.queued_bytes -= r.body.len();
                        st.in_flight = true;
                        break r;
                    }
                    if st.stop_at.is_some() {
                        st.stopped = true;
                        drop(st);
                        self.shared.idle.notify_all();
                        return;
                    }
                    self.shared.idle.notify_all();
                    st = self
                        .shared
                        .work
                        .wait(st)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            };
            // A panic here (a bug) must not leave flushers waiting on a request forever.
            let delivered =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.deliver(&request)));
            if delivered.is_err() {
                self.shared.failed(request.items);
            }
            self.shared.lock().in_flight = false;
            self.shared.idle.notify_all();
        }
    }

    fn deliver(&self, request: &Request) {
        let config = &self.shared.config;
        let body = match config.compression {
            Compression::Gzip => match gzip(&request.body) {
                Ok(b) => b,
                Err(e) => {
                    self.shared.failed(request.items);
                    self.shared
                        .log(|| format!("cannot compress a request: {e}"));
                    return;
                }
            },
            Compression::None => request.body.clone(),
        };
        let mut retries = 0;
        loop {
            match self.attempt(request.signal, &body) {
                Attempt::Delivered { rejected, message } => {
                    let rejected = rejected.min(request.items);
                    self.shared.exported(request.items - rejected);
                    if rejected > 0 {
                        self.shared.failed(rejected);
                        self.shared.log(|| {
                            format!(
                                "the receiver rejected {rejected} of {} {}: {message}",
                                request.items,
                                request.signal.as_str()
                            )
                        });
                    }
                    return;
                }
                Attempt::Fail { reason } => {
                    self.shared.failed(request.items);
                    self.shared.log(|| {
                        format!(
                            "cannot export {} {} ({reason}); not retried",
                            request.items,
                            request.signal.as_str()
                        )
                    });
                    return;
                }
                Attempt::Retry {
                    reason,
                    retry_after,
                } => {
                    if retries >= config.max_retries {
                        self.shared.failed(request.items);
                        self.shared.log(|| {
                            format!(
                                "cannot export {} {} to {} ({reason}) after {retries} retries",
                                request.items,
                                request.signal.as_str(),
                                self.url(request.signal),
                            )
                        });
                        return;
                    }
                    let wait = retry_after
                        .map(|d| d.min(MAX_RETRY_AFTER))
                        .unwrap_or_else(|| backoff(config, retries));
                    if !self.shared.backoff(wait) {
                        self.shared.failed(request.items);
                        return;
                    }
                    retries += 1;
                    self.shared.counters.retries.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn url(&self, signal: Signal) -> &str {
        match signal {
            Signal::Traces => &self.shared.config.traces_url,
            Signal::Metrics => &self.shared.config.metrics_url,
        }
    }

    fn attempt(&self, signal: Signal, body: &[u8]) -> Attempt {
        let config = &self.shared.config;
        let mut req = self
            .agent
            .post(self.url(signal))
            .header("content-type", "application/x-protobuf");
        if config.compression == Compression::Gzip {
            req = req.header("content-encoding", "gzip");
        }
        for (name, value) in &config.headers {
            req = req.header(name.clone(), value.clone());
        }
        let mut response = match req.send(body) {
            Ok(r) => r,
            Err(e) => {
                return if retryable(&e) {
                    Attempt::Retry {
                        reason: e.to_string(),
                        retry_after: None,
                    }
                } else {
                    Attempt::Fail {
                        reason: e.to_string(),
                    }
                };
            }
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let protobuf = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("protobuf"));
        // Read the body (bounded) so the connection can be reused.
        let bytes = response
            .body_mut()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        match status {
            200..=299 => {
                let (rejected, message) = if protobuf && !bytes.is_empty() {
                    partial_success(signal, &bytes)
                } else {
                    (0, String::new())
                };
                Attempt::Delivered { rejected, message }
            }
            429 | 502 | 503 | 504 => Attempt::Retry {
                reason: format!("http status {status}"),
                retry_after,
            },
            _ => Attempt::Fail {
                reason: format!("http status {status}"),
            },
        }
    }
}

/// `timeout` from now; a timeout too large to represent means "a century".
fn deadline_in(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// What the receiver said it rejected in an otherwise successful response.
fn partial_success(signal: Signal, bytes: &[u8]) -> (u64, String) {
    match signal {
        Signal::Traces => ExportTraceServiceResponse::decode(bytes)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_spans.max(0) as u64, p.error_message)),
        Signal::Metrics => ExportMetricsServiceResponse::decode(bytes)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points.max(0) as u64, p.error_message)),
    }
    .unwrap_or_default()
}

/// Whether a transport error may pass if tried again.
fn retryable(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled
            | ureq::Error::ConnectProxyFailed(_)
    )
}

/// The wait before retry `n` (0-based): `initial * 2^n` capped at `max`, with jitter down to half.
fn backoff(config: &Config, n: u32) -> Duration {
    let exp = config
        .initial_backoff
        .saturating_mul(1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX))
        .min(config.max_backoff);
    // Jitter in [0.5, 1.0) so that many agents do not retry in lockstep.
    let r = (rustmon_core::SpanId::random().0 >> 11) as f64 / (1u64 << 53) as f64;
    exp.mul_f64(0.5 + r / 2.0)
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(body)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_timeouts_do_not_overflow() {
        assert!(deadline_in(Duration::MAX) > Instant::now());
        let exporter = OtlpExporterBuilder::new()
            .endpoint("http://127.0.0.1:9")
            .timeout(Duration::MAX)
            .with_env(false)
            .build()
            .unwrap();
        assert!(exporter.force_flush(Duration::MAX));
        drop(exporter);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let config = OtlpExporterBuilder::new()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(1))
            .resolve(|_| None)
            .unwrap();
        for (n, full) in [
            (0, 100),
            (1, 200),
            (2, 400),
            (3, 800),
            (4, 1000),
            (40, 1000),
        ] {
            let d = backoff(&config, n);
            let full = Duration::from_millis(full);
            assert!(d >= full / 2 && d <= full, "retry {n}: {d:?}");
        }
    }
}
