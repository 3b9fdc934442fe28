//! The actix-web middleware under a real actix-web server on 127.0.0.1, through the web
//! conformance suite (`rustmon_test::web`).

use std::net::SocketAddr;

use actix_web::dev::ServerHandle;
use actix_web::web::{self, Bytes, ServiceConfig};
use actix_web::{HttpResponse, HttpServer};
use rustmon_test::web::{App, Behaviour, BodyCancel, FrameworkError, HandlerCancel, PanicAnswer};

/// An actix-web server (one worker, on its own actix system thread) with the rustmon middleware.
struct Actix(Option<ServerHandle>);

impl Drop for Actix {
    fn drop(&mut self) {
        if let Some(server) = self.0.take() {
            drop(server.stop(false));
        }
    }
}

fn routes(cfg: &mut ServiceConfig, app: &App) {
    let (work, slow, stream) = (app.clone(), app.clone(), app.clone());
    let order = |id: web::Path<u32>| async move { rustmon_test::web::order(id) };
    cfg.route("/", web::get().to(|| async { "root" }))
        // actix serves HEAD only where a route says so.
        .service(
            web::resource("/orders/{id}")
                .route(web::get().to(order))
                .route(web::head().to(order)),
        )
        .route(
            "/orders",
            web::post().to(|body: Bytes| async move { body.len().to_string() }),
        )
        .service(web::scope("/api").route("/items/{id}", web::get().to(|| async { "item" })))
        .route("/health", web::get().to(|| async { "ok" }))
        .route(
            "/missing",
            web::get().to(|| async { HttpResponse::NotFound().finish() }),
        )
        .route(
            "/boom",
            web::get().to(|| async {
                HttpResponse::InternalServerError().body(rustmon_test::web::BROKEN)
            }),
        )
        .route(
            "/error",
            web::get().to(|| async {
                let e = actix_web::error::ErrorServiceUnavailable(rustmon_test::web::DB_DOWN);
                Err::<String, _>(e)
            }),
        )
        .route(
            "/nothing",
            web::get().to(|| async { HttpResponse::NoContent().finish() }),
        )
        .route(
            "/h",
            web::get().to(|| async {
                let mut headers = HttpResponse::Ok();
                for header in rustmon_test::web::RESPONSE_HEADERS {
                    headers.insert_header(header);
                }
                headers.body("ok")
            }),
        )
        .route("/text", web::get().to(|| async { rustmon_test::web::TEXT }))
        .route(
            "/stream",
            web::get()
                .to(move || std::future::ready(HttpResponse::Ok().streaming(stream.stream()))),
        )
        .route(
            "/work",
            web::get().to(move || {
                let work = work.clone();
                async move { work.work().await }
            }),
        )
        .route(
            "/slow",
            web::get().to(move || {
                let slow = slow.clone();
                async move { slow.slow().await }
            }),
        )
        .route("/panic", web::get().to(rustmon_test::web::panic));
}

impl rustmon_test::web::Server for Actix {
    const BEHAVIOUR: Behaviour = Behaviour {
        http_version: true,
        route_before_handler: true,
        error_bodies_counted: true,
        error: Some(FrameworkError {
            recorded: Some("actix_web::Error"),
            body_is_message: true,
        }),
        // actix-web does not catch handler panics: the worker thread dies, the connection
        // closes without an answer, and actix-server starts a new worker.
        panic: PanicAnswer::Closes,
        // actix-web notices a client going away only when it next writes: a handler's future
        // is dropped when the server stops, a body when a write fails.
        handler_cancel: HandlerCancel::OnStop,
        body_cancel: BodyCancel::OnWriteFailure,
    };

    async fn start(app: App) -> (Self, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    let app = app.clone();
                    actix_web::App::new()
                        .wrap(rustmon_actix::Monitor::with_monitor(app.monitor().clone()))
                        .configure(move |cfg| routes(cfg, &app))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                server.await.unwrap();
            });
        });
        (Actix(Some(rx.recv().unwrap())), addr)
    }

    async fn stop(&mut self) {
        if let Some(server) = self.0.take() {
            server.stop(false).await;
        }
    }
}

rustmon_test::web_suite!(Actix: core, streaming, dropped_handlers);
