//! The relay: port pool, sessions, their hand-over to the forwarding
//! workers ([`crate::engine`]) and the dead-media and police sweeps.
//!
//! The SIP side and the workers share per-stream state through atomics
//! only; a peer address sits behind a generation counter, so the mutex next
//! to it is taken when the address changes (latching, `set_remote`), never
//! per packet. Sockets are bound here (errors reach the caller at once) and
//! handed to the session's worker; closing them goes through the same
//! worker, so a session's commands apply in order.
//!
//! Bandwidth policing (see [`crate::police`]) adds one relaxed atomic load
//! per forwarded packet when a direction is not dropping excess, and a
//! compare-and-swap on the direction's token bucket when it is; the rate is
//! measured by a relay-wide sweep from the counters kept anyway.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, trace, warn};

use crate::engine::{Command, NewStream, RelayEngine, Shared, WorkerHandle};

use crate::police::{
    allowed_kbps, Bucket, Episode, Meter, PoliceConfig, PoliceStats, IPV4_UDP_OCTETS,
    IPV6_UDP_OCTETS,
};

/// Socket buffers sized for bursts (the kernel may cap them).
const SOCKET_BUF: usize = 512 * 1024;
pub(crate) const RTP: usize = 0;
pub(crate) const RTCP: usize = 1;
const NO_EVENT_PT: u16 = u16::MAX;

#[derive(Debug, Error)]
pub enum MediaError {
    #[error("invalid relay config: {0}")]
    Config(&'static str),
    #[error("the relay must be created inside a tokio runtime")]
    NoRuntime,
    #[error("no free RTP/RTCP port pair in {min}-{max}")]
    Exhausted { min: u16, max: u16 },
    #[error("cannot bind UDP {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot start a relay worker thread: {0}")]
    Worker(io::Error),
}

#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Address the relay sockets bind to.
    pub bind_ip: IpAddr,
    /// Address written into rewritten SDP (the public address behind NAT).
    pub advertise_ip: IpAddr,
    /// Inclusive port range; RTP takes the even ports, RTCP the odd one above.
    pub port_min: u16,
    pub port_max: u16,
    /// Silence in both directions after which a session is reported dead.
    pub dead_media: Duration,
    /// Bandwidth policing of sessions given a reservation.
    pub police: PoliceConfig,
    /// Forwarding threads; 0 (the default) means one per CPU core, at most
    /// [`RelayConfig::MAX_AUTO_WORKERS`]. A call's sockets all belong to one.
    pub workers: usize,
    /// How the workers move packets.
    pub engine: RelayEngine,
}

impl RelayConfig {
    pub fn new(bind_ip: IpAddr, advertise_ip: IpAddr, port_min: u16, port_max: u16) -> RelayConfig {
        RelayConfig {
            bind_ip,
            advertise_ip,
            port_min,
            port_max,
            dead_media: Duration::from_secs(60),
            police: PoliceConfig::default(),
            workers: 0,
            engine: RelayEngine::Auto,
        }
    }

    /// Most worker threads chosen when `workers` is 0.
    pub const MAX_AUTO_WORKERS: usize = 8;

    fn worker_count(&self) -> usize {
        // One per core: with the polling engine two workers on two cores
        // held 1,100 G.711 calls within p99 5 ms where one did not hold 800.
        match self.workers {
            0 => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(Self::MAX_AUTO_WORKERS),
            n => n,
        }
    }
}

/// One leg's end of the relay: `A` faces the caller, `B` the callee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "media-{}", self.0)
    }
}

/// Counters of one channel (RTP or RTCP) in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ChannelStats {
    pub packets: u64,
    pub bytes: u64,
    pub last_packet: Option<Instant>,
}

/// Counters of one direction: packets received from one side and relayed
/// towards the other.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DirectionStats {
    pub rtp: ChannelStats,
    pub rtcp: ChannelStats,
    /// RTP packets missing from the sequence (RFC 3550 A.3).
    pub lost: u64,
    /// Interarrival jitter (RFC 3550 A.8) in timestamp units.
    pub jitter: u32,
    /// The same in milliseconds, at the session's clock rate.
    pub jitter_ms: f64,
    /// Packets from an address other than the latched one.
    pub dropped_source: u64,
    /// Datagrams that are not RTP/RTCP version 2 or are too short.
    pub dropped_invalid: u64,
    /// Packets with nowhere to go yet (no remote address known).
    pub dropped_no_destination: u64,
    pub send_errors: u64,
    /// Bitrate this side sends, IP + UDP + payload of RTP and RTCP, mean
    /// over the police window, in kbps. Like the three fields below it
    /// covers the whole session (all streams): the reservation is per call.
    pub measured_kbps: u32,
    /// The reservation policed (0: not policed).
    pub reserved_kbps: u32,
    /// Times this direction exceeded its reservation beyond the margin for
    /// longer than the window.
    pub police_exceeded_episodes: u64,
    /// Packets dropped for exceeding the allowed rate.
    pub police_dropped_packets: u64,
}

/// Counters of one stream (one m= line), per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SessionStats {
    pub a_to_b: DirectionStats,
    pub b_to_a: DirectionStats,
}

/// A cheap handle on the relay (`Arc` inside).
#[derive(Clone)]
pub struct Relay {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: RelayConfig,
    engine: RelayEngine,
    epoch: Instant,
    pool: Arc<Pool>,
    workers: Vec<WorkerHandle>,
    sessions: Mutex<HashMap<SessionId, Arc<SessionState>>>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<SessionId>>>,
    next_id: AtomicU64,
    police: Arc<PoliceTotals>,
    /// IP + UDP octets counted per datagram.
    ip_overhead: u64,
}

#[derive(Default)]
pub(crate) struct PoliceTotals {
    pub episodes: AtomicU64,
    pub dropped: AtomicU64,
    pub exceeding: AtomicU64,
}

struct Pool {
    free: Mutex<VecDeque<u16>>,
    pairs: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Relay {
    /// Must be called inside a tokio runtime: it starts the dead-media sweep
    /// and later sessions spawn their tasks on that runtime. The engine is
    /// [`RelayEngine::from_env`] (io_uring where available by default).
    pub fn new(cfg: RelayConfig) -> Result<Relay, MediaError> {
        // `MEDIA_RELAY_ENGINE` lets a test run pick the engine when the
        // config leaves it to the relay.
        let engine = match cfg.engine {
            RelayEngine::Auto => RelayEngine::from_env(),
            e => e,
        };
        Relay::with_engine(cfg, engine)
    }

    /// Like [`Relay::new`] with the forwarding engine chosen by the caller.
    pub fn with_engine(cfg: RelayConfig, engine: RelayEngine) -> Result<Relay, MediaError> {
        let handle = Handle::try_current().map_err(|_| MediaError::NoRuntime)?;
        if cfg.port_min == 0 || cfg.port_min > cfg.port_max {
            return Err(MediaError::Config(
                "port range must be 1..=65535 with min <= max",
            ));
        }
        if cfg.dead_media.is_zero() {
            return Err(MediaError::Config("dead_media must be positive"));
        }
        if cfg.police.window.is_zero() {
            return Err(MediaError::Config("police window must be positive"));
        }
        let first = cfg.port_min + cfg.port_min % 2;
        let free: VecDeque<u16> = (u32::from(first)..u32::from(cfg.port_max))
            .step_by(2)
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        if free.is_empty() {
            return Err(MediaError::Config("port range holds no even/odd port pair"));
        }
        let pool = Arc::new(Pool {
            pairs: free.len(),
            free: Mutex::new(free),
        });
        // An IPv6 socket bound to :: also takes IPv4 (mapped) peers: count
        // the smaller header then, the lenient side.
        let ip_overhead = match cfg.bind_ip {
            IpAddr::V6(v6) if !v6.is_unspecified() => IPV6_UDP_OCTETS,
            _ => IPV4_UDP_OCTETS,
        };
        let epoch = Instant::now();
        let police = Arc::<PoliceTotals>::default();
        let shared = Shared {
            epoch,
            totals: police.clone(),
            ip_overhead,
            burst_ns: u64::try_from(cfg.police.burst.as_nanos()).unwrap_or(u64::MAX),
        };
        let (workers, engines): (Vec<_>, Vec<_>) = (0..cfg.worker_count())
            .map(|i| WorkerHandle::start(i, shared.clone(), engine))
            .collect::<Result<Vec<_>, _>>()
            .map_err(MediaError::Worker)?
            .into_iter()
            .unzip();
        let engine = engines.first().copied().unwrap_or(RelayEngine::Poll);
        debug!(?engine, workers = workers.len(), "media relay started");
        let inner = Arc::new(Inner {
            cfg,
            engine,
            epoch,
            pool,
            workers,
            sessions: Mutex::new(HashMap::new()),
            subscribers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            police,
            ip_overhead,
        });
        let period =
            (inner.cfg.dead_media / 4).clamp(Duration::from_millis(20), Duration::from_secs(5));
        handle.spawn(sweep(Arc::downgrade(&inner), period));
        let period = (inner.cfg.police.window / 4).max(Duration::from_millis(10));
        handle.spawn(police_sweep(Arc::downgrade(&inner), period));
        Ok(Relay { inner })
    }

    pub fn config(&self) -> &RelayConfig {
        &self.inner.cfg
    }

    /// The engine the workers run: `IoUring` or `Poll`, never `Auto`.
    pub fn engine(&self) -> RelayEngine {
        self.inner.engine
    }

    /// A session with one stream (one RTP/RTCP port pair per side).
    pub fn create_session(&self) -> Result<Session, MediaError> {
        self.create_session_with(1)
    }

    /// A session with `streams` streams (one per m= line), each with its own
    /// port pair per side. Errors when the range cannot hold them all; the
    /// ports taken so far go back to the pool.
    pub fn create_session_with(&self, streams: usize) -> Result<Session, MediaError> {
        let id = SessionId(self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let now = self.inner.now_us();
        let state = Arc::new(SessionState {
            id,
            clock_rate: AtomicU32::new(8000),
            event_pt: AtomicU16::new(NO_EVENT_PT),
            baseline: AtomicU64::new(now),
            dead_check: AtomicBool::new(true),
            notified: AtomicBool::new(false),
            streams: Mutex::new(Vec::new()),
            police: Default::default(),
            meters: Mutex::new([Meter::new(now), Meter::new(now)]),
        });
        let mut session = Session {
            relay: self.inner.clone(),
            state,
            streams: Vec::with_capacity(streams),
            released: false,
        };
        for _ in 0..streams {
            session.add_stream()?;
        }
        lock(&self.inner.sessions).insert(id, session.state.clone());
        debug!(session = %id, streams, "media session created");
        Ok(session)
    }

    pub fn active_sessions(&self) -> usize {
        lock(&self.inner.sessions).len()
    }

    /// Ports bound or not yet returned. A released session's ports come back
    /// once its worker has closed the sockets (at once, normally; awaiting
    /// [`Session::close`] guarantees it).
    pub fn ports_in_use(&self) -> usize {
        2 * (self.inner.pool.pairs - lock(&self.inner.pool.free).len())
    }

    /// Subscribes to dead-media notices: the id of each session whose RTP and
    /// RTCP stayed silent in both directions for `dead_media`, once per silent
    /// spell (traffic that resumes re-arms it). Each call returns a new
    /// receiver; notices sent before it was made are not replayed.
    pub fn dead_media_events(&self) -> mpsc::UnboundedReceiver<SessionId> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.inner.subscribers).push(tx);
        rx
    }

    /// Policing totals over every session since the relay started.
    pub fn police_stats(&self) -> PoliceStats {
        let p = &self.inner.police;
        PoliceStats {
            exceeded_episodes: p.episodes.load(Ordering::Relaxed),
            dropped_packets: p.dropped.load(Ordering::Relaxed),
            exceeding_now: p.exceeding.load(Ordering::Relaxed),
        }
    }
}

impl Inner {
    /// The worker that owns all of a session's sockets.
    fn worker(&self, id: SessionId) -> &WorkerHandle {
        // Ids count up from 1: sessions spread evenly over the workers.
        &self.workers[(id.0 % self.workers.len() as u64) as usize]
    }

    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn instant(&self, stamp: u64) -> Option<Instant> {
        // Stamps are microseconds since the epoch plus one; 0 means never.
        stamp
            .checked_sub(1)
            .map(|us| self.epoch + Duration::from_micros(us))
    }

    /// Takes a port pair from the free list and binds it. Ports that some
    /// other program holds are skipped and go to the back of the list.
    fn take_endpoint(&self) -> Result<Endpoint, MediaError> {
        let mut free = lock(&self.pool.free);
        for _ in 0..free.len() {
            let Some(port) = free.pop_front() else { break };
            match bind_pair(self.cfg.bind_ip, port) {
                Ok(sockets) => {
                    return Ok(Endpoint {
                        sockets,
                        port,
                        lease: Lease {
                            pool: self.pool.clone(),
                            port,
                        },
                    });
                }
                Err((addr, e)) if e.kind() == io::ErrorKind::AddrInUse => {
                    debug!(%addr, "relay port in use elsewhere, skipped");
                    free.push_back(port);
                }
                Err((addr, source)) => {
                    free.push_back(port);
                    return Err(MediaError::Bind { addr, source });
                }
            }
        }
        Err(MediaError::Exhausted {
            min: self.cfg.port_min,
            max: self.cfg.port_max,
        })
    }

    fn sweep_once(&self) {
        let now = self.now_us();
        let limit = u64::try_from(self.cfg.dead_media.as_micros()).unwrap_or(u64::MAX);
        let mut dead = Vec::new();
        for s in lock(&self.sessions).values() {
            if !s.dead_check.load(Ordering::Relaxed) {
                continue;
            }
            let last = s.last_activity();
            if now.saturating_sub(last) >= limit {
                if !s.notified.swap(true, Ordering::Relaxed) {
                    dead.push(s.id);
                }
            } else {
                s.notified.store(false, Ordering::Relaxed);
            }
        }
        if dead.is_empty() {
            return;
        }
        let mut subs = lock(&self.subscribers);
        for id in dead {
            debug!(session = %id, "dead media");
            subs.retain(|tx| tx.send(id).is_ok());
        }
    }

    /// Measures every session's rate per direction and tracks episodes.
    fn police_once(&self) {
        let now = self.now_us();
        let cfg = &self.cfg.police;
        let mut exceeding = 0;
        for s in lock(&self.sessions).values() {
            let octets = s.offered_octets(self.ip_overhead);
            let mut meters = lock(&s.meters);
            for (i, meter) in meters.iter_mut().enumerate() {
                let p = &s.police[i];
                let reserved = p.reserved_kbps.load(Ordering::Relaxed);
                let (bps, change) =
                    meter.sample(now, octets[i], reserved, cfg.margin_percent, cfg.window);
                let kbps = u32::try_from(bps / 1000).unwrap_or(u32::MAX);
                p.measured_kbps.store(kbps, Ordering::Relaxed);
                let direction = DIRECTIONS[i];
                match change {
                    Some(Episode::Started) => {
                        p.episodes.fetch_add(1, Ordering::Relaxed);
                        self.police.episodes.fetch_add(1, Ordering::Relaxed);
                        warn!(
                            session = %s.id,
                            direction,
                            measured_kbps = kbps,
                            reserved_kbps = reserved,
                            margin_percent = cfg.margin_percent,
                            window_ms = cfg.window.as_millis(),
                            "media exceeds its bandwidth reservation"
                        );
                    }
                    Some(Episode::Ended) => {
                        debug!(session = %s.id, direction, measured_kbps = kbps, reserved_kbps = reserved, "media back within its reservation");
                    }
                    None => {}
                }
                if meter.in_episode() {
                    exceeding += 1;
                }
            }
        }
        self.police.exceeding.store(exceeding, Ordering::Relaxed);
    }
}

/// Names of the directions in logs, indexed by the sending side.
const DIRECTIONS: [&str; 2] = ["a_to_b", "b_to_a"];

/// One police sweep for all sessions; it ends when the relay is dropped.
async fn police_sweep(relay: Weak<Inner>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = relay.upgrade() else { return };
        inner.police_once();
    }
}

/// One sweep for all sessions; it ends when the relay is dropped.
async fn sweep(relay: Weak<Inner>, period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = relay.upgrade() else { return };
        inner.sweep_once();
    }
}

fn bind_pair(ip: IpAddr, port: u16) -> Result<[std::net::UdpSocket; 2], (SocketAddr, io::Error)> {
    let rtp = SocketAddr::new(ip, port);
    let rtcp = SocketAddr::new(ip, port + 1);
    Ok([
        bind_udp(rtp).map_err(|e| (rtp, e))?,
        bind_udp(rtcp).map_err(|e| (rtcp, e))?,
    ])
}

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Never share a relay port with another socket.
    s.set_reuse_address(false)?;
    if let Err(e) = s.set_recv_buffer_size(SOCKET_BUF) {
        trace!(%addr, error = %e, "SO_RCVBUF not raised");
    }
    if let Err(e) = s.set_send_buffer_size(SOCKET_BUF) {
        trace!(%addr, error = %e, "SO_SNDBUF not raised");
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Returns its port pair to the pool when dropped (after the sockets).
pub(crate) struct Lease {
    pool: Arc<Pool>,
    port: u16,
}

impl Drop for Lease {
    fn drop(&mut self) {
        lock(&self.pool.free).push_back(self.port);
    }
}

/// One side's sockets of one stream, bound and not yet handed to a worker.
/// Field order matters: the sockets close before the lease gives the ports
/// back.
pub(crate) struct Endpoint {
    pub sockets: [std::net::UdpSocket; 2],
    pub port: u16,
    pub lease: Lease,
}

/// A peer address shared without a lock per packet: readers compare the
/// generation and take the mutex only when it moved.
#[derive(Default)]
pub(crate) struct SharedAddr {
    pub generation: AtomicU64,
    addr: Mutex<Option<SocketAddr>>,
}

impl SharedAddr {
    pub fn store(&self, a: Option<SocketAddr>) {
        let mut g = lock(&self.addr);
        *g = a;
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn load(&self) -> Option<SocketAddr> {
        *lock(&self.addr)
    }
}

/// One channel (RTP or RTCP) of one side.
#[derive(Default)]
pub(crate) struct Channel {
    /// Where this side's phone gets packets on this channel.
    pub remote: SharedAddr,
    /// Bumped by `set_remote`: the receiving socket re-latches on the next packet.
    pub arm: AtomicU64,
}

#[derive(Default)]
pub(crate) struct DirCounters {
    pub packets: [AtomicU64; 2],
    pub bytes: [AtomicU64; 2],
    pub last: [AtomicU64; 2],
    pub lost: AtomicU64,
    pub jitter: AtomicU32,
    pub dropped_source: AtomicU64,
    pub dropped_invalid: AtomicU64,
    pub dropped_no_destination: AtomicU64,
    pub send_errors: AtomicU64,
}

/// State of one stream shared by its worker and the session handle.
#[derive(Default)]
pub(crate) struct StreamState {
    /// `[side][channel]`
    pub channels: [[Channel; 2]; 2],
    /// Indexed by the side packets come from.
    pub dirs: [DirCounters; 2],
}

pub(crate) struct SessionState {
    pub id: SessionId,
    pub clock_rate: AtomicU32,
    pub event_pt: AtomicU16,
    /// Start of the silence clock (creation, or re-enabling the check).
    baseline: AtomicU64,
    dead_check: AtomicBool,
    notified: AtomicBool,
    /// Read by the sweep; changed only when a stream is added.
    streams: Mutex<Vec<Arc<StreamState>>>,
    /// Indexed by the sending side.
    pub police: [DirPolice; 2],
    /// Touched by the police sweep and nothing on the packet path.
    meters: Mutex<[Meter; 2]>,
}

/// Policing state of one direction of a session. Aligned so that the two
/// directions' buckets share no cache line.
#[derive(Default)]
#[repr(align(64))]
pub(crate) struct DirPolice {
    reserved_kbps: AtomicU32,
    /// The rate the bucket lets through; 0 when not dropping.
    pub drop_above_kbps: AtomicU32,
    pub bucket: Bucket,
    pub dropped: AtomicU64,
    episodes: AtomicU64,
    measured_kbps: AtomicU32,
}

impl SessionState {
    fn last_activity(&self) -> u64 {
        let mut last = self.baseline.load(Ordering::Relaxed);
        for st in lock(&self.streams).iter() {
            for d in &st.dirs {
                for l in &d.last {
                    last = last.max(l.load(Ordering::Relaxed).saturating_sub(1));
                }
            }
        }
        last
    }

    /// Octets each side has sent on all streams, RTP and RTCP, with
    /// `ip_overhead` per datagram.
    fn offered_octets(&self, ip_overhead: u64) -> [u64; 2] {
        let mut sum = [0u64; 2];
        for st in lock(&self.streams).iter() {
            for (total, d) in sum.iter_mut().zip(&st.dirs) {
                for c in [RTP, RTCP] {
                    let packets = d.packets[c].load(Ordering::Relaxed);
                    *total = total
                        .wrapping_add(d.bytes[c].load(Ordering::Relaxed))
                        .wrapping_add(packets.wrapping_mul(ip_overhead));
                }
            }
        }
        sum
    }
}

struct StreamHandle {
    state: Arc<StreamState>,
    ports: [u16; 2],
}

/// The relay for one call. Dropping it (or [`Session::release`]) closes its
/// sockets and returns its ports to the pool, exactly once.
pub struct Session {
    relay: Arc<Inner>,
    state: Arc<SessionState>,
    streams: Vec<StreamHandle>,
    released: bool,
}

impl Session {
    pub fn id(&self) -> SessionId {
        self.state.id
    }

    /// The RTP port of `side` on the first stream (RTCP is the next port).
    pub fn local_port(&self, side: Side) -> u16 {
        self.stream_local_port(0, side).unwrap_or(0)
    }

    /// The RTP port of `side` on stream `stream` (one stream per m= line).
    pub fn stream_local_port(&self, stream: usize, side: Side) -> Option<u16> {
        Some(self.streams.get(stream)?.ports[side.index()])
    }

    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    pub fn advertise_ip(&self) -> IpAddr {
        self.relay.cfg.advertise_ip
    }

    /// Adds a stream (a port pair per side) for an m= line added by a
    /// re-INVITE; returns its index.
    pub fn add_stream(&mut self) -> Result<usize, MediaError> {
        let a = self.relay.take_endpoint()?;
        let b = self.relay.take_endpoint()?;
        let state = Arc::new(StreamState::default());
        let ports = [a.port, b.port];
        self.relay
            .worker(self.state.id)
            .send(Command::AddStream(Box::new(NewStream {
                session: self.state.clone(),
                stream: state.clone(),
                ends: [a, b],
            })));
        lock(&self.state.streams).push(state.clone());
        self.streams.push(StreamHandle { state, ports });
        Ok(self.streams.len() - 1)
    }

    /// The address that side's SDP gave (c= and m= port) for the first
    /// stream. Packets go there until the first packet from that side latches
    /// its real source (symmetric RTP through NAT). Calling it again (a
    /// re-INVITE) re-arms latching. `rtcp` defaults to the RTP port + 1; an
    /// unspecified address (0.0.0.0, old-style hold) or port 0 stops sending.
    pub fn set_remote(&self, side: Side, rtp: SocketAddr, rtcp: Option<SocketAddr>) {
        self.set_stream_remote(0, side, rtp, rtcp);
    }

    pub fn set_stream_remote(
        &self,
        stream: usize,
        side: Side,
        rtp: SocketAddr,
        rtcp: Option<SocketAddr>,
    ) {
        let Some(s) = self.streams.get(stream) else {
            warn!(session = %self.id(), stream, "set_remote on a stream that does not exist");
            return;
        };
        let usable = |a: SocketAddr| (!a.ip().is_unspecified() && a.port() != 0).then_some(a);
        let rtp = usable(rtp);
        let rtcp = match rtcp {
            Some(a) => usable(a),
            None => rtp.and_then(|a| Some(SocketAddr::new(a.ip(), a.port().checked_add(1)?))),
        };
        let ch = &s.state.channels[side.index()];
        for (c, addr) in [(&ch[RTP], rtp), (&ch[RTCP], rtcp)] {
            c.remote.store(addr);
            c.arm.fetch_add(1, Ordering::Release);
        }
        debug!(session = %self.id(), stream, ?side, ?rtp, ?rtcp, "remote media address set");
    }

    /// The RTP clock rate used for jitter (default 8000 Hz: PCMU, PCMA, G.729, G.722).
    pub fn set_clock_rate(&self, hz: u32) {
        if hz > 0 {
            self.state.clock_rate.store(hz, Ordering::Relaxed);
        }
    }

    /// The telephone-event payload type, left out of the jitter estimate
    /// (its timestamps mark event starts). Packets are relayed either way.
    pub fn set_event_payload_type(&self, pt: Option<u8>) {
        let v = pt.map_or(NO_EVENT_PT, u16::from);
        self.state.event_pt.store(v, Ordering::Relaxed);
    }

    /// The bandwidth admission reserved for this call, in kbps per
    /// direction (`a_to_b`: what side A sends); 0 leaves a direction
    /// unpoliced. Call it again when a re-INVITE changes the reservation.
    /// The relay counts IP + UDP + payload octets of RTP and RTCP on all
    /// streams; layer-2 framing, which reservations include, is not seen,
    /// so policing is slightly lenient.
    pub fn set_reservation(&self, kbps_a_to_b: u32, kbps_b_to_a: u32) {
        let cfg = &self.relay.cfg.police;
        for (p, kbps) in self.state.police.iter().zip([kbps_a_to_b, kbps_b_to_a]) {
            p.reserved_kbps.store(kbps, Ordering::Relaxed);
            let drop_above = if cfg.drop_excess {
                allowed_kbps(kbps, cfg.margin_percent)
            } else {
                0
            };
            p.drop_above_kbps.store(drop_above, Ordering::Relaxed);
        }
        debug!(session = %self.id(), kbps_a_to_b, kbps_b_to_a, "bandwidth reservation set");
    }

    /// Turns the dead-media check of this session off (e.g. while ringing or
    /// on hold) or on again; turning it on restarts the silence clock.
    pub fn set_dead_media_check(&self, enabled: bool) {
        if enabled {
            self.state
                .baseline
                .store(self.relay.now_us(), Ordering::Relaxed);
            self.state.notified.store(false, Ordering::Relaxed);
        }
        self.state.dead_check.store(enabled, Ordering::Relaxed);
    }

    /// Counters of the first stream.
    pub fn stats(&self) -> SessionStats {
        self.stream_stats(0).unwrap_or_default()
    }

    pub fn stream_stats(&self, stream: usize) -> Option<SessionStats> {
        let st = &self.streams.get(stream)?.state;
        let clock = self.state.clock_rate.load(Ordering::Relaxed).max(1);
        let dir = |d: &DirCounters, p: &DirPolice| {
            let ch = |c: usize| ChannelStats {
                packets: d.packets[c].load(Ordering::Relaxed),
                bytes: d.bytes[c].load(Ordering::Relaxed),
                last_packet: self.relay.instant(d.last[c].load(Ordering::Relaxed)),
            };
            let jitter = d.jitter.load(Ordering::Relaxed);
            DirectionStats {
                rtp: ch(RTP),
                rtcp: ch(RTCP),
                lost: d.lost.load(Ordering::Relaxed),
                jitter,
                jitter_ms: f64::from(jitter) * 1000.0 / f64::from(clock),
                dropped_source: d.dropped_source.load(Ordering::Relaxed),
                dropped_invalid: d.dropped_invalid.load(Ordering::Relaxed),
                dropped_no_destination: d.dropped_no_destination.load(Ordering::Relaxed),
                send_errors: d.send_errors.load(Ordering::Relaxed),
                measured_kbps: p.measured_kbps.load(Ordering::Relaxed),
                reserved_kbps: p.reserved_kbps.load(Ordering::Relaxed),
                police_exceeded_episodes: p.episodes.load(Ordering::Relaxed),
                police_dropped_packets: p.dropped.load(Ordering::Relaxed),
            }
        };
        let p = &self.state.police;
        Some(SessionStats {
            a_to_b: dir(&st.dirs[0], &p[0]),
            b_to_a: dir(&st.dirs[1], &p[1]),
        })
    }

    /// Closes the sockets and releases the ports (they are back in the pool
    /// once the session's worker has closed them, normally at once).
    pub fn release(self) {}

    /// Like [`Session::release`], and waits until the ports are back in the pool.
    pub async fn close(mut self) {
        if let Some(done) = self.stop(true) {
            // An error means the worker is gone, and its sockets with it.
            let _ = done.await;
        }
    }

    /// Hands the session's sockets back to its worker to close, once;
    /// `wait` asks for a signal when the ports are back in the pool.
    fn stop(&mut self, wait: bool) -> Option<oneshot::Receiver<()>> {
        if std::mem::replace(&mut self.released, true) {
            return None;
        }
        lock(&self.relay.sessions).remove(&self.state.id);
        debug!(session = %self.state.id, "media session released");
        if self.streams.is_empty() {
            return None;
        }
        let (done, rx) = if wait {
            let (tx, rx) = oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        self.relay.worker(self.state.id).send(Command::Remove {
            session: self.state.id,
            done,
        });
        rx
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop(false);
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.state.id)
            .field(
                "ports",
                &self.streams.iter().map(|s| s.ports).collect::<Vec<_>>(),
            )
            .finish()
    }
}
