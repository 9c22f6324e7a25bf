//! RTP endpoints owned by the test: the SDP of a SIPp peer points at one of
//! these sockets, so the test itself sends the media and counts what the
//! relay delivers. Payloads carry a direction tag and a sequence number, so
//! a packet counts only if it really came from the other side.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::{Ports, LOOPBACK};

const MAGIC: &[u8; 4] = b"E2E!";
const PAYLOAD_LEN: usize = 160; // 20 ms of G.711

/// A bound loopback UDP socket standing in for a phone's media port.
pub struct RtpEndpoint {
    sock: UdpSocket,
    ssrc: u32,
    tag: u8,
}

impl RtpEndpoint {
    /// Bind an even port; `tag` marks the payloads this endpoint sends.
    pub fn bind(tag: u8) -> RtpEndpoint {
        for _ in 0..50 {
            let (port, _) = Ports::rtp_block(2);
            if let Ok(sock) = UdpSocket::bind((LOOPBACK, port)) {
                return RtpEndpoint {
                    sock,
                    ssrc: 0x5e2e_0000 | u32::from(tag) << 8 | u32::from(port % 256),
                    tag,
                };
            }
        }
        panic!("could not bind an RTP test port");
    }

    pub fn port(&self) -> u16 {
        self.sock.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    fn packet(&self, seq: u16) -> Vec<u8> {
        let mut p = Vec::with_capacity(12 + PAYLOAD_LEN);
        p.push(0x80); // V=2
        p.push(8); // PT 8 (PCMA)
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&self.ssrc.to_be_bytes());
        p.extend_from_slice(MAGIC);
        p.push(self.tag);
        p.extend_from_slice(&seq.to_be_bytes());
        p.resize(12 + PAYLOAD_LEN, 0xd5);
        p
    }
}

/// What one direction delivered.
#[derive(Debug, Default, Clone)]
pub struct StreamStats {
    pub sent: u32,
    /// Distinct sequence numbers received that carry the sender's tag.
    pub received: u32,
    /// Datagrams that did not look like the sender's packets.
    pub foreign: u32,
    /// Every source address packets came from (the relay's ports).
    pub sources: BTreeSet<SocketAddr>,
}

/// Result of a two-way exchange.
#[derive(Debug, Default, Clone)]
pub struct Exchange {
    pub a_to_b: StreamStats,
    pub b_to_a: StreamStats,
}

fn receive(
    sock: UdpSocket,
    from_tag: u8,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<StreamStats> {
    thread::spawn(move || {
        let mut stats = StreamStats::default();
        let mut seqs = BTreeSet::new();
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Ok((len, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let p = &buf[..len];
            stats.sources.insert(from);
            // The relay may rewrite RTP headers; the payload is what we check.
            if len >= 12 + 7 && &p[12..16] == MAGIC && p[16] == from_tag {
                seqs.insert(u16::from_be_bytes([p[17], p[18]]));
            } else {
                stats.foreign += 1;
            }
        }
        stats.received = seqs.len() as u32;
        stats
    })
}

/// Send `packets` packets every `ptime` from `a` to `a_to` and from `b` to
/// `b_to` at the same time, and count what each side received.
pub fn exchange(
    a: &RtpEndpoint,
    a_to: SocketAddr,
    b: &RtpEndpoint,
    b_to: SocketAddr,
    packets: u16,
    ptime: Duration,
) -> Exchange {
    let stop = Arc::new(AtomicBool::new(false));
    let (Ok(ra), Ok(rb)) = (a.sock.try_clone(), b.sock.try_clone()) else {
        panic!("cloning RTP sockets");
    };
    let at_b = receive(rb, a.tag, stop.clone());
    let at_a = receive(ra, b.tag, stop.clone());
    let start = Instant::now();
    let mut sent = 0u32;
    for seq in 0..packets {
        let _ = a.sock.send_to(&a.packet(seq), a_to);
        let _ = b.sock.send_to(&b.packet(seq), b_to);
        sent += 1;
        let next = start + ptime * (u32::from(seq) + 1);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            thread::sleep(d);
        }
    }
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut a_to_b = at_b.join().unwrap_or_default();
    let mut b_to_a = at_a.join().unwrap_or_default();
    a_to_b.sent = sent;
    b_to_a.sent = sent;
    Exchange { a_to_b, b_to_a }
}
