//! The exporter's builder: options, environment variables and their validation.

use std::fmt;
use std::time::Duration;

use ureq::http::{HeaderName, HeaderValue, Uri};

use crate::error::Error;
use crate::exporter::OtlpExporter;

/// The endpoint used when neither the builder nor the environment names one.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4318";
/// The default timeout of one HTTP request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default number of spans (or metric points) per request.
pub const DEFAULT_MAX_BATCH: usize = 512;
/// The default number of requests the buffer holds before the oldest is dropped.
pub const DEFAULT_MAX_QUEUE: usize = 64;
/// The default byte budget of the buffer (uncompressed protobuf).
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// The default number of retries after a failed attempt.
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// The default wait before the first retry; it doubles with each retry.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// The default longest wait between retries.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured; longer values are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

const ENV_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const ENV_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const ENV_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
const ENV_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
const ENV_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
const ENV_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
const ENV_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";

/// How request bodies are compressed.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// gzip, with `Content-Encoding: gzip`: fewer bytes on the wire, for a collector across a
    /// network, at about 1 µs of the pipeline thread per span.
    Gzip,
    /// No compression (the default, as in the OpenTelemetry specification).
    #[default]
    None,
}

/// Builds an [`OtlpExporter`]. Options set here win over the environment variables
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
/// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
/// `OTEL_EXPORTER_OTLP_COMPRESSION`), which win over the defaults. `OTEL_EXPORTER_OTLP_PROTOCOL`,
/// when set, must be `http/protobuf`: any other protocol is an error rather than a silent failure
/// to deliver.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use rustmon_otlp::OtlpExporter;
/// let exporter = OtlpExporter::builder()
///     .endpoint("http://127.0.0.1:4318")
///     .timeout(Duration::from_secs(5))
///     .header("x-team", "checkout")
///     .max_queue(128)
///     .build()?;
/// # Ok::<(), rustmon_otlp::Error>(())
/// ```
#[must_use]
#[derive(Clone, Default)]
pub struct OtlpExporterBuilder {
    endpoint: Option<String>,
    traces_endpoint: Option<String>,
    metrics_endpoint: Option<String>,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    compression: Option<Compression>,
    max_batch: Option<usize>,
    max_queue: Option<usize>,
    max_queue_bytes: Option<usize>,
    max_retries: Option<u32>,
    initial_backoff: Option<Duration>,
    max_backoff: Option<Duration>,
    use_env: bool,
}

impl fmt::Debug for OtlpExporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporterBuilder")
            .field("endpoint", &self.endpoint)
            .field("traces_endpoint", &self.traces_endpoint)
            .field("metrics_endpoint", &self.metrics_endpoint)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("max_batch", &self.max_batch)
            .field("max_queue", &self.max_queue)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("use_env", &self.use_env)
            .finish()
    }
}

/// The resolved, validated configuration the worker uses.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) traces_url: String,
    pub(crate) metrics_url: String,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) timeout: Duration,
    pub(crate) compression: Compression,
    pub(crate) max_batch: usize,
    pub(crate) max_queue: usize,
    pub(crate) max_queue_bytes: usize,
    pub(crate) max_retries: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("traces_url", &self.traces_url)
            .field("metrics_url", &self.metrics_url)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .field("max_batch", &self.max_batch)
            .field("max_queue", &self.max_queue)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_retries", &self.max_retries)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

impl OtlpExporterBuilder {
    pub(crate) fn new() -> Self {
        OtlpExporterBuilder {
            use_env: true,
            ..Default::default()
        }
    }

    /// The base URL of the OTLP/HTTP receiver; requests go to `{endpoint}/v1/traces` and
    /// `{endpoint}/v1/metrics`. Default: `OTEL_EXPORTER_OTLP_ENDPOINT`, else
    /// `http://127.0.0.1:4318`.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// The full URL traces are posted to, used as given. Default:
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, else `{endpoint}/v1/traces`.
    pub fn traces_endpoint(mut self, url: impl Into<String>) -> Self {
        self.traces_endpoint = Some(url.into());
        self
    }

    /// The full URL metrics are posted to, used as given. Default:
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, else `{endpoint}/v1/metrics`.
    pub fn metrics_endpoint(mut self, url: impl Into<String>) -> Self {
        self.metrics_endpoint = Some(url.into());
        self
    }

    /// Adds a header to every request (e.g. an API key). Wins over a header of the same name from
    /// `OTEL_EXPORTER_OTLP_HEADERS`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The timeout of one HTTP request, connection included. Default:
    /// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds), else 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Body compression. Default: `OTEL_EXPORTER_OTLP_COMPRESSION` (`gzip` or `none`), else none.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = Some(compression);
        self
    }

    /// The most spans (or metric points) in one request; larger batches are split. Default 512.
    pub fn max_batch(mut self, n: usize) -> Self {
        self.max_batch = Some(n);
        self
    }

    /// The most requests waiting to be sent; when full, the oldest is dropped and counted.
    /// Default 64.
    pub fn max_queue(mut self, n: usize) -> Self {
        self.max_queue = Some(n);
        self
    }

    /// The most bytes (uncompressed protobuf) waiting to be sent; when over, the oldest requests
    /// are dropped and counted. Default 32 MiB.
    pub fn max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue_bytes = Some(bytes);
        self
    }

    /// How many times a failed request is retried (connection errors, timeouts, HTTP 429, 502,
    /// 503, 504); 0 disables retries. Default 5.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// The wait before the first retry, doubled for each further one (with jitter) up to
    /// [`max_backoff`](Self::max_backoff). A `Retry-After` header wins. Default 500 ms.
    pub fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = Some(backoff);
        self
    }

    /// The longest wait between retries (a `Retry-After` may ask for up to 60 s). Default 10 s.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = Some(backoff);
        self
    }

    /// Whether the `OTEL_EXPORTER_OTLP_*` environment variables are read (default: yes).
    pub fn with_env(mut self, read: bool) -> Self {
        self.use_env = read;
        self
    }

    /// Validates the options and starts the exporter's worker thread.
    ///
    /// # Errors
    /// An endpoint that is not an `http://` URL (or `https://` with the `tls` feature), an invalid
    /// header, a zero timeout, batch or queue size, a malformed environment variable, or a thread
    /// that cannot be spawned; each error names the option or variable.
    pub fn build(self) -> Result<OtlpExporter, Error> {
        let use_env = self.use_env;
        let config = self.resolve(|name| {
            if use_env {
                std::env::var(name).ok().filter(|v| !v.trim().is_empty())
            } else {
                None
            }
        })?;
        OtlpExporter::start(config)
    }

    pub(crate) fn resolve(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        if let Some(p) = env(ENV_PROTOCOL) {
            if p.trim() != "http/protobuf" {
                return Err(Error::InvalidOption {
                    option: ENV_PROTOCOL,
                    reason: format!("rustmon-otlp sends http/protobuf only, got `{}`", p.trim()),
                });
            }
        }
        let (base, base_origin) = match (self.endpoint, env(ENV_ENDPOINT)) {
            (Some(e), _) => (e, "endpoint()"),
            (None, Some(e)) => (e, ENV_ENDPOINT),
            (None, None) => (DEFAULT_ENDPOINT.to_owned(), "the default"),
        };
        validate_url(&base, base_origin, true)?;
        let base = base.trim().trim_end_matches('/').to_owned();
        let signal_url = |explicit: Option<String>,
                          explicit_origin: &'static str,
                          var: &'static str,
                          path: &str|
         -> Result<String, Error> {
            match (explicit, env(var)) {
                (Some(u), _) => {
                    validate_url(&u, explicit_origin, false).map(|()| u.trim().to_owned())
                }
                (None, Some(u)) => validate_url(&u, var, false).map(|()| u.trim().to_owned()),
                (None, None) => Ok(format!("{base}{path}")),
            }
        };
        let traces_url = signal_url(
            self.traces_endpoint,
            "traces_endpoint()",
            ENV_TRACES_ENDPOINT,
            "/v1/traces",
        )?;
        let metrics_url = signal_url(
            self.metrics_endpoint,
            "metrics_endpoint()",
            ENV_METRICS_ENDPOINT,
            "/v1/metrics",
        )?;

        let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
        let mut add = |name: &str, value: &str, origin: &'static str| -> Result<(), Error> {
            let (n, v) = parse_header(name, value, origin)?;
            headers.retain(|(k, _)| *k != n);
            headers.push((n, v));
            Ok(())
        };
        if let Some(list) = env(ENV_HEADERS) {
            for (name, value) in parse_header_list(&list)? {
                add(&name, &value, ENV_HEADERS)?;
            }
        }
        for (name, value) in &self.headers {
            add(name, value, "header()")?;
        }

        let timeout = match (self.timeout, env(ENV_TIMEOUT)) {
            (Some(t), _) => t,
            (None, Some(ms)) => {
                let ms: u64 = ms.trim().parse().map_err(|_| Error::InvalidOption {
                    option: ENV_TIMEOUT,
                    reason: format!("expected milliseconds, got `{ms}`"),
                })?;
                Duration::from_millis(ms)
            }
            (None, None) => DEFAULT_TIMEOUT,
        };
        if timeout.is_zero() {
            return Err(Error::InvalidOption {
                option: "timeout",
                reason: "must be greater than zero".into(),
            });
        }
        let compression = match (self.compression, env(ENV_COMPRESSION)) {
            (Some(c), _) => c,
            (None, Some(c)) => match c.trim() {
                "gzip" => Compression::Gzip,
                "none" => Compression::None,
                other => {
                    return Err(Error::InvalidOption {
                        option: ENV_COMPRESSION,
                        reason: format!("expected `gzip` or `none`, got `{other}`"),
                    });
                }
            },
            (None, None) => Compression::None,
        };
        let positive = |option: &'static str, v: usize| {
            if v == 0 {
                Err(Error::InvalidOption {
                    option,
                    reason: "must be at least 1".into(),
                })
            } else {
                Ok(v)
            }
        };
        let initial_backoff = self.initial_backoff.unwrap_or(DEFAULT_INITIAL_BACKOFF);
        let max_backoff = self
            .max_backoff
            .unwrap_or(DEFAULT_MAX_BACKOFF)
            .max(initial_backoff);
        Ok(Config {
            traces_url,
            metrics_url,
            headers,
            timeout,
            compression,
            max_batch: positive("max_batch", self.max_batch.unwrap_or(DEFAULT_MAX_BATCH))?,
            max_queue: positive("max_queue", self.max_queue.unwrap_or(DEFAULT_MAX_QUEUE))?,
            max_queue_bytes: positive(
                "max_queue_bytes",
                self.max_queue_bytes.unwrap_or(DEFAULT_MAX_QUEUE_BYTES),
            )?,
            max_retries: self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            initial_backoff,
            max_backoff,
        })
    }
}

fn validate_url(value: &str, origin: &'static str, base: bool) -> Result<(), Error> {
    let invalid = |reason: &str| Error::InvalidEndpoint {
        value: value.to_owned(),
        origin,
        reason: reason.to_owned(),
    };
    let uri: Uri = value
        .trim()
        .parse()
        .map_err(|e: ureq::http::uri::InvalidUri| invalid(&format!("not a valid URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            if !cfg!(feature = "tls") {
                return Err(invalid(
                    "https needs the `tls` feature of rustmon-otlp; enable it or use http://",
                ));
            }
        }
        Some(other) => {
            return Err(invalid(&format!(
                "the scheme must be http or https, not `{other}`"
            )));
        }
        None => return Err(invalid("expected a URL such as http://127.0.0.1:4318")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("the URL has no host"));
    }
    let authority = uri.authority().map_or("", |a| a.as_str());
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let port = match host_port.rfind(':') {
        Some(i) if !host_port[i..].contains(']') => Some(&host_port[i + 1..]),
        _ => None,
    };
    if port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(invalid("the port is not a number from 0 to 65535"));
    }
    if base && uri.query().is_some() {
        return Err(invalid(
            "a base endpoint must not have a query (set the traces or metrics endpoint instead)",
        ));
    }
    Ok(())
}

fn parse_header(
    name: &str,
    value: &str,
    origin: &'static str,
) -> Result<(HeaderName, HeaderValue), Error> {
    let n = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| Error::InvalidHeader {
        name: name.to_owned(),
        origin,
        reason: "not a valid header name".into(),
    })?;
    let mut v = HeaderValue::from_str(value.trim()).map_err(|_| Error::InvalidHeader {
        name: name.to_owned(),
        origin,
        reason: "the value holds characters not allowed in a header".into(),
    })?;
    v.set_sensitive(true);
    Ok((n, v))
}

/// Parses `OTEL_EXPORTER_OTLP_HEADERS`: `key1=value1,key2=value2`, values percent-decoded (W3C
/// baggage format, as the OpenTelemetry specification asks).
fn parse_header_list(list: &str) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for entry in list.split(',') {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((k, v)) = entry.split_once('=') else {
            return Err(Error::InvalidHeader {
                name: entry.trim().chars().take(64).collect(),
                origin: ENV_HEADERS,
                reason: "expected key=value".into(),
            });
        };
        let k = k.trim();
        if k.is_empty() {
            return Err(Error::InvalidHeader {
                name: String::new(),
                origin: ENV_HEADERS,
                reason: "an entry has an empty key".into(),
            });
        }
        let value = percent_decode(v.trim()).ok_or_else(|| Error::InvalidHeader {
            name: k.to_owned(),
            origin: ENV_HEADERS,
            reason: "the value is not valid percent-encoded UTF-8".into(),
        })?;
        out.push((k.to_owned(), value));
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults() {
        let c = OtlpExporterBuilder::new().resolve(|_| None).unwrap();
        assert_eq!(c.traces_url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(c.metrics_url, "http://127.0.0.1:4318/v1/metrics");
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.compression, Compression::None);
        assert_eq!(c.max_queue, DEFAULT_MAX_QUEUE);
        assert!(c.headers.is_empty());
    }

    #[test]
    fn env_is_read_and_builder_wins() {
        let env = env_of(&[
            (ENV_ENDPOINT, "http://collector:4318/"),
            (ENV_METRICS_ENDPOINT, "http://metrics:9000/ingest"),
            (ENV_HEADERS, "api-key=s%3Dcr%2Cet, x-team = checkout ,"),
            (ENV_TIMEOUT, "2500"),
            (ENV_COMPRESSION, "gzip"),
        ]);
        let c = OtlpExporterBuilder::new().resolve(&env).unwrap();
        assert_eq!(c.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(c.metrics_url, "http://metrics:9000/ingest");
        assert_eq!(c.timeout, Duration::from_millis(2500));
        assert_eq!(c.compression, Compression::Gzip);
        let h: Vec<(String, String)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        assert_eq!(
            h,
            [
                ("api-key".to_owned(), "s=cr,et".to_owned()),
                ("x-team".to_owned(), "checkout".to_owned())
            ]
        );

        let c = OtlpExporterBuilder::new()
            .endpoint("http://127.0.0.1:1")
            .header("X-Team", "payments")
            .timeout(Duration::from_secs(1))
            .compression(Compression::Gzip)
            .resolve(&env)
            .unwrap();
        assert_eq!(c.traces_url, "http://127.0.0.1:1/v1/traces");
        assert_eq!(c.metrics_url, "http://metrics:9000/ingest");
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.compression, Compression::Gzip);
        assert_eq!(c.headers.len(), 2);
        assert_eq!(c.headers[1].1, "payments");
    }

    #[test]
    fn errors_name_the_input() {
        let err = |b: OtlpExporterBuilder| b.resolve(|_| None).unwrap_err().to_string();
        let e = err(OtlpExporterBuilder::new().endpoint("localhost:4318"));
        assert!(
            e.contains("`localhost:4318`") && e.contains("endpoint()"),
            "{e}"
        );
        let e = err(OtlpExporterBuilder::new().endpoint("ftp://host:21"));
        assert!(e.contains("`ftp://host:21`") && e.contains("`ftp`"), "{e}");
        let e = err(OtlpExporterBuilder::new().endpoint("not a url"));
        assert!(
            e.contains("`not a url`") && e.contains("not a valid URL"),
            "{e}"
        );
        let e = err(OtlpExporterBuilder::new().endpoint("http://collector:99999"));
        assert!(
            e.contains("`http://collector:99999`") && e.contains("port"),
            "{e}"
        );
        let e = err(OtlpExporterBuilder::new().endpoint("http://collector:4318?x=1"));
        assert!(e.contains("query"), "{e}");
        let c = OtlpExporterBuilder::new()
            .traces_endpoint("http://collector:4318/v1/traces?tenant=a")
            .resolve(|_| None)
            .unwrap();
        assert_eq!(c.traces_url, "http://collector:4318/v1/traces?tenant=a");
        for ok in [
            "http://[::1]:4318",
            "http://[::1]",
            "http://user@host:4318/otlp/",
        ] {
            assert!(
                OtlpExporterBuilder::new()
                    .endpoint(ok)
                    .resolve(|_| None)
                    .is_ok(),
                "{ok}"
            );
        }
        if !cfg!(feature = "tls") {
            let e = err(OtlpExporterBuilder::new().endpoint("https://otlp.example:4318"));
            assert!(e.contains("`tls` feature"), "{e}");
        }
        let e = err(OtlpExporterBuilder::new().header("bad header", "x"));
        assert!(e.contains("`bad header`"), "{e}");
        let e = err(OtlpExporterBuilder::new().header("x-key", "line\nbreak"));
        assert!(e.contains("`x-key`") && !e.contains("line"), "{e}");
        let e = err(OtlpExporterBuilder::new().timeout(Duration::ZERO));
        assert_eq!(e, "invalid timeout: must be greater than zero");
        let e = err(OtlpExporterBuilder::new().max_queue(0));
        assert_eq!(e, "invalid max_queue: must be at least 1");

        let e = OtlpExporterBuilder::new()
            .resolve(env_of(&[(ENV_HEADERS, "novalue")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(ENV_HEADERS) && e.contains("key=value"), "{e}");
        let e = OtlpExporterBuilder::new()
            .resolve(env_of(&[(ENV_PROTOCOL, "grpc")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(ENV_PROTOCOL) && e.contains("`grpc`"), "{e}");
        assert!(
            OtlpExporterBuilder::new()
                .resolve(env_of(&[(ENV_PROTOCOL, "http/protobuf")]))
                .is_ok()
        );
        let e = OtlpExporterBuilder::new()
            .resolve(env_of(&[(ENV_TIMEOUT, "10s")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(ENV_TIMEOUT) && e.contains("`10s`"), "{e}");
        let e = OtlpExporterBuilder::new()
            .resolve(env_of(&[(ENV_ENDPOINT, "127.0.0.1:4318")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(ENV_ENDPOINT) && e.contains("`127.0.0.1:4318`"),
            "{e}"
        );
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("é").as_deref(), Some("é"));
    }
}
