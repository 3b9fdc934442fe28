//! The layer around a real warp service, served by hyper on 127.0.0.1, through the web
//! conformance suite (`rustmon_test::web`).

use std::net::SocketAddr;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustmon_test::web::{self, App, Behaviour, BodyCancel, HandlerCancel, PanicAnswer};
use rustmon_tower::Layer;
use tokio::task::JoinHandle;
use tower::ServiceExt;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::{Reply, Response, with_header, with_status};

type Route = BoxedFilter<(Response,)>;

/// `GET path`, named `template`, answering `reply`.
fn get<R: Reply + 'static>(
    path: BoxedFilter<()>,
    template: &'static str,
    reply: impl Fn() -> R + Clone + Send + Sync + 'static,
) -> Route {
    path.and(warp::path::end())
        .and(warp::get())
        .and(rustmon_warp::route(template))
        .map(move || reply().into_response())
        .boxed()
}

fn routes(app: &App) -> Route {
    let (work, slow) = (app.clone(), app.clone());
    let orders = warp::path!("orders" / u32)
        .and(warp::get().or(warp::head()).unify())
        .and(rustmon_warp::route("/orders/{id}"))
        .map(|id: u32| web::order(id).into_response())
        .boxed();
    let create = warp::path!("orders")
        .and(warp::post())
        .and(rustmon_warp::route("/orders"))
        .and(warp::body::bytes())
        .map(|body: Bytes| body.len().to_string().into_response())
        .boxed();
    let items = warp::path!("api" / "items" / u32)
        .and(warp::get())
        .and(rustmon_warp::route("/api/items/{id}"))
        .map(|_: u32| "item".into_response())
        .boxed();
    let work = warp::path!("work")
        .and(rustmon_warp::route("/work"))
        .then(move || {
            let work = work.clone();
            async move { work.work().await.into_response() }
        })
        .boxed();
    let slow = warp::path!("slow")
        .and(rustmon_warp::route("/slow"))
        .then(move || {
            let slow = slow.clone();
            async move { slow.slow().await.into_response() }
        })
        .boxed();
    let panics = warp::path!("panic")
        .and(rustmon_warp::route("/panic"))
        .then(|| async { web::panic().await.into_response() })
        .boxed();
    let [(k1, v1), (k2, v2)] = web::RESPONSE_HEADERS;
    let p = |segment| warp::path(segment).boxed();
    [
        get(warp::path::end().boxed(), "/", || "root"),
        orders,
        create,
        items,
        get(p("health"), "/health", || "ok"),
        get(p("missing"), "/missing", || StatusCode::NOT_FOUND),
        get(p("boom"), "/boom", || {
            with_status(web::BROKEN, StatusCode::INTERNAL_SERVER_ERROR)
        }),
        // warp has no error type that carries a message to the client: a plain 503.
        get(p("error"), "/error", || {
            with_status(web::DB_DOWN, StatusCode::SERVICE_UNAVAILABLE)
        }),
        get(p("nothing"), "/nothing", || StatusCode::NO_CONTENT),
        get(p("h"), "/h", move || {
            with_header(with_header("ok", k1, v1), k2, v2)
        }),
        get(p("text"), "/text", || web::TEXT),
        work,
        slow,
        panics,
    ]
    .into_iter()
    .reduce(|a, b| a.or(b).unify().boxed())
    .unwrap()
}

/// warp's service in rustmon's layer, served by hyper's HTTP/1 connections.
struct Warp(JoinHandle<()>);

impl Drop for Warp {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl web::Server for Warp {
    const BEHAVIOUR: Behaviour = Behaviour {
        http_version: true,
        // The route filter names the request before the handler runs.
        route_before_handler: true,
        error_bodies_counted: true,
        error: None,
        // warp does not catch panics; served by hyper in a spawned task, the connection closes
        // without an answer.
        panic: PanicAnswer::Closes,
        handler_cancel: HandlerCancel::OnDisconnect,
        // Not run: warp builds no streamed bodies.
        body_cancel: BodyCancel::OnDisconnect,
    };

    async fn start(app: App) -> (Self, SocketAddr) {
        let svc = rustmon_warp::layer()
            .with_monitor(app.monitor().clone())
            .layer(warp::service(routes(&app)));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            loop {
                let (stream, peer) = listener.accept().await.unwrap();
                let svc = svc.clone();
                tokio::spawn(async move {
                    // The layer finds the client's address among the extensions.
                    let svc =
                        hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                            req.extensions_mut().insert(peer);
                            svc.clone().oneshot(req)
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (Warp(server), addr)
    }

    async fn stop(&mut self) {
        self.0.abort();
    }
}

rustmon_test::web_suite!(Warp: core, dropped_handlers);
