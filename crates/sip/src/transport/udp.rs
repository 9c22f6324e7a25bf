//! UDP: one socket per listen spec, a receive loop that reuses one buffer,
//! and a send path that writes straight from the caller when the socket has
//! room and queues to a sender task when it has not.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::{classify, shutdown_signal, Shared, TransportConfig};
use crate::peer::Peer;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// The receive buffer is carved into messages; a new block is allocated only
/// when the current one has less room left than a whole datagram.
const RECV_BLOCK: usize = 4 * MAX_DATAGRAM;

type Queued = (SocketAddr, Bytes);

pub(crate) struct Endpoint {
    pub(crate) socket: UdpSocket,
    pub(crate) local: SocketAddr,
    queue: mpsc::Sender<Queued>,
    /// Datagrams in the queue: while any wait, new ones queue behind them
    /// rather than overtake.
    queued: AtomicUsize,
}

impl Endpoint {
    pub(crate) fn bind(
        addr: SocketAddr,
        config: &TransportConfig,
    ) -> io::Result<(Endpoint, mpsc::Receiver<Queued>)> {
        let socket = UdpSocket::from_std(std_socket(addr, config.udp_socket_buffer)?)?;
        let local = socket.local_addr()?;
        let (queue, rx) = mpsc::channel(config.udp_send_queue.max(1));
        Ok((
            Endpoint {
                socket,
                local,
                queue,
                queued: AtomicUsize::new(0),
            },
            rx,
        ))
    }
}

fn std_socket(addr: SocketAddr, buffer: usize) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // The same on every platform (Linux defaults to dual-stack, Windows
        // does not), so `udp:0.0.0.0:5060` and `udp:[::]:5060` can coexist.
        socket.set_only_v6(true)?;
    }
    // A registration storm must not overflow the default buffers; the
    // kernel may cap the size, which is fine.
    if let Err(e) = socket.set_recv_buffer_size(buffer) {
        tracing::debug!(%addr, error = %e, "cannot enlarge UDP receive buffer");
    }
    if let Err(e) = socket.set_send_buffer_size(buffer) {
        tracing::debug!(%addr, error = %e, "cannot enlarge UDP send buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

pub(crate) fn spawn(shared: &Arc<Shared>, ep: Arc<Endpoint>, queue: mpsc::Receiver<Queued>) {
    tokio::spawn(recv_loop(shared.clone(), ep.clone()));
    tokio::spawn(send_loop(shared.clone(), ep, queue));
}

async fn recv_loop(shared: Arc<Shared>, ep: Arc<Endpoint>) {
    let Some(tx) = shared.incoming_sender() else {
        return;
    };
    let mut stop = pin!(shutdown_signal(shared.shutdown.clone()));
    let mut buf = BytesMut::with_capacity(RECV_BLOCK);
    loop {
        if buf.capacity() < MAX_DATAGRAM {
            buf.reserve(RECV_BLOCK);
        }
        let from = tokio::select! {
            _ = &mut stop => break,
            r = ep.socket.recv_buf_from(&mut buf) => match r {
                Ok((_, from)) => from,
                Err(e) => {
                    buf.clear();
                    recv_error(ep.local, e).await;
                    continue;
                }
            },
        };
        if buf.iter().all(|&c| c == b'\r' || c == b'\n') {
            // Keep-alive (RFC 3261 §7.5) or an empty datagram.
            buf.clear();
            continue;
        }
        if is_stun(&buf) {
            // RFC 5626 §4.4.2 STUN keep-alives are not SIP.
            tracing::trace!(%from, "STUN packet ignored");
            buf.clear();
            continue;
        }
        let from = Peer::udp(SocketAddr::new(from.ip().to_canonical(), from.port()));
        let item = classify(buf.split().freeze(), from, ep.local);
        tokio::select! {
            _ = &mut stop => break,
            r = tx.send(item) => if r.is_err() {
                // Nobody reads any more.
                break;
            },
        }
    }
    tracing::debug!(local = %ep.local, "UDP receive loop ended");
}

async fn recv_error(local: SocketAddr, e: io::Error) {
    match e.kind() {
        // Windows reports an ICMP port unreachable for an earlier send as a
        // reset on the next receive; it says nothing about this socket.
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::Interrupted => {
            tracing::trace!(%local, error = %e, "UDP receive");
        }
        _ => {
            tracing::warn!(%local, error = %e, "UDP receive failed");
            // Do not spin on a persistent error.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A STUN message (RFC 5389 §6): two zero bits, then the magic cookie at offset 4.
fn is_stun(b: &[u8]) -> bool {
    b.len() >= 20 && b[0] & 0xC0 == 0 && b[4..8] == [0x21, 0x12, 0xA4, 0x42]
}

async fn send_loop(shared: Arc<Shared>, ep: Arc<Endpoint>, mut queue: mpsc::Receiver<Queued>) {
    let mut stop = pin!(shutdown_signal(shared.shutdown.clone()));
    loop {
        let (to, bytes) = tokio::select! {
            _ = &mut stop => break,
            m = queue.recv() => match m {
                Some(m) => m,
                None => break,
            },
        };
        if let Err(e) = ep.socket.send_to(&bytes, to).await {
            shared.report(Peer::udp(to), &e, bytes);
        }
        ep.queued.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sends from the socket bound at `local` if given and present, else from
/// the first socket of the destination's address family.
pub(crate) fn send(shared: &Shared, local: Option<SocketAddr>, to: SocketAddr, bytes: Bytes) {
    let to = SocketAddr::new(to.ip().to_canonical(), to.port());
    let endpoints = match shared.udp.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let same_family = |ep: &&Arc<Endpoint>| ep.local.is_ipv4() == to.is_ipv4();
    let ep = local
        .and_then(|l| {
            endpoints
                .iter()
                .filter(same_family)
                .find(|ep| ep.local == l)
        })
        .or_else(|| endpoints.iter().find(same_family));
    let Some(ep) = ep else {
        let err = io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            "no UDP socket bound for this address family",
        );
        shared.report(Peer::udp(to), &err, bytes);
        return;
    };
    if ep.queued.load(Ordering::Acquire) == 0 {
        match ep.socket.try_send_to(&bytes, to) {
            Ok(_) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => {
                shared.report(Peer::udp(to), &e, bytes);
                return;
            }
        }
    }
    ep.queued.fetch_add(1, Ordering::AcqRel);
    if let Err(e) = ep.queue.try_send((to, bytes)) {
        ep.queued.fetch_sub(1, Ordering::AcqRel);
        let (reason, (_, bytes)) = match e {
            TrySendError::Full(m) => ("UDP send queue full", m),
            TrySendError::Closed(m) => ("UDP sender stopped", m),
        };
        shared.report(
            Peer::udp(to),
            &io::Error::new(io::ErrorKind::WouldBlock, reason),
            bytes,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_detection() {
        let mut b = [0u8; 20];
        b[1] = 1;
        b[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        assert!(is_stun(&b));
        assert!(!is_stun(&b[..19]));
        assert!(!is_stun(b"OPTIONS sip:a@b SIP/2.0\r\n"));
    }
}
