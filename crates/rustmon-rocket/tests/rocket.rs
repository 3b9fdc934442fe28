//! The rocket fairing under a real rocket server on 127.0.0.1, through the web conformance suite
//! (`rustmon_test::web`), and what only rocket has: catch-all segments, request guards,
//! catchers, routes outside `in_context`.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};

use hyper::StatusCode;
use rocket::Ignite;
use rocket::config::{LogLevel, Shutdown};
use rocket::fairing::AdHoc;
use rocket::http::{Header, Status as RocketStatus};
use rocket::response::{self, Responder};
use rocket::{State, catch, catchers, get, post, routes};
use rustmon_core::{Kind, Status};
use rustmon_rocket::{RequestContext, catchers_in_context, in_context};
use rustmon_test::http::wait;
use rustmon_test::web::{
    self, App, Behaviour, BodyCancel, FrameworkError, HandlerCancel, Harness, PanicAnswer,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[get("/")]
fn root() -> &'static str {
    "root"
}

#[get("/orders/<id>")]
fn order(id: u32) -> String {
    web::order(id)
}

#[post("/orders", data = "<body>")]
fn create(body: &str) -> String {
    body.len().to_string()
}

#[get("/items/<id>")]
fn item(id: u32) -> &'static str {
    let _ = id;
    "item"
}

#[get("/health")]
fn health() -> &'static str {
    "ok"
}

#[get("/missing")]
fn missing() -> RocketStatus {
    RocketStatus::NotFound
}

#[get("/boom")]
fn boom() -> (RocketStatus, &'static str) {
    (RocketStatus::InternalServerError, web::BROKEN)
}

/// rocket's error: a status, answered by its catcher.
#[get("/error")]
fn error() -> Result<&'static str, RocketStatus> {
    Err(RocketStatus::ServiceUnavailable)
}

#[get("/nothing")]
fn nothing() -> RocketStatus {
    RocketStatus::NoContent
}

#[derive(rocket::Responder)]
struct WithHeaders {
    body: &'static str,
    first: Header<'static>,
    second: Header<'static>,
}

#[get("/h")]
fn with_headers() -> WithHeaders {
    let [(k1, v1), (k2, v2)] = web::RESPONSE_HEADERS;
    WithHeaders {
        body: "ok",
        first: Header::new(k1, v1),
        second: Header::new(k2, v2),
    }
}

#[get("/text")]
fn text() -> &'static str {
    web::TEXT
}

/// A streamed (unsized) body.
struct Streamed(web::Chunks);

impl<'r> Responder<'r, 'static> for Streamed {
    fn respond_to(self, _req: &'r rocket::Request<'_>) -> response::Result<'static> {
        rocket::Response::build().streamed_body(self.0).ok()
    }
}

#[get("/stream")]
fn stream(app: &State<App>) -> Streamed {
    Streamed(app.stream())
}

#[get("/work")]
async fn work(app: &State<App>) -> &'static str {
    app.work().await
}

#[get("/slow")]
async fn slow(app: &State<App>) -> &'static str {
    app.slow().await
}

#[get("/panic")]
async fn panics() -> &'static str {
    web::panic().await
}

// What only rocket has.

#[get("/files/<path..>")]
fn file(path: std::path::PathBuf) -> String {
    path.display().to_string()
}

#[get("/guarded")]
async fn guarded(app: &State<App>, ctx: RequestContext) -> &'static str {
    ctx.scope(async {
        tokio::task::yield_now().await;
        app.monitor()
            .start_event(Kind::Cache, "GET session")
            .finish();
    })
    .await;
    "done"
}

#[get("/panic-plain")]
fn panics_plain() -> &'static str {
    if std::hint::black_box(true) {
        panic!("kaboom");
    }
    "unreachable"
}

#[catch(404)]
async fn not_found(req: &rocket::Request<'_>) -> &'static str {
    tokio::task::yield_now().await;
    let app = req.rocket().state::<App>().unwrap();
    app.monitor()
        .start_event(Kind::Custom, "render 404")
        .finish();
    "not here"
}

/// A rocket server with the rustmon fairing, on the test's runtime; the route table in
/// `in_context`, and rocket's own routes beside it; with `CATCHER`, a 404 catcher that records
/// an event.
struct Rocket<const CATCHER: bool> {
    shutdown: rocket::Shutdown,
    launched: Option<JoinHandle<Result<rocket::Rocket<Ignite>, rocket::Error>>>,
}

impl<const CATCHER: bool> Drop for Rocket<CATCHER> {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

impl<const CATCHER: bool> web::Server for Rocket<CATCHER> {
    const BEHAVIOUR: Behaviour = Behaviour {
        // rocket 0.5 does not tell the HTTP version.
        http_version: false,
        route_before_handler: true,
        error_bodies_counted: true,
        error: Some(FrameworkError {
            recorded: None,
            body_is_message: false,
        }),
        // rocket catches handler panics and answers 500 through its catcher.
        panic: PanicAnswer::Recorded500,
        handler_cancel: HandlerCancel::Never,
        // rocket stops sending when a write to the closed connection fails; it then drops the
        // body.
        body_cancel: BodyCancel::OnWriteFailure,
    };

    async fn start(app: App) -> (Self, SocketAddr) {
        let config = rocket::Config {
            address: Ipv4Addr::LOCALHOST.into(),
            port: 0,
            workers: 2,
            log_level: LogLevel::Off,
            cli_colors: false,
            shutdown: Shutdown {
                ctrlc: false,
                signals: HashSet::new(),
                grace: 1,
                mercy: 1,
                ..Shutdown::default()
            },
            ..rocket::Config::debug_default()
        };
        let table = routes![
            root,
            order,
            create,
            health,
            missing,
            boom,
            error,
            nothing,
            with_headers,
            text,
            stream,
            work,
            slow,
            panics
        ];
        let (tx, rx) = oneshot::channel();
        let mut rocket = rocket::custom(config)
            .mount("/", in_context(table))
            .mount("/api", in_context(routes![item]))
            .mount("/", routes![guarded, panics_plain])
            .mount("/static", routes![file])
            .attach(rustmon_rocket::Monitor::with_monitor(app.monitor().clone()))
            .manage(app)
            .attach(AdHoc::on_liftoff("test address", move |r| {
                let _ = tx.send((r.config().port, r.shutdown()));
                Box::pin(async {})
            }));
        if CATCHER {
            rocket = rocket.register("/", catchers_in_context(catchers![not_found]));
        }
        let launched = tokio::spawn(rocket.launch());
        let Ok((port, shutdown)) = rx.await else {
            let error = launched.await.unwrap().err().map(|e| e.to_string());
            panic!("rocket did not launch: {error:?}");
        };
        let rocket = Rocket {
            shutdown,
            launched: Some(launched),
        };
        (rocket, SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    async fn stop(&mut self) {
        self.shutdown.clone().notify();
        if let Some(launched) = self.launched.take() {
            let _ = launched.await;
        }
    }
}

rustmon_test::web_suite!(Rocket<false>: core, streaming);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_all_segment_is_named_by_its_template() {
    let h = Harness::<Rocket<false>>::start().await;
    assert_eq!(h.get("/static/files/a/b.txt").await.2, "a/b.txt");
    wait(|| {
        h.capture
            .expect("GET /static/files/{*path}")
            .attr("http.route", "/static/files/{*path}")
            .attr("url.path", "/static/files/a/b.txt")
            .one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_request_guards_and_catchers_in_context_are_children_of_the_request() {
    let h = Harness::<Rocket<true>>::start().await;
    assert_eq!(h.get("/guarded").await.0, StatusCode::OK);
    let (status, _, body) = h.get("/nowhere").await;
    assert_eq!(
        (status, &body[..]),
        (StatusCode::NOT_FOUND, &b"not here"[..])
    );
    wait(|| {
        let server = h.capture.expect("GET unmatched").one();
        h.capture.expect("render 404").child_of(&server).one();
        let server = h.capture.expect("GET /guarded").one();
        h.capture.expect("GET session").child_of(&server).one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_in_context_a_panic_is_seen_only_as_its_500() {
    let h = Harness::<Rocket<false>>::start().await;
    assert_eq!(
        h.get("/panic-plain").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    wait(|| {
        let e = h
            .capture
            .expect("GET /panic-plain")
            .status(Status::Error)
            .attr("http.response.status_code", 500_i64)
            .one();
        assert!(e.errors.is_empty());
    });
}
