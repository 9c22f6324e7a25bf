//! TCP: listeners, accepted and outgoing connections in one map keyed by the
//! remote address. Each connection has a reader (framing, parsing, pongs,
//! idle timeout) and a writer task fed by a bounded queue.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::framing::{Frame, Framer};
use super::{classify, shutdown_signal, Malformed, Received, Shared};
use crate::peer::Peer;

/// Reads are done in chunks of this size.
const READ_CHUNK: usize = 16 * 1024;
/// A write that cannot progress this long means the peer stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// After an unframeable message is reported, the connection stays open this
/// long for the core's 400 to go out.
const LINGER: Duration = Duration::from_secs(1);
/// The RFC 5626 §3.5.1 pong.
const PONG: &[u8] = b"\r\n";

/// The map's entry for one connection: its writer queue.
#[derive(Clone)]
pub(crate) struct Conn {
    /// Tells this connection from a later one to the same address.
    id: u64,
    tx: mpsc::Sender<Bytes>,
}

pub(crate) fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Lets a restarted daemon bind while old connections sit in TIME_WAIT.
    // Not on Windows, where SO_REUSEADDR would let another process take the port.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, addr: SocketAddr) {
    // Held, unused, so the receive channel closes only after the listener has.
    let Some(_incoming) = shared.incoming_sender() else {
        return;
    };
    let mut stop = pin!(shutdown_signal(shared.shutdown.clone()));
    loop {
        tokio::select! {
            _ = &mut stop => break,
            r = listener.accept() => match r {
                Ok((stream, remote)) => {
                    let remote = canonical(remote);
                    if shared.conns.len() >= shared.config.max_tcp_connections {
                        tracing::warn!(%remote, "TCP connection refused: too many open");
                        drop(stream);
                        continue;
                    }
                    tracing::debug!(%remote, local = %addr, "TCP connection accepted");
                    let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
                    let (tx, rx) = mpsc::channel(shared.config.tcp_send_queue.max(1));
                    shared.conns.insert(remote, Conn { id, tx: tx.clone() });
                    tokio::spawn(run(shared.clone(), stream, remote, id, tx, rx));
                }
                Err(e) => {
                    // Typically out of file descriptors: wait for some to free up.
                    tracing::warn!(local = %addr, error = %e, "TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracing::debug!(local = %addr, "TCP listener closed");
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// Queues bytes on the connection to `to`, opening one if there is none.
pub(crate) fn send(shared: &Arc<Shared>, to: SocketAddr, bytes: Bytes) {
    let to = canonical(to);
    let existing = shared.conns.get(&to).map(|c| c.clone());
    let conn = match existing {
        Some(c) => c,
        None => shared
            .conns
            .entry(to)
            .or_insert_with(|| connect(shared, to))
            .clone(),
    };
    match conn.tx.try_send(bytes) {
        Ok(()) => {}
        Err(TrySendError::Full(bytes)) => {
            let err = io::Error::new(io::ErrorKind::WouldBlock, "TCP send queue full");
            shared.report(Peer::tcp(to), &err, bytes);
        }
        Err(TrySendError::Closed(bytes)) => {
            // The connection ended between the lookup and the send.
            remove(shared, to, conn.id);
            let err = io::Error::new(io::ErrorKind::NotConnected, "TCP connection closed");
            shared.report(Peer::tcp(to), &err, bytes);
        }
    }
}

/// Registers an outgoing connection whose queue fills while it connects.
fn connect(shared: &Arc<Shared>, to: SocketAddr) -> Conn {
    let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(shared.config.tcp_send_queue.max(1));
    shared
        .runtime
        .spawn(outgoing(shared.clone(), to, id, tx.clone(), rx));
    Conn { id, tx }
}

async fn outgoing(
    shared: Arc<Shared>,
    to: SocketAddr,
    id: u64,
    tx: mpsc::Sender<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
) {
    let timeout = shared.config.tcp_connect_timeout;
    let connected = tokio::select! {
        _ = shutdown_signal(shared.shutdown.clone()) => {
            Err(io::Error::new(io::ErrorKind::NotConnected, "transport shut down"))
        }
        r = tokio::time::timeout(timeout, TcpStream::connect(to)) => match r {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out")),
        },
    };
    match connected {
        Ok(stream) => {
            tracing::debug!(remote = %to, "TCP connection opened");
            run(shared, stream, to, id, tx, rx).await;
        }
        Err(e) => {
            tracing::warn!(remote = %to, error = %e, "TCP connect failed");
            remove(&shared, to, id);
            rx.close();
            while let Ok(bytes) = rx.try_recv() {
                shared.report(Peer::tcp(to), &e, bytes);
            }
        }
    }
}

fn remove(shared: &Shared, remote: SocketAddr, id: u64) {
    shared.conns.remove_if(&remote, |_, c| c.id == id);
}

/// Per-connection state shared by the reader and the writer.
struct ConnState {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last read or write.
    last: AtomicU64,
    /// Raised by the writer when the socket failed, to stop the reader.
    broken: Notify,
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            broken: Notify::new(),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn last_activity(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// Runs one established connection until it closes.
async fn run(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    id: u64,
    tx: mpsc::Sender<Bytes>,
    rx: mpsc::Receiver<Bytes>,
) {
    // SIP messages are small and latency matters more than packet count.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%remote, error = %e, "cannot set TCP_NODELAY");
    }
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let state = Arc::new(ConnState::new());
    let (rd, wr) = stream.into_split();
    tokio::spawn(write_loop(
        shared.clone(),
        wr,
        remote,
        id,
        rx,
        state.clone(),
    ));
    read_loop(&shared, rd, Peer::tcp(remote), local, tx, &state).await;
    // The writer ends, and the socket closes, once the queue is drained and
    // no sender is left.
    remove(&shared, remote, id);
    tracing::debug!(%remote, "TCP connection closed");
}

async fn write_loop(
    shared: Arc<Shared>,
    mut wr: OwnedWriteHalf,
    remote: SocketAddr,
    id: u64,
    mut rx: mpsc::Receiver<Bytes>,
    state: Arc<ConnState>,
) {
    while let Some(bytes) = rx.recv().await {
        let err = match tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(&bytes)).await {
            Ok(Ok(())) => {
                state.touch();
                continue;
            }
            Ok(Err(e)) => e,
            Err(_) => io::Error::new(io::ErrorKind::TimedOut, "TCP write timed out"),
        };
        tracing::debug!(%remote, error = %err, "TCP write failed");
        remove(&shared, remote, id);
        state.broken.notify_one();
        shared.report(Peer::tcp(remote), &err, bytes);
        // Nothing behind it can go out either.
        rx.close();
        while let Ok(bytes) = rx.try_recv() {
            shared.report(Peer::tcp(remote), &err, bytes);
        }
        return;
    }
    // Ignored: the peer may already be gone.
    let _ = wr.shutdown().await;
}

async fn read_loop(
    shared: &Shared,
    mut rd: OwnedReadHalf,
    from: Peer,
    local: SocketAddr,
    pong: mpsc::Sender<Bytes>,
    state: &ConnState,
) {
    let Some(tx) = shared.incoming_sender() else {
        return;
    };
    let idle = shared.config.tcp_idle_timeout;
    let mut stop = pin!(shutdown_signal(shared.shutdown.clone()));
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut framer = Framer::new();
    loop {
        // Hand over every complete frame before reading more.
        loop {
            let frame = match framer.next_frame(&buf) {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(%from, error = %e, "closing TCP connection: cannot frame the stream");
                    if let Some(head_len) = e.head_len() {
                        let bad = Received::Malformed(Malformed {
                            bytes: buf.split_to(head_len).freeze(),
                            error: e.parse_error(),
                            from,
                        });
                        tokio::select! {
                            _ = &mut stop => return,
                            r = tx.send(bad) => if r.is_err() { return },
                        }
                        tokio::select! {
                            _ = &mut stop => {}
                            _ = tokio::time::sleep(LINGER) => {}
                        }
                    }
                    return;
                }
            };
            match frame {
                Frame::NeedMore => break,
                Frame::KeepAlive => buf.advance(2),
                Frame::Ping => {
                    buf.advance(4);
                    if pong.try_send(Bytes::from_static(PONG)).is_err() {
                        tracing::debug!(%from, "pong dropped: send queue full");
                    }
                }
                Frame::Message(n) => {
                    let item = classify(buf.split_to(n).freeze(), from, local);
                    tokio::select! {
                        _ = &mut stop => return,
                        r = tx.send(item) => if r.is_err() { return },
                    }
                }
            }
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = state.broken.notified() => return,
            _ = tokio::time::sleep_until(state.last_activity() + idle) => {
                // The writer may have been busy meanwhile.
                if state.last_activity().elapsed() >= idle {
                    tracing::debug!(%from, "closing idle TCP connection");
                    return;
                }
            }
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => {
                    if !buf.is_empty() {
                        tracing::debug!(%from, pending = buf.len(), "TCP peer closed mid-message");
                    }
                    return;
                }
                Ok(_) => state.touch(),
                Err(e) => {
                    tracing::debug!(%from, error = %e, "TCP read failed");
                    return;
                }
            },
        }
    }
}
