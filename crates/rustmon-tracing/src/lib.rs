//! The `tracing` bridge: a [`tracing_subscriber::Layer`] that turns `tracing` spans into rustmon
//! [`Event`]s, so that libraries already emitting `tracing` spans are monitored with no code
//! change.
//!
//! Add [`RustmonLayer`] to a `tracing_subscriber` registry. Every `tracing` span becomes a rustmon
//! event (plugin [`PLUGIN`]), `tracing` events inside a span become span events on it, and an
//! `ERROR`-level event records an error. Parent links work both ways: a rustmon event started
//! inside an entered `tracing` span is its child, and a `tracing` span created inside an entered
//! rustmon event (or a future carrying its context) is that event's child.
//!
//! # Mapping
//!
//! | `tracing` | rustmon |
//! |---|---|
//! | span name (`info_span!("name")`, the function of `#[instrument]`) | event name |
//! | field `otel.name` | event name (overrides the span name) |
//! | field `otel.kind`: `server`, `client`, `producer`/`consumer` (→ messaging), `internal` (→ custom), or any rustmon kind name (`database`, `cache`, …); case-insensitive | event kind (default [`Kind::Custom`]); fixed when the span is created |
//! | field `otel.status_code`: `ok`, `error`, `unset` (case-insensitive) | event status |
//! | any other field, when created or [recorded](tracing_core::span::Record) | attribute with the field's name: `bool`, `i64`, `u64`, `f64` keep their type, `i128`/`u128` that fit too, strings, errors and `?debug`/`%display` values become strings |
//! | parent span (contextual or explicit) | parent event; see [`RustmonLayer`] for the rules |
//! | event inside a span | span event: the `message` as name (the event's name when there is none), other fields as attributes, plus `level` and `target` |
//! | `ERROR`-level event inside a span | also an error on the span's event (status error): type from an `error.type` field, else the event's target; message from `message` and an `error` field |
//! | span closed | event finished |
//!
//! Events outside any span are ignored: they have no operation to belong to. At most 128 span
//! events are kept per span ([`RustmonLayer::with_max_span_events`]).
//!
//! # Examples
//! ```
//! use std::time::Duration;
//! use rustmon_core::Monitor;
//! use rustmon_tracing::RustmonLayer;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let capture = rustmon_test::Capture::new();
//! let monitor = Monitor::builder("svc").listener(capture.listener()).build().unwrap();
//! let subscriber = tracing_subscriber::registry().with(RustmonLayer::with_monitor(monitor.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let _request = tracing::info_span!("GET /orders/{id}", otel.kind = "server", order.id = 7_u64).entered();
//!     tracing::info!("loading order");
//! });
//! monitor.flush(Duration::from_secs(5));
//! capture.expect("GET /orders/{id}").kind(rustmon_core::Kind::Server).attr("order.id", 7_u64).one();
//! ```

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};

use rustmon_core::context::{self, SpanContext};
use rustmon_core::{Event, KeyValue, Kind, Monitor, Status, Value};
use tracing_core::field::{Field, Visit};
use tracing_core::span::{self, Attributes as SpanAttributes, Record};
use tracing_core::{Event as TracingEvent, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

/// The plugin name on every event this layer records (see
/// [`PluginListener`](rustmon_core::PluginListener)).
pub const PLUGIN: &str = "tracing";

/// A [`Layer`] that records `tracing` spans as rustmon [`Event`]s.
///
/// # Contract
/// - **Spans.** Each new span starts an event (kind, name and status mapped as the
///   [crate docs](crate) describe); its fields become attributes; the event is finished when the
///   span closes (all its handles are dropped), so its duration is the span's lifetime.
/// - **Parents.** A span with an explicit parent (`parent: &span`) is a child of that span's event
///   (or the nearest ancestor that has one). A contextual span (the usual case) is a child of the
///   current rustmon context, which is the innermost of the entered `tracing` span and any rustmon
///   event entered inside it; without one, of the contextual parent span's event; without either,
///   the root of a new trace. A span with `parent: None` starts a new trace.
/// - **Context.** While a span is entered (`span.enter()`, `in_scope`, each poll of an
///   [`Instrumented`](https://docs.rs/tracing/latest/tracing/instrument/struct.Instrumented.html)
///   future), its event's context is the thread's current rustmon context, so rustmon events
///   started there are its children. Exiting restores the previous context, also when spans are
///   re-entered or exited out of order.
/// - **Cost.** When monitoring is disabled (or no global monitor is installed, for
///   [`RustmonLayer::new`]) every callback returns after one or two atomic loads, except exiting a
///   span, which also checks a thread-local stack. Spans created while disabled are not recorded,
///   even if monitoring is enabled before they close.
///
/// # Examples
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// use tracing_subscriber::util::SubscriberInitExt;
///
/// // In the application, after installing the global monitor (`rustmon::init`):
/// tracing_subscriber::registry()
///     .with(rustmon_tracing::RustmonLayer::new())
///     .init();
/// ```
#[derive(Debug)]
pub struct RustmonLayer {
    monitor: Option<Monitor>,
    id: usize,
    location: bool,
    max_span_events: usize,
}

const DEFAULT_MAX_SPAN_EVENTS: usize = 128;

static NEXT_LAYER_ID: AtomicUsize = AtomicUsize::new(1);

impl RustmonLayer {
    /// A layer recording into the global monitor (looked up on every span, so it may be installed
    /// after the layer).
    ///
    /// # Examples
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt;
    /// let subscriber = tracing_subscriber::registry().with(rustmon_tracing::RustmonLayer::new());
    /// # drop(subscriber);
    /// ```
    pub fn new() -> Self {
        RustmonLayer {
            monitor: None,
            id: NEXT_LAYER_ID.fetch_add(1, Ordering::Relaxed),
            location: false,
            max_span_events: DEFAULT_MAX_SPAN_EVENTS,
        }
    }

    /// A layer recording into `monitor` rather than the global one (tests, several monitors).
    ///
    /// # Examples
    /// ```
    /// use rustmon_core::Monitor;
    /// use tracing_subscriber::layer::SubscriberExt;
    /// let monitor = Monitor::builder("svc").build().unwrap();
    /// let subscriber = tracing_subscriber::registry()
    ///     .with(rustmon_tracing::RustmonLayer::with_monitor(monitor.clone()));
    /// # drop(subscriber);
    /// # monitor.shutdown(std::time::Duration::from_secs(1));
    /// ```
    pub fn with_monitor(monitor: Monitor) -> Self {
        RustmonLayer {
            monitor: Some(monitor),
            ..RustmonLayer::new()
        }
    }

    /// Whether to record where each span was declared, as the attributes `code.filepath`,
    /// `code.lineno` and `code.namespace` (the span's target). Off by default: they take three of
    /// the eight attributes an event stores without allocating.
    ///
    /// # Examples
    /// ```
    /// let layer = rustmon_tracing::RustmonLayer::new().with_location(true);
    /// # drop(layer);
    /// ```
    pub fn with_location(mut self, location: bool) -> Self {
        self.location = location;
        self
    }

    /// The most span events (and errors) kept per span; later ones are counted in the attribute
    /// `rustmon.span_events.dropped` instead. Default 128: a long-lived span (a connection, a
    /// worker loop) with chatty logs must not grow without bound.
    ///
    /// # Examples
    /// ```
    /// let layer = rustmon_tracing::RustmonLayer::new().with_max_span_events(16);
    /// # drop(layer);
    /// ```
    pub fn with_max_span_events(mut self, max: usize) -> Self {
        self.max_span_events = max;
        self
    }

    #[inline]
    fn enabled(&self) -> bool {
        match &self.monitor {
            Some(m) => m.is_enabled(),
            None => rustmon_core::global().is_some_and(Monitor::is_enabled),
        }
    }

    fn start(&self, kind: Kind, name: Cow<'static, str>, parent: Option<SpanContext>) -> Event {
        match &self.monitor {
            Some(m) => m.start_event_with_parent(kind, name, parent),
            None => Event::start_with_parent(kind, name, parent),
        }
    }
}

impl Default for RustmonLayer {
    fn default() -> Self {
        RustmonLayer::new()
    }
}

/// What the layer keeps in a span's extensions. Private, so no other layer can collide with it.
struct RustmonSpan {
    event: Event,
    /// Span events not kept because of [`RustmonLayer::with_max_span_events`].
    dropped_span_events: u64,
}

/// One entered span on this thread: which layer entered it, and the context to restore.
struct Entered {
    layer: usize,
    span: u64,
    previous: Option<SpanContext>,
}

thread_local! {
    static ENTERED: RefCell<Vec<Entered>> = const { RefCell::new(Vec::new()) };
}

/// Makes `ctx` the current rustmon context without a guard: the layer restores contexts itself,
/// because `tracing` spans may be exited in any order.
fn set_current(ctx: Option<SpanContext>) {
    // A `ContextGuard` owns no resources: forgetting it only skips restoring the previous context,
    // which `on_exit` does explicitly.
    std::mem::forget(context::attach(ctx));
}

/// The context of the nearest span from `span` up that has a rustmon event.
fn ancestor_context<S>(span: Option<SpanRef<'_, S>>) -> Option<SpanContext>
where
    S: for<'a> LookupSpan<'a>,
{
    span?.scope().find_map(|s| {
        s.extensions()
            .get::<RustmonSpan>()
            .and_then(|r| r.event.context())
    })
}

impl<S> Layer<S> for RustmonLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &SpanAttributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        if !self.enabled() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let parent = if attrs.is_root() {
            None
        } else if attrs.is_contextual() {
            context::current().or_else(|| ancestor_context(span.parent()))
        } else {
            ancestor_context(span.parent()).or_else(context::current)
        };

        let meta = attrs.metadata();
        // The kind is needed to start the event; the other fields are recorded into it directly.
        let mut kind = Kind::Custom;
        if meta.fields().field("otel.kind").is_some() {
            let mut visitor = KindVisitor(None);
            attrs.record(&mut visitor);
            kind = visitor.0.unwrap_or(Kind::Custom);
        }
        let mut event = self
            .start(kind, Cow::Borrowed(meta.name()), parent)
            .with_plugin(PLUGIN);
        if !event.is_recording() {
            return;
        }
        attrs.record(&mut Fields::new(Target::Span(&mut event)));
        if self.location {
            if let Some(file) = meta.file() {
                event.set("code.filepath", file);
            }
            if let Some(line) = meta.line() {
                event.set("code.lineno", line);
            }
            event.set("code.namespace", meta.target());
        }
        span.extensions_mut().insert(RustmonSpan {
            event,
            dropped_span_events: 0,
        });
    }

    fn on_record(&self, id: &span::Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !self.enabled() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        let Some(RustmonSpan { event, .. }) = ext.get_mut::<RustmonSpan>() else {
            return;
        };
        values.record(&mut Fields::new(Target::Span(event)));
    }

    fn on_event(&self, tracing_event: &TracingEvent<'_>, ctx: Context<'_, S>) {
        if !self.enabled() {
            return;
        }
        let Some(span) = ctx.event_span(tracing_event) else {
            return;
        };
        let mut ext = span.extensions_mut();
        let Some(RustmonSpan {
            event,
            dropped_span_events,
        }) = ext.get_mut::<RustmonSpan>()
        else {
            return;
        };
        let (kept_events, kept_errors) = event
            .record()
            .map_or((0, 0), |r| (r.span_events.len(), r.errors.len()));
        let is_error = *tracing_event.metadata().level() == Level::ERROR;
        if kept_events >= self.max_span_events && (!is_error || kept_errors >= self.max_span_events)
        {
            *dropped_span_events += 1;
            return;
        }
        let meta = tracing_event.metadata();
        let mut fields = Fields::new(Target::List(Vec::new()));
        tracing_event.record(&mut fields);

        if is_error && kept_errors < self.max_span_events {
            let error_type = fields
                .error_type
                .take()
                .unwrap_or(Cow::Borrowed(meta.target()));
            let message = match (&fields.message, &fields.error) {
                (Some(m), Some(e)) => format!("{m}: {e}"),
                (Some(m), None) => m.clone(),
                (None, Some(e)) => e.clone(),
                (None, None) => meta.name().to_owned(),
            };
            event.record_error(error_type, message);
        }

        let name: Cow<'static, str> = match fields.message {
            Some(m) => Cow::Owned(m),
            None => Cow::Borrowed(meta.name()),
        };
        let Target::List(mut attributes) = fields.target else {
            return;
        };
        if let Some(e) = fields.error {
            attributes.push(KeyValue::new("error", e));
        }
        attributes.push(KeyValue::new("level", meta.level().as_str()));
        attributes.push(KeyValue::new("target", meta.target()));
        if kept_events < self.max_span_events {
            event.add_span_event(name, attributes);
        } else {
            *dropped_span_events += 1;
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        if !self.enabled() {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let Some(span_ctx) = span
            .extensions()
            .get::<RustmonSpan>()
            .and_then(|r| r.event.context())
        else {
            return;
        };
        let layer = self.id;
        let _ = ENTERED.try_with(|stack| {
            if let Ok(mut stack) = stack.try_borrow_mut() {
                stack.push(Entered {
                    layer,
                    span: id.into_u64(),
                    previous: context::current(),
                });
                set_current(Some(span_ctx));
            }
        });
    }

    fn on_exit(&self, id: &span::Id, _ctx: Context<'_, S>) {
        // Not gated on `enabled`: a span entered while monitoring was on must restore the context
        // even if monitoring was turned off meanwhile. An empty stack is the fast path.
        let (layer, span) = (self.id, id.into_u64());
        let _ = ENTERED.try_with(|stack| {
            let Ok(mut stack) = stack.try_borrow_mut() else {
                return;
            };
            let Some(pos) = stack
                .iter()
                .rposition(|e| e.layer == layer && e.span == span)
            else {
                return;
            };
            let entry = stack.remove(pos);
            match stack.get_mut(pos) {
                // Exited out of order: the span entered after it now restores what it would have.
                Some(above) => above.previous = entry.previous,
                None => set_current(entry.previous),
            }
        });
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        if !self.enabled() {
            // The registry drops the span's extensions right after this, which finishes a
            // recording event through `Event`'s `Drop`.
            return;
        }
        let Some(span) = ctx.span(&id) else { return };
        let data = span.extensions_mut().remove::<RustmonSpan>();
        if let Some(RustmonSpan {
            mut event,
            dropped_span_events,
        }) = data
        {
            if dropped_span_events > 0 {
                event.set("rustmon.span_events.dropped", dropped_span_events);
            }
            event.finish();
        }
    }
}

/// Where [`Fields`] puts what it visits.
enum Target<'a> {
    /// A span's event: fields become its attributes; `otel.name` and `otel.status_code` apply to
    /// it (`otel.kind` was read before it started).
    Span(&'a mut Event),
    /// The attributes of a span event; `message`, `error` and `error.type` are kept apart.
    List(Vec<KeyValue>),
}

/// Records a span's or an event's fields.
struct Fields<'a> {
    target: Target<'a>,
    message: Option<String>,
    error: Option<String>,
    error_type: Option<Cow<'static, str>>,
}

impl<'a> Fields<'a> {
    fn new(target: Target<'a>) -> Self {
        Fields {
            target,
            message: None,
            error: None,
            error_type: None,
        }
    }

    #[inline]
    fn push(&mut self, field: &Field, value: Value) {
        match &mut self.target {
            Target::Span(event) => {
                event.set(field.name(), value);
            }
            Target::List(list) => list.push(KeyValue {
                key: Cow::Borrowed(field.name()),
                value,
            }),
        }
    }

    /// Dispatches a string value: well-known fields, or an attribute.
    fn string(&mut self, field: &Field, value: Cow<'_, str>) {
        match (&mut self.target, field.name()) {
            (Target::Span(_), "otel.kind") => {}
            (Target::Span(event), "otel.name") => {
                event.set_name(value.into_owned());
            }
            (Target::Span(event), "otel.status_code") => {
                if let Some(status) = parse_status(&value) {
                    event.set_status(status);
                }
            }
            (Target::List(_), "message") => self.message = Some(value.into_owned()),
            (Target::List(_), "error") => self.error = Some(value.into_owned()),
            (Target::List(_), "error.type") => {
                self.error_type = Some(Cow::Owned(value.into_owned()))
            }
            _ => self.push(field, Value::Str(Cow::Owned(value.into_owned()))),
        }
    }
}

/// Finds `otel.kind` among a new span's fields.
struct KindVisitor(Option<Kind>);

impl Visit for KindVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "otel.kind" {
            self.0 = parse_kind(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "otel.kind" {
            self.0 = parse_kind(&format!("{value:?}"));
        }
    }
}

impl Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::U64(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.push(field, Value::I64(v)),
            Err(_) => self.push(field, Value::Str(Cow::Owned(value.to_string()))),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.push(field, Value::U64(v)),
            Err(_) => self.push(field, Value::Str(Cow::Owned(value.to_string()))),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.string(field, Cow::Borrowed(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut message = value.to_string();
        let mut source = value.source();
        while let Some(s) = source {
            let _ = write!(message, ": {s}");
            source = s.source();
        }
        self.string(field, Cow::Owned(message));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.string(field, Cow::Owned(format!("{value:?}")));
    }
}

/// Parses an `otel.kind` value: OpenTelemetry span kinds and rustmon kind names, any case.
fn parse_kind(value: &str) -> Option<Kind> {
    let value = unquote(value);
    [
        ("producer", Kind::Messaging),
        ("consumer", Kind::Messaging),
        ("internal", Kind::Custom),
    ]
    .into_iter()
    .find(|(n, _)| n.eq_ignore_ascii_case(value))
    .map(|(_, k)| k)
    .or_else(|| {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(value))
    })
}

/// Trims blanks, and the quotes of a string recorded with `?` (`otel.kind = ?"server"`).
fn unquote(value: &str) -> &str {
    let value = value.trim();
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Parses an `otel.status_code` value, any case.
fn parse_status(value: &str) -> Option<Status> {
    let value = unquote(value);
    [Status::Unset, Status::Ok, Status::Error]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_statuses_parse_in_any_case() {
        assert_eq!(parse_kind("SERVER"), Some(Kind::Server));
        assert_eq!(parse_kind("Client"), Some(Kind::Client));
        assert_eq!(parse_kind("producer"), Some(Kind::Messaging));
        assert_eq!(parse_kind("Consumer"), Some(Kind::Messaging));
        assert_eq!(parse_kind("internal"), Some(Kind::Custom));
        assert_eq!(parse_kind("database"), Some(Kind::Database));
        assert_eq!(parse_kind("\"server\""), Some(Kind::Server));
        assert_eq!(parse_kind("nonsense"), None);
        assert_eq!(parse_status("ERROR"), Some(Status::Error));
        assert_eq!(parse_status("Ok"), Some(Status::Ok));
        assert_eq!(parse_status("unset"), Some(Status::Unset));
        assert_eq!(parse_status("bad"), None);
    }

    #[test]
    fn events_are_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<RustmonSpan>();
        check::<RustmonLayer>();
    }
}
