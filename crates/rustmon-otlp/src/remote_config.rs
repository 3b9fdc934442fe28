//! Central configuration: the agent side of the collector's `/api/v1/config/{service}`.
//!
//! [`RemoteConfig`] is a plugin that polls the collector for its service's configuration (a JSON
//! object of plugin name to settings) with `If-None-Match`, applies a new version to the monitor's
//! live configuration all or nothing, and reports back which version is in force, or why a
//! version was rejected (the previous one then stays in force).

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rustmon_core::config::{FieldError, PluginConfig};
use rustmon_core::{Monitor, Plugin, PluginContext, PluginError};
use serde::{Deserialize, Serialize};

/// Settings of the poller itself (plugin `remote_config`, live).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemoteConfigSettings {
    /// How often the collector is asked (ms).
    pub interval_ms: u64,
    /// Timeout of one request (ms).
    pub timeout_ms: u64,
}

impl Default for RemoteConfigSettings {
    fn default() -> Self {
        RemoteConfigSettings {
            interval_ms: 10_000,
            timeout_ms: 5_000,
        }
    }
}

impl PluginConfig for RemoteConfigSettings {
    const NAME: &'static str = "remote_config";

    fn validate(&self) -> Result<(), FieldError> {
        if self.interval_ms < 100 {
            return Err(FieldError::new(
                "interval_ms",
                format!("must be at least 100, got {}", self.interval_ms),
            ));
        }
        if self.timeout_ms == 0 {
            return Err(FieldError::new("timeout_ms", "must be at least 1"));
        }
        Ok(())
    }
}

/// What the poller has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteConfigStatus {
    /// The central configuration version in force (0: none applied yet).
    pub applied_version: u64,
    /// Why the latest version was rejected, if it was.
    pub rejected: Option<String>,
    /// The last error talking to the collector, if the last attempt failed.
    pub last_error: Option<String>,
    /// Successful polls (changed or not).
    pub polls: u64,
}

#[derive(Default)]
struct Shared {
    status: Mutex<RemoteConfigStatus>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Polls the collector's central configuration and applies it live.
///
/// # Examples
/// ```no_run
/// use rustmon_core::Monitor;
/// use rustmon_otlp::RemoteConfig;
/// let monitor = Monitor::builder("checkout-api").build().unwrap();
/// let remote = RemoteConfig::new("http://127.0.0.1:7070");
/// let status = remote.status_handle();
/// monitor.register_plugin(remote).unwrap();
/// // … later: status.get().applied_version
/// ```
pub struct RemoteConfig {
    api_url: String,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

/// Reads a [`RemoteConfig`]'s status after it has moved into a monitor.
#[derive(Clone)]
pub struct RemoteConfigHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RemoteConfigHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RemoteConfigHandle")
            .field(&self.get())
            .finish()
    }
}

impl RemoteConfigHandle {
    /// The current status.
    pub fn get(&self) -> RemoteConfigStatus {
        self.shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl RemoteConfig {
    /// A poller for the collector whose API is at `api_url` (e.g. `http://127.0.0.1:7070`).
    pub fn new(api_url: impl Into<String>) -> Self {
        RemoteConfig {
            api_url: api_url.into().trim_end_matches('/').to_owned(),
            shared: Arc::default(),
            thread: None,
        }
    }

    /// A handle to read the poller's status after registration.
    pub fn status_handle(&self) -> RemoteConfigHandle {
        RemoteConfigHandle {
            shared: self.shared.clone(),
        }
    }
}

impl Plugin for RemoteConfig {
    type Config = RemoteConfigSettings;

    fn start(&mut self, ctx: PluginContext<RemoteConfigSettings>) -> Result<(), PluginError> {
        let start_error = |message: String| PluginError::Start {
            plugin: RemoteConfigSettings::NAME,
            message,
        };
        if !self.api_url.starts_with("http://") && !self.api_url.starts_with("https://") {
            return Err(start_error(format!(
                "collector api url `{}` must start with http:// or https://",
                self.api_url
            )));
        }
        let poller = Poller {
            url: format!(
                "{}/api/v1/config/{}",
                self.api_url,
                percent_encode(&ctx.monitor.resource().service_name)
            ),
            monitor: ctx.monitor,
            settings: ctx.config,
            shared: self.shared.clone(),
        };
        self.thread = Some(
            std::thread::Builder::new()
                .name("rustmon-remote-config".into())
                .spawn(move || poller.run())
                .map_err(|e| start_error(e.to_string()))?,
        );
        Ok(())
    }

    fn stop(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Poller {
    url: String,
    monitor: Monitor,
    settings: rustmon_core::ConfigHandle<RemoteConfigSettings>,
    shared: Arc<Shared>,
}

/// The collector's answer to a poll.
#[derive(Deserialize)]
struct Document {
    version: u64,
    #[serde(default)]
    config: serde_json::Map<String, serde_json::Value>,
}

impl Poller {
    fn run(self) {
        // The poller's own HTTP calls are never monitored.
        let _quiet = rustmon_core::context::suppress();
        let mut etag: Option<String> = None;
        loop {
            let settings = (**self.settings.get()).clone();
            let agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_millis(settings.timeout_ms)))
                .http_status_as_error(false)
                .user_agent(concat!("rustmon/", env!("CARGO_PKG_VERSION")))
                .build()
                .new_agent();
            match self.poll(&agent, etag.as_deref()) {
                Ok(Some((tag, doc))) => {
                    etag = tag;
                    self.apply(&agent, doc);
                }
                Ok(None) => self.update(|s| {
                    s.polls += 1;
                    s.last_error = None;
                }),
                Err(e) => self.update(|s| s.last_error = Some(e)),
            }
            let stop = self
                .shared
                .stop
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (stop, _) = self
                .shared
                .wake
                .wait_timeout_while(stop, Duration::from_millis(settings.interval_ms), |s| !*s)
                .unwrap_or_else(PoisonError::into_inner);
            if *stop {
                return;
            }
        }
    }

    /// `Ok(None)` when unchanged (304).
    fn poll(
        &self,
        agent: &ureq::Agent,
        etag: Option<&str>,
    ) -> Result<Option<(Option<String>, Document)>, String> {
        let mut request = agent.get(&self.url);
        if let Some(tag) = etag {
            request = request.header("If-None-Match", tag);
        }
        let mut response = request
            .call()
            .map_err(|e| format!("cannot reach {}: {e}", self.url))?;
        match response.status().as_u16() {
            304 => Ok(None),
            200 => {
                let tag = response
                    .headers()
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response
                    .body_mut()
                    .with_config()
                    .limit(1 << 20)
                    .read_to_vec()
                    .map_err(|e| format!("reading {}: {e}", self.url))?;
                let doc: Document = serde_json::from_slice(&body).map_err(|e| {
                    format!("invalid configuration document from {}: {e}", self.url)
                })?;
                Ok(Some((tag, doc)))
            }
            status => Err(format!("{} answered http status {status}", self.url)),
        }
    }

    fn apply(&self, agent: &ureq::Agent, doc: Document) {
        let applied = self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .applied_version;
        if doc.version == applied {
            self.update(|s| s.polls += 1);
            return;
        }
        let patches: Vec<(String, serde_json::Value)> = doc.config.into_iter().collect();
        let rejected = self
            .monitor
            .update_configs(&patches)
            .err()
            .map(|e| e.to_string());
        let version = if rejected.is_none() {
            doc.version
        } else {
            applied
        };
        if let Some(e) = &rejected {
            eprintln!(
                "rustmon: central configuration version {} rejected, version {applied} stays in force: {e}",
                doc.version
            );
        }
        self.update(|s| {
            s.polls += 1;
            s.last_error = None;
            s.applied_version = version;
            s.rejected = rejected.clone();
        });
        let report = serde_json::json!({
            "instance": self.monitor.resource().instance_id,
            "version": version,
            "error": rejected,
        });
        let sent = agent
            .post(&format!("{}/status", self.url))
            .header("Content-Type", "application/json")
            .send(report.to_string().as_bytes());
        if let Err(e) = sent {
            self.update(|s| s.last_error = Some(format!("cannot report status: {e}")));
        }
    }

    fn update(&self, f: impl FnOnce(&mut RemoteConfigStatus)) {
        f(&mut self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner));
    }
}

/// Percent-encodes a path segment.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(
            super::percent_encode("checkout api/v2"),
            "checkout%20api%2Fv2"
        );
    }
}
