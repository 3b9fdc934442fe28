//! The tower layer under a real axum server on 127.0.0.1, through the web conformance suite
//! (`rustmon_test::web`), with and without a catch-panic layer around it.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use rustmon_test::web::{self, App, Behaviour, BodyCancel, HandlerCancel, PanicAnswer};
use tokio::task::JoinHandle;

/// An axum server with the rustmon layer; with `CATCH_PANIC`, tower-http's `CatchPanicLayer`
/// around it.
struct Axum<const CATCH_PANIC: bool>(Option<JoinHandle<()>>);

impl<const CATCH_PANIC: bool> Drop for Axum<CATCH_PANIC> {
    fn drop(&mut self) {
        if let Some(server) = self.0.take() {
            server.abort();
        }
    }
}

fn routes(app: App) -> Router {
    let (work, slow, stream) = (app.clone(), app.clone(), app.clone());
    Router::new()
        .route("/", get(|| async { "root" }))
        .route(
            "/orders/{id}",
            get(|Path(id): Path<u32>| async move { web::order(id) }),
        )
        .route(
            "/orders",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .nest(
            "/api",
            Router::new().route("/items/{id}", get(|| async { "item" })),
        )
        .route("/health", get(|| async { "ok" }))
        .route("/missing", get(|| async { StatusCode::NOT_FOUND }))
        .route(
            "/boom",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, web::BROKEN) }),
        )
        // axum has no error type of its own: a handler answers a status.
        .route(
            "/error",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, web::DB_DOWN) }),
        )
        .route("/nothing", get(|| async { StatusCode::NO_CONTENT }))
        .route("/h", get(|| async { (web::RESPONSE_HEADERS, "ok") }))
        .route("/text", get(|| async { web::TEXT }))
        .route(
            "/stream",
            get(move || async move { Body::from_stream(stream.stream()) }),
        )
        .route("/work", get(move || async move { work.work().await }))
        .route("/slow", get(move || async move { slow.slow().await }))
        .route("/panic", get(web::panic))
}

impl<const CATCH_PANIC: bool> web::Server for Axum<CATCH_PANIC> {
    const BEHAVIOUR: Behaviour = Behaviour {
        http_version: true,
        route_before_handler: true,
        error_bodies_counted: true,
        error: None,
        // Without a catch-panic layer, axum's connection task panics and hyper closes the
        // connection without an answer; rustmon records the panic and lets it continue.
        panic: if CATCH_PANIC {
            PanicAnswer::Unrecorded500
        } else {
            PanicAnswer::Closes
        },
        handler_cancel: HandlerCancel::OnDisconnect,
        body_cancel: BodyCancel::OnDisconnect,
    };

    async fn start(app: App) -> (Self, SocketAddr) {
        let layer = rustmon_tower::axum::layer().with_monitor(app.monitor().clone());
        let mut router = routes(app).layer(layer);
        if CATCH_PANIC {
            router = router.layer(tower_http::catch_panic::CatchPanicLayer::new());
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let server = tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
        (Axum(Some(server)), addr)
    }

    async fn stop(&mut self) {
        if let Some(server) = self.0.take() {
            server.abort();
            let _ = server.await;
        }
    }
}

rustmon_test::web_suite!(Axum<false>: core, streaming, dropped_handlers);

/// Under tower-http's `CatchPanicLayer` the client gets a 500, which the layer inside it never
/// sees; the panic is recorded.
mod catch_panic {
    rustmon_test::web_suite! {
        super::Axum<true>: scenarios a_panicking_handler_is_recorded_and_behaves_as_without_rustmon
    }
}
