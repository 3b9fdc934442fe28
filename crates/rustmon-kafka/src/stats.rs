//! librdkafka statistics as rustmon metrics: [`StatsContext`] and [`record_statistics`].

use std::borrow::Cow;
use std::error::Error;
use std::fmt;

use rdkafka::client::{DefaultClientContext, OAuthToken};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Statistics};
use rustmon_core::metrics::{Metric, MetricData, Number};
use rustmon_core::{KeyValue, Monitor, now_unix_nanos};

use crate::config::KafkaConfig;
use crate::shared::{Shared, partition_id};

/// A librdkafka [`ClientContext`] that turns the client's statistics into rustmon metrics
/// (see [`record_statistics`] for the list), for producers and consumers alike.
///
/// librdkafka emits statistics only when the client sets `statistics.interval.ms`; each
/// emission becomes one set of gauges. Everything else (logging, errors, OAuth tokens) is
/// passed to the wrapped context, and so are the statistics, after they are recorded. As a
/// [`ConsumerContext`] it keeps librdkafka's default rebalance and commit handling; a consumer
/// that needs its own context should call [`record_statistics`] from that context's
/// [`ClientContext::stats`] instead.
///
/// # Examples
/// ```no_run
/// use rdkafka::ClientConfig;
/// use rdkafka::consumer::StreamConsumer;
/// use rdkafka::producer::FutureProducer;
/// use rustmon_kafka::StatsContext;
/// # fn demo() -> Result<(), rdkafka::error::KafkaError> {
/// let mut config = ClientConfig::new();
/// config
///     .set("bootstrap.servers", "127.0.0.1:9092")
///     .set("statistics.interval.ms", "10000");
/// let producer: FutureProducer<StatsContext> = config.create_with_context(StatsContext::new())?;
/// let consumer: StreamConsumer<StatsContext> = config
///     .clone()
///     .set("group.id", "billing")
///     .create_with_context(StatsContext::new())?;
/// # let _ = (producer, consumer); Ok(()) }
/// ```
pub struct StatsContext<C = DefaultClientContext> {
    inner: C,
    shared: Shared,
}

impl<C> fmt::Debug for StatsContext<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsContext").finish_non_exhaustive()
    }
}

impl Default for StatsContext {
    fn default() -> Self {
        StatsContext::new()
    }
}

impl StatsContext {
    /// A context recording into the global monitor.
    pub fn new() -> Self {
        StatsContext::wrap(DefaultClientContext)
    }
}

impl<C: ClientContext> StatsContext<C> {
    /// A context recording statistics, then passing every callback to `inner`.
    pub fn wrap(inner: C) -> Self {
        StatsContext {
            inner,
            shared: Shared::new(None),
        }
    }

    /// Records into `monitor` instead of the global one.
    pub fn monitor(self, monitor: Monitor) -> Self {
        StatsContext {
            inner: self.inner,
            shared: Shared::new(Some(monitor)),
        }
    }

    /// The wrapped context.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

impl<C: ClientContext> ClientContext for StatsContext<C> {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = C::ENABLE_REFRESH_OAUTH_TOKEN;

    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.inner.log(level, fac, log_message);
    }

    fn stats(&self, statistics: Statistics) {
        // The time is taken before the configuration is read: a point stamped after a change
        // was made under the new configuration.
        let now = now_unix_nanos();
        if let Some((monitor, config)) = self.shared.active() {
            if config.get().record_statistics {
                monitor.record_metrics(statistics_metrics(&statistics, now));
            }
        }
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

impl<C: ClientContext> ConsumerContext for StatsContext<C> {}

/// Records one emission of librdkafka statistics into `monitor` as gauges (unless the
/// `kafka` configuration turned `record_statistics` off). [`StatsContext`] calls it; call it
/// yourself from your own context's [`ClientContext::stats`].
///
/// Every point carries `messaging.system = kafka`, `messaging.client.id` and
/// `rustmon.kafka.client.name` (librdkafka's handle name, e.g. `rdkafka#producer-1`):
///
/// | metric | unit | what | extra attributes |
/// |---|---|---|---|
/// | `rustmon.kafka.queue.messages` | `{message}` | messages waiting in the producer queues (`msg_cnt`) | |
/// | `rustmon.kafka.queue.size` | `By` | their total size (`msg_size`) | |
/// | `rustmon.kafka.broker.rtt` | `s` | mean broker round-trip time over the interval | `rustmon.kafka.broker`, `rustmon.kafka.broker.id` |
/// | `rustmon.kafka.broker.rtt.p99` | `s` | its 99th percentile | same |
/// | `rustmon.kafka.consumer.lag` | `{message}` | messages between the consumer's position and the partition's end | `messaging.destination.name`, `messaging.destination.partition.id` |
///
/// Queue gauges come from producers, lag from consumers; brokers without requests in the
/// interval and partitions whose lag librdkafka does not know yet (`-1`) are left out.
pub fn record_statistics(monitor: &Monitor, statistics: &Statistics) {
    let now = now_unix_nanos();
    if monitor.config::<KafkaConfig>().get().record_statistics {
        monitor.record_metrics(statistics_metrics(statistics, now));
    }
}

/// The gauges of one statistics emission, stamped `now`.
fn statistics_metrics(s: &Statistics, now: u64) -> Vec<Metric> {
    let start = u64::try_from(s.age).ok().map_or(now, |age_us| {
        now.saturating_sub(age_us.saturating_mul(1000))
    });
    let base = vec![
        KeyValue::new("messaging.system", "kafka"),
        KeyValue::new("messaging.client.id", s.client_id.clone()),
        KeyValue::new("rustmon.kafka.client.name", s.name.clone()),
    ];
    let gauge = |name: &'static str,
                 description: &'static str,
                 unit: &'static str,
                 extra: Vec<KeyValue>,
                 value: Number| {
        let mut attributes = base.clone();
        attributes.extend(extra);
        Metric {
            name: Cow::Borrowed(name),
            description: Cow::Borrowed(description),
            unit: Cow::Borrowed(unit),
            attributes,
            start_unix_nanos: start,
            time_unix_nanos: now,
            data: MetricData::Gauge(value),
        }
    };
    let int = |v: u64| Number::I64(i64::try_from(v).unwrap_or(i64::MAX));
    let mut out = Vec::new();
    if s.client_type == "producer" {
        out.push(gauge(
            "rustmon.kafka.queue.messages",
            "Messages waiting in the producer queues",
            "{message}",
            Vec::new(),
            int(s.msg_cnt),
        ));
        out.push(gauge(
            "rustmon.kafka.queue.size",
            "Total size of the messages waiting in the producer queues",
            "By",
            Vec::new(),
            int(s.msg_size),
        ));
    }
    let mut brokers: Vec<_> = s.brokers.values().collect();
    brokers.sort_by_key(|b| b.nodeid);
    for b in brokers {
        let Some(rtt) = b.rtt.as_ref().filter(|w| w.cnt > 0) else {
            continue;
        };
        if b.nodeid < 0 {
            continue; // a bootstrap connection, replaced by the broker's own once known
        }
        let attrs = || {
            vec![
                KeyValue::new("rustmon.kafka.broker", b.nodename.clone()),
                KeyValue::new("rustmon.kafka.broker.id", i64::from(b.nodeid)),
            ]
        };
        let seconds = |us: i64| Number::F64(us as f64 / 1e6);
        out.push(gauge(
            "rustmon.kafka.broker.rtt",
            "Mean broker round-trip time over the statistics interval",
            "s",
            attrs(),
            seconds(rtt.avg),
        ));
        out.push(gauge(
            "rustmon.kafka.broker.rtt.p99",
            "99th percentile of the broker round-trip time over the statistics interval",
            "s",
            attrs(),
            seconds(rtt.p99),
        ));
    }
    if s.client_type == "consumer" {
        let mut topics: Vec<_> = s.topics.values().collect();
        topics.sort_by(|a, b| a.topic.cmp(&b.topic));
        for t in topics {
            let mut partitions: Vec<_> = t
                .partitions
                .values()
                .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
                .collect();
            partitions.sort_by_key(|p| p.partition);
            for p in partitions {
                out.push(gauge(
                    "rustmon.kafka.consumer.lag",
                    "Messages between the consumer's position and the end of the partition",
                    "{message}",
                    vec![
                        KeyValue::new("messaging.destination.name", t.topic.clone()),
                        KeyValue::new(
                            "messaging.destination.partition.id",
                            partition_id(p.partition),
                        ),
                    ],
                    Number::I64(p.consumer_lag),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_become_gauges() {
        let json = serde_json::json!({
            "name": "rdkafka#consumer-1", "client_id": "billing", "type": "consumer",
            "ts": 1, "time": 1, "age": 5_000_000, "replyq": 0, "msg_cnt": 0, "msg_size": 0,
            "msg_max": 0, "msg_size_max": 0, "tx": 0, "tx_bytes": 0, "rx": 0, "rx_bytes": 0,
            "txmsgs": 0, "txmsg_bytes": 0, "rxmsgs": 0, "rxmsg_bytes": 0, "simple_cnt": 0,
            "metadata_cache_cnt": 0,
            "brokers": {},
            "topics": {
                "orders": { "topic": "orders", "age": 0, "metadata_age": 0,
                    "batchsize": window(), "batchcnt": window(),
                    "partitions": {
                        "0": partition(0, 7), "1": partition(1, -1), "-1": partition(-1, 3)
                    } }
            }
        });
        let stats: Statistics = serde_json::from_value(json).unwrap();
        let metrics = statistics_metrics(&stats, now_unix_nanos());
        assert_eq!(metrics.len(), 1, "{metrics:?}");
        let lag = &metrics[0];
        assert_eq!(lag.name, "rustmon.kafka.consumer.lag");
        assert_eq!(lag.data, MetricData::Gauge(Number::I64(7)));
        assert!(
            lag.attributes
                .contains(&KeyValue::new("messaging.destination.partition.id", "0"))
        );
        assert!(
            lag.attributes
                .contains(&KeyValue::new("messaging.client.id", "billing"))
        );
    }

    fn window() -> serde_json::Value {
        serde_json::json!({ "min": 0, "max": 0, "avg": 0, "sum": 0, "cnt": 0, "stddev": 0,
            "hdrsize": 0, "p50": 0, "p75": 0, "p90": 0, "p95": 0, "p99": 0, "p99_99": 0,
            "outofrange": 0 })
    }

    fn partition(id: i32, lag: i64) -> serde_json::Value {
        serde_json::json!({ "partition": id, "broker": 1, "leader": 1, "desired": true,
            "unknown": false, "msgq_cnt": 0, "msgq_bytes": 0, "xmit_msgq_cnt": 0,
            "xmit_msgq_bytes": 0, "fetchq_cnt": 0, "fetchq_size": 0, "fetch_state": "active",
            "query_offset": 0, "next_offset": 0, "app_offset": 0, "stored_offset": 0,
            "committed_offset": 0, "eof_offset": 0, "lo_offset": 0, "hi_offset": 7,
            "ls_offset": 0, "consumer_lag": lag, "consumer_lag_stored": lag, "txmsgs": 0,
            "txbytes": 0, "rxmsgs": 0, "rxbytes": 0, "msgs": 0, "rx_ver_drops": 0,
            "msgs_inflight": 0, "next_ack_seq": 0, "next_err_seq": 0, "acked_msgid": 0 })
    }
}
