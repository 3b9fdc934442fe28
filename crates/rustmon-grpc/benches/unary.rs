//! tonic unary call overhead with and without the rustmon layers, against a local tonic server
//! on 127.0.0.1, in the same run.
//!
//! Run: `cargo bench -p rustmon-grpc --bench unary`
//!
//! "bare": neither side layered; "layered": `GrpcClientLayer` on the client and `GrpcServerLayer`
//! on the server (both recording into an enabled monitor). Results: see the crate README.

#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::{EchoReply, EchoRequest, serve, serve_bare};
use criterion::{Criterion, criterion_group, criterion_main};
use http::uri::PathAndQuery;
use rustmon_core::Monitor;
use rustmon_grpc::GrpcClientLayer;
use tower_layer::Layer;

fn request() -> tonic::Request<EchoRequest> {
    tonic::Request::new(EchoRequest {
        message: "hello".into(),
        count: 0,
    })
}

const PATH: &str = "/rustmon.test.Echo/Unary";

fn bench(c: &mut Criterion) {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let monitor = Monitor::builder("bench").build().unwrap();
    let bare_addr = server_rt.block_on(serve_bare(monitor.clone()));
    let layered_addr = server_rt.block_on(serve(monitor.clone()));
    let channel = |addr: std::net::SocketAddr| {
        let _enter = rt.enter();
        tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy()
    };
    let mut bare = tonic::client::Grpc::new(channel(bare_addr));
    let mut layered = tonic::client::Grpc::new(
        GrpcClientLayer::new()
            .monitor(monitor.clone())
            .layer(channel(layered_addr)),
    );

    let mut g = c.benchmark_group("tonic_unary");
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("bare", |b| {
        b.iter(|| {
            rt.block_on(async {
                bare.ready().await.unwrap();
                bare.unary(
                    request(),
                    PathAndQuery::from_static(PATH),
                    tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default(),
                )
                .await
                .unwrap()
            })
        })
    });
    g.bench_function("layered", |b| {
        b.iter(|| {
            rt.block_on(async {
                layered.ready().await.unwrap();
                layered
                    .unary(
                        request(),
                        PathAndQuery::from_static(PATH),
                        tonic_prost::ProstCodec::<EchoRequest, EchoReply>::default(),
                    )
                    .await
                    .unwrap()
            })
        })
    });
    g.finish();
    monitor.shutdown(Duration::from_secs(2));
}

criterion_group!(benches, bench);
criterion_main!(benches);
