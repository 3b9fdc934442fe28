//! jemalloc's own statistics (feature `jemalloc`), for applications whose global allocator is
//! jemalloc: bytes allocated, in active pages, resident, retained, mapped, and jemalloc's metadata.
//!
//! jemalloc caches its statistics; [`JemallocReader::read`] advances jemalloc's epoch (which
//! refreshes them, merging every arena's counters) and then reads the six values through MIBs
//! looked up once. The runtime plugin does this on every tick with `heap` on and exports the values
//! as the gauges `rustmon.heap.jemalloc.*`.
//!
//! The statistics describe jemalloc only: when jemalloc is linked (this feature links it) but is
//! not the global allocator, they stay near zero. [`is_global_allocator`] checks, once, that an
//! allocation through the global allocator reaches jemalloc; the plugin reports nothing from
//! jemalloc when it does not.
//!
//! The application installs jemalloc itself, plainly or under the tracking allocator:
//! ```
//! #[global_allocator]
//! static GLOBAL: rustmon_runtime::jemalloc::Jemalloc = rustmon_runtime::jemalloc::Jemalloc;
//! // or, with rustmon's counters and heap profiles as well:
//! // static GLOBAL: rustmon_runtime::TrackingAllocator<rustmon_runtime::jemalloc::Jemalloc> =
//! //     rustmon_runtime::TrackingAllocator::new(rustmon_runtime::jemalloc::Jemalloc);
//!
//! assert!(rustmon_runtime::jemalloc::is_global_allocator());
//! let reader = rustmon_runtime::jemalloc::JemallocReader::new().unwrap();
//! let s = reader.read().unwrap();
//! assert!(s.allocated <= s.active && s.active <= s.resident);
//! ```

use std::alloc::{Layout, alloc, dealloc};
use std::hint::black_box;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use tikv_jemalloc_ctl::{epoch, epoch_mib, stats};

/// jemalloc as a global allocator: `tikv_jemallocator::Jemalloc`, re-exported so that the
/// application installs the same jemalloc this crate reads statistics from.
pub use tikv_jemallocator::Jemalloc;

/// A jemalloc control call failed.
///
/// # Examples
/// ```
/// // A reader only fails if jemalloc was built without statistics, which this crate prevents.
/// let reader = rustmon_runtime::jemalloc::JemallocReader::new();
/// assert!(reader.is_ok());
/// ```
#[derive(Debug, thiserror::Error)]
#[error("jemalloc `{name}`: {code}")]
pub struct JemallocError {
    /// The control name, e.g. `stats.resident`.
    pub name: &'static str,
    /// jemalloc's error.
    pub code: tikv_jemalloc_ctl::Error,
}

/// jemalloc's statistics at one epoch, in bytes (see jemalloc's `mallctl` documentation).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct JemallocStats {
    /// `stats.allocated`: bytes allocated by the application.
    pub allocated: u64,
    /// `stats.active`: bytes in active pages (a multiple of the page size, at least `allocated`).
    pub active: u64,
    /// `stats.resident`: bytes in physically resident data pages mapped by jemalloc, metadata
    /// included (a multiple of the page size, at least `active`).
    pub resident: u64,
    /// `stats.retained`: bytes in virtual memory mappings kept rather than returned to the
    /// operating system (not resident, not counted in `mapped`).
    pub retained: u64,
    /// `stats.mapped`: bytes in active extents mapped by jemalloc (at least `active`).
    pub mapped: u64,
    /// `stats.metadata`: bytes of jemalloc's own metadata.
    pub metadata: u64,
}

/// Reads [`JemallocStats`]: the MIBs (jemalloc's numeric names) are looked up once, so a reading
/// is one epoch advance and six `mallctlbymib` calls, without allocating.
///
/// # Examples
/// ```
/// let reader = rustmon_runtime::jemalloc::JemallocReader::new().unwrap();
/// let s = reader.read().unwrap();
/// assert!(s.active <= s.mapped);
/// ```
#[derive(Copy, Clone)]
pub struct JemallocReader {
    epoch: epoch_mib,
    allocated: stats::allocated_mib,
    active: stats::active_mib,
    resident: stats::resident_mib,
    retained: stats::retained_mib,
    mapped: stats::mapped_mib,
    metadata: stats::metadata_mib,
}

impl std::fmt::Debug for JemallocReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JemallocReader").finish_non_exhaustive()
    }
}

fn ctl<T>(name: &'static str, r: tikv_jemalloc_ctl::Result<T>) -> Result<T, JemallocError> {
    r.map_err(|code| JemallocError { name, code })
}

impl JemallocReader {
    /// Looks the statistics up.
    pub fn new() -> Result<Self, JemallocError> {
        Ok(JemallocReader {
            epoch: ctl("epoch", epoch::mib())?,
            allocated: ctl("stats.allocated", stats::allocated::mib())?,
            active: ctl("stats.active", stats::active::mib())?,
            resident: ctl("stats.resident", stats::resident::mib())?,
            retained: ctl("stats.retained", stats::retained::mib())?,
            mapped: ctl("stats.mapped", stats::mapped::mib())?,
            metadata: ctl("stats.metadata", stats::metadata::mib())?,
        })
    }

    /// Refreshes jemalloc's statistics (advances the epoch) and reads them.
    pub fn read(&self) -> Result<JemallocStats, JemallocError> {
        ctl("epoch", self.epoch.advance())?;
        Ok(JemallocStats {
            allocated: ctl("stats.allocated", self.allocated.read())? as u64,
            active: ctl("stats.active", self.active.read())? as u64,
            resident: ctl("stats.resident", self.resident.read())? as u64,
            retained: ctl("stats.retained", self.retained.read())? as u64,
            mapped: ctl("stats.mapped", self.mapped.read())? as u64,
            metadata: ctl("stats.metadata", self.metadata.read())? as u64,
        })
    }
}

/// 0: not checked yet, 1: jemalloc serves the global allocator, 2: it does not.
static GLOBAL: AtomicU8 = AtomicU8::new(0);

/// Whether allocations through the global allocator reach jemalloc (directly, under the
/// [`TrackingAllocator`](crate::TrackingAllocator), or because jemalloc replaced `malloc`).
/// Checked once: one 4 KiB allocation, seen or not in jemalloc's counter of the calling thread's
/// allocated bytes (`thread.allocated`).
///
/// # Examples
/// ```
/// // This doctest keeps the system allocator.
/// assert!(!rustmon_runtime::jemalloc::is_global_allocator());
/// ```
pub fn is_global_allocator() -> bool {
    match GLOBAL.load(Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let yes = probe();
            GLOBAL.store(if yes { 1 } else { 2 }, Relaxed);
            yes
        }
    }
}

fn probe() -> bool {
    const SIZE: usize = 4096;
    let thread_allocated = || {
        // SAFETY: `thread.allocated` is a `uint64_t`.
        unsafe { tikv_jemalloc_ctl::raw::read::<u64>(b"thread.allocated\0") }
    };
    let Ok(before) = thread_allocated() else {
        return false;
    };
    let Ok(layout) = Layout::from_size_align(SIZE, 8) else {
        return false;
    };
    // SAFETY: the layout has a non-zero size; the block is freed below with the same layout.
    let p = black_box(unsafe { alloc(layout) });
    if p.is_null() {
        return false;
    }
    let after = thread_allocated();
    // SAFETY: `p` came from `alloc(layout)` and is freed once.
    unsafe { dealloc(p, layout) };
    after.is_ok_and(|a| a.wrapping_sub(before) >= SIZE as u64)
}
