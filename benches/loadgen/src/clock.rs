//! One monotonic clock for the whole process, so a send time written by the
//! media thread can be compared with a receive time taken anywhere.

use std::sync::OnceLock;
use std::time::Instant;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// Nanoseconds since the first call in this process.
pub fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}
