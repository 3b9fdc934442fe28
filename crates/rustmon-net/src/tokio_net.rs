//! Monitored `tokio::net` sockets: [`TcpListener`], [`TcpStream`], [`UdpSocket`].

use std::fmt;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use rustmon_core::Monitor;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::ToSocketAddrs;

use crate::common::{ConnState, ListenerState, UdpState, is_benign};

/// A `tokio::net::TcpListener` that records a listener event, listener metrics (active
/// connections gauge, accepted and failed-accept counters) and hands out monitored
/// [`TcpStream`]s; see [`std_net::TcpListener`](crate::std_net::TcpListener) for what is
/// recorded.
///
/// # Examples
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// use rustmon_net::tokio_net::{TcpListener, TcpStream};
/// let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let addr = listener.local_addr().unwrap();
/// let mut client = TcpStream::connect(addr).await.unwrap();
/// let (mut server, _) = listener.accept().await.unwrap();
/// client.write_all(b"ping").await.unwrap();
/// let mut buf = [0; 4];
/// server.read_exact(&mut buf).await.unwrap();
/// assert_eq!(server.bytes_read(), 4);
/// # });
/// ```
pub struct TcpListener {
    inner: tokio::net::TcpListener,
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
    /// Binds like `tokio::net::TcpListener::bind`, recording into the global monitor.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<TcpListener> {
        Ok(TcpListener::wrap(
            tokio::net::TcpListener::bind(addr).await?,
            None,
        ))
    }

    /// Wraps a listener, recording into `monitor` (or the global monitor when `None`).
    pub fn wrap(inner: tokio::net::TcpListener, monitor: Option<&Monitor>) -> TcpListener {
        let local = inner.local_addr().ok();
        TcpListener {
            state: ListenerState::new(monitor, local),
            inner,
        }
    }

    /// Accepts a connection, like `tokio::net::TcpListener::accept`.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection, like `tokio::net::TcpListener::poll_accept`.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match ready!(self.inner.poll_accept(cx)) {
            Ok((stream, peer)) => {
                let state = self.state.accepted(Some(peer));
                Poll::Ready(Ok((TcpStream::from_parts(stream, state), peer)))
            }
            Err(e) => {
                if !is_benign(&e) {
                    self.state.accept_error(&e);
                }
                Poll::Ready(Err(e))
            }
        }
    }

    /// A stream of incoming connections (`futures_core::Stream`); never ends.
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The wrapped listener.
    pub fn get_ref(&self) -> &tokio::net::TcpListener {
        &self.inner
    }
}

/// Incoming connections of a [`TcpListener`], as a `futures_core::Stream`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl futures_core::Stream for Incoming<'_> {
    type Item = io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.listener
            .poll_accept(cx)
            .map(|r| Some(r.map(|(s, _)| s)))
    }
}

/// A `tokio::net::TcpStream` that counts the bytes read and written (plain integers in the
/// wrapper, no copy of the data) and records one event per connection, finished when the stream is
/// dropped; see [`std_net::TcpStream`](crate::std_net::TcpStream) for what is recorded.
///
/// # Examples
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// # let addr = l.local_addr().unwrap();
/// use tokio::io::AsyncWriteExt;
/// let mut stream = rustmon_net::tokio_net::TcpStream::connect(addr).await.unwrap();
/// stream.write_all(b"hello").await.unwrap();
/// assert_eq!(stream.bytes_written(), 5);
/// # });
/// ```
pub struct TcpStream {
    inner: tokio::net::TcpStream,
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
    fn from_parts(inner: tokio::net::TcpStream, state: ConnState) -> TcpStream {
        TcpStream {
            inner,
            read: 0,
            written: 0,
            state,
        }
    }

    /// Connects like `tokio::net::TcpStream::connect`, recording into the global monitor.
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        TcpStream::connect_with(addr, None).await
    }

    /// Connects, recording into `monitor` (or the global monitor when `None`). The connection's
    /// event is a child of the current context and records how long `connect` took (name
    /// resolution included); a failed connect is recorded (and returned) too.
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        monitor: Option<&Monitor>,
    ) -> io::Result<TcpStream> {
        let Some((mut state, start)) = ConnState::connecting(monitor) else {
            return tokio::net::TcpStream::connect(addr)
                .await
                .map(|s| TcpStream::from_parts(s, ConnState::none()));
        };
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                state.connected(start.elapsed(), s.local_addr().ok(), s.peer_addr().ok());
                Ok(TcpStream::from_parts(s, state))
            }
            Err(e) => {
                state.connect_failed(start.elapsed(), None, &e);
                Err(e)
            }
        }
    }

    /// Wraps a connected stream (no connect timing), recording into `monitor` (or the global
    /// monitor when `None`).
    pub fn wrap(inner: tokio::net::TcpStream, monitor: Option<&Monitor>) -> TcpStream {
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

    /// Sets `TCP_NODELAY`.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.inner.set_nodelay(nodelay)
    }

    /// The wrapped stream (traffic through it is not counted).
    pub fn get_ref(&self) -> &tokio::net::TcpStream {
        &self.inner
    }

    #[inline]
    fn count(
        r: Poll<io::Result<usize>>,
        counter: &mut u64,
        state: &mut ConnState,
    ) -> Poll<io::Result<usize>> {
        match &r {
            Poll::Ready(Ok(n)) => *counter += *n as u64,
            Poll::Ready(Err(e)) if !is_benign(e) => state.error(e),
            _ => {}
        }
        r
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        self.state.finish(self.read, self.written);
    }
}

impl AsyncRead for TcpStream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &r {
            Poll::Ready(Ok(())) => this.read += (buf.filled().len() - before) as u64,
            Poll::Ready(Err(e)) if !is_benign(e) => this.state.error(e),
            _ => {}
        }
        r
    }
}

impl AsyncWrite for TcpStream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        TcpStream::count(r, &mut this.written, &mut this.state)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        TcpStream::count(r, &mut this.written, &mut this.state)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A `tokio::net::UdpSocket` that counts datagrams and bytes sent and received and records one
/// event per socket; see [`std_net::UdpSocket`](crate::std_net::UdpSocket).
///
/// # Examples
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use rustmon_net::tokio_net::UdpSocket;
/// let a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
/// let b = UdpSocket::bind("127.0.0.1:0").await.unwrap();
/// a.send_to(b"hi", b.local_addr().unwrap()).await.unwrap();
/// let mut buf = [0; 8];
/// let (n, _) = b.recv_from(&mut buf).await.unwrap();
/// assert_eq!(n, 2);
/// # });
/// ```
pub struct UdpSocket {
    inner: tokio::net::UdpSocket,
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
    /// Binds like `tokio::net::UdpSocket::bind`, recording into the global monitor.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<UdpSocket> {
        Ok(UdpSocket::wrap(
            tokio::net::UdpSocket::bind(addr).await?,
            None,
        ))
    }

    /// Wraps a socket, recording into `monitor` (or the global monitor when `None`).
    pub fn wrap(inner: tokio::net::UdpSocket, monitor: Option<&Monitor>) -> UdpSocket {
        let state = UdpState::new(monitor, inner.local_addr().ok());
        UdpSocket { inner, state }
    }

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
    pub async fn send_to(&self, buf: &[u8], addr: impl ToSocketAddrs) -> io::Result<usize> {
        self.sent(self.inner.send_to(buf, addr).await)
    }

    /// Receives a datagram and its sender's address.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.received(self.inner.recv_from(buf).await)
    }

    /// Connects the socket to a peer.
    pub async fn connect(&self, addr: impl ToSocketAddrs) -> io::Result<()> {
        self.inner.connect(addr).await?;
        if let (Some(s), Ok(peer)) = (&self.state, self.inner.peer_addr()) {
            s.connected(peer);
        }
        Ok(())
    }

    /// Sends a datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.sent(self.inner.send(buf).await)
    }

    /// Receives a datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.received(self.inner.recv(buf).await.map(|n| (n, ())))
            .map(|(n, ())| n)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The wrapped socket (traffic through it is not counted).
    pub fn get_ref(&self) -> &tokio::net::UdpSocket {
        &self.inner
    }
}
