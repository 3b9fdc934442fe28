//! [`Event`]: one timed, attributed operation (the seed's EventTracker), and [`EventRecord`], what
//! listeners receive once it is finished.

use std::borrow::Cow;
use std::fmt;
use std::mem::ManuallyDrop;
use std::time::Duration;

use crate::clock::Instant;

use crate::attr::{Attributes, Key, KeyValue, Value};
use crate::clock;
use crate::context::{self, ContextGuard, SpanContext};
use crate::ids::{SpanId, TraceId};
use crate::monitor::{self, Monitor};

/// What kind of operation an event measures.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// An incoming request handled by this program (HTTP server, gRPC server).
    Server,
    /// An outgoing request to another service (HTTP client).
    Client,
    /// A database statement.
    Database,
    /// A cache command (Redis, memcached).
    Cache,
    /// Producing or consuming a message (Kafka, AMQP, NATS).
    Messaging,
    /// A remote procedure call (gRPC).
    Rpc,
    /// A runtime observation (profiles, runtime events).
    Runtime,
    /// Anything the application defines itself.
    Custom,
    /// A named code section inside another operation.
    Segment,
    /// A socket: a listener, a connection.
    Network,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 10] = [
        Kind::Server,
        Kind::Client,
        Kind::Database,
        Kind::Cache,
        Kind::Messaging,
        Kind::Rpc,
        Kind::Runtime,
        Kind::Custom,
        Kind::Segment,
        Kind::Network,
    ];

    /// The lowercase name, as exported in `rustmon.event.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Database => "database",
            Kind::Cache => "cache",
            Kind::Messaging => "messaging",
            Kind::Rpc => "rpc",
            Kind::Runtime => "runtime",
            Kind::Custom => "custom",
            Kind::Segment => "segment",
            Kind::Network => "network",
        }
    }

    /// The OpenTelemetry span kind this kind is exported as: `server`; `client` for client,
    /// database, cache and rpc; `producer` for messaging; `internal` for the rest.
    pub fn span_kind(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Client | Kind::Database | Kind::Cache | Kind::Rpc => "client",
            Kind::Messaging => "producer",
            Kind::Runtime | Kind::Custom | Kind::Segment | Kind::Network => "internal",
        }
    }

    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an operation ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub enum Status {
    /// Not set: the operation is assumed to have succeeded.
    #[default]
    Unset,
    /// Explicitly successful.
    Ok,
    /// Failed.
    Error,
}

impl Status {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Unset => "unset",
            Status::Ok => "ok",
            Status::Error => "error",
        }
    }
}

/// An error recorded on an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The error's type, e.g. `std::io::Error` or a database error code class.
    pub error_type: Cow<'static, str>,
    /// The error's message.
    pub message: String,
    /// A backtrace, when one was captured.
    pub backtrace: Option<String>,
}

/// A timestamped annotation inside an event (a log line within a span).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    /// What happened.
    pub name: Cow<'static, str>,
    /// When, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// Details.
    pub attributes: Vec<KeyValue>,
}

/// A finished event, as listeners receive it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventRecord {
    /// The trace the event belongs to.
    pub trace_id: TraceId,
    /// The event's own id.
    pub span_id: SpanId,
    /// The parent event's id; `None` for a root.
    pub parent_span_id: Option<SpanId>,
    /// Whether the parent lives in another process (continued from a `traceparent`).
    pub parent_remote: bool,
    /// The head-sampling decision of the trace. Unsampled events still feed metrics, and reach
    /// listeners only when they failed or were slow.
    pub sampled: bool,
    /// Kept whatever the sampling decision: marked worth seeing with [`Event::keep`] or
    /// [`Monitor::annotate`](crate::Monitor::annotate).
    pub keep: bool,
    /// The trace's W3C `tracestate`, inherited from the parent.
    pub trace_state: Option<&'static str>,
    /// The kind of operation.
    pub kind: Kind,
    /// How it ended.
    pub status: Status,
    /// A low-cardinality name: a route template, a statement fingerprint, a command.
    pub name: Cow<'static, str>,
    /// The plugin that recorded the event (`"custom"` for the application's own events).
    pub plugin: &'static str,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// Duration in nanoseconds, from the monotonic clock.
    pub duration_nanos: u64,
    /// Attributes, OpenTelemetry semantic-convention names where they exist.
    pub attributes: Attributes,
    /// Errors recorded while the operation ran.
    pub errors: Vec<ErrorInfo>,
    /// Annotations recorded while the operation ran.
    pub span_events: Vec<SpanEvent>,
}

impl EventRecord {
    /// The value of attribute `key`, if set.
    pub fn attribute(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .rev()
            .find(|kv| kv.key == key)
            .map(|kv| &kv.value)
    }

    /// The event's duration.
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.duration_nanos)
    }

    /// The event's context, as a child would see it.
    pub fn context(&self) -> SpanContext {
        SpanContext {
            trace_id: self.trace_id,
            span_id: self.span_id,
            sampled: self.sampled,
            remote: false,
            trace_state: self.trace_state,
        }
    }
}

/// Where a finished event goes.
#[derive(Clone)]
pub(crate) enum Sink {
    /// The global monitor (no reference count to touch on the hot path).
    Global,
    /// A monitor held by the event.
    Monitor(Monitor),
}

struct Live {
    record: Box<EventRecord>,
    start: Instant,
    sink: Sink,
}

/// A timed operation in progress: the seed's EventTracker.
///
/// Start one with [`Event::start`] (recorded by the global monitor, the current context as parent)
/// or [`Monitor::start_event`]; set attributes, errors and status; then [`finish`](Event::finish)
/// it. A finished event goes to the pipeline exactly once. **Dropping an unfinished event finishes
/// it**, so an early return or `?` is still recorded; use [`discard`](Event::discard) to drop it
/// unrecorded. When monitoring is disabled (or no monitor is installed) the event is inert and
/// every method is a no-op.
///
/// Recording never blocks and, with up to 8 attributes whose keys and string values are
/// `&'static str`, never allocates.
///
/// # Examples
/// ```
/// use rustmon_core::{Event, Kind, Status};
/// let mut checkout = Event::start(Kind::Custom, "checkout");
/// checkout.set("cart.items", 3_i64);
/// {
///     let _current = checkout.enter();
///     let mut pay = Event::start(Kind::Client, "POST payments"); // child of `checkout`
///     pay.set_status(Status::Ok);
/// } // `pay` finished on drop
/// checkout.finish();
/// ```
#[must_use = "an event is recorded when finished or dropped; bind it to a variable"]
pub struct Event {
    /// `None` once submitted (or when inert). Never dropped implicitly: `Drop` submits it, and
    /// leaving out the drop glue saves an inert event an out-of-line call.
    live: ManuallyDrop<Option<Live>>,
}

impl Event {
    /// Starts an event on the global monitor, as a child of the current context.
    ///
    /// Inert if no global monitor is installed or monitoring is disabled; that check is one relaxed
    /// atomic load.
    #[inline(always)]
    pub fn start(kind: Kind, name: impl Into<Cow<'static, str>>) -> Event {
        if !monitor::global_enabled() {
            return Event::inert();
        }
        match context::parent_for_new_event() {
            Some(parent) => Event::start_global(kind, name.into(), parent),
            None => Event::inert(),
        }
    }

    /// Starts an event on the global monitor with an explicit parent (`None`: a new trace).
    #[inline]
    pub fn start_with_parent(
        kind: Kind,
        name: impl Into<Cow<'static, str>>,
        parent: Option<SpanContext>,
    ) -> Event {
        if !monitor::global_enabled() || context::is_suppressed() {
            return Event::inert();
        }
        Event::start_global(kind, name.into(), parent)
    }

    fn start_global(kind: Kind, name: Cow<'static, str>, parent: Option<SpanContext>) -> Event {
        match monitor::global() {
            Some(m) => Event::begin(m, Sink::Global, kind, name, parent),
            None => Event::inert(),
        }
    }

    /// An event that records nothing.
    #[inline(always)]
    pub const fn inert() -> Event {
        Event {
            live: ManuallyDrop::new(None),
        }
    }

    #[inline]
    pub(crate) fn begin(
        monitor: &Monitor,
        sink: Sink,
        kind: Kind,
        name: Cow<'static, str>,
        parent: Option<SpanContext>,
    ) -> Event {
        let (trace_id, parent_span_id, parent_remote, sampled, trace_state) = match parent {
            Some(p) => (
                p.trace_id,
                Some(p.span_id),
                p.remote,
                p.sampled,
                p.trace_state,
            ),
            None => {
                let trace_id = TraceId::random();
                (trace_id, None, false, monitor.sample(trace_id), None)
            }
        };
        let mut record = crate::pool::take();
        record.trace_id = trace_id;
        record.span_id = SpanId::random();
        record.parent_span_id = parent_span_id;
        record.parent_remote = parent_remote;
        record.sampled = sampled;
        record.keep = false;
        record.trace_state = trace_state;
        record.kind = kind;
        record.status = Status::Unset;
        record.name = name;
        record.plugin = "custom";
        let start = Instant::now();
        record.start_unix_nanos = clock::unix_nanos_at(start);
        Event {
            live: ManuallyDrop::new(Some(Live {
                record,
                start,
                sink,
            })),
        }
    }

    /// Starts a child of this event, recorded by the same monitor.
    pub fn new_child(&self, kind: Kind, name: impl Into<Cow<'static, str>>) -> Event {
        match &*self.live {
            None => Event::inert(),
            Some(live) => {
                let parent = Some(live.record.context());
                match &live.sink {
                    Sink::Global => Event::start_global(kind, name.into(), parent),
                    Sink::Monitor(m) if m.is_enabled() => {
                        Event::begin(m, live.sink.clone(), kind, name.into(), parent)
                    }
                    Sink::Monitor(_) => Event::inert(),
                }
            }
        }
    }

    /// Whether this event records anything (monitoring was enabled when it started).
    #[inline]
    pub fn is_recording(&self) -> bool {
        self.live.is_some()
    }

    /// This event's context, to make it a parent or propagate it; `None` for an inert event.
    #[inline]
    pub fn context(&self) -> Option<SpanContext> {
        self.live.as_ref().map(|l| l.record.context())
    }

    /// Makes this event the current context of this thread until the guard drops.
    #[inline]
    pub fn enter(&self) -> ContextGuard {
        context::attach(self.context().or_else(context::current))
    }

    /// Sets an attribute (a later value for the same key wins on export).
    #[inline(always)]
    pub fn set(&mut self, key: impl Into<Key>, value: impl Into<Value>) -> &mut Self {
        if let Some(live) = &mut *self.live {
            live.record.attributes.push(KeyValue {
                key: key.into(),
                value: value.into(),
            });
        }
        self
    }

    /// Sets an attribute, builder style.
    #[inline]
    pub fn with(mut self, key: impl Into<Key>, value: impl Into<Value>) -> Self {
        self.set(key, value);
        self
    }

    /// Renames the event, e.g. once a router has matched the route template.
    pub fn set_name(&mut self, name: impl Into<Cow<'static, str>>) -> &mut Self {
        if let Some(live) = &mut *self.live {
            live.record.name = name.into();
        }
        self
    }

    /// The current name; empty for an inert event.
    pub fn name(&self) -> &str {
        self.live.as_ref().map_or("", |l| &l.record.name)
    }

    /// Tags the event with the plugin that records it (see [`PluginListener`](crate::PluginListener)).
    #[inline]
    pub fn with_plugin(mut self, plugin: &'static str) -> Self {
        if let Some(live) = &mut *self.live {
            live.record.plugin = plugin;
        }
        self
    }

    /// Tags the event with the plugin that records it, in place.
    pub fn set_plugin(&mut self, plugin: &'static str) -> &mut Self {
        if let Some(live) = &mut *self.live {
            live.record.plugin = plugin;
        }
        self
    }

    /// Changes the kind, e.g. once a bridged span says what it is.
    pub fn set_kind(&mut self, kind: Kind) -> &mut Self {
        if let Some(live) = &mut *self.live {
            live.record.kind = kind;
        }
        self
    }

    /// Sets how the operation ended.
    #[inline]
    pub fn set_status(&mut self, status: Status) -> &mut Self {
        if let Some(live) = &mut *self.live {
            live.record.status = status;
        }
        self
    }

    /// Records an error with its type and message, and sets the status to [`Status::Error`].
    pub fn record_error(
        &mut self,
        error_type: impl Into<Cow<'static, str>>,
        message: impl fmt::Display,
    ) -> &mut Self {
        if let Some(live) = &mut *self.live {
            live.record.status = Status::Error;
            live.record.errors.push(ErrorInfo {
                error_type: error_type.into(),
                message: message.to_string(),
                backtrace: None,
            });
        }
        self
    }

    /// Records `error` (its type name and message, with its sources) and sets the status to
    /// [`Status::Error`]; with `backtrace`, a backtrace of the caller is captured too.
    pub fn record_std_error<E: std::error::Error + ?Sized>(
        &mut self,
        error: &E,
        backtrace: bool,
    ) -> &mut Self {
        if let Some(live) = &mut *self.live {
            let mut message = error.to_string();
            let mut source = error.source();
            while let Some(s) = source {
                message.push_str(": ");
                message.push_str(&s.to_string());
                source = s.source();
            }
            live.record.status = Status::Error;
            live.record.errors.push(ErrorInfo {
                error_type: Cow::Borrowed(std::any::type_name::<E>()),
                message,
                backtrace: backtrace
                    .then(|| std::backtrace::Backtrace::force_capture().to_string()),
            });
        }
        self
    }

    /// Adds a timestamped annotation.
    pub fn add_span_event(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        attributes: Vec<KeyValue>,
    ) -> &mut Self {
        if let Some(live) = &mut *self.live {
            live.record.span_events.push(SpanEvent {
                name: name.into(),
                time_unix_nanos: clock::now_unix_nanos(),
                attributes,
            });
        }
        self
    }

    /// Time elapsed since the event started (zero for an inert event).
    pub fn lapsed(&self) -> Duration {
        self.live
            .as_ref()
            .map_or(Duration::ZERO, |l| l.start.elapsed())
    }

    /// Read access to what has been recorded so far.
    pub fn record(&self) -> Option<&EventRecord> {
        self.live.as_ref().map(|l| &*l.record)
    }

    /// Keeps this event even if its trace was sampled out, like an error or a slow event: for
    /// what is worth seeing whatever the sampling rate (a slow statement, a detected N+1).
    pub fn keep(&mut self) -> &mut Self {
        if let Some(l) = &mut *self.live {
            l.record.keep = true;
        }
        self
    }

    /// Ends the event now and hands it to the pipeline. Never blocks: if the queue is full the
    /// event is dropped and counted in [`Stats::dropped`](crate::Stats::dropped).
    #[inline(always)]
    pub fn finish(mut self) {
        self.submit();
    }

    /// Drops the event without recording it.
    pub fn discard(mut self) {
        *self.live = None;
    }

    #[inline(always)]
    fn submit(&mut self) {
        if self.live.is_some() {
            self.submit_live();
        }
    }

    #[inline(never)]
    fn submit_live(&mut self) {
        if let Some(Live {
            mut record,
            start,
            sink,
        }) = self.live.take()
        {
            record.duration_nanos = start.elapsed().as_nanos() as u64;
            match sink {
                Sink::Global => {
                    if let Some(m) = monitor::global() {
                        m.enqueue(record);
                    }
                }
                Sink::Monitor(m) => m.enqueue(record),
            }
        }
    }
}

impl Drop for Event {
    #[inline(always)]
    fn drop(&mut self) {
        self.submit();
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.live {
            None => f.write_str("Event(inert)"),
            Some(l) => f
                .debug_struct("Event")
                .field("name", &l.record.name)
                .field("kind", &l.record.kind)
                .field("trace_id", &l.record.trace_id)
                .field("span_id", &l.record.span_id)
                .finish_non_exhaustive(),
        }
    }
}
