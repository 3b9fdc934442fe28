//! Monitored `std::net` sockets: [`TcpListener`], [`TcpStream`], [`UdpSocket`].

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};

use rustmon_core::Monitor;

use crate::common::{ConnState, ListenerState, UdpState, is_benign};

/// A `std::net::TcpListener` that records a listener event (`tcp listen {addr}`, finished when
/// the listener is dropped, with the number of accepted connections and accept errors), listener
/// metrics (active connections gauge, accepted and failed-accept counters), and hands out
/// monitored [`TcpStream`]s.
///
/// # Examples
/// ```
/// use std::io::{Read, Write};
/// use rustmon_net::std_net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap();
/// let mut client = TcpStream::connect(addr).unwrap();
/// let (mut server, _peer) = listener.accept().unwrap();
/// client.write_all(b"ping").unwrap();
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).unwrap();
/// assert_eq!(server.bytes_read(), 4);
/// ```
pub struct TcpListener {
    inner: std::net::TcpListener,
    state: ListenerState,
}

impl fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpListener")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl TcpListener {
    /// Binds like `std::net::TcpListener::bind`, recording into the global monitor.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Ok(TcpListener::wrap(std::net::TcpListener::bind(addr)?, None))
    }

    /// Wraps a listener, recording into `monitor` (or the global monitor when `None`).
    pub fn wrap(inner: std::net::TcpListener, monitor: Option<&Monitor>) -> TcpListener {
        let local = inner.local_addr().ok();
        TcpListener {
            state: ListenerState::new(monitor, local),
            inner,
        }
    }

    /// Accepts a connection, like `std::net::TcpListener::accept`.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match self.inner.accept() {
            Ok((stream, peer)) => {
                let state = self.state.accepted(Some(peer));
                Ok((TcpStream::from_parts(stream, state), peer))
            }
            Err(e) => {
                if !is_benign(&e) {
                    self.state.accept_error(&e);
                }
                Err(e)
            }
        }
    }

    /// An iterator over incoming connections, like `std::net::TcpListener::incoming`.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Sets non-blocking mode (`WouldBlock` from `accept` is then not counted as an error).
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.set_nonblocking(nonblocking)
    }

    /// The wrapped listener.
    pub fn get_ref(&self) -> &std::net::TcpListener {
        &self.inner
    }
}

/// Incoming connections of a [`TcpListener`]; never returns `None`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}

/// A `std::net::TcpStream` that counts the bytes read and written (plain integers in the wrapper:
/// no atomics, no copy of the data) and records one event per connection, finished when the
/// stream is dropped: `tcp accept {listener}` for accepted connections, `tcp connect {peer}` for
/// outbound ones (with `rustmon.net.connect.duration`), with `network.peer.*`,
/// `network.local.*`, `rustmon.net.bytes_received`, `rustmon.net.bytes_sent` and errors.
///
/// `Read` and `Write` are implemented on the wrapper (`&mut`), not on `&TcpStream`.
///
/// # Examples
/// ```
/// # let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// # let addr = l.local_addr().unwrap();
/// use std::io::Write;
/// let mut stream = rustmon_net::std_net::TcpStream::connect(addr).unwrap();
/// stream.write_all(b"hello").unwrap();
/// assert_eq!(stream.bytes_written(), 5);
/// ```
pub struct TcpStream {
    inner: std::net::TcpStream,
    read: u64,
    written: u64,
    state: ConnState,
}

impl fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpStream")
            .field("inner", &self.inner)
            .field("read", &self.read)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl TcpStream {
    pub(crate) fn from_parts(inner: std::net::TcpStream, state: ConnState) -> TcpStream {
        TcpStream {
            inner,
            read: 0,
            written: 0,
            state,
        }
    }

    /// Connects like `std::net::TcpStream::connect`, recording into the global monitor.
    pub fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        TcpStream::connect_with(addr, None)
    }

    /// Connects, recording into `monitor` (or the global monitor when `None`). The connection's
    /// event is a child of the current context and records how long `connect` took; a failed
    /// connect is recorded (and returned) too.
    pub fn connect_with(
        addr: impl ToSocketAddrs,
        monitor: Option<&Monitor>,
    ) -> io::Result<TcpStream> {
        let Some((mut state, start)) = ConnState::connecting(monitor) else {
            return std::net::TcpStream::connect(addr)
                .map(|s| TcpStream::from_parts(s, ConnState::none()));
        };
        let addrs: Vec<SocketAddr> = match addr.to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => {
                state.connect_failed(start.elapsed(), None, &e);
                return Err(e);
            }
        };
        match std::net::TcpStream::connect(&addrs[..]) {
            Ok(s) => {
                state.connected(start.elapsed(), s.local_addr().ok(), s.peer_addr().ok());
                Ok(TcpStream::from_parts(s, state))
            }
            Err(e) => {
                state.connect_failed(start.elapsed(), addrs.first().copied(), &e);
                Err(e)
            }
        }
    }

    /// Wraps a connected stream (no connect timing), recording into `monitor` (or the global
    /// monitor when `None`).
    pub fn wrap(inner: std::net::TcpStream, monitor: Option<&Monitor>) -> TcpStream {
        let state = ConnState::wrapped(monitor, inner.local_addr().ok(), inner.peer_addr().ok());
        TcpStream::from_parts(inner, state)
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.inner.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// Shuts down reading, writing or both, like `std::net::TcpStream::shutdown`.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.inner.shutdown(how)
    }

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// The wrapped stream (reads and writes through it are not counted).
    pub fn get_ref(&self) -> &std::net::TcpStream {
        &self.inner
    }

    /// The wrapped stream, mutably (reads and writes through it are not counted).
    pub fn get_mut(&mut self) -> &mut std::net::TcpStream {
        &mut self.inner
    }

    /// Ends the connection's event now and returns the plain stream.
    pub fn into_inner(mut self) -> std::net::TcpStream {
        self.state.finish(self.read, self.written);
        let mut this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again: `inner` is moved out exactly once, and
        // `state` (the only other field with drop glue) is dropped in place right after; the
        // remaining fields are plain integers.
        unsafe {
            let inner = std::ptr::read(&this.inner);
            std::ptr::drop_in_place(&mut this.state);
            inner
        }
    }

    #[inline]
    fn count(r: io::Result<usize>, counter: &mut u64, state: &mut ConnState) -> io::Result<usize> {
        match r {
            Ok(n) => {
                *counter += n as u64;
                Ok(n)
            }
            Err(e) => {
                if !is_benign(&e) {
                    state.error(&e);
                }
                Err(e)
            }
        }
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.state.finish(self.read, self.written);
    }
}

impl Read for TcpStream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.inner.read(buf);
        TcpStream::count(r, &mut self.read, &mut self.state)
    }

    #[inline]
    fn read_vectored(&mut self, bufs: &mut [IoSliceMut<'_>]) -> io::Result<usize> {
        let r = self.inner.read_vectored(bufs);
        TcpStream::count(r, &mut self.read, &mut self.state)
    }
}

impl Write for TcpStream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        TcpStream::count(r, &mut self.written, &mut self.state)
    }

    #[inline]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let r = self.inner.write_vectored(bufs);
        TcpStream::count(r, &mut self.written, &mut self.state)
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `std::net::UdpSocket` that counts datagrams and bytes sent and received (relaxed atomics:
/// the socket is used through `&self`) and records one event per socket (`udp {local}`), finished
/// when it is dropped.
///
/// # Examples
/// ```
/// use rustmon_net::std_net::UdpSocket;
/// let a = UdpSocket::bind("127.0.0.1:0").unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").unwrap();
/// a.send_to(b"hi", b.local_addr().unwrap()).unwrap();
/// let mut buf = [0; 8];
/// let (n, from) = b.recv_from(&mut buf).unwrap();
/// assert_eq!((n, from), (2, a.local_addr().unwrap()));
/// ```
pub struct UdpSocket {
    inner: std::net::UdpSocket,
    state: Option<Box<UdpState>>,
}

impl fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpSocket")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl UdpSocket {
    /// Binds like `std::net::UdpSocket::bind`, recording into the global monitor.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        Ok(UdpSocket::wrap(std::net::UdpSocket::bind(addr)?, None))
    }

    /// Wraps a socket, recording into `monitor` (or the global monitor when `None`).
    pub fn wrap(inner: std::net::UdpSocket, monitor: Option<&Monitor>) -> UdpSocket {
        let state = UdpState::new(monitor, inner.local_addr().ok());
        UdpSocket { inner, state }
    }

    #[inline]
    fn sent(&self, r: io::Result<usize>) -> io::Result<usize> {
        if let Some(s) = &self.state {
            match &r {
                Ok(n) => s.on_send(*n),
                Err(e) if !is_benign(e) => s.error(e),
                Err(_) => {}
            }
        }
        r
    }

    #[inline]
    fn received<T>(&self, r: io::Result<(usize, T)>) -> io::Result<(usize, T)> {
        if let Some(s) = &self.state {
            match &r {
                Ok((n, _)) => s.on_recv(*n),
                Err(e) if !is_benign(e) => s.error(e),
                Err(_) => {}
            }
        }
        r
    }

    /// Sends a datagram to `addr`.
    pub fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        self.sent(self.inner.send_to(buf, addr))
    }

    /// Receives a datagram and its sender's address.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.received(self.inner.recv_from(buf))
    }

    /// Connects the socket to a peer (for [`send`](Self::send) and [`recv`](Self::recv)).
    pub fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.connect(addr)?;
        if let (Some(s), Ok(peer)) = (&self.state, self.inner.peer_addr()) {
            s.connected(peer);
        }
        Ok(())
    }

    /// Sends a datagram to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sent(self.inner.send(buf))
    }

    /// Receives a datagram from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.received(self.inner.recv(buf).map(|n| (n, ())))
            .map(|(n, ())| n)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The wrapped socket (traffic through it is not counted).
    pub fn get_ref(&self) -> &std::net::UdpSocket {
        &self.inner
    }
}
