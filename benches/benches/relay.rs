//! The RTP relay's per-packet path end to end on loopback: a
//! `media::Relay` on 127.0.0.1 (ports 40000-40999) with one session, a
//! "phone A" sending 172-byte RTP packets (G.711, 20 ms: 12-byte header and
//! 160 bytes of payload) to side A's port, and a "phone B" receiving them
//! from side B's port. Both phones are latched (each sent a packet first)
//! and plain blocking `std::net::UdpSocket`s; the relay runs in a tokio
//! multi-thread runtime of two workers, as in the daemon.
//!
//! `cargo bench -p softswitch-benches --bench relay`
//!
//! Per iteration, one packet A -> relay -> B:
//! - `relay/rtp_172b_a_to_b_window32`: throughput, up to 32 packets in
//!   flight; the time per packet is the inverse of packets per second.
//! - `relay/rtp_172b_a_to_b_one_by_one`: one packet in flight, the next
//!   sent when the previous arrived: the one-way latency through the
//!   relay, wake-ups of the relay task and of phone B included.
//!
//! Each sample is timed in batches of 1000 packets; a batch counts only
//! when every packet arrived, in order (a lost one makes it run again).
//!
//! These figures include two syscalls of the test sockets per packet (phone
//! A's send and phone B's receive) besides the relay's own receive and send,
//! on a machine shared with the phones: they are an upper bound of the
//! relay's own cost. The relay's pure-CPU parts (RTP header check, loss and
//! jitter tracking in `media`'s private `track` module) are not public, so
//! they are not measured apart here.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use media::{Relay, RelayConfig, Session, Side};

/// 12-byte RTP header + 160 bytes of G.711 (20 ms at 8 kHz).
const PACKET: usize = 172;
const BATCH: u64 = 1_000;
/// Batches that may be lost in a row before the bench gives up.
const MAX_RETRIES: u32 = 20;
const RECV_TIMEOUT: Duration = Duration::from_millis(500);
const SSRC: u32 = 0x5eed_f00d;

/// Phone A, phone B and the session between them.
struct Call {
    a: UdpSocket,
    b: UdpSocket,
    session: Session,
    seq: u16,
    packet: [u8; PACKET],
}

impl Call {
    fn new(relay: &Relay) -> io::Result<Call> {
        let session = relay.create_session().map_err(io::Error::other)?;
        let loopback = Ipv4Addr::LOCALHOST;
        let a = UdpSocket::bind((loopback, 0))?;
        let b = UdpSocket::bind((loopback, 0))?;
        // What the two SDPs said; the first packet from each phone latches it.
        session.set_remote(Side::A, a.local_addr()?, None);
        session.set_remote(Side::B, b.local_addr()?, None);
        a.connect(SocketAddr::from((loopback, session.local_port(Side::A))))?;
        b.connect(SocketAddr::from((loopback, session.local_port(Side::B))))?;
        for s in [&a, &b] {
            s.set_read_timeout(Some(RECV_TIMEOUT))?;
        }
        let mut packet = [0xffu8; PACKET];
        packet[..12].fill(0);
        packet[0] = 0x80; // version 2
        packet[1] = 0; // PCMU
        packet[8..12].copy_from_slice(&SSRC.to_be_bytes());
        let mut call = Call {
            a,
            b,
            session,
            seq: 0,
            packet,
        };
        call.latch()?;
        Ok(call)
    }

    /// Phone B speaks first (latching side B), then phone A (latching side
    /// A); each hears the other.
    fn latch(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 2048];
        let mut b_packet = self.packet;
        b_packet[8..12].copy_from_slice(&(!SSRC).to_be_bytes());
        self.b.send(&b_packet)?;
        self.a.recv(&mut buf)?;
        self.send_a()?;
        self.b.recv(&mut buf)?;
        Ok(())
    }

    fn send_a(&mut self) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let ts = u32::from(self.seq).wrapping_mul(160);
        self.packet[2..4].copy_from_slice(&self.seq.to_be_bytes());
        self.packet[4..8].copy_from_slice(&ts.to_be_bytes());
        self.a.send(&self.packet).map(|_| ())
    }

    /// Sends `n` packets with at most `window` in flight; the time until
    /// the last arrived, or None when one was lost.
    fn batch(&mut self, n: u64, window: u64) -> Option<Duration> {
        let mut buf = [0u8; 2048];
        let first = self.seq.wrapping_add(1);
        let start = Instant::now();
        let (mut sent, mut got) = (0u64, 0u64);
        while got < n {
            while sent < n && sent - got < window {
                self.send_a().ok()?;
                sent += 1;
            }
            let len = self.b.recv(&mut buf).ok()?;
            let seq = u16::from_be_bytes([buf[2], buf[3]]);
            // Only this batch's packets, in order, count.
            if len != PACKET || seq != first.wrapping_add(got as u16) {
                return None;
            }
            got += 1;
        }
        Some(start.elapsed())
    }

    /// Empties phone B's queue after a lost packet.
    fn drain(&self) {
        let mut buf = [0u8; 2048];
        let _ = self.b.set_read_timeout(Some(Duration::from_millis(50)));
        while self.b.recv(&mut buf).is_ok() {}
        let _ = self.b.set_read_timeout(Some(RECV_TIMEOUT));
    }

    /// Times `iters` packets in batches; lost batches are run again.
    fn measure(&mut self, iters: u64, window: u64) -> Duration {
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let n = (iters - done).min(BATCH);
            let mut retries = 0;
            let t = loop {
                match self.batch(n, window) {
                    Some(t) => break t,
                    None if retries < MAX_RETRIES => {
                        retries += 1;
                        self.drain();
                    }
                    None => panic!("relay lost packets in {MAX_RETRIES} batches in a row"),
                }
            };
            total += t;
            done += n;
        }
        total
    }
}

fn bench_relay(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let _enter = rt.enter();
    let lo = Ipv4Addr::LOCALHOST.into();
    let relay = Relay::new(RelayConfig::new(lo, lo, 40_000, 40_999)).expect("relay starts");
    let mut call = Call::new(&relay).expect("call set up and latched");

    let mut g = c.benchmark_group("relay");
    g.throughput(Throughput::Elements(1));
    for (id, window) in [
        ("rtp_172b_a_to_b_window32", 32),
        ("rtp_172b_a_to_b_one_by_one", 1),
    ] {
        g.bench_function(id, |b| b.iter_custom(|iters| call.measure(iters, window)));
    }
    g.finish();

    let a_to_b = call.session.stats().a_to_b;
    assert!(a_to_b.rtp.packets > BATCH, "packets went through the relay");
    assert_eq!(a_to_b.dropped_source, 0);
    assert_eq!(a_to_b.dropped_invalid, 0);
    assert_eq!(a_to_b.send_errors, 0);
}

criterion_group!(benches, bench_relay);
criterion_main!(benches);
