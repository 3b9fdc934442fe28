//! Wall-clock timestamps derived from the monotonic clock.
//!
//! Reading `SystemTime` and `Instant` for every event would cost two clock reads at start. Instead
//! one anchor pair is taken per process and an event's wall-clock start is the anchor plus the
//! monotonic time elapsed since it, so an event reads the clock once at start and once at finish.
//! The monotonic clock is `quanta`'s: the CPU's invariant time-stamp counter where there is one
//! (a few ns per read, against 20–30 ns for `clock_gettime` on a virtual machine), the OS clock
//! elsewhere.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) use quanta::Instant;

struct Anchor {
    instant: Instant,
    unix_nanos: u64,
}

fn anchor() -> &'static Anchor {
    static ANCHOR: OnceLock<Anchor> = OnceLock::new();
    ANCHOR.get_or_init(|| Anchor {
        instant: Instant::now(),
        unix_nanos: system_unix_nanos(),
    })
}

fn system_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Nanoseconds since the Unix epoch of a monotonic instant.
#[inline]
pub(crate) fn unix_nanos_at(instant: Instant) -> u64 {
    let a = anchor();
    match instant.checked_duration_since(a.instant) {
        Some(d) => a.unix_nanos + d.as_nanos() as u64,
        None => a
            .unix_nanos
            .saturating_sub((a.instant - instant).as_nanos() as u64),
    }
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_unix_nanos() -> u64 {
    unix_nanos_at(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_time_tracks_the_system_clock() {
        let derived = now_unix_nanos();
        let system = system_unix_nanos();
        assert!(derived.abs_diff(system) < 1_000_000_000);
    }
}
