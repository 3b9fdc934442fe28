//! The poem middleware under a real poem server on 127.0.0.1, through the web conformance suite
//! (`rustmon_test::web`), and on an endpoint under `CatchPanic`.

use std::net::SocketAddr;

use poem::endpoint::{BoxEndpoint, make};
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::middleware::CatchPanic;
use poem::{Body, EndpointExt, Request, Response, Route, Server, get, post};
use rustmon_core::Status;
use rustmon_test::http::wait;
use rustmon_test::web::{
    self, App, Behaviour, BodyCancel, FrameworkError, HandlerCancel, Harness, PanicAnswer,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A poem server; the endpoint it serves decides where the rustmon middleware is.
struct Poem {
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl Drop for Poem {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Poem {
    /// Serves `ep` on 127.0.0.1:0.
    fn serve(ep: BoxEndpoint<'static>) -> (Self, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TcpAcceptor::from_std(listener).unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(
            Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
                ep,
                async move {
                    let _ = stopped.await;
                },
                Some(std::time::Duration::ZERO),
            ),
        );
        let poem = Poem {
            stop: Some(stop),
            server: Some(server),
        };
        (poem, addr)
    }
}

fn routes(app: &App) -> Route {
    let (work, slow, stream) = (app.clone(), app.clone(), app.clone());
    Route::new()
        .at("/", get(make(|_| async { "root" })))
        .at(
            "/orders/:id",
            get(make(|req| async move {
                web::order(req.raw_path_param("id").unwrap_or_default())
            })),
        )
        .at(
            "/orders",
            post(make(|req: Request| async move {
                let body = req.into_body().into_bytes().await?;
                Ok::<_, poem::Error>(body.len().to_string())
            })),
        )
        .nest(
            "/api",
            Route::new().at("/items/:id", get(make(|_| async { "item" }))),
        )
        .at("/health", get(make(|_| async { "ok" })))
        .at("/missing", get(make(|_| async { StatusCode::NOT_FOUND })))
        .at(
            "/boom",
            get(make(|_| async {
                Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .body(web::BROKEN)
            })),
        )
        .at(
            "/error",
            get(make(|_| async {
                let e = poem::Error::from_string(web::DB_DOWN, StatusCode::SERVICE_UNAVAILABLE);
                Err::<String, _>(e)
            })),
        )
        .at("/nothing", get(make(|_| async { StatusCode::NO_CONTENT })))
        .at(
            "/h",
            get(make(|_| async {
                let [(k1, v1), (k2, v2)] = web::RESPONSE_HEADERS;
                Response::builder().header(k1, v1).header(k2, v2).body("ok")
            })),
        )
        .at("/text", get(make(|_| async { web::TEXT })))
        .at(
            "/stream",
            get(make(move |_| {
                std::future::ready(Body::from_bytes_stream(stream.stream()))
            })),
        )
        .at(
            "/work",
            get(make(move |_| {
                let work = work.clone();
                async move { work.work().await }
            })),
        )
        .at(
            "/slow",
            get(make(move |_| {
                let slow = slow.clone();
                async move { slow.slow().await }
            })),
        )
        .at("/panic", get(make(|_| web::panic())))
}

impl web::Server for Poem {
    const BEHAVIOUR: Behaviour = Behaviour {
        http_version: true,
        // Around the whole `Route`, the middleware learns the pattern from the response; a
        // request that never answers (a panic, a dropped handler) is `GET unmatched`, with the
        // raw path in `url.path`.
        route_before_handler: false,
        error_bodies_counted: false,
        error: Some(FrameworkError {
            recorded: Some("poem::Error"),
            body_is_message: true,
        }),
        // poem's server catches a panicking connection task and closes the connection without
        // an answer.
        panic: PanicAnswer::Closes,
        // poem (hyper's HTTP/1 connection) does not notice a client going away while the
        // handler or body waits, only when it next writes; both are dropped when the server
        // stops.
        handler_cancel: HandlerCancel::OnStop,
        body_cancel: BodyCancel::OnStop,
    };

    async fn start(app: App) -> (Self, SocketAddr) {
        let monitor = rustmon_poem::Monitor::with_monitor(app.monitor().clone());
        Poem::serve(routes(&app).with(monitor).boxed())
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    fn template(route: &str) -> String {
        route.replace('{', ":").replace('}', "")
    }
}

rustmon_test::web_suite!(Poem: core, streaming, dropped_handlers);

/// The middleware on one endpoint, inside the `Route`, with `CatchPanic` outside.
struct PoemEndpoint(Poem);

impl web::Server for PoemEndpoint {
    const BEHAVIOUR: Behaviour = Poem::BEHAVIOUR;

    async fn start(app: App) -> (Self, SocketAddr) {
        let monitor = rustmon_poem::Monitor::with_monitor(app.monitor().clone());
        let ep = Route::new()
            .at("/panic/:n", get(make(|_| web::panic())).with(monitor))
            .at("/health", get(make(|_| async { "ok" })))
            .with(CatchPanic::new())
            .boxed();
        let (poem, addr) = Poem::serve(ep);
        (PoemEndpoint(poem), addr)
    }

    async fn stop(&mut self) {
        self.0.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_endpoint_under_catch_panic_a_panic_is_named_by_its_route_and_answered_500() {
    // Inside the route, the middleware knows the pattern before the handler runs; CatchPanic
    // outside answers 500, which the middleware does not see.
    let h = Harness::<PoemEndpoint>::start().await;
    assert_eq!(h.get("/panic/1").await.0, StatusCode::INTERNAL_SERVER_ERROR);
    wait(|| {
        let e = h
            .capture
            .expect("GET /panic/:n")
            .attr("http.route", "/panic/:n")
            .status(Status::Error)
            .no_attr("http.response.status_code")
            .no_attr("rustmon.cancelled")
            .one();
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].error_type, "panic");
    });
}
