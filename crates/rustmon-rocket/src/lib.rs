//! rocket monitoring: a fairing recording one server event per request.
//!
//! [`Monitor`] is a rocket 0.5 [`Fairing`]. Each request becomes a
//! [`Kind::Server`](rustmon_core::Kind::Server) event recorded by the same code as the tower and
//! actix-web integrations (`rustmon-tower`'s [`ServerRecorder`]):
//!
//! - **name** method and route template: rocket's matched `Route::uri` with its parameters in the
//!   form every rustmon integration uses (`/orders/<id>` → `GET /orders/{id}`, a trailing
//!   `<path..>` → `{*path}`); a request no route matched (rocket's 404 catcher) is
//!   `GET unmatched`. The raw path is only `url.path`;
//! - **attributes** the OpenTelemetry HTTP attributes (`http.request.method`, `http.route`,
//!   `url.path`, `url.scheme`, `server.address`, `server.port`, `user_agent.original`,
//!   `http.request.body.size`, `http.response.status_code`, `http.response.body.size`) and, as the
//!   live [`HttpServerConfig`] (plugin `http_server`) asks, `client.address`, headers with
//!   redaction, the first bytes of the response body; ignored routes produce no event. Not
//!   `network.protocol.version`: rocket 0.5 does not tell a request's HTTP version;
//! - **status** error for 5xx (and for 4xx with `client_errors_are_errors`);
//! - **trace** a W3C `traceparent` (with its `tracestate`) is continued;
//! - **duration** from the request fairings to the last byte of the response body. Bodies are
//!   read through as rocket sends them, never buffered.
//!
//! # The request's event in handlers
//!
//! A fairing runs before and after the handler but cannot wrap its future, so it cannot make the
//! request's event current while the handler runs. Mount the routes through [`in_context`]: it
//! wraps each route's handler so that the request's event is current while the handler's future
//! runs (events started in the handler, after `.await`s too, and in
//! `tokio::spawn(fut.in_current_context())`, are its children) and records a panicking handler's
//! message ([`catchers_in_context`] does the same for catchers). Routes mounted without it are
//! still recorded; their handlers can take the [`RequestContext`] guard and run code in it
//! explicitly.
//!
//! # Panics and cancellation
//!
//! rocket catches a handler's panic and answers 500: the event is an error with status 500, and
//! under [`in_context`] also carries the panic (error type `panic`, its message). rocket runs each
//! request in a task of its own that a client going away does not cancel: the handler completes
//! and is recorded normally; when writing the response to the closed connection fails, rocket
//! drops the body and the request is recorded with `rustmon.cancelled = true`.
//!
//! # Examples
//! ```no_run
//! use rocket::{get, routes};
//!
//! #[get("/orders/<id>")]
//! fn order(id: u64) -> String {
//!     format!("order {id}")
//! }
//!
//! #[rocket::main]
//! async fn main() -> Result<(), rocket::Error> {
//!     // An application calls `rustmon::init("orders")`; here, the monitor by hand.
//!     let monitor = rustmon_core::Monitor::builder("orders").build().expect("monitor");
//!     monitor.install_global();
//!     rocket::build()
//!         .attach(rustmon_rocket::Monitor::new())
//!         .mount("/", rustmon_rocket::in_context(routes![order]))
//!         .launch()
//!         .await?;
//!     Ok(())
//! }
//! ```

mod body;
mod template;

use std::convert::Infallible;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll};

use rocket::fairing::{Fairing, Info, Kind};
use rocket::http::HeaderMap;
use rocket::http::Status;
use rocket::request::{self, FromRequest};
use rocket::route::{self, Handler};
use rocket::{Catcher, Data, Request, Response, Route, catcher};
use rustmon_core::ConfigHandle;
use rustmon_core::context::{self, ContextGuard, FutureExt, SpanContext, WithContext};
use rustmon_tower::{
    Headers, HttpServerConfig, RequestHead, RequestRecord, RouteSlot, ServerRecorder,
};

/// The rocket fairing: records one server event per request.
///
/// Events go to the global monitor unless [`with_monitor`](Monitor::with_monitor) names one.
/// Attach one `Monitor` per rocket, after the other fairings: its response callback then sees the
/// response as it will be sent. Mount routes with [`in_context`] to make the request's event the
/// parent of what handlers record.
///
/// # Examples
/// ```
/// let rocket = rocket::build().attach(rustmon_rocket::Monitor::new());
/// # let _ = rocket;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Monitor {
    recorder: ServerRecorder,
    /// The monitor given, or `None` for the global one.
    monitor: Option<rustmon_core::Monitor>,
    /// Its `http_server` configuration, resolved at the first recorded request.
    config: Arc<OnceLock<ConfigHandle<HttpServerConfig>>>,
}

impl Monitor {
    /// The fairing, recording into the global monitor.
    pub fn new() -> Self {
        Monitor::default()
    }

    /// Records into `monitor` instead of the global one.
    pub fn with_monitor(monitor: rustmon_core::Monitor) -> Self {
        Monitor {
            recorder: ServerRecorder::new(Some(monitor.clone())),
            monitor: Some(monitor),
            config: Arc::default(),
        }
    }

    /// The live configuration the recorder reads (resolved once a request has been recorded, so
    /// the global monitor is installed by then).
    fn config(&self) -> Option<&ConfigHandle<HttpServerConfig>> {
        if let Some(c) = self.config.get() {
            return Some(c);
        }
        let monitor = match &self.monitor {
            Some(m) => m,
            None => rustmon_core::global()?,
        };
        Some(
            self.config
                .get_or_init(|| monitor.config::<HttpServerConfig>()),
        )
    }
}

/// What a request carries between the fairing's callbacks (rocket's request-local state).
#[derive(Default)]
struct RequestState {
    /// The request's event context; set by the first `Monitor` that saw the request (`None`
    /// inside when the request is not recorded).
    ctx: OnceLock<Option<SpanContext>>,
    /// The request's event until the response.
    record: Mutex<Option<RequestRecord>>,
    /// The route template, set at the response; names the event.
    route: RouteSlot,
    /// The configuration, to see in a handler whether its route is ignored.
    config: OnceLock<ConfigHandle<HttpServerConfig>>,
}

impl RequestState {
    fn of<'r>(req: &'r Request<'_>) -> &'r RequestState {
        req.local_cache(RequestState::default)
    }

    fn record(&self) -> MutexGuard<'_, Option<RequestRecord>> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Header access for the recorder.
struct RocketHeaders<'a, 'h>(&'a HeaderMap<'h>);

impl Headers for RocketHeaders<'_, '_> {
    fn each(&self, f: &mut dyn FnMut(&str, &[u8])) {
        for header in self.0.iter() {
            let name = header.name().as_str();
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                f(&name.to_ascii_lowercase(), header.value().as_bytes());
            } else {
                f(name, header.value().as_bytes());
            }
        }
    }
}

impl Monitor {
    fn start(&self, req: &Request<'_>) -> Option<RequestRecord> {
        let headers = req.headers();
        // HTTP/1 requests carry `Host`; for HTTP/2 rocket keeps the `:authority` as the host.
        let host;
        let authority = match headers.get_one("host") {
            Some(h) => Some(h),
            None => {
                host = req.host().map(|h| h.to_string());
                host.as_deref()
            }
        };
        let head = RequestHead {
            method: req.method().as_str(),
            route: None,
            path: req.uri().path().as_str(),
            https: req.rocket().config().tls_enabled(),
            authority,
            // rocket 0.5 does not tell a request's HTTP version.
            version: "",
            user_agent: headers.get_one("user-agent").map(str::as_bytes),
            content_length: headers
                .get_one("content-length")
                .and_then(|v| v.trim().parse().ok()),
            traceparent: headers.get_one("traceparent").map(str::as_bytes),
            tracestate: headers.get_one("tracestate").map(str::as_bytes),
            client_addr: req.remote(),
        };
        self.recorder.start(&head, &RocketHeaders(headers))
    }
}

#[rocket::async_trait]
impl Fairing for Monitor {
    fn info(&self) -> Info {
        Info {
            name: "rustmon",
            kind: Kind::Request | Kind::Response,
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, _data: &mut Data<'_>) {
        let state = RequestState::of(req);
        if state.ctx.get().is_some() {
            // Another `Monitor` records this request.
            return;
        }
        let record = self.start(req);
        let _ = state
            .ctx
            .set(record.as_ref().and_then(RequestRecord::context));
        if let Some(mut record) = record {
            if let Some(config) = self.config() {
                let _ = state.config.set(config.clone());
            }
            // Rocket routes after the request fairings: the route is known at the response.
            record.route_later(&self.recorder, state.route.clone());
            *state.record() = Some(record);
        }
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut Response<'r>) {
        let state = RequestState::of(req);
        let Some(record) = state.record().take() else {
            return;
        };
        // The route that answered (or, when every matching route forwarded, the last one tried);
        // none when no route matched.
        if let Some(template) = req.route().and_then(template::of) {
            state.route.set(template);
        }
        let body = record.respond(res.status().code, &RocketHeaders(res.headers()));
        body::monitor(res, body).await;
    }
}

/// The request's event context: `None` when the request is not recorded (monitoring off, an
/// ignored route, no [`Monitor`] attached).
///
/// # Examples
/// ```
/// use rocket::{Request, Data, route};
///
/// fn custom<'r>(req: &'r Request<'_>, _: Data<'r>) -> route::BoxFuture<'r> {
///     let _current = rustmon_core::context::attach(rustmon_rocket::context(req));
///     route::Outcome::from(req, "hello").pin()
/// }
/// # let _ = custom;
/// ```
pub fn context(req: &Request<'_>) -> Option<SpanContext> {
    RequestState::of(req).ctx.get().copied().flatten()
}

/// A request guard giving a handler its request's event context, for routes not mounted through
/// [`in_context`]. Never fails.
///
/// # Examples
/// ```
/// use rocket::get;
/// use rustmon_rocket::RequestContext;
///
/// #[get("/orders")]
/// async fn orders(ctx: RequestContext) -> &'static str {
///     ctx.scope(async {
///         // events started here are children of the request's event
///         "orders"
///     })
///     .await
/// }
/// # let _ = rocket::routes![orders];
/// ```
#[derive(Clone, Copy, Debug)]
pub struct RequestContext(Option<SpanContext>);

impl RequestContext {
    /// The request's event context (`None` when the request is not recorded).
    pub fn span_context(&self) -> Option<SpanContext> {
        self.0
    }

    /// Makes the request's event current on this thread until the guard drops. Do not hold the
    /// guard across an `.await`: use [`scope`](RequestContext::scope) for async code.
    pub fn enter(&self) -> ContextGuard {
        context::attach(self.0)
    }

    /// `fut`, polled with the request's event current.
    pub fn scope<F: Future>(&self, fut: F) -> WithContext<F> {
        fut.with_context(self.0)
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for RequestContext {
    type Error = Infallible;

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, Infallible> {
        request::Outcome::Success(RequestContext(context(req)))
    }
}

/// Wraps the handler of each route so that the request's event is current while the handler
/// runs, and a panicking handler's message is recorded on it (rocket then answers 500, which is
/// recorded as an error). Mount the result as usual; routes are otherwise unchanged.
///
/// # Examples
/// ```
/// use rocket::{get, routes};
///
/// #[get("/")]
/// fn index() -> &'static str {
///     "hello"
/// }
///
/// let rocket = rocket::build()
///     .attach(rustmon_rocket::Monitor::new())
///     .mount("/", rustmon_rocket::in_context(routes![index]));
/// # let _ = rocket;
/// ```
pub fn in_context(routes: impl Into<Vec<Route>>) -> Vec<Route> {
    let mut routes = routes.into();
    for route in &mut routes {
        route.handler = Box::new(InContext(route.handler.clone()));
    }
    routes
}

/// [`in_context`] for catchers: the request's event is current while each catcher runs (events
/// a catcher starts are children of the request), and a catcher's panic is recorded.
///
/// # Examples
/// ```
/// use rocket::{catch, catchers, Request};
///
/// #[catch(404)]
/// fn not_found(req: &Request<'_>) -> String {
///     format!("no {}", req.uri())
/// }
///
/// let rocket = rocket::build()
///     .attach(rustmon_rocket::Monitor::new())
///     .register("/", rustmon_rocket::catchers_in_context(catchers![not_found]));
/// # let _ = rocket;
/// ```
pub fn catchers_in_context(catchers: impl Into<Vec<Catcher>>) -> Vec<Catcher> {
    let mut catchers = catchers.into();
    for catcher in &mut catchers {
        catcher.handler = Box::new(InContext(catcher.handler.clone()));
    }
    catchers
}

/// A handler (of a route or a catcher) run with the request's event current; see [`in_context`].
#[derive(Clone)]
struct InContext<H>(H);

#[rocket::async_trait]
impl Handler for InContext<Box<dyn Handler>> {
    async fn handle<'r>(&self, req: &'r Request<'_>, data: Data<'r>) -> route::Outcome<'r> {
        match handler_context(req) {
            None => self.0.handle(req, data).await,
            Some((state, ctx)) => run_in(state, ctx, || self.0.handle(req, data)).await,
        }
    }
}

#[rocket::async_trait]
impl catcher::Handler for InContext<Box<dyn catcher::Handler>> {
    async fn handle<'r>(&self, status: Status, req: &'r Request<'_>) -> catcher::Result<'r> {
        match handler_context(req) {
            None => self.0.handle(status, req).await,
            Some((state, ctx)) => run_in(state, ctx, || self.0.handle(status, req)).await,
        }
    }
}

/// The request's state and event context to run its handler in; `None` when the request is not
/// recorded, or its route is ignored (the event is discarded at the response, so what the
/// handler records must not point at it).
fn handler_context<'r>(req: &'r Request<'_>) -> Option<(&'r RequestState, Option<SpanContext>)> {
    let state = RequestState::of(req);
    let ctx = state.ctx.get().copied().flatten();
    (ctx.is_some() && !state.route_ignored(req)).then_some((state, ctx))
}

/// Runs the handler future `make` returns with `ctx` current, recording a panic on the request's
/// event before resuming it.
async fn run_in<F: Future + Unpin>(
    state: &RequestState,
    ctx: Option<SpanContext>,
    make: impl FnOnce() -> F,
) -> F::Output {
    // Making the future runs the handler's synchronous prelude.
    let fut = {
        let _current = context::attach(ctx);
        catch_unwind(AssertUnwindSafe(make))
    };
    match fut {
        Ok(fut) => {
            RecordPanic {
                inner: fut.with_context(ctx),
                state,
            }
            .await
        }
        Err(panic) => {
            state.panicked(&*panic);
            resume_unwind(panic)
        }
    }
}

impl RequestState {
    /// Whether the route now handling `req` is in `ignore_routes` (by its template).
    fn route_ignored(&self, req: &Request<'_>) -> bool {
        let Some(config) = self.config.get() else {
            return false;
        };
        let config = config.get();
        !config.ignore_routes.is_empty()
            && req
                .route()
                .and_then(template::of)
                .is_some_and(|t| config.is_ignored(Some(t), ""))
    }

    /// Records a handler's panic on the request's event, which stays open: rocket catches the
    /// panic and answers 500 through its catcher, and the response finishes the event.
    fn panicked(&self, payload: &(dyn std::any::Any + Send)) {
        if let Some(event) = self.record().as_mut().and_then(RequestRecord::event_mut) {
            event.record_error("panic", rustmon_tower::panic_message(payload));
        }
    }
}

/// A handler's future; a panic is recorded, then resumed for rocket to catch.
struct RecordPanic<'s, F> {
    inner: F,
    state: &'s RequestState,
}

impl<F: Future + Unpin> Future for RecordPanic<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = &mut *self;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut this.inner).poll(cx))) {
            Ok(p) => p,
            Err(panic) => {
                this.state.panicked(&*panic);
                resume_unwind(panic)
            }
        }
    }
}
