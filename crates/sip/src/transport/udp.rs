//! UDP: one socket per listen spec, a receive loop that takes a burst of
//! datagrams per wakeup (`recvmmsg` on Linux), and a send path that writes straight from the caller when the socket has
//! room and queues to a sender task when it has not.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::{classify, shutdown_signal, Shared, TransportConfig};
use crate::peer::Peer;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams taken from the socket per wakeup: under load one system call
/// returns a burst, and the receive loop hands the whole burst on at once.
const BATCH: usize = 16;

type Queued = (SocketAddr, Bytes);

pub(crate) struct Endpoint {
    pub(crate) socket: sock::UdpIo,
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
        let socket = sock::UdpIo::new(std_socket(addr, config.udp_socket_buffer)?)?;
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
    let mut receiver = batch::Receiver::new();
    let mut burst: Vec<(SocketAddr, Bytes)> = Vec::with_capacity(BATCH);
    'outer: loop {
        burst.clear();
        tokio::select! {
            _ = &mut stop => break,
            r = receiver.recv(&ep.socket, &mut burst) => if let Err(e) = r {
                recv_error(ep.local, e).await;
                continue;
            },
        }
        for (from, bytes) in burst.drain(..) {
            if bytes.iter().all(|&c| c == b'\r' || c == b'\n') {
                // Keep-alive (RFC 3261 §7.5) or an empty datagram.
                continue;
            }
            if is_stun(&bytes) {
                // RFC 5626 §4.4.2 STUN keep-alives are not SIP.
                tracing::trace!(%from, "STUN packet ignored");
                continue;
            }
            let from = Peer::udp(SocketAddr::new(from.ip().to_canonical(), from.port()));
            let item = classify(bytes, from, ep.local);
            tokio::select! {
                _ = &mut stop => break 'outer,
                r = tx.send(item) => if r.is_err() {
                    // Nobody reads any more.
                    break 'outer;
                },
            }
        }
    }
    tracing::debug!(local = %ep.local, "UDP receive loop ended");
}

/// Receiving a burst of datagrams per readiness event. Each datagram is
/// copied into its own exact-size buffer, so what the core keeps (a
/// transaction's key, a binding) pins a few hundred octets, not a shared block.
mod batch {
    use std::io;
    use std::net::SocketAddr;

    use bytes::Bytes;

    use super::sock::UdpIo;
    use super::{BATCH, MAX_DATAGRAM};

    /// Linux: one `recvmmsg` takes up to [`BATCH`] datagrams.
    #[cfg(target_os = "linux")]
    pub(super) struct Receiver {
        /// [`BATCH`] slots of [`MAX_DATAGRAM`] octets; only the pages
        /// datagrams touch become resident.
        buf: Vec<u8>,
        addrs: Vec<libc::sockaddr_storage>,
    }

    #[cfg(target_os = "linux")]
    impl Receiver {
        pub(super) fn new() -> Self {
            // SAFETY: sockaddr_storage is plain old data; all zeroes is valid.
            let zero: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            Receiver {
                buf: vec![0; BATCH * MAX_DATAGRAM],
                addrs: vec![zero; BATCH],
            }
        }

        /// Waits until the socket is readable, then appends at least one
        /// datagram (at most [`BATCH`]) to `out`.
        pub(super) async fn recv(
            &mut self,
            socket: &UdpIo,
            out: &mut Vec<(SocketAddr, Bytes)>,
        ) -> io::Result<()> {
            let fd = socket.raw_fd();
            loop {
                let mut got = 0;
                let r = socket
                    .readable_io(|| {
                        got = self.recv_now(fd, out)?;
                        if got < BATCH {
                            // The queue was drained: saying so lets tokio clear
                            // the readiness now instead of after one more system
                            // call that would fail with EAGAIN. A datagram that
                            // arrives meanwhile raises a new readiness event.
                            Err(io::ErrorKind::WouldBlock.into())
                        } else {
                            Ok(())
                        }
                    })
                    .await;
                match r {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if got > 0 {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        fn recv_now(
            &mut self,
            fd: std::os::fd::RawFd,
            out: &mut Vec<(SocketAddr, Bytes)>,
        ) -> io::Result<usize> {
            // SAFETY: all-zero iovec and mmsghdr values are valid (null
            // pointers, zero lengths); every pointer set below points into
            // `self.buf`, `self.addrs` or `iovs`, which outlive the call.
            let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            let base = self.buf.as_mut_ptr();
            for (i, (iov, hdr)) in iovs.iter_mut().zip(hdrs.iter_mut()).enumerate() {
                // SAFETY: slot i lies within `buf` (BATCH * MAX_DATAGRAM octets).
                iov.iov_base = unsafe { base.add(i * MAX_DATAGRAM) }.cast();
                iov.iov_len = MAX_DATAGRAM;
                hdr.msg_hdr.msg_name = std::ptr::from_mut(&mut self.addrs[i]).cast();
                hdr.msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                hdr.msg_hdr.msg_iov = std::ptr::from_mut(iov);
                hdr.msg_hdr.msg_iovlen = 1;
            }
            // SAFETY: `hdrs` holds BATCH initialised headers as set up above.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    hdrs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            for (i, hdr) in hdrs.iter().enumerate().take(n) {
                let len = (hdr.msg_len as usize).min(MAX_DATAGRAM);
                let Some(from) = socket_addr(&self.addrs[i]) else {
                    continue;
                };
                let start = i * MAX_DATAGRAM;
                out.push((from, Bytes::copy_from_slice(&self.buf[start..start + len])));
            }
            Ok(n)
        }
    }

    #[cfg(target_os = "linux")]
    fn socket_addr(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
        use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
        match libc::c_int::from(s.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let a: &libc::sockaddr_in = unsafe { &*std::ptr::from_ref(s).cast() };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let a: &libc::sockaddr_in6 = unsafe { &*std::ptr::from_ref(s).cast() };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// Elsewhere: `recv_from` until the socket would block or the batch is full.
    #[cfg(not(target_os = "linux"))]
    pub(super) struct Receiver {
        buf: Vec<u8>,
    }

    #[cfg(not(target_os = "linux"))]
    impl Receiver {
        pub(super) fn new() -> Self {
            Receiver {
                buf: vec![0; MAX_DATAGRAM],
            }
        }

        pub(super) async fn recv(
            &mut self,
            socket: &UdpIo,
            out: &mut Vec<(SocketAddr, Bytes)>,
        ) -> io::Result<()> {
            loop {
                let buf = &mut self.buf;
                let got = &mut *out;
                let r = socket
                    .readable_io(|| {
                        while got.len() < BATCH {
                            match socket.try_recv_from(buf) {
                                Ok((n, from)) => {
                                    got.push((from, Bytes::copy_from_slice(&buf[..n])));
                                }
                                // Clears the readiness; the burst goes out below.
                                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(e),
                                // Report the error on the next call, after the burst.
                                Err(_) if !got.is_empty() => return Ok(()),
                                Err(e) => return Err(e),
                            }
                        }
                        Ok(())
                    })
                    .await;
                match r {
                    Ok(()) => return Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if !out.is_empty() {
                            return Ok(());
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// The socket as the runtime watches it.
#[cfg(unix)]
mod sock {
    use std::io;
    use std::net::SocketAddr;
    use std::os::fd::{AsRawFd, RawFd};

    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    fn register(
        socket: std::net::UdpSocket,
        interest: Interest,
    ) -> io::Result<AsyncFd<std::net::UdpSocket>> {
        // SAFETY: the socket owns its descriptor and is moved into the
        // `AsyncFd`, so the descriptor stays open and the same until the
        // `AsyncFd` is dropped.
        Ok(unsafe { AsyncFd::register_with_interest(socket, interest) }?)
    }

    /// Registered for reading only. A standing write interest (what
    /// `tokio::net::UdpSocket` registers) is edge-triggered on every
    /// datagram that leaves the send buffer: on a busy server that is one
    /// extra wake-up of the event loop per response sent, for nothing, since
    /// sends go straight out and only wait when the buffer is full.
    pub(crate) struct UdpIo {
        fd: AsyncFd<std::net::UdpSocket>,
    }

    impl UdpIo {
        /// `socket` must be non-blocking.
        pub(crate) fn new(socket: std::net::UdpSocket) -> io::Result<UdpIo> {
            Ok(UdpIo {
                fd: register(socket, Interest::READABLE)?,
            })
        }

        pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
            self.fd.get_ref().local_addr()
        }

        #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
        pub(crate) fn raw_fd(&self) -> RawFd {
            self.fd.as_raw_fd()
        }

        /// Waits until readable, then runs `f` once; a `WouldBlock` from `f`
        /// clears the readiness and is returned.
        pub(crate) async fn readable_io<R>(
            &self,
            f: impl FnOnce() -> io::Result<R>,
        ) -> io::Result<R> {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|_| f()) {
                Ok(r) => r,
                Err(_would_block) => Err(io::ErrorKind::WouldBlock.into()),
            }
        }

        #[cfg_attr(target_os = "linux", allow(dead_code))]
        pub(crate) fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            self.fd.get_ref().recv_from(buf)
        }

        /// Sends now or fails with `WouldBlock`.
        pub(crate) fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
            self.fd.get_ref().send_to(buf, to)
        }

        /// Sends, waiting for room in the send buffer. The write interest is
        /// registered (on a duplicate descriptor, since one descriptor is
        /// registered once) only while waiting.
        pub(crate) async fn send_to_when_ready(
            &self,
            buf: &[u8],
            to: SocketAddr,
        ) -> io::Result<usize> {
            match self.try_send_to(buf, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            let dup = register(self.fd.get_ref().try_clone()?, Interest::WRITABLE)?;
            loop {
                let mut guard = dup.writable().await?;
                if let Ok(r) = guard.try_io(|s| s.get_ref().send_to(buf, to)) {
                    return r;
                }
            }
        }
    }
}

/// Elsewhere tokio's socket, with the same surface.
#[cfg(not(unix))]
mod sock {
    use std::io;
    use std::net::SocketAddr;

    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    pub(crate) struct UdpIo {
        socket: UdpSocket,
    }

    impl UdpIo {
        pub(crate) fn new(socket: std::net::UdpSocket) -> io::Result<UdpIo> {
            Ok(UdpIo {
                socket: UdpSocket::from_std(socket)?,
            })
        }

        pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
            self.socket.local_addr()
        }

        pub(crate) async fn readable_io<R>(
            &self,
            f: impl FnOnce() -> io::Result<R>,
        ) -> io::Result<R> {
            self.socket.readable().await?;
            self.socket.try_io(Interest::READABLE, f)
        }

        pub(crate) fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
            self.socket.try_recv_from(buf)
        }

        pub(crate) fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
            self.socket.try_send_to(buf, to)
        }

        pub(crate) async fn send_to_when_ready(
            &self,
            buf: &[u8],
            to: SocketAddr,
        ) -> io::Result<usize> {
            self.socket.send_to(buf, to).await
        }
    }
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
        if let Err(e) = ep.socket.send_to_when_ready(&bytes, to).await {
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

/// Sends a run of UDP datagrams from the first socket of their address
/// family: one `sendmmsg` per [`BATCH`] on Linux; whatever it does not take
/// (a full buffer, an error) goes through [`send`], which queues or reports it.
pub(crate) fn send_many(shared: &Shared, batch: &mut Vec<(Peer, Bytes)>) {
    #[cfg(target_os = "linux")]
    {
        let mut start = 0;
        while start < batch.len() {
            let sent = send_run(shared, &batch[start..]);
            if sent == 0 {
                let (to, bytes) = batch[start].clone();
                send(shared, None, to.addr, bytes);
                start += 1;
            } else {
                start += sent;
            }
        }
        batch.clear();
    }
    #[cfg(not(target_os = "linux"))]
    for (to, bytes) in batch.drain(..) {
        send(shared, None, to.addr, bytes);
    }
}

/// Sends the longest prefix of `items` (at most [`BATCH`]) that shares one
/// address family with one `sendmmsg`; returns how many left (0: let
/// [`send`] handle the first one).
#[cfg(target_os = "linux")]
fn send_run(shared: &Shared, items: &[(Peer, Bytes)]) -> usize {
    let Some((first, _)) = items.first() else {
        return 0;
    };
    let v4 = first.addr.ip().to_canonical().is_ipv4();
    let run = items
        .iter()
        .take(BATCH)
        .take_while(|(p, _)| p.addr.ip().to_canonical().is_ipv4() == v4)
        .count();
    if run < 2 {
        return 0;
    }
    let ep = {
        let endpoints = match shared.udp.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match endpoints.iter().find(|ep| ep.local.is_ipv4() == v4) {
            Some(ep) => ep.clone(),
            None => return 0,
        }
    };
    if ep.queued.load(Ordering::Acquire) != 0 {
        // Earlier datagrams wait in the queue: these go behind them.
        return 0;
    }
    let mut addrs: [socket2::SockAddr; BATCH] =
        std::array::from_fn(|_| socket2::SockAddr::from(SocketAddr::from(([0, 0, 0, 0], 0))));
    // SAFETY: all-zero iovec and mmsghdr values are valid (null pointers,
    // zero lengths); each pointer set below points into `items` or `addrs`,
    // which outlive the call, and the kernel only reads through them.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for i in 0..run {
        let (to, bytes) = &items[i];
        addrs[i] =
            socket2::SockAddr::from(SocketAddr::new(to.addr.ip().to_canonical(), to.addr.port()));
        iovs[i].iov_base = bytes.as_ptr() as *mut libc::c_void;
        iovs[i].iov_len = bytes.len();
        hdrs[i].msg_hdr.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
        hdrs[i].msg_hdr.msg_namelen = addrs[i].len();
        hdrs[i].msg_hdr.msg_iov = std::ptr::from_mut(&mut iovs[i]);
        hdrs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `hdrs` holds `run` initialised headers as set up above.
    let n = unsafe {
        libc::sendmmsg(
            ep.socket.raw_fd(),
            hdrs.as_mut_ptr(),
            run as libc::c_uint,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    // On an error nothing left; `send` retries the first and reports it.
    usize::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::peer::ListenSpec;
    use crate::transport::TransportHandle;

    fn receiver() -> (std::net::UdpSocket, SocketAddr) {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let a = s.local_addr().unwrap();
        (s, a)
    }

    fn read_n(s: &std::net::UdpSocket, n: usize, from: SocketAddr) -> Vec<String> {
        let mut buf = [0u8; 100];
        (0..n)
            .map(|_| {
                let (len, src) = s.recv_from(&mut buf).unwrap();
                assert_eq!(src, from);
                String::from_utf8(buf[..len].to_vec()).unwrap()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_batch_leaves_in_order_and_a_bad_destination_is_reported() {
        let spec: ListenSpec = "udp:127.0.0.1:0".parse().unwrap();
        let (h, _rx) = TransportHandle::bind(&[spec]).await.unwrap();
        let ours = h.local_addrs()[0].addr;
        let mut errors = h.send_errors();
        let ((a, a_addr), (b, b_addr)) = (receiver(), receiver());
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        // More than one system call's worth, two peers interleaved, and an
        // IPv6 destination that no bound socket can reach in the middle.
        let mut batch = Vec::new();
        for i in 0..2 * BATCH {
            let to = if i % 2 == 0 { a_addr } else { b_addr };
            batch.push((Peer::udp(to), Bytes::from(format!("m{i}"))));
            if i == BATCH / 2 {
                batch.push((Peer::udp(v6), Bytes::from_static(b"lost")));
            }
        }
        h.send_all(&mut batch);
        assert!(batch.is_empty());
        let even: Vec<String> = (0..2 * BATCH).step_by(2).map(|i| format!("m{i}")).collect();
        let odd: Vec<String> = (1..2 * BATCH).step_by(2).map(|i| format!("m{i}")).collect();
        assert_eq!(read_n(&a, BATCH, ours), even);
        assert_eq!(read_n(&b, BATCH, ours), odd);
        let err = errors.try_recv().unwrap();
        assert_eq!(
            (err.to.addr, err.kind),
            (v6, io::ErrorKind::AddrNotAvailable)
        );
        assert_eq!(&err.bytes[..], b"lost");
    }

    #[tokio::test]
    async fn a_single_message_and_an_empty_batch() {
        let spec: ListenSpec = "udp:127.0.0.1:0".parse().unwrap();
        let (h, _rx) = TransportHandle::bind(&[spec]).await.unwrap();
        let ours = h.local_addrs()[0].addr;
        let (a, a_addr) = receiver();
        h.send_all(&mut Vec::new());
        h.send_all(&mut vec![(Peer::udp(a_addr), Bytes::from_static(b"one"))]);
        assert_eq!(read_n(&a, 1, ours), ["one"]);
    }

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
