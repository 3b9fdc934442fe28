//! The allocation-heavy workload shared by the `runtime` and `system` benches.

#![allow(dead_code)] // each bench binary uses part of it

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Allocator calls (allocations and reallocations) per [`unit`], as counted exactly by the
/// `runtime` bench (which checks it): `vec!`, `format!`, `Box::new`, a vector grown to 12
/// elements (1 allocation, 2 reallocations), a `String` and its uppercase copy.
pub(crate) const CALLS_PER_UNIT: u64 = 8;

/// Small allocations of the usual kinds, freed at once.
#[inline(never)]
pub(crate) fn unit(i: u64) -> usize {
    let mut n = 0;
    let v: Vec<u64> = vec![i; 4];
    n += v.len();
    let s = format!("user-{i}");
    n += s.len();
    let b = Box::new([i; 6]);
    n += b.len();
    let mut grow = Vec::new();
    for j in 0..12_u64 {
        grow.push(j ^ i); // 4, 8, 16: one allocation and two reallocations
    }
    n += grow.len();
    let t = String::from("a short string").to_uppercase();
    n += t.len();
    black_box(n)
}

/// Runs `iters` units on each of 2 threads; returns the wall time.
pub(crate) fn two_threads(iters: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2_u64 {
            s.spawn(move || {
                for i in 0..iters {
                    unit(i.wrapping_mul(t + 1));
                }
            });
        }
    });
    start.elapsed()
}
