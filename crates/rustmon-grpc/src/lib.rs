//! gRPC monitoring for tonic: tower layers for servers ([`GrpcServerLayer`]) and clients
//! ([`GrpcClientLayer`]).
//!
//! Each call becomes one event — [`Kind::Server`](rustmon_core::Kind::Server) on the server,
//! [`Kind::Rpc`](rustmon_core::Kind::Rpc) on the client — named `package.Service/Method`, with
//! `rpc.system = grpc`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`,
//! `rustmon.rpc.request.messages` and `rustmon.rpc.response.messages`, timed to the end of the
//! response stream (so streaming calls last as long as their streams). The trace travels in the
//! `traceparent` metadata entry. Error statuses are recorded with `error.type` set to the status
//! name (`INTERNAL`, `NOT_FOUND`, …).
//!
//! The layers work on the HTTP level, under tonic's codecs: message bodies are never decoded or
//! copied, only their length prefixes are read to count messages.
//!
//! Configuration: [`GrpcConfig`] (plugin `grpc`), live.
//!
//! # Examples
//! ```
//! use rustmon_grpc::{GrpcClientLayer, GrpcServerLayer};
//! use tower_layer::Layer;
//! # fn build() {
//! let server = tonic::transport::Server::builder().layer(GrpcServerLayer::new());
//! let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:50051").connect_lazy();
//! let channel = GrpcClientLayer::new().layer(channel);
//! # let _ = (server, channel); }
//! ```

mod body;
mod client;
mod config;
mod frames;
mod names;
mod server;
mod shared;
mod status;

pub use body::{RequestBody, ResponseBody};
pub use client::{ClientFuture, GrpcClient, GrpcClientLayer};
pub use config::GrpcConfig;
pub use names::OTHER;
pub use server::{GrpcServer, GrpcServerLayer, ServerFuture};
pub use status::status_name;
