//! Batched datagram I/O for the relay workers: one buffer pool per worker,
//! filled by `recvmmsg` and sent from by `sendmmsg` on Linux, by a
//! `recv_from`/`send_to` loop elsewhere.

use std::io;
use std::net::SocketAddr;

use mio::net::UdpSocket;

/// Datagrams received per syscall.
pub(crate) const BATCH: usize = 32;
/// Largest datagram relayed whole; RTP over Ethernet stays well under it.
pub(crate) const MTU: usize = 2048;

/// The receive buffers of one worker and the datagrams queued to send.
pub(crate) struct Batch {
    bufs: Box<[[u8; MTU]; BATCH]>,
    lens: [usize; BATCH],
    from: [Option<SocketAddr>; BATCH],
    /// `(buffer index, destination)` to send, in order.
    out: Vec<(usize, SocketAddr)>,
    #[cfg(target_os = "linux")]
    sys: linux::Sys,
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            bufs: Box::new([[0; MTU]; BATCH]),
            lens: [0; BATCH],
            from: [None; BATCH],
            out: Vec::with_capacity(BATCH),
            #[cfg(target_os = "linux")]
            sys: linux::Sys::new(),
        }
    }

    /// Datagram `i` of the last receive and its source.
    pub fn packet(&self, i: usize) -> (&[u8], Option<SocketAddr>) {
        (&self.bufs[i][..self.lens[i]], self.from[i])
    }

    pub fn queue(&mut self, i: usize, to: SocketAddr) {
        self.out.push((i, to));
    }

    /// Whether a receive of `n` datagrams may have left more in the socket.
    /// Linux's `recvmmsg` stops early only on an empty queue, and a datagram
    /// arriving after that raises a new edge; elsewhere read to `WouldBlock`.
    pub fn maybe_more(n: usize) -> bool {
        !cfg!(target_os = "linux") || n == BATCH
    }

    /// Receives up to [`BATCH`] datagrams; `Ok(0)` when none is waiting.
    pub fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        {
            linux::recv(self, sock)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let mut n = 0;
            while n < BATCH {
                match sock.recv_from(&mut self.bufs[n]) {
                    Ok((len, from)) => {
                        self.lens[n] = len;
                        self.from[n] = Some(from);
                        n += 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    // Windows reports ICMP port-unreachable of an earlier send here.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => continue,
                    Err(e) if n == 0 => return Err(e),
                    Err(_) => break,
                }
            }
            Ok(n)
        }
    }

    /// Sends the queued datagrams from `sock` and clears the queue; returns
    /// how many could not be sent.
    pub fn flush(&mut self, sock: &UdpSocket) -> u64 {
        if self.out.is_empty() {
            return 0;
        }
        #[cfg(target_os = "linux")]
        let failed = linux::send(self, sock);
        #[cfg(not(target_os = "linux"))]
        let failed = {
            let mut failed = 0;
            for &(i, to) in &self.out {
                if let Err(e) = sock.send_to(&self.bufs[i][..self.lens[i]], to) {
                    tracing::trace!(%to, error = %e, "relay send failed");
                    failed += 1;
                }
            }
            failed
        };
        self.out.clear();
        failed
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem;
    use std::os::fd::AsRawFd;

    use mio::net::UdpSocket;
    use socket2::SockAddr;

    use super::{Batch, BATCH, MTU};

    /// Message headers and address storage for the syscalls, reused.
    pub struct Sys {
        names: Box<[libc::sockaddr_storage; BATCH]>,
        iovs: [libc::iovec; BATCH],
        msgs: [libc::mmsghdr; BATCH],
    }

    // SAFETY: the raw pointers in `iovs` and `msgs` are rebuilt before every
    // syscall from buffers the owning `Batch` holds; none is used across
    // threads or kept between calls.
    unsafe impl Send for Sys {}

    impl Sys {
        pub fn new() -> Sys {
            // SAFETY: these are plain C structs for which all-zero is valid.
            unsafe {
                Sys {
                    names: Box::new(mem::zeroed()),
                    iovs: mem::zeroed(),
                    msgs: mem::zeroed(),
                }
            }
        }
    }

    const NAME_LEN: libc::socklen_t = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;

    pub fn recv(b: &mut Batch, sock: &UdpSocket) -> io::Result<usize> {
        let sys = &mut b.sys;
        for i in 0..BATCH {
            sys.iovs[i] = libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: MTU,
            };
            let h = &mut sys.msgs[i].msg_hdr;
            h.msg_name = (&mut sys.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = NAME_LEN;
            h.msg_iov = &mut sys.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        // SAFETY: every header points at a live buffer of the length given.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                sys.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        let n = n as usize;
        for i in 0..n {
            let m = &sys.msgs[i];
            // Longer datagrams were truncated: their length is cut to the buffer.
            b.lens[i] = (m.msg_len as usize).min(MTU);
            // SAFETY: the kernel wrote a socket address of `msg_namelen`
            // octets into this storage.
            let addr = unsafe { SockAddr::new(sys.names[i], m.msg_hdr.msg_namelen) };
            b.from[i] = addr.as_socket();
        }
        Ok(n)
    }

    /// Sends `b.out` with as few `sendmmsg` calls as errors allow; returns
    /// the number of datagrams that failed.
    pub fn send(b: &mut Batch, sock: &UdpSocket) -> u64 {
        let sys = &mut b.sys;
        let n = b.out.len();
        for (k, &(i, to)) in b.out.iter().enumerate() {
            let to = SockAddr::from(to);
            // SAFETY: `to` is a valid socket address of `to.len()` octets and
            // fits in sockaddr_storage.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    to.as_ptr().cast::<u8>(),
                    (&mut sys.names[k] as *mut libc::sockaddr_storage).cast::<u8>(),
                    to.len() as usize,
                );
            }
            sys.iovs[k] = libc::iovec {
                iov_base: b.bufs[i].as_mut_ptr().cast(),
                iov_len: b.lens[i],
            };
            let h = &mut sys.msgs[k].msg_hdr;
            h.msg_name = (&mut sys.names[k] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = to.len();
            h.msg_iov = &mut sys.iovs[k];
            h.msg_iovlen = 1;
            h.msg_control = std::ptr::null_mut();
            h.msg_controllen = 0;
            h.msg_flags = 0;
        }
        let mut done = 0;
        let mut failed = 0;
        while done < n {
            // SAFETY: headers done..n point at live buffers and addresses.
            let r = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    sys.msgs[done..].as_mut_ptr(),
                    (n - done) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram left failed; skip it and go on.
                tracing::trace!(error = %e, "relay send failed");
                failed += 1;
                done += 1;
            } else if r == 0 {
                // Not expected with datagrams left; never spin on it.
                failed += 1;
                done += 1;
            } else {
                done += r as usize;
            }
        }
        failed
    }
}
