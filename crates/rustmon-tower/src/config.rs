//! [`HttpServerConfig`]: what the HTTP server integrations record, live-updatable.

use rustmon_core::config::{FieldError, PluginConfig};
use serde::{Deserialize, Serialize};

/// The largest `response_body_max_size` accepted (1 MiB): captured bodies travel with the event.
pub const MAX_BODY_CAPTURE: usize = 1 << 20;

/// What the HTTP server integrations record (plugin name `http_server`), shared by every web
/// framework integration and updatable at run time (from code, a file, the environment or the
/// collector) through [`Monitor::update_config`](rustmon_core::Monitor::update_config).
///
/// Defaults: nothing sensitive or bulky is captured — no headers, no remote address, no body;
/// status codes are recorded; sensitive headers are redacted whenever headers are captured.
///
/// Header lists compare names case-insensitively. `ignore_routes` entries match a route template
/// (`/health`, `/orders/{id}`) or the raw path; an entry ending in `*` matches by prefix
/// (`/internal/*`). Ignored requests produce no event at all.
///
/// # Examples
/// ```
/// use rustmon_core::Monitor;
/// use rustmon_tower::HttpServerConfig;
///
/// let monitor = Monitor::builder("checkout").build().unwrap();
/// let config = monitor.config::<HttpServerConfig>();
/// monitor
///     .update_config("http_server", &serde_json::json!({
///         "request_headers": true,
///         "ignore_routes": ["/health"],
///     }))
///     .unwrap();
/// assert!(config.get().request_headers);
/// # monitor.shutdown(std::time::Duration::from_secs(1));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpServerConfig {
    /// Record request headers as `http.request.header.<name>` (default `false`).
    pub request_headers: bool,
    /// Record the peer's address as `client.address` / `client.port` (default `false`).
    pub request_remote_addr: bool,
    /// Record the first `response_body_max_size` bytes of the response body as
    /// `http.response.body` (default `false`). The body is copied as it streams, never buffered.
    pub response_body: bool,
    /// How many bytes of the response body to keep (default 1024, at most 1 MiB).
    pub response_body_max_size: usize,
    /// Record response headers as `http.response.header.<name>` (default `false`).
    pub response_headers: bool,
    /// Record `http.response.status_code` (default `true`). The status class drives the event's
    /// status either way.
    pub response_code: bool,
    /// Routes (templates or raw paths, `*` suffix for a prefix) that produce no event.
    pub ignore_routes: Vec<String>,
    /// When not empty, only these headers are captured.
    pub header_allow: Vec<String>,
    /// Headers never captured.
    pub header_deny: Vec<String>,
    /// Replace the values of sensitive headers (`Authorization`, `Cookie`, `Set-Cookie`,
    /// `Proxy-Authorization`, names containing `token`, `secret` or `key`) by `[REDACTED]`
    /// (default `true`).
    pub redact_sensitive_headers: bool,
    /// Mark 4xx responses as errors (default `false`: recorded, not errors). 5xx always are.
    pub client_errors_are_errors: bool,
}

impl Default for HttpServerConfig {
    fn default() -> Self {
        HttpServerConfig {
            request_headers: false,
            request_remote_addr: false,
            response_body: false,
            response_body_max_size: 1024,
            response_headers: false,
            response_code: true,
            ignore_routes: Vec::new(),
            header_allow: Vec::new(),
            header_deny: Vec::new(),
            redact_sensitive_headers: true,
            client_errors_are_errors: false,
        }
    }
}

impl PluginConfig for HttpServerConfig {
    const NAME: &'static str = "http_server";

    fn validate(&self) -> Result<(), FieldError> {
        if self.response_body_max_size > MAX_BODY_CAPTURE {
            return Err(FieldError::new(
                "response_body_max_size",
                format!(
                    "must be at most {MAX_BODY_CAPTURE}, got {}",
                    self.response_body_max_size
                ),
            ));
        }
        for (field, list) in [
            ("ignore_routes", &self.ignore_routes),
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

impl HttpServerConfig {
    /// Whether a request with this route template (if matched) and raw path is ignored.
    pub fn is_ignored(&self, route: Option<&str>, path: &str) -> bool {
        self.ignore_routes.iter().any(|entry| {
            let matches = |s: &str| match entry.strip_suffix('*') {
                Some(prefix) => s.starts_with(prefix),
                None => s == entry,
            };
            route.is_some_and(matches) || matches(path)
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
    fn ignore_routes_match_templates_paths_and_prefixes() {
        let c = HttpServerConfig {
            ignore_routes: vec![
                "/health".into(),
                "/orders/{id}".into(),
                "/internal/*".into(),
            ],
            ..Default::default()
        };
        assert!(c.is_ignored(None, "/health"));
        assert!(c.is_ignored(Some("/orders/{id}"), "/orders/7"));
        assert!(c.is_ignored(None, "/internal/metrics"));
        assert!(!c.is_ignored(Some("/orders"), "/orders"));
    }

    #[test]
    fn header_lists_and_redaction() {
        let c = HttpServerConfig {
            header_allow: vec!["Accept".into(), "X-Api-Key".into()],
            header_deny: vec!["x-api-key".into()],
            ..Default::default()
        };
        assert!(c.captures_header("accept"));
        assert!(!c.captures_header("x-api-key"));
        assert!(!c.captures_header("user-agent"));
        assert!(c.redacts_header("cookie"));
        assert!(c.redacts_header("x-auth-token"));
        assert!(!c.redacts_header("keep-alive"));
    }

    #[test]
    fn validation_names_the_field() {
        let c = HttpServerConfig {
            response_body_max_size: MAX_BODY_CAPTURE + 1,
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "response_body_max_size");
        let c = HttpServerConfig {
            ignore_routes: vec!["/a".into(), " ".into()],
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "ignore_routes[1]");
    }
}
