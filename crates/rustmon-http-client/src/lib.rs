//! HTTP client monitoring: a [reqwest-middleware](https://docs.rs/reqwest-middleware) middleware
//! ([`ReqwestMiddleware`]) and a tower layer for hyper's client or any tower HTTP client service
//! ([`HttpClientLayer`]).
//!
//! Each request becomes one [`Kind::Client`](rustmon_core::Kind::Client) event, a child of the
//! caller's current context:
//!
//! - **name** `{METHOD} {host}` (`GET api.example.com`), or `{METHOD} {template}` when the
//!   request carries a [`UrlTemplate`] extension; never the full URL; unknown methods `_OTHER`;
//! - **attributes** `http.request.method`, `url.full` (credentials and query values replaced by
//!   `REDACTED`), `url.template`, `server.address`, `server.port`, `http.request.body.size`,
//!   `http.response.status_code`, `http.response.body.size` (bytes read), `network.peer.address`
//!   / `network.peer.port` (reqwest), `http.request.resend_count` (reqwest retries), and as
//!   configured `http.request.header.*` / `http.response.header.*` (sensitive ones redacted);
//! - **timings** (seconds, as configured): `rustmon.http.time_to_first_byte` (request start to
//!   response head), `rustmon.http.dns.duration` and `rustmon.http.connect.duration` (when a
//!   new connection was opened through a timed connector). The event's duration runs until the
//!   response body has been read;
//! - **errors**: status error for 5xx (and 4xx unless configured otherwise) with
//!   `error.type` = the status code; failed requests with `error.type` from
//!   [`classify_error`]: `dns`, `connection_refused`, `timeout`, `tls`, `connect`, …;
//! - **trace**: `traceparent` and the trace's `tracestate` injected so that the callee continues
//!   the trace (a `tracestate` header the application set itself is kept).
//!
//! Which timings each client provides:
//!
//! | timing | reqwest + [`instrument_reqwest`] | reqwest alone | hyper-util + [`timed_http_connector`] | other tower clients |
//! |---|---|---|---|---|
//! | time to first byte | yes | yes | yes | yes |
//! | DNS | yes | no | yes | no |
//! | connect (TCP, with TLS if any) | yes | no | yes | with [`ConnectTiming`] |
//! | TLS handshake alone | no | no | no | no |
//!
//! Configuration: [`HttpClientConfig`], plugin `http_client`, live.
//!
//! # Examples
//! ```
//! # #[cfg(feature = "reqwest")] {
//! use rustmon_http_client::{instrument_reqwest, ReqwestMiddleware};
//! let client = instrument_reqwest(reqwest::Client::builder()).build().unwrap();
//! let client = reqwest_middleware::ClientBuilder::new(client)
//!     .with(ReqwestMiddleware::new())
//!     .build();
//! # let _ = client; }
//! ```

mod body;
mod config;
mod error;
#[cfg(feature = "hyper")]
mod hyper;
mod layer;
mod record;
#[cfg(feature = "reqwest")]
mod reqwest;
mod timing;
mod url;

pub use body::ResponseBody;
pub use config::{HttpClientConfig, TimingsConfig, is_sensitive_header};
pub use error::{ClientError, classify_error};
#[cfg(feature = "hyper")]
pub use hyper::timed_http_connector;
pub use layer::{HttpClient, HttpClientLayer, ResponseFuture};
pub use record::UrlTemplate;
#[cfg(feature = "reqwest")]
pub use reqwest::{ReqwestMiddleware, TimedReqwestResolver, instrument_reqwest};
pub use timing::{
    ConnectFuture, ConnectTiming, ConnectTimingLayer, DnsError, ResolveFuture, TimedResolver,
};
pub use url::redact_url;
