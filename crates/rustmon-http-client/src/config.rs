//! [`HttpClientConfig`]: what the HTTP client integrations record, live-updatable.

use rustmon_core::config::{FieldError, PluginConfig};
use serde::{Deserialize, Serialize};

/// What the HTTP client integrations record (plugin name `http_client`), shared by the reqwest
/// middleware and the hyper layer and updatable at run time through
/// [`Monitor::update_config`](rustmon_core::Monitor::update_config). Each request reads it once.
///
/// Defaults: no headers captured (and sensitive ones redacted whenever headers are), every timing
/// the stack provides recorded, payload sizes recorded, `traceparent` injected, no host ignored.
///
/// `ignored_hosts` entries match the request's host exactly (case-insensitive); an entry starting
/// with `*.` matches any subdomain (`*.internal` matches `db.internal`). Requests to an ignored
/// host pass through untouched: no event and no `traceparent`.
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_http_client::HttpClientConfig;
///
/// let monitor = Monitor::builder("checkout").build().unwrap();
/// let config = monitor.config::<HttpClientConfig>();
/// monitor
///     .update_config("http_client", &serde_json::json!({
///         "request_headers": true,
///         "ignored_hosts": ["metadata.internal"],
///     }))
///     .unwrap();
/// assert!(config.get().request_headers);
/// assert!(config.get().is_ignored("METADATA.internal"));
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpClientConfig {
    /// Record request headers as `http.request.header.<name>` (default `false`).
    pub request_headers: bool,
    /// Record response headers as `http.response.header.<name>` (default `false`).
    pub response_headers: bool,
    /// When not empty, only these headers are captured.
    pub header_allow: Vec<String>,
    /// Headers never captured.
    pub header_deny: Vec<String>,
    /// Replace the values of sensitive headers (`Authorization`, `Cookie`, `Set-Cookie`,
    /// `Proxy-Authorization`, names containing `token`, `secret` or `key`) by `[REDACTED]`
    /// (default `true`).
    pub redact_sensitive_headers: bool,
    /// Which timings to record.
    pub timings: TimingsConfig,
    /// Hosts whose requests are not monitored.
    pub ignored_hosts: Vec<String>,
    /// Record `http.request.body.size` and `http.response.body.size` (default `true`).
    pub record_payload_size: bool,
    /// Inject `traceparent` so that the callee continues the trace (default `true`).
    pub propagate_context: bool,
    /// Mark 4xx responses as errors (default `true`, as OpenTelemetry does for clients). 5xx always
    /// are.
    pub client_errors_are_errors: bool,
}

/// Which connection timings [`HttpClientConfig`] records (each default `true`). A timing is only
/// recorded where the client stack provides it: see the crate documentation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimingsConfig {
    /// `rustmon.http.dns.duration`: name resolution, in seconds.
    pub dns: bool,
    /// `rustmon.http.connect.duration`: connection establishment after name resolution (TCP, and
    /// TLS where the timed connector wraps it), in seconds.
    pub connect: bool,
    /// `rustmon.http.time_to_first_byte`: from the start of the request until the response
    /// headers arrived, in seconds.
    pub time_to_first_byte: bool,
}

impl Default for TimingsConfig {
    fn default() -> Self {
        TimingsConfig {
            dns: true,
            connect: true,
            time_to_first_byte: true,
        }
    }
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            request_headers: false,
            response_headers: false,
            header_allow: Vec::new(),
            header_deny: Vec::new(),
            redact_sensitive_headers: true,
            timings: TimingsConfig::default(),
            ignored_hosts: Vec::new(),
            record_payload_size: true,
            propagate_context: true,
            client_errors_are_errors: true,
        }
    }
}

impl PluginConfig for HttpClientConfig {
    const NAME: &'static str = "http_client";

    fn validate(&self) -> Result<(), FieldError> {
        for (field, list) in [
            ("ignored_hosts", &self.ignored_hosts),
            ("header_allow", &self.header_allow),
            ("header_deny", &self.header_deny),
        ] {
            if let Some(i) = list.iter().position(|s| s.trim().is_empty()) {
                return Err(FieldError::new(
                    format!("{field}[{i}]"),
                    "must not be empty",
                ));
            }
        }
        Ok(())
    }
}

impl HttpClientConfig {
    /// Whether requests to `host` are ignored.
    pub fn is_ignored(&self, host: &str) -> bool {
        self.ignored_hosts
            .iter()
            .any(|entry| match entry.strip_prefix("*.") {
                Some(suffix) => {
                    host.len() > suffix.len() + 1
                        && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                }
                None => entry.eq_ignore_ascii_case(host),
            })
    }

    /// Whether header `name` may be captured (allow and deny lists).
    pub fn captures_header(&self, name: &str) -> bool {
        (self.header_allow.is_empty()
            || self
                .header_allow
                .iter()
                .any(|a| a.eq_ignore_ascii_case(name)))
            && !self
                .header_deny
                .iter()
                .any(|d| d.eq_ignore_ascii_case(name))
    }

    /// Whether the value of header `name` is replaced by `[REDACTED]`.
    pub fn redacts_header(&self, name: &str) -> bool {
        self.redact_sensitive_headers && is_sensitive_header(name)
    }
}

pub use rustmon_core::secrets::is_sensitive_header;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_hosts_exact_and_wildcard() {
        let c = HttpClientConfig {
            ignored_hosts: vec!["metadata".into(), "*.internal".into()],
            ..Default::default()
        };
        assert!(c.is_ignored("Metadata"));
        assert!(c.is_ignored("db.internal"));
        assert!(c.is_ignored("a.b.INTERNAL"));
        assert!(!c.is_ignored("internal"));
        assert!(!c.is_ignored("xinternal"));
        assert!(!c.is_ignored("example.com"));
    }

    #[test]
    fn headers_and_validation() {
        let c = HttpClientConfig {
            header_deny: vec!["x-trace".into()],
            ..Default::default()
        };
        assert!(c.captures_header("accept"));
        assert!(!c.captures_header("X-Trace"));
        assert!(c.redacts_header("set-cookie"));
        assert!(c.redacts_header("x-client-secret"));
        let bad = HttpClientConfig {
            ignored_hosts: vec!["a".into(), "".into()],
            ..Default::default()
        };
        assert_eq!(bad.validate().unwrap_err().field, "ignored_hosts[1]");
    }
}
