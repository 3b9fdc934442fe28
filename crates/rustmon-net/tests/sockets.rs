//! TCP echo servers and clients and UDP round trips through the wrappers, on 127.0.0.1, with
//! exact byte counts.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use rustmon_core::metrics::{MetricData, Number};
use rustmon_core::{Kind, Monitor, Status};
use rustmon_net::{std_net, tokio_net};
use rustmon_test::Capture;

fn monitor() -> (Monitor, Capture) {
    let capture = Capture::new();
    let monitor = Monitor::builder("net-test")
        .listener(capture.listener())
        .build()
        .unwrap();
    (monitor, capture)
}

/// A payload that is not all zeros, so that a mixed-up echo would be caught.
fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn gauge_values(capture: &Capture, name: &str) -> Vec<i64> {
    capture
        .metrics()
        .into_iter()
        .filter(|m| m.name == name)
        .map(|m| match m.data {
            MetricData::Gauge(Number::I64(v)) => v,
            MetricData::Sum {
                value: Number::I64(v),
                ..
            } => v,
            ref other => panic!("{name}: unexpected {other:?}"),
        })
        .collect()
}

const LEN: usize = 300_000;

#[test]
fn std_tcp_echo_counts_every_byte() {
    let (monitor, capture) = monitor();
    let listener = std_net::TcpListener::wrap(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        Some(&monitor),
    );
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut conn = listener.incoming().next().unwrap().unwrap();
        let mut buf = [0u8; 8192];
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            conn.write_all(&buf[..n]).unwrap();
        }
        assert_eq!(
            (conn.bytes_read(), conn.bytes_written()),
            (LEN as u64, LEN as u64)
        );
        drop(conn);
        drop(listener);
    });

    let parent = monitor.start_event(Kind::Custom, "job");
    let data = payload(LEN);
    let mut client = {
        let _current = parent.enter();
        std_net::TcpStream::connect_with(addr, Some(&monitor)).unwrap()
    };
    let client_port = client.local_addr().unwrap().port();
    let writer_data = data.clone();
    let mut write_half = client.get_ref().try_clone().unwrap();
    // Write through the wrapper on this thread while a plain clone reads the echo back.
    let reader = std::thread::spawn(move || {
        let mut echoed = Vec::new();
        write_half.read_to_end(&mut echoed).unwrap();
        echoed
    });
    for chunk in writer_data.chunks(7_000) {
        client.write_all(chunk).unwrap();
    }
    client.shutdown(Shutdown::Write).unwrap();
    let echoed = reader.join().unwrap();
    assert_eq!(echoed, data);
    assert_eq!(client.bytes_written(), LEN as u64);
    drop(client);
    server.join().unwrap();
    parent.finish();

    let parent = capture.expect("job").one();
    let name = format!("tcp connect {addr}");
    let out = capture
        .expect(&name)
        .kind(Kind::Network)
        .child_of(&parent)
        .attr("network.transport", "tcp")
        .attr("network.peer.port", i64::from(addr.port()))
        .attr("rustmon.net.bytes_sent", LEN as i64)
        .attr("rustmon.net.bytes_received", 0_i64)
        .has_attr("rustmon.net.connect.duration")
        .one();
    assert_eq!(out.plugin, "net");
    capture
        .expect(&format!("tcp accept {addr}"))
        .kind(Kind::Network)
        .root()
        .attr("network.peer.port", i64::from(client_port))
        .attr("network.local.port", i64::from(addr.port()))
        .attr("rustmon.net.bytes_received", LEN as i64)
        .attr("rustmon.net.bytes_sent", LEN as i64)
        .one();
    capture
        .expect(&format!("tcp listen {addr}"))
        .attr("rustmon.net.connections.accepted", 1_i64)
        .attr("rustmon.net.accept.errors", 0_i64)
        .one();
    let active = gauge_values(&capture, "rustmon.net.connections.active");
    assert_eq!(active.first(), Some(&0));
    assert_eq!(active.iter().max(), Some(&1));
    assert_eq!(active.last(), Some(&0));
    assert_eq!(
        gauge_values(&capture, "rustmon.net.connections.accepted").last(),
        Some(&1)
    );
    monitor.shutdown(Duration::from_secs(5));
}

#[test]
fn std_udp_round_trip_and_refused_connect() {
    let (monitor, capture) = monitor();
    let a = std_net::UdpSocket::wrap(
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        Some(&monitor),
    );
    let b = std_net::UdpSocket::wrap(
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        Some(&monitor),
    );
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    let mut buf = [0u8; 1500];
    for size in [10, 200, 1400] {
        let sent = payload(size);
        assert_eq!(a.send_to(&sent, b_addr).unwrap(), size);
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (size, a_addr));
        b.send_to(&buf[..n], from).unwrap();
        let (n, _) = a.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &sent[..]);
    }
    drop(a);
    drop(b);

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = std_net::TcpStream::connect_with(closed, Some(&monitor)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);

    for (addr, sent, received) in [(a_addr, 1610_i64, 1610_i64), (b_addr, 1610, 1610)] {
        capture
            .expect(&format!("udp {addr}"))
            .kind(Kind::Network)
            .attr("network.transport", "udp")
            .attr("rustmon.net.bytes_sent", sent)
            .attr("rustmon.net.bytes_received", received)
            .attr("rustmon.net.datagrams_sent", 3_i64)
            .attr("rustmon.net.datagrams_received", 3_i64)
            .one();
    }
    let refused = capture
        .expect(&format!("tcp connect {closed}"))
        .status(Status::Error)
        .attr("error.type", "connection_refused")
        .has_attr("rustmon.net.connect.duration")
        .one();
    assert_eq!(refused.errors[0].error_type, "connection_refused");
    monitor.shutdown(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_tcp_echo_and_udp_round_trip() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (monitor, capture) = monitor();
    let listener = tokio_net::TcpListener::wrap(
        tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        Some(&monitor),
    );
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut conn = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut listener.incoming()), cx)
        })
        .await
        .unwrap()
        .unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            conn.write_all(&buf[..n]).await.unwrap();
        }
        conn.shutdown().await.unwrap();
        (conn.bytes_read(), conn.bytes_written())
    });

    let client = tokio_net::TcpStream::connect_with(addr, Some(&monitor))
        .await
        .unwrap();
    let data = payload(LEN);
    let (mut rd, mut wr) = tokio::io::split(client);
    let expected = data.clone();
    let writer = tokio::spawn(async move {
        for chunk in data.chunks(9_000) {
            wr.write_all(chunk).await.unwrap();
        }
        wr.shutdown().await.unwrap();
        wr
    });
    let mut echoed = Vec::new();
    rd.read_to_end(&mut echoed).await.unwrap();
    assert_eq!(echoed, expected);
    let wr = writer.await.unwrap();
    let client = rd.unsplit(wr);
    assert_eq!(
        (client.bytes_read(), client.bytes_written()),
        (LEN as u64, LEN as u64)
    );
    drop(client);
    assert_eq!(server.await.unwrap(), (LEN as u64, LEN as u64));

    let a = tokio_net::UdpSocket::wrap(
        tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        Some(&monitor),
    );
    let b = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let b_addr = b.local_addr().unwrap();
    a.connect(b_addr).await.unwrap();
    a.send(b"ping!").await.unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = b.recv_from(&mut buf).await.unwrap();
    b.send_to(&buf[..n], from).await.unwrap();
    assert_eq!(a.recv(&mut buf).await.unwrap(), 5);
    let a_addr = a.local_addr().unwrap();
    drop(a);

    tokio::task::block_in_place(|| {
        capture
            .expect(&format!("tcp connect {addr}"))
            .attr("rustmon.net.bytes_sent", LEN as i64)
            .attr("rustmon.net.bytes_received", LEN as i64)
            .has_attr("rustmon.net.connect.duration")
            .one();
        capture
            .expect(&format!("tcp accept {addr}"))
            .attr("rustmon.net.bytes_sent", LEN as i64)
            .attr("rustmon.net.bytes_received", LEN as i64)
            .one();
        capture
            .expect(&format!("udp {a_addr}"))
            .attr("network.peer.port", i64::from(b_addr.port()))
            .attr("rustmon.net.bytes_sent", 5_i64)
            .attr("rustmon.net.bytes_received", 5_i64)
            .one();
    });
}

#[test]
fn disabled_monitoring_and_config_switch_records_nothing() {
    let (monitor, capture) = monitor();
    monitor
        .update_config("net", &serde_json::json!({ "connection_events": false }))
        .unwrap();
    let listener = std_net::TcpListener::wrap(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        Some(&monitor),
    );
    let addr = listener.local_addr().unwrap();
    let mut c = std_net::TcpStream::connect_with(addr, Some(&monitor)).unwrap();
    let (mut s, _) = listener.accept().unwrap();
    c.write_all(b"abc").unwrap();
    let mut buf = [0u8; 3];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(s.bytes_read(), 3, "counted even when not recorded");
    drop((c, s));
    monitor.disable();
    let quiet = std_net::UdpSocket::wrap(
        std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        Some(&monitor),
    );
    drop(quiet);
    drop(listener);
    monitor.enable();
    monitor.flush(Duration::from_secs(5));
    let names: Vec<_> = capture.events().into_iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        vec![format!("tcp listen {addr}")],
        "only the listener"
    );
    monitor.shutdown(Duration::from_secs(5));
}
