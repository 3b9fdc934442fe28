//! 1 GiB loopback TCP transfer through the wrappers vs bare sockets, in the same run.
//!
//! Run: `cargo bench -p rustmon-net --bench throughput`
//!
//! Each iteration opens a connection on 127.0.0.1, writes 1 GiB in 128 KiB writes from one
//! thread (task) and reads it in 128 KiB reads on another, then closes. "wrapped" wraps both ends
//! (listener, accepted stream, connected stream) with monitoring enabled. Results: see the crate
//! README's performance table.

#![allow(missing_docs)]

use std::io::{Read, Write};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustmon_core::Monitor;
use rustmon_net::{std_net, tokio_net};

const TOTAL: u64 = 1 << 30;
const CHUNK: usize = 128 * 1024;

fn read_all(mut r: impl Read) -> u64 {
    let mut buf = vec![0u8; CHUNK];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => return n,
            Ok(k) => n += k as u64,
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn write_all(mut w: impl Write) {
    let buf = vec![7u8; CHUNK];
    let mut left = TOTAL;
    while left > 0 {
        let k = (left as usize).min(CHUNK);
        w.write_all(&buf[..k]).unwrap();
        left -= k as u64;
    }
}

fn std_bare() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let reader = std::thread::spawn(move || read_all(l.accept().unwrap().0));
    write_all(std::net::TcpStream::connect(addr).unwrap());
    assert_eq!(reader.join().unwrap(), TOTAL);
}

fn std_wrapped(monitor: &Monitor) {
    let l = std_net::TcpListener::wrap(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        Some(monitor),
    );
    let addr = l.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        read_all(s)
    });
    write_all(std_net::TcpStream::connect_with(addr, Some(monitor)).unwrap());
    assert_eq!(reader.join().unwrap(), TOTAL);
}

async fn tokio_transfer<S, R>(client: S, server: R)
where
    S: tokio::io::AsyncWrite + Unpin + Send + 'static,
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let reader = tokio::spawn(async move {
        let mut server = server;
        let mut buf = vec![0u8; CHUNK];
        let mut n = 0u64;
        loop {
            match server.read(&mut buf).await.unwrap() {
                0 => return n,
                k => n += k as u64,
            }
        }
    });
    let mut client = client;
    let buf = vec![7u8; CHUNK];
    let mut left = TOTAL;
    while left > 0 {
        let k = (left as usize).min(CHUNK);
        client.write_all(&buf[..k]).await.unwrap();
        left -= k as u64;
    }
    client.shutdown().await.unwrap();
    drop(client);
    assert_eq!(reader.await.unwrap(), TOTAL);
}

fn bench(c: &mut Criterion) {
    let monitor = Monitor::builder("bench").build().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let mut g = c.benchmark_group("tcp_1gib_loopback");
    g.throughput(Throughput::Bytes(TOTAL));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.warm_up_time(Duration::from_secs(2));
    g.bench_function("std_bare", |b| b.iter(std_bare));
    g.bench_function("std_wrapped", |b| b.iter(|| std_wrapped(&monitor)));
    g.bench_function("tokio_bare", |b| {
        b.iter(|| {
            rt.block_on(async {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = l.local_addr().unwrap();
                let client = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (server, _) = l.accept().await.unwrap();
                tokio_transfer(client, server).await;
            })
        })
    });
    g.bench_function("tokio_wrapped", |b| {
        b.iter(|| {
            rt.block_on(async {
                let l = tokio_net::TcpListener::wrap(
                    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
                    Some(&monitor),
                );
                let addr = l.local_addr().unwrap();
                let client = tokio_net::TcpStream::connect_with(addr, Some(&monitor))
                    .await
                    .unwrap();
                let (server, _) = l.accept().await.unwrap();
                tokio_transfer(client, server).await;
            })
        })
    });
    g.finish();
    monitor.shutdown(Duration::from_secs(2));
}

criterion_group!(benches, bench);
criterion_main!(benches);
