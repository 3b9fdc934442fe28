//! A real HTTP/1.1 client for the web integrations' tests: requests to one server on 127.0.0.1,
//! answers read whole.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A status, the response headers and the whole body.
pub type Answer = (StatusCode, HeaderMap, Bytes);

/// Sends requests to the server at one address, over kept-alive connections.
#[derive(Clone, Debug)]
pub struct TestClient {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TestClient {
    /// A client for the server listening on `addr`. Call it inside a tokio runtime.
    pub fn new(addr: SocketAddr) -> TestClient {
        TestClient {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A request builder for `method` on `path` (which may carry a query) of the server.
    pub fn req(&self, method: &str, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
    }

    /// Sends `req` and reads the whole answer; panics if the connection fails.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Answer {
        let resp = self.client.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status, parts.headers, body)
    }

    /// Sends `req` and returns the response as soon as its head arrives, the body unread (to
    /// read a stream chunk by chunk, or drop it half-way).
    pub async fn open(
        &self,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        self.client.request(req).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.req("GET", path).body(Full::default()).unwrap())
            .await
    }
}

/// Runs `f`, which blocks (a [`Capture`](crate::Capture) waiting for events), while the
/// multi-thread runtime's other workers go on serving.
pub fn wait<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}
