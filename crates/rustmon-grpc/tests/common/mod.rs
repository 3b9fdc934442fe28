//! A hand-written tonic service (prost messages and service definition without protoc), served
//! on 127.0.0.1, for the tests and the bench.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use rustmon_core::{Kind, Monitor};
use rustmon_grpc::GrpcServerLayer;
use tonic::codegen::tokio_stream::{self, Stream};
use tonic::server::{NamedService, ServerStreamingService, UnaryService};

/// The request of both methods.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    /// What to echo.
    #[prost(string, tag = "1")]
    pub message: String,
    /// How many replies to stream.
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

/// A reply.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    /// The echo.
    #[prost(string, tag = "1")]
    pub message: String,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// `rustmon.test.Echo`: `Unary` echoes (or fails on `fail` / `crash`), `Stream` sends `count`
/// replies. Each handler starts a child event, to check that the call's event is current.
#[derive(Clone)]
pub struct Echo {
    pub monitor: Monitor,
}

struct UnarySvc(Monitor);

impl UnaryService<EchoRequest> for UnarySvc {
    type Response = EchoReply;
    type Future = BoxFuture<Result<tonic::Response<EchoReply>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<EchoRequest>) -> Self::Future {
        let monitor = self.0.clone();
        Box::pin(async move {
            monitor.start_event(Kind::Custom, "handler").finish();
            let message = req.into_inner().message;
            match message.as_str() {
                "fail" => Err(tonic::Status::invalid_argument("no such thing")),
                "crash" => Err(tonic::Status::internal("it broke")),
                _ => Ok(tonic::Response::new(EchoReply { message })),
            }
        })
    }
}

struct StreamSvc(Monitor);

impl ServerStreamingService<EchoRequest> for StreamSvc {
    type Response = EchoReply;
    type ResponseStream = Pin<Box<dyn Stream<Item = Result<EchoReply, tonic::Status>> + Send>>;
    type Future = BoxFuture<Result<tonic::Response<Self::ResponseStream>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<EchoRequest>) -> Self::Future {
        let monitor = self.0.clone();
        Box::pin(async move {
            monitor.start_event(Kind::Custom, "handler").finish();
            let req = req.into_inner();
            let replies: Vec<_> = (0..req.count)
                .map(|i| {
                    Ok(EchoReply {
                        message: format!("{} {i}", req.message),
                    })
                })
                .collect();
            let stream: Self::ResponseStream = Box::pin(tokio_stream::iter(replies));
            Ok(tonic::Response::new(stream))
        })
    }
}

impl<B> tower_service::Service<http::Request<B>> for Echo
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let monitor = self.monitor.clone();
        match req.uri().path() {
            "/rustmon.test.Echo/Unary" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(UnarySvc(monitor), req).await)
            }),
            "/rustmon.test.Echo/Stream" => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.server_streaming(StreamSvc(monitor), req).await)
            }),
            _ => Box::pin(async move {
                let mut response = http::Response::new(tonic::body::Body::default());
                response
                    .headers_mut()
                    .insert("grpc-status", (tonic::Code::Unimplemented as i32).into());
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/grpc"),
                );
                Ok(response)
            }),
        }
    }
}

impl NamedService for Echo {
    const NAME: &'static str = "rustmon.test.Echo";
}

pub async fn serve(monitor: Monitor) -> SocketAddr {
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let router = tonic::transport::Server::builder()
        .layer(GrpcServerLayer::new().monitor(monitor.clone()))
        .add_service(Echo { monitor });
    tokio::spawn(router.serve_with_incoming(incoming));
    addr
}

/// Serves the echo service with no rustmon layer (for the bench's baseline).
pub async fn serve_bare(monitor: Monitor) -> SocketAddr {
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let router = tonic::transport::Server::builder().add_service(Echo { monitor });
    tokio::spawn(router.serve_with_incoming(incoming));
    addr
}
