//! `loadgen`: drives a SIP server (registrar, B2BUA or proxy with a media
//! relay) with registrations, calls with G.711 RTP, or raw RTP through a
//! forwarder, and reports what it got and what it cost the server.

mod clock;
mod engine;
mod net;
mod report;
mod rtp;
mod sip;
mod stats;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use clock::now_ns;
use engine::{Engine, SipConfig};
use report::{Report, Sampler};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::Ordering;

#[derive(Parser)]
#[command(name = "loadgen", about = "SIP/RTP load generator")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Registrations with digest auth at a fixed rate.
    Register(RegisterArgs),
    /// Calls with G.711 RTP both ways, playing caller and callee.
    Calls(CallsArgs),
    /// Raw RTP through a forwarder's port pairs (no SIP).
    Rtp(RtpArgs),
    /// A small run that fails (exit 1) on any failure: 50 registrations, 5 calls.
    Smoke(SmokeArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// The server's SIP address (UDP).
    #[arg(long, default_value = "127.0.0.1:5060")]
    server: SocketAddr,
    /// SIP domain (default: the server's IP).
    #[arg(long)]
    domain: Option<String>,
    /// Password of every user.
    #[arg(long, default_value = "")]
    password: String,
    /// Local addresses to send from: a range `127.0.0.1-127.0.0.50` or a list.
    #[arg(long, default_value = "127.0.0.1")]
    local_ips: String,
    /// SIP sockets per local address.
    #[arg(long, default_value_t = 1)]
    ports_per_ip: usize,
    /// Seconds to wait for a transaction before counting a timeout.
    #[arg(long, default_value_t = 8.0)]
    timeout: f64,
    /// Processes whose CPU and memory to report (the server).
    #[arg(long)]
    pid: Vec<u32>,
    /// ...or their command name (all processes of that name, summed).
    #[arg(long)]
    pid_name: Vec<String>,
    /// Seconds of load before the steady window starts.
    #[arg(long)]
    warmup: Option<f64>,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when anything failed.
    #[arg(long)]
    strict: bool,
}

#[derive(Args)]
struct RegisterArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 100)]
    users: u64,
    #[arg(long, default_value_t = 1001)]
    first_user: u64,
    /// Registrations started per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

#[derive(Args)]
struct CallsArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    media: MediaArgs,
    /// Caller extensions, `1001-1100`.
    #[arg(long, default_value = "1001-1100")]
    callers: String,
    /// Callee extensions, `2001-2100` (registered first).
    #[arg(long, default_value = "2001-2100")]
    callees: String,
    /// Calls started per second.
    #[arg(long, default_value_t = 10.0)]
    cps: f64,
    #[arg(long, default_value_t = 100)]
    max_concurrent: u64,
    /// Seconds each answered call is held.
    #[arg(long, default_value_t = 5.0)]
    hold: f64,
    /// Seconds during which calls are placed.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Registrations per second for the callees before the calls.
    #[arg(long, default_value_t = 500.0)]
    register_rate: f64,
}

#[derive(Args, Clone)]
struct MediaArgs {
    /// Local sockets the RTP streams share (demultiplexed by payload).
    #[arg(long, default_value_t = 16)]
    rtp_sockets: usize,
    /// Milliseconds between packets of one stream (20 = G.711 at 50 pps).
    #[arg(long, default_value_t = 20)]
    rtp_interval: u32,
    /// Media threads (each owns every n-th RTP socket; at most 4).
    #[arg(long, default_value_t = 2)]
    rtp_threads: usize,
}

#[derive(Args)]
struct RtpArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    media: MediaArgs,
    /// First port of the forwarder's pairs (`IP:PORT`); call i uses PORT+2i and PORT+2i+1.
    #[arg(long)]
    targets: SocketAddr,
    #[arg(long, default_value_t = 100)]
    calls: u32,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

#[derive(Args)]
struct SmokeArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long, default_value_t = 50)]
    registrations: u64,
    #[arg(long, default_value = "1001-1005")]
    callers: String,
    #[arg(long, default_value = "2001-2005")]
    callees: String,
    #[arg(long, default_value_t = 5)]
    calls: u64,
    #[arg(long, default_value_t = 2.0)]
    hold: f64,
}

fn parse_range(s: &str) -> Result<(u64, u64)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u64 = a.trim().parse().with_context(|| format!("bad range {s}"))?;
    let b: u64 = b.trim().parse().with_context(|| format!("bad range {s}"))?;
    if b < a {
        bail!("empty range {s}");
    }
    Ok((a, b - a + 1))
}

fn parse_ips(s: &str) -> Result<Vec<IpAddr>> {
    if let Some((a, b)) = s.split_once('-') {
        let a: Ipv4Addr = a
            .trim()
            .parse()
            .with_context(|| format!("bad address in {s}"))?;
        let b: Ipv4Addr = b
            .trim()
            .parse()
            .with_context(|| format!("bad address in {s}"))?;
        let (a, b) = (u32::from(a), u32::from(b));
        if b < a || b - a > 4096 {
            bail!("bad address range {s}");
        }
        return Ok((a..=b).map(|i| IpAddr::V4(Ipv4Addr::from(i))).collect());
    }
    s.split(',')
        .map(|p| p.trim().parse().with_context(|| format!("bad address {p}")))
        .collect()
}

fn bind_many(ips: &[IpAddr], per_ip: usize, count: Option<usize>) -> Result<Vec<UdpSocket>> {
    let want = count.unwrap_or(ips.len() * per_ip.max(1));
    (0..want)
        .map(|i| {
            let ip = ips[i % ips.len()];
            net::bind_udp(SocketAddr::new(ip, 0)).with_context(|| format!("binding UDP on {ip}"))
        })
        .collect()
}

fn sip_config(c: &Common) -> SipConfig {
    SipConfig {
        server: c.server,
        domain: c
            .domain
            .clone()
            .unwrap_or_else(|| c.server.ip().to_string()),
        password: c.password.clone(),
        timeout_ns: (c.timeout * 1e9) as u64,
        expires: 3600,
    }
}

fn server_pids(c: &Common) -> Result<Vec<u32>> {
    let mut pids = c.pid.clone();
    for name in &c.pid_name {
        let found = stats::pids_named(name);
        if found.is_empty() {
            bail!("no process named {name}");
        }
        pids.extend(found);
    }
    Ok(pids)
}

/// Drives `step` at `rate` per second for `duration_s`, pumping the engine between.
fn paced(engine: &mut Engine, rate: f64, duration_s: f64, mut step: impl FnMut(&mut Engine)) {
    let start = now_ns();
    let end = start + (duration_s * 1e9) as u64;
    let gap = (1e9 / rate.max(0.001)) as u64;
    let mut next = start;
    while next < end {
        let now = now_ns();
        // Catch up after a slow iteration rather than lowering the rate.
        while next <= now && next < end {
            step(engine);
            next += gap;
        }
        engine.pump(next.min(end));
    }
}

fn run_register(a: &RegisterArgs) -> Result<Report> {
    let ips = parse_ips(&a.common.local_ips)?;
    let socks = bind_many(&ips, a.common.ports_per_ip, None)?;
    let mut engine = Engine::new(sip_config(&a.common), socks, None)?;
    let pool = engine.add_users(a.first_user, a.users);
    let pids = server_pids(&a.common)?;
    let sampler = Sampler::start(pids, engine.live.clone(), None);
    let t0 = now_ns();
    paced(&mut engine, a.rate, a.duration, |e| e.register_next(&pool));
    let t1 = now_ns();
    let drain_until = now_ns() + (a.common.timeout * 1e9) as u64 + 1_000_000_000;
    while engine.registering() > 0 && now_ns() < drain_until {
        engine.pump(now_ns() + 50_000_000);
    }
    engine.abandon_all("unfinished");
    let samples = sampler.stop();
    let warmup = a.common.warmup.unwrap_or((a.duration * 0.2).min(2.0));
    let mut r = Report::new("register", &a.common.server, t0, t1, warmup, &samples);
    r.target = serde_json::json!({"users": a.users, "rate": a.rate, "duration_s": a.duration});
    r.set_registrations(&engine.reg, a.duration);
    Ok(r)
}

fn register_all(engine: &mut Engine, pool: &[usize], rate: f64, timeout: f64) -> Result<()> {
    let before_ok = engine.reg.ok;
    let n = pool.len();
    let mut i = 0;
    paced(engine, rate, n as f64 / rate, |e| {
        if i < n {
            e.start_register(pool[i]);
            i += 1;
        }
    });
    while i < n {
        engine.start_register(pool[i]);
        i += 1;
    }
    let until = now_ns() + ((timeout + 1.0) * 1e9) as u64;
    while engine.registering() > 0 && now_ns() < until {
        engine.pump(now_ns() + 20_000_000);
    }
    let ok = engine.reg.ok - before_ok;
    if ok < n as u64 {
        bail!(
            "only {ok} of {n} users registered (failures: {:?})",
            engine.reg.failed
        );
    }
    Ok(())
}

struct CallPlan {
    callers: (u64, u64),
    callees: (u64, u64),
    cps: f64,
    max_concurrent: u64,
    hold: f64,
    duration: f64,
    register_rate: f64,
}

fn run_calls(common: &Common, media: &MediaArgs, plan: &CallPlan) -> Result<Report> {
    let ips = parse_ips(&common.local_ips)?;
    let socks = bind_many(&ips, common.ports_per_ip, None)?;
    let rtp_socks = bind_many(&ips, 1, Some(media.rtp_sockets.max(1)))?;
    let rtp = rtp::spawn(rtp_socks, media.rtp_interval, media.rtp_threads)
        .context("starting the media threads")?;
    let mut engine = Engine::new(
        sip_config(common),
        socks,
        Some((rtp.tx.clone(), rtp.addrs.clone())),
    )?;
    let callees = engine.add_users(plan.callees.0, plan.callees.1);
    let callers = engine.add_users(plan.callers.0, plan.callers.1);
    register_all(&mut engine, &callees, plan.register_rate, common.timeout)?;
    let reg_done = engine.reg.ok;
    let pids = server_pids(common)?;
    let sampler = Sampler::start(pids, engine.live.clone(), Some(rtp.shared.clone()));
    let t0 = now_ns();
    let hold_ns = (plan.hold * 1e9) as u64;
    paced(&mut engine, plan.cps, plan.duration, |e| {
        e.place_call(&callers, &callees, plan.max_concurrent, hold_ns)
    });
    let t1 = now_ns();
    let until = now_ns() + hold_ns + ((common.timeout + 2.0) * 1e9) as u64;
    while engine.active_calls() > 0 && now_ns() < until {
        engine.pump(now_ns() + 20_000_000);
    }
    engine.abandon_all("unfinished");
    // Let packets in flight arrive before the counts are final.
    engine.pump(now_ns() + 300_000_000);
    let samples = sampler.stop();
    rtp.shared.done.store(true, Ordering::Relaxed);
    let media_out = rtp.finish().map_err(|e| anyhow::anyhow!(e))?;
    let ramp = (plan.max_concurrent as f64 / plan.cps).min(plan.hold);
    let warmup = common
        .warmup
        .unwrap_or((ramp + 1.0).min(plan.duration * 0.5));
    let mut r = Report::new("calls", &common.server, t0, t1, warmup, &samples);
    r.target = serde_json::json!({
        "cps": plan.cps, "max_concurrent": plan.max_concurrent, "hold_s": plan.hold,
        "duration_s": plan.duration, "callers": plan.callers.1, "callees": plan.callees.1,
        "rtp_interval_ms": media.rtp_interval,
    });
    let mut reg = std::mem::take(&mut engine.reg);
    reg.ok = reg_done;
    r.set_registrations(&reg, 0.0);
    r.set_calls(&engine.call, plan.duration);
    r.set_media(&engine.records(), &media_out);
    Ok(r)
}

fn run_rtp(a: &RtpArgs) -> Result<Report> {
    let ips = parse_ips(&a.common.local_ips)?;
    let rtp_socks = bind_many(&ips, 1, Some(a.media.rtp_sockets.max(1)))?;
    let nsock = rtp_socks.len();
    let rtp = rtp::spawn(rtp_socks, a.media.rtp_interval, a.media.rtp_threads)
        .context("starting the media threads")?;
    let pids = server_pids(&a.common)?;
    let live = std::sync::Arc::new(engine::Live::default());
    let sampler = Sampler::start(pids, live.clone(), Some(rtp.shared.clone()));
    // Every leg sends a probe first: a relay that latches on the first
    // packet (the forwarder) then knows both ends before counting starts.
    for id in 0..2 * a.calls {
        let port =
            u16::try_from(a.targets.port() as u32 + id).context("target port range overflows")?;
        rtp.tx
            .send(rtp::Cmd::Probe {
                sock: id as usize % nsock,
                dest: SocketAddr::new(a.targets.ip(), port),
            })
            .context("media thread ended")?;
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let t0 = now_ns();
    let mut records = Vec::new();
    for i in 0..a.calls {
        for leg in 0..2u32 {
            let id = 2 * i + leg;
            let port = a.targets.port() as u32 + id;
            let port = u16::try_from(port).context("target port range overflows")?;
            let dest = SocketAddr::new(a.targets.ip(), port);
            rtp.tx
                .send(rtp::Cmd::Start {
                    id,
                    sock: id as usize % nsock,
                    dest,
                })
                .context("media thread ended")?;
        }
        records.push(engine::CallRecord {
            answered: true,
            caller_stream: 2 * i,
            callee_stream: 2 * i + 1,
        });
    }
    live.calls_active.store(a.calls as u64, Ordering::Relaxed);
    std::thread::sleep(std::time::Duration::from_secs_f64(a.duration));
    let t1 = now_ns();
    for id in 0..2 * a.calls {
        let _ = rtp.tx.send(rtp::Cmd::Stop {
            id,
            sock: id as usize % nsock,
        });
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let samples = sampler.stop();
    rtp.shared.done.store(true, Ordering::Relaxed);
    let media_out = rtp.finish().map_err(|e| anyhow::anyhow!(e))?;
    let warmup = a.common.warmup.unwrap_or((a.duration * 0.2).min(2.0));
    let mut r = Report::new("rtp", &a.targets, t0, t1, warmup, &samples);
    r.target = serde_json::json!({"calls": a.calls, "duration_s": a.duration, "rtp_interval_ms": a.media.rtp_interval});
    r.set_media(&records, &media_out);
    Ok(r)
}

fn emit(r: &Report, json: bool) {
    if json {
        println!("{}", serde_json::to_string(r).unwrap_or_default());
    } else {
        print!("{}", r.table());
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::Register(a) => run_register(a).map(|r| {
            emit(&r, a.common.json);
            !a.common.strict || r.clean()
        }),
        Cmd::Calls(a) => (|| {
            let plan = CallPlan {
                callers: parse_range(&a.callers)?,
                callees: parse_range(&a.callees)?,
                cps: a.cps,
                max_concurrent: a.max_concurrent,
                hold: a.hold,
                duration: a.duration,
                register_rate: a.register_rate,
            };
            let r = run_calls(&a.common, &a.media, &plan)?;
            emit(&r, a.common.json);
            Ok(!a.common.strict || r.clean())
        })(),
        Cmd::Rtp(a) => run_rtp(a).map(|r| {
            emit(&r, a.common.json);
            !a.common.strict || r.clean()
        }),
        Cmd::Smoke(a) => smoke(a),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("loadgen: failures during the run");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn smoke(a: &SmokeArgs) -> Result<bool> {
    let callers = parse_range(&a.callers)?;
    let callees = parse_range(&a.callees)?;
    let reg = RegisterArgs {
        common: a.common.clone(),
        users: callers.1,
        first_user: callers.0,
        rate: 50.0,
        duration: a.registrations as f64 / 50.0,
    };
    let r1 = run_register(&reg)?;
    emit(&r1, a.common.json);
    let media = MediaArgs {
        rtp_sockets: 4,
        rtp_interval: 20,
        rtp_threads: 2,
    };
    let plan = CallPlan {
        callers,
        callees,
        cps: a.calls as f64,
        max_concurrent: a.calls,
        hold: a.hold,
        duration: 1.0,
        register_rate: 50.0,
    };
    let r2 = run_calls(&a.common, &media, &plan)?;
    emit(&r2, a.common.json);
    let regs_ok = r1.registrations.as_ref().map(|g| g.ok).unwrap_or(0);
    let calls_ok = r2.calls.as_ref().map(|c| c.completed).unwrap_or(0);
    let both_ways = r2
        .rtp
        .as_ref()
        .map(|m| m.caller_to_callee.received > 0 && m.callee_to_caller.received > 0)
        .unwrap_or(false);
    let ok =
        r1.clean() && r2.clean() && regs_ok >= a.registrations && calls_ok >= a.calls && both_ways;
    if !ok {
        eprintln!(
            "smoke: registrations ok {regs_ok}/{}, calls completed {calls_ok}/{}, RTP both ways: {both_ways}",
            a.registrations, a.calls
        );
    }
    Ok(ok)
}
