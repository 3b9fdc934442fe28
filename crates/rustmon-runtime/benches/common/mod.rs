//! The allocation-heavy workload shared by the `runtime` and `system` benches.

#![allow(dead_code)] // each bench binary uses part of it

use std::hint::black_box;
use std::time::Duration;

/// Allocator calls (allocations and reallocations) per [`unit`], as counted exactly by the
/// `runtime` bench (which checks it): `vec!`, `format!`, `Box::new`, a vector grown to 12
/// elements (1 allocation, 2 reallocations), a `String` and its uppercase copy.
pub(crate) const CALLS_PER_UNIT: u64 = 8;

/// Small allocations of the usual kinds, freed at once.
#[inline(never)]
pub(crate) fn unit(i: u64) -> usize {
    // `black_box` on every value keeps the optimiser from eliding an allocation.
    let mut n = 0;
    let v: Vec<u64> = black_box(vec![i; 4]);
    n += v.len();
    let s = black_box(format!("user-{i}"));
    n += s.len();
    let b = black_box(Box::new([i; 6]));
    n += b.len();
    let mut grow = Vec::new();
    for j in 0..12_u64 {
        grow.push(black_box(j ^ i)); // 4, 8, 16: one allocation and two reallocations
    }
    n += black_box(&grow).len();
    let t = black_box(String::from("a short string"));
    let u = black_box(t.to_uppercase());
    n += t.len() + u.len();
    black_box(n)
}

/// CPU time of the calling thread (user + system), which other load on the shared machine does
/// not inflate the way it inflates wall time.
pub(crate) fn thread_cpu_time() -> Duration {
    // SAFETY: an all-zero timespec is valid; clock_gettime writes into it.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `iters` units on each of 2 threads at once; returns the mean CPU time per thread.
pub(crate) fn two_threads(iters: u64) -> Duration {
    let total: Duration = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2_u64)
            .map(|t| {
                s.spawn(move || {
                    let start = thread_cpu_time();
                    for i in 0..iters {
                        unit(i.wrapping_mul(t + 1));
                    }
                    thread_cpu_time() - start
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .sum()
    });
    total / 2
}

/// Runs `f` `iters` times on this thread; returns the CPU time it took.
pub(crate) fn cpu_timed(iters: u64, mut f: impl FnMut()) -> Duration {
    let start = thread_cpu_time();
    for _ in 0..iters {
        f();
    }
    thread_cpu_time() - start
}
