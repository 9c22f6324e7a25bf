//! Timer values (RFC 3261 §17 and Table 4) and the one ordered timer queue
//! shared by every transaction.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The base timer values of RFC 3261 §17.1.1.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate: first retransmission interval.
    pub t1: Duration,
    /// Cap on the retransmission interval of non-INVITE requests and INVITE responses.
    pub t2: Duration,
    /// How long a message may stay in the network.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// Timers B, F, H, J, L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: at least 32 s on unreliable transports, and never shorter than 64*T1.
    pub fn timer_d(&self) -> Duration {
        self.t1x64().max(Duration::from_secs(32))
    }

    /// The next retransmission interval where the interval is capped at T2.
    pub(crate) fn capped_double(&self, interval: Duration) -> Duration {
        (interval * 2).min(self.t2)
    }
}

/// Each transaction has at most one timer armed per slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Slot {
    /// A, E, G and the 2xx retransmission of the Accepted state.
    Retransmit = 0,
    /// The timer that ends the current state: B, F, H, L, M (failure or
    /// end of Accepted) and D, I, J, K (end of the absorbing states).
    Expire = 1,
    /// The 200 ms after which an INVITE server transaction sends 100 Trying itself.
    Trying = 2,
}

impl Slot {
    pub(crate) const ALL: [Slot; 3] = [Slot::Retransmit, Slot::Expire, Slot::Trying];
}

/// The deadlines armed by one transaction, one per slot.
pub(crate) type Armed = [Option<Instant>; 3];

/// Every armed timer of the layer, ordered by deadline. A transaction keeps
/// its own deadlines so that a timer is removed exactly (O(log n)) when it
/// is re-armed, cancelled or its transaction ends.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    set: BTreeSet<(Instant, u64, Slot)>,
}

impl TimerQueue {
    pub(crate) fn arm(&mut self, armed: &mut Armed, id: u64, slot: Slot, at: Instant) {
        if let Some(old) = armed[slot as usize].replace(at) {
            self.set.remove(&(old, id, slot));
        }
        self.set.insert((at, id, slot));
    }

    pub(crate) fn disarm(&mut self, armed: &mut Armed, id: u64, slot: Slot) {
        if let Some(old) = armed[slot as usize].take() {
            self.set.remove(&(old, id, slot));
        }
    }

    pub(crate) fn disarm_all(&mut self, armed: &mut Armed, id: u64) {
        for slot in Slot::ALL {
            self.disarm(armed, id, slot);
        }
    }

    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|&(at, _, _)| at)
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, u64, Slot)> {
        match self.set.first() {
            Some(&(at, _, _)) if at <= now => self.set.pop_first(),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}
