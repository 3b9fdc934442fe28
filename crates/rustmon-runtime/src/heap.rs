//! The tracking allocator: exact per-thread allocation counters and sampled allocation profiling.
//!
//! # How it works
//! - **Counters.** Each thread owns a cache-line-aligned block of counters (allocated and freed
//!   bytes and objects). Only the owner writes it, with a relaxed load and store (no atomic
//!   read-modify-write, no shared cache line); readers sum all blocks. Blocks live in an
//!   append-only list and are reused when their thread exits (a thread-local guard hands the block
//!   back), so the list is as long as the most threads ever alive at once. Allocations made while
//!   a thread has no block (during its block's setup or after its thread-locals were destroyed)
//!   go to shared fallback atomics, so totals stay exact.
//! - **Sampling.** Each block counts down the bytes until its next sample; the distance between
//!   samples is drawn from an exponential distribution with the configured mean, so an
//!   allocation of `s` bytes is sampled with probability `1 - exp(-s / mean)` and a sample stands
//!   for `s / (1 - exp(-s / mean))` bytes (the estimator tcmalloc and jemalloc use). A sample
//!   records the raw return addresses of the stack (no symbol lookup, no allocation) into a
//!   bounded table of allocation sites, and the sampled pointer into a bounded map so its free is
//!   credited back to the site (a free looks the map up only if a 16 KiB counting filter, one
//!   load, says the pointer may be there). While a thread is taking a sample, its own allocations are counted
//!   but never sampled: the allocator does not recurse.
//! - **Never disturbing the program.** The allocator never panics and never allocates; its only
//!   lock is a spin lock held for a few stores on the sampling slow path (never across an
//!   allocation or a stack walk). When a table is full, samples are counted as dropped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering::*,
    fence,
};

/// The default mean distance between samples: 512 KiB, as jemalloc's `lg_prof_sample = 19`.
pub const DEFAULT_SAMPLE_BYTES: u64 = 512 * 1024;
/// Frames kept per sampled stack.
pub const MAX_FRAMES: usize = 32;
/// Distinct allocation sites kept; samples from further sites are counted under site 0,
/// `(other)`.
pub const MAX_SITES: usize = 1024;
/// Sampled allocations tracked at once for their frees; past that, samples are still counted
/// as allocated but their frees are not seen.
pub const MAX_TRACKED: usize = 8192;

/// What the tracking allocator does on each call; see [`set_mode`].
///
/// # Examples
/// ```
/// use rustmon_runtime::heap::{self, HeapMode};
/// assert_eq!(heap::mode(), HeapMode::Counting); // the default
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HeapMode {
    /// Forward to the inner allocator and count nothing (one relaxed load per call).
    Off,
    /// Count allocated and freed bytes and objects per thread (the default).
    Counting,
    /// Count, and sample allocations for the heap profile.
    Sampling,
}

static MODE: AtomicU8 = AtomicU8::new(1);
/// What the hot path checks, in one load: [`COUNT`], [`SAMPLE`], [`TRACKING`].
static FAST: AtomicU8 = AtomicU8::new(COUNT);
const COUNT: u8 = 1;
const SAMPLE: u8 = 2;
/// Some sampled allocations are tracked: frees must look them up.
const TRACKING: u8 = 4;
static SAMPLE_BYTES: AtomicU64 = AtomicU64::new(DEFAULT_SAMPLE_BYTES);
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Sets what the tracking allocator does from now on (the runtime plugin sets it from its
/// configuration). Counters of allocations made while `Off` are not kept, so live counts are only
/// meaningful if the mode stays on.
///
/// # Examples
/// ```
/// use rustmon_runtime::heap::{mode, set_mode, HeapMode};
/// set_mode(HeapMode::Sampling);
/// assert_eq!(mode(), HeapMode::Sampling);
/// set_mode(HeapMode::Counting);
/// ```
pub fn set_mode(mode: HeapMode) {
    if mode == HeapMode::Sampling {
        reset_lock_after_fork();
    }
    let (value, bits) = match mode {
        HeapMode::Off => (0, 0),
        HeapMode::Counting => (1, COUNT),
        HeapMode::Sampling => (2, COUNT | SAMPLE),
    };
    MODE.store(value, Relaxed);
    // One atomic update, so concurrent allocations never see counting switched off in passing.
    let _ = FAST.fetch_update(Relaxed, Relaxed, |f| Some((f & TRACKING) | bits));
}

/// What the tracking allocator currently does.
pub fn mode() -> HeapMode {
    match MODE.load(Relaxed) {
        0 => HeapMode::Off,
        1 => HeapMode::Counting,
        _ => HeapMode::Sampling,
    }
}

/// Sets the mean distance between samples in bytes (at least 1; takes effect at each thread's
/// next sample).
///
/// # Examples
/// ```
/// rustmon_runtime::heap::set_sample_bytes(1 << 20);
/// assert_eq!(rustmon_runtime::heap::sample_bytes(), 1 << 20);
/// rustmon_runtime::heap::set_sample_bytes(rustmon_runtime::heap::DEFAULT_SAMPLE_BYTES);
/// ```
pub fn set_sample_bytes(bytes: u64) {
    SAMPLE_BYTES.store(bytes.max(1), Relaxed);
}

/// The mean distance between samples in bytes.
pub fn sample_bytes() -> u64 {
    SAMPLE_BYTES.load(Relaxed)
}

/// Whether a [`TrackingAllocator`] has served an allocation in this process (so it is the global
/// allocator).
///
/// # Examples
/// ```
/// // This doctest does not install the tracking allocator.
/// assert!(!rustmon_runtime::heap::is_installed());
/// ```
pub fn is_installed() -> bool {
    INSTALLED.load(Relaxed)
}

/// A global allocator that counts and samples allocations, forwarding them to `A` (the system
/// allocator by default, or e.g. jemalloc's).
///
/// Install it in the application (never in a library).
///
/// # Examples
/// ```
/// #[global_allocator]
/// static GLOBAL: rustmon_runtime::TrackingAllocator = rustmon_runtime::TrackingAllocator::system();
///
/// let before = rustmon_runtime::heap::stats();
/// let v = vec![0_u8; 1000];
/// drop(v);
/// let after = rustmon_runtime::heap::stats();
/// assert!(after.allocated_bytes >= before.allocated_bytes + 1000);
/// ```
/// `realloc` counts as one free of the old block and one allocation of the new one.
#[derive(Debug, Default)]
pub struct TrackingAllocator<A = System> {
    inner: A,
}

impl TrackingAllocator<System> {
    /// Tracks the system allocator.
    pub const fn system() -> Self {
        TrackingAllocator { inner: System }
    }
}

impl<A> TrackingAllocator<A> {
    /// Tracks `inner`.
    pub const fn new(inner: A) -> Self {
        TrackingAllocator { inner }
    }
}

// SAFETY: every method forwards to `inner` with the caller's arguments unchanged and returns its
// result; the bookkeeping around it never allocates, panics or touches the returned memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for TrackingAllocator<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            on_alloc(p, layout.size());
        }
        p
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            on_alloc(p, layout.size());
        }
        p
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // Before the memory is handed back, so the address cannot be reused and sampled meanwhile.
        on_free(ptr, layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_free(ptr, layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if p.is_null() {
            // The old block is still allocated: count it back (its sample, if any, is lost).
            on_alloc_counts_only(layout.size());
        } else {
            on_alloc(p, new_size);
        }
        p
    }
}

// ---------------------------------------------------------------------------------------------
// Per-thread counter blocks.

#[repr(align(128))]
struct Block {
    next: AtomicPtr<Block>,
    in_use: AtomicBool,
    alloc_bytes: AtomicU64,
    alloc_count: AtomicU64,
    free_bytes: AtomicU64,
    free_count: AtomicU64,
    /// Bytes until the next sample (owner only).
    countdown: AtomicI64,
    /// xorshift state (owner only).
    rng: AtomicU64,
    /// Taking a sample (owner only): no sampling while set.
    busy: AtomicBool,
}

impl Block {
    const fn new() -> Self {
        Block {
            next: AtomicPtr::new(std::ptr::null_mut()),
            in_use: AtomicBool::new(true),
            alloc_bytes: AtomicU64::new(0),
            alloc_count: AtomicU64::new(0),
            free_bytes: AtomicU64::new(0),
            free_count: AtomicU64::new(0),
            countdown: AtomicI64::new(0),
            rng: AtomicU64::new(0),
            busy: AtomicBool::new(false),
        }
    }
}

/// Adds `n` to a counter only this thread writes: a plain load and store, no locked instruction.
#[inline(always)]
fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
}

static BLOCKS: AtomicPtr<Block> = AtomicPtr::new(std::ptr::null_mut());

#[repr(align(128))]
struct Fallback {
    alloc_bytes: AtomicU64,
    alloc_count: AtomicU64,
    free_bytes: AtomicU64,
    free_count: AtomicU64,
}

static FALLBACK: Fallback = Fallback {
    alloc_bytes: AtomicU64::new(0),
    alloc_count: AtomicU64::new(0),
    free_bytes: AtomicU64::new(0),
    free_count: AtomicU64::new(0),
};

/// No block yet / block being set up / thread-locals destroyed.
const NONE: usize = 0;
const SETTING_UP: usize = 1;
const DEAD: usize = 2;

thread_local! {
    // Const-initialised and without a destructor: always accessible, never allocates.
    static LOCAL: Cell<*const Block> = const { Cell::new(std::ptr::null()) };
    static RELEASE: ReleaseGuard = const { ReleaseGuard };
}

/// Hands the thread's block back when the thread exits.
struct ReleaseGuard;

impl Drop for ReleaseGuard {
    fn drop(&mut self) {
        let b = LOCAL.try_with(|l| l.replace(DEAD as *const Block));
        if let Ok(b) = b {
            if b as usize > DEAD {
                // SAFETY: blocks are never freed; `b` came from `acquire`.
                unsafe { (*b).in_use.store(false, Release) };
            }
        }
    }
}

/// The calling thread's block, setting one up on first use; `None` when it has none (fallback).
#[inline(always)]
fn block() -> Option<&'static Block> {
    let p = LOCAL.try_with(|l| l.get()).unwrap_or(DEAD as *const Block);
    if p as usize > DEAD {
        // SAFETY: blocks are never freed.
        Some(unsafe { &*p })
    } else if p as usize == NONE {
        acquire()
    } else {
        None
    }
}

#[cold]
#[inline(never)]
fn acquire() -> Option<&'static Block> {
    if LOCAL
        .try_with(|l| l.set(SETTING_UP as *const Block))
        .is_err()
    {
        return None;
    }
    let block = find_free().or_else(new_block);
    let Some(block) = block else {
        let _ = LOCAL.try_with(|l| l.set(NONE as *const Block));
        return None;
    };
    // Registering the release guard may allocate (some platforms keep a list of destructors):
    // those allocations see SETTING_UP and use the fallback counters.
    if RELEASE.try_with(|_| ()).is_err() {
        block.in_use.store(false, Release);
        let _ = LOCAL.try_with(|l| l.set(DEAD as *const Block));
        return None;
    }
    let seed = (block as *const Block as u64) ^ SEEDS.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed);
    block.rng.store(seed | 1, Relaxed);
    block.busy.store(false, Relaxed);
    // A fresh distance, so a thread's first allocation is not sampled on purpose.
    block.countdown.store(next_interval(block), Relaxed);
    let _ = LOCAL.try_with(|l| l.set(block as *const Block));
    INSTALLED.store(true, Relaxed);
    Some(block)
}

static SEEDS: AtomicU64 = AtomicU64::new(0x2545_F491_4F6C_DD1D);

fn find_free() -> Option<&'static Block> {
    let mut p = BLOCKS.load(Acquire);
    while !p.is_null() {
        // SAFETY: blocks are never freed.
        let b = unsafe { &*p };
        if !b.in_use.load(Relaxed)
            && b.in_use
                .compare_exchange(false, true, Acquire, Relaxed)
                .is_ok()
        {
            return Some(b);
        }
        p = b.next.load(Relaxed);
    }
    None
}

fn new_block() -> Option<&'static Block> {
    let layout = Layout::new::<Block>();
    // SAFETY: the layout has a non-zero size. The block comes straight from the system allocator,
    // not the global one, so this cannot recurse.
    let p = unsafe { System.alloc(layout) } as *mut Block;
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is valid for writes of a `Block` and suitably aligned.
    unsafe { p.write(Block::new()) };
    let mut head = BLOCKS.load(Relaxed);
    loop {
        // SAFETY: `p` is ours until published.
        unsafe { (*p).next.store(head, Relaxed) };
        match BLOCKS.compare_exchange_weak(head, p, Release, Relaxed) {
            Ok(_) => break,
            Err(h) => head = h,
        }
    }
    // SAFETY: published blocks are never freed.
    Some(unsafe { &*p })
}

#[inline(always)]
fn on_alloc(p: *mut u8, size: usize) {
    let fast = FAST.load(Relaxed);
    if fast & COUNT == 0 {
        return;
    }
    match block() {
        Some(b) => {
            bump(&b.alloc_bytes, size as u64);
            bump(&b.alloc_count, 1);
            if fast & SAMPLE != 0 {
                let left = b.countdown.load(Relaxed) - size as i64;
                b.countdown.store(left, Relaxed);
                if left <= 0 {
                    sample(b, p, size);
                }
            }
        }
        None => {
            FALLBACK.alloc_bytes.fetch_add(size as u64, Relaxed);
            FALLBACK.alloc_count.fetch_add(1, Relaxed);
        }
    }
}

fn on_alloc_counts_only(size: usize) {
    if FAST.load(Relaxed) & COUNT == 0 {
        return;
    }
    match block() {
        Some(b) => {
            bump(&b.alloc_bytes, size as u64);
            bump(&b.alloc_count, 1);
        }
        None => {
            FALLBACK.alloc_bytes.fetch_add(size as u64, Relaxed);
            FALLBACK.alloc_count.fetch_add(1, Relaxed);
        }
    }
}

#[inline(always)]
fn on_free(p: *mut u8, size: usize) {
    let fast = FAST.load(Relaxed);
    if fast == 0 {
        return;
    }
    if fast & COUNT != 0 {
        match block() {
            Some(b) => {
                bump(&b.free_bytes, size as u64);
                bump(&b.free_count, 1);
            }
            None => {
                FALLBACK.free_bytes.fetch_add(size as u64, Relaxed);
                FALLBACK.free_count.fetch_add(1, Relaxed);
            }
        }
    }
    // Most frees are not of sampled allocations: a small counting filter, in L1, says so in one
    // load before the tracked-pointer table is probed.
    if fast & TRACKING != 0 && FILTER[filter_index(p as usize)].load(Relaxed) != 0 {
        untrack(p as usize);
    }
}

/// Allocation counters (exact): process-wide from [`stats`], or one thread's from
/// [`thread_stats`].
///
/// # Examples
/// ```
/// use rustmon_runtime::HeapStats;
/// let s = HeapStats { allocated_bytes: 100, allocated_objects: 2, freed_bytes: 40, freed_objects: 1 };
/// assert_eq!((s.live_bytes(), s.live_objects()), (60, 1));
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes allocated since the allocator started counting.
    pub allocated_bytes: u64,
    /// Allocations made.
    pub allocated_objects: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Frees made.
    pub freed_objects: u64,
}

impl HeapStats {
    /// Bytes allocated and not yet freed (counted while the mode was not `Off`).
    pub fn live_bytes(&self) -> u64 {
        self.allocated_bytes.saturating_sub(self.freed_bytes)
    }

    /// Allocations not yet freed.
    pub fn live_objects(&self) -> u64 {
        self.allocated_objects.saturating_sub(self.freed_objects)
    }
}

/// The process-wide counters now: the sum of every thread's block and the fallback counters.
/// All zero when the tracking allocator is not installed.
///
/// # Examples
/// ```
/// let s = rustmon_runtime::heap::stats();
/// assert!(s.live_bytes() <= s.allocated_bytes);
/// ```
pub fn stats() -> HeapStats {
    let mut s = HeapStats {
        allocated_bytes: FALLBACK.alloc_bytes.load(Relaxed),
        allocated_objects: FALLBACK.alloc_count.load(Relaxed),
        freed_bytes: FALLBACK.free_bytes.load(Relaxed),
        freed_objects: FALLBACK.free_count.load(Relaxed),
    };
    let mut p = BLOCKS.load(Acquire);
    while !p.is_null() {
        // SAFETY: blocks are never freed.
        let b = unsafe { &*p };
        s.allocated_bytes = s.allocated_bytes.wrapping_add(b.alloc_bytes.load(Relaxed));
        s.allocated_objects = s
            .allocated_objects
            .wrapping_add(b.alloc_count.load(Relaxed));
        s.freed_bytes = s.freed_bytes.wrapping_add(b.free_bytes.load(Relaxed));
        s.freed_objects = s.freed_objects.wrapping_add(b.free_count.load(Relaxed));
        p = b.next.load(Relaxed);
    }
    s
}

/// The calling thread's own counters (exact; monotonic while the thread lives: take differences).
/// All zero when the tracking allocator is not installed or counting is off.
///
/// # Examples
/// ```
/// let before = rustmon_runtime::heap::thread_stats();
/// drop(Box::new([0_u8; 64]));
/// let after = rustmon_runtime::heap::thread_stats();
/// // With the tracking allocator installed: one more allocation and one more free of 64 bytes.
/// # let _ = (before, after);
/// ```
pub fn thread_stats() -> HeapStats {
    if !is_installed() {
        return HeapStats::default();
    }
    block().map_or_else(HeapStats::default, |b| HeapStats {
        allocated_bytes: b.alloc_bytes.load(Relaxed),
        allocated_objects: b.alloc_count.load(Relaxed),
        freed_bytes: b.free_bytes.load(Relaxed),
        freed_objects: b.free_count.load(Relaxed),
    })
}

/// Bytes allocated by the calling thread so far: a monotonic counter while the thread lives, for
/// attributing allocations to the work between two readings (take the difference). 0 when the
/// tracking allocator is not installed or counting is off.
///
/// # Examples
/// ```
/// let before = rustmon_runtime::allocated_bytes_on_this_thread();
/// let v = vec![1_u8; 4096];
/// let used = rustmon_runtime::allocated_bytes_on_this_thread() - before; // 4096 with the allocator
/// # drop(v); let _ = used;
/// ```
pub fn allocated_bytes_on_this_thread() -> u64 {
    if !is_installed() {
        return 0;
    }
    block().map_or(0, |b| b.alloc_bytes.load(Relaxed))
}

/// Allocations made by the calling thread so far (see [`allocated_bytes_on_this_thread`]).
pub fn allocations_on_this_thread() -> u64 {
    if !is_installed() {
        return 0;
    }
    block().map_or(0, |b| b.alloc_count.load(Relaxed))
}

// ---------------------------------------------------------------------------------------------
// Sampling.

/// A child forked while another thread held the sampling lock would wait for it forever: the
/// child starts with the lock free (the tables may hold one half-written entry, which only costs
/// accuracy).
fn reset_lock_after_fork() {
    #[cfg(unix)]
    {
        static REGISTERED: AtomicBool = AtomicBool::new(false);
        extern "C" fn child() {
            LOCK.store(false, Release);
        }
        if !REGISTERED.swap(true, Relaxed) {
            // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
            unsafe { libc::pthread_atfork(None, None, Some(child)) };
        }
    }
}

/// A tiny spin lock: held only for a few stores, never across an allocation or a stack walk.
static LOCK: AtomicBool = AtomicBool::new(false);

struct LockGuard;

fn lock() -> LockGuard {
    let mut spins = 0_u32;
    while LOCK
        .compare_exchange_weak(false, true, Acquire, Relaxed)
        .is_err()
    {
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
    LockGuard
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        LOCK.store(false, Release);
    }
}

struct Site {
    hash: AtomicU64,
    depth: AtomicUsize,
    ips: [AtomicUsize; MAX_FRAMES],
    alloc_bytes: AtomicU64,
    alloc_objects: AtomicU64,
    free_bytes: AtomicU64,
    free_objects: AtomicU64,
}

impl Site {
    const fn new() -> Self {
        Site {
            hash: AtomicU64::new(0),
            depth: AtomicUsize::new(0),
            ips: [const { AtomicUsize::new(0) }; MAX_FRAMES],
            alloc_bytes: AtomicU64::new(0),
            alloc_objects: AtomicU64::new(0),
            free_bytes: AtomicU64::new(0),
            free_objects: AtomicU64::new(0),
        }
    }
}

const SITE_INDEX_LEN: usize = MAX_SITES * 4;
static SITES: [Site; MAX_SITES] = [const { Site::new() }; MAX_SITES];
/// Site 0 is `(other)`.
static SITES_LEN: AtomicUsize = AtomicUsize::new(1);
/// Open addressing, hash → site index + 1 (0: empty).
static SITE_INDEX: [AtomicU32; SITE_INDEX_LEN] = [const { AtomicU32::new(0) }; SITE_INDEX_LEN];

/// Sampled pointers, open addressing with linear probing (0: empty).
static KEYS: [AtomicUsize; MAX_TRACKED * 2] = [const { AtomicUsize::new(0) }; MAX_TRACKED * 2];
/// Per tracked pointer: `site << 32 | min(objects, u32::MAX)`.
static META: [AtomicU64; MAX_TRACKED * 2] = [const { AtomicU64::new(0) }; MAX_TRACKED * 2];
/// Per tracked pointer: the estimated bytes the sample stands for.
static WEIGHT: [AtomicU64; MAX_TRACKED * 2] = [const { AtomicU64::new(0) }; MAX_TRACKED * 2];
static TRACKED: AtomicUsize = AtomicUsize::new(0);
/// How many tracked pointers fall in each bucket (saturating: a sample whose bucket is full is
/// not tracked). Changed under the lock.
static FILTER: [AtomicU8; FILTER_LEN] = [const { AtomicU8::new(0) }; FILTER_LEN];
const FILTER_LEN: usize = 1 << 14;

#[inline(always)]
fn filter_index(ptr: usize) -> usize {
    // Fibonacci hashing: one multiplication, high bits (page-aligned addresses differ high up).
    ((ptr as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - 14)) as usize
}
/// Odd while a deletion moves entries of `KEYS`.
static SHIFTS: AtomicU64 = AtomicU64::new(0);

static SAMPLES: AtomicU64 = AtomicU64::new(0);
static SAMPLES_UNTRACKED: AtomicU64 = AtomicU64::new(0);
static SAMPLES_SKIPPED: AtomicU64 = AtomicU64::new(0);

#[inline(always)]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn next_interval(b: &Block) -> i64 {
    let mut x = b.rng.load(Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b.rng.store(x, Relaxed);
    // Uniform in (0, 1], then exponential with the configured mean.
    let u = ((x >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
    let mean = SAMPLE_BYTES.load(Relaxed) as f64;
    ((-u.ln()) * mean).min(i64::MAX as f64 / 2.0) as i64 + 1
}

#[cold]
#[inline(never)]
fn sample(b: &Block, p: *mut u8, size: usize) {
    b.countdown.store(next_interval(b), Relaxed);
    if b.busy.load(Relaxed) {
        SAMPLES_SKIPPED.fetch_add(1, Relaxed);
        return;
    }
    b.busy.store(true, Relaxed);
    let mut ips = [0_usize; MAX_FRAMES];
    let mut depth = 0;
    // SAFETY: the unsynchronized walk takes no lock (so it cannot deadlock against a thread
    // symbolising under the backtrace crate's lock) and does not allocate in Rust; `busy` keeps any
    // allocation made underneath from sampling again.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            ips[depth] = frame.ip() as usize;
            depth += 1;
            depth < MAX_FRAMES
        });
    }
    let mean = SAMPLE_BYTES.load(Relaxed) as f64;
    let s = size.max(1) as f64;
    let weight = s / (1.0 - (-s / mean).exp());
    let weight_bytes = weight as u64;
    let weight_objects = (weight / s).round().max(1.0) as u64;
    record_sample(&ips[..depth], p as usize, weight_bytes, weight_objects);
    b.busy.store(false, Relaxed);
}

fn site_hash(ips: &[usize]) -> u64 {
    let mut h = 0x51_7cc1_b727_220a_u64 ^ ips.len() as u64;
    for &ip in ips {
        h = mix(h ^ ip as u64);
    }
    h.max(1)
}

fn find_site(hash: u64) -> Option<usize> {
    let mask = SITE_INDEX_LEN - 1;
    let mut i = hash as usize & mask;
    for _ in 0..SITE_INDEX_LEN {
        let v = SITE_INDEX[i].load(Acquire);
        if v == 0 {
            return None;
        }
        let idx = v as usize - 1;
        if SITES[idx].hash.load(Relaxed) == hash {
            return Some(idx);
        }
        i = (i + 1) & mask;
    }
    None
}

fn record_sample(ips: &[usize], ptr: usize, weight_bytes: u64, weight_objects: u64) {
    SAMPLES.fetch_add(1, Relaxed);
    let hash = site_hash(ips);
    let site = match find_site(hash) {
        Some(i) => i,
        None => {
            let _g = lock();
            match find_site(hash) {
                Some(i) => i,
                None => insert_site(hash, ips),
            }
        }
    };
    let s = &SITES[site];
    s.alloc_bytes.fetch_add(weight_bytes, Relaxed);
    s.alloc_objects.fetch_add(weight_objects, Relaxed);
    track(ptr, site, weight_bytes, weight_objects);
}

/// Called with the lock held.
fn insert_site(hash: u64, ips: &[usize]) -> usize {
    let idx = SITES_LEN.load(Relaxed);
    if idx >= MAX_SITES {
        return 0;
    }
    let s = &SITES[idx];
    for (slot, &ip) in s.ips.iter().zip(ips) {
        slot.store(ip, Relaxed);
    }
    s.depth.store(ips.len(), Relaxed);
    s.hash.store(hash, Relaxed);
    let mask = SITE_INDEX_LEN - 1;
    let mut i = hash as usize & mask;
    while SITE_INDEX[i].load(Relaxed) != 0 {
        i = (i + 1) & mask;
    }
    SITE_INDEX[i].store(idx as u32 + 1, Release);
    SITES_LEN.store(idx + 1, Release);
    idx
}

fn track(ptr: usize, site: usize, weight_bytes: u64, weight_objects: u64) {
    let _g = lock();
    let bucket = &FILTER[filter_index(ptr)];
    if TRACKED.load(Relaxed) >= MAX_TRACKED || bucket.load(Relaxed) == u8::MAX {
        SAMPLES_UNTRACKED.fetch_add(1, Relaxed);
        return;
    }
    let mask = KEYS.len() - 1;
    let mut i = mix(ptr as u64) as usize & mask;
    loop {
        let k = KEYS[i].load(Relaxed);
        if k == 0 || k == ptr {
            // A stale entry for the same address (its free was missed) is overwritten.
            if k == 0 {
                bucket.store(bucket.load(Relaxed) + 1, Relaxed);
                if TRACKED.fetch_add(1, Relaxed) == 0 {
                    FAST.fetch_or(TRACKING, Relaxed);
                }
            }
            META[i].store(
                ((site as u64) << 32) | weight_objects.min(u32::MAX as u64),
                Relaxed,
            );
            WEIGHT[i].store(weight_bytes, Relaxed);
            KEYS[i].store(ptr, Release);
            return;
        }
        i = (i + 1) & mask;
    }
}

#[cold]
#[inline(never)]
fn untrack(ptr: usize) {
    let mask = KEYS.len() - 1;
    let start = mix(ptr as u64) as usize & mask;
    // Lock-free look first: almost every free is not a sampled pointer. A deletion moving
    // entries meanwhile could hide `ptr` from the probe, so a miss only counts if no deletion
    // ran (a sequence lock on deletions); otherwise look again under the lock.
    let before = SHIFTS.load(Acquire);
    let mut i = start;
    let found = loop {
        let k = KEYS[i].load(Relaxed);
        if k == 0 {
            break false;
        }
        if k == ptr {
            break true;
        }
        i = (i + 1) & mask;
    };
    if !found {
        fence(Acquire);
        if before % 2 == 0 && SHIFTS.load(Relaxed) == before {
            return;
        }
    }
    let _g = lock();
    let mut i = start;
    loop {
        let k = KEYS[i].load(Relaxed);
        if k == 0 {
            return;
        }
        if k == ptr {
            break;
        }
        i = (i + 1) & mask;
    }
    let meta = META[i].load(Relaxed);
    let site = &SITES[(meta >> 32) as usize % MAX_SITES];
    site.free_bytes.fetch_add(WEIGHT[i].load(Relaxed), Relaxed);
    site.free_objects.fetch_add(meta & u32::MAX as u64, Relaxed);
    // Backward-shift deletion keeps probe sequences without tombstones.
    SHIFTS.fetch_add(1, Relaxed);
    fence(Release);
    let mut hole = i;
    let mut j = i;
    loop {
        j = (j + 1) & mask;
        let k = KEYS[j].load(Relaxed);
        if k == 0 {
            break;
        }
        let home = mix(k as u64) as usize & mask;
        // Move `j` into the hole if its home is not in (hole, j] cyclically.
        let in_range = if hole <= j {
            hole < home && home <= j
        } else {
            hole < home || home <= j
        };
        if !in_range {
            META[hole].store(META[j].load(Relaxed), Relaxed);
            WEIGHT[hole].store(WEIGHT[j].load(Relaxed), Relaxed);
            KEYS[hole].store(k, Release);
            hole = j;
        }
    }
    KEYS[hole].store(0, Release);
    SHIFTS.fetch_add(1, Release);
    let bucket = &FILTER[filter_index(ptr)];
    bucket.store(bucket.load(Relaxed).saturating_sub(1), Relaxed);
    if TRACKED.fetch_sub(1, Relaxed) == 1 {
        FAST.fetch_and(!TRACKING, Relaxed);
    }
}

/// One allocation site of the heap profile, with estimated totals (samples scaled by their
/// weights) and the raw return addresses of its stack.
///
/// # Examples
/// ```
/// use rustmon_runtime::heap::SiteStats;
/// let s = SiteStats { index: 1, ips: vec![], allocated_bytes: 1 << 20, allocated_objects: 16,
///                     freed_bytes: 1 << 19, freed_objects: 8 };
/// assert_eq!((s.live_bytes(), s.live_objects()), (1 << 19, 8));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteStats {
    /// Stable index of the site in this process (0 is `(other)`: sites past [`MAX_SITES`]).
    pub index: usize,
    /// Return addresses, innermost first (including the allocator's own frames).
    pub ips: Vec<usize>,
    /// Estimated bytes allocated here.
    pub allocated_bytes: u64,
    /// Estimated allocations made here.
    pub allocated_objects: u64,
    /// Estimated bytes allocated here and freed.
    pub freed_bytes: u64,
    /// Estimated allocations made here and freed.
    pub freed_objects: u64,
}

impl SiteStats {
    /// Estimated bytes allocated here and still live.
    pub fn live_bytes(&self) -> u64 {
        self.allocated_bytes.saturating_sub(self.freed_bytes)
    }

    /// Estimated allocations made here and still live.
    pub fn live_objects(&self) -> u64 {
        self.allocated_objects.saturating_sub(self.freed_objects)
    }
}

/// Sampling counters, from [`sampler_stats`].
///
/// # Examples
/// ```
/// let s = rustmon_runtime::heap::sampler_stats();
/// assert!(s.tracked <= rustmon_runtime::heap::MAX_TRACKED as u64);
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct SamplerStats {
    /// Samples taken.
    pub samples: u64,
    /// Samples whose frees cannot be seen because [`MAX_TRACKED`] sampled allocations were live.
    pub untracked: u64,
    /// Samples skipped because the thread was already taking one (allocations made by the stack
    /// walk itself).
    pub skipped: u64,
    /// Sampled allocations currently tracked.
    pub tracked: u64,
    /// Distinct sites (including `(other)`).
    pub sites: u64,
}

/// The sampler's counters.
///
/// # Examples
/// ```
/// let s = rustmon_runtime::heap::sampler_stats();
/// assert!(s.sites >= 1);
/// ```
pub fn sampler_stats() -> SamplerStats {
    SamplerStats {
        samples: SAMPLES.load(Relaxed),
        untracked: SAMPLES_UNTRACKED.load(Relaxed),
        skipped: SAMPLES_SKIPPED.load(Relaxed),
        tracked: TRACKED.load(Relaxed) as u64,
        sites: SITES_LEN.load(Acquire).min(MAX_SITES) as u64,
    }
}

/// Every allocation site sampled so far (site 0, `(other)`, only if it has samples). Allocates;
/// call it from a monitoring thread, not a hot path.
///
/// # Examples
/// ```
/// for site in rustmon_runtime::heap::sites() {
///     assert!(site.live_bytes() <= site.allocated_bytes);
/// }
/// ```
pub fn sites() -> Vec<SiteStats> {
    let len = SITES_LEN.load(Acquire).min(MAX_SITES);
    let mut out = Vec::with_capacity(len);
    for (index, s) in SITES.iter().enumerate().take(len) {
        let allocated_objects = s.alloc_objects.load(Relaxed);
        if allocated_objects == 0 {
            continue;
        }
        let depth = s.depth.load(Relaxed).min(MAX_FRAMES);
        out.push(SiteStats {
            index,
            ips: s.ips[..depth].iter().map(|ip| ip.load(Relaxed)).collect(),
            allocated_bytes: s.alloc_bytes.load(Relaxed),
            allocated_objects,
            freed_bytes: s.free_bytes.load(Relaxed),
            freed_objects: s.free_objects.load(Relaxed),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_weights_are_unbiased_for_large_and_small_sizes() {
        // A sample of a huge allocation stands for itself; of a tiny one, for about `mean` bytes.
        let mean = DEFAULT_SAMPLE_BYTES as f64;
        let w = |s: f64| s / (1.0 - (-s / mean).exp());
        assert!((w(64.0 * mean) / (64.0 * mean) - 1.0).abs() < 1e-9);
        assert!((w(8.0) / mean - 1.0).abs() < 1e-3);
    }

    #[test]
    fn intervals_average_the_mean() {
        let b = Block::new();
        b.rng.store(12345, Relaxed);
        let n = 20_000;
        let sum: i64 = (0..n).map(|_| next_interval(&b)).sum();
        let avg = sum as f64 / n as f64;
        let mean = SAMPLE_BYTES.load(Relaxed) as f64;
        assert!((avg / mean - 1.0).abs() < 0.05, "{avg} vs {mean}");
    }
}
