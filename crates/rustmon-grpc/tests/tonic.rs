//! A real tonic service on 127.0.0.1 (hand-written prost messages and service definition: no
//! protoc needed) behind the server layer, called through a tonic client behind the client layer.

mod common;

use std::net::SocketAddr;

use common::{EchoReply, EchoRequest, serve};
use http::uri::PathAndQuery;
use rustmon_core::context::FutureExt;
use rustmon_core::{Kind, Monitor, SpanContext, Status};
use rustmon_grpc::GrpcClientLayer;
use rustmon_test::Capture;
use tower_layer::Layer;

type Client = tonic::client::Grpc<rustmon_grpc::GrpcClient<tonic::transport::Channel>>;

fn client(addr: SocketAddr, monitor: &Monitor) -> Client {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let layer = GrpcClientLayer::new()
        .monitor(monitor.clone())
        .server("127.0.0.1", addr.port());
    tonic::client::Grpc::new(layer.layer(channel))
}

async fn unary(client: &mut Client, message: &str) -> Result<String, tonic::Status> {
    client
        .ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let resp = client
        .unary(
            tonic::Request::new(EchoRequest {
                message: message.into(),
                count: 0,
            }),
            PathAndQuery::from_static("/rustmon.test.Echo/Unary"),
            tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default(),
        )
        .await?;
    Ok(resp.into_inner().message)
}

fn monitor() -> (Monitor, Capture) {
    let capture = Capture::new();
    let monitor = Monitor::builder("grpc-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (monitor, capture)
}

const UNARY: &str = "rustmon.test.Echo/Unary";
const STREAM: &str = "rustmon.test.Echo/Stream";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_and_streaming_calls_continue_the_trace() {
    let (monitor, capture) = monitor();
    let addr = serve(monitor.clone()).await;
    let mut client = client(addr, &monitor);

    // The caller's trace carries a tracestate, which travels on in the call's metadata.
    let caller = SpanContext::from_headers(
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        Some("congo=t61rcWkgMzE"),
    );
    let parent = monitor.start_event_with_parent(Kind::Server, "GET /checkout", caller);
    let ctx = parent.context();
    let reply = unary(&mut client, "hello").with_context(ctx).await.unwrap();
    assert_eq!(reply, "hello");

    client.ready().await.unwrap();
    let mut stream = client
        .server_streaming(
            tonic::Request::new(EchoRequest {
                message: "tick".into(),
                count: 5,
            }),
            PathAndQuery::from_static("/rustmon.test.Echo/Stream"),
            tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default(),
        )
        .with_context(ctx)
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    while let Some(reply) = stream.message().await.unwrap() {
        received.push(reply.message);
    }
    assert_eq!(received.len(), 5);
    assert_eq!(received[4], "tick 4");
    parent.finish();

    tokio::task::block_in_place(|| {
        let parent = capture.expect("GET /checkout").one();
        let call = capture
            .expect(UNARY)
            .kind(Kind::Rpc)
            .child_of(&parent)
            .attr("rpc.system", "grpc")
            .attr("rpc.service", "rustmon.test.Echo")
            .attr("rpc.method", "Unary")
            .attr("rpc.grpc.status_code", 0_i64)
            .attr("rustmon.rpc.request.messages", 1_i64)
            .attr("rustmon.rpc.response.messages", 1_i64)
            .attr("server.address", "127.0.0.1")
            .attr("server.port", i64::from(addr.port()))
            .status(Status::Ok)
            .one();
        assert_eq!(call.plugin, "grpc");
        let served = capture
            .expect(UNARY)
            .kind(Kind::Server)
            .child_of(&call)
            .attr("rpc.grpc.status_code", 0_i64)
            .attr("rustmon.rpc.request.messages", 1_i64)
            .attr("rustmon.rpc.response.messages", 1_i64)
            .one();
        assert!(served.parent_remote);
        assert_eq!(served.trace_state, Some("congo=t61rcWkgMzE"));
        capture.expect("handler").child_of(&served).one();

        let streamed = capture
            .expect(STREAM)
            .kind(Kind::Rpc)
            .child_of(&parent)
            .attr("rpc.grpc.status_code", 0_i64)
            .attr("rustmon.rpc.request.messages", 1_i64)
            .attr("rustmon.rpc.response.messages", 5_i64)
            .one();
        let served = capture
            .expect(STREAM)
            .kind(Kind::Server)
            .child_of(&streamed)
            .attr("rustmon.rpc.response.messages", 5_i64)
            .one();
        capture.expect("handler").child_of(&served).one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_unimplemented_and_unreachable_servers() {
    let (monitor, capture) = monitor();
    let addr = serve(monitor.clone()).await;
    let mut client = client(addr, &monitor);

    let err = unary(&mut client, "fail").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let err = unary(&mut client, "crash").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Internal);
    client.ready().await.unwrap();
    let err = client
        .unary(
            tonic::Request::new(EchoRequest::default()),
            PathAndQuery::from_static("/rustmon.test.Echo/Nope"),
            tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut unreachable = self::client(closed, &monitor);
    let err = unary(&mut unreachable, "hello").await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);

    tokio::task::block_in_place(|| {
        // A client error for any non-OK status; a server error only for server-side codes.
        capture
            .expect(UNARY)
            .kind(Kind::Rpc)
            .attr("rpc.grpc.status_code", 3_i64)
            .attr("error.type", "INVALID_ARGUMENT")
            .status(Status::Error)
            .one();
        let served = capture
            .expect(UNARY)
            .kind(Kind::Server)
            .attr("rpc.grpc.status_code", 3_i64)
            .one();
        assert_ne!(served.status, Status::Error);
        assert!(served.errors.is_empty());
        let crashed = capture
            .expect(UNARY)
            .kind(Kind::Server)
            .attr("rpc.grpc.status_code", 13_i64)
            .attr("error.type", "INTERNAL")
            .status(Status::Error)
            .one();
        assert_eq!(crashed.errors[0].message, "it broke");
        capture
            .expect(UNARY)
            .kind(Kind::Rpc)
            .attr("rpc.grpc.status_code", 13_i64)
            .status(Status::Error)
            .one();
        capture
            .expect("rustmon.test.Echo/Nope")
            .kind(Kind::Server)
            .attr("rpc.grpc.status_code", 12_i64)
            .status(Status::Error)
            .one();
        capture
            .expect("rustmon.test.Echo/Nope")
            .kind(Kind::Rpc)
            .attr("error.type", "UNIMPLEMENTED")
            .one();
        capture
            .expect(UNARY)
            .kind(Kind::Rpc)
            .attr("server.port", i64::from(closed.port()))
            .attr("error.type", "transport")
            .status(Status::Error)
            .one();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_methods_produce_no_events() {
    let (monitor, capture) = monitor();
    monitor
        .update_config(
            "grpc",
            &serde_json::json!({ "ignored_methods": ["rustmon.test.Echo/Unary"] }),
        )
        .unwrap();
    let addr = serve(monitor.clone()).await;
    let mut client = client(addr, &monitor);
    assert_eq!(unary(&mut client, "quiet").await.unwrap(), "quiet");
    monitor.flush(std::time::Duration::from_secs(5));
    tokio::task::block_in_place(|| {
        capture.wait_for(1); // the handler's own event, a root now
        capture.expect(UNARY).none();
        capture.expect("handler").root().one();
    });
}
