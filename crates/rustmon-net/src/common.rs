//! What the std and tokio wrappers share: the monitor to record into, listener state and
//! metrics, and per-connection / per-socket events.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use rustmon_core::metrics::{Metric, MetricData, Number};
use rustmon_core::{ConfigHandle, Event, KeyValue, Kind, Monitor, now_unix_nanos};

use crate::config::NetConfig;

/// The plugin name events are tagged with.
pub(crate) const PLUGIN: &str = "net";

/// The monitor to record into: `monitor`, else the global one; `None` when monitoring is off.
pub(crate) fn resolve(monitor: Option<&Monitor>) -> Option<(Monitor, Arc<NetConfig>)> {
    let m = match monitor {
        Some(m) => m.clone(),
        None => rustmon_core::global()?.clone(),
    };
    if !m.is_enabled() || rustmon_core::context::is_suppressed() {
        return None;
    }
    let config: ConfigHandle<NetConfig> = m.config::<NetConfig>();
    let config = arc_swap_guard(config);
    Some((m, config))
}

fn arc_swap_guard(h: ConfigHandle<NetConfig>) -> Arc<NetConfig> {
    Arc::clone(&h.get())
}

/// How many distinct names are interned; past that, names are allocated per event.
const MAX_INTERNED: usize = 1024;

/// Interns an event name (`tcp accept 127.0.0.1:8080`): names are per listener or per peer,
/// low-cardinality, and connections are frequent.
pub(crate) fn intern(name: String) -> Cow<'static, str> {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = names.get(name.as_str()) {
        return Cow::Borrowed(found);
    }
    if names.len() >= MAX_INTERNED {
        return Cow::Owned(name);
    }
    // Leaked on purpose, bounded by MAX_INTERNED.
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    Cow::Borrowed(leaked)
}

/// A low-cardinality name for an I/O error kind, used as the error's type.
pub(crate) fn error_kind(e: &io::Error) -> &'static str {
    use io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection_refused",
        ConnectionReset => "connection_reset",
        ConnectionAborted => "connection_aborted",
        BrokenPipe => "broken_pipe",
        TimedOut => "timeout",
        UnexpectedEof => "unexpected_eof",
        AddrInUse => "addr_in_use",
        AddrNotAvailable => "addr_not_available",
        PermissionDenied => "permission_denied",
        NotConnected => "not_connected",
        InvalidInput => "invalid_input",
        _ => "io",
    }
}

/// Whether an error is a normal condition of non-blocking I/O rather than a failure.
#[inline]
pub(crate) fn is_benign(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn addr_attrs(event: &mut Event, prefix: Side, addr: SocketAddr) {
    match prefix {
        Side::Local => {
            event.set("network.local.address", addr.ip().to_string());
            event.set("network.local.port", i64::from(addr.port()));
        }
        Side::Peer => {
            event.set("network.peer.address", addr.ip().to_string());
            event.set("network.peer.port", i64::from(addr.port()));
        }
    }
}

#[derive(Copy, Clone)]
enum Side {
    Local,
    Peer,
}

/// A listener's shared state: counters behind the active-connections gauge.
pub(crate) struct ListenerShared {
    monitor: Monitor,
    config: Arc<NetConfig>,
    local: Option<SocketAddr>,
    conn_name: Cow<'static, str>,
    start_unix_nanos: u64,
    accepted: AtomicU64,
    accept_errors: AtomicU64,
    active: AtomicI64,
}

impl ListenerShared {
    fn metric_attrs(&self) -> Vec<KeyValue> {
        let mut attrs = vec![KeyValue::new("network.transport", "tcp")];
        if let Some(local) = self.local {
            attrs.push(KeyValue::new(
                "network.local.address",
                local.ip().to_string(),
            ));
            attrs.push(KeyValue::new("network.local.port", i64::from(local.port())));
        }
        attrs
    }

    /// Hands the listener's gauges and counters to the monitor's listeners.
    fn emit(&self) {
        if !self.config.listener_metrics {
            return;
        }
        let now = now_unix_nanos();
        let attrs = self.metric_attrs();
        let metric = |name: &'static str, description: &'static str, data| Metric {
            name: Cow::Borrowed(name),
            description: Cow::Borrowed(description),
            unit: Cow::Borrowed("{connection}"),
            attributes: attrs.clone(),
            start_unix_nanos: self.start_unix_nanos,
            time_unix_nanos: now,
            data,
        };
        let cumulative = |v: u64| MetricData::Sum {
            value: Number::I64(i64::try_from(v).unwrap_or(i64::MAX)),
            monotonic: true,
            delta: false,
        };
        self.monitor.record_metrics([
            metric(
                "rustmon.net.connections.active",
                "Connections accepted by the listener and still open",
                MetricData::Gauge(Number::I64(self.active.load(Ordering::Relaxed))),
            ),
            metric(
                "rustmon.net.connections.accepted",
                "Connections the listener accepted",
                cumulative(self.accepted.load(Ordering::Relaxed)),
            ),
            metric(
                "rustmon.net.accept.errors",
                "Failed accepts on the listener",
                cumulative(self.accept_errors.load(Ordering::Relaxed)),
            ),
        ]);
    }
}

/// A monitored listener's state: its event and shared counters. `None` inside when not monitoring.
pub(crate) struct ListenerState {
    shared: Option<(Arc<ListenerShared>, Mutex<Event>)>,
}

impl ListenerState {
    pub(crate) fn new(monitor: Option<&Monitor>, local: Option<SocketAddr>) -> ListenerState {
        let Some((monitor, config)) = resolve(monitor) else {
            return ListenerState { shared: None };
        };
        let local_name = local.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let mut event = monitor
            .start_event_with_parent(
                Kind::Network,
                intern(format!("tcp listen {local_name}")),
                None,
            )
            .with_plugin(PLUGIN);
        event.set("network.transport", "tcp");
        if let Some(local) = local {
            addr_attrs(&mut event, Side::Local, local);
        }
        let shared = Arc::new(ListenerShared {
            conn_name: intern(format!("tcp accept {local_name}")),
            start_unix_nanos: now_unix_nanos(),
            monitor,
            config,
            local,
            accepted: AtomicU64::new(0),
            accept_errors: AtomicU64::new(0),
            active: AtomicI64::new(0),
        });
        shared.emit();
        ListenerState {
            shared: Some((shared, Mutex::new(event))),
        }
    }

    /// Records an accepted connection; returns its state.
    pub(crate) fn accepted(&self, peer: Option<SocketAddr>) -> ConnState {
        let Some((shared, _)) = &self.shared else {
            return ConnState::none();
        };
        shared.accepted.fetch_add(1, Ordering::Relaxed);
        shared.active.fetch_add(1, Ordering::Relaxed);
        shared.emit();
        if !shared.config.connection_events {
            return ConnState {
                event: Event::inert(),
                listener: Some(shared.clone()),
                errors: 0,
            };
        }
        let mut event = shared
            .monitor
            .start_event_with_parent(Kind::Network, shared.conn_name.clone(), None)
            .with_plugin(PLUGIN);
        event.set("network.transport", "tcp");
        event.set("network.io.direction", "receive");
        if let Some(local) = shared.local {
            addr_attrs(&mut event, Side::Local, local);
        }
        if let Some(peer) = peer {
            addr_attrs(&mut event, Side::Peer, peer);
        }
        ConnState {
            event,
            listener: Some(shared.clone()),
            errors: 0,
        }
    }

    /// Records a failed accept.
    pub(crate) fn accept_error(&self, e: &io::Error) {
        if let Some((shared, event)) = &self.shared {
            if shared.accept_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                event
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .record_error(error_kind(e), e);
            }
            shared.emit();
        }
    }
}

impl Drop for ListenerState {
    fn drop(&mut self) {
        if let Some((shared, event)) = self.shared.take() {
            let mut event = event.into_inner().unwrap_or_else(PoisonError::into_inner);
            event.set(
                "rustmon.net.connections.accepted",
                shared.accepted.load(Ordering::Relaxed),
            );
            event.set(
                "rustmon.net.accept.errors",
                shared.accept_errors.load(Ordering::Relaxed),
            );
            event.finish();
        }
    }
}

/// A connection's event and error count; the byte counters live in the wrapper itself.
pub(crate) struct ConnState {
    event: Event,
    listener: Option<Arc<ListenerShared>>,
    errors: u64,
}

impl ConnState {
    pub(crate) const fn none() -> ConnState {
        ConnState {
            event: Event::inert(),
            listener: None,
            errors: 0,
        }
    }

    /// Starts an outbound connection's event, before connecting (child of the current context).
    pub(crate) fn connecting(monitor: Option<&Monitor>) -> Option<(ConnState, std::time::Instant)> {
        let (monitor, config) = resolve(monitor)?;
        if !config.connection_events {
            return None;
        }
        let mut event = monitor
            .start_event(Kind::Network, "tcp connect")
            .with_plugin(PLUGIN);
        if !event.is_recording() {
            return None;
        }
        event.set("network.transport", "tcp");
        event.set("network.io.direction", "transmit");
        Some((
            ConnState {
                event,
                listener: None,
                errors: 0,
            },
            std::time::Instant::now(),
        ))
    }

    /// Records the outcome of `connect`.
    pub(crate) fn connected(
        &mut self,
        took: Duration,
        local: Option<SocketAddr>,
        peer: Option<SocketAddr>,
    ) {
        if !self.event.is_recording() {
            return;
        }
        self.event
            .set("rustmon.net.connect.duration", took.as_secs_f64());
        if let Some(peer) = peer {
            self.event.set_name(intern(format!("tcp connect {peer}")));
            addr_attrs(&mut self.event, Side::Peer, peer);
        }
        if let Some(local) = local {
            addr_attrs(&mut self.event, Side::Local, local);
        }
    }

    /// Records a failed `connect` and finishes the event.
    pub(crate) fn connect_failed(
        mut self,
        took: Duration,
        target: Option<SocketAddr>,
        e: &io::Error,
    ) {
        self.event
            .set("rustmon.net.connect.duration", took.as_secs_f64());
        if let Some(t) = target {
            self.event.set_name(intern(format!("tcp connect {t}")));
            addr_attrs(&mut self.event, Side::Peer, t);
        }
        self.event.set("error.type", error_kind(e));
        self.event.record_error(error_kind(e), e);
    }

    /// An event for a stream wrapped after the fact (no connect timing).
    pub(crate) fn wrapped(
        monitor: Option<&Monitor>,
        local: Option<SocketAddr>,
        peer: Option<SocketAddr>,
    ) -> ConnState {
        let Some((mut state, _)) = ConnState::connecting(monitor) else {
            return ConnState::none();
        };
        if let Some(peer) = peer {
            state
                .event
                .set_name(intern(format!("tcp connection {peer}")));
            addr_attrs(&mut state.event, Side::Peer, peer);
        }
        if let Some(local) = local {
            addr_attrs(&mut state.event, Side::Local, local);
        }
        state
    }

    /// Records an I/O error (the first one with its message; all of them counted).
    #[cold]
    pub(crate) fn error(&mut self, e: &io::Error) {
        self.errors += 1;
        if self.errors == 1 {
            self.event.record_error(error_kind(e), e);
        }
    }

    /// Finishes the connection's event with its byte counts.
    pub(crate) fn finish(&mut self, read: u64, written: u64) {
        if let Some(l) = self.listener.take() {
            l.active.fetch_sub(1, Ordering::Relaxed);
            l.emit();
        }
        let mut event = std::mem::replace(&mut self.event, Event::inert());
        if event.is_recording() {
            event.set("rustmon.net.bytes_received", read);
            event.set("rustmon.net.bytes_sent", written);
            if self.errors > 0 {
                event.set("rustmon.net.errors", self.errors);
            }
            event.finish();
        }
    }
}

/// A UDP socket's event and counters (atomics: UDP sockets are used through `&self`, often shared
/// between threads).
pub(crate) struct UdpState {
    event: Mutex<Event>,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) datagrams_sent: AtomicU64,
    pub(crate) datagrams_received: AtomicU64,
    errors: AtomicU64,
}

impl UdpState {
    pub(crate) fn new(
        monitor: Option<&Monitor>,
        local: Option<SocketAddr>,
    ) -> Option<Box<UdpState>> {
        let (monitor, config) = resolve(monitor)?;
        if !config.connection_events {
            return None;
        }
        let local_name = local.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let mut event = monitor
            .start_event_with_parent(Kind::Network, intern(format!("udp {local_name}")), None)
            .with_plugin(PLUGIN);
        event.set("network.transport", "udp");
        if let Some(local) = local {
            addr_attrs(&mut event, Side::Local, local);
        }
        Some(Box::new(UdpState {
            event: Mutex::new(event),
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            datagrams_sent: AtomicU64::new(0),
            datagrams_received: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }))
    }

    #[inline]
    pub(crate) fn on_send(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
        self.datagrams_sent.fetch_add(1, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn on_recv(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
        self.datagrams_received.fetch_add(1, Ordering::Relaxed);
    }

    #[cold]
    pub(crate) fn error(&self, e: &io::Error) {
        if self.errors.fetch_add(1, Ordering::Relaxed) == 0 {
            self.event
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record_error(error_kind(e), e);
        }
    }

    /// Records the peer of a connected socket.
    pub(crate) fn connected(&self, peer: SocketAddr) {
        addr_attrs(
            &mut self.event.lock().unwrap_or_else(PoisonError::into_inner),
            Side::Peer,
            peer,
        );
    }
}

impl Drop for UdpState {
    fn drop(&mut self) {
        let event = self.event.get_mut().unwrap_or_else(PoisonError::into_inner);
        let mut event = std::mem::replace(event, Event::inert());
        event.set("rustmon.net.bytes_sent", self.sent.load(Ordering::Relaxed));
        event.set(
            "rustmon.net.bytes_received",
            self.received.load(Ordering::Relaxed),
        );
        event.set(
            "rustmon.net.datagrams_sent",
            self.datagrams_sent.load(Ordering::Relaxed),
        );
        event.set(
            "rustmon.net.datagrams_received",
            self.datagrams_received.load(Ordering::Relaxed),
        );
        let errors = self.errors.load(Ordering::Relaxed);
        if errors > 0 {
            event.set("rustmon.net.errors", errors);
        }
        event.finish();
    }
}
