//! [`MonitoredConsumer`]: one messaging event per message processed, continuing the producer's
//! trace from the message headers.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use rdkafka::Message;
use rdkafka::bindings as rdsys;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, StreamConsumer};
use rustmon_core::context;
use rustmon_core::{Event, Kind, Monitor, PluginConfig, SpanContext};

use crate::config::KafkaConfig;
use crate::shared::{
    Shared, cached_high_watermark, common_attributes, conf_get, event_name, extract,
    message_attributes, partition_id,
};

mod sealed {
    pub trait Sealed {}
}

/// The consumers [`MonitoredConsumer`] wraps: [`StreamConsumer`] and [`BaseConsumer`].
pub trait KafkaConsumer: sealed::Sealed {
    /// The librdkafka handle, to read the group id and cached watermarks.
    #[doc(hidden)]
    fn native_handle(&self) -> *mut rdsys::rd_kafka_t;
}

impl<C: ConsumerContext + 'static, R> sealed::Sealed for StreamConsumer<C, R> {}
impl<C: ConsumerContext + 'static, R> KafkaConsumer for StreamConsumer<C, R> {
    fn native_handle(&self) -> *mut rdsys::rd_kafka_t {
        self.client().native_ptr()
    }
}

impl<C: ConsumerContext> sealed::Sealed for BaseConsumer<C> {}
impl<C: ConsumerContext> KafkaConsumer for BaseConsumer<C> {
    fn native_handle(&self) -> *mut rdsys::rd_kafka_t {
        self.client().native_ptr()
    }
}

/// A consumer ([`StreamConsumer`] or [`BaseConsumer`]) whose message processing is recorded:
/// one [`Kind::Messaging`] event per message, named `process {topic}`, covering the user's
/// processing code.
///
/// The event continues the producer's trace from the message's `traceparent` (and
/// `tracestate`) headers — its parent is the producer's `send` event — or, for a message
/// without them, is a child of the current context. It is the current context while the
/// processing code runs, so events started there (a database statement, an HTTP call) are its
/// children. It carries `messaging.system = kafka`, `messaging.operation.type = process`
/// (exported with span kind `consumer`), `messaging.destination.name`,
/// `messaging.destination.partition.id`, `messaging.kafka.offset`,
/// `messaging.consumer.group.name` (the consumer's `group.id`), `messaging.client.id`, the body
/// and key sizes, and `rustmon.messaging.kafka.consumer.lag`: the messages after this one in its
/// partition, from the high watermark the client last fetched (no network call), when known.
///
/// Three ways to use it, all with the consumer's own methods (`recv`, `subscribe`, `commit`…)
/// through `Deref`:
/// - [`process`](Self::process): wrap the processing future; an `Err` it returns is recorded.
/// - [`process_sync`](Self::process_sync): the same for a closure (with a [`BaseConsumer`]).
/// - [`start`](Self::start): the event itself, to enter and finish by hand.
///
/// # Examples
/// ```no_run
/// use rdkafka::{ClientConfig, Message};
/// use rdkafka::consumer::{Consumer, StreamConsumer};
/// use rustmon_kafka::MonitoredConsumer;
/// # async fn handle(_: &[u8]) -> Result<(), std::io::Error> { Ok(()) }
/// # async fn demo() -> Result<(), rdkafka::error::KafkaError> {
/// let consumer: StreamConsumer = ClientConfig::new()
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .set("group.id", "billing")
///     .create()?;
/// let consumer = MonitoredConsumer::new(consumer);
/// consumer.subscribe(&["orders"])?;
/// loop {
///     let msg = consumer.recv().await?;
///     // `process {topic}` event, current while `handle` runs; an `Err` is recorded on it.
///     let _ = consumer.process(&msg, handle(msg.payload().unwrap_or_default())).await;
/// }
/// # }
/// ```
pub struct MonitoredConsumer<K> {
    inner: K,
    shared: Arc<Shared>,
    group: Option<Cow<'static, str>>,
    client_id: Option<Cow<'static, str>>,
}

impl<K> fmt::Debug for MonitoredConsumer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredConsumer")
            .field("group", &self.group)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl<K> Deref for MonitoredConsumer<K> {
    type Target = K;

    fn deref(&self) -> &K {
        &self.inner
    }
}

impl<K: KafkaConsumer> MonitoredConsumer<K> {
    /// Monitors `consumer`, recording into the global monitor. Its `group.id` and `client.id`
    /// are read from the consumer's configuration.
    pub fn new(consumer: K) -> Self {
        let rk = consumer.native_handle();
        MonitoredConsumer {
            group: conf_get(rk, c"group.id").map(Cow::Owned),
            client_id: conf_get(rk, c"client.id").map(Cow::Owned),
            inner: consumer,
            shared: Arc::new(Shared::new(None)),
        }
    }

    /// Records into `monitor` instead of the global one.
    pub fn monitor(self, monitor: Monitor) -> Self {
        MonitoredConsumer {
            shared: Arc::new(Shared::new(Some(monitor))),
            ..self
        }
    }

    /// The wrapped consumer.
    pub fn inner(&self) -> &K {
        &self.inner
    }

    /// The wrapped consumer, unmonitored.
    pub fn into_inner(self) -> K {
        self.inner
    }

    /// Starts the `process {topic}` event of `msg` and returns it: enter it
    /// ([`Event::enter`]) while processing, record errors on it, and finish (or drop) it when
    /// done. Inert when not monitoring or the topic is ignored.
    ///
    /// # Examples
    /// ```no_run
    /// # use rdkafka::consumer::BaseConsumer;
    /// # fn demo(consumer: rustmon_kafka::MonitoredConsumer<BaseConsumer>) {
    /// if let Some(Ok(msg)) = consumer.poll(std::time::Duration::from_millis(100)) {
    ///     let event = consumer.start(&msg);
    ///     {
    ///         let _current = event.enter();
    ///         // process the message
    ///     }
    ///     event.finish();
    /// }
    /// # }
    /// ```
    pub fn start<M: Message>(&self, msg: &M) -> Event {
        let Some((monitor, config)) = self.shared.active() else {
            return Event::inert();
        };
        let config = config.get();
        let topic = msg.topic();
        if !config.ignored_topics.is_empty() && config.is_ignored(topic) {
            return Event::inert();
        }
        let name = event_name("process", topic);
        let mut event = match msg.headers().and_then(extract) {
            Some(remote) => monitor.start_event_with_parent(Kind::Messaging, name, Some(remote)),
            None => monitor.start_event(Kind::Messaging, name),
        }
        .with_plugin(KafkaConfig::NAME);
        if !event.is_recording() {
            return event;
        }
        common_attributes(&mut event, "process", topic, self.client_id.as_ref());
        let (partition, offset) = (msg.partition(), msg.offset());
        event.set(
            "messaging.destination.partition.id",
            partition_id(partition),
        );
        event.set("messaging.kafka.offset", offset);
        if let Some(group) = &self.group {
            event.set("messaging.consumer.group.name", group.clone());
        }
        message_attributes(
            &mut event,
            &config,
            msg.key(),
            msg.payload().map(<[u8]>::len),
        );
        if let Some(high) = cached_high_watermark(self.inner.native_handle(), topic, partition) {
            // The high watermark is the offset the next message will get.
            event.set(
                "rustmon.messaging.kafka.consumer.lag",
                (high - offset - 1).max(0),
            );
        }
        event
    }

    /// Runs `processing` (the future that handles `msg`) inside the message's `process {topic}`
    /// event: the event is the current context whenever the future is polled, and ends when it
    /// completes. An `Err` output is recorded as the event's error (see [`Outcome`]). Dropped
    /// before completion, the event is recorded with `rustmon.cancelled = true`.
    pub fn process<M: Message, F>(&self, msg: &M, processing: F) -> Process<F>
    where
        F: Future,
        F::Output: Outcome,
    {
        let event = self.start(msg);
        Process {
            ctx: event.context(),
            event: Some(event),
            inner: processing,
        }
    }

    /// Runs `f` with `msg` inside the message's `process {topic}` event, as the current
    /// context; an `Err` it returns is recorded as the event's error.
    ///
    /// # Examples
    /// ```no_run
    /// # use rdkafka::Message;
    /// # use rdkafka::consumer::BaseConsumer;
    /// # fn demo(consumer: rustmon_kafka::MonitoredConsumer<BaseConsumer>) {
    /// if let Some(Ok(msg)) = consumer.poll(std::time::Duration::from_millis(100)) {
    ///     let parsed: Result<u64, std::num::ParseIntError> =
    ///         consumer.process_sync(&msg, |m| String::from_utf8_lossy(m.payload().unwrap_or_default()).parse());
    /// }
    /// # }
    /// ```
    pub fn process_sync<M: Message, T: Outcome>(&self, msg: &M, f: impl FnOnce(&M) -> T) -> T {
        let mut event = self.start(msg);
        let out = {
            let _current = event.enter();
            f(msg)
        };
        out.record(&mut event);
        event.finish();
        out
    }
}

/// What processing a message returned, as recorded on its event: `()` records nothing, and
/// `Result<T, E>` records an `Err` as an error (`error.type` = the error's type name, message =
/// its `Display`).
pub trait Outcome {
    /// Records this outcome on `event`.
    fn record(&self, event: &mut Event);
}

impl Outcome for () {
    fn record(&self, _event: &mut Event) {}
}

impl<T, E: fmt::Display> Outcome for Result<T, E> {
    fn record(&self, event: &mut Event) {
        if let Err(e) = self {
            let kind = std::any::type_name::<E>();
            event.set("error.type", kind);
            event.record_error(kind, e);
        }
    }
}

pin_project! {
    /// The future of [`MonitoredConsumer::process`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Process<F> {
        #[pin]
        inner: F,
        event: Option<Event>,
        ctx: Option<SpanContext>,
    }

    impl<F> PinnedDrop for Process<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(mut event) = this.project().event.take() {
                event.set("rustmon.cancelled", true);
                event.finish();
            }
        }
    }
}

impl<F> fmt::Debug for Process<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Process")
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl<F> Future for Process<F>
where
    F: Future,
    F::Output: Outcome,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = {
            let _current = this.ctx.map(|c| context::attach(Some(c)));
            std::task::ready!(this.inner.poll(cx))
        };
        if let Some(mut event) = this.event.take() {
            out.record(&mut event);
            event.finish();
        }
        Poll::Ready(out)
    }
}
