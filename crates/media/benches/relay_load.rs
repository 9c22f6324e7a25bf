//! CPU and memory of the relay under G.711 load, with real loopback sockets.
//!
//! `cargo bench -p media --bench relay_load -- [CALLS [ACTIVE [SECONDS [WORKERS]]]]`
//!
//! Creates CALLS sessions (ports 20000-29999), of which ACTIVE carry a
//! G.711 call: each phone sends a 172-octet RTP packet every 20 ms (50
//! packets/s per direction, spread over the 20 ms) and drains what the
//! relay forwards to it. The generator runs on its own thread; its CPU time
//! is taken off the process's, so what is left is the relay's (its
//! forwarding plus the runtime and sweeps around it). Prints CPU µs per
//! relayed packet and resident memory per session. WORKERS sets
//! `RelayConfig::workers` (0, the default: one per core).
//!
//! With `FORWARDER_PID` and `FORWARDER_BASE` set, the same load goes to
//! `benches/forwarder` (call i on ports BASE+2i and BASE+2i+1) instead and
//! that process's CPU time is measured: the floor on this machine. Linux only (getrusage
//! per thread, /proc/self/statm).

#[cfg(target_os = "linux")]
mod load {
    use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    use media::{Relay, RelayConfig, Session, Side};

    const PACKET: usize = 172;

    fn cpu(who: libc::c_int) -> Duration {
        // SAFETY: getrusage writes into the zeroed struct we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut ru) };
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }

    fn rss_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }

    struct Phone {
        a: UdpSocket,
        b: UdpSocket,
        to_a: SocketAddr,
        to_b: SocketAddr,
    }

    /// Sends for `secs` seconds; returns (packets sent, packets received,
    /// generator CPU).
    fn generate(phones: &[Phone], secs: f64) -> (u64, u64, Duration) {
        let start_cpu = cpu(libc::RUSAGE_THREAD);
        let mut pkt = [0xd5u8; PACKET];
        pkt[..12].fill(0);
        pkt[0] = 0x80;
        let mut buf = [0u8; 2048];
        let (mut sent, mut got) = (0u64, 0u64);
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let slices = 20usize;
        let mut seq = 0u16;
        let mut tick = 0u64;
        while Instant::now() < end {
            for slice in 0..slices {
                let at = start + Duration::from_micros(tick * 20_000 + slice as u64 * 1000);
                if let Some(d) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                for p in phones.iter().skip(slice).step_by(slices) {
                    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                    pkt[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                    for (s, to) in [(&p.a, p.to_a), (&p.b, p.to_b)] {
                        if s.send_to(&pkt, to).is_ok() {
                            sent += 1;
                        }
                    }
                }
            }
            for p in phones {
                for s in [&p.a, &p.b] {
                    while s.recv_from(&mut buf).is_ok() {
                        got += 1;
                    }
                }
            }
            seq = seq.wrapping_add(1);
            tick += 1;
        }
        (sent, got, cpu(libc::RUSAGE_THREAD) - start_cpu)
    }

    /// CPU time of another process, from /proc (clock ticks of 10 ms).
    fn cpu_of(pid: u32) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or_default();
        let f: Vec<u64> = after
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // utime and stime are fields 14 and 15, the 12th and 13th after ')'.
        Duration::from_millis(10 * (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)))
    }

    pub fn forwarder(pid: u32, base: u16, active: usize, secs: f64) {
        let lo = Ipv4Addr::LOCALHOST;
        let phones: Vec<Phone> = (0..active)
            .map(|i| {
                let a = UdpSocket::bind((lo, 0)).expect("bind");
                let b = UdpSocket::bind((lo, 0)).expect("bind");
                a.set_nonblocking(true).expect("nonblocking");
                b.set_nonblocking(true).expect("nonblocking");
                let port = base + 2 * i as u16;
                Phone {
                    a,
                    b,
                    to_a: SocketAddr::from((lo, port)),
                    to_b: SocketAddr::from((lo, port + 1)),
                }
            })
            .collect();
        let _ = generate(&phones, 1.0);
        let (c0, t0) = (cpu_of(pid), Instant::now());
        let (sent, got, _) = generate(&phones, secs);
        let used = cpu_of(pid) - c0;
        println!(
            "forwarder, {active} calls: sent {sent} received {got} ({:.0} pkt/s), CPU {:.2} s, {:.2} us/packet",
            got as f64 / t0.elapsed().as_secs_f64(),
            used.as_secs_f64(),
            used.as_secs_f64() * 1e6 / got.max(1) as f64
        );
    }

    pub fn run(calls: usize, active: usize, secs: f64, workers: usize) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let lo = Ipv4Addr::LOCALHOST;
        let relay = rt
            .block_on(async {
                let mut cfg = RelayConfig::new(lo.into(), lo.into(), 20000, 29999);
                cfg.workers = workers;
                Relay::new(cfg)
            })
            .expect("relay");
        let phones: Vec<Phone> = (0..active)
            .map(|_| {
                let a = UdpSocket::bind((lo, 0)).expect("bind");
                let b = UdpSocket::bind((lo, 0)).expect("bind");
                a.set_nonblocking(true).expect("nonblocking");
                b.set_nonblocking(true).expect("nonblocking");
                Phone {
                    a,
                    b,
                    to_a: SocketAddr::from((lo, 0)),
                    to_b: SocketAddr::from((lo, 0)),
                }
            })
            .collect();
        let mut phones = phones;
        let rss0 = rss_bytes();
        let mut sessions: Vec<Session> = Vec::with_capacity(calls);
        for i in 0..calls {
            let s = relay.create_session().expect("session");
            if let Some(p) = phones.get_mut(i) {
                s.set_remote(Side::A, p.a.local_addr().expect("addr"), None);
                s.set_remote(Side::B, p.b.local_addr().expect("addr"), None);
                p.to_a = SocketAddr::from((lo, s.local_port(Side::A)));
                p.to_b = SocketAddr::from((lo, s.local_port(Side::B)));
            }
            sessions.push(s);
        }
        // Warm up: latching, buffers, the allocator's pools.
        let _ = generate(&phones, 1.0);
        let rss1 = rss_bytes();
        let t0 = Instant::now();
        let p0 = cpu(libc::RUSAGE_SELF);
        let (sent, got, gen_cpu) = std::thread::scope(|sc| {
            sc.spawn(|| generate(&phones, secs))
                .join()
                .expect("generator")
        });
        let relay_cpu = cpu(libc::RUSAGE_SELF) - p0 - gen_cpu;
        let wall = t0.elapsed().as_secs_f64();
        let relayed: u64 = sessions
            .iter()
            .map(|s| {
                let st = s.stats();
                st.a_to_b.rtp.packets + st.b_to_a.rtp.packets
            })
            .sum();
        let per_pkt = relay_cpu.as_secs_f64() * 1e6 / got.max(1) as f64;
        println!(
            "calls {calls} active {active}: sent {sent} received {got} ({:.0} pkt/s, counted {relayed}), \
             relay CPU {:.2} s = {:.1}% of a core, {per_pkt:.2} us/packet; \
             RSS {:.1} kB per session ({:.1} MB total)",
            got as f64 / wall,
            relay_cpu.as_secs_f64(),
            100.0 * relay_cpu.as_secs_f64() / wall,
            (rss1.saturating_sub(rss0)) as f64 / 1024.0 / calls.max(1) as f64,
            rss1 as f64 / 1048576.0,
        );
        rt.block_on(async {
            for s in sessions {
                s.close().await;
            }
        });
        assert_eq!(relay.ports_in_use(), 0);
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let num = |i: usize, d: f64| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let calls = num(0, 200.0) as usize;
    let active = (num(1, calls as f64) as usize).min(calls);
    let secs = num(2, 10.0);
    let workers = num(3, 0.0) as usize;
    #[cfg(target_os = "linux")]
    {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
        match (env("FORWARDER_PID"), env("FORWARDER_BASE")) {
            (Some(pid), Some(base)) => load::forwarder(pid, base as u16, active, secs),
            _ => load::run(calls, active, secs, workers),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (calls, active, secs, workers);
}
