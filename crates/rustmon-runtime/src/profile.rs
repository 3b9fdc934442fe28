//! The heap profile: top allocation sites by the configured order, symbolised.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::ProfileOrder;
use crate::heap::{self, SiteStats};

/// One symbolised frame.
///
/// # Examples
/// ```
/// let f = rustmon_runtime::profile::Frame { function: "app::load".into(), file: Some("src/app.rs".into()), line: Some(7) };
/// assert_eq!(f.to_string(), "app::load (src/app.rs:7)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The demangled function name (without the hash suffix), or `??`.
    pub function: String,
    /// The source file, if debug info has it.
    pub file: Option<String>,
    /// The line, if debug info has it.
    pub line: Option<u32>,
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.function)?;
        if let Some(file) = &self.file {
            write!(f, " ({file}:{})", self.line.unwrap_or(0))?;
        }
        Ok(())
    }
}

/// A site of the heap profile with its symbolised stack, from [`heap_profile`].
///
/// # Examples
/// ```
/// use rustmon_runtime::{profile::{heap_profile, Symbols}, ProfileOrder};
/// for site in heap_profile(&mut Symbols::new(), ProfileOrder::AllocatedBytes, false, 5) {
///     println!("{} bytes at {:?}", site.stats.allocated_bytes, site.frames.first());
/// }
/// ```
#[derive(Clone, Debug)]
pub struct ProfileSite {
    /// The site's estimated totals.
    pub stats: SiteStats,
    /// Frames, innermost first, starting at the first frame outside the allocator (empty for the
    /// `(other)` site).
    pub frames: Arc<Vec<Frame>>,
}

/// Orders sites by `order` and keeps the first `limit`.
///
/// # Examples
/// ```
/// use rustmon_runtime::{heap::SiteStats, profile::top_sites, ProfileOrder};
/// let site = |index, allocated_bytes, freed_bytes| SiteStats {
///     index, ips: vec![], allocated_bytes, allocated_objects: 1, freed_bytes, freed_objects: 0,
/// };
/// let top = top_sites(vec![site(1, 10, 0), site(2, 30, 25), site(3, 20, 0)], ProfileOrder::LiveBytes, false, 2);
/// assert_eq!(top.iter().map(|s| s.index).collect::<Vec<_>>(), [3, 1]);
/// ```
pub fn top_sites(
    mut sites: Vec<SiteStats>,
    order: ProfileOrder,
    ascending: bool,
    limit: usize,
) -> Vec<SiteStats> {
    let key = |s: &SiteStats| match order {
        ProfileOrder::AllocatedBytes => s.allocated_bytes,
        ProfileOrder::FreedBytes => s.freed_bytes,
        ProfileOrder::AllocatedObjects => s.allocated_objects,
        ProfileOrder::FreedObjects => s.freed_objects,
        ProfileOrder::LiveBytes => s.live_bytes(),
        ProfileOrder::LiveObjects => s.live_objects(),
    };
    sites.sort_by(|a, b| {
        let o = key(a).cmp(&key(b));
        let o = if ascending { o } else { o.reverse() };
        o.then(a.index.cmp(&b.index))
    });
    sites.truncate(limit);
    sites
}

/// Function-name prefixes of the allocator machinery skipped at the top of a stack.
const SKIP: &[&str] = &[
    "backtrace::",
    "rustmon_runtime::heap::",
    "<rustmon_runtime::heap::TrackingAllocator",
    "__rust_",
    "__rustc::",
    "__rdl_",
    "alloc::alloc::",
    "std::alloc::",
    "core::alloc::",
    "<alloc::alloc::Global",
    "alloc::raw_vec::",
    "<alloc::raw_vec::",
];

/// Symbolises return addresses (inlined frames expanded), dropping the allocator's own frames at
/// the top. Allocates and takes the backtrace crate's lock: call it off the hot path.
///
/// # Examples
/// ```
/// let mut ips = Vec::new();
/// backtrace::trace(|frame| { ips.push(frame.ip() as usize); ips.len() < 8 });
/// let frames = rustmon_runtime::profile::symbolize(&ips);
/// assert!(!frames.is_empty());
/// ```
pub fn symbolize(ips: &[usize]) -> Vec<Frame> {
    let mut frames = Vec::new();
    for &ip in ips {
        let mut found = false;
        backtrace::resolve(ip as *mut std::ffi::c_void, |sym| {
            found = true;
            let function = sym
                .name()
                .map(|n| format!("{n:#}"))
                .unwrap_or_else(|| "??".to_owned());
            frames.push(Frame {
                function,
                file: sym.filename().map(|f| f.display().to_string()),
                line: sym.lineno(),
            });
        });
        if !found {
            frames.push(Frame {
                function: format!("{ip:#x}"),
                file: None,
                line: None,
            });
        }
    }
    let first = frames
        .iter()
        .position(|f| !SKIP.iter().any(|p| f.function.starts_with(p)))
        .unwrap_or(0);
    frames.drain(..first);
    frames
}

/// Caches symbolised stacks by site index (sites never change once recorded).
///
/// # Examples
/// ```
/// use rustmon_runtime::{heap::SiteStats, profile::Symbols};
/// let mut symbols = Symbols::new();
/// let site = SiteStats { index: 3, ips: vec![], allocated_bytes: 0, allocated_objects: 0, freed_bytes: 0, freed_objects: 0 };
/// assert!(symbols.frames(&site).is_empty());
/// ```
#[derive(Debug, Default)]
pub struct Symbols {
    cache: HashMap<usize, Arc<Vec<Frame>>>,
}

impl Symbols {
    /// An empty cache.
    pub fn new() -> Self {
        Symbols::default()
    }

    /// The frames of `site`, symbolising it on first use.
    pub fn frames(&mut self, site: &SiteStats) -> Arc<Vec<Frame>> {
        self.cache
            .entry(site.index)
            .or_insert_with(|| Arc::new(symbolize(&site.ips)))
            .clone()
    }
}

/// The current heap profile: every sampled site ordered by `order`, the first `limit`,
/// symbolised (through `symbols`, which caches).
///
/// # Examples
/// ```
/// use rustmon_runtime::{profile::{heap_profile, Symbols}, ProfileOrder};
/// let mut symbols = Symbols::new();
/// let profile = heap_profile(&mut symbols, ProfileOrder::LiveBytes, false, 10);
/// assert!(profile.len() <= 10); // empty unless the tracking allocator samples
/// ```
pub fn heap_profile(
    symbols: &mut Symbols,
    order: ProfileOrder,
    ascending: bool,
    limit: usize,
) -> Vec<ProfileSite> {
    top_sites(heap::sites(), order, ascending, limit)
        .into_iter()
        .map(|stats| ProfileSite {
            frames: symbols.frames(&stats),
            stats,
        })
        .collect()
}
