//! Connection timings: a per-request slot made current (like a context) while the request's
//! future is polled, and connector/resolver wrappers that fill it.
//!
//! A client event that records timings creates a [`Slot`] and makes it current on its thread for
//! every poll of the inner client future. Connection pools call the connector from inside that
//! poll, so [`ConnectTiming`] finds the slot when it is called, keeps it, and makes it current
//! again while the connector's own future is polled, where the resolver ([`TimedResolver`] or the
//! reqwest resolver) finds it in turn.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

const UNSET: u64 = u64::MAX;

/// What the connector and resolver measured for one request.
#[derive(Debug)]
pub(crate) struct Slot {
    dns_nanos: AtomicU64,
    connect_nanos: AtomicU64,
    dns_failed: AtomicBool,
    connect_failed: AtomicBool,
}

impl Slot {
    pub(crate) fn new() -> Arc<Slot> {
        Arc::new(Slot {
            dns_nanos: AtomicU64::new(UNSET),
            connect_nanos: AtomicU64::new(UNSET),
            dns_failed: AtomicBool::new(false),
            connect_failed: AtomicBool::new(false),
        })
    }

    /// Name resolution time, if a timed resolver ran for this request.
    pub(crate) fn dns_nanos(&self) -> Option<u64> {
        match self.dns_nanos.load(Ordering::Acquire) {
            UNSET => None,
            n => Some(n),
        }
    }

    /// Connection establishment time after name resolution, if a timed connector ran.
    pub(crate) fn connect_nanos(&self) -> Option<u64> {
        match self.connect_nanos.load(Ordering::Acquire) {
            UNSET => None,
            n => Some(n.saturating_sub(self.dns_nanos().unwrap_or(0))),
        }
    }

    /// Whether name resolution failed.
    pub(crate) fn dns_failed(&self) -> bool {
        self.dns_failed.load(Ordering::Acquire)
    }

    /// Whether connecting failed.
    pub(crate) fn connect_failed(&self) -> bool {
        self.connect_failed.load(Ordering::Acquire)
    }
}

thread_local! {
    static CURRENT: Cell<Option<Arc<Slot>>> = const { Cell::new(None) };
}

/// The current slot, cloned (called once per new connection, not per request).
fn current() -> Option<Arc<Slot>> {
    CURRENT
        .try_with(|c| {
            let v = c.take();
            let out = v.clone();
            c.set(v);
            out
        })
        .ok()
        .flatten()
}

/// Makes `home`'s slot current until dropped, then puts it back (moves the `Arc`, no refcount
/// traffic).
pub(crate) struct Attached<'a> {
    home: &'a mut Option<Arc<Slot>>,
    previous: Option<Arc<Slot>>,
    active: bool,
}

impl<'a> Attached<'a> {
    #[inline]
    pub(crate) fn new(home: &'a mut Option<Arc<Slot>>) -> Attached<'a> {
        if home.is_none() {
            return Attached {
                home,
                previous: None,
                active: false,
            };
        }
        let mut mine = home.take();
        match CURRENT.try_with(|c| c.replace(mine.take())) {
            Ok(previous) => Attached {
                home,
                previous,
                active: true,
            },
            Err(_) => {
                *home = mine;
                Attached {
                    home,
                    previous: None,
                    active: false,
                }
            }
        }
    }
}

impl Drop for Attached<'_> {
    #[inline]
    fn drop(&mut self) {
        if !self.active {
            return;
        }
        let previous = self.previous.take();
        if let Ok(mine) = CURRENT.try_with(|c| c.replace(previous)) {
            *self.home = mine;
        }
    }
}

pin_project! {
    /// A future polled with a context and a timing slot current.
    pub(crate) struct Scoped<F> {
        #[pin]
        inner: F,
        ctx: Option<rustmon_core::SpanContext>,
        slot: Option<Arc<Slot>>,
    }
}

impl<F> Scoped<F> {
    pub(crate) fn new(
        inner: F,
        ctx: Option<rustmon_core::SpanContext>,
        slot: Option<Arc<Slot>>,
    ) -> Self {
        Scoped { inner, ctx, slot }
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _ctx = rustmon_core::context::attach(*this.ctx);
        let _slot = Attached::new(this.slot);
        this.inner.poll(cx)
    }
}

/// A tower [`Layer`] timing connection establishment: wrap a client's connector with it (for
/// reqwest, [`instrument_reqwest`](crate::instrument_reqwest) does).
///
/// The time from the connector's call to its connection, less name resolution measured by a timed
/// resolver inside it, is recorded on the request's event as `rustmon.http.connect.duration`;
/// it includes the TLS handshake when the wrapped connector performs one. Requests served from a
/// pooled connection record no connect time.
///
/// # Examples
/// ```
/// use rustmon_http_client::ConnectTimingLayer;
/// use tower_layer::Layer;
/// # #[derive(Clone)] struct MyConnector;
/// let connector = ConnectTimingLayer.layer(MyConnector);
/// # let _ = connector;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectTimingLayer;

impl<S> Layer<S> for ConnectTimingLayer {
    type Service = ConnectTiming<S>;

    fn layer(&self, inner: S) -> ConnectTiming<S> {
        ConnectTiming { inner }
    }
}

/// A connector that times connection establishment; see [`ConnectTimingLayer`].
#[derive(Clone, Debug)]
pub struct ConnectTiming<S> {
    inner: S,
}

impl<S> ConnectTiming<S> {
    /// Wraps `connector`.
    ///
    /// # Examples
    /// ```
    /// # #[cfg(feature = "hyper")] {
    /// use rustmon_http_client::{ConnectTiming, TimedResolver};
    /// use hyper_util::client::legacy::connect::{dns::GaiResolver, HttpConnector};
    /// let connector = ConnectTiming::new(HttpConnector::new_with_resolver(TimedResolver::new(GaiResolver::new())));
    /// # let _ = connector; }
    /// ```
    pub fn new(connector: S) -> Self {
        ConnectTiming { inner: connector }
    }

    /// The wrapped connector.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped connector, mutably (to configure it).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Service<R>, R> Service<R> for ConnectTiming<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = ConnectFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: R) -> Self::Future {
        let mut slot = current();
        let start = slot.is_some().then(Instant::now);
        let inner = {
            let _attached = Attached::new(&mut slot);
            self.inner.call(req)
        };
        ConnectFuture { inner, slot, start }
    }
}

pin_project! {
    /// The future of [`ConnectTiming`].
    pub struct ConnectFuture<F> {
        #[pin]
        inner: F,
        slot: Option<Arc<Slot>>,
        start: Option<Instant>,
    }
}

impl<F> std::fmt::Debug for ConnectFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectFuture").finish_non_exhaustive()
    }
}

impl<F: Future<Output = Result<T, E>>, T, E> Future for ConnectFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = {
            let _attached = Attached::new(this.slot);
            std::task::ready!(this.inner.poll(cx))
        };
        if let (Some(slot), Some(start)) = (this.slot.take(), this.start) {
            match &result {
                Ok(_) => slot
                    .connect_nanos
                    .store(start.elapsed().as_nanos() as u64, Ordering::Release),
                Err(_) => slot.connect_failed.store(true, Ordering::Release),
            }
        }
        Poll::Ready(result)
    }
}

/// Times a name resolution future into the current slot.
pub(crate) struct DnsTimer {
    slot: Option<Arc<Slot>>,
    start: Instant,
}

impl DnsTimer {
    pub(crate) fn start() -> DnsTimer {
        DnsTimer {
            slot: current(),
            start: Instant::now(),
        }
    }

    pub(crate) fn done(self, ok: bool) {
        if let Some(slot) = self.slot {
            slot.dns_nanos
                .store(self.start.elapsed().as_nanos() as u64, Ordering::Release);
            if !ok {
                slot.dns_failed.store(true, Ordering::Release);
            }
        }
    }
}

/// A name resolution failure, as reported by rustmon's timed resolvers (so that the client
/// event's `error.type` is `dns`). The resolver's own error is its source.
#[derive(Debug, thiserror::Error)]
#[error("dns error: {source}")]
pub struct DnsError {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl DnsError {
    /// Wraps a resolver's error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        DnsError {
            source: source.into(),
        }
    }
}

/// A resolver for hyper-util's `HttpConnector` that times name resolution
/// (`rustmon.http.dns.duration`) and reports failures as [`DnsError`].
///
/// # Examples
/// ```
/// # #[cfg(feature = "hyper")] {
/// use hyper_util::client::legacy::connect::{dns::GaiResolver, HttpConnector};
/// use rustmon_http_client::TimedResolver;
/// let connector = HttpConnector::new_with_resolver(TimedResolver::new(GaiResolver::new()));
/// # let _ = connector; }
/// ```
#[derive(Clone, Debug)]
pub struct TimedResolver<R> {
    inner: R,
}

impl<R> TimedResolver<R> {
    /// Wraps `resolver`.
    pub fn new(resolver: R) -> Self {
        TimedResolver { inner: resolver }
    }
}

impl<R, N> Service<N> for TimedResolver<R>
where
    R: Service<N>,
    R::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = R::Response;
    type Error = DnsError;
    type Future = ResolveFuture<R::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), DnsError>> {
        self.inner.poll_ready(cx).map_err(DnsError::new)
    }

    fn call(&mut self, name: N) -> Self::Future {
        ResolveFuture {
            timer: Some(DnsTimer::start()),
            inner: self.inner.call(name),
        }
    }
}

pin_project! {
    /// The future of [`TimedResolver`].
    pub struct ResolveFuture<F> {
        #[pin]
        inner: F,
        timer: Option<DnsTimer>,
    }
}

impl<F> std::fmt::Debug for ResolveFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolveFuture").finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResolveFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Output = Result<T, DnsError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(timer) = this.timer.take() {
            timer.done(result.is_ok());
        }
        Poll::Ready(result.map_err(DnsError::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_moves_the_slot_in_and_out() {
        let mut home = Some(Slot::new());
        {
            let _a = Attached::new(&mut home);
            let seen = current().expect("attached");
            seen.dns_nanos.store(5, Ordering::Release);
        }
        let slot = home.expect("back home");
        assert_eq!(slot.dns_nanos(), Some(5));
        assert!(current().is_none());
        let mut none = None;
        let _a = Attached::new(&mut none);
        assert!(current().is_none());
    }
}
