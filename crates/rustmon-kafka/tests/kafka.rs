//! Against librdkafka's mock cluster (in process, real Kafka protocol over 127.0.0.1): producer
//! events and their headers, failed deliveries, consumers continuing the producer's trace,
//! children of the process event, statistics as metrics, and live configuration.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{
    BaseProducer, BaseRecord, DefaultProducerContext, DeliveryResult, FutureProducer, FutureRecord,
    Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use rustmon_core::context::FutureExt;
use rustmon_core::metrics::Metric;
use rustmon_core::{EventRecord, Kind, Monitor, SpanContext, Status, TraceId, now_unix_nanos};
use rustmon_kafka::{
    MonitoredBaseProducer, MonitoredConsumer, MonitoredContext, MonitoredProducer, StatsContext,
};
use rustmon_test::{Capture, WAIT};

type Mock = MockCluster<'static, DefaultProducerContext>;

fn monitor() -> (Monitor, Capture) {
    let capture = Capture::new();
    let monitor = Monitor::builder("kafka-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (monitor, capture)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A mock cluster of one broker with `topics` (name, partitions) created.
fn cluster(topics: &[(&str, i32)]) -> Mock {
    let mock = MockCluster::new(1).unwrap();
    for (topic, partitions) in topics {
        mock.create_topic(topic, *partitions, 1).unwrap();
    }
    mock
}

fn client_config(mock: &Mock) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("message.timeout.ms", "20000");
    config
}

fn producer(mock: &Mock, monitor: &Monitor) -> MonitoredProducer {
    let producer: FutureProducer = client_config(mock)
        .set("client.id", "checkout-api")
        .create()
        .unwrap();
    MonitoredProducer::new(producer).monitor(monitor.clone())
}

/// A consumer in group `group` assigned `topic`/`partition` from its beginning.
fn consumer<C: rdkafka::config::FromClientConfig + Consumer>(
    mock: &Mock,
    group: &str,
    topic: &str,
    partition: i32,
) -> C {
    let consumer: C = client_config(mock)
        .set("group.id", group)
        .set("client.id", "billing-worker")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    consumer
}

async fn recv(consumer: &StreamConsumer) -> BorrowedMessage<'_> {
    tokio::time::timeout(WAIT, consumer.recv())
        .await
        .expect("no message arrived")
        .unwrap()
}

fn poll<C: ConsumerContext>(consumer: &BaseConsumer<C>) -> BorrowedMessage<'_> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            return m.unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no message arrived");
    }
}

fn header<'a, M: Message>(msg: &'a M, key: &str) -> Option<&'a str> {
    msg.headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| std::str::from_utf8(v).unwrap())
}

/// Waits (at most [`WAIT`]) until metric points named `name` matching `pred` have arrived, and
/// returns them.
fn wait_for_metric_where(
    capture: &Capture,
    name: &str,
    pred: impl Fn(&Metric) -> bool,
) -> Vec<Metric> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found: Vec<Metric> = capture
            .metrics()
            .into_iter()
            .filter(|m| m.name == name && pred(m))
            .collect();
        if !found.is_empty() {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no matching metric {name:?}; got {:?}",
            capture
                .metrics()
                .iter()
                .map(|m| &m.name)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn attr<'a>(m: &'a Metric, key: &str) -> Option<&'a rustmon_core::Value> {
    m.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| &kv.value)
}

#[test]
fn producer_records_send_events_and_injects_the_trace_context() {
    let (monitor, capture) = monitor();
    let mock = cluster(&[("orders", 2)]);
    let rt = runtime();
    let _rt = rt.enter(); // rdkafka's tokio runtime needs a handle when clients are created
    let producer = producer(&mock, &monitor);

    // A caller continuing a remote trace that carries a tracestate.
    let remote = SpanContext::from_headers(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        Some("vendor=abc"),
    )
    .unwrap();
    let parent = monitor.start_event_with_parent(Kind::Server, "POST /orders", Some(remote));
    let ctx = parent.context();
    let delivery = rt
        .block_on(
            async {
                producer
                    .send(
                        FutureRecord::to("orders")
                            .partition(1)
                            .key("customer-42")
                            .payload("hello")
                            .headers(OwnedHeaders::new().insert(Header {
                                key: "content-type",
                                value: Some("text/plain"),
                            })),
                        Duration::from_secs(10),
                    )
                    .await
            }
            .with_context(ctx),
        )
        .unwrap();
    assert_eq!(delivery.partition, 1);
    // A tombstone (no payload), sent without a parent.
    let tombstone = rt.block_on(
        producer.send(
            FutureRecord::<str, [u8]>::to("orders")
                .partition(0)
                .key("customer-7"),
            Duration::from_secs(10),
        ),
    );
    assert!(tombstone.is_ok());
    parent.finish();
    monitor.flush(WAIT);

    let parent = capture.expect("POST /orders").one();
    let send = capture
        .expect("send orders")
        .kind(Kind::Messaging)
        .child_of(&parent)
        .status(Status::Ok)
        .attr("messaging.system", "kafka")
        .attr("messaging.operation.type", "send")
        .attr("messaging.operation.name", "send")
        .attr("messaging.destination.name", "orders")
        .attr("messaging.destination.partition.id", "1")
        .attr("messaging.kafka.offset", delivery.offset)
        .attr("messaging.client.id", "checkout-api")
        .attr("messaging.message.body.size", 5_i64)
        .attr("rustmon.messaging.kafka.message.key.size", 11_i64)
        .no_attr("messaging.kafka.message.key")
        .no_attr("messaging.kafka.message.tombstone")
        .one();
    assert_eq!(send.plugin, "kafka");
    assert_eq!(
        send.trace_id,
        TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
    );
    capture
        .expect("send orders")
        .root()
        .attr("messaging.destination.partition.id", "0")
        .attr("messaging.kafka.message.tombstone", true)
        .no_attr("messaging.message.body.size")
        .one();

    // The message carries the send event's context, the trace's tracestate and the user's
    // own header.
    let consumer: StreamConsumer = consumer(&mock, "check", "orders", 1);
    rt.block_on(async {
        let msg = recv(&consumer).await;
        assert_eq!(msg.payload(), Some(&b"hello"[..]));
        assert_eq!(
            header(&msg, "traceparent"),
            Some(send.context().traceparent().as_str())
        );
        assert_eq!(header(&msg, "tracestate"), Some("vendor=abc"));
        assert_eq!(header(&msg, "content-type"), Some("text/plain"));
    });
}

#[test]
fn failed_deliveries_are_errors_with_their_kind() {
    let (monitor, capture) = monitor();
    let mock = cluster(&[("payments", 1)]);
    let rt = runtime();
    let _rt = rt.enter(); // rdkafka's tokio runtime needs a handle when clients are created
    let producer = producer(&mock, &monitor);
    // Warm up: metadata and a connection, so that the next produce request is the one failing.
    rt.block_on(producer.send(
        FutureRecord::to("payments").key("k").payload("ok"),
        Duration::from_secs(10),
    ))
    .unwrap();

    // The broker rejects the next produce request with a non-retriable error.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let (err, _) = rt
        .block_on(producer.send(
            FutureRecord::to("payments").key("k").payload("too big"),
            Duration::from_secs(10),
        ))
        .unwrap_err();
    assert!(
        matches!(err, KafkaError::MessageProduction(_)),
        "unexpected error {err:?}"
    );

    // A partition the topic does not have: rejected when enqueued or in the delivery report.
    let result = producer.send_result(
        FutureRecord::<str, str>::to("payments")
            .partition(7)
            .payload("x"),
    );
    if let Ok(delivery) = result {
        assert!(rt.block_on(delivery).unwrap().is_err());
    }
    monitor.flush(WAIT);

    let failed = capture
        .expect("send payments")
        .status(Status::Error)
        .attr("error.type", "MessageSizeTooLarge")
        .no_attr("messaging.kafka.offset")
        .one();
    assert_eq!(failed.errors.len(), 1);
    assert_eq!(failed.errors[0].error_type, "MessageSizeTooLarge");
    assert!(
        failed.errors[0].message.contains("too large"),
        "{:?}",
        failed.errors
    );
    capture
        .expect("send payments")
        .status(Status::Error)
        .attr("error.type", "UnknownPartition")
        .attr("messaging.destination.partition.id", "7")
        .one();
    capture.expect("send payments").status(Status::Ok).one();
}

#[test]
fn consumers_continue_the_producers_trace_and_parent_the_processing() {
    let (monitor, capture) = monitor();
    let mock = cluster(&[("orders", 1)]);
    let rt = runtime();
    let _rt = rt.enter(); // rdkafka's tokio runtime needs a handle when clients are created
    let producer = producer(&mock, &monitor);

    let parent = monitor.start_event(Kind::Server, "POST /checkout");
    let ctx = parent.context();
    rt.block_on(
        async {
            for i in 0..3 {
                producer
                    .send(
                        FutureRecord::to("orders")
                            .key("customer-42")
                            .payload(&format!("order {i}")),
                        Duration::from_secs(10),
                    )
                    .await
                    .unwrap();
            }
        }
        .with_context(ctx),
    );
    parent.finish();

    // Async, with a StreamConsumer: the processing future runs inside the process event.
    let stream = MonitoredConsumer::new(consumer::<StreamConsumer>(&mock, "billing", "orders", 0))
        .monitor(monitor.clone());
    let m = monitor.clone();
    let processed: Result<(), String> = rt.block_on(async {
        let msg = recv(&stream).await;
        stream
            .process(&msg, async {
                tokio::task::yield_now().await;
                m.start_event(Kind::Database, "INSERT invoices").finish();
                Ok::<(), String>(())
            })
            .await
    });
    assert!(processed.is_ok());

    // Sync, with a BaseConsumer: an `Err` from the processing code is recorded.
    let base = MonitoredConsumer::new(consumer::<BaseConsumer>(&mock, "audit", "orders", 0))
        .monitor(monitor.clone());
    let msg = poll(&base);
    let m = monitor.clone();
    let parsed: Result<u32, std::num::ParseIntError> = base.process_sync(&msg, |msg| {
        m.start_event(Kind::Custom, "parse").finish();
        std::str::from_utf8(msg.payload().unwrap()).unwrap().parse()
    });
    assert!(parsed.is_err());
    // By hand: the event returned by `start`, entered while working.
    let msg = poll(&base);
    let event = base.start(&msg);
    {
        let _current = event.enter();
        monitor.start_event(Kind::Custom, "manual step").finish();
    }
    event.finish();
    drop(msg);
    monitor.flush(WAIT);

    let parent = capture.expect("POST /checkout").one();
    let sends = capture.expect("send orders").child_of(&parent).count(3);
    let send_of = |offset: i64| -> &EventRecord {
        sends
            .iter()
            .find(|s| {
                s.attribute("messaging.kafka.offset")
                    .and_then(|v| v.as_i64())
                    == Some(offset)
            })
            .unwrap()
    };
    let process = capture
        .expect("process orders")
        .kind(Kind::Messaging)
        .child_of(send_of(0))
        .attr("messaging.consumer.group.name", "billing")
        .status(Status::Unset)
        .attr("messaging.system", "kafka")
        .attr("messaging.operation.type", "process")
        .attr("messaging.destination.name", "orders")
        .attr("messaging.destination.partition.id", "0")
        .attr("messaging.kafka.offset", 0_i64)
        .attr("messaging.client.id", "billing-worker")
        .attr("messaging.message.body.size", 7_i64)
        .attr("rustmon.messaging.kafka.message.key.size", 11_i64)
        // Three messages were in the partition when it was fetched: two after this one.
        .attr("rustmon.messaging.kafka.consumer.lag", 2_i64)
        .no_attr("messaging.kafka.message.key")
        .one();
    assert!(process.parent_remote);
    assert_eq!(process.trace_id, parent.trace_id);
    assert_eq!(process.plugin, "kafka");
    capture.expect("INSERT invoices").child_of(&process).one();

    let failed = capture
        .expect("process orders")
        .child_of(send_of(0))
        .attr("messaging.consumer.group.name", "audit")
        .status(Status::Error)
        .attr("error.type", "core::num::error::ParseIntError")
        .one();
    capture.expect("parse").child_of(&failed).one();
    let manual = capture
        .expect("process orders")
        .child_of(send_of(1))
        .attr("messaging.consumer.group.name", "audit")
        .attr("messaging.kafka.offset", 1_i64)
        .one();
    capture.expect("manual step").child_of(&manual).one();
}

#[test]
fn messages_without_trace_headers_are_processed_in_the_current_context() {
    let (monitor, capture) = monitor();
    let mock = cluster(&[("plain", 1)]);
    let rt = runtime();
    let _rt = rt.enter(); // rdkafka's tokio runtime needs a handle when clients are created
    // An unmonitored producer: no headers.
    let producer: FutureProducer = client_config(&mock).create().unwrap();
    rt.block_on(producer.send(
        FutureRecord::<str, str>::to("plain").payload("x"),
        Duration::from_secs(10),
    ))
    .unwrap();

    let consumer = MonitoredConsumer::new(consumer::<BaseConsumer>(&mock, "g", "plain", 0))
        .monitor(monitor.clone());
    let msg = poll(&consumer);
    let batch = monitor.start_event(Kind::Custom, "poll loop");
    {
        let _current = batch.enter();
        consumer.process_sync(&msg, |_| ());
    }
    batch.finish();
    // Outside any context: a root.
    consumer.process_sync(&msg, |_| ());
    monitor.flush(WAIT);

    let batch = capture.expect("poll loop").one();
    let inner = capture.expect("process plain").child_of(&batch).one();
    assert!(!inner.parent_remote);
    capture.expect("process plain").root().one();
}

#[test]
fn statistics_become_metrics() {
    let (monitor, capture) = monitor();
    let mock = cluster(&[("stats", 1)]);
    let rt = runtime();
    let _rt = rt.enter(); // rdkafka's tokio runtime needs a handle when clients are created
    let counting = Counting::default();
    let calls = counting.0.clone();
    let producer: FutureProducer<StatsContext<Counting>> = client_config(&mock)
        .set("client.id", "stats-producer")
        .set("statistics.interval.ms", "100")
        .create_with_context(StatsContext::wrap(counting).monitor(monitor.clone()))
        .unwrap();
    let producer = MonitoredProducer::new(producer).monitor(monitor.clone());
    for i in 0..3 {
        rt.block_on(producer.send(
            FutureRecord::<str, str>::to("stats").payload(&format!("m{i}")),
            Duration::from_secs(10),
        ))
        .unwrap();
    }

    let rtt = wait_for_metric_where(&capture, "rustmon.kafka.broker.rtt", |m| {
        attr(m, "messaging.client.id").and_then(|v| v.as_str()) == Some("stats-producer")
    });
    let m = &rtt[0];
    assert_eq!(m.unit, "s");
    assert!(attr(m, "rustmon.kafka.broker").is_some());
    assert_eq!(
        attr(m, "messaging.system").and_then(|v| v.as_str()),
        Some("kafka")
    );
    assert!(
        attr(m, "rustmon.kafka.client.name")
            .and_then(|v| v.as_str())
            .is_some_and(|n| n.contains("producer"))
    );
    wait_for_metric_where(&capture, "rustmon.kafka.broker.rtt.p99", |_| true);
    let queued = wait_for_metric_where(&capture, "rustmon.kafka.queue.messages", |_| true);
    assert_eq!(queued[0].unit, "{message}");
    wait_for_metric_where(&capture, "rustmon.kafka.queue.size", |m| m.unit == "By");

    // A consumer that processed one of three messages and committed it: lag 2.
    let consumer: BaseConsumer<StatsContext> = client_config(&mock)
        .set("group.id", "stats-group")
        .set("enable.auto.commit", "false")
        .set("statistics.interval.ms", "100")
        .create_with_context(StatsContext::new().monitor(monitor.clone()))
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("stats", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let consumer = MonitoredConsumer::new(consumer).monitor(monitor.clone());
    let msg = poll(consumer.inner());
    consumer.commit_message(&msg, CommitMode::Sync).unwrap();
    drop(msg);
    // Statistics are emitted from the consumer's poll loop.
    let deadline = std::time::Instant::now() + WAIT;
    let is_lag_two = |m: &Metric| {
        attr(m, "messaging.destination.name").and_then(|v| v.as_str()) == Some("stats")
            && m.data
                == rustmon_core::metrics::MetricData::Gauge(rustmon_core::metrics::Number::I64(2))
    };
    while !capture
        .metrics()
        .iter()
        .any(|m| m.name == "rustmon.kafka.consumer.lag" && is_lag_two(m))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no consumer lag of 2 arrived: {:?}",
            capture
                .metrics()
                .iter()
                .filter(|m| m.name == "rustmon.kafka.consumer.lag")
                .collect::<Vec<_>>()
        );
        let _ = consumer.poll(Duration::from_millis(50));
    }
    let lag = wait_for_metric_where(&capture, "rustmon.kafka.consumer.lag", is_lag_two);
    assert_eq!(
        attr(&lag[0], "messaging.destination.partition.id").and_then(|v| v.as_str()),
        Some("0")
    );

    // Turned off live: a statistics callback that starts after the change records nothing.
    // The producer's callbacks run one after another on its polling thread, and each is
    // counted by the wrapped context after it has recorded (or not): two more callbacks after
    // the change means one ran entirely under the new configuration.
    monitor
        .update_config("kafka", &serde_json::json!({ "record_statistics": false }))
        .unwrap();
    let changed = now_unix_nanos();
    let seen = calls.load(Ordering::SeqCst);
    wait_for_calls(&calls, seen + 2);
    monitor.flush(WAIT);
    let late: Vec<_> = capture
        .metrics()
        .into_iter()
        .filter(|m| m.name.starts_with("rustmon.kafka.") && m.time_unix_nanos >= changed)
        .collect();
    assert!(
        late.is_empty(),
        "statistics recorded while turned off: {late:?}"
    );

    // And on again.
    monitor
        .update_config("kafka", &serde_json::json!({ "record_statistics": true }))
        .unwrap();
    let changed = now_unix_nanos();
    wait_for_metric_where(&capture, "rustmon.kafka.queue.messages", |m| {
        m.time_unix_nanos >= changed
    });
}

/// A context that counts the statistics it is handed (by [`StatsContext`], after recording).
#[derive(Clone, Default)]
struct Counting(Arc<AtomicU64>);

impl ClientContext for Counting {
    fn stats(&self, _: rdkafka::Statistics) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn wait_for_calls(calls: &AtomicU64, n: u64) {
    let deadline = std::time::Instant::now() + WAIT;
    while calls.load(Ordering::SeqCst) < n {
        assert!(
            std::time::Instant::now() < deadline,
            "statistics stopped arriving"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn live_configuration_changes_apply_to_the_next_message() {
    let (monitor, capture) = monitor();
    let mock = cluster(&[("orders", 1), ("audit.log", 1)]);
    let rt = runtime();
    let _rt = rt.enter(); // rdkafka's tokio runtime needs a handle when clients are created
    let producer = producer(&mock, &monitor);
    let send = |topic: &str, payload: &str| {
        rt.block_on(producer.send(
            FutureRecord::to(topic).key("customer-42").payload(payload),
            Duration::from_secs(10),
        ))
        .unwrap()
    };

    send("orders", "first");
    monitor
        .update_config(
            "kafka",
            &serde_json::json!({
                "record_key": true,
                "record_payload_size": false,
                "ignored_topics": ["audit.*"],
            }),
        )
        .unwrap();
    send("orders", "second");
    send("audit.log", "not recorded");
    monitor
        .update_config("kafka", &serde_json::json!({ "propagate_context": false }))
        .unwrap();
    send("orders", "third");
    let err = monitor
        .update_config("kafka", &serde_json::json!({ "ignored_topics": ["a*b"] }))
        .unwrap_err();
    assert!(err.to_string().contains("ignored_topics[0]"), "{err}");
    monitor.flush(WAIT);

    capture
        .expect("send orders")
        .attr("messaging.kafka.offset", 0_i64)
        .has_attr("messaging.message.body.size")
        .no_attr("messaging.kafka.message.key")
        .one();
    capture
        .expect("send orders")
        .attr("messaging.kafka.offset", 1_i64)
        .attr("messaging.kafka.message.key", "customer-42")
        .no_attr("messaging.message.body.size")
        .no_attr("rustmon.messaging.kafka.message.key.size")
        .one();
    capture
        .expect("send orders")
        .attr("messaging.kafka.offset", 2_i64)
        .one();
    capture.expect("send audit.log").none();

    // Ignored topics and `propagate_context = false` send no trace headers; consumers of an
    // ignored topic record nothing.
    let orders: StreamConsumer = consumer(&mock, "check", "orders", 0);
    let audit = MonitoredConsumer::new(consumer::<StreamConsumer>(&mock, "check", "audit.log", 0))
        .monitor(monitor.clone());
    rt.block_on(async {
        for (offset, traced) in [(0, true), (1, true), (2, false)] {
            let msg = recv(&orders).await;
            assert_eq!(msg.offset(), offset);
            assert_eq!(
                header(&msg, "traceparent").is_some(),
                traced,
                "offset {offset}"
            );
        }
        let msg = recv(&audit).await;
        assert!(header(&msg, "traceparent").is_none());
        audit.process(&msg, async {}).await;
    });
    monitor.flush(WAIT);
    capture.expect("process audit.log").none();

    // Monitoring off: nothing recorded, nothing injected.
    monitor.disable();
    monitor
        .update_config("kafka", &serde_json::json!({ "propagate_context": true }))
        .unwrap();
    send("orders", "fourth");
    monitor.enable();
    monitor.flush(WAIT);
    capture.expect("send orders").count(3);
    rt.block_on(async {
        let msg = recv(&orders).await;
        assert_eq!(msg.offset(), 3);
        assert!(header(&msg, "traceparent").is_none());
    });
}

#[test]
fn dropped_sends_and_processing_are_recorded_as_cancelled() {
    let (monitor, capture) = monitor();
    let mock = cluster(&[("orders", 1)]);
    let rt = runtime();
    let _rt = rt.enter(); // rdkafka's tokio runtime needs a handle when clients are created
    let producer = producer(&mock, &monitor);
    // Enqueued, then the delivery future is dropped before it is polled.
    let delivery = producer
        .send_result(FutureRecord::<str, str>::to("orders").payload("x"))
        .unwrap();
    drop(delivery);
    producer.flush(Duration::from_secs(10)).unwrap();

    let consumer = MonitoredConsumer::new(consumer::<StreamConsumer>(&mock, "g", "orders", 0))
        .monitor(monitor.clone());
    rt.block_on(async {
        let msg = recv(&consumer).await;
        // Processing abandoned after its first poll.
        let processing = consumer.process(&msg, std::future::pending::<()>());
        let _ = tokio::time::timeout(Duration::from_millis(10), processing).await;
    });
    monitor.flush(WAIT);
    let send = capture
        .expect("send orders")
        .attr("rustmon.cancelled", true)
        .one();
    capture
        .expect("process orders")
        .child_of(&send)
        .attr("rustmon.cancelled", true)
        .one();
}

/// A producer context with its own delivery opaque, to check that it still gets its reports.
#[derive(Clone, Default)]
struct Acks(Arc<Mutex<Vec<(usize, bool)>>>);

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        self.0.lock().unwrap().push((id, result.is_ok()));
    }
}

#[test]
fn threaded_and_base_producers_end_send_events_in_the_delivery_callback() {
    let (monitor, capture) = monitor();
    let mock = cluster(&[("events", 1)]);
    let rt = runtime();
    let _rt = rt.enter();

    let acks = Acks::default();
    let threaded: ThreadedProducer<MonitoredContext<Acks>> = client_config(&mock)
        .set("client.id", "threaded")
        .create_with_context(MonitoredContext::wrap(acks.clone()))
        .unwrap();
    let threaded = MonitoredBaseProducer::new(threaded).monitor(monitor.clone());
    let parent = monitor.start_event(Kind::Server, "POST /events");
    {
        let _current = parent.enter();
        threaded
            .send(
                BaseRecord::with_opaque_to("events", 7)
                    .key("k")
                    .payload("one"),
            )
            .map_err(|(e, _)| e)
            .unwrap();
    }
    threaded.flush(WAIT).unwrap();
    parent.finish();
    // The wrapped context got its own opaque.
    assert_eq!(*acks.0.lock().unwrap(), vec![(7, true)]);

    // A BaseProducer (delivery reports served by `poll`/`flush`), with a statistics context
    // inside: a delivery, a produce request the broker rejects, and an unknown partition.
    let base: BaseProducer<MonitoredContext<StatsContext<DefaultProducerContext>>> =
        client_config(&mock)
            .create_with_context(MonitoredContext::wrap(
                StatsContext::wrap(DefaultProducerContext).monitor(monitor.clone()),
            ))
            .unwrap();
    let base = MonitoredBaseProducer::new(base).monitor(monitor.clone());
    base.send(BaseRecord::<str, str>::to("events").payload("two"))
        .map_err(|(e, _)| e)
        .unwrap();
    base.flush(WAIT).unwrap();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    base.send(BaseRecord::<str, str>::to("events").payload("three"))
        .map_err(|(e, _)| e)
        .unwrap();
    // Rejected when enqueued (the record comes back) or in the delivery report.
    if let Err((e, record)) = base.send(
        BaseRecord::<str, str>::to("events")
            .partition(9)
            .payload("four"),
    ) {
        assert!(matches!(e, KafkaError::MessageProduction(_)), "{e:?}");
        assert_eq!(record.payload, Some("four"));
    }
    let _ = base.flush(WAIT);
    monitor.flush(WAIT);

    let parent = capture.expect("POST /events").one();
    let sent = capture
        .expect("send events")
        .child_of(&parent)
        .status(Status::Ok)
        .attr("messaging.client.id", "threaded")
        .attr("messaging.destination.partition.id", "0")
        .attr("messaging.kafka.offset", 0_i64)
        .attr("messaging.message.body.size", 3_i64)
        .one();
    capture
        .expect("send events")
        .root()
        .status(Status::Ok)
        .attr("messaging.kafka.offset", 1_i64)
        .one();
    capture
        .expect("send events")
        .status(Status::Error)
        .attr("error.type", "MessageSizeTooLarge")
        .one();
    capture
        .expect("send events")
        .status(Status::Error)
        .attr("error.type", "UnknownPartition")
        .one();

    let consumer: StreamConsumer = consumer(&mock, "check", "events", 0);
    rt.block_on(async {
        let msg = recv(&consumer).await;
        assert_eq!(
            header(&msg, "traceparent"),
            Some(sent.context().traceparent().as_str())
        );
    });
}
