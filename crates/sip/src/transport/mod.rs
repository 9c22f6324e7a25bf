//! The transports (RFC 3261 §18): a thin tokio layer that owns the UDP
//! sockets and TCP connections, frames and parses what arrives, stamps the
//! top Via of requests, and hands messages to the sans-IO core through a
//! channel. Sending never blocks the caller: datagrams go out with
//! `try_send_to` (or through a per-socket queue when the socket is full),
//! stream messages through a per-connection writer task.
//!
//! Failures to send are logged and published on [`TransportHandle::send_errors`]
//! (a broadcast channel: subscribe before sending to see them).
//!
//! [`TransportHandle::shutdown`] (or dropping every handle) stops the
//! listeners and closes the connections; the receiver returned by
//! [`TransportHandle::bind`] then yields `None` once every task has ended.

mod framing;
mod tcp;
mod udp;
mod via;

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use thiserror::Error;
use tokio::sync::{broadcast, mpsc, watch};

use crate::message::Message;
use crate::parse::{parse_message, ParseError};
use crate::peer::{ListenSpec, Peer, TransportKind};

pub use framing::{Frame, FrameError, Framer, MAX_BODY, MAX_HEAD};
pub use via::stamp_via;

/// A message that arrived and parsed. Requests have their top Via stamped.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub msg: Message,
    pub from: Peer,
    /// The local address it arrived on: for UDP the socket's bound address
    /// (an unspecified IP for a wildcard bind; pass it to
    /// [`TransportHandle::send_from`] to answer from the same socket), for
    /// TCP the connection's local address.
    pub local: SocketAddr,
}

/// Octets that arrived but are not a SIP message; the core decides whether
/// a 400 is possible.
#[derive(Debug, Clone)]
pub struct Malformed {
    pub bytes: Bytes,
    pub error: ParseError,
    pub from: Peer,
}

// Nearly every item is a message: boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Received {
    Message(Incoming),
    Malformed(Malformed),
}

/// A message that could not be sent.
#[derive(Debug, Clone, Error)]
#[error("sending to {to} failed: {reason}")]
pub struct SendError {
    pub to: Peer,
    pub kind: io::ErrorKind,
    pub reason: String,
    /// The message that was dropped, so the core can tell which transaction
    /// failed (RFC 3261 §17.1.4 transport errors).
    pub bytes: Bytes,
}

/// Tunables; [`TransportConfig::default`] holds the values used by [`TransportHandle::bind`].
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// A TCP connection with no traffic either way for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// How long an outgoing TCP connection may take to establish.
    pub tcp_connect_timeout: Duration,
    /// Messages waiting for one TCP connection's writer before sends fail.
    pub tcp_send_queue: usize,
    /// Datagrams waiting for one UDP socket to become writable before sends fail.
    pub udp_send_queue: usize,
    /// Received messages waiting for the core; when full, reading pauses
    /// (UDP then drops in the kernel, TCP pushes back on the peer).
    pub receive_queue: usize,
    /// Requested kernel socket buffer size for UDP sockets (best effort).
    pub udp_socket_buffer: usize,
    /// Accepted connections beyond this many open ones are closed at once.
    pub max_tcp_connections: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            tcp_idle_timeout: Duration::from_secs(600),
            tcp_connect_timeout: Duration::from_secs(10),
            tcp_send_queue: 256,
            udp_send_queue: 4096,
            receive_queue: 4096,
            udp_socket_buffer: 4 * 1024 * 1024,
            max_tcp_connections: 50_000,
        }
    }
}

/// RFC 3261 §18.1.1: the path MTU is taken to be 1500 octets.
pub const ASSUMED_PATH_MTU: usize = 1500;

/// RFC 3261 §18.1.1: a request within 200 octets of the path MTU (so larger
/// than 1300 octets) must not go over UDP. Returns the transport to use.
pub fn transport_for_request(len: usize, preferred: TransportKind) -> TransportKind {
    match preferred {
        TransportKind::Udp if len > ASSUMED_PATH_MTU - 200 => TransportKind::Tcp,
        other => other,
    }
}

/// The shared handle on every socket and connection. Cheap to clone.
#[derive(Clone)]
pub struct TransportHandle {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    // Dropping the last handle drops this sender, which stops every task.
    shutdown: watch::Sender<bool>,
}

/// What the tasks share. It must not own the shutdown sender, or the tasks
/// would keep themselves alive.
pub(crate) struct Shared {
    pub(crate) config: TransportConfig,
    pub(crate) local: Vec<ListenSpec>,
    /// Emptied on shutdown so the sockets close once their tasks end.
    pub(crate) udp: RwLock<Vec<Arc<udp::Endpoint>>>,
    pub(crate) conns: DashMap<SocketAddr, tcp::Conn>,
    /// Where received messages go; taken on shutdown so the channel closes.
    pub(crate) incoming: Mutex<Option<mpsc::Sender<Received>>>,
    pub(crate) errors: broadcast::Sender<SendError>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) closed: AtomicBool,
    pub(crate) next_conn_id: AtomicU64,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Shared {
    pub(crate) fn report(&self, to: Peer, err: &io::Error, bytes: Bytes) {
        tracing::debug!(%to, error = %err, "send failed");
        // No subscriber is fine: the failure was logged.
        let _ = self.errors.send(SendError {
            to,
            kind: err.kind(),
            reason: err.to_string(),
            bytes,
        });
    }

    pub(crate) fn incoming_sender(&self) -> Option<mpsc::Sender<Received>> {
        self.incoming.lock().ok().and_then(|g| g.clone())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl TransportHandle {
    /// Binds every listen spec (UDP sockets and TCP listeners) with the
    /// default [`TransportConfig`]. Received messages (parsed) go to the channel.
    pub async fn bind(
        specs: &[ListenSpec],
    ) -> io::Result<(TransportHandle, mpsc::Receiver<Received>)> {
        TransportHandle::bind_with(specs, TransportConfig::default()).await
    }

    /// Like [`TransportHandle::bind`] with explicit tunables.
    pub async fn bind_with(
        specs: &[ListenSpec],
        config: TransportConfig,
    ) -> io::Result<(TransportHandle, mpsc::Receiver<Received>)> {
        let (in_tx, in_rx) = mpsc::channel(config.receive_queue.max(1));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (errors, _) = broadcast::channel(1024);

        let mut local = Vec::with_capacity(specs.len());
        let mut udp_sockets = Vec::new();
        let mut listeners = Vec::new();
        for spec in specs {
            let with_context =
                |e: io::Error| io::Error::new(e.kind(), format!("cannot bind {spec}: {e}"));
            match spec.transport {
                TransportKind::Udp => {
                    let (endpoint, queue) =
                        udp::Endpoint::bind(spec.addr, &config).map_err(with_context)?;
                    local.push(ListenSpec {
                        transport: TransportKind::Udp,
                        addr: endpoint.local,
                    });
                    udp_sockets.push((Arc::new(endpoint), queue));
                }
                TransportKind::Tcp => {
                    let listener = tcp::listen(spec.addr).map_err(with_context)?;
                    let addr = listener.local_addr().map_err(with_context)?;
                    local.push(ListenSpec {
                        transport: TransportKind::Tcp,
                        addr,
                    });
                    listeners.push((listener, addr));
                }
            }
        }

        let (endpoints, queues): (Vec<_>, Vec<_>) = udp_sockets.into_iter().unzip();
        let shared = Arc::new(Shared {
            config,
            local,
            udp: RwLock::new(endpoints.clone()),
            conns: DashMap::new(),
            incoming: Mutex::new(Some(in_tx)),
            errors,
            shutdown: shutdown_rx,
            closed: AtomicBool::new(false),
            next_conn_id: AtomicU64::new(1),
            runtime: tokio::runtime::Handle::current(),
        });
        for (endpoint, queue) in endpoints.into_iter().zip(queues) {
            udp::spawn(&shared, endpoint, queue);
        }
        for (listener, addr) in listeners {
            tokio::spawn(tcp::accept_loop(shared.clone(), listener, addr));
        }
        for spec in &shared.local {
            tracing::info!(%spec, "listening");
        }
        Ok((
            TransportHandle {
                inner: Arc::new(Inner {
                    shared,
                    shutdown: shutdown_tx,
                }),
            },
            in_rx,
        ))
    }

    /// Sends bytes to a peer without waiting. UDP goes from the first bound
    /// socket of the peer's address family; TCP uses the connection to that
    /// address or opens one. Never blocks, never panics: failures are logged
    /// and published on [`TransportHandle::send_errors`].
    pub fn send(&self, to: Peer, bytes: Bytes) {
        self.send_inner(None, to, bytes);
    }

    /// Like [`TransportHandle::send`], but over UDP from the socket bound to
    /// `local` when there is one (RFC 3581 §4: a response leaves from where
    /// its request arrived).
    pub fn send_from(&self, local: SocketAddr, to: Peer, bytes: Bytes) {
        self.send_inner(Some(local), to, bytes);
    }

    /// Sends every message of `batch` in order, as [`TransportHandle::send`]
    /// would, and empties it. Datagrams for one socket leave in one system
    /// call where the platform has one (`sendmmsg` on Linux).
    pub fn send_all(&self, batch: &mut Vec<(Peer, Bytes)>) {
        let shared = &self.inner.shared;
        let all_udp = batch.iter().all(|(p, _)| p.transport == TransportKind::Udp);
        if batch.len() < 2 || !all_udp || shared.is_closed() {
            for (to, bytes) in batch.drain(..) {
                self.send_inner(None, to, bytes);
            }
            return;
        }
        udp::send_many(shared, batch);
    }

    fn send_inner(&self, local: Option<SocketAddr>, to: Peer, bytes: Bytes) {
        let shared = &self.inner.shared;
        if shared.is_closed() {
            let err = io::Error::new(io::ErrorKind::NotConnected, "transport is shut down");
            shared.report(to, &err, bytes);
            return;
        }
        match to.transport {
            TransportKind::Udp => udp::send(shared, local, to.addr, bytes),
            TransportKind::Tcp => tcp::send(shared, to.addr, bytes),
        }
    }

    /// Failures of [`TransportHandle::send`], from the moment of subscribing.
    pub fn send_errors(&self) -> broadcast::Receiver<SendError> {
        self.inner.shared.errors.subscribe()
    }

    /// The actual bound addresses (port 0 resolved), in the order of the specs.
    pub fn local_addrs(&self) -> Vec<ListenSpec> {
        self.inner.shared.local.clone()
    }

    /// The number of open (or opening) TCP connections.
    pub fn tcp_connections(&self) -> usize {
        self.inner.shared.conns.len()
    }

    /// Stops listeners and closes connections (queued messages are still
    /// written first). Idempotent.
    pub fn shutdown(&self) {
        let shared = &self.inner.shared;
        if shared.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Ignored when every task has already gone.
        let _ = self.inner.shutdown.send(true);
        shared.conns.clear();
        match shared.udp.write() {
            Ok(mut g) => g.clear(),
            Err(poisoned) => poisoned.into_inner().clear(),
        }
        if let Ok(mut g) = shared.incoming.lock() {
            g.take();
        }
        tracing::info!("transports shut down");
    }
}

/// Parses a received message (stamping a request's top Via with its real
/// source) or wraps it as malformed.
pub(crate) fn classify(bytes: Bytes, from: Peer, local: SocketAddr) -> Received {
    match parse_message(&bytes) {
        Ok(mut msg) => {
            if msg.is_request() {
                stamp_via(&mut msg, from.addr);
            }
            Received::Message(Incoming { msg, from, local })
        }
        Err(error) => {
            tracing::debug!(%from, %error, "malformed message");
            Received::Malformed(Malformed { bytes, error, from })
        }
    }
}

/// Resolves when the transports shut down (or every handle is gone).
pub(crate) async fn shutdown_signal(mut rx: watch::Receiver<bool>) {
    // An error means the sender is gone, which is a shutdown too.
    let _ = rx.wait_for(|&stop| stop).await;
}
