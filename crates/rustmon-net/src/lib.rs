//! Socket monitoring: drop-in wrappers for `std::net` ([`std_net`]) and `tokio::net`
//! ([`tokio_net`], feature `tokio`) TCP listeners, TCP streams and UDP sockets.
//!
//! The wrappers implement the same traits as what they wrap (`Read`/`Write`,
//! `AsyncRead`/`AsyncWrite`, an incoming iterator / stream) and the usual methods, so they drop
//! into existing code. Data is never copied: a read or write goes straight to the socket and adds
//! its byte count to a plain integer in the wrapper.
//!
//! What is recorded ([`Kind::Network`](rustmon_core::Kind::Network) events, plugin `net`):
//!
//! - **listener** `tcp listen {local}`: lives as long as the listener, with
//!   `rustmon.net.connections.accepted`, `rustmon.net.accept.errors` and the first accept error;
//!   metrics `rustmon.net.connections.active` (gauge), `rustmon.net.connections.accepted` and
//!   `rustmon.net.accept.errors` (cumulative counters), emitted whenever a connection opens or
//!   closes or an accept fails;
//! - **connection** `tcp accept {listener}` (accepted, a root) or `tcp connect {peer}` (outbound,
//!   a child of the current context, with `rustmon.net.connect.duration`): `network.transport`,
//!   `network.io.direction` (`receive` for accepted, `transmit` for outbound), `network.peer.*`,
//!   `network.local.*`, `rustmon.net.bytes_received`, `rustmon.net.bytes_sent`,
//!   `rustmon.net.errors` and the first error (type from the I/O error kind, e.g.
//!   `connection_reset`); the event lasts until the stream is dropped;
//! - **UDP socket** `udp {local}`: bytes and datagrams sent and received, errors, the peer of a
//!   connected socket; finished when the socket is dropped.
//!
//! `WouldBlock` and `Interrupted` are not errors. Configuration: [`NetConfig`] (plugin `net`).
//!
//! # Examples
//! ```
//! use std::io::{Read, Write};
//! use rustmon_core::Monitor;
//! use rustmon_net::std_net::{TcpListener, TcpStream};
//!
//! let monitor = Monitor::builder("svc").build().unwrap();
//! let listener = TcpListener::wrap(std::net::TcpListener::bind("127.0.0.1:0").unwrap(), Some(&monitor));
//! let mut client = TcpStream::connect_with(listener.local_addr().unwrap(), Some(&monitor)).unwrap();
//! let (mut server, _) = listener.accept().unwrap();
//! client.write_all(b"ping").unwrap();
//! let mut buf = [0; 4];
//! server.read_exact(&mut buf).unwrap();
//! assert_eq!((client.bytes_written(), server.bytes_read()), (4, 4));
//! # monitor.shutdown(std::time::Duration::from_secs(1));
//! ```

mod common;
mod config;
pub mod std_net;
#[cfg(feature = "tokio")]
pub mod tokio_net;

pub use config::NetConfig;
