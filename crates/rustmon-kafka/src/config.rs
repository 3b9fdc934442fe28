//! [`KafkaConfig`]: what the Kafka integration records, live-updatable.

use rustmon_core::config::{FieldError, PluginConfig};
use serde::{Deserialize, Serialize};

/// What the Kafka integration records (plugin name `kafka`), read once per message from the
/// monitor's live configuration.
///
/// | field | default | meaning |
/// |---|---|---|
/// | `record_payload_size` | `true` | `messaging.message.body.size` and `rustmon.messaging.kafka.message.key.size` |
/// | `record_key` | `false` | `messaging.kafka.message.key`: the message key, as UTF-8 (lossy) |
/// | `ignored_topics` | `[]` | topics with no event and no trace propagation: exact names, or a prefix followed by `*` |
/// | `propagate_context` | `true` | add `traceparent` (and `tracestate`) headers to produced messages |
/// | `record_statistics` | `true` | turn librdkafka statistics into metrics ([`StatsContext`](crate::StatsContext)) |
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_kafka::KafkaConfig;
/// let monitor = Monitor::builder("svc").build().unwrap();
/// monitor
///     .update_config("kafka", &serde_json::json!({ "ignored_topics": ["__consumer_offsets", "audit.*"] }))
///     .unwrap();
/// let config = monitor.config::<KafkaConfig>();
/// assert!(config.get().is_ignored("audit.login"));
/// assert!(!config.get().is_ignored("orders"));
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Record the sizes of message bodies and keys (default `true`).
    pub record_payload_size: bool,
    /// Record message keys as `messaging.kafka.message.key` (default `false`: keys often hold
    /// user or account ids).
    pub record_key: bool,
    /// Topics that produce no event: exact names, or a prefix followed by `*`.
    pub ignored_topics: Vec<String>,
    /// Inject the W3C trace context into the headers of produced messages (default `true`).
    pub propagate_context: bool,
    /// Record librdkafka statistics as metrics (default `true`; librdkafka only emits them when
    /// `statistics.interval.ms` is set on the client).
    pub record_statistics: bool,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            record_payload_size: true,
            record_key: false,
            ignored_topics: Vec::new(),
            propagate_context: true,
            record_statistics: true,
        }
    }
}

impl PluginConfig for KafkaConfig {
    const NAME: &'static str = crate::PLUGIN;

    fn validate(&self) -> Result<(), FieldError> {
        for (i, t) in self.ignored_topics.iter().enumerate() {
            let stem = t.strip_suffix('*').unwrap_or(t);
            if t.is_empty() || stem.contains('*') {
                return Err(FieldError::new(
                    format!("ignored_topics[{i}]"),
                    "must be a topic name, or a prefix followed by a single trailing `*`",
                ));
            }
        }
        Ok(())
    }
}

impl KafkaConfig {
    /// Whether messages of `topic` are ignored.
    pub fn is_ignored(&self, topic: &str) -> bool {
        self.ignored_topics
            .iter()
            .any(|entry| match entry.strip_suffix('*') {
                Some(prefix) => topic.starts_with(prefix),
                None => entry == topic,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_topics_and_validation() {
        let c = KafkaConfig {
            ignored_topics: vec!["audit".into(), "tmp.*".into()],
            ..Default::default()
        };
        assert!(c.is_ignored("audit"));
        assert!(!c.is_ignored("audit2"));
        assert!(c.is_ignored("tmp.x"));
        assert!(!c.is_ignored("orders"));
        let all = KafkaConfig {
            ignored_topics: vec!["*".into()],
            ..Default::default()
        };
        assert!(all.validate().is_ok() && all.is_ignored("anything"));
        for bad in ["", "a*b", "**"] {
            let c = KafkaConfig {
                ignored_topics: vec!["ok".into(), bad.into()],
                ..Default::default()
            };
            assert_eq!(
                c.validate().unwrap_err().field,
                "ignored_topics[1]",
                "{bad}"
            );
        }
        assert!(KafkaConfig::default().validate().is_ok());
    }
}
