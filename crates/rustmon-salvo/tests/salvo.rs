//! The salvo hoop under a real salvo server on 127.0.0.1, through the web conformance suite
//! (`rustmon_test::web`).

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use rustmon_test::web::{
    self, App, Behaviour, BodyCancel, FrameworkError, HandlerCancel, PanicAnswer,
};
use salvo_core::conn::{Acceptor, Listener, TcpListener};
use salvo_core::http::{HeaderValue, ResBody, StatusCode, StatusError};
use salvo_core::server::ServerHandle;
use salvo_core::{Depot, FlowCtrl, Handler, Request, Response, Router, Server, Service};
use salvo_core::{async_trait, handler};
use tokio::task::JoinHandle;

/// What a test handler answers.
#[derive(Default)]
struct Reply {
    status: Option<StatusCode>,
    headers: &'static [(&'static str, &'static str)],
    body: Option<ResBody>,
}

fn text(s: impl Into<String>) -> Reply {
    Reply {
        body: Some(ResBody::Once(Bytes::from(s.into()))),
        ..Reply::default()
    }
}

fn status(code: StatusCode) -> Reply {
    Reply {
        status: Some(code),
        ..Reply::default()
    }
}

/// A handler from a closure of the request, returning a future of the reply.
#[derive(Clone)]
struct Make<F>(F);

#[async_trait]
impl<F, Fut> Handler for Make<F>
where
    F: Fn(&Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    async fn handle(
        &self,
        req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let reply = (self.0)(req).await;
        if let Some(code) = reply.status {
            res.status_code(code);
        }
        for (name, value) in reply.headers {
            res.headers_mut()
                .insert(*name, HeaderValue::from_static(value));
        }
        if let Some(body) = reply.body {
            res.body = body;
        }
    }
}

#[handler]
async fn count(req: &mut Request) -> String {
    req.payload().await.map_or(0, |b| b.len()).to_string()
}

fn at(path: &str) -> Router {
    Router::with_path(path)
}

fn routes(app: &App) -> Router {
    let (work, slow, stream) = (app.clone(), app.clone(), app.clone());
    let order = Make(|req: &Request| {
        let id = req.param::<String>("id").unwrap_or_default();
        async move { text(web::order(id)) }
    });
    Router::new()
        .get(Make(|_: &Request| async { text("root") }))
        // salvo serves HEAD only where a route says so.
        .push(at("orders/{id}").get(order.clone()).head(order))
        .push(at("orders").post(count))
        .push(at("api").push(at("items/{id}").get(Make(|_: &Request| async { text("item") }))))
        .push(at("health").get(Make(|_: &Request| async { text("ok") })))
        .push(at("missing").get(Make(|_: &Request| async { status(StatusCode::NOT_FOUND) })))
        .push(at("boom").get(Make(|_: &Request| async {
            Reply {
                status: Some(StatusCode::INTERNAL_SERVER_ERROR),
                ..text(web::BROKEN)
            }
        })))
        .push(at("error").get(Make(|_: &Request| async {
            // What `res.render(StatusError::service_unavailable().brief(…))` does.
            Reply {
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
                body: Some(ResBody::Error(
                    StatusError::service_unavailable().brief(web::DB_DOWN),
                )),
                ..Reply::default()
            }
        })))
        .push(at("nothing").get(Make(|_: &Request| async { status(StatusCode::NO_CONTENT) })))
        .push(at("h").get(Make(|_: &Request| async {
            Reply {
                headers: &web::RESPONSE_HEADERS,
                ..text("ok")
            }
        })))
        .push(at("text").get(Make(|_: &Request| async { text(web::TEXT) })))
        .push(at("stream").get(Make(move |_: &Request| {
            let body = ResBody::stream(stream.stream());
            async move {
                Reply {
                    body: Some(body),
                    ..Reply::default()
                }
            }
        })))
        .push(at("work").get(Make(move |_: &Request| {
            let work = work.clone();
            async move { text(work.work().await) }
        })))
        .push(at("slow").get(Make(move |_: &Request| {
            let slow = slow.clone();
            async move { text(slow.slow().await) }
        })))
        .push(at("panic").get(Make(|_: &Request| async { text(web::panic().await) })))
}

/// A salvo server with the rustmon hoop on its service.
struct Salvo {
    handle: ServerHandle,
    server: Option<JoinHandle<()>>,
}

impl Drop for Salvo {
    fn drop(&mut self) {
        self.handle.stop_forceful();
    }
}

impl web::Server for Salvo {
    const BEHAVIOUR: Behaviour = Behaviour {
        http_version: true,
        route_before_handler: true,
        // The 404 page and the error page salvo's catcher writes after the hoops are counted.
        error_bodies_counted: true,
        error: Some(FrameworkError {
            recorded: Some("salvo::StatusError"),
            body_is_message: false,
        }),
        // salvo does not catch handler panics: the connection's task panics and the
        // connection is closed without an answer.
        panic: PanicAnswer::Closes,
        // hyper's HTTP/1 connection does not notice a client going away while the handler or
        // the body waits; both are dropped when the server stops.
        handler_cancel: HandlerCancel::OnStop,
        body_cancel: BodyCancel::OnStop,
    };

    async fn start(app: App) -> (Self, SocketAddr) {
        let acceptor = TcpListener::new("127.0.0.1:0").bind().await;
        let addr = acceptor.holdings()[0]
            .local_addr
            .clone()
            .into_std()
            .unwrap();
        let hoop = rustmon_salvo::Monitor::with_monitor(app.monitor().clone());
        let service = Service::new(routes(&app)).hoop(hoop);
        let server = Server::new(acceptor);
        let handle = server.handle();
        let server = tokio::spawn(server.serve(service));
        let salvo = Salvo {
            handle,
            server: Some(server),
        };
        (salvo, addr)
    }

    async fn stop(&mut self) {
        self.handle.stop_forceful();
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}

rustmon_test::web_suite!(Salvo: core, streaming, dropped_handlers);
