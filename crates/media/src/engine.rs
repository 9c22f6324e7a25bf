//! The relay's forwarding engine: a few worker threads, each with its own
//! event loop over a share of the relay sockets. On Linux with io_uring the
//! loop is [`crate::uring`]'s; elsewhere, or when the kernel refuses
//! io_uring, it is the polling loop below (`mio`: epoll, kqueue or IOCP).
//! Both share the per-socket state ([`Flow`]) and the per-packet checks
//! ([`forward`]).
//!
//! All sockets of a session live on one worker, so a stream's two sides are
//! forwarded by the same thread with no state crossing threads but the
//! counters and addresses the SIP side reads or sets (atomics, and a mutex
//! taken only when an address changes). A worker sleeps in the kernel until
//! a datagram or a command arrives: an idle call costs no wake-up, and the
//! buffers are the worker's, not the socket's. A readable socket is drained
//! in batches ([`crate::batch`]), each datagram checked and counted as the
//! relay always has, and the batch forwarded out of the peer socket in one
//! call.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use tokio::sync::oneshot;
use tracing::{debug, trace, warn};

use crate::batch::Batch;
use crate::relay::{
    Endpoint, Lease, PoliceTotals, SessionId, SessionState, SharedAddr, Side, StreamState, RTCP,
    RTP,
};
use crate::track::{classify_rtcp_port, classify_rtp_port, Kind, Tracker};

const WAKER: Token = Token(usize::MAX);

/// What the SIP side asks of a worker. One channel per worker keeps a
/// session's commands in order.
pub(crate) enum Command {
    /// Start forwarding a stream between the two endpoints.
    AddStream(Box<NewStream>),
    /// Close a session's sockets and give its ports back, then signal `done`.
    Remove {
        session: SessionId,
        done: Option<oneshot::Sender<()>>,
    },
}

pub(crate) struct NewStream {
    pub session: Arc<SessionState>,
    pub stream: Arc<StreamState>,
    /// Side A's endpoint, then side B's.
    pub ends: [Endpoint; 2],
}

/// Four free handles for a new stream's sockets: reused ones first, else
/// new empty slots at the end of `slots`.
pub(crate) fn take_tokens<T>(free: &mut Vec<usize>, slots: &mut Vec<Option<T>>) -> [usize; 4] {
    [(); 4].map(|()| {
        free.pop().unwrap_or_else(|| {
            slots.push(None);
            slots.len() - 1
        })
    })
}

impl NewStream {
    /// The stream's four sockets, each with the flow that forwards what it
    /// receives, in the order [A RTP, A RTCP, B RTP, B RTCP]; `tokens` are
    /// the worker's handles for them in that order. Socket k forwards out of
    /// socket k ^ 2: the same channel on the other side. Also the two port
    /// leases, to hold as long as the sockets.
    pub(crate) fn into_flows(
        self,
        tokens: [usize; 4],
    ) -> ([(std::net::UdpSocket, Flow); 4], [Lease; 2]) {
        let [a, b] = self.ends;
        let [a_rtp, a_rtcp] = a.sockets;
        let [b_rtp, b_rtcp] = b.sockets;
        let specs = [
            (a_rtp, Side::A, RTP, a.port),
            (a_rtcp, Side::A, RTCP, a.port + 1),
            (b_rtp, Side::B, RTP, b.port),
            (b_rtcp, Side::B, RTCP, b.port + 1),
        ];
        let mut k = 0;
        let flows = specs.map(|(sock, side, chan, port)| {
            let flow = Flow::new(
                tokens[k ^ 2],
                side,
                chan,
                port,
                self.stream.clone(),
                self.session.clone(),
            );
            k += 1;
            (sock, flow)
        });
        (flows, [a.lease, b.lease])
    }
}

/// Which forwarding engine the relay's workers run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RelayEngine {
    /// io_uring where the kernel offers it (it costs about a fifth less CPU
    /// per packet and holds past saturation as the polling engine does),
    /// the polling engine otherwise.
    #[default]
    Auto,
    /// io_uring (Linux 6.10 and later, not disabled by
    /// `kernel.io_uring_disabled` or a seccomp policy) or nothing: starting
    /// the relay fails without it.
    IoUring,
    /// The portable engine: `mio` readiness with `recvmmsg`/`sendmmsg`
    /// batches on Linux.
    Poll,
}

impl RelayEngine {
    /// `MEDIA_RELAY_ENGINE` (`auto`, `io_uring` or `poll`), else `Auto`.
    pub fn from_env() -> RelayEngine {
        match std::env::var("MEDIA_RELAY_ENGINE").as_deref() {
            Ok("io_uring" | "io-uring" | "uring") => RelayEngine::IoUring,
            Ok("poll" | "mio" | "epoll") => RelayEngine::Poll,
            _ => RelayEngine::Auto,
        }
    }
}

/// Settings the workers share, fixed when the relay starts.
#[derive(Clone)]
pub(crate) struct Shared {
    pub epoch: Instant,
    pub totals: Arc<PoliceTotals>,
    pub ip_overhead: u64,
    pub burst_ns: u64,
}

/// The handle on one worker thread. Dropping it stops the thread, which
/// closes the sockets it still holds and returns their ports.
pub(crate) struct WorkerHandle {
    /// `None` only while dropping.
    tx: Option<mpsc::Sender<Command>>,
    kick: Kick,
}

/// How a worker blocked in the kernel is woken for commands.
enum Kick {
    Poll(Arc<Waker>),
    #[cfg(target_os = "linux")]
    Uring(Arc<crate::uring::Kick>),
}

impl Kick {
    fn wake(&self) -> io::Result<()> {
        match self {
            Kick::Poll(w) => w.wake(),
            #[cfg(target_os = "linux")]
            Kick::Uring(k) => k.wake(),
        }
    }
}

impl WorkerHandle {
    /// Starts worker `index` on `engine` (never `Auto` in the result).
    pub fn start(
        index: usize,
        shared: Shared,
        engine: RelayEngine,
    ) -> io::Result<(WorkerHandle, RelayEngine)> {
        #[cfg(target_os = "linux")]
        if engine != RelayEngine::Poll {
            let (tx, rx) = mpsc::channel();
            match crate::uring::start(index, shared.clone(), rx) {
                Ok(kick) => {
                    let h = WorkerHandle {
                        tx: Some(tx),
                        kick: Kick::Uring(kick),
                    };
                    return Ok((h, RelayEngine::IoUring));
                }
                Err(e) if engine == RelayEngine::IoUring => return Err(e),
                Err(e) => {
                    debug!(error = %e, "io_uring unavailable, relay worker polls instead");
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        if engine == RelayEngine::IoUring {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring exists on Linux only",
            ));
        }
        Ok((WorkerHandle::start_poll(index, shared)?, RelayEngine::Poll))
    }

    fn start_poll(index: usize, shared: Shared) -> io::Result<WorkerHandle> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = mpsc::channel();
        let mut worker = Worker {
            poll,
            // The worker keeps the waker's descriptor open: closing it
            // could drop a wake-up not yet collected.
            _waker: waker.clone(),
            rx,
            shared,
            socks: Vec::new(),
            free: Vec::new(),
            sessions: HashMap::new(),
            batch: Batch::new(),
        };
        thread::Builder::new()
            .name(format!("media-relay-{index}"))
            .spawn(move || worker.run())?;
        Ok(WorkerHandle {
            tx: Some(tx),
            kick: Kick::Poll(waker),
        })
    }

    /// Hands `cmd` to the worker. A worker that is gone has closed its
    /// sockets already; the command is dropped (and its sockets with it).
    pub fn send(&self, cmd: Command) {
        let Some(tx) = &self.tx else { return };
        if tx.send(cmd).is_ok() {
            if let Err(e) = self.kick.wake() {
                warn!(error = %e, "cannot wake a relay worker");
            }
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        // Close the channel first: the worker applies what is queued, sees
        // it closed, closes its sockets and ends.
        self.tx = None;
        let _ = self.kick.wake();
    }
}

/// Latching state of one socket, owned by its worker.
#[derive(Default)]
struct Latch {
    latched: Option<SocketAddr>,
    seen_arm: u64,
    armed: bool,
    last_stranger: Option<SocketAddr>,
}

/// A socket's cached copy of its destination, refreshed when the shared
/// address's generation moves.
#[derive(Default)]
struct Dest {
    generation: u64,
    addr: Option<SocketAddr>,
}

impl Dest {
    fn get(&mut self, shared: &SharedAddr) -> Option<SocketAddr> {
        let g = shared.generation.load(Ordering::Acquire);
        if g != self.generation {
            self.generation = g;
            self.addr = shared.load();
        }
        self.addr
    }
}

/// What a worker keeps per relay socket, whatever the engine: packets from
/// `side`'s phone on `chan`, forwarded out of the socket at `peer` to the
/// other side's phone.
pub(crate) struct Flow {
    pub peer: usize,
    pub side: Side,
    pub chan: usize,
    pub port: u16,
    pub stream: Arc<StreamState>,
    pub session: Arc<SessionState>,
    latch: Latch,
    dest: Dest,
    tracker: Tracker,
}

impl Flow {
    pub fn new(
        peer: usize,
        side: Side,
        chan: usize,
        port: u16,
        stream: Arc<StreamState>,
        session: Arc<SessionState>,
    ) -> Flow {
        Flow {
            peer,
            side,
            chan,
            port,
            stream,
            session,
            latch: Latch {
                armed: true,
                ..Latch::default()
            },
            dest: Dest::default(),
            tracker: Tracker::default(),
        }
    }

    /// Counts `n` datagrams that this socket's direction failed to send.
    pub fn send_failed(&self, n: u64) {
        self.stream.dirs[self.side.index()]
            .send_errors
            .fetch_add(n, Ordering::Relaxed);
    }
}

/// One relay socket of the polling engine.
struct Sock {
    sock: UdpSocket,
    flow: Flow,
}

/// The sockets of one stream and the leases of their ports. Sockets close
/// before the leases give the ports back.
struct Held {
    tokens: [usize; 4],
    leases: [Lease; 2],
}

struct Worker {
    poll: Poll,
    _waker: Arc<Waker>,
    rx: mpsc::Receiver<Command>,
    shared: Shared,
    /// Indexed by token.
    socks: Vec<Option<Sock>>,
    free: Vec<usize>,
    sessions: HashMap<SessionId, Vec<Held>>,
    batch: Batch,
}

impl Worker {
    fn run(&mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                warn!(error = %e, "relay worker poll failed");
                thread::sleep(Duration::from_millis(5));
                continue;
            }
            let mut commands = false;
            for ev in events.iter() {
                match ev.token() {
                    WAKER => commands = true,
                    Token(t) => self.drain(t),
                }
            }
            if commands && !self.commands() {
                return;
            }
        }
    }

    /// Applies the pending commands; false once the relay is gone.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::AddStream(s)) => self.add(*s),
                Ok(Command::Remove { session, done }) => {
                    self.remove(session);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn add(&mut self, s: NewStream) {
        let id = s.session.id;
        let tokens = take_tokens(&mut self.free, &mut self.socks);
        let (flows, leases) = s.into_flows(tokens);
        for (k, (std_sock, flow)) in flows.into_iter().enumerate() {
            let mut sock = UdpSocket::from_std(std_sock);
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut sock, Token(tokens[k]), Interest::READABLE)
            {
                warn!(session = %id, port = flow.port, error = %e, "cannot watch a relay socket");
            }
            self.socks[tokens[k]] = Some(Sock { sock, flow });
        }
        self.sessions
            .entry(id)
            .or_default()
            .push(Held { tokens, leases });
    }

    fn remove(&mut self, id: SessionId) {
        for held in self.sessions.remove(&id).unwrap_or_default() {
            for t in held.tokens {
                if let Some(mut s) = self.socks[t].take() {
                    let _ = self.poll.registry().deregister(&mut s.sock);
                }
                self.free.push(t);
            }
            drop(held.leases);
        }
    }

    /// Reads everything waiting on socket `t` and forwards it.
    fn drain(&mut self, t: usize) {
        let Some(Some(me)) = self.socks.get(t) else {
            return;
        };
        let peer = me.flow.peer;
        loop {
            let Some(Some(me)) = self.socks.get_mut(t) else {
                return;
            };
            let n = match self.batch.recv(&me.sock) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => {
                    debug!(port = me.flow.port, error = %e, "relay receive failed");
                    return;
                }
            };
            let now = self.shared.epoch.elapsed();
            for i in 0..n {
                let (pkt, src) = self.batch.packet(i);
                if let Some(to) = forward(&mut me.flow, &self.shared, pkt, src, now) {
                    self.batch.queue(i, to);
                }
            }
            if let Some(Some(out)) = self.socks.get(peer) {
                let failed = self.batch.flush(&out.sock);
                if failed > 0 {
                    if let Some(Some(me)) = self.socks.get(t) {
                        me.flow.send_failed(failed);
                    }
                }
            }
            if !Batch::maybe_more(n) {
                return;
            }
        }
    }
}

/// Checks and counts datagram `pkt` from `src` received on `me`; returns
/// where to send it, if anywhere.
pub(crate) fn forward(
    me: &mut Flow,
    shared: &Shared,
    pkt: &[u8],
    src: Option<SocketAddr>,
    now: Duration,
) -> Option<SocketAddr> {
    let n = pkt.len();
    let ctr = &me.stream.dirs[me.side.index()];
    let kind = if me.chan == RTP {
        classify_rtp_port(pkt)
    } else {
        classify_rtcp_port(pkt)
    };
    let (Some(src), false) = (src, kind == Kind::Invalid) else {
        ctr.dropped_invalid.fetch_add(1, Ordering::Relaxed);
        trace!(?src, len = n, "not RTP/RTCP, dropped");
        return None;
    };

    let own = &me.stream.channels[me.side.index()][me.chan];
    let latch = &mut me.latch;
    let arm = own.arm.load(Ordering::Acquire);
    if arm != latch.seen_arm {
        latch.seen_arm = arm;
        latch.armed = true;
    }
    if latch.armed {
        own.remote.store(Some(src));
        latch.latched = Some(src);
        latch.armed = false;
        debug!(session = %me.session.id, side = ?me.side, chan = me.chan, %src, "latched");
    } else if latch.latched != Some(src) {
        ctr.dropped_source.fetch_add(1, Ordering::Relaxed);
        if latch.last_stranger != Some(src) {
            latch.last_stranger = Some(src);
            debug!(session = %me.session.id, side = ?me.side, %src, "packet from unexpected source dropped");
        }
        return None;
    }

    let stamp = u64::try_from(now.as_micros()).unwrap_or(u64::MAX - 1) + 1;
    let c = match kind {
        Kind::Rtp(h) => {
            let clock = me.session.clock_rate.load(Ordering::Relaxed);
            let event = me.session.event_pt.load(Ordering::Relaxed) == u16::from(h.payload_type);
            let arrival = (now.as_micros() * u128::from(clock) / 1_000_000) as u32;
            me.tracker.on_packet(&h, arrival, clock, !event);
            ctr.lost.store(me.tracker.lost(), Ordering::Relaxed);
            ctr.jitter.store(me.tracker.jitter(), Ordering::Relaxed);
            RTP
        }
        _ => RTCP,
    };
    ctr.packets[c].fetch_add(1, Ordering::Relaxed);
    ctr.bytes[c].fetch_add(n as u64, Ordering::Relaxed);
    ctr.last[c].store(stamp, Ordering::Relaxed);

    let dest_shared = &me.stream.channels[me.side.other().index()][me.chan].remote;
    let Some(to) = me.dest.get(dest_shared) else {
        ctr.dropped_no_destination.fetch_add(1, Ordering::Relaxed);
        return None;
    };
    let police = &me.session.police[me.side.index()];
    let limit = police.drop_above_kbps.load(Ordering::Relaxed);
    if limit != 0 {
        let now_ns = u64::try_from(now.as_nanos()).unwrap_or(u64::MAX);
        let octets = n as u64 + shared.ip_overhead;
        if c == RTCP {
            police.bucket.charge(now_ns, octets, limit);
        } else if !police.bucket.admit(now_ns, octets, limit, shared.burst_ns) {
            police.dropped.fetch_add(1, Ordering::Relaxed);
            shared.totals.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    }
    Some(to)
}
