//! [`MonitoredProducer`]: one messaging event per message sent, timed to its delivery report.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rdkafka::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders, ToBytes};
use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::util::{AsyncRuntime, DefaultRuntime, Timeout};
use rustmon_core::{Event, Kind, Monitor, PluginConfig, Status};

use crate::config::KafkaConfig;
use crate::shared::{
    Shared, TRACEPARENT, TRACESTATE, common_attributes, conf_get, event_name, message_attributes,
    partition_id, record_kafka_error,
};

/// A [`FutureProducer`] whose sends are recorded: one [`Kind::Messaging`] event per message,
/// named `send {topic}`, from the call to `send` until the delivery report.
///
/// The event is a child of the caller's current context, and its W3C trace context is written
/// into the message headers (`traceparent`, and `tracestate` when the trace carries one;
/// headers of those names the record already had are replaced), so that a consumer continues
/// the trace. It carries `messaging.system = kafka`, `messaging.operation.type = send`,
/// `messaging.destination.name`, `messaging.client.id`, the body and key sizes, the partition
/// and offset the broker assigned (`messaging.destination.partition.id`,
/// `messaging.kafka.offset`), and a failed delivery as an error whose `error.type` is the
/// librdkafka error code (`MessageTimedOut`, `UnknownTopicOrPartition`). The key itself is
/// recorded only with [`KafkaConfig::record_key`].
///
/// `send` and `send_result` are monitored; everything else (`flush`, transactions,
/// `in_flight_count`) reaches the inner producer through `Deref`.
///
/// # Examples
/// ```no_run
/// use std::time::Duration;
/// use rdkafka::ClientConfig;
/// use rdkafka::producer::{FutureProducer, FutureRecord};
/// use rustmon_kafka::MonitoredProducer;
/// # async fn demo() -> Result<(), rdkafka::error::KafkaError> {
/// let producer: FutureProducer = ClientConfig::new()
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .create()?;
/// let producer = MonitoredProducer::new(producer);
/// let delivery = producer
///     .send(FutureRecord::to("orders").key("42").payload("{}"), Duration::from_secs(5))
///     .await
///     .map_err(|(e, _)| e)?;
/// println!("stored at {}:{}", delivery.partition, delivery.offset);
/// # Ok(()) }
/// ```
pub struct MonitoredProducer<C = rdkafka::client::DefaultClientContext, R = DefaultRuntime>
where
    C: ClientContext + 'static,
{
    inner: FutureProducer<C, R>,
    shared: Arc<Shared>,
    client_id: Option<Cow<'static, str>>,
}

impl<C: ClientContext + 'static, R> Clone for MonitoredProducer<C, R> {
    fn clone(&self) -> Self {
        MonitoredProducer {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
            client_id: self.client_id.clone(),
        }
    }
}

impl<C: ClientContext + 'static, R> fmt::Debug for MonitoredProducer<C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredProducer")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl<C: ClientContext + 'static, R> Deref for MonitoredProducer<C, R> {
    type Target = FutureProducer<C, R>;

    fn deref(&self) -> &FutureProducer<C, R> {
        &self.inner
    }
}

impl<C: ClientContext + 'static, R: AsyncRuntime> MonitoredProducer<C, R> {
    /// Monitors `producer`, recording into the global monitor.
    pub fn new(producer: FutureProducer<C, R>) -> Self {
        let client_id = conf_get(producer.client().native_ptr(), c"client.id").map(Cow::Owned);
        MonitoredProducer {
            inner: producer,
            shared: Arc::new(Shared::new(None)),
            client_id,
        }
    }

    /// Records into `monitor` instead of the global one.
    pub fn monitor(self, monitor: Monitor) -> Self {
        MonitoredProducer {
            shared: Arc::new(Shared::new(Some(monitor))),
            ..self
        }
    }

    /// The wrapped producer (sends through it are not recorded).
    pub fn inner(&self) -> &FutureProducer<C, R> {
        &self.inner
    }

    /// The wrapped producer, unmonitored.
    pub fn into_inner(self) -> FutureProducer<C, R> {
        self.inner
    }

    /// Sends `record` like [`FutureProducer::send`], recording one event that ends with the
    /// delivery report (or the enqueue failure). Dropping the returned future before it
    /// completes records the event with `rustmon.cancelled = true` (the message may still be
    /// delivered).
    pub async fn send<K, P, T>(
        &self,
        mut record: FutureRecord<'_, K, P>,
        queue_timeout: T,
    ) -> OwnedDeliveryResult
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
        T: Into<Timeout>,
    {
        let mut pending = Pending(self.start(&mut record));
        let result = self.inner.send(record, queue_timeout).await;
        if let Some(event) = pending.0.take() {
            finish(event, result.as_ref().map_err(|(e, _)| e));
        }
        result
    }

    /// Enqueues `record` like [`FutureProducer::send_result`]: the event starts now and ends
    /// when the returned future yields the delivery report. A failure to enqueue (a full queue,
    /// an unknown partition) is recorded at once and the record handed back.
    #[allow(clippy::result_large_err)]
    pub fn send_result<'a, K, P>(
        &self,
        mut record: FutureRecord<'a, K, P>,
    ) -> Result<MonitoredDeliveryFuture, (KafkaError, FutureRecord<'a, K, P>)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let event = self.start(&mut record);
        match self.inner.send_result(record) {
            Ok(inner) => Ok(MonitoredDeliveryFuture {
                inner,
                pending: Pending(event),
            }),
            Err((e, record)) => {
                if let Some(event) = event {
                    finish(event, Err(&e));
                }
                Err((e, record))
            }
        }
    }

    fn start<K, P>(&self, record: &mut FutureRecord<'_, K, P>) -> Option<Event>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        start_send(
            &self.shared,
            self.client_id.as_ref(),
            SendRecord {
                topic: record.topic,
                partition: record.partition,
                key: record.key.map(|k| k.to_bytes()),
                payload_len: record.payload.map(|p| p.to_bytes().len()),
            },
            &mut record.headers,
        )
    }
}

/// What a send event needs to know of a record.
pub(crate) struct SendRecord<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) payload_len: Option<usize>,
}

/// Starts the send event of a record and writes its trace context into the record's headers;
/// `None` when not monitoring or the topic is ignored.
pub(crate) fn start_send(
    shared: &Shared,
    client_id: Option<&Cow<'static, str>>,
    record: SendRecord<'_>,
    headers: &mut Option<OwnedHeaders>,
) -> Option<Event> {
    let (monitor, config) = shared.active()?;
    let config = config.get();
    if !config.ignored_topics.is_empty() && config.is_ignored(record.topic) {
        return None;
    }
    let mut event = monitor
        .start_event(Kind::Messaging, event_name("send", record.topic))
        .with_plugin(KafkaConfig::NAME);
    if !event.is_recording() {
        return None;
    }
    common_attributes(&mut event, "send", record.topic, client_id);
    if let Some(p) = record.partition {
        event.set("messaging.destination.partition.id", partition_id(p));
    }
    message_attributes(&mut event, &config, record.key, record.payload_len);
    if config.propagate_context {
        if let Some(ctx) = event.context() {
            *headers = Some(inject(headers.take(), &ctx));
        }
    }
    Some(event)
}

/// `headers` with the W3C trace context of `ctx` (earlier `traceparent`/`tracestate` headers
/// are dropped).
fn inject(headers: Option<OwnedHeaders>, ctx: &rustmon_core::SpanContext) -> OwnedHeaders {
    let mut out = match headers {
        Some(h)
            if h.iter().any(|h| {
                h.key.eq_ignore_ascii_case(TRACEPARENT) || h.key.eq_ignore_ascii_case(TRACESTATE)
            }) =>
        {
            let mut out = OwnedHeaders::new_with_capacity(h.count() + 2);
            for header in h.iter().filter(|h| {
                !h.key.eq_ignore_ascii_case(TRACEPARENT) && !h.key.eq_ignore_ascii_case(TRACESTATE)
            }) {
                out = out.insert(header);
            }
            out
        }
        Some(h) => h,
        None => OwnedHeaders::new_with_capacity(2),
    };
    let mut buf = [0u8; 55];
    ctx.write_traceparent(&mut buf);
    out = out.insert(Header {
        key: TRACEPARENT,
        value: Some(&buf[..]),
    });
    if let Some(state) = ctx.trace_state {
        out = out.insert(Header {
            key: TRACESTATE,
            value: Some(state.as_bytes()),
        });
    }
    out
}

/// Ends a send event with its delivery report.
fn finish(event: Event, result: Result<&Delivery, &KafkaError>) {
    finish_send(event, result.map(|d| (d.partition, d.offset)));
}

/// Ends a send event with its delivery report: the partition and offset the message was
/// stored at, or why it was not.
pub(crate) fn finish_send(mut event: Event, result: Result<(i32, i64), &KafkaError>) {
    match result {
        Ok((partition, offset)) => {
            event.set(
                "messaging.destination.partition.id",
                partition_id(partition),
            );
            event.set("messaging.kafka.offset", offset);
            event.set_status(Status::Ok);
        }
        Err(e) => record_kafka_error(&mut event, e),
    }
    event.finish();
}

/// A send event not yet ended; dropped early, it is recorded as cancelled.
struct Pending(Option<Event>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut event) = self.0.take() {
            event.set("rustmon.cancelled", true);
            event.finish();
        }
    }
}

/// The delivery report of a message sent with [`MonitoredProducer::send_result`]; the send
/// event ends when it resolves (or, with `rustmon.cancelled = true`, when it is dropped first).
#[must_use = "the delivery report arrives only when polled"]
pub struct MonitoredDeliveryFuture {
    inner: DeliveryFuture,
    pending: Pending,
}

impl fmt::Debug for MonitoredDeliveryFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitoredDeliveryFuture")
            .finish_non_exhaustive()
    }
}

impl Future for MonitoredDeliveryFuture {
    type Output = <DeliveryFuture as Future>::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let out = std::task::ready!(Pin::new(&mut self.inner).poll(cx));
        if let Some(event) = self.pending.0.take() {
            match &out {
                Ok(result) => finish(event, result.as_ref().map_err(|(e, _)| e)),
                Err(_) => finish(event, Err(&KafkaError::Canceled)),
            }
        }
        Poll::Ready(out)
    }
}
