//! Bandwidth policing: each call's measured bitrate per direction against
//! the bandwidth admission reserved for it.
//!
//! What is counted: every RTP and RTCP datagram a side sends to the relay,
//! as UDP payload + UDP header + IP header (28 octets per packet over IPv4,
//! 48 over IPv6), summed over all the session's streams because a
//! reservation covers the whole call. Admission's figures also include
//! layer-2 framing (18 octets per packet on Ethernet); the relay cannot see
//! it, so policing is slightly lenient (about 8% for G.711 at 20 ms).
//!
//! Two mechanisms, both with no timer per call:
//! - [`Meter`], fed by the relay-wide police sweep every quarter window from
//!   the existing per-stream counters (nothing added to the packet path):
//!   the measured rate is the mean over the last window, and an *episode*
//!   starts when every sweep interval for a whole window was above the
//!   allowed rate (`reservation × (1 + margin)`). It ends when the mean over
//!   a window is back within the reservation itself, so a stream hovering
//!   around the limit is one episode, not many.
//! - [`Bucket`], with `drop_excess` only: a token bucket in its GCRA form
//!   (one atomic "theoretical arrival time" per direction, updated by
//!   compare-and-swap per packet with the clock reading the relay takes
//!   anyway). It lets through the allowed rate plus a burst of
//!   [`PoliceConfig::burst`] worth of it (200 ms by default: enough for the
//!   clumps jitter makes, small enough that the excess does not queue up on
//!   the customer's link in front of other calls).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How the relay polices calls against their reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoliceConfig {
    /// Tolerance above the reservation, in percent.
    pub margin_percent: u32,
    /// How long a stream must stay above the allowed rate before it is
    /// reported; also the span of the measured rate.
    pub window: Duration,
    /// Drop the packets beyond the allowed rate (RTCP is charged to the
    /// bucket but never dropped: it is small and carries the call's quality
    /// reports).
    pub drop_excess: bool,
    /// Burst let through above the allowed rate with `drop_excess`, as a
    /// duration at that rate.
    pub burst: Duration,
}

impl Default for PoliceConfig {
    fn default() -> Self {
        PoliceConfig {
            margin_percent: 20,
            window: Duration::from_secs(5),
            drop_excess: false,
            burst: Duration::from_millis(200),
        }
    }
}

/// Relay-wide policing totals (since the relay started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoliceStats {
    /// Episodes of a direction exceeding its reservation beyond the margin
    /// for longer than the window.
    pub exceeded_episodes: u64,
    /// Packets dropped for exceeding the allowed rate (`drop_excess`).
    pub dropped_packets: u64,
    /// Directions of live sessions in an episode at the last sweep.
    pub exceeding_now: u64,
}

/// IP + UDP header octets counted per datagram.
pub(crate) const IPV4_UDP_OCTETS: u64 = 28;
pub(crate) const IPV6_UDP_OCTETS: u64 = 48;

/// The allowed rate: the reservation plus the margin, in kbps.
pub(crate) fn allowed_kbps(reserved_kbps: u32, margin_percent: u32) -> u32 {
    let v = u64::from(reserved_kbps).saturating_mul(100 + u64::from(margin_percent)) / 100;
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Nanoseconds `octets` take at `kbps` (1 kbps = 1000 bit/s).
fn cost_ns(octets: u64, kbps: u32) -> u64 {
    octets.saturating_mul(8_000_000) / u64::from(kbps.max(1))
}

/// A token bucket as GCRA: the bucket is full while the theoretical arrival
/// time (TAT) lags the clock and empty once TAT runs `burst` ahead of it.
/// Shared by the tasks of one direction (RTP and RTCP of every stream).
#[derive(Debug, Default)]
pub(crate) struct Bucket {
    tat_ns: AtomicU64,
}

impl Bucket {
    /// Takes `octets` at `kbps` if the backlog is within `burst_ns`; false
    /// means drop the packet (the bucket is left as it was).
    pub fn admit(&self, now_ns: u64, octets: u64, kbps: u32, burst_ns: u64) -> bool {
        let cost = cost_ns(octets, kbps);
        let mut tat = self.tat_ns.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now_ns);
            if start - now_ns > burst_ns {
                return false;
            }
            match self.tat_ns.compare_exchange_weak(
                tat,
                start.saturating_add(cost),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(t) => tat = t,
            }
        }
    }

    /// Takes `octets` whatever the backlog (for packets never dropped).
    pub fn charge(&self, now_ns: u64, octets: u64, kbps: u32) {
        let cost = cost_ns(octets, kbps);
        let _ = self
            .tat_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |tat| {
                Some(tat.max(now_ns).saturating_add(cost))
            });
    }
}

/// Samples kept: four sweep intervals of a quarter window each.
const SLOTS: usize = 5;

/// A change of a direction's episode state, reported by [`Meter::sample`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Episode {
    Started,
    Ended,
}

/// Sliding-window rate and episode state of one direction, owned by the
/// police sweep. Works on cumulative octet counts, so a missed sweep only
/// makes an interval longer.
#[derive(Debug)]
pub(crate) struct Meter {
    /// `(time µs, cumulative octets)`, oldest first once full.
    samples: [(u64, u64); SLOTS],
    len: usize,
    next: usize,
    /// Start of the run of intervals above the allowed rate.
    over_since: Option<u64>,
    in_episode: bool,
}

impl Meter {
    pub fn new(now_us: u64) -> Meter {
        let mut samples = [(0, 0); SLOTS];
        samples[0] = (now_us, 0);
        Meter {
            samples,
            len: 1,
            next: 1,
            over_since: None,
            in_episode: false,
        }
    }

    pub fn in_episode(&self) -> bool {
        self.in_episode
    }

    /// Records the cumulative `octets` at `now_us`; returns the rate over
    /// the window in bit/s and the episode change, if any. A reservation of
    /// 0 means not policed (and ends an episode).
    pub fn sample(
        &mut self,
        now_us: u64,
        octets: u64,
        reserved_kbps: u32,
        margin_percent: u32,
        window: Duration,
    ) -> (u64, Option<Episode>) {
        let last = self.samples[(self.next + SLOTS - 1) % SLOTS];
        if now_us <= last.0 {
            return (self.rate_bps(), None);
        }
        self.samples[self.next] = (now_us, octets);
        self.next = (self.next + 1) % SLOTS;
        self.len = (self.len + 1).min(SLOTS);
        let mean = self.rate_bps();

        if reserved_kbps == 0 {
            self.over_since = None;
            return (mean, self.end());
        }
        let allowed = u64::from(allowed_kbps(reserved_kbps, margin_percent)) * 1000;
        if bps(octets.saturating_sub(last.1), now_us - last.0) > allowed {
            self.over_since.get_or_insert(last.0);
        } else {
            self.over_since = None;
        }
        let window_us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        if !self.in_episode {
            if self
                .over_since
                .is_some_and(|since| now_us - since >= window_us)
            {
                self.in_episode = true;
                return (mean, Some(Episode::Started));
            }
        } else if mean <= u64::from(reserved_kbps) * 1000 {
            return (mean, self.end());
        }
        (mean, None)
    }

    fn end(&mut self) -> Option<Episode> {
        std::mem::replace(&mut self.in_episode, false).then_some(Episode::Ended)
    }

    /// Mean rate from the oldest sample kept to the newest, in bit/s.
    fn rate_bps(&self) -> u64 {
        let newest = self.samples[(self.next + SLOTS - 1) % SLOTS];
        let oldest = if self.len < SLOTS {
            self.samples[0]
        } else {
            self.samples[self.next]
        };
        bps(
            newest.1.saturating_sub(oldest.1),
            newest.0.saturating_sub(oldest.0),
        )
    }
}

fn bps(octets: u64, us: u64) -> u64 {
    if us == 0 {
        return 0;
    }
    let v = u128::from(octets) * 8_000_000 / u128::from(us);
    u64::try_from(v).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1000;
    const W: Duration = Duration::from_millis(400);

    /// Feeds a meter every 100 ms (a quarter of `W`) at `kbps` for `ms`.
    fn run(
        m: &mut Meter,
        t: &mut u64,
        octets: &mut u64,
        kbps: u64,
        ms: u64,
        reserved: u32,
    ) -> Vec<Episode> {
        let mut changes = Vec::new();
        for _ in 0..ms / 100 {
            *t += 100 * MS;
            *octets += kbps * 100 / 8; // kbit/s × 100 ms / 8 = octets
            if let (_, Some(e)) = m.sample(*t, *octets, reserved, 20, W) {
                changes.push(e);
            }
        }
        changes
    }

    #[test]
    fn allowed_rate_adds_the_margin_without_overflow() {
        assert_eq!(allowed_kbps(100, 20), 120);
        assert_eq!(allowed_kbps(0, 20), 0);
        assert_eq!(allowed_kbps(u32::MAX, u32::MAX), u32::MAX);
    }

    #[test]
    fn meter_measures_the_window_mean() {
        let (mut t, mut o) = (0, 0);
        let mut m = Meter::new(0);
        run(&mut m, &mut t, &mut o, 80, 1000, 0);
        assert_eq!(m.sample(t + 1, o, 0, 20, W).0 / 1000, 79); // 1 µs more, same octets
                                                               // The window forgets older traffic: 4 intervals at 160 kbps.
        run(&mut m, &mut t, &mut o, 160, 400, 0);
        assert_eq!(m.rate_bps(), 160_000);
        run(&mut m, &mut t, &mut o, 0, 400, 0);
        assert_eq!(m.rate_bps(), 0);
    }

    #[test]
    fn within_the_margin_or_short_bursts_are_no_episode() {
        let (mut t, mut o) = (0, 0);
        let mut m = Meter::new(0);
        assert!(run(&mut m, &mut t, &mut o, 115, 3000, 100).is_empty());
        // 300 ms at 3x, then back: shorter than the window.
        for _ in 0..5 {
            assert!(run(&mut m, &mut t, &mut o, 300, 300, 100).is_empty());
            assert!(run(&mut m, &mut t, &mut o, 90, 100, 100).is_empty());
        }
        assert!(!m.in_episode());
    }

    #[test]
    fn sustained_excess_is_one_episode_until_back_within_the_reservation() {
        let (mut t, mut o) = (0, 0);
        let mut m = Meter::new(0);
        // Over for 3 intervals: not yet a whole window.
        assert!(run(&mut m, &mut t, &mut o, 200, 300, 100).is_empty());
        assert_eq!(
            run(&mut m, &mut t, &mut o, 200, 100, 100),
            [Episode::Started]
        );
        assert!(run(&mut m, &mut t, &mut o, 200, 2000, 100).is_empty());
        // Dipping under the limit for a moment does not end it.
        assert!(run(&mut m, &mut t, &mut o, 110, 100, 100).is_empty());
        assert!(run(&mut m, &mut t, &mut o, 200, 1000, 100).is_empty());
        // Once the window mean is within the reservation it ends...
        assert_eq!(run(&mut m, &mut t, &mut o, 50, 400, 100), [Episode::Ended]);
        // ...and a new excess is a new episode.
        assert_eq!(
            run(&mut m, &mut t, &mut o, 200, 500, 100),
            [Episode::Started]
        );
        // Removing the reservation ends it.
        assert_eq!(run(&mut m, &mut t, &mut o, 200, 100, 0), [Episode::Ended]);
        assert!(run(&mut m, &mut t, &mut o, 500, 2000, 0).is_empty());
    }

    #[test]
    fn a_clock_that_does_not_move_changes_nothing() {
        let mut m = Meter::new(10);
        assert_eq!(m.sample(10, 1000, 100, 20, W), (0, None));
        assert_eq!(m.sample(5, 1000, 100, 20, W), (0, None));
    }

    #[test]
    fn bucket_passes_the_rate_plus_the_burst() {
        let b = Bucket::default();
        let burst = 200_000_000; // 200 ms
                                 // 100 kbps, 250-octet packets = 20 ms each at that rate; offered
                                 // every 10 ms (2x) for 2 s after a long idle spell.
        let start = 10_000_000_000u64;
        let passed = (0..200u64)
            .filter(|i| b.admit(start + i * 10_000_000, 250, 100, burst))
            .count();
        // 2 s at the rate (100 packets) + the burst (10) + the first one.
        assert!((110..=112).contains(&passed), "{passed}");
        // Charging never refuses but fills the bucket.
        let b = Bucket::default();
        for _ in 0..100 {
            b.charge(start, 250, 100);
        }
        assert!(!b.admit(start, 250, 100, burst));
        assert!(b.admit(start + 2_000_000_000, 250, 100, burst));
    }
}
