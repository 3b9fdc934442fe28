//! One conformance suite for the web-server integrations (feature `web`): each framework's test
//! binary supplies a [`Server`] — how to serve the [route table](#the-route-table) on 127.0.0.1
//! with a given [`Monitor`], and how it behaves where frameworks differ ([`Behaviour`]) — and
//! expands the groups of scenarios it runs with [`web_suite!`](crate::web_suite), one
//! `#[tokio::test]` per scenario, named as the scenario. The suite sends the requests and makes
//! the assertions, once for every framework.
//!
//! ```ignore
//! struct Actix { /* the running server */ }
//! impl rustmon_test::web::Server for Actix { /* BEHAVIOUR, start, stop */ }
//!
//! rustmon_test::web_suite!(Actix: core, streaming, dropped_handlers);
//! ```
//!
//! A new framework needs a [`Server`] (the route table in its syntax, its [`Behaviour`]) and that
//! line; a new scenario is a function here, added to its group in [`web_suite!`](crate::web_suite)
//! and to the table below.
//!
//! # The route table
//!
//! Every [`Server`] serves all of these, in its own route syntax, behind rustmon's middleware.
//! Templates are written here as `{name}`; [`Server::template`] turns one into what the framework
//! reports (poem: `:name`). Handlers that do more than answer a constant call the [`App`] they are
//! given, so that what they do is the same everywhere.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` | 200 `root` |
//! | `GET /orders/{id}` (and `HEAD`) | 200 `order {id}` (a sized body, [`order`]) |
//! | `POST /orders` | 200, the request body's length in decimal (`text/plain` is sent) |
//! | `GET /api/items/{id}`, nested under `/api` | 200 `item` |
//! | `GET /health` | 200 `ok` |
//! | `GET /missing` | 404 from the handler |
//! | `GET /boom` | 500 [`BROKEN`] |
//! | `GET /error` | 503 through the framework's error type, message [`DB_DOWN`] ([`Behaviour::error`]) |
//! | `GET /nothing` | 204 |
//! | `GET /h` | 200 `ok` with the [`RESPONSE_HEADERS`] |
//! | `GET /text` | 200 [`TEXT`] |
//! | `GET /stream` | 200, the unsized streamed body of [`App::stream`] |
//! | `GET /work` | 200 [`App::work`] (starts child events) |
//! | `GET /slow` | [`App::slow`] (never answers) |
//! | `GET /panic` | [`panic()`] (`kaboom`) |
//!
//! # Scenarios and frameworks
//!
//! ✓ runs; — skipped, for the reason below the table. The group is the one to name in
//! [`web_suite!`](crate::web_suite).
//!
//! | scenario (group) | axum | actix | poem | salvo | rocket | warp |
//! |---|---|---|---|---|---|---|
//! | [`names_use_route_templates_and_record_http_attributes`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`the_root_route_is_not_mistaken_for_an_unmatched_request`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`status_classes_and_framework_errors_drive_the_event_status`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`responses_without_a_body_are_not_mistaken_for_cancelled_ones`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`headers_are_captured_with_redaction_and_lists_after_a_live_config_change`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`response_bodies_are_captured_within_the_limit`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`ignored_routes_produce_no_event_and_come_back_live`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`a_disabled_monitor_records_nothing_and_serves_normally`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`traceparent_and_tracestate_continue_the_callers_trace`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`events_started_in_the_handler_are_children_of_the_request`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`a_panicking_handler_is_recorded_and_behaves_as_without_rustmon`] (`core`) | ✓ | ✓ | ✓ | ✓ | ✓ | ✓ |
//! | [`streamed_bodies_are_passed_through_unbuffered`] (`streaming`) | ✓ | ✓ | ✓ | ✓ | ✓ | —¹ |
//! | [`a_body_dropped_mid_stream_is_recorded_as_cancelled`] (`streaming`) | ✓ | ✓ | ✓ | ✓ | ✓ | —¹ |
//! | [`a_request_whose_handler_is_dropped_is_recorded_as_cancelled`] (`dropped_handlers`) | ✓ | ✓ | ✓ | ✓ | —² | ✓ |
//!
//! 1. warp 0.4 has no public way to build a streamed response body (`warp::reply::Response`'s
//!    body is built from whole buffers only).
//! 2. rocket runs each handler in a task of its own, which nothing drops: not the client going
//!    away, not shutdown (which closes the connections and leaves the tasks) — rocket cannot
//!    cancel a handler ([`HandlerCancel::Never`]).
//!
//! The axum test binary also runs the panic scenario under tower-http's `CatchPanicLayer`
//! (a second [`Server`], [`PanicAnswer::Unrecorded500`]).
//!
//! Where frameworks differ, the [`Behaviour`] each declares says how, and the scenario checks
//! that: how a panic is answered ([`PanicAnswer`]) and whether the event has its route by then
//! ([`Behaviour::route_before_handler`]: poem's middleware around a `Route` learns the pattern
//! only from the response, so a panic or a dropped handler is named `GET unmatched`); when a
//! handler or a body is dropped under a client that went away ([`HandlerCancel`],
//! [`BodyCancel`]); whether the HTTP version is known (not in rocket 0.5); which error the
//! framework's error type records ([`Behaviour::error`]); whether the body of an answer built
//! from an error after the middleware is counted ([`Behaviour::error_bodies_counted`]: not in
//! poem, whose server turns an endpoint's `Err` into a response after every middleware, so its
//! event records the status and no `http.response.body.size`).
//!
//! Tests that only one framework can make stay in its test file, on the same [`Harness`]:
//! rocket's catch-all segments, request guards, catchers in context and routes outside
//! `in_context`; poem's middleware on one endpoint under `CatchPanic`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use rustmon_core::context::{FutureExt, SpanContext};
use rustmon_core::{EventRecord, Kind, Monitor, Status};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::sync::{Notify, mpsc};

use crate::http::{TestClient, wait};
use crate::{Capture, WAIT};

/// `GET /boom` answers this with 500.
pub const BROKEN: &str = "broken";
/// The message of the error `GET /error` answers with (503).
pub const DB_DOWN: &str = "db down";
/// `GET /text` answers this.
pub const TEXT: &str = "hello world";
/// The headers `GET /h` answers with (besides its body `ok`).
pub const RESPONSE_HEADERS: [(&str, &str); 2] =
    [("set-cookie", "session=abc"), ("x-request-id", "r-1")];

/// What `GET /orders/{id}` answers.
pub fn order(id: impl std::fmt::Display) -> String {
    format!("order {id}")
}

/// What `GET /panic` does: yields once, then panics with `kaboom`.
pub async fn panic() -> &'static str {
    tokio::task::yield_now().await;
    if std::hint::black_box(true) {
        panic!("kaboom");
    }
    "unreachable"
}

/// What a server hands its handlers: the monitor, and what the scenarios observe handlers by.
#[derive(Clone, Debug)]
pub struct App {
    monitor: Monitor,
    slow_started: Arc<Notify>,
    feeders: mpsc::UnboundedSender<mpsc::Sender<Bytes>>,
}

impl App {
    /// The monitor the server records into.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// What `GET /work` does: records `SELECT orders` (a database event) in the handler and
    /// `GET payments` (a client event) in a spawned task, then answers `done`.
    pub async fn work(&self) -> &'static str {
        tokio::task::yield_now().await;
        self.monitor
            .start_event(Kind::Database, "SELECT orders")
            .finish();
        let m = self.monitor.clone();
        tokio::spawn(
            async move {
                tokio::task::yield_now().await;
                m.start_event(Kind::Client, "GET payments").finish();
            }
            .in_current_context(),
        )
        .await
        .unwrap();
        "done"
    }

    /// What `GET /slow` does: tells the test it has started, then never answers.
    pub async fn slow(&self) -> &'static str {
        self.slow_started.notify_one();
        std::future::pending::<()>().await;
        "never"
    }

    /// What `GET /stream` answers: an unsized body whose first chunk, `first;`, is ready, and
    /// whose rest the test sends; it ends when the test stops sending.
    pub fn stream(&self) -> Chunks {
        let (tx, rx) = mpsc::channel(1);
        tx.try_send(Bytes::from_static(b"first;")).unwrap();
        let _ = self.feeders.send(tx);
        Chunks {
            rx,
            left: Bytes::new(),
        }
    }
}

/// A streamed body from the test, as a [`Stream`](futures_core::Stream) of chunks or an
/// [`AsyncRead`], whichever the framework takes.
#[derive(Debug)]
pub struct Chunks {
    rx: mpsc::Receiver<Bytes>,
    left: Bytes,
}

impl futures_core::Stream for Chunks {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|c| c.map(Ok))
    }
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.left.is_empty() {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(chunk)) => self.left = chunk,
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let n = self.left.len().min(buf.remaining());
        buf.put_slice(&self.left.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// How a framework answers a request whose handler panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicAnswer {
    /// It does not catch the panic: the connection closes without an answer, and rustmon
    /// records the panic without a status code.
    Closes,
    /// It answers 500 after catching the panic inside rustmon's middleware, which records the
    /// 500.
    Recorded500,
    /// Something outside rustmon's middleware catches the panic and answers 500; rustmon
    /// records the panic without a status code.
    Unrecorded500,
}

/// When a handler that never answers is dropped after its client went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerCancel {
    /// As soon as the server notices the client is gone.
    OnDisconnect,
    /// Only when the server stops (it does not notice the client until it writes).
    OnStop,
    /// Never: the framework lets a running handler run to its end (rocket);
    /// [`a_request_whose_handler_is_dropped_is_recorded_as_cancelled`] does not apply.
    Never,
}

/// When a streamed body is dropped after its client went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyCancel {
    /// As soon as the server notices, while the body waits for its next chunk.
    OnDisconnect,
    /// When the server stops.
    OnStop,
    /// When writing a further chunk to the closed connection fails; how many bytes were sent
    /// by then is not fixed.
    OnWriteFailure,
}

/// What the framework's error type does for `GET /error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameworkError {
    /// The type of the error recorded, whose message contains [`DB_DOWN`]; `None` where the
    /// error carries nothing but its status (rocket's `Err(Status)`), and nothing is recorded
    /// but the status.
    pub recorded: Option<&'static str>,
    /// The client receives [`DB_DOWN`] as the whole body (not a catcher's page), and the
    /// recorded message is exactly that (not a longer text containing it).
    pub body_is_message: bool,
}

/// How a framework behaves where frameworks differ; see the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    /// The HTTP version is known and recorded as `network.protocol.version`.
    pub http_version: bool,
    /// Events have their route template before the handler runs, so a request that never
    /// answers (panics, is dropped) is named by its route, not `GET unmatched`.
    pub route_before_handler: bool,
    /// The body of an answer the framework builds from an error after the middleware (the 404
    /// of an unmatched route, the framework's error type) is counted in
    /// `http.response.body.size` (where it is not, the attribute is left out rather than wrong).
    pub error_bodies_counted: bool,
    /// What `GET /error` records as an error (its message containing [`DB_DOWN`]); `None` where
    /// the framework has no error type and `/error` is a plain 503.
    pub error: Option<FrameworkError>,
    /// How a panicking handler is answered.
    pub panic: PanicAnswer,
    /// When a handler that never answers is dropped after its client went away.
    pub handler_cancel: HandlerCancel,
    /// When a streamed body is dropped after its client went away.
    pub body_cancel: BodyCancel,
}

/// A framework's server under test; see the [module docs](self).
pub trait Server: Sized + Send + 'static {
    /// How this framework behaves where frameworks differ.
    const BEHAVIOUR: Behaviour;

    /// Serves the [route table](self#the-route-table) on 127.0.0.1 (a free port), with rustmon's
    /// middleware recording into `app.monitor()`; returns the server and its address. Dropping
    /// the server stops it.
    fn start(app: App) -> impl Future<Output = (Self, SocketAddr)>;

    /// Stops the server, dropping the requests in flight, and waits until it has.
    fn stop(&mut self) -> impl Future<Output = ()>;

    /// The template the framework reports for a route of the table written as `{name}`.
    fn template(route: &str) -> String {
        route.to_owned()
    }
}

/// A running [`Server`] with its monitor, capture and a client.
pub struct Harness<S> {
    /// The server.
    pub server: S,
    /// The monitor its middleware records into.
    pub monitor: Monitor,
    /// Everything the monitor delivered.
    pub capture: Capture,
    http: TestClient,
    slow_started: Arc<Notify>,
    fed: tokio::sync::Mutex<mpsc::UnboundedReceiver<mpsc::Sender<Bytes>>>,
}

impl<S> std::ops::Deref for Harness<S> {
    type Target = TestClient;
    fn deref(&self) -> &TestClient {
        &self.http
    }
}

impl<S: Server> Harness<S> {
    /// Starts `S` with a fresh monitor recording into a fresh capture.
    pub async fn start() -> Harness<S> {
        let capture = Capture::new();
        let monitor = Monitor::builder("web-test")
            .listener(capture.listener())
            .build()
            .unwrap();
        let (feeders, fed) = mpsc::unbounded_channel();
        let app = App {
            monitor: monitor.clone(),
            slow_started: Arc::default(),
            feeders,
        };
        let slow_started = app.slow_started.clone();
        let (server, addr) = S::start(app).await;
        Harness {
            server,
            monitor,
            capture,
            http: TestClient::new(addr),
            slow_started,
            fed: tokio::sync::Mutex::new(fed),
        }
    }

    /// Applies `patch` to the live `http_server` config.
    pub fn config(&self, patch: serde_json::Value) {
        self.monitor.update_config("http_server", &patch).unwrap();
    }

    /// The event name of `method` on the table's `route`.
    pub fn name(&self, method: &str, route: &str) -> String {
        format!("{method} {}", S::template(route))
    }

    /// Waits until the next `/stream` request's handler has run; returns the sender of the
    /// rest of its body (dropping it ends the body).
    pub async fn stream_sender(&self) -> mpsc::Sender<Bytes> {
        let mut fed = self.fed.lock().await;
        tokio::time::timeout(WAIT, fed.recv())
            .await
            .expect("no /stream request arrived")
            .unwrap()
    }

    /// A GET on `path` with extra request headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> crate::http::Answer {
        let mut req = self.req("GET", path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Full::default()).unwrap()).await
    }

    /// Sends `GET path` on a raw connection, left open for the test to drop.
    async fn raw_get(&self, path: &str) -> tokio::net::TcpStream {
        let mut conn = tokio::net::TcpStream::connect(self.addr()).await.unwrap();
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        conn
    }

    /// Sends GETs on `path` until one is answered with 200, at most for [`WAIT`].
    async fn until_ok(&self, path: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let req = self.req("GET", path).body(Full::default()).unwrap();
            if let Ok(resp) = self.open(req).await {
                if resp.status() == StatusCode::OK {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the server never answered again");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Expands scenarios of [`web`](crate::web) for a [`Server`] into `#[tokio::test]` functions
/// named as the scenarios: groups of them — `core` (every framework runs these), `streaming`
/// (streamed response bodies), `dropped_handlers` (a handler dropped before it answers) — or,
/// after `scenarios`, the ones named. The [module docs](crate::web) list each group's scenarios
/// and which frameworks skip a group and why.
///
/// ```ignore
/// rustmon_test::web_suite!(Actix: core, streaming, dropped_handlers);
/// rustmon_test::web_suite!(AxumCatchPanic: scenarios a_panicking_handler_is_recorded_and_behaves_as_without_rustmon);
/// ```
#[macro_export]
macro_rules! web_suite {
    (@group core $server:ty) => {
        $crate::web_suite!($server: scenarios
            names_use_route_templates_and_record_http_attributes,
            the_root_route_is_not_mistaken_for_an_unmatched_request,
            status_classes_and_framework_errors_drive_the_event_status,
            responses_without_a_body_are_not_mistaken_for_cancelled_ones,
            headers_are_captured_with_redaction_and_lists_after_a_live_config_change,
            response_bodies_are_captured_within_the_limit,
            ignored_routes_produce_no_event_and_come_back_live,
            a_disabled_monitor_records_nothing_and_serves_normally,
            traceparent_and_tracestate_continue_the_callers_trace,
            events_started_in_the_handler_are_children_of_the_request,
            a_panicking_handler_is_recorded_and_behaves_as_without_rustmon,
        );
    };
    (@group streaming $server:ty) => {
        $crate::web_suite!($server: scenarios
            streamed_bodies_are_passed_through_unbuffered,
            a_body_dropped_mid_stream_is_recorded_as_cancelled,
        );
    };
    (@group dropped_handlers $server:ty) => {
        $crate::web_suite!($server: scenarios
            a_request_whose_handler_is_dropped_is_recorded_as_cancelled,
        );
    };
    ($server:ty: scenarios $($scenario:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() {
                $crate::web::$scenario::<$server>().await;
            }
        )+
    };
    ($server:ty: $($group:ident),+ $(,)?) => {
        $( $crate::web_suite!(@group $group $server); )+
    };
}

/// Route templates name events, with the HTTP attributes; raw paths are attributes only; an
/// unmatched request is `GET unmatched`; nested routes have their whole template.
pub async fn names_use_route_templates_and_record_http_attributes<S: Server>() {
    let h = Harness::<S>::start().await;
    let (status, headers, body) = h.get("/orders/42").await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"order 42"[..]));
    assert_eq!(headers["content-length"], "8", "sized bodies stay sized");
    let (status, _, not_found) = h.get("/no/such/path/123").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, body) = h
        .send(
            h.req("POST", "/orders")
                .header("user-agent", "rustmon-test/1")
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"0123456789")))
                .unwrap(),
        )
        .await;
    assert_eq!(&body[..], b"10");
    assert_eq!(h.get("/api/items/9").await.2, "item");
    wait(|| {
        let orders = S::template("/orders/{id}");
        let mut e = h
            .capture
            .expect(&h.name("GET", "/orders/{id}"))
            .kind(Kind::Server)
            .status(Status::Unset)
            .root()
            .attr("http.request.method", "GET")
            .attr("http.route", orders)
            .attr("url.path", "/orders/42")
            .attr("url.scheme", "http")
            .attr("server.address", "127.0.0.1")
            .attr("server.port", i64::from(h.addr().port()))
            .attr("http.response.status_code", 200_i64)
            .attr("http.response.body.size", 8_i64)
            .no_attr("client.address")
            .no_attr("rustmon.cancelled");
        e = if S::BEHAVIOUR.http_version {
            e.attr("network.protocol.version", "1.1")
        } else {
            // Not recorded rather than guessed.
            e.no_attr("network.protocol.version")
        };
        assert_eq!(e.one().plugin, "http_server");
        let mut e = h
            .capture
            .expect("GET unmatched")
            .no_attr("http.route")
            .attr("url.path", "/no/such/path/123")
            .attr("http.response.status_code", 404_i64)
            .status(Status::Unset);
        if S::BEHAVIOUR.error_bodies_counted {
            // The body counted is the one the client receives, whoever wrote it.
            e = e.attr("http.response.body.size", not_found.len() as i64);
        } else {
            e = e.no_attr("http.response.body.size");
        }
        e.one();
        h.capture
            .expect(&h.name("POST", "/orders"))
            .attr("http.request.body.size", 10_i64)
            .attr("user_agent.original", "rustmon-test/1")
            .attr("http.response.body.size", 2_i64)
            .one();
        let items = S::template("/api/items/{id}");
        h.capture
            .expect(&h.name("GET", "/api/items/{id}"))
            .attr("http.route", items)
            .attr("url.path", "/api/items/9")
            .one();
        // No event is ever named by a raw path.
        assert!(
            h.capture
                .events()
                .iter()
                .all(|e| !e.name.contains("42") && !e.name.contains("123")),
            "{}",
            h.capture.summary()
        );
    });
}

/// `/` is a route like any other.
pub async fn the_root_route_is_not_mistaken_for_an_unmatched_request<S: Server>() {
    let h = Harness::<S>::start().await;
    assert_eq!(h.get("/").await.2, "root");
    wait(|| {
        h.capture
            .expect("GET /")
            .attr("http.route", "/")
            .attr("http.response.status_code", 200_i64)
            .one();
    });
}

/// 5xx answers and the framework's errors are errors, 4xx are not unless configured (live).
pub async fn status_classes_and_framework_errors_drive_the_event_status<S: Server>() {
    let h = Harness::<S>::start().await;
    assert_eq!(h.get("/missing").await.0, StatusCode::NOT_FOUND);
    let (status, _, body) = h.get("/boom").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::INTERNAL_SERVER_ERROR, BROKEN.as_bytes())
    );
    let (status, _, error_body) = h.get("/error").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let error = S::BEHAVIOUR.error;
    if error.is_none_or(|e| e.body_is_message) {
        assert_eq!(&error_body[..], DB_DOWN.as_bytes());
    }
    wait(|| {
        h.capture
            .expect("GET /missing")
            .attr("http.response.status_code", 404_i64)
            .status(Status::Unset)
            .one();
        h.capture
            .expect("GET /boom")
            .attr("http.response.status_code", 500_i64)
            .attr("http.response.body.size", BROKEN.len() as i64)
            .status(Status::Error)
            .one();
        let mut e = h
            .capture
            .expect("GET /error")
            .attr("http.route", "/error")
            .attr("http.response.status_code", 503_i64)
            .status(Status::Error)
            .no_attr("rustmon.cancelled");
        if S::BEHAVIOUR.error_bodies_counted {
            e = e.attr("http.response.body.size", error_body.len() as i64);
        } else {
            e = e.no_attr("http.response.body.size");
        }
        let e = e.one();
        match error.map(|e| e.recorded) {
            Some(Some(ty)) => {
                assert_eq!(e.errors.len(), 1, "{:?}", e.errors);
                assert_eq!(e.errors[0].error_type, ty);
                let message = &e.errors[0].message;
                if error.is_some_and(|e| e.body_is_message) {
                    assert_eq!(message, DB_DOWN);
                } else {
                    assert!(message.contains(DB_DOWN), "{message}");
                }
            }
            Some(None) => assert!(e.errors.is_empty(), "{:?}", e.errors),
            None => {}
        }
    });
    // 4xx as errors, and no status code attribute: both live.
    h.config(json!({ "client_errors_are_errors": true, "response_code": false }));
    h.get("/missing").await;
    h.get("/nowhere").await;
    wait(|| {
        h.capture
            .expect("GET /missing")
            .status(Status::Error)
            .no_attr("http.response.status_code")
            .one();
        h.capture
            .expect("GET unmatched")
            .attr("url.path", "/nowhere")
            .status(Status::Error)
            .no_attr("http.response.status_code")
            .one();
    });
}

/// A `HEAD` answer and a 204 end without a body, and are complete, not cancelled.
pub async fn responses_without_a_body_are_not_mistaken_for_cancelled_ones<S: Server>() {
    let h = Harness::<S>::start().await;
    let head = h.req("HEAD", "/orders/1").body(Full::default()).unwrap();
    assert_eq!(h.send(head).await.0, StatusCode::OK);
    assert_eq!(h.get("/nothing").await.0, StatusCode::NO_CONTENT);
    wait(|| {
        h.capture
            .expect(&h.name("HEAD", "/orders/{id}"))
            .attr("http.request.method", "HEAD")
            .attr("http.response.status_code", 200_i64)
            .no_attr("rustmon.cancelled")
            .one();
        h.capture
            .expect("GET /nothing")
            .attr("http.response.status_code", 204_i64)
            .attr("http.response.body.size", 0_i64)
            .no_attr("rustmon.cancelled")
            .one();
    });
}

const SECRET_HEADERS: [(&str, &str); 7] = [
    ("authorization", "Bearer s3cret"),
    ("cookie", "id=1"),
    ("x-api-key", "k-123"),
    ("x-auth-token", "t-123"),
    ("accept", "text/plain"),
    ("x-custom", "a"),
    ("x-custom", "b"),
];

/// Headers are not captured by default; once turned on (live), secrets are redacted, repeated
/// headers joined, allow and deny lists apply, and redaction can be turned off.
pub async fn headers_are_captured_with_redaction_and_lists_after_a_live_config_change<S: Server>() {
    let h = Harness::<S>::start().await;
    let (_, headers, _) = h.get_with("/h", &SECRET_HEADERS).await;
    assert_eq!(headers["x-request-id"], "r-1");
    wait(|| {
        h.capture
            .expect("GET /h")
            .no_attr("http.request.header.accept")
            .no_attr("http.response.header.x-request-id")
            .no_attr("client.address")
            .one();
    });
    h.capture.clear();

    // The same running server, reconfigured.
    h.config(
        json!({ "request_headers": true, "response_headers": true, "request_remote_addr": true }),
    );
    h.get_with("/h", &SECRET_HEADERS).await;
    wait(|| {
        h.capture
            .expect("GET /h")
            .attr("http.request.header.accept", "text/plain")
            .attr("http.request.header.x-custom", "a, b")
            .attr("http.request.header.authorization", "[REDACTED]")
            .attr("http.request.header.cookie", "[REDACTED]")
            .attr("http.request.header.x-api-key", "[REDACTED]")
            .attr("http.request.header.x-auth-token", "[REDACTED]")
            .attr("http.response.header.x-request-id", "r-1")
            .attr("http.response.header.set-cookie", "[REDACTED]")
            .attr("client.address", "127.0.0.1")
            .has_attr("client.port")
            .one();
    });
    h.capture.clear();

    h.config(json!({ "header_allow": ["accept"], "response_headers": false }));
    h.get_with("/h", &SECRET_HEADERS).await;
    wait(|| {
        h.capture
            .expect("GET /h")
            .attr("http.request.header.accept", "text/plain")
            .no_attr("http.request.header.authorization")
            .no_attr("http.request.header.x-custom")
            .no_attr("http.response.header.x-request-id")
            .one();
    });
    h.capture.clear();

    // Allow and deny lists (names in any case); redaction can be turned off.
    h.config(json!({
        "header_allow": ["Accept", "Authorization", "X-Custom"],
        "header_deny": ["x-custom"],
        "redact_sensitive_headers": false,
    }));
    h.get_with("/h", &SECRET_HEADERS).await;
    wait(|| {
        h.capture
            .expect("GET /h")
            .attr("http.request.header.accept", "text/plain")
            .attr("http.request.header.authorization", "Bearer s3cret")
            .no_attr("http.request.header.x-custom")
            .no_attr("http.request.header.cookie")
            .no_attr("http.response.header.x-request-id")
            .one();
    });
}

/// The response body's size is always recorded; its first bytes only when configured (live),
/// and the client still receives the whole body.
pub async fn response_bodies_are_captured_within_the_limit<S: Server>() {
    let h = Harness::<S>::start().await;
    h.get("/text").await;
    wait(|| {
        h.capture
            .expect("GET /text")
            .attr("http.response.body.size", 11_i64)
            .no_attr("http.response.body")
            .one();
    });
    h.capture.clear();
    h.config(json!({ "response_body": true, "response_body_max_size": 5 }));
    let (_, headers, body) = h.get("/text").await;
    assert_eq!(
        (&headers["content-length"], &body[..]),
        (&"11".parse().unwrap(), TEXT.as_bytes())
    );
    wait(|| {
        h.capture
            .expect("GET /text")
            .attr("http.response.body", "hello")
            .attr("http.response.body.size", 11_i64)
            .one();
    });
}

/// A streamed body's first chunk reaches the client before the next exists: the body is passed
/// through, not buffered, and stays unsized.
pub async fn streamed_bodies_are_passed_through_unbuffered<S: Server>() {
    let h = Harness::<S>::start().await;
    let resp = h
        .open(h.req("GET", "/stream").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert!(!resp.headers().contains_key("content-length"));
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first;");
    let tx = h.stream_sender().await;
    tx.send(Bytes::from_static(b"second")).await.unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second");
    wait(|| {
        h.capture
            .expect("GET /stream")
            .attr("http.response.body.size", 12_i64)
            .no_attr("http.response.body")
            .no_attr("rustmon.cancelled")
            .one();
    });
}

/// Requests to ignored routes produce no event, and what their handlers record does not point
/// at a discarded parent; emptying the list (live) brings them back.
pub async fn ignored_routes_produce_no_event_and_come_back_live<S: Server>() {
    let h = Harness::<S>::start().await;
    h.config(json!({
        "ignore_routes": ["/health", S::template("/orders/{id}"), "/work"]
    }));
    assert_eq!(h.get("/health").await.0, StatusCode::OK);
    assert_eq!(h.get("/orders/7").await.0, StatusCode::OK);
    assert_eq!(h.get("/work").await.2, "done");
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").one();
        h.capture.expect("SELECT orders").root().one();
        h.capture.expect("GET payments").root().one();
    });
    h.capture.expect("GET /health").none();
    h.capture.expect(&h.name("GET", "/orders/{id}")).none();
    h.capture.expect("GET /work").none();
    assert_eq!(h.capture.events().len(), 3, "{}", h.capture.summary());
    // Back on without a restart.
    h.config(json!({ "ignore_routes": [] }));
    h.get("/orders/7").await;
    wait(|| {
        h.capture.expect(&h.name("GET", "/orders/{id}")).one();
    });
}

/// A disabled monitor records nothing, and the server answers as usual.
pub async fn a_disabled_monitor_records_nothing_and_serves_normally<S: Server>() {
    let h = Harness::<S>::start().await;
    h.monitor.disable();
    assert_eq!(h.get("/orders/1").await.2, "order 1");
    h.monitor.enable();
    h.get("/missing").await;
    wait(|| {
        h.capture.expect("GET /missing").one();
    });
    h.capture.expect(&h.name("GET", "/orders/{id}")).none();
}

/// An incoming `traceparent` makes the request a remote child of the caller, with its
/// `tracestate` (normalised); a malformed one starts a new trace.
pub async fn traceparent_and_tracestate_continue_the_callers_trace<S: Server>() {
    let h = Harness::<S>::start().await;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let caller = SpanContext::from_traceparent(tp).unwrap();
    let state = "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE";
    h.get_with("/orders/1", &[("traceparent", tp), ("tracestate", state)])
        .await;
    h.get_with("/orders/2", &[("traceparent", "garbage")]).await;
    h.get_with("/missing", &[("traceparent", "00-garbage")])
        .await;
    wait(|| {
        let orders = h.name("GET", "/orders/{id}");
        let e = h
            .capture
            .expect(&orders)
            .attr("url.path", "/orders/1")
            .one();
        assert_eq!(e.trace_id, caller.trace_id);
        assert_eq!(e.parent_span_id, Some(caller.span_id));
        assert!(e.parent_remote && e.sampled);
        assert_eq!(
            e.trace_state,
            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        );
        let fresh = h
            .capture
            .expect(&orders)
            .attr("url.path", "/orders/2")
            .root()
            .one();
        assert_ne!(fresh.trace_id, caller.trace_id);
        h.capture.expect("GET /missing").root().one();
    });
}

/// Events started in the handler, and in a task it spawns in its context, are its children.
pub async fn events_started_in_the_handler_are_children_of_the_request<S: Server>() {
    let h = Harness::<S>::start().await;
    assert_eq!(h.get("/work").await.2, "done");
    wait(|| {
        let server: EventRecord = h.capture.expect("GET /work").one();
        h.capture.expect("SELECT orders").child_of(&server).one();
        h.capture.expect("GET payments").child_of(&server).one();
    });
}

/// A panic is recorded as the request's error and the client sees what it would without
/// rustmon ([`PanicAnswer`]); the server goes on serving.
pub async fn a_panicking_handler_is_recorded_and_behaves_as_without_rustmon<S: Server>() {
    let h = Harness::<S>::start().await;
    let panic = S::BEHAVIOUR.panic;
    let request_panic = || async {
        let req = h.req("GET", "/panic").body(Full::default()).unwrap();
        let res = h.open(req).await;
        match panic {
            PanicAnswer::Closes => {
                assert!(
                    res.is_err(),
                    "expected the connection to close, got {res:?}"
                )
            }
            PanicAnswer::Recorded500 | PanicAnswer::Unrecorded500 => {
                assert_eq!(res.unwrap().status(), StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    };
    request_panic().await;
    let expect_panic = || {
        let e = if S::BEHAVIOUR.route_before_handler {
            h.capture.expect("GET /panic").attr("http.route", "/panic")
        } else {
            h.capture.expect("GET unmatched")
        };
        let e = e
            .attr("url.path", "/panic")
            .status(Status::Error)
            .no_attr("rustmon.cancelled");
        if panic == PanicAnswer::Recorded500 {
            e.attr("http.response.status_code", 500_i64)
        } else {
            e.no_attr("http.response.status_code")
        }
    };
    wait(|| {
        let e = expect_panic().one();
        assert_eq!(e.errors.len(), 1, "{:?}", e.errors);
        assert_eq!(e.errors[0].error_type, "panic");
        assert_eq!(e.errors[0].message, "kaboom");
    });
    // The server goes on serving (actix after starting a new worker), and recording.
    h.until_ok("/health").await;
    request_panic().await;
    wait(|| {
        expect_panic().count(2);
    });
}

fn cancelled_name<'h, S: Server>(h: &'h Harness<S>, route: &'static str) -> crate::Expect<'h> {
    if S::BEHAVIOUR.route_before_handler {
        h.capture.expect(&h.name("GET", route))
    } else {
        h.capture.expect("GET unmatched")
    }
    .attr("url.path", route)
}

/// A handler dropped before it answers (the client went away, or the server stopped) is
/// recorded as cancelled, without a status code.
pub async fn a_request_whose_handler_is_dropped_is_recorded_as_cancelled<S: Server>() {
    let handler_cancel = S::BEHAVIOUR.handler_cancel;
    assert_ne!(
        handler_cancel,
        HandlerCancel::Never,
        "the scenario does not apply"
    );
    let mut h = Harness::<S>::start().await;
    let conn = h.raw_get("/slow").await;
    h.slow_started.notified().await;
    drop(conn);
    if handler_cancel == HandlerCancel::OnStop {
        h.server.stop().await;
    }
    wait(|| {
        cancelled_name(&h, "/slow")
            .attr("rustmon.cancelled", true)
            .no_attr("http.response.status_code")
            .one();
    });
}

/// A streamed body dropped before its end because the client went away is recorded as
/// cancelled, with the status and the bytes sent.
pub async fn a_body_dropped_mid_stream_is_recorded_as_cancelled<S: Server>() {
    let mut h = Harness::<S>::start().await;
    let mut conn = h.raw_get("/stream").await;
    let mut buf = [0u8; 1024];
    let mut got = Vec::new();
    while !got.windows(6).any(|w| w == b"first;") {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    drop(conn);
    // The body stays open until the server drops it.
    let tx = h.stream_sender().await;
    let cancel = S::BEHAVIOUR.body_cancel;
    match cancel {
        BodyCancel::OnDisconnect => {}
        BodyCancel::OnStop => h.server.stop().await,
        BodyCancel::OnWriteFailure => {
            let deadline = Instant::now() + 3 * WAIT;
            while tx.send(Bytes::from_static(b"more")).await.is_ok() {
                assert!(
                    Instant::now() < deadline,
                    "the server never dropped the body"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    wait(|| {
        let e = h
            .capture
            .expect("GET /stream")
            .attr("rustmon.cancelled", true)
            .attr("http.response.status_code", 200_i64);
        if cancel == BodyCancel::OnWriteFailure {
            e.has_attr("http.response.body.size").one()
        } else {
            e.attr("http.response.body.size", 6_i64).one()
        }
    });
    drop(tx);
}
