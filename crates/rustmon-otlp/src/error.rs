//! Why an exporter could not be built.

/// Why an [`OtlpExporter`](crate::OtlpExporter) could not be built. Each message names the option
/// or environment variable that was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An endpoint is not a valid `http://` (or, with the `tls` feature, `https://`) URL.
    #[error("invalid otlp endpoint `{value}` (from {origin}): {reason}")]
    InvalidEndpoint {
        /// The value given.
        value: String,
        /// Where it came from: a builder method or an environment variable.
        origin: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A header name or value is invalid. The value is never echoed: it may hold a secret.
    #[error("invalid otlp header `{name}` (from {origin}): {reason}")]
    InvalidHeader {
        /// The header name (or the malformed `key=value` entry, without its value).
        name: String,
        /// Where it came from: `header()` or `OTEL_EXPORTER_OTLP_HEADERS`.
        origin: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// The option: a builder method or an environment variable.
        option: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The exporter's worker thread could not be spawned.
    #[error("cannot start the otlp exporter thread: {0}")]
    Thread(#[from] std::io::Error),
}
