//! The media threads: send G.711-sized RTP for every active stream from a
//! timer wheel (one slot per millisecond), receive what the relay forwards,
//! and measure loss, one-way latency and start clipping from the payload.
//! Each thread owns every n-th socket; a stream is sent by the thread owning
//! its socket and counted as received by the thread owning the socket it
//! arrives on, and the per-thread outcomes are summed at the end.
//!
//! Payload layout after the 12-byte RTP header (160 bytes in all): magic,
//! sender stream id, packet index, 4 spare bytes, send time (monotonic ns).
//! Demultiplexing by payload, not SSRC, so a relay may rewrite headers.

use crate::clock::now_ns;
use crate::net::{wait_readable, RecvBatch, SendBatch};
use crate::stats::{gettid, Histogram};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SendError, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub const HEADER: usize = 12;
pub const PAYLOAD: usize = 160;
const MAGIC: &[u8; 4] = b"LGEN";
/// Stream ids above this are not ours (a corrupted or foreign payload).
const MAX_STREAMS: usize = 1 << 22;

pub enum Cmd {
    /// Start sending stream `id` from socket `sock` to `dest`.
    Start {
        id: u32,
        sock: usize,
        dest: SocketAddr,
    },
    /// Stop sending stream `id` of socket `sock` (received packets are still counted).
    Stop { id: u32, sock: usize },
    /// Send one short non-RTP datagram from socket `sock` to `dest`, so a
    /// relay that latches on the first packet learns this leg's address
    /// before the counted stream starts.
    Probe { sock: usize, dest: SocketAddr },
}

/// Most media threads a run may use (the sampler keeps one CPU figure each).
pub const MAX_THREADS: usize = 4;

/// Counters read live by the sampler.
#[derive(Default)]
pub struct Shared {
    pub tx: AtomicU64,
    pub rx: AtomicU64,
    pub done: AtomicBool,
    /// Thread ids of the media threads (0 until started).
    pub tids: [AtomicU32; MAX_THREADS],
}

/// Sends commands to the media thread owning the socket they name.
#[derive(Clone)]
pub struct CmdTx {
    threads: Vec<Sender<Cmd>>,
}

impl CmdTx {
    pub fn send(&self, cmd: Cmd) -> Result<(), SendError<Cmd>> {
        let n = self.threads.len();
        // Thread t owns sockets t, t + n, t + 2n, ...; it indexes them by i / n.
        let (t, cmd) = match cmd {
            Cmd::Start { id, sock, dest } => (
                sock % n,
                Cmd::Start {
                    id,
                    sock: sock / n,
                    dest,
                },
            ),
            Cmd::Stop { id, sock } => (sock % n, Cmd::Stop { id, sock: sock / n }),
            Cmd::Probe { sock, dest } => (
                sock % n,
                Cmd::Probe {
                    sock: sock / n,
                    dest,
                },
            ),
        };
        self.threads[t].send(cmd)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct StreamStats {
    pub sent: u32,
    /// Packets of this stream that reached the other end.
    pub received: u32,
    /// Index of the first packet of this stream that arrived.
    pub first_rx_index: Option<u32>,
}

#[derive(Default)]
struct Stream {
    stats: StreamStats,
    sending: bool,
    sock: usize,
    dest: Option<SocketAddr>,
    seq: u16,
    ts: u32,
    ssrc: u32,
}

pub struct Outcome {
    pub streams: Vec<StreamStats>,
    pub latency: Histogram,
    /// How late the wheel fired compared with schedule.
    pub send_lag: Histogram,
    pub send_dropped: u64,
    pub foreign: u64,
}

pub struct Handle {
    pub tx: CmdTx,
    pub shared: Arc<Shared>,
    pub addrs: Vec<SocketAddr>,
    joins: Vec<JoinHandle<Outcome>>,
}

impl Handle {
    /// Waits for every media thread (after `shared.done` is set) and sums
    /// their outcomes.
    pub fn finish(self) -> Result<Outcome, &'static str> {
        let mut all = Outcome {
            streams: Vec::new(),
            latency: Histogram::default(),
            send_lag: Histogram::default(),
            send_dropped: 0,
            foreign: 0,
        };
        for j in self.joins {
            let o = j.join().map_err(|_| "media thread panicked")?;
            if all.streams.len() < o.streams.len() {
                all.streams.resize(o.streams.len(), StreamStats::default());
            }
            for (a, b) in all.streams.iter_mut().zip(&o.streams) {
                a.sent += b.sent;
                a.received += b.received;
                a.first_rx_index = match (a.first_rx_index, b.first_rx_index) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
            }
            all.latency.merge(&o.latency);
            all.send_lag.merge(&o.send_lag);
            all.send_dropped += o.send_dropped;
            all.foreign += o.foreign;
        }
        Ok(all)
    }
}

/// Starts `threads` media threads (at most `MAX_THREADS`) sharing `socks`;
/// packets every `interval_ms`.
pub fn spawn(socks: Vec<UdpSocket>, interval_ms: u32, threads: usize) -> std::io::Result<Handle> {
    let addrs = socks
        .iter()
        .map(|s| s.local_addr())
        .collect::<Result<Vec<_>, _>>()?;
    let n = threads.clamp(1, MAX_THREADS).min(socks.len().max(1));
    let mut owned: Vec<Vec<UdpSocket>> = (0..n).map(|_| Vec::new()).collect();
    for (i, s) in socks.into_iter().enumerate() {
        owned[i % n].push(s);
    }
    let shared = Arc::new(Shared::default());
    let mut senders = Vec::new();
    let mut joins = Vec::new();
    for (t, socks) in owned.into_iter().enumerate() {
        let (tx, rx) = std::sync::mpsc::channel();
        let sh = shared.clone();
        joins.push(
            std::thread::Builder::new()
                .name(format!("loadgen-rtp{t}"))
                .spawn(move || run(t, socks, interval_ms.max(1), rx, sh))?,
        );
        senders.push(tx);
    }
    Ok(Handle {
        tx: CmdTx { threads: senders },
        shared,
        addrs,
        joins,
    })
}

fn run(
    thread: usize,
    socks: Vec<UdpSocket>,
    interval_ms: u32,
    cmds: Receiver<Cmd>,
    shared: Arc<Shared>,
) -> Outcome {
    shared.tids[thread].store(gettid(), Ordering::Relaxed);
    let slots = interval_ms as u64;
    let mut wheel: Vec<Vec<u32>> = vec![Vec::new(); slots as usize];
    let mut streams: Vec<Stream> = Vec::new();
    let mut out = Outcome {
        streams: Vec::new(),
        latency: Histogram::default(),
        send_lag: Histogram::default(),
        send_dropped: 0,
        foreign: 0,
    };
    let mut batches: Vec<SendBatch> = (0..socks.len()).map(|_| SendBatch::default()).collect();
    let mut rb = RecvBatch::default();
    let mut ready = Vec::new();
    let mut tick_ms = now_ns() / 1_000_000;
    let mut commands_open = true;
    loop {
        while commands_open {
            match cmds.try_recv() {
                Ok(Cmd::Start { id, sock, dest }) => {
                    let i = id as usize;
                    if streams.len() <= i {
                        streams.resize_with(i + 1, Stream::default);
                    }
                    let s = &mut streams[i];
                    s.sock = sock.min(socks.len() - 1);
                    s.dest = Some(dest);
                    s.ssrc = 0x4c47_0000 ^ id.wrapping_mul(2_654_435_761);
                    if !s.sending {
                        s.sending = true;
                        // Spread streams over the wheel so packets leave evenly, not in bursts.
                        wheel[((tick_ms + u64::from(id)) % slots) as usize].push(id);
                    }
                }
                Ok(Cmd::Stop { id, .. }) => {
                    if let Some(s) = streams.get_mut(id as usize) {
                        s.sending = false;
                    }
                }
                Ok(Cmd::Probe { sock, dest }) => {
                    if let Some(s) = socks.get(sock) {
                        // Best effort: a lost probe shows up as stream loss.
                        let _ = s.send_to(b"latch", dest);
                    }
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => commands_open = false,
            }
        }
        if shared.done.load(Ordering::Relaxed) {
            break;
        }
        let now = now_ns();
        let now_ms = now / 1_000_000;
        while tick_ms <= now_ms {
            let slot = &mut wheel[(tick_ms % slots) as usize];
            let lag_us = now.saturating_sub(tick_ms * 1_000_000) / 1000;
            slot.retain(|&id| {
                let Some(s) = streams.get_mut(id as usize) else {
                    return false;
                };
                if !s.sending {
                    return false;
                }
                let Some(dest) = s.dest else {
                    return false;
                };
                let index = s.stats.sent;
                let (seq, ts, ssrc) = (s.seq, s.ts, s.ssrc);
                batches[s.sock].push_with(dest, |buf| {
                    buf.push(0x80);
                    buf.push(if index == 0 { 0x80 } else { 0 });
                    buf.extend_from_slice(&seq.to_be_bytes());
                    buf.extend_from_slice(&ts.to_be_bytes());
                    buf.extend_from_slice(&ssrc.to_be_bytes());
                    buf.extend_from_slice(MAGIC);
                    buf.extend_from_slice(&id.to_be_bytes());
                    buf.extend_from_slice(&index.to_be_bytes());
                    buf.extend_from_slice(&[0; 4]);
                    buf.extend_from_slice(&now_ns().to_be_bytes());
                    buf.resize(buf.len() + PAYLOAD - 24, 0xff);
                });
                s.seq = s.seq.wrapping_add(1);
                s.ts = s.ts.wrapping_add(160);
                s.stats.sent += 1;
                out.send_lag.record_us(lag_us);
                true
            });
            tick_ms += 1;
        }
        let mut sent = 0;
        for (i, b) in batches.iter_mut().enumerate() {
            if !b.is_empty() {
                sent += b.len() as u64;
                let dropped = b.flush(&socks[i]) as u64;
                out.send_dropped += dropped;
                sent -= dropped;
            }
        }
        shared.tx.fetch_add(sent, Ordering::Relaxed);
        let wait = ((tick_ms * 1_000_000).saturating_sub(now_ns())).min(1_000_000);
        wait_readable(&socks, Duration::from_nanos(wait), &mut ready);
        let mut got = 0u64;
        for &i in &ready {
            // Bounded so sending is never starved by a flood.
            for _ in 0..16 {
                let n = rb.recv(&socks[i]).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let t = now_ns();
                for k in 0..n {
                    let (d, _) = rb.get(k);
                    if d.len() < HEADER + 24 || &d[HEADER..HEADER + 4] != MAGIC {
                        out.foreign += 1;
                        continue;
                    }
                    let word = |o: usize| u32::from_be_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
                    let id = word(HEADER + 4) as usize;
                    let index = word(HEADER + 8);
                    let mut sb = [0u8; 8];
                    sb.copy_from_slice(&d[HEADER + 16..HEADER + 24]);
                    let sent_at = u64::from_be_bytes(sb);
                    // The sender may be another thread: grow on demand, within
                    // what a run can number.
                    if id >= MAX_STREAMS {
                        out.foreign += 1;
                        continue;
                    }
                    if streams.len() <= id {
                        streams.resize_with(id + 1, Stream::default);
                    }
                    let s = &mut streams[id];
                    s.stats.received += 1;
                    if s.stats.first_rx_index.is_none() {
                        s.stats.first_rx_index = Some(index);
                    }
                    out.latency.record_us(t.saturating_sub(sent_at) / 1000);
                    got += 1;
                }
            }
        }
        shared.rx.fetch_add(got, Ordering::Relaxed);
    }
    out.streams = streams.into_iter().map(|s| s.stats).collect();
    out
}
