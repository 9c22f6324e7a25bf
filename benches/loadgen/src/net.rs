//! Batched UDP I/O: `recvmmsg`/`sendmmsg` on Linux, one syscall per datagram
//! elsewhere. Sockets are non-blocking; readiness comes from `wait_readable`.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// Datagrams handled per batched syscall.
pub const BATCH: usize = 64;
/// Largest datagram we accept (SIP over UDP stays well below).
pub const MAX_DGRAM: usize = 4096;

/// Receive buffers reused across calls.
pub struct RecvBatch {
    bufs: Vec<[u8; MAX_DGRAM]>,
    lens: Vec<usize>,
    froms: Vec<SocketAddr>,
    count: usize,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch {
            bufs: vec![[0u8; MAX_DGRAM]; BATCH],
            lens: vec![0; BATCH],
            froms: vec![SocketAddr::from(([0, 0, 0, 0], 0)); BATCH],
            count: 0,
        }
    }
}

impl RecvBatch {
    pub fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        (&self.bufs[i][..self.lens[i]], self.froms[i])
    }

    /// Fills the batch from `sock`; returns how many arrived (0 when none).
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        #[cfg(target_os = "linux")]
        {
            self.count = linux::recvmmsg(sock, &mut self.bufs, &mut self.lens, &mut self.froms)?;
        }
        #[cfg(not(target_os = "linux"))]
        {
            while self.count < BATCH {
                match sock.recv_from(&mut self.bufs[self.count]) {
                    Ok((n, from)) => {
                        self.lens[self.count] = n;
                        self.froms[self.count] = from;
                        self.count += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(self.count)
    }
}

/// Datagrams queued for one socket, sent together by `flush`.
#[derive(Default)]
pub struct SendBatch {
    data: Vec<u8>,
    spans: Vec<(usize, usize, SocketAddr)>,
}

impl SendBatch {
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Appends a datagram built in place by `fill`.
    pub fn push_with(&mut self, to: SocketAddr, fill: impl FnOnce(&mut Vec<u8>)) {
        let start = self.data.len();
        fill(&mut self.data);
        self.spans.push((start, self.data.len(), to));
    }

    /// Sends everything queued; datagrams the kernel refuses are counted as
    /// dropped (returned) rather than retried: UDP may lose them anyway.
    pub fn flush(&mut self, sock: &UdpSocket) -> usize {
        let mut dropped = 0;
        let mut i = 0;
        while i < self.spans.len() {
            let end = (i + BATCH).min(self.spans.len());
            let chunk = &self.spans[i..end];
            #[cfg(target_os = "linux")]
            let sent = linux::sendmmsg(sock, &self.data, chunk);
            #[cfg(not(target_os = "linux"))]
            let sent = {
                let mut n = 0;
                for &(a, b, to) in chunk {
                    if sock.send_to(&self.data[a..b], to).is_err() {
                        break;
                    }
                    n += 1;
                }
                n
            };
            if sent == 0 {
                // The first datagram failed (buffer full or refused): drop it.
                dropped += 1;
                i += 1;
            } else {
                i += sent;
            }
        }
        self.data.clear();
        self.spans.clear();
        dropped
    }
}

/// Waits until one of `socks` is readable or `timeout` passes; returns the
/// indexes of readable sockets in `ready`.
pub fn wait_readable(socks: &[UdpSocket], timeout: Duration, ready: &mut Vec<usize>) {
    ready.clear();
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let mut fds: Vec<libc::pollfd> = socks
            .iter()
            .map(|s| libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: fds is a valid array of pollfd of the given length; ts outlives the call.
        #[cfg(target_os = "linux")]
        let n = unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        #[cfg(not(target_os = "linux"))]
        let n = {
            let _ = ts;
            // SAFETY: as above.
            unsafe {
                libc::poll(
                    fds.as_mut_ptr(),
                    fds.len() as libc::nfds_t,
                    timeout.as_millis().max(1) as libc::c_int,
                )
            }
        };
        if n > 0 {
            ready.extend(
                fds.iter()
                    .enumerate()
                    .filter(|(_, f)| f.revents != 0)
                    .map(|(i, _)| i),
            );
        }
    }
    #[cfg(not(unix))]
    {
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
        ready.extend(0..socks.len());
    }
}

/// A non-blocking UDP socket with large buffers (bursts of RTP at startup).
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind(addr)?;
    sock.set_nonblocking(true)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let size: libc::c_int = 4 << 20;
        for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
            // SAFETY: valid fd and a pointer to a c_int of the declared size.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
    Ok(sock)
}

#[cfg(target_os = "linux")]
mod linux {
    use super::{SocketAddr, MAX_DGRAM};
    use std::io;
    use std::net::{SocketAddrV4, SocketAddrV6, UdpSocket};
    use std::os::fd::AsRawFd;

    fn to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match ss.ss_family as libc::c_int {
            libc::AF_INET => {
                // SAFETY: family says this storage holds a sockaddr_in.
                let a: &libc::sockaddr_in =
                    unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    u32::from_be(a.sin_addr.s_addr).into(),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: family says this storage holds a sockaddr_in6.
                let a: &libc::sockaddr_in6 =
                    unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    a.sin6_addr.s6_addr.into(),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    fn from_std(addr: &SocketAddr, ss: &mut libc::sockaddr_storage) -> libc::socklen_t {
        match addr {
            SocketAddr::V4(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
                let sin: &mut libc::sockaddr_in =
                    unsafe { &mut *(ss as *mut _ as *mut libc::sockaddr_in) };
                sin.sin_family = libc::AF_INET as libc::sa_family_t;
                sin.sin_port = a.port().to_be();
                sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(a) => {
                // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
                let sin: &mut libc::sockaddr_in6 =
                    unsafe { &mut *(ss as *mut _ as *mut libc::sockaddr_in6) };
                sin.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sin.sin6_port = a.port().to_be();
                sin.sin6_addr.s6_addr = a.ip().octets();
                sin.sin6_flowinfo = a.flowinfo();
                sin.sin6_scope_id = a.scope_id();
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }

    pub fn recvmmsg(
        sock: &UdpSocket,
        bufs: &mut [[u8; MAX_DGRAM]],
        lens: &mut [usize],
        froms: &mut [SocketAddr],
    ) -> io::Result<usize> {
        let n = bufs.len();
        // SAFETY: zeroed sockaddr_storage/mmsghdr are valid plain-data values.
        let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; n];
        let mut iovs: Vec<libc::iovec> = bufs
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: MAX_DGRAM,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..n)
            .map(|i| {
                // SAFETY: as above.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen =
                    std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_hdr.msg_iov = &mut iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: every pointer in msgs refers to live buffers of the declared sizes.
        let got = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if got < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock
                || e.raw_os_error() == Some(libc::ECONNREFUSED)
            {
                Ok(0)
            } else {
                Err(e)
            };
        }
        let mut out = 0;
        for i in 0..got as usize {
            if let Some(a) = to_std(&addrs[i]) {
                lens[out] = msgs[i].msg_len as usize;
                froms[out] = a;
                if out != i {
                    let (lo, hi) = bufs.split_at_mut(i);
                    lo[out][..lens[out]].copy_from_slice(&hi[0][..lens[out]]);
                }
                out += 1;
            }
        }
        Ok(out)
    }

    pub fn sendmmsg(sock: &UdpSocket, data: &[u8], chunk: &[(usize, usize, SocketAddr)]) -> usize {
        let n = chunk.len();
        // SAFETY: zeroed sockaddr_storage/mmsghdr are valid plain-data values.
        let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; n];
        let mut lens = Vec::with_capacity(n);
        for (i, (_, _, to)) in chunk.iter().enumerate() {
            lens.push(from_std(to, &mut addrs[i]));
        }
        let mut iovs: Vec<libc::iovec> = chunk
            .iter()
            .map(|&(a, b, _)| libc::iovec {
                iov_base: data[a..b].as_ptr() as *mut libc::c_void,
                iov_len: b - a,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..n)
            .map(|i| {
                // SAFETY: as above.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = lens[i];
                h.msg_hdr.msg_iov = &mut iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: pointers refer to live buffers; the kernel only reads the payloads.
        let sent = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if sent < 0 {
            0
        } else {
            sent as usize
        }
    }
}
