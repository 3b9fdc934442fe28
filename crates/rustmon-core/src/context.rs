//! The current event: in sync code, inside futures, across threads and across processes.
//!
//! Each thread has a *current* [`SpanContext`]. [`Event::start`](crate::Event::start) makes the
//! current context the parent of the new event; [`Event::enter`](crate::Event::enter) makes an
//! event current until the guard drops. Futures carry a context with [`FutureExt::with_context`]
//! or [`FutureExt::in_current_context`], and closures sent to other threads with [`bind`].
//! [`SpanContext::from_traceparent`] and [`SpanContext::traceparent`] continue and propagate traces
//! between processes (W3C Trace Context), [`SpanContext::with_trace_state`] the `tracestate`
//! that travels with them.

use std::borrow::Cow;
use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll};

use crate::ids::{SpanId, TraceId};
use crate::intern::Interner;

/// What a child needs from its parent: ids, the sampling decision, whether it is remote, and
/// the trace's `tracestate`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct SpanContext {
    /// The trace this span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// Whether the trace was sampled (W3C `sampled` flag).
    pub sampled: bool,
    /// Whether this context came from another process.
    pub remote: bool,
    /// The W3C `tracestate` header value carried with the trace, validated; children inherit it
    /// and clients pass it on. Set it with [`SpanContext::with_trace_state`].
    pub trace_state: Option<&'static str>,
}

/// Per-thread state: the current context, and whether monitoring is suppressed here.
#[derive(Copy, Clone)]
struct State {
    current: Option<SpanContext>,
    suppressed: bool,
}

thread_local! {
    static STATE: Cell<State> = const { Cell::new(State { current: None, suppressed: false }) };
}

/// The current context of this thread, if any (`None` also while the thread is being torn down).
#[inline]
pub fn current() -> Option<SpanContext> {
    STATE.try_with(|s| s.get().current).ok().flatten()
}

/// The parent for a new event: `Some(current())`, or `None` when monitoring is suppressed on
/// this thread. One thread-local read for both.
#[inline]
pub(crate) fn parent_for_new_event() -> Option<Option<SpanContext>> {
    match STATE.try_with(Cell::get) {
        Ok(State {
            suppressed: false,
            current,
        }) => Some(current),
        _ => None,
    }
}

/// Sets the current context without a guard; returns the previous one. Prefer [`attach`];
/// this is for integrations whose enter and exit are separate callbacks (e.g. a `tracing` layer).
#[inline]
pub fn replace(ctx: Option<SpanContext>) -> Option<SpanContext> {
    STATE
        .try_with(|s| {
            let mut state = s.get();
            let previous = std::mem::replace(&mut state.current, ctx);
            s.set(state);
            previous
        })
        .ok()
        .flatten()
}

/// Suppresses monitoring on this thread until the guard drops: events started here are inert.
/// Exporters use it so that their own network calls are never monitored.
///
/// # Examples
/// ```
/// use rustmon_core::{context, Event, Kind, Monitor};
/// let monitor = Monitor::builder("svc").build().unwrap();
/// let _quiet = context::suppress();
/// assert!(!monitor.start_event(Kind::Client, "POST /v1/traces").is_recording());
/// # drop(_quiet);
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
pub fn suppress() -> SuppressGuard {
    let previous = STATE
        .try_with(|s| {
            let mut state = s.get();
            let previous = std::mem::replace(&mut state.suppressed, true);
            s.set(state);
            previous
        })
        .unwrap_or(true);
    SuppressGuard {
        previous,
        _not_send: PhantomData,
    }
}

/// Whether monitoring is suppressed on this thread (see [`suppress`]).
#[inline]
pub fn is_suppressed() -> bool {
    STATE.try_with(|s| s.get().suppressed).unwrap_or(true)
}

/// Ends a [`suppress`] scope when dropped.
#[must_use = "monitoring is suppressed only while the guard lives"]
#[derive(Debug)]
pub struct SuppressGuard {
    previous: bool,
    _not_send: PhantomData<*const ()>,
}

impl Drop for SuppressGuard {
    fn drop(&mut self) {
        let _ = STATE.try_with(|s| {
            let mut state = s.get();
            state.suppressed = self.previous;
            s.set(state);
        });
    }
}

/// Makes `ctx` current until the returned guard is dropped; the previous context comes back then.
///
/// Guards must be dropped in reverse order of creation (they are `!Send` so they stay on their
/// thread).
///
/// # Examples
/// ```
/// use rustmon_core::context::{self, SpanContext};
/// use rustmon_core::{SpanId, TraceId};
/// let ctx = SpanContext { trace_id: TraceId(7), span_id: SpanId(9), sampled: true, remote: true, trace_state: None };
/// {
///     let _g = context::attach(Some(ctx));
///     assert_eq!(context::current(), Some(ctx));
/// }
/// assert_eq!(context::current(), None);
/// ```
#[inline]
pub fn attach(ctx: Option<SpanContext>) -> ContextGuard {
    ContextGuard {
        previous: replace(ctx),
        _not_send: PhantomData,
    }
}

/// Restores the previous context when dropped. See [`attach`].
#[must_use = "the context is current only while the guard lives"]
#[derive(Debug)]
pub struct ContextGuard {
    previous: Option<SpanContext>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    #[inline]
    fn drop(&mut self) {
        replace(self.previous);
    }
}

/// Wraps `f` so that it runs with the caller's current context, wherever it runs: a plain thread,
/// `tokio::task::spawn_blocking`, a thread pool.
///
/// # Examples
/// ```
/// use rustmon_core::context;
/// let outer = context::current();
/// let handle = std::thread::spawn(context::bind(move || context::current() == outer));
/// assert!(handle.join().unwrap());
/// ```
pub fn bind<F: FnOnce() -> R, R>(f: F) -> impl FnOnce() -> R {
    let ctx = current();
    move || {
        let _g = attach(ctx);
        f()
    }
}

/// A future that makes a context current each time it is polled.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct WithContext<F> {
    inner: F,
    ctx: Option<SpanContext>,
}

impl<F: Future> Future for WithContext<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<F::Output> {
        // SAFETY: `inner` is structurally pinned: it is never moved out of `self`, and `ctx` is
        // `Copy` and never pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let _g = attach(this.ctx);
        // SAFETY: see above; `this` came from a pinned reference and `inner` is not moved.
        unsafe { Pin::new_unchecked(&mut this.inner) }.poll(cx)
    }
}

/// Carrying a context into futures, e.g. across `tokio::spawn`.
pub trait FutureExt: Future + Sized {
    /// Polls this future with `ctx` as the current context.
    fn with_context(self, ctx: Option<SpanContext>) -> WithContext<Self> {
        WithContext { inner: self, ctx }
    }

    /// Polls this future with the caller's current context, so that events started inside it
    /// (also after `.await` points, and inside `tokio::spawn`) have the caller's event as parent.
    ///
    /// # Examples
    /// ```
    /// use rustmon_core::context::{self, FutureExt};
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let outer = context::current();
    /// let task = tokio::spawn(async move { context::current() == outer }.in_current_context());
    /// assert!(task.await.unwrap());
    /// # });
    /// ```
    fn in_current_context(self) -> WithContext<Self> {
        self.with_context(current())
    }
}

impl<F: Future> FutureExt for F {}

const HEX: &[u8; 16] = b"0123456789abcdef";

impl SpanContext {
    /// Parses a W3C `traceparent` header (`00-<trace-id>-<span-id>-<flags>`).
    ///
    /// Returns `None` for anything malformed (the caller then starts a new trace); never panics.
    /// Versions above `00` are accepted as long as the first four fields are well-formed, as the
    /// specification asks; version `ff` is invalid.
    ///
    /// # Examples
    /// ```
    /// use rustmon_core::context::SpanContext;
    /// let ctx = SpanContext::from_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
    /// assert!(ctx.sampled && ctx.remote);
    /// assert_eq!(ctx.traceparent(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    /// assert!(SpanContext::from_traceparent("garbage").is_none());
    /// ```
    pub fn from_traceparent(header: &str) -> Option<SpanContext> {
        let header = header.trim();
        let b = header.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = header.get(0..2)?;
        if !is_lower_hex(version) || version == "ff" {
            return None;
        }
        if version == "00" && b.len() != 55 {
            return None;
        }
        if b.len() > 55 && b[55] != b'-' {
            return None;
        }
        let trace = header.get(3..35)?;
        let span = header.get(36..52)?;
        let flags = header.get(53..55)?;
        if !is_lower_hex(trace) || !is_lower_hex(span) || !is_lower_hex(flags) {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(SpanContext {
            trace_id: TraceId::from_hex(trace)?,
            span_id: SpanId::from_hex(span)?,
            sampled: flags & 1 == 1,
            remote: true,
            trace_state: None,
        })
    }

    /// Parses the `traceparent` and `tracestate` headers of an incoming request: the context to
    /// continue, or `None` when `traceparent` is malformed (a `tracestate` alone means nothing).
    ///
    /// # Examples
    /// ```
    /// use rustmon_core::context::SpanContext;
    /// let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    /// let ctx = SpanContext::from_headers(tp, Some("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")).unwrap();
    /// assert_eq!(ctx.trace_state, Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    /// ```
    pub fn from_headers(traceparent: &str, tracestate: Option<&str>) -> Option<SpanContext> {
        let ctx = SpanContext::from_traceparent(traceparent)?;
        Some(match tracestate {
            Some(ts) => ctx.with_trace_state(ts),
            None => ctx,
        })
    }

    /// This context carrying the `tracestate` header value `header`, validated and normalised as
    /// [`TraceState::parse`] does (an empty or invalid header carries none).
    ///
    /// Values are shared for the life of the process, so nothing is allocated per request once a
    /// value has been seen: up to 1024 distinct values of at most 512 bytes (the length the
    /// specification asks every vendor to propagate). Beyond that cap a new value is not carried.
    pub fn with_trace_state(mut self, header: &str) -> SpanContext {
        static STATES: OnceLock<Interner> = OnceLock::new();
        let states = STATES.get_or_init(|| Interner::new(1024, 512));
        let header = header.trim();
        self.trace_state = if header.is_empty() {
            None
        } else if let Some(known) = states.known(header) {
            Some(known)
        } else {
            let canonical = TraceState::parse(header).header();
            match states.get(&canonical) {
                Cow::Borrowed(s) if !s.is_empty() => Some(s),
                _ => None,
            }
        };
        self
    }

    /// Writes the `traceparent` header value into a stack buffer, without allocating.
    pub fn write_traceparent(&self, out: &mut [u8; 55]) {
        out[..3].copy_from_slice(b"00-");
        write_hex(&self.trace_id.to_bytes(), &mut out[3..35]);
        out[35] = b'-';
        write_hex(&self.span_id.to_bytes(), &mut out[36..52]);
        out[52] = b'-';
        out[53] = b'0';
        out[54] = if self.sampled { b'1' } else { b'0' };
    }

    /// Hands `set` each header that carries this context to another process, as
    /// `(name, value)`: `traceparent`, then `tracestate` when the trace has one. Nothing is
    /// allocated; HTTP clients, gRPC metadata and message headers all inject through it.
    ///
    /// # Examples
    /// ```
    /// use rustmon_core::context::SpanContext;
    /// let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    /// let ctx = SpanContext::from_headers(tp, Some("congo=t61rcWkgMzE")).unwrap();
    /// let mut headers = Vec::new();
    /// ctx.propagation_headers(|name, value| headers.push((name, value.to_vec())));
    /// assert_eq!(headers[0], ("traceparent", tp.as_bytes().to_vec()));
    /// assert_eq!(headers[1], ("tracestate", b"congo=t61rcWkgMzE".to_vec()));
    /// ```
    pub fn propagation_headers(&self, mut set: impl FnMut(&'static str, &[u8])) {
        let mut buf = [0u8; 55];
        self.write_traceparent(&mut buf);
        set("traceparent", &buf);
        if let Some(ts) = self.trace_state {
            set("tracestate", ts.as_bytes());
        }
    }

    /// The `traceparent` header value for this context.
    pub fn traceparent(&self) -> String {
        let mut buf = [0u8; 55];
        self.write_traceparent(&mut buf);
        buf.iter().map(|&b| b as char).collect()
    }
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn write_hex(bytes: &[u8], out: &mut [u8]) {
    for (i, byte) in bytes.iter().enumerate() {
        out[2 * i] = HEX[usize::from(byte >> 4)];
        out[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
}

/// A W3C `tracestate` header: vendor key-value pairs carried along a trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceState {
    entries: Vec<(String, String)>,
}

impl TraceState {
    /// The most entries a `tracestate` may hold.
    pub const MAX_ENTRIES: usize = 32;

    /// Parses a `tracestate` header. Malformed list members are skipped (as the specification
    /// allows), a duplicated key invalidates the whole header (returns an empty state), and at most
    /// 32 entries are kept.
    ///
    /// # Examples
    /// ```
    /// use rustmon_core::context::TraceState;
    /// let ts = TraceState::parse("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE");
    /// assert_eq!(ts.get("congo"), Some("t61rcWkgMzE"));
    /// assert_eq!(ts.header(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    /// ```
    pub fn parse(header: &str) -> TraceState {
        let mut entries: Vec<(String, String)> = Vec::new();
        for member in header.split(',') {
            let member = member.trim();
            let Some((k, v)) = member.split_once('=') else {
                continue;
            };
            if !valid_key(k) || !valid_value(v) {
                continue;
            }
            if entries.iter().any(|(ek, _)| ek == k) {
                return TraceState::default();
            }
            if entries.len() == Self::MAX_ENTRIES {
                break;
            }
            entries.push((k.to_owned(), v.to_owned()));
        }
        TraceState { entries }
    }

    /// The value for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `key` (moving it to the front, as the specification asks of an updated entry).
    /// Invalid keys or values are ignored and `false` is returned.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        if !valid_key(key) || !valid_value(value) {
            return false;
        }
        self.entries.retain(|(k, _)| k != key);
        self.entries.insert(0, (key.to_owned(), value.to_owned()));
        self.entries.truncate(Self::MAX_ENTRIES);
        true
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The header value.
    pub fn header(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

fn valid_key(k: &str) -> bool {
    let (tenant, system) = match k.split_once('@') {
        Some((t, s)) => (Some(t), s),
        None => (None, k),
    };
    let key_chars = |s: &str| {
        s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/'))
    };
    let ok_system = !system.is_empty()
        && system.len() <= if tenant.is_some() { 14 } else { 256 }
        && key_chars(system)
        && (tenant.is_some() || system.as_bytes()[0].is_ascii_lowercase());
    let ok_tenant = tenant.is_none_or(|t| !t.is_empty() && t.len() <= 241 && key_chars(t));
    ok_system && ok_tenant
}

fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !v.ends_with(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn traceparent_round_trip() {
        let ctx = SpanContext::from_traceparent(TP).unwrap();
        assert_eq!(ctx.trace_id, TraceId(0x0af7651916cd43dd8448eb211c80319c));
        assert_eq!(ctx.span_id, SpanId(0xb7ad6b7169203331));
        assert!(ctx.sampled);
        assert_eq!(ctx.traceparent(), TP);
        let unsampled = SpanContext {
            sampled: false,
            ..ctx
        };
        assert!(unsampled.traceparent().ends_with("-00"));
    }

    #[test]
    fn malformed_traceparents_are_rejected() {
        for bad in [
            "",
            "00",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01",
            "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "é0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01é",
            "00-0af7651916cd43dd8448eb211c8031é-b7ad6b7169203331-01",
        ] {
            assert_eq!(SpanContext::from_traceparent(bad), None, "{bad:?}");
        }
        // A future version may carry more fields.
        let future = format!("cc{}-what-ever", &TP[2..]);
        assert!(SpanContext::from_traceparent(&future).is_some());
    }

    #[test]
    fn tracestate_rules() {
        let mut ts = TraceState::parse("a=1,b=2, bad key=3,c=");
        assert_eq!(ts.header(), "a=1,b=2");
        assert!(ts.insert("b", "9"));
        assert_eq!(ts.header(), "b=9,a=1");
        assert!(!ts.insert("Bad", "x"));
        assert!(TraceState::parse("a=1,a=2").is_empty());
        assert_eq!(TraceState::parse("t@sys=1").get("t@sys"), Some("1"));
        let many: Vec<String> = (0..40).map(|i| format!("k{i}=v")).collect();
        assert_eq!(TraceState::parse(&many.join(",")).entries.len(), 32);
    }
}
