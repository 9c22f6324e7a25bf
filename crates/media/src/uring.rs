//! The io_uring forwarding engine (Linux 6.10 and later).
//!
//! Each worker owns one ring. Every relay socket has one multishot
//! `recvmsg` armed on it that takes its buffers from a ring of provided
//! buffers, so a datagram costs no receive syscall and no re-arming; each
//! datagram to forward becomes a `send` naming its destination, straight
//! from the buffer it arrived in, and the buffer goes back to the ring when
//! that send completes. One `io_uring_enter` per loop turn submits the sends
//! of the last turn and waits for the next completions; under load a turn
//! also submits its sends early to have their buffers back, and a socket
//! whose receive ran out of buffers is read with plain `recvmmsg` until
//! it is empty, as the polling engine would, so that overload degrades the
//! way it does there instead of turning into a storm of failed receives.
//!
//! The ring defers its completion work to the worker
//! (`IORING_SETUP_DEFER_TASKRUN`): receives run when the worker enters the
//! kernel, in a batch with the sends, and an idle worker sleeps with no
//! timer at all.
//!
//! Checks, latching and counters are the polling engine's
//! ([`crate::engine::forward`]); only the I/O differs.

use std::alloc::{self, Layout};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};
use socket2::SockAddr;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::batch::{Batch, MTU};
use crate::engine::{forward, Command, Flow, NewStream, Shared};
use crate::relay::{Lease, SessionId};

/// Provided buffers per worker (a power of two). A buffer is held from its
/// datagram's arrival until the send that forwards it completes, normally
/// within one loop turn. A receive that finds none left ends; its socket
/// is then read with plain `recvmmsg` batches until found empty, and only
/// then armed again (re-arming at once would meet the same empty ring and
/// fail again, socket after socket). Few buffers stay in the CPU caches;
/// the kernel takes them in ring order.
const BUFFERS: usize = 128;
/// When the sends a turn queued hold more buffers than this, the turn
/// submits them and takes their buffers back before it waits: the wait
/// runs the next receives, and they need buffers.
const LOW_BUFFERS: usize = BUFFERS / 4;
/// Extra submissions a turn makes to take buffers back, at most.
const MAX_ROUNDS: usize = 4;
/// Queued sends a wait counts on, at most. The kernel runs receive work
/// in proportion to the completions awaited, so a wait for all of a large
/// turn's sends would make the next turn larger still, until the buffers
/// run out; bounded, turns stay short under overload.
const TURN_SENDS: usize = 32;
/// Entries of the ring's file table, at most (also bounded by the open
/// file limit); sockets past it are named by descriptor.
const MAX_FIXED_FILES: u32 = 1 << 16;
/// The `recvmsg` header, room for an IPv6 source address, and the datagram.
const BUF_LEN: usize = 64 + MTU;
const BGID: u16 = 0;
const SQ_ENTRIES: u32 = 1024;
const CQ_ENTRIES: u32 = 8 * BUFFERS as u32;
/// How long shutdown waits for the kernel to let go of sockets and buffers.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

const NAME_LEN: libc::socklen_t = mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;

/// Request kinds, in the low bits of `user_data`.
const K_RECV: u64 = 0;
const K_SEND: u64 = 1;
const K_WAKE: u64 = 2;
const K_CANCEL: u64 = 3;

fn user_data(kind: u64, token: usize, bid: u16) -> u64 {
    kind | u64::from(bid) << 2 | (token as u64) << 18
}

fn split_user_data(ud: u64) -> (u64, usize, u16) {
    (ud & 3, (ud >> 18) as usize, (ud >> 2) as u16)
}

/// Wakes a worker blocked in its ring: an eventfd it keeps a read on.
pub(crate) struct Kick(OwnedFd);

impl Kick {
    fn new() -> io::Result<Kick> {
        // SAFETY: plain syscall; the descriptor is owned from here on.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        Ok(Kick(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn wake(&self) -> io::Result<()> {
        let one = 1u64;
        // SAFETY: writes 8 octets from a live u64.
        let n = unsafe { libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8) };
        // EAGAIN: the counter is saturated, the worker is awake anyway.
        if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Starts an io_uring worker thread; errors (no io_uring, too old a kernel,
/// refused by policy) come back before any command is taken.
pub(crate) fn start(
    index: usize,
    shared: Shared,
    rx: mpsc::Receiver<Command>,
) -> io::Result<Arc<Kick>> {
    let kick = Arc::new(Kick::new()?);
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let worker_kick = kick.clone();
    thread::Builder::new()
        .name(format!("media-uring-{index}"))
        .spawn(move || {
            // The ring is built on the thread that uses it: a single-issuer
            // ring belongs to the thread that created it.
            match Worker::new(shared, rx, worker_kick) {
                Ok(mut w) => {
                    let _ = ready_tx.send(Ok(()));
                    w.run();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            }
        })?;
    ready_rx
        .recv()
        .map_err(|_| io::Error::other("io_uring worker ended during setup"))??;
    Ok(kick)
}

/// The ring of provided buffers: entries the kernel takes buffers from,
/// page-aligned as the interface requires.
struct BufRing {
    entries: *mut types::BufRingEntry,
    layout: Layout,
    tail: u16,
    /// Left allocated when the kernel may still hold it.
    leak: bool,
}

impl BufRing {
    fn new() -> io::Result<BufRing> {
        let layout = Layout::from_size_align(BUFFERS * mem::size_of::<types::BufRingEntry>(), 4096)
            .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let entries = unsafe { alloc::alloc_zeroed(layout) }.cast::<types::BufRingEntry>();
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        Ok(BufRing {
            entries,
            layout,
            tail: 0,
            leak: false,
        })
    }

    /// Queues buffer `bid` at `addr`; the kernel sees it after [`Self::publish`].
    fn push(&mut self, bid: u16, addr: *mut u8) {
        let i = usize::from(self.tail) & (BUFFERS - 1);
        // SAFETY: `i` is within the allocation of `BUFFERS` entries.
        let e = unsafe { &mut *self.entries.add(i) };
        e.set_addr(addr as u64);
        e.set_len(BUF_LEN as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    fn publish(&self) {
        // SAFETY: the tail overlays the first entry's reserved field, inside
        // the allocation; the kernel reads it concurrently, hence the atomic.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries).cast::<AtomicU16>();
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if !self.leak {
            // SAFETY: allocated in `new` with this layout.
            unsafe { alloc::dealloc(self.entries.cast(), self.layout) };
        }
    }
}

/// One relay socket on the ring.
struct Slot {
    sock: mio::net::UdpSocket,
    /// Its index in the ring's file table, which spares the kernel a file
    /// lookup per request; `None` past the table's end.
    fixed: Option<u32>,
    flow: Flow,
    /// Requests in flight naming this socket: its receive while armed and
    /// its sends. The socket closes only at zero, so the kernel never holds
    /// a closed port.
    ops: u32,
    armed: bool,
    closing: bool,
}

struct Held {
    tokens: [usize; 4],
    leases: [Lease; 2],
}

/// A session being closed: its sockets' requests are cancelled and it
/// goes once none is left in flight.
struct Closing {
    held: Vec<Held>,
    done: Option<oneshot::Sender<()>>,
}

struct Worker {
    // Dropped first: the ring lets go of the buffers before they are freed.
    ring: IoUring,
    bufring: BufRing,
    /// `BUFFERS` buffers of `BUF_LEN` octets, written by the kernel while
    /// they are in the buffer ring; a raw allocation for that reason.
    bufs: *mut u8,
    bufs_layout: Layout,
    /// Destination address of the send that holds buffer `bid`.
    dests: Vec<libc::sockaddr_storage>,
    /// The multishot receives' template: only the name length counts.
    msghdr: Box<libc::msghdr>,
    kick: Arc<Kick>,
    wake_buf: Box<u64>,
    rx: mpsc::Receiver<Command>,
    shared: Shared,
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    /// Size of the ring's file table; slot `t` uses entry `t` when below.
    fixed_files: u32,
    sessions: HashMap<SessionId, Vec<Held>>,
    closing: Vec<Closing>,
    rearm: Vec<usize>,
    /// Sockets whose receive ended for want of buffers, read directly
    /// (one batch each a turn) until found empty, then re-armed.
    backlog: VecDeque<usize>,
    /// For those reads and their sends; made on first use, as most
    /// workers never need it.
    batch: Option<Box<Batch>>,
    cqes: Vec<(u64, i32, u32)>,
    /// Sends queued since the last submission: their completions are not
    /// worth a wake-up of their own.
    sends: usize,
    /// Buffers the kernel has handed over and not had back yet.
    out: usize,
}

impl Worker {
    fn new(shared: Shared, rx: mpsc::Receiver<Command>, kick: Arc<Kick>) -> io::Result<Worker> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            // Flags pending receive work, so that a submission that does not
            // wait (sockets left to read) still runs it.
            .setup_taskrun_flag()
            .setup_submit_all()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)?;
        // Multishot receives with provided buffers and sends naming their
        // destination exist from 6.0 on; insist on a kernel well past
        // that (the bundle feature, 6.10) rather than probe each one.
        if !ring.params().is_feature_recvsend_bundle() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring older than Linux 6.10",
            ));
        }
        let bufring = BufRing::new()?;
        // SAFETY: the entries stay allocated until the ring is gone (see
        // `Drop`, which leaks them if the kernel may still use them).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufring.entries as u64,
                BUFFERS as u16,
                BGID,
                0,
            )?;
        }
        // The file table must fit the open file limit.
        // SAFETY: getrlimit writes into the struct we own.
        let mut lim: libc::rlimit = unsafe { mem::zeroed() };
        let fixed_files = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            u32::try_from(lim.rlim_cur)
                .unwrap_or(u32::MAX)
                .min(MAX_FIXED_FILES)
        } else {
            0
        };
        let fixed_files = match ring.submitter().register_files_sparse(fixed_files) {
            Ok(()) => fixed_files,
            Err(e) => {
                debug!(error = %e, "no io_uring file table, sockets named by descriptor");
                0
            }
        };
        let bufs_layout =
            Layout::from_size_align(BUFFERS * BUF_LEN, 64).map_err(io::Error::other)?;
        // SAFETY: non-zero size.
        let bufs = unsafe { alloc::alloc(bufs_layout) };
        if bufs.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        // SAFETY: all-zero is a valid msghdr and sockaddr_storage.
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { mem::zeroed() });
        msghdr.msg_namelen = NAME_LEN;
        let mut w = Worker {
            ring,
            bufring,
            bufs,
            bufs_layout,
            dests: vec![unsafe { mem::zeroed() }; BUFFERS],
            msghdr,
            kick,
            wake_buf: Box::new(0),
            rx,
            shared,
            slots: Vec::new(),
            free: Vec::new(),
            fixed_files,
            sessions: HashMap::new(),
            closing: Vec::new(),
            rearm: Vec::new(),
            backlog: VecDeque::new(),
            batch: None,
            cqes: Vec::with_capacity(CQ_ENTRIES as usize),
            sends: 0,
            out: 0,
        };
        for bid in 0..BUFFERS as u16 {
            let addr = w.buf_ptr(bid);
            w.bufring.push(bid, addr);
        }
        w.bufring.publish();
        w.arm_wake()?;
        w.ring.submit()?;
        Ok(w)
    }

    fn buf_ptr(&self, bid: u16) -> *mut u8 {
        buf_addr(self.bufs, bid)
    }

    /// Queues a request, submitting what is queued when the queue is full.
    fn push(&mut self, e: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every request's buffers and addresses live in `self`
            // until its completion is reaped (or the ring is gone).
            if unsafe { self.ring.submission().push(e) }.is_ok() {
                return Ok(());
            }
            self.ring.submit()?;
        }
    }

    fn arm_wake(&mut self) -> io::Result<()> {
        let fd = self.kick.0.as_raw_fd();
        let buf = (&mut *self.wake_buf as *mut u64).cast::<u8>();
        let e = opcode::Read::new(types::Fd(fd), buf, 8)
            .build()
            .user_data(user_data(K_WAKE, 0, 0));
        self.push(&e)
    }

    fn arm_recv(&mut self, t: usize) {
        let Some(Some(slot)) = self.slots.get_mut(t) else {
            return;
        };
        if slot.armed || slot.closing {
            return;
        }
        slot.armed = true;
        slot.ops += 1;
        let (fd, flags) = target(slot);
        let e =
            opcode::RecvMsgMulti::new(types::Fd(fd), &*self.msghdr as *const libc::msghdr, BGID)
                .build()
                .flags(flags)
                .user_data(user_data(K_RECV, t, 0));
        if let Err(e) = self.push(&e) {
            warn!(error = %e, "cannot arm a relay receive, retried next turn");
            if let Some(Some(slot)) = self.slots.get_mut(t) {
                slot.armed = false;
                slot.ops = slot.ops.saturating_sub(1);
            }
            self.rearm.push(t);
        }
    }

    fn run(&mut self) {
        loop {
            // Waits for one completion beyond those of the sends being
            // submitted (which mostly complete during the submission): any
            // datagram wakes the worker, and a turn's sends never cost a
            // second enter. Waiting for more with a bounded delay
            // (IORING_ENTER min-wait) arms a timer each turn, and on a
            // virtual machine that costs more than the wake-ups it saves
            // (measured: +1 to +4 µs a packet). With sockets left to read
            // or re-arm, it does not block at all.
            let want = mem::take(&mut self.sends).min(TURN_SENDS)
                + usize::from(self.rearm.is_empty() && self.backlog.is_empty());
            if let Err(e) = self.ring.submit_and_wait(want) {
                match e.raw_os_error() {
                    Some(libc::EINTR | libc::ETIME | libc::EBUSY | libc::EAGAIN) => {}
                    _ => {
                        warn!(error = %e, "relay io_uring wait failed");
                        thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            if !self.turn() {
                break;
            }
        }
        self.shutdown();
    }

    /// Handles what completed; false once the relay is gone.
    fn turn(&mut self) -> bool {
        let mut alive = true;
        let mut rounds = 0;
        loop {
            // Sends complete as they are submitted (UDP), so their buffers
            // come back within the turn.
            alive &= self.reap();
            self.bufring.publish();
            if self.sends == 0 || self.out <= LOW_BUFFERS || rounds == MAX_ROUNDS {
                break;
            }
            if self.submit_only().is_err() {
                break;
            }
            self.sends = 0;
            rounds += 1;
        }
        // Datagrams received earlier on a backlogged socket leave first:
        // the kernel issues their sends during the submission.
        if !self.backlog.is_empty() && self.sends > 0 && self.submit_only().is_ok() {
            self.sends = 0;
        }
        for _ in 0..self.backlog.len() {
            let Some(t) = self.backlog.pop_front() else {
                break;
            };
            if self.drain(t) {
                self.backlog.push_back(t);
            } else {
                self.rearm.push(t);
            }
        }
        for t in mem::take(&mut self.rearm) {
            self.arm_recv(t);
        }
        if !self.closing.is_empty() {
            self.finish_closing();
        }
        alive
    }

    /// Submits what is queued without running pending receive work (which
    /// the ring's task-run flag would otherwise ask for): the sends complete
    /// and give their buffers back, and no new receive takes one meanwhile.
    fn submit_only(&mut self) -> io::Result<usize> {
        let queued = self.ring.submission().len() as u32;
        // SAFETY: no argument is passed; the queued requests' buffers and
        // addresses live in `self` until their completions are reaped.
        unsafe {
            self.ring
                .submitter()
                .enter::<libc::sigset_t>(queued, 0, 0, None)
        }
    }

    /// Handles the completions at hand; false once the relay is gone.
    fn reap(&mut self) -> bool {
        let mut cqes = mem::take(&mut self.cqes);
        cqes.clear();
        cqes.extend(
            self.ring
                .completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        let now = self.shared.epoch.elapsed();
        let mut alive = true;
        for &(ud, res, flags) in &cqes {
            let (kind, t, bid) = split_user_data(ud);
            match kind {
                K_RECV => self.received(t, res, flags, now),
                K_SEND => self.sent(t, bid, res),
                K_WAKE => {
                    alive = self.commands();
                    if alive {
                        if let Err(e) = self.arm_wake() {
                            warn!(error = %e, "cannot re-arm the relay worker's wake-up");
                        }
                    }
                }
                _ => {}
            }
        }
        self.cqes = cqes;
        alive
    }

    fn recycle(&mut self, bid: u16) {
        recycle(&mut self.bufring, &mut self.out, self.bufs, bid);
    }

    fn received(&mut self, t: usize, res: i32, flags: u32, now: Duration) {
        let bid = cqueue::buffer_select(flags);
        if bid.is_some() {
            self.out += 1;
        }
        let Some(Some(slot)) = self.slots.get_mut(t) else {
            if let Some(bid) = bid {
                self.recycle(bid);
            }
            return;
        };
        if !cqueue::more(flags) {
            slot.armed = false;
            slot.ops = slot.ops.saturating_sub(1);
            if !slot.closing {
                if res == -libc::ENOBUFS {
                    self.backlog.push_back(t);
                } else {
                    self.rearm.push(t);
                }
            }
        }
        let Some(bid) = bid else {
            // No buffer: an error or the end of the multishot receive.
            if res < 0 && res != -libc::ECANCELED && res != -libc::ENOBUFS {
                debug!(port = slot.flow.port, error = %io::Error::from_raw_os_error(-res), "relay receive failed");
            }
            return;
        };
        if res <= 0 || slot.closing {
            recycle(&mut self.bufring, &mut self.out, self.bufs, bid);
            return;
        }
        let base = buf_addr(self.bufs, bid);
        // SAFETY: the kernel handed this buffer over with `res` octets
        // written; it is ours until recycled.
        let buf = unsafe { std::slice::from_raw_parts(base, (res as usize).min(BUF_LEN)) };
        let Ok(out) = types::RecvMsgOut::parse(buf, &self.msghdr) else {
            recycle(&mut self.bufring, &mut self.out, self.bufs, bid);
            return;
        };
        let src = parse_name(out.name_data());
        let payload = out.payload_data();
        let Some(to) = forward(&mut slot.flow, &self.shared, payload, src, now) else {
            recycle(&mut self.bufring, &mut self.out, self.bufs, bid);
            return;
        };
        let peer = slot.flow.peer;
        let (off, len) = (payload.as_ptr() as usize - base as usize, payload.len());
        let (fd, fd_flags) = match self.slots.get_mut(peer) {
            Some(Some(p)) if !p.closing => {
                p.ops += 1;
                target(p)
            }
            _ => {
                recycle(&mut self.bufring, &mut self.out, self.bufs, bid);
                return;
            }
        };
        let dest_len = write_dest(&mut self.dests[usize::from(bid)], to);
        let e = opcode::Send::new(types::Fd(fd), base.wrapping_add(off), len as u32)
            .dest_addr((&self.dests[usize::from(bid)] as *const libc::sockaddr_storage).cast())
            .dest_addr_len(dest_len)
            .build()
            .flags(fd_flags)
            .user_data(user_data(K_SEND, peer, bid));
        match self.push(&e) {
            Ok(()) => self.sends += 1,
            Err(e) => {
                warn!(error = %e, "cannot queue a relay send");
                self.sent(peer, bid, -libc::EIO);
            }
        }
    }

    /// Reads one batch waiting on socket `t` with a plain `recvmmsg` and
    /// forwards it with one `sendmmsg`; false once the socket is empty.
    /// Under overload a socket keeps being read this way, one batch a
    /// turn: re-armed while datagrams wait, its receive would take the
    /// few free buffers and end again (measured: far more loss).
    fn drain(&mut self, t: usize) -> bool {
        let Some(Some(me)) = self.slots.get_mut(t) else {
            return false;
        };
        if me.armed || me.closing {
            return false;
        }
        let batch = self.batch.get_or_insert_with(|| Box::new(Batch::new()));
        let n = match batch.recv(&me.sock) {
            Ok(n) => n,
            Err(e) => {
                debug!(port = me.flow.port, error = %e, "relay receive failed");
                return false;
            }
        };
        let peer = me.flow.peer;
        let open = matches!(self.slots.get(peer), Some(Some(p)) if !p.closing);
        let Some(Some(me)) = self.slots.get_mut(t) else {
            return false;
        };
        let now = self.shared.epoch.elapsed();
        for i in 0..n {
            let (pkt, src) = batch.packet(i);
            if let Some(to) = forward(&mut me.flow, &self.shared, pkt, src, now) {
                if open {
                    batch.queue(i, to);
                }
            }
        }
        if let Some(Some(out)) = self.slots.get(peer) {
            let failed = batch.flush(&out.sock);
            if failed > 0 {
                if let Some(Some(me)) = self.slots.get(t) {
                    me.flow.send_failed(failed);
                }
            }
        }
        n > 0
    }

    fn sent(&mut self, t: usize, bid: u16, res: i32) {
        if usize::from(bid) < BUFFERS {
            self.recycle(bid);
        }
        let Some(Some(slot)) = self.slots.get_mut(t) else {
            return;
        };
        slot.ops = slot.ops.saturating_sub(1);
        if res < 0 {
            // Counted on the direction whose packets this socket sends.
            let from = slot.flow.side.other();
            slot.flow.stream.dirs[from.index()]
                .send_errors
                .fetch_add(1, Ordering::Relaxed);
            debug!(port = slot.flow.port, error = %io::Error::from_raw_os_error(-res), "relay send failed");
        }
    }

    /// Applies the pending commands; false once the relay is gone.
    fn commands(&mut self) -> bool {
        loop {
            match self.rx.try_recv() {
                Ok(Command::AddStream(s)) => self.add(*s),
                Ok(Command::Remove { session, done }) => self.remove(session, done),
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn add(&mut self, s: NewStream) {
        let id = s.session.id;
        let tokens = crate::engine::take_tokens(&mut self.free, &mut self.slots);
        let (flows, leases) = s.into_flows(tokens);
        for (k, (sock, flow)) in flows.into_iter().enumerate() {
            let fixed = u32::try_from(tokens[k])
                .ok()
                .filter(|&i| i < self.fixed_files)
                .filter(|&i| {
                    let r = self
                        .ring
                        .submitter()
                        .register_files_update(i, &[sock.as_raw_fd()]);
                    if let Err(e) = &r {
                        debug!(session = %id, error = %e, "relay socket not in the io_uring table");
                    }
                    r.is_ok()
                });
            self.slots[tokens[k]] = Some(Slot {
                sock: mio::net::UdpSocket::from_std(sock),
                fixed,
                flow,
                ops: 0,
                armed: false,
                closing: false,
            });
            self.arm_recv(tokens[k]);
        }
        self.sessions
            .entry(id)
            .or_default()
            .push(Held { tokens, leases });
    }

    fn remove(&mut self, id: SessionId, done: Option<oneshot::Sender<()>>) {
        let held = self.sessions.remove(&id).unwrap_or_default();
        let mut armed: Vec<u64> = Vec::new();
        for t in held.iter().flat_map(|h| h.tokens) {
            if let Some(Some(slot)) = self.slots.get_mut(t) {
                slot.closing = true;
                if slot.armed {
                    armed.push(user_data(K_RECV, t, 0));
                }
            }
        }
        // By the receive's user data, which the kernel finds in a hash
        // table; matching by file scans every armed request, and with
        // thousands armed that scan was half the relay's CPU when calls
        // come and go at 1,800/s.
        for ud in armed {
            let e = opcode::AsyncCancel2::new(types::CancelBuilder::user_data(ud))
                .build()
                .user_data(user_data(K_CANCEL, 0, 0));
            if let Err(e) = self.push(&e) {
                warn!(error = %e, "cannot cancel a relay receive");
            }
        }
        self.closing.push(Closing { held, done });
    }

    /// Closes the sockets of sessions whose requests have all completed,
    /// then gives their ports back and signals whoever waits.
    fn finish_closing(&mut self) {
        let slots = &self.slots;
        let idle = |c: &Closing| {
            c.held.iter().flat_map(|h| h.tokens).all(|t| {
                slots
                    .get(t)
                    .and_then(Option::as_ref)
                    .is_none_or(|s| s.ops == 0)
            })
        };
        let (ready, waiting): (Vec<Closing>, Vec<Closing>) =
            mem::take(&mut self.closing).into_iter().partition(idle);
        self.closing = waiting;
        for c in ready {
            for held in c.held {
                for t in held.tokens {
                    if let Some(slot) = self.slots.get_mut(t) {
                        if let Some(i) = slot.as_ref().and_then(|s| s.fixed) {
                            // The table holds the socket open too.
                            if let Err(e) = self.ring.submitter().register_files_update(i, &[-1]) {
                                warn!(error = %e, "cannot drop a relay socket from the io_uring table");
                            }
                        }
                        // Closes the socket before the lease returns its port.
                        drop(slot.take());
                        self.free.push(t);
                    }
                }
                drop(held.leases);
            }
            if let Some(done) = c.done {
                let _ = done.send(());
            }
        }
    }

    /// Closes every socket, waiting (boundedly) for the kernel to finish
    /// with them.
    fn shutdown(&mut self) {
        let ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        for id in ids {
            self.remove(id, None);
        }
        let deadline = Instant::now() + SHUTDOWN_WAIT;
        self.finish_closing();
        while !self.closing.is_empty() && Instant::now() < deadline {
            let ts = types::Timespec::new().nsec(10_000_000);
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.turn();
        }
        if !self.closing.is_empty() {
            warn!("relay sockets still busy in io_uring at shutdown");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let busy = !self.closing.is_empty()
            || self.slots.iter().flatten().any(|s| s.ops > 0)
            || self.ring.submitter().unregister_buf_ring(BGID).is_err();
        if busy {
            // The kernel may still write into them: never free them.
            self.bufring.leak = true;
        } else {
            // SAFETY: allocated in `new` with this layout; nothing in
            // flight refers to it any more.
            unsafe { alloc::dealloc(self.bufs, self.bufs_layout) };
        }
    }
}

/// How a request names `slot`'s socket: descriptor, or table index with
/// the flag saying so.
fn target(slot: &Slot) -> (RawFd, squeue::Flags) {
    match slot.fixed {
        Some(i) => (i as RawFd, squeue::Flags::FIXED_FILE),
        None => (slot.sock.as_raw_fd(), squeue::Flags::empty()),
    }
}

fn buf_addr(bufs: *mut u8, bid: u16) -> *mut u8 {
    // Callers pass bids below `BUFFERS`, within the allocation.
    bufs.wrapping_add(usize::from(bid) * BUF_LEN)
}

/// Hands buffer `bid` back to the kernel (seen at the next publish).
fn recycle(ring: &mut BufRing, out: &mut usize, bufs: *mut u8, bid: u16) {
    *out = out.saturating_sub(1);
    ring.push(bid, buf_addr(bufs, bid));
}

/// The source address the kernel wrote in a receive buffer.
fn parse_name(name: &[u8]) -> Option<SocketAddr> {
    let family = libc::sa_family_t::from_ne_bytes(name.get(..2)?.try_into().ok()?);
    let port = u16::from_be_bytes(name.get(2..4)?.try_into().ok()?);
    match i32::from(family) {
        libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddrV4::new(Ipv4Addr::from(ip), port).into())
        }
        libc::AF_INET6 => {
            let flow = u32::from_be_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddrV6::new(Ipv6Addr::from(ip), port, flow, scope).into())
        }
        _ => None,
    }
}

/// Writes `to` as a C socket address; returns its length.
fn write_dest(slot: &mut libc::sockaddr_storage, to: SocketAddr) -> libc::socklen_t {
    let to = SockAddr::from(to);
    let len = to.len();
    // SAFETY: a socket address is at most `sockaddr_storage` octets.
    unsafe {
        std::ptr::copy_nonoverlapping(
            to.as_ptr().cast::<u8>(),
            (slot as *mut libc::sockaddr_storage).cast::<u8>(),
            len as usize,
        );
    }
    len
}

#[cfg(test)]
mod tests {
    //! The io_uring engine on real loopback sockets, ports 30600-30699.

    use std::net::{IpAddr, Ipv4Addr, SocketAddr};
    use std::time::Duration;

    use tokio::net::UdpSocket;
    use tokio::time::{sleep, timeout, Instant};

    use super::parse_name;
    use crate::{Relay, RelayConfig, RelayEngine, Session, Side};

    const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// Whether this kernel lets us use io_uring at all; when it does the
    /// engine must start.
    fn uring_allowed() -> bool {
        let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
            .is_ok_and(|v| v.trim() != "0");
        !disabled
    }

    fn relay(min: u16, max: u16, engine: RelayEngine) -> Relay {
        let mut cfg = RelayConfig::new(LO, LO, min, max);
        cfg.workers = 1;
        Relay::with_engine(cfg, engine).unwrap()
    }

    fn rtp(seq: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34, 0x56, 0x78];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    async fn phone() -> UdpSocket {
        UdpSocket::bind((LO, 0)).await.unwrap()
    }

    fn at(port: u16) -> SocketAddr {
        SocketAddr::new(LO, port)
    }

    async fn recv(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
        let mut buf = vec![0u8; 4096];
        let (n, from) = timeout(Duration::from_secs(2), s.recv_from(&mut buf))
            .await
            .expect("no packet within 2 s")
            .unwrap();
        buf.truncate(n);
        (buf, from)
    }

    /// The RTP sequence numbers of the next `count` datagrams on `s`, each
    /// checked to carry `payload`.
    async fn sequences(s: &UdpSocket, count: u16, payload: &[u8]) -> Vec<u16> {
        let mut buf = [0u8; 2048];
        let mut seen = Vec::new();
        while seen.len() < usize::from(count) {
            let (n, _) = timeout(Duration::from_secs(3), s.recv_from(&mut buf))
                .await
                .expect("relay stalled")
                .unwrap();
            assert_eq!(&buf[12..n], payload);
            seen.push(u16::from_be_bytes([buf[2], buf[3]]));
        }
        seen
    }

    async fn nothing(s: &UdpSocket) {
        let mut buf = [0u8; 2048];
        let r = timeout(Duration::from_millis(150), s.recv_from(&mut buf)).await;
        assert!(r.is_err(), "unexpected packet {r:?}");
    }

    /// Binds `port` (RTP and RTCP) on loopback, retrying briefly: proof
    /// that the relay's sockets are closed in the kernel too.
    async fn rebindable(port: u16) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let ok = std::net::UdpSocket::bind(at(port)).is_ok()
                && std::net::UdpSocket::bind(at(port + 1)).is_ok();
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "port {port} still bound");
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// The behaviours of the relay, run on `engine`.
    async fn relays_latches_counts_and_closes(relay: Relay) {
        let s: Session = relay.create_session().unwrap();
        let (pa, pb) = (s.local_port(Side::A), s.local_port(Side::B));
        let (a, a_rtcp, b, b_rtcp) = (phone().await, phone().await, phone().await, phone().await);
        let announced = phone().await;
        s.set_remote(Side::A, announced.local_addr().unwrap(), None);
        s.set_remote(
            Side::B,
            b.local_addr().unwrap(),
            Some(b_rtcp.local_addr().unwrap()),
        );

        // B's media goes where A's SDP said until A's first packet latches.
        b.send_to(&rtp(1, b"early"), at(pb)).await.unwrap();
        assert_eq!(recv(&announced).await, (rtp(1, b"early"), at(pa)));
        a.send_to(&rtp(1, b"hello"), at(pa)).await.unwrap();
        assert_eq!(recv(&b).await, (rtp(1, b"hello"), at(pb)));
        b.send_to(&rtp(2, b"back"), at(pb)).await.unwrap();
        assert_eq!(recv(&a).await, (rtp(2, b"back"), at(pa)));
        nothing(&announced).await;

        // RTCP both ways, byte-identical; A's RTCP latches on its own.
        let rr = [0x80, 201, 0, 1, 0x12, 0x34, 0x56, 0x78];
        a_rtcp.send_to(&rr, at(pa + 1)).await.unwrap();
        assert_eq!(recv(&b_rtcp).await, (rr.to_vec(), at(pb + 1)));
        b_rtcp.send_to(&rr, at(pb + 1)).await.unwrap();
        assert_eq!(recv(&a_rtcp).await, (rr.to_vec(), at(pa + 1)));

        // A stranger is dropped and counted; a re-INVITE re-arms latching.
        let stranger = phone().await;
        stranger.send_to(&rtp(9, b"x"), at(pa)).await.unwrap();
        nothing(&b).await;
        s.set_remote(Side::A, announced.local_addr().unwrap(), None);
        stranger.send_to(&rtp(10, b"y"), at(pa)).await.unwrap();
        assert_eq!(recv(&b).await.0, rtp(10, b"y"));
        b.send_to(&rtp(3, b"to stranger"), at(pb)).await.unwrap();
        assert_eq!(recv(&stranger).await.0, rtp(3, b"to stranger"));

        // Not RTP: dropped and counted, nothing latched.
        stranger.send_to(b"junk", at(pa)).await.unwrap();
        nothing(&b).await;

        let st = s.stats();
        assert_eq!(st.a_to_b.rtp.packets, 2);
        assert_eq!(
            st.a_to_b.rtp.bytes,
            (rtp(1, b"hello").len() + rtp(10, b"y").len()) as u64
        );
        assert_eq!(st.b_to_a.rtp.packets, 3);
        assert_eq!((st.a_to_b.rtcp.packets, st.b_to_a.rtcp.packets), (1, 1));
        assert_eq!(st.a_to_b.dropped_source, 1);
        assert_eq!(st.a_to_b.dropped_invalid, 1);
        assert_eq!(st.a_to_b.send_errors + st.b_to_a.send_errors, 0);
        assert!(st.a_to_b.rtp.last_packet.is_some());

        s.close().await;
        assert_eq!(relay.ports_in_use(), 0);
        rebindable(pa).await;
        rebindable(pb).await;
    }

    #[tokio::test]
    async fn io_uring_engine_relays_latches_counts_and_closes() {
        if !uring_allowed() {
            return;
        }
        let r = relay(30600, 30619, RelayEngine::IoUring);
        assert_eq!(r.engine(), RelayEngine::IoUring);
        relays_latches_counts_and_closes(r).await;
    }

    #[tokio::test]
    async fn poll_engine_still_relays_latches_counts_and_closes() {
        let r = relay(30620, 30639, RelayEngine::Poll);
        assert_eq!(r.engine(), RelayEngine::Poll);
        relays_latches_counts_and_closes(r).await;
    }

    #[tokio::test]
    async fn auto_picks_io_uring_where_allowed() {
        let r = relay(30640, 30649, RelayEngine::Auto);
        let want = if uring_allowed() {
            RelayEngine::IoUring
        } else {
            RelayEngine::Poll
        };
        assert_eq!(r.engine(), want);
    }

    /// Many more datagrams than provided buffers: the buffers come back as
    /// the sends complete, and nothing is lost or miscounted.
    #[tokio::test]
    async fn buffers_are_recycled_across_bursts() {
        if !uring_allowed() {
            return;
        }
        let r = relay(30650, 30659, RelayEngine::IoUring);
        let s = r.create_session().unwrap();
        let (pa, pb) = (s.local_port(Side::A), s.local_port(Side::B));
        let (a, b) = (phone().await, phone().await);
        s.set_remote(Side::A, a.local_addr().unwrap(), None);
        s.set_remote(Side::B, b.local_addr().unwrap(), None);
        let total = 4 * super::BUFFERS as u16;
        let drain = tokio::spawn(async move { sequences(&b, total, b"burst").await });
        for seq in 0..total {
            a.send_to(&rtp(seq, b"burst"), at(pa)).await.unwrap();
            if seq % 64 == 63 {
                // Paced in bursts so that no socket buffer overflows.
                sleep(Duration::from_millis(2)).await;
            }
        }
        let seen = drain.await.unwrap();
        assert_eq!(seen, (0..total).collect::<Vec<_>>());
        let st = s.stats();
        assert_eq!(st.a_to_b.rtp.packets, u64::from(total));
        assert_eq!(st.a_to_b.lost, 0);
        drop(s);
        drop(r);
        rebindable(pa).await;
        rebindable(pb).await;
    }

    /// A burst on several sockets at once, far more datagrams than
    /// provided buffers: receives that run out of buffers go on with plain
    /// reads, and every datagram is relayed once, in order, and counted.
    #[tokio::test]
    async fn a_burst_larger_than_the_buffers_is_fully_relayed() {
        if !uring_allowed() {
            return;
        }
        const SESSIONS: usize = 6;
        // Per socket: well under what a socket buffer holds.
        let per = (5 * super::BUFFERS / SESSIONS) as u16;
        let r = relay(30670, 30699, RelayEngine::IoUring);
        let mut calls = Vec::new();
        let mut drains = Vec::new();
        for k in 0..SESSIONS {
            let s = r.create_session().unwrap();
            let (a, b) = (phone().await, phone().await);
            s.set_remote(Side::A, a.local_addr().unwrap(), None);
            s.set_remote(Side::B, b.local_addr().unwrap(), None);
            calls.push((s, a));
            drains.push(tokio::spawn(async move {
                sequences(&b, per, format!("call{k}").as_bytes()).await
            }));
        }
        // All sockets at once, unpaced.
        for seq in 0..per {
            for (k, (s, a)) in calls.iter().enumerate() {
                let to = at(s.local_port(Side::A));
                a.send_to(&rtp(seq, format!("call{k}").as_bytes()), to)
                    .await
                    .unwrap();
            }
        }
        for d in drains {
            assert_eq!(d.await.unwrap(), (0..per).collect::<Vec<_>>());
        }
        for (s, _) in &calls {
            let st = s.stats();
            assert_eq!(st.a_to_b.rtp.packets, u64::from(per));
            assert_eq!(st.a_to_b.send_errors, 0);
        }
        let ports: Vec<u16> = calls
            .iter()
            .flat_map(|(s, _)| [s.local_port(Side::A), s.local_port(Side::B)])
            .collect();
        for (s, _) in calls {
            s.close().await;
        }
        assert_eq!(r.ports_in_use(), 0);
        for p in ports {
            rebindable(p).await;
        }
    }

    /// A session dropped while its receives are armed and packets flow:
    /// the receives are cancelled and the sockets really close.
    #[tokio::test]
    async fn dropping_a_busy_session_closes_its_sockets() {
        if !uring_allowed() {
            return;
        }
        let r = relay(30660, 30669, RelayEngine::IoUring);
        let s = r.create_session().unwrap();
        let ports = (s.local_port(Side::A), s.local_port(Side::B));
        let (a, b) = (phone().await, phone().await);
        s.set_remote(Side::A, a.local_addr().unwrap(), None);
        s.set_remote(Side::B, b.local_addr().unwrap(), None);
        for seq in 0..20 {
            a.send_to(&rtp(seq, b"x"), at(ports.0)).await.unwrap();
        }
        drop(s);
        rebindable(ports.0).await;
        rebindable(ports.1).await;
        assert_eq!(r.ports_in_use(), 0);
    }

    #[test]
    fn source_addresses_parse_from_kernel_layout() {
        let mut v4 = [0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as libc::sa_family_t).to_ne_bytes());
        v4[2..4].copy_from_slice(&4000u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[10, 1, 2, 3]);
        assert_eq!(parse_name(&v4), Some("10.1.2.3:4000".parse().unwrap()));
        let mut v6 = [0u8; 28];
        v6[..2].copy_from_slice(&(libc::AF_INET6 as libc::sa_family_t).to_ne_bytes());
        v6[2..4].copy_from_slice(&5004u16.to_be_bytes());
        v6[8..24].copy_from_slice(
            &"2001:db8::7"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        assert_eq!(parse_name(&v6), Some("[2001:db8::7]:5004".parse().unwrap()));
        assert_eq!(parse_name(&v4[..6]), None);
        assert_eq!(parse_name(&v6[..20]), None);
        assert_eq!(parse_name(&[]), None);
        let mut unix = v4;
        unix[..2].copy_from_slice(&(libc::AF_UNIX as libc::sa_family_t).to_ne_bytes());
        assert_eq!(parse_name(&unix), None);
    }
}
