//! Classifying client errors into low-cardinality `error.type` values.

use std::error::Error;
use std::io;

use crate::timing::DnsError;

/// The `error.type` of a failed request: `dns`, `connection_refused`, `connection_reset`,
/// `connection_aborted`, `timeout`, `tls`, `connect` (another connection failure), `redirect`,
/// `body`, or `_OTHER`.
///
/// The error and its sources are inspected: rustmon's [`DnsError`], `std::io::Error` kinds,
/// reqwest's and hyper-util's error predicates, and, for errors known only as trait objects,
/// their messages (`dns error`, `timed out`, `tls`/`certificate`).
///
/// # Examples
/// ```
/// use rustmon_http_client::classify_error;
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// assert_eq!(classify_error(&refused), "connection_refused");
/// ```
pub fn classify_error(err: &(dyn Error + 'static)) -> &'static str {
    #[cfg_attr(not(any(feature = "hyper", feature = "reqwest")), allow(unused_mut))]
    let mut connect = false;
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<DnsError>() {
            return "dns";
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return "connection_refused",
                io::ErrorKind::ConnectionReset => return "connection_reset",
                io::ErrorKind::ConnectionAborted => return "connection_aborted",
                io::ErrorKind::TimedOut => return "timeout",
                _ => {}
            }
        }
        #[cfg(feature = "reqwest")]
        if let Some(r) = e.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return "timeout";
            }
            if r.is_redirect() {
                return "redirect";
            }
            connect |= r.is_connect();
            if !connect && (r.is_body() || r.is_decode()) {
                return "body";
            }
        }
        #[cfg(any(feature = "hyper", feature = "reqwest"))]
        if let Some(h) = e.downcast_ref::<hyper_util::client::legacy::Error>() {
            connect |= h.is_connect();
        }
        let message = e.to_string();
        if message == "dns error" {
            return "dns";
        }
        if message.contains("timed out") || message.contains("deadline has elapsed") {
            return "timeout";
        }
        let lower = message.to_ascii_lowercase();
        if lower.contains("tls") || lower.contains("certificate") || lower.contains("handshake") {
            return "tls";
        }
        current = e.source();
    }
    if connect { "connect" } else { "_OTHER" }
}

/// The error's message with its sources, `: `-separated.
pub(crate) fn message_chain(err: &(dyn Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let m = s.to_string();
        if !message.contains(&m) {
            message.push_str(": ");
            message.push_str(&m);
        }
        source = s.source();
    }
    message
}

/// Errors a monitored tower client may return: how to inspect them.
///
/// Implemented for `hyper_util::client::legacy::Error` (feature `hyper`), `reqwest::Error`
/// (feature `reqwest`), `std::io::Error`, boxed errors (what tower middleware such as `Timeout`
/// returns) and `Infallible`; implement it for your own client's error type.
///
/// # Examples
/// ```
/// use rustmon_http_client::ClientError;
/// #[derive(Debug)]
/// struct MyError;
/// impl std::fmt::Display for MyError {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("mine") }
/// }
/// impl std::error::Error for MyError {}
/// impl ClientError for MyError {
///     fn as_error(&self) -> &(dyn std::error::Error + 'static) { self }
/// }
/// ```
pub trait ClientError {
    /// The error as a trait object, to walk its sources.
    fn as_error(&self) -> &(dyn Error + 'static);
}

impl ClientError for Box<dyn Error + Send + Sync> {
    fn as_error(&self) -> &(dyn Error + 'static) {
        &**self
    }
}

impl ClientError for io::Error {
    fn as_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

impl ClientError for std::convert::Infallible {
    fn as_error(&self) -> &(dyn Error + 'static) {
        match *self {}
    }
}

#[cfg(any(feature = "hyper", feature = "reqwest"))]
impl ClientError for hyper_util::client::legacy::Error {
    fn as_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

#[cfg(feature = "reqwest")]
impl ClientError for reqwest::Error {
    fn as_error(&self) -> &(dyn Error + 'static) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("request failed")]
    struct Outer(#[source] io::Error);

    #[test]
    fn walks_sources() {
        assert_eq!(
            classify_error(&Outer(io::ErrorKind::TimedOut.into())),
            "timeout"
        );
        assert_eq!(
            classify_error(&DnsError::new(io::Error::other("no such host"))),
            "dns"
        );
        assert_eq!(
            classify_error(&io::Error::other("tls handshake eof")),
            "tls"
        );
        assert_eq!(classify_error(&io::Error::other("weird")), "_OTHER");
    }
}
