//! Sampling of the server's and our own CPU and memory while the load runs,
//! and the report: a human table and one JSON line.

use crate::clock::now_ns;
use crate::engine::{CallRecord, CallStats, Live, RegStats};
use crate::rtp::{Outcome, Shared, MAX_THREADS};
use crate::stats::{
    clock_ticks_per_sec, gettid, sample_pids, sample_proc, Percentiles, ProcSample,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const SAMPLE_EVERY: Duration = Duration::from_millis(200);

#[derive(Clone, Copy, Default)]
pub struct Sample {
    pub t: u64,
    pub server: ProcSample,
    pub own_cpu: u64,
    pub sip_cpu: u64,
    /// CPU ticks of each media thread.
    pub rtp_cpu: [u64; MAX_THREADS],
    pub regs_ok: u64,
    pub calls_answered: u64,
    pub active: u64,
    pub rtp_rx: u64,
}

pub struct Samples {
    pub list: Vec<Sample>,
    pub pids: Vec<u32>,
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    join: JoinHandle<Vec<Sample>>,
    pids: Vec<u32>,
}

impl Sampler {
    /// Starts sampling; the calling thread is taken as the SIP thread.
    pub fn start(pids: Vec<u32>, live: Arc<Live>, rtp: Option<Arc<Shared>>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let sip_tid = gettid();
        let (st, p) = (stop.clone(), pids.clone());
        let join = std::thread::spawn(move || {
            let mut out = Vec::new();
            loop {
                let thread_cpu = |tid: u32| {
                    if tid == 0 {
                        0
                    } else {
                        sample_proc(&format!("/proc/self/task/{tid}"), false)
                            .map(|s| s.cpu_ticks)
                            .unwrap_or(0)
                    }
                };
                out.push(Sample {
                    t: now_ns(),
                    server: sample_pids(&p),
                    own_cpu: sample_proc("/proc/self", false)
                        .map(|s| s.cpu_ticks)
                        .unwrap_or(0),
                    sip_cpu: thread_cpu(sip_tid),
                    rtp_cpu: std::array::from_fn(|i| {
                        thread_cpu(
                            rtp.as_ref()
                                .map(|r| r.tids[i].load(Ordering::Relaxed))
                                .unwrap_or(0),
                        )
                    }),
                    regs_ok: live.regs_ok.load(Ordering::Relaxed),
                    calls_answered: live.calls_answered.load(Ordering::Relaxed),
                    active: live.calls_active.load(Ordering::Relaxed),
                    rtp_rx: rtp
                        .as_ref()
                        .map(|r| r.rx.load(Ordering::Relaxed))
                        .unwrap_or(0),
                });
                if st.load(Ordering::Relaxed) {
                    return out;
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
        });
        Sampler { stop, join, pids }
    }

    pub fn stop(self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        Samples {
            list: self.join.join().unwrap_or_default(),
            pids: self.pids,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct RegReport {
    pub attempted: u64,
    pub ok: u64,
    pub failed: BTreeMap<String, u64>,
    pub retransmissions: u64,
    pub skipped_busy: u64,
    pub achieved_rate: f64,
    pub latency: Percentiles,
}

#[derive(Debug, Default, Serialize)]
pub struct CallReport {
    pub attempted: u64,
    pub answered: u64,
    pub completed: u64,
    pub failed: BTreeMap<String, u64>,
    pub throttled: u64,
    pub retransmissions: u64,
    pub max_concurrent: u64,
    pub achieved_cps: f64,
    pub unexpected_requests: u64,
    pub setup: Percentiles,
}

#[derive(Debug, Default, Serialize)]
pub struct Direction {
    pub sent: u64,
    pub received: u64,
    pub loss_pct: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct MediaReport {
    pub caller_to_callee: Direction,
    pub callee_to_caller: Direction,
    pub latency: Percentiles,
    /// Calls whose callee's first packet did not reach the caller.
    pub calls_first_packet_lost: u64,
    /// Callee packets lost before the caller's first received one, summed.
    pub clipped_packets: u64,
    /// Calls with media checked.
    pub calls_checked: u64,
    pub send_lag: Percentiles,
    pub send_dropped: u64,
    pub foreign_packets: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct ServerReport {
    pub pids: Vec<u32>,
    pub cpu_s_total: f64,
    pub window_s: f64,
    pub cpu_s_window: f64,
    pub cpu_pct_window: f64,
    pub idle_rss_kb: u64,
    pub peak_rss_kb: u64,
    pub end_rss_kb: u64,
    pub hwm_kb: u64,
    /// Sum of proportional set sizes (several processes) or RSS (one).
    pub peak_pss_kb: u64,
    pub max_active_calls: u64,
    pub rss_per_active_call_kb: Option<f64>,
    pub registrations_window: u64,
    pub calls_window: u64,
    pub packets_window: u64,
    pub cpu_us_per_registration: Option<f64>,
    pub cpu_us_per_call: Option<f64>,
    pub cpu_us_per_packet: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct GeneratorReport {
    pub cpu_pct: f64,
    pub sip_thread_pct: f64,
    pub rtp_thread_pct: f64,
    pub limited: bool,
    pub reasons: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub mode: String,
    pub server: String,
    pub target: serde_json::Value,
    pub load_s: f64,
    pub registrations: Option<RegReport>,
    pub calls: Option<CallReport>,
    pub rtp: Option<MediaReport>,
    pub server_cost: Option<ServerReport>,
    pub generator: GeneratorReport,
    pub ok: bool,
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

impl Report {
    /// `t0..t1` is the load phase; the steady window starts `warmup_s` into it.
    pub fn new(
        mode: &str,
        server: &SocketAddr,
        t0: u64,
        t1: u64,
        warmup_s: f64,
        samples: &Samples,
    ) -> Report {
        let tck = clock_ticks_per_sec() as f64;
        let list = &samples.list;
        let w0 = t0 + (warmup_s * 1e9) as u64;
        let first_in = |t: u64| {
            list.iter()
                .find(|s| s.t >= t)
                .or(list.last())
                .copied()
                .unwrap_or_default()
        };
        let last_before = |t: u64| {
            list.iter()
                .rev()
                .find(|s| s.t <= t)
                .or(list.first())
                .copied()
                .unwrap_or_default()
        };
        let (a, b) = (first_in(w0.min(t1)), last_before(t1));
        let (a, b) = if b.t > a.t {
            (a, b)
        } else {
            (
                list.first().copied().unwrap_or_default(),
                list.last().copied().unwrap_or_default(),
            )
        };
        let window_s = (b.t.saturating_sub(a.t)) as f64 / 1e9;
        let thread_pct = |x: u64, y: u64| {
            if window_s > 0.0 {
                (y.saturating_sub(x)) as f64 / tck / window_s * 100.0
            } else {
                0.0
            }
        };
        let mut generator = GeneratorReport {
            cpu_pct: thread_pct(a.own_cpu, b.own_cpu),
            sip_thread_pct: thread_pct(a.sip_cpu, b.sip_cpu),
            // The busiest media thread: the one that would limit the run.
            rtp_thread_pct: a
                .rtp_cpu
                .iter()
                .zip(&b.rtp_cpu)
                .map(|(&x, &y)| thread_pct(x, y))
                .fold(0.0, f64::max),
            ..Default::default()
        };
        for (name, v) in [
            ("SIP thread", generator.sip_thread_pct),
            ("an RTP thread", generator.rtp_thread_pct),
        ] {
            if v > 90.0 {
                generator.limited = true;
                generator
                    .reasons
                    .push(format!("{name} at {v:.0}% of a core"));
            }
        }
        let server_cost = (!samples.pids.is_empty() && !list.is_empty()).then(|| {
            let first = list[0];
            let last = list[list.len() - 1];
            let cpu_s_window = (b.server.cpu_ticks.saturating_sub(a.server.cpu_ticks)) as f64 / tck;
            let per = |n: u64| (n > 0).then(|| cpu_s_window * 1e6 / n as f64);
            let busiest = list
                .iter()
                .filter(|s| s.active > 0)
                .max_by_key(|s| (s.active, s.t));
            let idle = first.server.rss_kb;
            ServerReport {
                pids: samples.pids.clone(),
                cpu_s_total: (last.server.cpu_ticks.saturating_sub(first.server.cpu_ticks)) as f64
                    / tck,
                window_s,
                cpu_s_window,
                cpu_pct_window: if window_s > 0.0 {
                    cpu_s_window / window_s * 100.0
                } else {
                    0.0
                },
                idle_rss_kb: idle,
                peak_rss_kb: list.iter().map(|s| s.server.rss_kb).max().unwrap_or(0),
                end_rss_kb: last.server.rss_kb,
                hwm_kb: last.server.hwm_kb,
                peak_pss_kb: list.iter().map(|s| s.server.pss_kb).max().unwrap_or(0),
                max_active_calls: busiest.map(|s| s.active).unwrap_or(0),
                rss_per_active_call_kb: busiest
                    .map(|s| (s.server.rss_kb as f64 - idle as f64) / s.active as f64),
                registrations_window: b.regs_ok - a.regs_ok,
                calls_window: b.calls_answered - a.calls_answered,
                packets_window: b.rtp_rx - a.rtp_rx,
                cpu_us_per_registration: per(b.regs_ok - a.regs_ok),
                cpu_us_per_call: per(b.calls_answered - a.calls_answered),
                cpu_us_per_packet: per(b.rtp_rx - a.rtp_rx),
            }
        });
        Report {
            mode: mode.into(),
            server: server.to_string(),
            load_s: (t1.saturating_sub(t0)) as f64 / 1e9,
            server_cost,
            generator,
            ok: true,
            ..Default::default()
        }
    }

    pub fn set_registrations(&mut self, r: &RegStats, duration_s: f64) {
        self.registrations = Some(RegReport {
            attempted: r.attempted,
            ok: r.ok,
            failed: r.failed.clone(),
            retransmissions: r.retransmissions,
            skipped_busy: r.skipped_busy,
            achieved_rate: if duration_s > 0.0 {
                r.ok as f64 / duration_s
            } else {
                0.0
            },
            latency: r.latency.percentiles(),
        });
        self.ok &= r.failed.is_empty();
    }

    pub fn set_calls(&mut self, c: &CallStats, duration_s: f64) {
        self.calls = Some(CallReport {
            attempted: c.attempted,
            answered: c.answered,
            completed: c.completed,
            failed: c.failed.clone(),
            throttled: c.throttled,
            retransmissions: c.retransmissions,
            max_concurrent: c.max_concurrent,
            achieved_cps: if duration_s > 0.0 {
                c.answered as f64 / duration_s
            } else {
                0.0
            },
            unexpected_requests: c.unexpected_requests,
            setup: c.setup.percentiles(),
        });
        self.ok &= c.failed.is_empty() && c.completed == c.attempted;
    }

    pub fn set_media(&mut self, calls: &[CallRecord], m: &Outcome) {
        let mut rep = MediaReport {
            latency: m.latency.percentiles(),
            send_lag: m.send_lag.percentiles(),
            send_dropped: m.send_dropped,
            foreign_packets: m.foreign,
            ..Default::default()
        };
        let get = |id: u32| m.streams.get(id as usize).copied().unwrap_or_default();
        for c in calls.iter().filter(|c| c.answered) {
            let (a, b) = (get(c.caller_stream), get(c.callee_stream));
            rep.caller_to_callee.sent += a.sent as u64;
            rep.caller_to_callee.received += a.received as u64;
            rep.callee_to_caller.sent += b.sent as u64;
            rep.callee_to_caller.received += b.received as u64;
            if b.sent > 0 {
                rep.calls_checked += 1;
                let clipped = b.first_rx_index.unwrap_or(b.sent);
                if clipped > 0 {
                    rep.calls_first_packet_lost += 1;
                    rep.clipped_packets += clipped as u64;
                }
            }
        }
        for d in [&mut rep.caller_to_callee, &mut rep.callee_to_caller] {
            d.loss_pct = pct(d.sent.saturating_sub(d.received), d.sent);
        }
        // Scheduling hiccups on a shared machine give a few late ticks; a
        // generator that cannot keep up is late on a large share of them.
        if rep.send_lag.p90_ms > 5.0 {
            self.generator.limited = true;
            self.generator
                .reasons
                .push(format!("RTP send lag p90 {:.1} ms", rep.send_lag.p90_ms));
        }
        if rep.send_dropped > 0 {
            self.generator.limited = true;
            self.generator.reasons.push(format!(
                "{} RTP packets refused by the local socket",
                rep.send_dropped
            ));
        }
        self.rtp = Some(rep);
    }

    /// No failure of any kind.
    pub fn clean(&self) -> bool {
        self.ok
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "loadgen {} against {} ({:.1} s of load)",
            self.mode, self.server, self.load_s
        );
        let p = |s: &mut String, name: &str, p: &Percentiles| {
            let _ = writeln!(
                s,
                "  {name:<22} p50 {:>8.2} ms  p90 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms  (n={})",
                p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms, p.count
            );
        };
        if let Some(r) = &self.registrations {
            let _ = writeln!(
                s,
                "registrations: {} attempted, {} ok, {:.1}/s, failed {:?}, retransmissions {}, skipped (user busy) {}",
                r.attempted, r.ok, r.achieved_rate, r.failed, r.retransmissions, r.skipped_busy
            );
            p(&mut s, "registration time", &r.latency);
        }
        if let Some(c) = &self.calls {
            let _ = writeln!(
                s,
                "calls: {} attempted, {} answered, {} completed, {:.1} cps, max concurrent {}, failed {:?}, throttled {}, retransmissions {}",
                c.attempted, c.answered, c.completed, c.achieved_cps, c.max_concurrent, c.failed, c.throttled, c.retransmissions
            );
            p(&mut s, "setup (INVITE->200)", &c.setup);
        }
        if let Some(m) = &self.rtp {
            for (name, d) in [
                ("caller->callee", &m.caller_to_callee),
                ("callee->caller", &m.callee_to_caller),
            ] {
                let _ = writeln!(
                    s,
                    "rtp {name}: sent {} received {} loss {:.3}%",
                    d.sent, d.received, d.loss_pct
                );
            }
            p(&mut s, "added one-way latency", &m.latency);
            p(&mut s, "send lag", &m.send_lag);
            let _ = writeln!(
                s,
                "  first callee packet lost in {} of {} calls ({} packets clipped)",
                m.calls_first_packet_lost, m.calls_checked, m.clipped_packets
            );
        }
        if let Some(c) = &self.server_cost {
            let _ = writeln!(
                s,
                "server pids {:?}: CPU {:.2} s total, {:.2} s in a {:.1} s window ({:.1}% of a core)",
                c.pids, c.cpu_s_total, c.cpu_s_window, c.window_s, c.cpu_pct_window
            );
            let _ = writeln!(
                s,
                "  RSS idle {} kB, peak {} kB, HWM {} kB; max active calls {}, RSS per active call {}",
                c.idle_rss_kb,
                c.peak_rss_kb,
                c.hwm_kb,
                c.max_active_calls,
                c.rss_per_active_call_kb.map(|v| format!("{v:.1} kB")).unwrap_or_else(|| "-".into())
            );
            let f = |v: Option<f64>| {
                v.map(|v| format!("{v:.1} µs"))
                    .unwrap_or_else(|| "-".into())
            };
            let _ = writeln!(
                s,
                "  CPU per registration {}, per call {}, per relayed packet {}",
                f(c.cpu_us_per_registration),
                f(c.cpu_us_per_call),
                f(c.cpu_us_per_packet)
            );
        }
        let g = &self.generator;
        let _ = writeln!(
            s,
            "generator: CPU {:.1}% (SIP thread {:.1}%, RTP thread {:.1}%){}",
            g.cpu_pct,
            g.sip_thread_pct,
            g.rtp_thread_pct,
            if g.limited {
                format!(" LIMITED: {}", g.reasons.join("; "))
            } else {
                String::new()
            }
        );
        let _ = writeln!(s, "result: {}", if self.ok { "clean" } else { "FAILURES" });
        s
    }
}
