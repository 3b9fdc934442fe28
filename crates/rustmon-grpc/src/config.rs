//! [`GrpcConfig`]: what the gRPC layers record, live-updatable.

use rustmon_core::config::{FieldError, PluginConfig};
use serde::{Deserialize, Serialize};

/// What the gRPC layers record (plugin name `grpc`), read once per call from the monitor's live
/// configuration.
///
/// `ignored_methods` entries are full method names (`grpc.health.v1.Health/Check`) or a service
/// followed by `/*` (`grpc.reflection.v1.ServerReflection/*`); ignored calls pass through with no
/// event and no trace propagation.
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_grpc::GrpcConfig;
/// let monitor = Monitor::builder("svc").build().unwrap();
/// monitor
///     .update_config("grpc", &serde_json::json!({ "ignored_methods": ["grpc.health.v1.Health/*"] }))
///     .unwrap();
/// assert!(monitor.config::<GrpcConfig>().get().is_ignored("grpc.health.v1.Health", "Check"));
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// Methods that produce no event.
    pub ignored_methods: Vec<String>,
    /// Inject `traceparent` into the metadata of outgoing calls (default `true`).
    pub propagate_context: bool,
    /// Count the messages of each call, in both directions (default `true`).
    pub record_message_counts: bool,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            ignored_methods: Vec::new(),
            propagate_context: true,
            record_message_counts: true,
        }
    }
}

impl PluginConfig for GrpcConfig {
    const NAME: &'static str = "grpc";

    fn validate(&self) -> Result<(), FieldError> {
        if let Some(i) = self
            .ignored_methods
            .iter()
            .position(|m| !m.contains('/') || m.starts_with('/'))
        {
            return Err(FieldError::new(
                format!("ignored_methods[{i}]"),
                "must be `package.Service/Method` or `package.Service/*`",
            ));
        }
        Ok(())
    }
}

impl GrpcConfig {
    /// Whether calls of `service`/`method` are ignored.
    pub fn is_ignored(&self, service: &str, method: &str) -> bool {
        self.ignored_methods.iter().any(|entry| {
            entry
                .split_once('/')
                .is_some_and(|(s, m)| s == service && (m == "*" || m == method))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_and_validation() {
        let c = GrpcConfig {
            ignored_methods: vec!["a.B/C".into(), "x.Y/*".into()],
            ..Default::default()
        };
        assert!(c.is_ignored("a.B", "C"));
        assert!(!c.is_ignored("a.B", "D"));
        assert!(c.is_ignored("x.Y", "Anything"));
        let bad = GrpcConfig {
            ignored_methods: vec!["nothing".into()],
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "ignored_methods[0]");
    }
}
