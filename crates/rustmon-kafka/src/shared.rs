//! What the producer and consumer wrappers share: the monitor, the live configuration, interned
//! names, and small helpers around librdkafka.

use std::borrow::Cow;
use std::ffi::{CStr, CString, c_char};
use std::sync::OnceLock;

use rdkafka::bindings as rdsys;
use rdkafka::error::KafkaError;
use rdkafka::message::Headers;
use rustmon_core::intern::Interner;
use rustmon_core::{ConfigHandle, Event, Monitor, SpanContext};

use crate::config::KafkaConfig;

/// The W3C trace context headers.
pub(crate) const TRACEPARENT: &str = "traceparent";
pub(crate) const TRACESTATE: &str = "tracestate";

pub(crate) struct Shared {
    monitor: Option<Monitor>,
    config: OnceLock<ConfigHandle<KafkaConfig>>,
}

impl Shared {
    pub(crate) fn new(monitor: Option<Monitor>) -> Shared {
        let config = OnceLock::new();
        if let Some(m) = &monitor {
            let _ = config.set(m.config::<KafkaConfig>());
        }
        Shared { monitor, config }
    }

    pub(crate) fn monitor(&self) -> Option<&Monitor> {
        match &self.monitor {
            Some(m) => Some(m),
            None => rustmon_core::global(),
        }
    }

    /// The monitor to record into and its configuration, if monitoring is on.
    #[inline]
    pub(crate) fn active(&self) -> Option<(&Monitor, &ConfigHandle<KafkaConfig>)> {
        let m = self.monitor()?;
        if !m.is_enabled() {
            return None;
        }
        Some((m, self.config.get_or_init(|| m.config::<KafkaConfig>())))
    }
}

/// `"{operation} {topic}"`, shared for up to 1024 topics.
pub(crate) fn event_name(operation: &'static str, topic: &str) -> Cow<'static, str> {
    static NAMES: OnceLock<Interner> = OnceLock::new();
    NAMES
        .get_or_init(|| Interner::new(1024, 256))
        .get_joined(operation, topic)
}

/// A topic name for `messaging.destination.name`, shared for up to 1024 topics.
pub(crate) fn topic_name(topic: &str) -> Cow<'static, str> {
    static TOPICS: OnceLock<Interner> = OnceLock::new();
    TOPICS.get_or_init(|| Interner::new(1024, 256)).get(topic)
}

/// A partition number as `messaging.destination.partition.id` wants it (a string), without
/// allocating for the first partitions.
pub(crate) fn partition_id(partition: i32) -> Cow<'static, str> {
    const IDS: [&str; 32] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31",
    ];
    match usize::try_from(partition).ok().and_then(|i| IDS.get(i)) {
        Some(id) => Cow::Borrowed(id),
        None => Cow::Owned(partition.to_string()),
    }
}

/// The attributes every Kafka event carries.
pub(crate) fn common_attributes(
    event: &mut Event,
    operation: &'static str,
    topic: &str,
    client_id: Option<&Cow<'static, str>>,
) {
    event.set("messaging.system", "kafka");
    event.set("messaging.operation.type", operation);
    event.set("messaging.operation.name", operation);
    event.set("messaging.destination.name", topic_name(topic));
    if let Some(id) = client_id {
        event.set("messaging.client.id", id.clone());
    }
}

/// Key and body attributes, as the configuration asks.
pub(crate) fn message_attributes(
    event: &mut Event,
    config: &KafkaConfig,
    key: Option<&[u8]>,
    payload: Option<usize>,
) {
    if config.record_payload_size {
        if let Some(len) = payload {
            event.set("messaging.message.body.size", len as u64);
        }
        if let Some(key) = key {
            event.set("rustmon.messaging.kafka.message.key.size", key.len() as u64);
        }
    }
    if payload.is_none() {
        event.set("messaging.kafka.message.tombstone", true);
    }
    if config.record_key {
        if let Some(key) = key {
            event.set(
                "messaging.kafka.message.key",
                String::from_utf8_lossy(key).into_owned(),
            );
        }
    }
}

/// Records a librdkafka error: `error.type` is the error code's name (`MessageTimedOut`,
/// `UnknownTopicOrPartition`), or the kind of failure when there is no code (`Canceled`).
pub(crate) fn record_kafka_error(event: &mut Event, error: &KafkaError) {
    let kind = error_type(error);
    event.set("error.type", kind.clone());
    event.record_error(kind, error);
}

/// The `error.type` of a librdkafka error.
pub(crate) fn error_type(error: &KafkaError) -> Cow<'static, str> {
    if let Some(code) = error.rdkafka_error_code() {
        return Cow::Owned(format!("{code:?}"));
    }
    Cow::Borrowed(match error {
        KafkaError::Canceled => "Canceled",
        KafkaError::ClientConfig(..) => "ClientConfig",
        KafkaError::ClientCreation(_) => "ClientCreation",
        KafkaError::NoMessageReceived => "NoMessageReceived",
        KafkaError::Nul(_) => "Nul",
        KafkaError::PartitionEOF(_) => "PartitionEOF",
        _ => "KafkaError",
    })
}

/// The trace context carried in a message's headers, if a valid `traceparent` is there.
pub(crate) fn extract<H: Headers>(headers: &H) -> Option<SpanContext> {
    let mut traceparent = None;
    let mut tracestate = None;
    for h in headers.iter() {
        let value = h.value.and_then(|v| std::str::from_utf8(v).ok());
        if h.key.eq_ignore_ascii_case(TRACEPARENT) {
            traceparent = value;
        } else if h.key.eq_ignore_ascii_case(TRACESTATE) {
            tracestate = value;
        }
    }
    SpanContext::from_headers(traceparent?, tracestate)
}

/// A client configuration property, read from a live librdkafka handle (`client.id`,
/// `group.id`); `None` when unset or empty.
pub(crate) fn conf_get(rk: *mut rdsys::rd_kafka_t, name: &'static CStr) -> Option<String> {
    if rk.is_null() {
        return None;
    }
    let mut buf = [0 as c_char; 512];
    let mut size = buf.len();
    // SAFETY: `rk` is a live client handle (the caller borrows the client that owns it);
    // `rd_kafka_conf` returns that handle's configuration, valid while the handle lives, and
    // `rd_kafka_conf_get` writes at most `size` bytes, NUL-terminated, into `buf`.
    let res = unsafe {
        let conf = rdsys::rd_kafka_conf(rk);
        if conf.is_null() {
            return None;
        }
        rdsys::rd_kafka_conf_get(conf, name.as_ptr(), buf.as_mut_ptr(), &mut size)
    };
    if res != rdsys::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
        return None;
    }
    // SAFETY: on success `buf` holds a NUL-terminated string (librdkafka terminates it, and
    // `size` fitted the buffer or the call would have failed with a larger size).
    let value = unsafe { CStr::from_ptr(buf.as_ptr()) };
    let value = value.to_string_lossy();
    (!value.is_empty()).then(|| value.into_owned())
}

/// The high watermark of a partition as the client last saw it (from fetch responses; no
/// network call); `None` when unknown.
pub(crate) fn cached_high_watermark(
    rk: *mut rdsys::rd_kafka_t,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    if rk.is_null() {
        return None;
    }
    // Kafka topic names are at most 249 bytes: a stack buffer spares an allocation per message.
    let mut buf = [0u8; 256];
    let owned;
    let topic: &CStr = if topic.len() < buf.len() && !topic.as_bytes().contains(&0) {
        buf[..topic.len()].copy_from_slice(topic.as_bytes());
        CStr::from_bytes_until_nul(&buf).ok()?
    } else {
        owned = CString::new(topic).ok()?;
        &owned
    };
    let (mut low, mut high) = (-1_i64, -1_i64);
    // SAFETY: `rk` is a live client handle (the caller borrows the consumer that owns it),
    // `topic` is NUL-terminated, and `low`/`high` are valid for writes.
    let err = unsafe {
        rdsys::rd_kafka_get_watermark_offsets(rk, topic.as_ptr(), partition, &mut low, &mut high)
    };
    (err == rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0).then_some(high)
}
