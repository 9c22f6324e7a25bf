//! Latency histograms and process accounting from /proc.

use serde::Serialize;
use std::fs;

/// Microsecond histogram: 1 µs buckets below 10 ms, 100 µs buckets to 10 s.
#[derive(Clone)]
pub struct Histogram {
    fine: Vec<u64>,
    coarse: Vec<u64>,
    count: u64,
    max_us: u64,
}

const FINE: u64 = 10_000;
const COARSE_STEP: u64 = 100;
const COARSE: u64 = 100_000;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            fine: vec![0; FINE as usize],
            coarse: vec![0; COARSE as usize],
            count: 0,
            max_us: 0,
        }
    }
}

/// Percentiles in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Histogram {
    /// Adds `other`'s samples to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.fine.iter_mut().zip(&other.fine) {
            *a += b;
        }
        for (a, b) in self.coarse.iter_mut().zip(&other.coarse) {
            *a += b;
        }
        self.count += other.count;
        self.max_us = self.max_us.max(other.max_us);
    }

    pub fn record_us(&mut self, us: u64) {
        if us < FINE {
            self.fine[us as usize] += 1;
        } else {
            let i = ((us - FINE) / COARSE_STEP).min(COARSE - 1);
            self.coarse[i as usize] += 1;
        }
        self.count += 1;
        self.max_us = self.max_us.max(us);
    }

    /// The value (µs) below which `q` of the samples fall.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let target = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, c) in self.fine.iter().enumerate() {
            seen += c;
            if seen >= target {
                return i as u64;
            }
        }
        for (i, c) in self.coarse.iter().enumerate() {
            seen += c;
            if seen >= target {
                return FINE + i as u64 * COARSE_STEP;
            }
        }
        self.max_us
    }

    pub fn percentiles(&self) -> Percentiles {
        let ms = |us: u64| us as f64 / 1000.0;
        Percentiles {
            count: self.count,
            p50_ms: ms(self.quantile_us(0.50)),
            p90_ms: ms(self.quantile_us(0.90)),
            p99_ms: ms(self.quantile_us(0.99)),
            max_ms: ms(self.max_us),
        }
    }
}

/// CPU time (clock ticks of user+system) and memory of one process.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcSample {
    pub cpu_ticks: u64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
    pub pss_kb: u64,
}

pub fn clock_ticks_per_sec() -> u64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf has no memory effects.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            return t as u64;
        }
    }
    100
}

/// utime+stime from a `/proc/.../stat` line (fields 14 and 15; the command
/// name in parentheses may contain spaces, so split after the last ')').
pub fn parse_stat_cpu(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    // After ')' field 3 (state) comes first: utime is the 12th token.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l[key.len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Reads one process (or thread, with a `/proc/<pid>/task/<tid>` root).
pub fn sample_proc(root: &str, with_pss: bool) -> Option<ProcSample> {
    let stat = fs::read_to_string(format!("{root}/stat")).ok()?;
    let cpu_ticks = parse_stat_cpu(&stat)?;
    let status = fs::read_to_string(format!("{root}/status")).unwrap_or_default();
    let pss_kb = if with_pss {
        fs::read_to_string(format!("{root}/smaps_rollup"))
            .map(|s| status_kb(&s, "Pss:"))
            .unwrap_or(0)
    } else {
        0
    };
    Some(ProcSample {
        cpu_ticks,
        rss_kb: status_kb(&status, "VmRSS:"),
        hwm_kb: status_kb(&status, "VmHWM:"),
        pss_kb,
    })
}

/// Pids whose command name (`/proc/<pid>/comm`) equals `name`.
pub fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim_end() == name)
                .unwrap_or(false)
        })
        .collect();
    out.sort_unstable();
    out
}

/// The sum over a set of processes (Kamailio forks workers).
pub fn sample_pids(pids: &[u32]) -> ProcSample {
    let mut total = ProcSample::default();
    for pid in pids {
        if let Some(s) = sample_proc(&format!("/proc/{pid}"), pids.len() > 1) {
            total.cpu_ticks += s.cpu_ticks;
            total.rss_kb += s.rss_kb;
            total.hwm_kb += s.hwm_kb;
            total.pss_kb += if pids.len() > 1 { s.pss_kb } else { s.rss_kb };
        }
    }
    total
}

/// Kernel thread id of the caller, to read its own CPU time.
pub fn gettid() -> u32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid has no memory effects.
        return unsafe { libc::syscall(libc::SYS_gettid) } as u32;
    }
    #[allow(unreachable_code)]
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_in_name() {
        let line = "123 (my proc) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat_cpu(line), Some(300));
    }

    #[test]
    fn histogram_quantiles() {
        let mut h = Histogram::default();
        for us in 1..=100 {
            h.record_us(us * 1000);
        }
        let p = h.percentiles();
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() < 0.2, "{p:?}");
        assert!((p.p99_ms - 99.0).abs() < 0.2, "{p:?}");
        assert_eq!(p.max_ms, 100.0);
    }
}
