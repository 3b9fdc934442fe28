//! Per-minute rollups computed at ingest from every span, and service-map link resolution.

use std::collections::HashMap;

use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::errors::{message_fingerprint, span_error};
use crate::histogram::Histogram;
use crate::model::{FINGERPRINT_KEY, SpanRecord};

/// Nanoseconds per minute.
pub const MINUTE_NS: u64 = 60_000_000_000;

/// Count, errors, total time and latency histogram of a group of spans.
#[derive(Debug, Clone, Default)]
pub struct Agg {
    /// Spans.
    pub count: u64,
    /// Spans with error status.
    pub errors: u64,
    /// Sum of durations, nanoseconds.
    pub sum_ns: u64,
    /// Extra counter (rows returned, for statements).
    pub rows: u64,
    /// Duration histogram, nanoseconds.
    pub hist: Histogram,
}

impl Agg {
    /// Adds one span.
    pub fn add(&mut self, dur: u64, error: bool) {
        self.count += 1;
        self.errors += u64::from(error);
        self.sum_ns = self.sum_ns.saturating_add(dur);
        self.hist.record(dur);
    }

    /// Adds another aggregate.
    pub fn merge(&mut self, o: &Agg) {
        self.count += o.count;
        self.errors += o.errors;
        self.sum_ns = self.sum_ns.saturating_add(o.sum_ns);
        self.rows += o.rows;
        self.hist.merge(&o.hist);
    }
}

/// Key of an operation rollup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OpKey {
    /// Minute (Unix nanoseconds / 60e9).
    pub minute: u64,
    /// Service.
    pub service: Arc<str>,
    /// Span kind.
    pub kind: u8,
    /// Operation name.
    pub name: String,
}

/// Key of a statement rollup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DbKey {
    /// Minute.
    pub minute: u64,
    /// Service issuing the statement.
    pub service: Arc<str>,
    /// Statement fingerprint.
    pub fingerprint: String,
}

/// Key of a service-map edge rollup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EdgeKey {
    /// Minute.
    pub minute: u64,
    /// Calling service.
    pub caller: Arc<str>,
    /// Called service or address.
    pub callee: String,
}

/// Aggregates by key, with a small cache of recently used entries so that the common case
/// (spans of a batch cycling through a few operations) neither hashes nor allocates a key.
#[derive(Debug)]
pub struct AggTable<K> {
    entries: Vec<(K, Agg)>,
    index: FxHashMap<K, usize>,
    recent: [usize; 8],
    next: usize,
}

impl<K> Default for AggTable<K> {
    fn default() -> Self {
        AggTable {
            entries: Vec::new(),
            index: FxHashMap::default(),
            recent: [0; 8],
            next: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> AggTable<K> {
    /// The aggregate of the key that `matches`, creating it from `make` if needed.
    pub fn get_or_insert(
        &mut self,
        matches: impl Fn(&K) -> bool,
        make: impl FnOnce() -> K,
    ) -> &mut Agg {
        let hit = self
            .recent
            .iter()
            .copied()
            .find(|&i| i < self.entries.len() && matches(&self.entries[i].0));
        let i = match hit {
            Some(i) => i,
            None => {
                let k = make();
                let i = match self.index.get(&k) {
                    Some(&i) => i,
                    None => {
                        let i = self.entries.len();
                        self.entries.push((k.clone(), Agg::default()));
                        self.index.insert(k, i);
                        i
                    }
                };
                self.recent[self.next % 8] = i;
                self.next += 1;
                i
            }
        };
        &mut self.entries[i].1
    }

    /// The aggregate of `k`, created empty if missing.
    pub fn entry(&mut self, k: K) -> &mut Agg {
        let i = match self.index.get(&k) {
            Some(&i) => i,
            None => {
                let i = self.entries.len();
                self.entries.push((k.clone(), Agg::default()));
                self.index.insert(k, i);
                i
            }
        };
        &mut self.entries[i].1
    }

    /// Every key and aggregate.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &Agg)> {
        self.entries.iter().map(|(k, a)| (k, a))
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<'a, K: std::hash::Hash + Eq + Clone> IntoIterator for &'a AggTable<K> {
    type Item = (&'a K, &'a Agg);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (K, Agg)>, fn(&'a (K, Agg)) -> (&'a K, &'a Agg)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, a)| (k, a))
    }
}

/// Distinct error groups kept per service and minute; errors of further groups are counted in
/// the group [`OTHER_ERRORS`], so that a flood of unique messages cannot grow the tables.
pub const MAX_ERROR_GROUPS: usize = 100;
/// Type and fingerprint of the group that takes a minute's errors beyond [`MAX_ERROR_GROUPS`].
pub const OTHER_ERRORS: &str = "_OTHER";
/// Operations remembered per error group (the first seen; the group's count stays exact).
pub const MAX_ERROR_OPS: usize = 5;
/// Example spans remembered per error group (the latest).
pub const MAX_ERROR_EXAMPLES: usize = 3;

/// Key of an error group rollup.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorKey {
    /// Minute.
    pub minute: u64,
    /// Service of the failed span.
    pub service: Arc<str>,
    /// Error type (see [`crate::errors::error_type`]).
    pub error_type: String,
    /// Message fingerprint (see [`message_fingerprint`]).
    pub fingerprint: String,
}

impl ErrorKey {
    /// The overflow group of the same service and minute.
    pub fn other(&self) -> ErrorKey {
        ErrorKey {
            minute: self.minute,
            service: self.service.clone(),
            error_type: OTHER_ERRORS.to_string(),
            fingerprint: OTHER_ERRORS.to_string(),
        }
    }

    /// Whether this is an overflow group.
    pub fn is_other(&self) -> bool {
        self.error_type == OTHER_ERRORS && self.fingerprint == OTHER_ERRORS
    }
}

/// A failed span remembered as an example of its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorExample {
    /// Trace id.
    pub trace_id: [u8; 16],
    /// Span id.
    pub span_id: [u8; 8],
    /// Span start, Unix nanoseconds.
    pub start_ns: u64,
}

/// Count, first and last occurrence, operations and examples of an error group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorAgg {
    /// Failed spans.
    pub count: u64,
    /// Earliest span start, Unix nanoseconds.
    pub first_ns: u64,
    /// Latest span start, Unix nanoseconds.
    pub last_ns: u64,
    /// The message of the first span seen (the fingerprint masks its variable parts).
    pub message: String,
    /// `(kind, name, failed spans)` of up to [`MAX_ERROR_OPS`] operations.
    pub ops: Vec<(u8, String, u64)>,
    /// Up to [`MAX_ERROR_EXAMPLES`] examples, latest first.
    pub examples: Vec<ErrorExample>,
}

impl ErrorAgg {
    fn add(&mut self, s: &SpanRecord, message: &str) {
        let one = ErrorAgg {
            count: 1,
            first_ns: s.start_ns,
            last_ns: s.start_ns,
            message: message.to_string(),
            ops: vec![(s.kind, s.name.clone(), 1)],
            examples: vec![ErrorExample {
                trace_id: s.trace_id,
                span_id: s.span_id,
                start_ns: s.start_ns,
            }],
        };
        self.merge(&one);
    }

    /// Adds another group's counts, keeping the earliest message and the latest examples.
    pub fn merge(&mut self, o: &ErrorAgg) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 || o.first_ns < self.first_ns {
            self.first_ns = o.first_ns;
            self.message.clone_from(&o.message);
        }
        self.count += o.count;
        self.last_ns = self.last_ns.max(o.last_ns);
        for (kind, name, n) in &o.ops {
            let room = self.ops.len() < MAX_ERROR_OPS;
            match self.ops.iter_mut().find(|x| x.0 == *kind && x.1 == *name) {
                Some(op) => op.2 += n,
                None if room => self.ops.push((*kind, name.clone(), *n)),
                None => {}
            }
        }
        self.examples.extend(o.examples.iter().copied());
        self.examples
            .sort_by_key(|e| (std::cmp::Reverse(e.start_ns), e.trace_id, e.span_id));
        self.examples.dedup();
        self.examples.truncate(MAX_ERROR_EXAMPLES);
    }
}

/// Error groups of failed spans by minute, service, type and message fingerprint, at most
/// [`MAX_ERROR_GROUPS`] (plus the overflow group) per service and minute. The database applies
/// the same limit when the table is merged into it. Once a minute is full here, a span of a
/// group this table has not seen goes to the overflow group even when the database already
/// holds that group from an earlier batch (which takes a flood of distinct errors).
#[derive(Debug, Default)]
pub struct ErrorTable {
    groups: FxHashMap<ErrorKey, ErrorAgg>,
    per_service_minute: FxHashMap<(Arc<str>, u64), usize>,
}

impl ErrorTable {
    /// Adds one failed span.
    pub fn add(&mut self, s: &SpanRecord) {
        let e = span_error(s);
        let key = ErrorKey {
            minute: s.start_ns / MINUTE_NS,
            service: s.service.clone(),
            fingerprint: message_fingerprint(&e.message),
            error_type: e.error_type,
        };
        let key = if self.groups.contains_key(&key) {
            key
        } else {
            let n = self
                .per_service_minute
                .entry((key.service.clone(), key.minute))
                .or_default();
            if *n < MAX_ERROR_GROUPS {
                *n += 1;
                key
            } else {
                key.other()
            }
        };
        self.groups.entry(key).or_default().add(s, &e.message);
    }

    /// Every group.
    pub fn iter(&self) -> impl Iterator<Item = (&ErrorKey, &ErrorAgg)> {
        self.groups.iter()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// The rollup tables.
#[derive(Debug, Default)]
pub struct Rollups {
    /// Operations.
    pub ops: AggTable<OpKey>,
    /// Statements.
    pub db: AggTable<DbKey>,
    /// Edges.
    pub edges: AggTable<EdgeKey>,
    /// Error groups.
    pub errors: ErrorTable,
}

impl Rollups {
    /// Adds one span to the operation, statement and (if it failed) error rollups.
    pub fn add_span(&mut self, s: &SpanRecord) {
        let minute = s.start_ns / MINUTE_NS;
        if s.is_error() {
            self.errors.add(s);
        }
        self.ops
            .get_or_insert(
                |k| {
                    k.minute == minute
                        && k.kind == s.kind
                        && Arc::ptr_eq(&k.service, &s.service)
                        && k.name == s.name
                },
                || OpKey {
                    minute,
                    service: s.service.clone(),
                    kind: s.kind,
                    name: s.name.clone(),
                },
            )
            .add(s.duration_ns, s.is_error());
        if let Some(fp) = s.attr_str(FINGERPRINT_KEY) {
            let a = self.db.get_or_insert(
                |k| {
                    k.minute == minute && Arc::ptr_eq(&k.service, &s.service) && k.fingerprint == fp
                },
                || DbKey {
                    minute,
                    service: s.service.clone(),
                    fingerprint: fp.to_string(),
                },
            );
            a.add(s.duration_ns, s.is_error());
            if let Some(r) = s
                .attr_int("db.response.returned_rows")
                .or_else(|| s.attr_int("db.rows_affected"))
            {
                a.rows += r.max(0) as u64;
            }
        }
    }

    /// Adds one call to an edge.
    pub fn add_edge(&mut self, minute: u64, caller: Arc<str>, callee: String, dur: u64, err: bool) {
        self.edges
            .entry(EdgeKey {
                minute,
                caller,
                callee,
            })
            .add(dur, err);
    }

    /// Whether nothing has been added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.db.is_empty() && self.edges.is_empty() && self.errors.is_empty()
    }
}

#[derive(Debug, Clone)]
struct SpanInfo {
    service: Arc<str>,
    minute: u64,
    dur: u64,
    error: bool,
    /// For client/producer spans not yet linked to a child: the peer from attributes.
    peer: Option<String>,
    linked: bool,
}

#[derive(Debug, Clone)]
struct Orphan {
    service: Arc<str>,
    minute: u64,
    dur: u64,
    error: bool,
}

/// Resolves cross-service parent/child links into edges, whichever side arrives first.
///
/// Keeps two generations of recent spans and of children whose parent was not seen yet;
/// [`Linker::rotate`] drops the older generation, emitting the `server.address` edges of
/// client spans that never got an instrumented child. Memory is bounded by the spans of two
/// generations.
#[derive(Debug, Default)]
pub struct Linker {
    spans: [FxHashMap<[u8; 8], SpanInfo>; 2],
    orphans: [FxHashMap<[u8; 8], Vec<Orphan>>; 2],
}

fn peer_of(s: &SpanRecord) -> Option<String> {
    if let Some(p) = s.attr_str("peer.service") {
        return Some(p.to_string());
    }
    if let Some(a) = s
        .attr_str("server.address")
        .or_else(|| s.attr_str("net.peer.name"))
    {
        return Some(match s.attr_int("server.port") {
            Some(p) => format!("{a}:{p}"),
            None => a.to_string(),
        });
    }
    s.attr_str("db.system.name")
        .or_else(|| s.attr_str("db.system"))
        .or_else(|| s.attr_str("messaging.system"))
        .map(str::to_string)
}

impl Linker {
    /// Looks at one span, adding any edge it completes to `r`.
    pub fn observe(&mut self, s: &SpanRecord, r: &mut Rollups) {
        let minute = s.start_ns / MINUTE_NS;
        let is_db = s.attr_str("db.system.name").is_some() || s.attr_str("db.system").is_some();
        // 1. as a child: link to a parent of another service.
        if let Some(p) = s.parent_span_id {
            if matches!(s.kind, 2 | 5) {
                let [g0, g1] = &mut self.spans;
                let parent = match g0.get_mut(&p) {
                    Some(x) => Some(x),
                    None => g1.get_mut(&p),
                };
                match parent {
                    Some(pi) => {
                        if pi.service != s.service {
                            pi.linked = true;
                            r.add_edge(
                                minute,
                                pi.service.clone(),
                                s.service.to_string(),
                                s.duration_ns,
                                s.is_error(),
                            );
                        }
                    }
                    None => self.orphans[0].entry(p).or_default().push(Orphan {
                        service: s.service.clone(),
                        minute,
                        dur: s.duration_ns,
                        error: s.is_error(),
                    }),
                }
            }
        }
        // 2. as a parent: children that arrived first.
        let mut linked = false;
        for g in 0..2 {
            if let Some(kids) = self.orphans[g].remove(&s.span_id) {
                for k in kids {
                    if k.service != s.service {
                        linked = true;
                        r.add_edge(
                            k.minute,
                            s.service.clone(),
                            k.service.to_string(),
                            k.dur,
                            k.error,
                        );
                    }
                }
            }
        }
        let client = matches!(s.kind, 3 | 4);
        let peer = if client && !linked { peer_of(s) } else { None };
        if is_db && client {
            if let Some(p) = peer {
                r.add_edge(minute, s.service.clone(), p, s.duration_ns, s.is_error());
            }
            return;
        }
        self.spans[0].insert(
            s.span_id,
            SpanInfo {
                service: s.service.clone(),
                minute,
                dur: s.duration_ns,
                error: s.is_error(),
                peer,
                linked,
            },
        );
    }

    /// Ages out the older generation, emitting unlinked client edges into `r`.
    pub fn rotate(&mut self, r: &mut Rollups) {
        let old = std::mem::take(&mut self.spans[1]);
        for (_, i) in old {
            if let (false, Some(p)) = (i.linked, i.peer) {
                r.add_edge(i.minute, i.service, p, i.dur, i.error);
            }
        }
        // the next generation is sized like the last one rather than grown by doubling, which
        // rehashed every entry each time and touched twice the memory
        let n = self.spans[0].len();
        self.spans[1] = std::mem::replace(
            &mut self.spans[0],
            FxHashMap::with_capacity_and_hasher(n, Default::default()),
        );
        self.orphans[1] = std::mem::take(&mut self.orphans[0]);
    }

    /// Adds edges of client spans still waiting for a child (not yet in any rollup) for
    /// minutes in `[from_min, to_min)`.
    pub fn pending_edges(
        &self,
        from_min: u64,
        to_min: u64,
        out: &mut HashMap<(String, String), Agg>,
    ) {
        for g in &self.spans {
            for i in g.values() {
                if let (false, Some(p)) = (i.linked, &i.peer) {
                    if i.minute >= from_min && i.minute < to_min {
                        out.entry((i.service.to_string(), p.clone()))
                            .or_default()
                            .add(i.dur, i.error);
                    }
                }
            }
        }
    }

    /// Number of spans remembered.
    pub fn len(&self) -> usize {
        self.spans[0].len() + self.spans[1].len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
