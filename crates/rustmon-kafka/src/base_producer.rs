//! [`MonitoredBaseProducer`] and [`MonitoredContext`]: send events for `BaseProducer` and
//! `ThreadedProducer`, ended by librdkafka's delivery callback.

use std::borrow::Cow;
use std::error::Error;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use rdkafka::ClientContext;
use rdkafka::bindings as rdsys;
use rdkafka::client::OAuthToken;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::ToBytes;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, DeliveryResult, Partitioner, Producer,
    ProducerContext, ThreadedProducer,
};
use rdkafka::{IntoOpaque, Message, Statistics};
use rustmon_core::{Event, Monitor};

use crate::producer::{SendRecord, finish_send, start_send};
use crate::shared::{Shared, conf_get};
use crate::stats::StatsContext;

/// The delivery opaque of a [`MonitoredContext`]: the send event (if one was started) beside
/// the wrapped context's own opaque.
pub struct Tracked<D> {
    event: Option<Event>,
    inner: D,
}

impl<D> fmt::Debug for Tracked<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracked")
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

/// A [`ProducerContext`] for `BaseProducer` and `ThreadedProducer` that ends each send event
/// of a [`MonitoredBaseProducer`] in librdkafka's delivery callback, then passes the delivery
/// report (with its own opaque) and every other callback to the wrapped context.
///
/// Wrap a [`StatsContext`] to record statistics too:
/// `MonitoredContext::wrap(StatsContext::wrap(DefaultProducerContext))`.
///
/// # Examples
/// ```no_run
/// use rdkafka::ClientConfig;
/// use rdkafka::producer::{BaseRecord, ThreadedProducer};
/// use rustmon_kafka::{MonitoredBaseProducer, MonitoredContext};
/// # fn demo() -> Result<(), rdkafka::error::KafkaError> {
/// let producer: ThreadedProducer<MonitoredContext> = ClientConfig::new()
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .create_with_context(MonitoredContext::new())?;
/// let producer = MonitoredBaseProducer::new(producer);
/// producer
///     .send(BaseRecord::to("orders").key("42").payload("{}"))
///     .map_err(|(e, _)| e)?;
/// # Ok(()) }
/// ```
pub struct MonitoredContext<C = DefaultProducerContext> {
    inner: C,
}

impl<C> fmt::Debug for MonitoredContext<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredContext").finish_non_exhaustive()
    }
}

impl Default for MonitoredContext {
    fn default() -> Self {
        MonitoredContext::new()
    }
}

impl MonitoredContext {
    /// A context around librdkafka's default producer context.
    pub fn new() -> Self {
        MonitoredContext {
            inner: DefaultProducerContext,
        }
    }
}

impl<C> MonitoredContext<C> {
    /// A context passing every callback (and each message's own opaque) on to `inner`.
    pub fn wrap(inner: C) -> Self {
        MonitoredContext { inner }
    }

    /// The wrapped context.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

impl<C: ClientContext> ClientContext for MonitoredContext<C> {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = C::ENABLE_REFRESH_OAUTH_TOKEN;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.inner.log(level, fac, log_message);
    }

    fn stats(&self, statistics: Statistics) {
        self.inner.stats(statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.inner.error(error, reason);
    }

    fn generate_oauth_token(
        &self,
        oauthbearer_config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn Error>> {
        self.inner.generate_oauth_token(oauthbearer_config)
    }
}

impl<C, Part> ProducerContext<Part> for MonitoredContext<C>
where
    C: ProducerContext<Part>,
    C::DeliveryOpaque: Send + Sync,
    Part: Partitioner,
{
    type DeliveryOpaque = Box<Tracked<C::DeliveryOpaque>>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let Tracked { event, inner } = *opaque;
        if let Some(event) = event {
            match result {
                Ok(msg) => finish_send(event, Ok((msg.partition(), msg.offset()))),
                Err((e, _)) => finish_send(event, Err(e)),
            }
        }
        self.inner.delivery(result, inner);
    }

    fn get_custom_partitioner(&self) -> Option<&Part> {
        self.inner.get_custom_partitioner()
    }
}

/// A [`StatsContext`] is a producer context when the context it wraps is one, so that
/// `BaseProducer`s and `ThreadedProducer`s can record statistics.
impl<C, Part> ProducerContext<Part> for StatsContext<C>
where
    C: ProducerContext<Part>,
    Part: Partitioner,
{
    type DeliveryOpaque = C::DeliveryOpaque;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        self.inner().delivery(result, opaque);
    }

    fn get_custom_partitioner(&self) -> Option<&Part> {
        self.inner().get_custom_partitioner()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// The producers [`MonitoredBaseProducer`] wraps: a [`BaseProducer`] or [`ThreadedProducer`]
/// created with a [`MonitoredContext`].
pub trait TrackingProducer: sealed::Sealed {
    /// The delivery opaque of the wrapped context, which records carry.
    type Opaque: IntoOpaque;

    #[doc(hidden)]
    fn native_handle(&self) -> *mut rdsys::rd_kafka_t;

    #[doc(hidden)]
    #[allow(clippy::result_large_err, clippy::type_complexity)]
    fn send_tracked<'a, K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
        &self,
        record: BaseRecord<'a, K, P, Box<Tracked<Self::Opaque>>>,
    ) -> Result<(), (KafkaError, BaseRecord<'a, K, P, Box<Tracked<Self::Opaque>>>)>;
}

impl<C, Part> sealed::Sealed for BaseProducer<MonitoredContext<C>, Part>
where
    C: ProducerContext<Part>,
    C::DeliveryOpaque: Send + Sync,
    Part: Partitioner,
{
}

impl<C, Part> TrackingProducer for BaseProducer<MonitoredContext<C>, Part>
where
    C: ProducerContext<Part>,
    C::DeliveryOpaque: Send + Sync,
    Part: Partitioner,
{
    type Opaque = C::DeliveryOpaque;

    fn native_handle(&self) -> *mut rdsys::rd_kafka_t {
        self.client().native_ptr()
    }

    fn send_tracked<'a, K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
        &self,
        record: BaseRecord<'a, K, P, Box<Tracked<Self::Opaque>>>,
    ) -> Result<(), (KafkaError, BaseRecord<'a, K, P, Box<Tracked<Self::Opaque>>>)> {
        self.send(record)
    }
}

impl<C, Part> sealed::Sealed for ThreadedProducer<MonitoredContext<C>, Part>
where
    C: ProducerContext<Part> + 'static,
    C::DeliveryOpaque: Send + Sync,
    Part: Partitioner,
{
}

impl<C, Part> TrackingProducer for ThreadedProducer<MonitoredContext<C>, Part>
where
    C: ProducerContext<Part> + 'static,
    C::DeliveryOpaque: Send + Sync,
    Part: Partitioner,
{
    type Opaque = C::DeliveryOpaque;

    fn native_handle(&self) -> *mut rdsys::rd_kafka_t {
        self.client().native_ptr()
    }

    fn send_tracked<'a, K: ToBytes + ?Sized, P: ToBytes + ?Sized>(
        &self,
        record: BaseRecord<'a, K, P, Box<Tracked<Self::Opaque>>>,
    ) -> Result<(), (KafkaError, BaseRecord<'a, K, P, Box<Tracked<Self::Opaque>>>)> {
        self.send(record)
    }
}

/// A [`BaseProducer`] or [`ThreadedProducer`] (created with a [`MonitoredContext`]) whose sends
/// are recorded like [`MonitoredProducer`](crate::MonitoredProducer)'s: one `send {topic}` event
/// per message, child of the current context, its trace context in the message headers, ended
/// by the delivery report (for a `BaseProducer`, in the `poll` that serves it).
///
/// `send` is monitored; everything else (`poll`, `flush`, transactions) reaches the inner
/// producer through `Deref`. Records carry the wrapped context's own delivery opaque, which its
/// delivery callback receives as usual.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use rdkafka::ClientConfig;
/// use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
/// use rustmon_kafka::{MonitoredBaseProducer, MonitoredContext};
/// # fn demo() -> Result<(), rdkafka::error::KafkaError> {
/// let producer: BaseProducer<MonitoredContext> = ClientConfig::new()
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .create_with_context(MonitoredContext::new())?;
/// let producer = MonitoredBaseProducer::new(producer);
/// producer.send(BaseRecord::to("orders").key("42").payload("{}")).map_err(|(e, _)| e)?;
/// producer.flush(Duration::from_secs(5))?; // serves the delivery report: the event ends
/// # Ok(()) }
/// ```
pub struct MonitoredBaseProducer<P> {
    inner: P,
    shared: Arc<Shared>,
    client_id: Option<Cow<'static, str>>,
}

impl<P> fmt::Debug for MonitoredBaseProducer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredBaseProducer")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl<P> Deref for MonitoredBaseProducer<P> {
    type Target = P;

    fn deref(&self) -> &P {
        &self.inner
    }
}

impl<P: TrackingProducer> MonitoredBaseProducer<P> {
    /// Monitors `producer`, recording into the global monitor.
    pub fn new(producer: P) -> Self {
        let client_id = conf_get(producer.native_handle(), c"client.id").map(Cow::Owned);
        MonitoredBaseProducer {
            inner: producer,
            shared: Arc::new(Shared::new(None)),
            client_id,
        }
    }

    /// Records into `monitor` instead of the global one.
    pub fn monitor(self, monitor: Monitor) -> Self {
        MonitoredBaseProducer {
            shared: Arc::new(Shared::new(Some(monitor))),
            ..self
        }
    }

    /// The wrapped producer.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// The wrapped producer, unmonitored (messages in flight still end their events).
    pub fn into_inner(self) -> P {
        self.inner
    }

    /// Enqueues `record` like the inner producer's `send`, starting its event; a failure to
    /// enqueue is recorded at once and the record handed back (with its trace headers).
    // The same signature as `BaseProducer::send`.
    #[allow(clippy::result_large_err, clippy::type_complexity)]
    pub fn send<'a, K, V>(
        &self,
        record: BaseRecord<'a, K, V, P::Opaque>,
    ) -> Result<(), (KafkaError, BaseRecord<'a, K, V, P::Opaque>)>
    where
        K: ToBytes + ?Sized,
        V: ToBytes + ?Sized,
    {
        let BaseRecord {
            topic,
            partition,
            payload,
            key,
            timestamp,
            mut headers,
            delivery_opaque,
        } = record;
        let event = start_send(
            &self.shared,
            self.client_id.as_ref(),
            SendRecord {
                topic,
                partition,
                key: key.map(|k| k.to_bytes()),
                payload_len: payload.map(|p| p.to_bytes().len()),
            },
            &mut headers,
        );
        let tracked = BaseRecord {
            topic,
            partition,
            payload,
            key,
            timestamp,
            headers,
            delivery_opaque: Box::new(Tracked {
                event,
                inner: delivery_opaque,
            }),
        };
        self.inner.send_tracked(tracked).map_err(|(e, record)| {
            let Tracked { event, inner } = *record.delivery_opaque;
            if let Some(event) = event {
                finish_send(event, Err(&e));
            }
            (
                e,
                BaseRecord {
                    topic: record.topic,
                    partition: record.partition,
                    payload: record.payload,
                    key: record.key,
                    timestamp: record.timestamp,
                    headers: record.headers,
                    delivery_opaque: inner,
                },
            )
        })
    }
}
