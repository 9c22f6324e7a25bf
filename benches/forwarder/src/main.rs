//! `forwarder --bind 127.0.0.1 --base 40000 --pairs N [--seconds S]`
//!
//! Binds ports BASE..BASE+2N. Ports BASE+2i and BASE+2i+1 form a pair, like
//! the two legs of a relayed call: whatever arrives on one is sent from the
//! other to the latest source seen on it (symmetric latching). No SIP, no
//! parsing, no allocation per packet: the floor any relay can reach here.
//! One thread, `recvmmsg`/`sendmmsg` on Linux; prints its counters on exit.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
mod fast {
    use std::os::fd::AsRawFd;

    pub const BATCH: usize = 64;
    pub const MTU: usize = 2048;

    pub struct Bufs {
        pub data: Vec<[u8; MTU]>,
        pub addrs: Vec<libc::sockaddr_in>,
        pub lens: Vec<usize>,
    }

    impl Bufs {
        pub fn new() -> Bufs {
            Bufs {
                data: vec![[0; MTU]; BATCH],
                // SAFETY: sockaddr_in is plain data; zero is a valid value.
                addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
                lens: vec![0; BATCH],
            }
        }
    }

    /// Receives up to BATCH datagrams; IPv4 sources only.
    pub fn recv(sock: &std::net::UdpSocket, b: &mut Bufs) -> usize {
        let mut iovs: Vec<libc::iovec> = b
            .data
            .iter_mut()
            .map(|d| libc::iovec {
                iov_base: d.as_mut_ptr().cast(),
                iov_len: MTU,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
            .map(|i| {
                // SAFETY: plain data.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = (&mut b.addrs[i] as *mut libc::sockaddr_in).cast();
                h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                h.msg_hdr.msg_iov = &mut iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: all pointers refer to live buffers of the declared sizes.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return 0;
        }
        for (len, m) in b.lens.iter_mut().zip(&msgs).take(n as usize) {
            *len = m.msg_len as usize;
        }
        n as usize
    }

    /// Sends datagrams 0..n of `b` to `to`; returns how many went out.
    pub fn send(
        sock: &std::net::UdpSocket,
        b: &mut Bufs,
        n: usize,
        to: &libc::sockaddr_in,
    ) -> usize {
        let mut to = *to;
        let mut iovs: Vec<libc::iovec> = (0..n)
            .map(|i| libc::iovec {
                iov_base: b.data[i].as_mut_ptr().cast(),
                iov_len: b.lens[i],
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = (0..n)
            .map(|i| {
                // SAFETY: plain data.
                let mut h: libc::mmsghdr = unsafe { std::mem::zeroed() };
                h.msg_hdr.msg_name = (&mut to as *mut libc::sockaddr_in).cast();
                h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
                h.msg_hdr.msg_iov = &mut iovs[i];
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        // SAFETY: as above; the kernel only reads.
        let s = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
            )
        };
        s.max(0) as usize
    }

    pub struct Epoll(i32);

    impl Epoll {
        pub fn new(socks: &[std::net::UdpSocket]) -> std::io::Result<Epoll> {
            // SAFETY: plain syscall.
            let fd = unsafe { libc::epoll_create1(0) };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for (i, s) in socks.iter().enumerate() {
                let mut ev = libc::epoll_event {
                    events: libc::EPOLLIN as u32,
                    u64: i as u64,
                };
                // SAFETY: valid epoll fd and socket fd.
                if unsafe { libc::epoll_ctl(fd, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) } < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(Epoll(fd))
        }

        pub fn wait(&self, out: &mut Vec<usize>, timeout_ms: i32) {
            let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 256];
            // SAFETY: evs is a valid buffer of 256 events.
            let n = unsafe { libc::epoll_wait(self.0, evs.as_mut_ptr(), 256, timeout_ms) };
            out.clear();
            for e in evs.iter().take(n.max(0) as usize) {
                out.push(e.u64 as usize);
            }
        }
    }
}

struct Opts {
    bind: IpAddr,
    base: u16,
    pairs: u16,
    seconds: f64,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        bind: IpAddr::from([127, 0, 0, 1]),
        base: 40000,
        pairs: 100,
        seconds: 3600.0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().ok_or_else(|| format!("{a} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{a} {v}: {e}");
        match a.as_str() {
            "--bind" => o.bind = v.parse().map_err(|e| bad(&e))?,
            "--base" => o.base = v.parse().map_err(|e| bad(&e))?,
            "--pairs" => o.pairs = v.parse().map_err(|e| bad(&e))?,
            "--seconds" => o.seconds = v.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if u32::from(o.base) + 2 * u32::from(o.pairs) > 65536 {
        return Err("port range exceeds 65535".into());
    }
    Ok(o)
}

fn main() {
    let opts = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!(
                "forwarder: {e}\nusage: forwarder --bind IP --base PORT --pairs N [--seconds S]"
            );
            std::process::exit(2);
        }
    };
    let socks: Result<Vec<UdpSocket>, _> = (0..2 * opts.pairs)
        .map(|i| {
            let s = UdpSocket::bind(SocketAddr::new(opts.bind, opts.base + i))?;
            s.set_nonblocking(true)?;
            Ok::<_, std::io::Error>(s)
        })
        .collect();
    let socks = match socks {
        Ok(s) => s,
        Err(e) => {
            eprintln!("forwarder: binding ports: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "forwarder: {} pairs on {}:{}-{}",
        opts.pairs,
        opts.bind,
        opts.base,
        opts.base + 2 * opts.pairs - 1
    );
    let end = Instant::now() + Duration::from_secs_f64(opts.seconds);
    let (fwd, dropped) = run(&socks, end);
    println!("forwarder: forwarded {fwd} dropped {dropped}");
}

#[cfg(target_os = "linux")]
fn run(socks: &[UdpSocket], end: Instant) -> (u64, u64) {
    let Ok(ep) = fast::Epoll::new(socks) else {
        eprintln!("forwarder: epoll failed");
        return (0, 0);
    };
    let mut peers: Vec<Option<libc::sockaddr_in>> = vec![None; socks.len()];
    let mut bufs = fast::Bufs::new();
    let mut ready = Vec::new();
    let (mut fwd, mut dropped) = (0u64, 0u64);
    while Instant::now() < end {
        ep.wait(&mut ready, 100);
        for &i in &ready {
            loop {
                let n = fast::recv(&socks[i], &mut bufs);
                if n == 0 {
                    break;
                }
                // Latch to the latest source of this leg.
                peers[i] = Some(bufs.addrs[n - 1]);
                let other = i ^ 1;
                match peers[other] {
                    Some(to) => {
                        let s = fast::send(&socks[other], &mut bufs, n, &to);
                        fwd += s as u64;
                        dropped += (n - s) as u64;
                    }
                    None => dropped += n as u64,
                }
                if n < fast::BATCH {
                    break;
                }
            }
        }
    }
    (fwd, dropped)
}

#[cfg(not(target_os = "linux"))]
fn run(socks: &[UdpSocket], end: Instant) -> (u64, u64) {
    let mut peers: Vec<Option<SocketAddr>> = vec![None; socks.len()];
    let mut buf = [0u8; 2048];
    let (mut fwd, mut dropped) = (0u64, 0u64);
    while Instant::now() < end {
        let mut idle = true;
        for i in 0..socks.len() {
            while let Ok((n, from)) = socks[i].recv_from(&mut buf) {
                idle = false;
                peers[i] = Some(from);
                match peers[i ^ 1] {
                    Some(to) if socks[i ^ 1].send_to(&buf[..n], to).is_ok() => fwd += 1,
                    _ => dropped += 1,
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    (fwd, dropped)
}
