//! [`NetConfig`]: what the socket wrappers record, live-updatable.

use rustmon_core::config::PluginConfig;
use serde::{Deserialize, Serialize};

/// What the socket wrappers record (plugin name `net`). Read when a listener, connection or
/// socket is created; changes apply to the ones created afterwards.
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_net::NetConfig;
/// let monitor = Monitor::builder("svc").build().unwrap();
/// monitor.update_config("net", &serde_json::json!({ "connection_events": false })).unwrap();
/// assert!(!monitor.config::<NetConfig>().get().connection_events);
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetConfig {
    /// One event per TCP connection and per UDP socket (default `true`). Listener events and
    /// metrics are recorded either way.
    pub connection_events: bool,
    /// Listener metrics: `rustmon.net.connections.active`, `rustmon.net.connections.accepted`,
    /// `rustmon.net.accept.errors` (default `true`).
    pub listener_metrics: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            connection_events: true,
            listener_metrics: true,
        }
    }
}

impl PluginConfig for NetConfig {
    const NAME: &'static str = "net";
}
