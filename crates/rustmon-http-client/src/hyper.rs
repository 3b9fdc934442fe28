//! A timed `HttpConnector` for hyper-util's legacy client.

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::GaiResolver;

use crate::timing::{ConnectTiming, TimedResolver};

/// hyper-util's `HttpConnector` with the system resolver, both timed: requests that open a new
/// connection record `rustmon.http.dns.duration` and `rustmon.http.connect.duration`.
///
/// For TLS, wrap the connector's inner `HttpConnector` in your TLS connector and the result in
/// [`ConnectTiming`]: the connect time then includes the handshake.
///
/// # Examples
/// ```
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// let client = Client::builder(TokioExecutor::new())
///     .build::<_, http_body_util::Empty<bytes::Bytes>>(rustmon_http_client::timed_http_connector());
/// # let _ = client;
/// ```
pub fn timed_http_connector() -> ConnectTiming<HttpConnector<TimedResolver<GaiResolver>>> {
    ConnectTiming::new(HttpConnector::new_with_resolver(TimedResolver::new(
        GaiResolver::new(),
    )))
}
