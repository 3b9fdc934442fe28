//! The embedded store: WAL + in-memory table → sealed columnar segments; SQLite for the rest.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::bytes::Bytes;
use rusqlite::{Connection, OptionalExtension, params};
use rustc_hash::FxHashMap;

use super::db;
use super::rollup::{Agg, Linker, MINUTE_NS, Rollups};
use super::segment::{self, Block, BlockOp, SegmentMeta};
use super::wal::{self, Wal};
use super::{
    Ack, ConfigEntry, ConfigStatus, ErrorRow, MetricInfo, OpRow, Order, SpanQuery, Store,
    StoreError, StoreStats,
};
use crate::metrics::SelfMetrics;
use crate::model::{MetricPoint, STATUS_ERROR, SpanRecord};

/// Tuning of the embedded store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Data directory.
    pub dir: PathBuf,
    /// Data older than this is deleted.
    pub retention: Duration,
    /// Seal the in-memory table at this many spans.
    pub seal_spans: usize,
    /// Seal the in-memory table when its oldest span arrived this long ago.
    pub seal_interval: Duration,
    /// Bytes (estimated, in memory) the ingest queue may hold before refusing batches.
    pub max_queue_bytes: u64,
    /// zstd level for segments.
    pub zstd_level: i32,
}

impl StoreOptions {
    /// Defaults for a data directory.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StoreOptions {
            dir: dir.into(),
            retention: Duration::from_secs(7 * 86400),
            seal_spans: 200_000,
            seal_interval: Duration::from_secs(10),
            max_queue_bytes: 256 << 20,
            zstd_level: 3,
        }
    }
}

/// Spans not yet sealed, with their rollups.
#[derive(Debug)]
struct Memtable {
    spans: Vec<Arc<SpanRecord>>,
    by_trace: FxHashMap<[u8; 16], Vec<u32>>,
    rollups: Rollups,
    created: Instant,
}

impl Memtable {
    fn new() -> Self {
        Self::with_capacity(0, 0)
    }

    /// A table with room for `spans` spans of `traces` traces, sized like the one it follows
    /// rather than grown by doubling (which rehashed every trace each time).
    fn with_capacity(spans: usize, traces: usize) -> Self {
        Memtable {
            spans: Vec::with_capacity(spans),
            by_trace: FxHashMap::with_capacity_and_hasher(traces, Default::default()),
            rollups: Rollups::default(),
            created: Instant::now(),
        }
    }

    fn add(&mut self, s: Arc<SpanRecord>, linker: &mut Linker) {
        if self.spans.is_empty() {
            self.created = Instant::now();
        }
        self.rollups.add_span(&s);
        linker.observe(&s, &mut self.rollups);
        self.by_trace
            .entry(s.trace_id)
            .or_default()
            .push(self.spans.len() as u32);
        self.spans.push(s);
    }
}

#[derive(Debug)]
struct Segment {
    id: i64,
    path: PathBuf,
    meta: SegmentMeta,
    bytes: u64,
}

#[derive(Debug)]
struct View {
    active: Memtable,
    linker: Linker,
    sealing: Vec<Arc<Memtable>>,
    segments: Vec<Arc<Segment>>,
}

struct Batch {
    wal: Bytes,
    spans: Vec<Arc<SpanRecord>>,
    cost: u64,
    ack: tokio::sync::oneshot::Sender<Result<(), String>>,
}

enum Msg {
    Batch(Batch),
    Shutdown,
}

struct Inner {
    opts: StoreOptions,
    db: Mutex<Connection>,
    view: RwLock<View>,
    queue_bytes: AtomicU64,
    queue_depth: AtomicU64,
    wal_bytes: AtomicU64,
    metrics: Arc<SelfMetrics>,
    closed: AtomicBool,
}

/// The default store: needs nothing but a directory.
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    tx: SyncSender<Msg>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.inner.opts.dir)
            .finish()
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn seg_path(dir: &Path, id: i64) -> PathBuf {
    dir.join(format!("seg-{id:010}.rms"))
}

impl EmbeddedStore {
    /// Opens the store in `opts.dir`, replaying the WAL, and starts its threads.
    pub fn open(opts: StoreOptions, metrics: Arc<SelfMetrics>) -> Result<Self, StoreError> {
        std::fs::create_dir_all(&opts.dir).map_err(|e| {
            StoreError::Other(format!(
                "cannot create data directory {}: {e}",
                opts.dir.display()
            ))
        })?;
        let conn = db::open(&opts.dir.join("rustmon.sqlite"))?;
        // catalogue
        let mut segments = Vec::new();
        let mut known = std::collections::HashSet::new();
        {
            let mut st = conn.prepare("SELECT id, file, bytes FROM segments ORDER BY id")?;
            let rows: Vec<(i64, String, i64)> = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            for (id, file, bytes) in rows {
                let path = opts.dir.join(&file);
                known.insert(file);
                match segment::read_meta(&path) {
                    Ok(meta) => segments.push(Arc::new(Segment {
                        id,
                        path,
                        meta,
                        bytes: bytes as u64,
                    })),
                    Err(e) => {
                        eprintln!(
                            "rustmon: segment {} unreadable ({e}); dropping it from the catalogue",
                            path.display()
                        );
                        conn.execute("DELETE FROM segments WHERE id=?1", [id])?;
                    }
                }
            }
        }
        for e in std::fs::read_dir(&opts.dir)? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if (name.starts_with("seg-") && !known.contains(&name)) || name.ends_with(".tmp") {
                let _ = std::fs::remove_file(opts.dir.join(&name));
            }
        }
        // WAL replay
        let sealed_upto = db::get_meta(&conn, "wal_sealed_upto")?.unwrap_or(0) as u64;
        let mut active = Memtable::new();
        let mut linker = Linker::default();
        let mut last = sealed_upto;
        let mut replayed = 0usize;
        for seq in wal::list(&opts.dir)? {
            if seq <= sealed_upto {
                let _ = std::fs::remove_file(wal::wal_path(&opts.dir, seq));
                continue;
            }
            last = last.max(seq);
            wal::replay(&opts.dir, seq, |kind, payload| {
                if kind == wal::KIND_TRACES {
                    if let Ok(conv) = crate::wire::decode_traces(payload) {
                        for s in conv.spans {
                            replayed += 1;
                            active.add(s, &mut linker);
                        }
                    }
                }
            })?;
        }
        if replayed > 0 {
            eprintln!("rustmon: replayed {replayed} spans from the write-ahead log");
        }
        let wal = Wal::open(&opts.dir, last + 1)?;
        let inner = Arc::new(Inner {
            db: Mutex::new(conn),
            view: RwLock::new(View {
                active,
                linker,
                sealing: Vec::new(),
                segments,
            }),
            queue_bytes: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            wal_bytes: AtomicU64::new(0),
            metrics,
            closed: AtomicBool::new(false),
            opts,
        });
        let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(4096);
        let (stx, srx) = std::sync::mpsc::sync_channel::<SealMsg>(1);
        let mut threads = Vec::new();
        let i2 = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rustmon-writer".into())
                .spawn(move || writer(i2, rx, wal, stx))?,
        );
        let i3 = inner.clone();
        threads.push(
            std::thread::Builder::new()
                .name("rustmon-sealer".into())
                .spawn(move || sealer(i3, srx))?,
        );
        Ok(EmbeddedStore {
            inner,
            tx,
            threads: Mutex::new(threads),
        })
    }
}

#[cfg(test)]
impl EmbeddedStore {
    /// Holds the writer after its next fsync (test hook for backpressure).
    pub(crate) fn pause(&self) -> std::sync::RwLockWriteGuard<'_, impl Sized> {
        self.inner.view.write().unwrap_or_else(|e| e.into_inner())
    }
}

enum SealMsg {
    Seal(Arc<Memtable>, u64),
}

fn writer(inner: Arc<Inner>, rx: Receiver<Msg>, mut wal: Wal, seal_tx: SyncSender<SealMsg>) {
    let mut buf = Vec::with_capacity(1 << 20);
    let mut shutdown = false;
    while !shutdown {
        let mut batch = Vec::new();
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(Msg::Batch(b)) => batch.push(b),
            Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => shutdown = true,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let mut bytes: usize = batch.iter().map(|b| b.wal.len()).sum();
        while bytes < (32 << 20) && !shutdown {
            match rx.try_recv() {
                Ok(Msg::Batch(b)) => {
                    bytes += b.wal.len();
                    batch.push(b);
                }
                Ok(Msg::Shutdown) => shutdown = true,
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let t0 = Instant::now();
            buf.clear();
            for b in &batch {
                wal::encode_record(&mut buf, wal::KIND_TRACES, &b.wal);
            }
            let res = wal.append_sync(&buf);
            inner.wal_bytes.store(wal.bytes(), Ordering::Relaxed);
            let m = &inner.metrics;
            m.wal_syncs.fetch_add(1, Ordering::Relaxed);
            match res {
                Ok(()) => {
                    let mut acks = Vec::with_capacity(batch.len());
                    let mut n = 0u64;
                    {
                        let mut g = inner.view.write().unwrap_or_else(|e| e.into_inner());
                        let v = &mut *g;
                        for b in batch {
                            n += b.spans.len() as u64;
                            for s in b.spans {
                                v.active.add(s, &mut v.linker);
                            }
                            acks.push((b.ack, b.cost));
                        }
                    }
                    m.spans_stored.fetch_add(n, Ordering::Relaxed);
                    for (ack, cost) in acks {
                        let _ = ack.send(Ok(()));
                        inner.queue_bytes.fetch_sub(cost, Ordering::Relaxed);
                        inner.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    eprintln!("rustmon: write-ahead log append failed: {e}");
                    for b in batch {
                        let _ = b.ack.send(Err(format!("write-ahead log: {e}")));
                        inner.queue_bytes.fetch_sub(b.cost, Ordering::Relaxed);
                        inner.queue_depth.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            m.batch_latency.observe(t0.elapsed());
        }
        if shutdown {
            // client spans still waiting for a child become address edges now
            let mut g = inner.view.write().unwrap_or_else(|e| e.into_inner());
            let v = &mut *g;
            v.linker.rotate(&mut v.active.rollups);
            v.linker.rotate(&mut v.active.rollups);
        }
        let seal = {
            let v = inner.view.read().unwrap_or_else(|e| e.into_inner());
            (shutdown && !v.active.rollups.is_empty())
                || !v.active.spans.is_empty()
                    && (shutdown
                        || v.active.spans.len() >= inner.opts.seal_spans
                        || v.active.created.elapsed() >= inner.opts.seal_interval)
        };
        if seal {
            let closed = match wal.rotate() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("rustmon: cannot rotate the write-ahead log: {e}");
                    continue;
                }
            };
            let m = {
                let mut g = inner.view.write().unwrap_or_else(|e| e.into_inner());
                let v = &mut *g;
                let next = Memtable::with_capacity(v.active.spans.len(), v.active.by_trace.len());
                let mut m = std::mem::replace(&mut v.active, next);
                v.linker.rotate(&mut v.active.rollups);
                m.by_trace.shrink_to_fit();
                let m = Arc::new(m);
                v.sealing.push(m.clone());
                m
            };
            // blocks while the sealer is busy: that is the backpressure
            if seal_tx.send(SealMsg::Seal(m, closed)).is_err() {
                break;
            }
        }
    }
    drop(seal_tx);
}

fn sealer(inner: Arc<Inner>, rx: Receiver<SealMsg>) {
    let mut last_maint = Instant::now() - Duration::from_secs(3600);
    loop {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(SealMsg::Seal(m, wal_seq)) => {
                if let Err(e) = seal(&inner, &m, wal_seq) {
                    eprintln!(
                        "rustmon: sealing a segment failed: {e}; the data stays in the write-ahead log"
                    );
                    // keep it queryable; it will be replayed on restart
                }
                if let Err(e) = retention(&inner) {
                    eprintln!("rustmon: retention failed: {e}");
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if last_maint.elapsed() >= Duration::from_secs(30) {
            last_maint = Instant::now();
            if let Err(e) = retention(&inner) {
                eprintln!("rustmon: retention failed: {e}");
            }
            if let Err(e) = compact(&inner) {
                eprintln!("rustmon: compaction failed: {e}");
            }
        }
    }
}

fn next_segment_id(c: &Connection) -> Result<i64, StoreError> {
    let id: Option<i64> = c.query_row("SELECT max(id) FROM segments", [], |r| r.get(0))?;
    let floor = db::get_meta(c, "segment_id")?.unwrap_or(0);
    let id = id.unwrap_or(0).max(floor) + 1;
    db::set_meta(c, "segment_id", id)?;
    Ok(id)
}

fn seal(inner: &Inner, m: &Arc<Memtable>, wal_seq: u64) -> Result<(), StoreError> {
    let dir = &inner.opts.dir;
    if m.spans.is_empty() {
        let mut c = inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let tx = c.transaction()?;
        db::merge_rollups(&tx, &m.rollups, 0)?;
        db::set_meta(&tx, "wal_sealed_upto", wal_seq as i64)?;
        tx.commit()?;
        let mut v = inner.view.write().unwrap_or_else(|e| e.into_inner());
        v.sealing.retain(|x| !Arc::ptr_eq(x, m));
        return Ok(());
    }
    let id = {
        let c = inner.db.lock().unwrap_or_else(|e| e.into_inner());
        next_segment_id(&c)?
    };
    let path = seg_path(dir, id);
    let tmp = path.with_extension("tmp");
    let mut refs: Vec<&SpanRecord> = m.spans.iter().map(|s| &**s).collect();
    let meta = segment::write_segment(&tmp, &mut refs, inner.opts.zstd_level)?;
    std::fs::rename(&tmp, &path)?;
    wal::sync_dir(dir)?;
    let bytes = std::fs::metadata(&path)?.len();
    {
        let mut c = inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO segments(id,file,min_start,max_start,spans,bytes,created_ns) VALUES(?1,?2,?3,?4,?5,?6,?7)",
            params![
                id,
                path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                meta.min_start as i64,
                meta.max_start as i64,
                meta.count as i64,
                bytes as i64,
                now_ns() as i64
            ],
        )?;
        db::merge_rollups(&tx, &m.rollups, 0)?;
        db::set_meta(&tx, "wal_sealed_upto", wal_seq as i64)?;
        tx.commit()?;
        let mut v = inner.view.write().unwrap_or_else(|e| e.into_inner());
        v.sealing.retain(|x| !Arc::ptr_eq(x, m));
        v.segments.push(Arc::new(Segment {
            id,
            path,
            meta,
            bytes,
        }));
    }
    for seq in wal::list(dir)? {
        if seq <= wal_seq {
            let _ = std::fs::remove_file(wal::wal_path(dir, seq));
        }
    }
    inner
        .metrics
        .segments_sealed
        .fetch_add(1, Ordering::Relaxed);
    Ok(())
}

fn retention(inner: &Inner) -> Result<(), StoreError> {
    let cutoff = now_ns().saturating_sub(inner.opts.retention.as_nanos() as u64);
    let old: Vec<Arc<Segment>> = {
        let v = inner.view.read().unwrap_or_else(|e| e.into_inner());
        v.segments
            .iter()
            .filter(|s| s.meta.max_start < cutoff)
            .cloned()
            .collect()
    };
    let mut c = inner.db.lock().unwrap_or_else(|e| e.into_inner());
    let tx = c.transaction()?;
    for s in &old {
        tx.execute("DELETE FROM segments WHERE id=?1", [s.id])?;
    }
    let cm = (cutoff / MINUTE_NS) as i64;
    tx.execute("DELETE FROM op_rollups WHERE minute < ?1", [cm])?;
    tx.execute("DELETE FROM db_rollups WHERE minute < ?1", [cm])?;
    tx.execute("DELETE FROM edge_rollups WHERE minute < ?1", [cm])?;
    tx.execute("DELETE FROM error_rollups WHERE minute < ?1", [cm])?;
    tx.execute(
        "DELETE FROM metric_points WHERE time_ns < ?1",
        [cutoff as i64],
    )?;
    tx.commit()?;
    if !old.is_empty() {
        let mut v = inner.view.write().unwrap_or_else(|e| e.into_inner());
        v.segments.retain(|s| !old.iter().any(|o| o.id == s.id));
    }
    drop(c);
    for s in old {
        let _ = std::fs::remove_file(&s.path);
    }
    Ok(())
}

/// Merges small segments (fewer than a quarter of `seal_spans` spans each) once eight pile up.
fn compact(inner: &Inner) -> Result<(), StoreError> {
    let small_limit = (inner.opts.seal_spans / 4).max(1) as u64;
    let small: Vec<Arc<Segment>> = {
        let v = inner.view.read().unwrap_or_else(|e| e.into_inner());
        v.segments
            .iter()
            .filter(|s| s.meta.count < small_limit)
            .take(64)
            .cloned()
            .collect()
    };
    if small.len() < 8 {
        return Ok(());
    }
    let mut spans = Vec::new();
    let mut services = Vec::new();
    for s in &small {
        let mut f = File::open(&s.path)?;
        for b in &s.meta.blocks {
            let block = Block::read(&mut f, b)?;
            for i in 0..block.len() {
                spans.push(block.row(i, &mut services));
            }
        }
    }
    let id = {
        let c = inner.db.lock().unwrap_or_else(|e| e.into_inner());
        next_segment_id(&c)?
    };
    let path = seg_path(&inner.opts.dir, id);
    let tmp = path.with_extension("tmp");
    let mut refs: Vec<&SpanRecord> = spans.iter().collect();
    let meta = segment::write_segment(&tmp, &mut refs, inner.opts.zstd_level)?;
    std::fs::rename(&tmp, &path)?;
    wal::sync_dir(&inner.opts.dir)?;
    let bytes = std::fs::metadata(&path)?.len();
    {
        let mut c = inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let tx = c.transaction()?;
        tx.execute(
            "INSERT INTO segments(id,file,min_start,max_start,spans,bytes,created_ns) VALUES(?1,?2,?3,?4,?5,?6,?7)",
            params![
                id,
                path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
                meta.min_start as i64,
                meta.max_start as i64,
                meta.count as i64,
                bytes as i64,
                now_ns() as i64
            ],
        )?;
        for s in &small {
            tx.execute("DELETE FROM segments WHERE id=?1", [s.id])?;
        }
        tx.commit()?;
        let mut v = inner.view.write().unwrap_or_else(|e| e.into_inner());
        v.segments.retain(|s| !small.iter().any(|o| o.id == s.id));
        v.segments.push(Arc::new(Segment {
            id,
            path,
            meta,
            bytes,
        }));
    }
    for s in small {
        let _ = std::fs::remove_file(&s.path);
    }
    Ok(())
}

#[derive(Clone)]
enum Found {
    Mem(Arc<SpanRecord>),
    Seg(usize, usize, usize),
}

struct Candidate {
    key: u64,
    trace: [u8; 16],
    found: Found,
}

fn matches_core(
    q: &SpanQuery,
    service: &str,
    name: &str,
    kind: u8,
    start: u64,
    dur: u64,
    status: u8,
) -> bool {
    start >= q.from_ns
        && start < q.to_ns
        && dur >= q.min_duration_ns
        && q.service.as_deref().is_none_or(|s| s == service)
        && q.name.as_deref().is_none_or(|s| s == name)
        && q.kind.is_none_or(|k| k == kind)
        && q.status.is_none_or(|s| s == status)
}

fn mem_matches(q: &SpanQuery, s: &SpanRecord) -> bool {
    matches_core(
        q,
        &s.service,
        &s.name,
        s.kind,
        s.start_ns,
        s.duration_ns,
        s.status,
    ) && q
        .attrs
        .iter()
        .all(|(k, v)| s.attr(k).is_some_and(|a| a.matches(v)))
}

impl Store for EmbeddedStore {
    fn submit_spans(&self, wal: Bytes, spans: Vec<Arc<SpanRecord>>) -> Result<Ack, StoreError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(StoreError::Closed);
        }
        // in memory a span costs several times its protobuf size
        let cost = wal.len() as u64 * 4 + 1024;
        let before = self.inner.queue_bytes.fetch_add(cost, Ordering::Relaxed);
        if before + cost > self.inner.opts.max_queue_bytes && before > 0 {
            self.inner.queue_bytes.fetch_sub(cost, Ordering::Relaxed);
            return Err(StoreError::Full);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.queue_depth.fetch_add(1, Ordering::Relaxed);
        match self.tx.try_send(Msg::Batch(Batch {
            wal,
            spans,
            cost,
            ack: tx,
        })) {
            Ok(()) => Ok(rx),
            Err(e) => {
                self.inner.queue_bytes.fetch_sub(cost, Ordering::Relaxed);
                self.inner.queue_depth.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => StoreError::Full,
                    TrySendError::Disconnected(_) => StoreError::Closed,
                })
            }
        }
    }

    fn insert_metrics(&self, points: &[MetricPoint]) -> Result<(), StoreError> {
        let mut c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        db::insert_points(&mut c, points)?;
        Ok(())
    }

    fn merge_agent_rollups(&self, rollups: &Rollups) -> Result<(), StoreError> {
        let mut c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let tx = c.transaction()?;
        db::merge_rollups(&tx, rollups, 1)?;
        tx.commit()?;
        Ok(())
    }

    fn trace(&self, id: [u8; 16]) -> Result<Vec<SpanRecord>, StoreError> {
        let mut out = Vec::new();
        let (sealing, segments) = {
            let v = self.inner.view.read().unwrap_or_else(|e| e.into_inner());
            if let Some(ix) = v.active.by_trace.get(&id) {
                out.extend(ix.iter().map(|&i| (*v.active.spans[i as usize]).clone()));
            }
            (v.sealing.clone(), v.segments.clone())
        };
        for m in &sealing {
            if let Some(ix) = m.by_trace.get(&id) {
                out.extend(ix.iter().map(|&i| (*m.spans[i as usize]).clone()));
            }
        }
        let mut services = Vec::new();
        for s in &segments {
            if !s.meta.bloom.may_contain(&id) {
                continue;
            }
            let mut f = None;
            for b in &s.meta.blocks {
                if b.min_trace > id || b.max_trace < id {
                    continue;
                }
                let file = match &mut f {
                    Some(f) => f,
                    None => f.insert(File::open(&s.path)?),
                };
                let block = Block::read(file, b)?;
                for i in block.rows_of(&id) {
                    out.push(block.row(i, &mut services));
                }
            }
        }
        out.sort_by_key(|s| s.start_ns);
        Ok(out)
    }

    fn search(&self, q: &SpanQuery) -> Result<Vec<SpanRecord>, StoreError> {
        let mut found = Matches::new(q);
        let (sealing, segments) = {
            let v = self.inner.view.read().unwrap_or_else(|e| e.into_inner());
            v.active.spans.iter().for_each(|s| found.add_mem(s));
            (v.sealing.clone(), v.segments.clone())
        };
        for m in &sealing {
            m.spans.iter().for_each(|s| found.add_mem(s));
        }
        found.prune_if_full();
        let mut files: HashMap<usize, File> = HashMap::new();
        for p in plan_blocks(&segments, q) {
            if found.cannot_improve(p.bound) {
                break;
            }
            let f = match files.entry(p.segment) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(File::open(&segments[p.segment].path)?),
            };
            let block = Block::read(f, &segments[p.segment].meta.blocks[p.block])?;
            found.add_block((p.segment, p.block), block);
        }
        Ok(found.into_spans())
    }

    fn op_rows(
        &self,
        service: Option<&str>,
        from_min: u64,
        to_min: u64,
    ) -> Result<Vec<OpRow>, StoreError> {
        let c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows = db::op_rows(&c, service, from_min, to_min)?;
        let v = self.inner.view.read().unwrap_or_else(|e| e.into_inner());
        for m in std::iter::once(&v.active).chain(v.sealing.iter().map(|m| &**m)) {
            for (k, a) in &m.rollups.ops {
                if k.minute >= from_min
                    && k.minute < to_min
                    && service.is_none_or(|s| s == &*k.service)
                {
                    rows.push(OpRow {
                        service: k.service.to_string(),
                        minute: k.minute,
                        kind: k.kind,
                        name: k.name.clone(),
                        source: 0,
                        agg: a.clone(),
                    });
                }
            }
        }
        Ok(rows)
    }

    fn error_rows(
        &self,
        service: Option<&str>,
        from_min: u64,
        to_min: u64,
    ) -> Result<Vec<ErrorRow>, StoreError> {
        let c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut rows = db::error_rows(&c, service, from_min, to_min)?;
        let v = self.inner.view.read().unwrap_or_else(|e| e.into_inner());
        for m in std::iter::once(&v.active).chain(v.sealing.iter().map(|m| &**m)) {
            for (k, a) in m.rollups.errors.iter() {
                if k.minute >= from_min
                    && k.minute < to_min
                    && service.is_none_or(|s| s == &*k.service)
                {
                    rows.push(ErrorRow {
                        service: k.service.to_string(),
                        minute: k.minute,
                        error_type: k.error_type.clone(),
                        fingerprint: k.fingerprint.clone(),
                        agg: a.clone(),
                    });
                }
            }
        }
        Ok(rows)
    }

    fn db_rows(
        &self,
        service: &str,
        from_min: u64,
        to_min: u64,
    ) -> Result<HashMap<String, Agg>, StoreError> {
        let c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: HashMap<String, Agg> = HashMap::new();
        for (fp, a) in db::db_rows(&c, service, from_min, to_min)? {
            out.entry(fp).or_default().merge(&a);
        }
        let v = self.inner.view.read().unwrap_or_else(|e| e.into_inner());
        for m in std::iter::once(&v.active).chain(v.sealing.iter().map(|m| &**m)) {
            for (k, a) in &m.rollups.db {
                if k.minute >= from_min && k.minute < to_min && &*k.service == service {
                    out.entry(k.fingerprint.clone()).or_default().merge(a);
                }
            }
        }
        Ok(out)
    }

    fn edge_rows(
        &self,
        from_min: u64,
        to_min: u64,
    ) -> Result<HashMap<(String, String), Agg>, StoreError> {
        let c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: HashMap<(String, String), Agg> = HashMap::new();
        for (a, b, agg) in db::edge_rows(&c, from_min, to_min)? {
            out.entry((a, b)).or_default().merge(&agg);
        }
        let v = self.inner.view.read().unwrap_or_else(|e| e.into_inner());
        v.linker.pending_edges(from_min, to_min, &mut out);
        for m in std::iter::once(&v.active).chain(v.sealing.iter().map(|m| &**m)) {
            for (k, a) in &m.rollups.edges {
                if k.minute >= from_min && k.minute < to_min {
                    out.entry((k.caller.to_string(), k.callee.clone()))
                        .or_default()
                        .merge(a);
                }
            }
        }
        Ok(out)
    }

    fn metric_names(&self, service: &str) -> Result<Vec<MetricInfo>, StoreError> {
        let c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = c.prepare_cached(
            "SELECT name, max(kind), max(unit), count(*) FROM metric_points WHERE service=?1 GROUP BY name ORDER BY name",
        )?;
        let rows = st.query_map([service], |r| {
            Ok(MetricInfo {
                name: r.get(0)?,
                kind: r.get(1)?,
                unit: r.get(2)?,
                points: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn metric_points(
        &self,
        service: &str,
        name: &str,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Vec<MetricPoint>, StoreError> {
        let c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = c.prepare_cached(
            "SELECT unit, kind, time_ns, attributes, value, count FROM metric_points
             WHERE service=?1 AND name=?2 AND time_ns>=?3 AND time_ns<?4 ORDER BY time_ns LIMIT 100000",
        )?;
        let rows = st.query_map(
            params![
                service,
                name,
                from_ns as i64,
                to_ns.min(i64::MAX as u64) as i64
            ],
            |r| {
                let kind: String = r.get(1)?;
                Ok(MetricPoint {
                    service: service.to_string(),
                    name: name.to_string(),
                    unit: r.get(0)?,
                    kind: match kind.as_str() {
                        "gauge" => "gauge",
                        "sum" => "sum",
                        "histogram" => "histogram",
                        "exponential_histogram" => "exponential_histogram",
                        _ => "summary",
                    },
                    time_ns: r.get::<_, i64>(2)? as u64,
                    attributes: r.get(3)?,
                    value: r.get(4)?,
                    count: r.get::<_, Option<i64>>(5)?.map(|c| c as u64),
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn get_config(&self, service: &str) -> Result<Option<ConfigEntry>, StoreError> {
        let c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        Ok(c.query_row(
            "SELECT version, body, updated_ns FROM config WHERE service=?1",
            [service],
            |r| {
                Ok(ConfigEntry {
                    version: r.get::<_, i64>(0)? as u64,
                    body: r.get(1)?,
                    updated_ns: r.get::<_, i64>(2)? as u64,
                })
            },
        )
        .optional()?)
    }

    fn put_config(
        &self,
        service: &str,
        body: &str,
        if_version: Option<u64>,
    ) -> Result<ConfigEntry, StoreError> {
        let mut c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let tx = c.transaction()?;
        let cur: Option<(i64, String)> = tx
            .query_row(
                "SELECT version, body FROM config WHERE service=?1",
                [service],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let cur_v = cur.as_ref().map(|c| c.0 as u64).unwrap_or(0);
        if let Some(want) = if_version {
            if want != cur_v {
                return Err(StoreError::VersionMismatch(want.to_string(), cur_v));
            }
        }
        let now = now_ns();
        if let Some((v, b)) = &cur {
            if b == body {
                return Ok(ConfigEntry {
                    version: *v as u64,
                    body: b.clone(),
                    updated_ns: now,
                });
            }
        }
        let v = cur_v + 1;
        tx.execute(
            "INSERT INTO config(service,version,body,updated_ns) VALUES(?1,?2,?3,?4)
             ON CONFLICT(service) DO UPDATE SET version=excluded.version, body=excluded.body, updated_ns=excluded.updated_ns",
            params![service, v as i64, body, now as i64],
        )?;
        tx.commit()?;
        Ok(ConfigEntry {
            version: v,
            body: body.to_string(),
            updated_ns: now,
        })
    }

    fn put_config_status(&self, service: &str, st: &ConfigStatus) -> Result<(), StoreError> {
        let c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        c.execute(
            "INSERT INTO config_status(service,instance,version,error,time_ns) VALUES(?1,?2,?3,?4,?5)
             ON CONFLICT(service,instance) DO UPDATE SET version=excluded.version, error=excluded.error, time_ns=excluded.time_ns",
            params![service, st.instance, st.version as i64, st.error, now_ns() as i64],
        )?;
        Ok(())
    }

    fn config_status(&self, service: &str) -> Result<Vec<ConfigStatus>, StoreError> {
        let c = self.inner.db.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = c.prepare_cached(
            "SELECT instance, version, error, time_ns FROM config_status WHERE service=?1 ORDER BY instance",
        )?;
        let rows = st.query_map([service], |r| {
            Ok(ConfigStatus {
                instance: r.get(0)?,
                version: r.get::<_, i64>(1)? as u64,
                error: r.get(2)?,
                time_ns: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn stats(&self) -> StoreStats {
        let v = self.inner.view.read().unwrap_or_else(|e| e.into_inner());
        let mem: u64 = v.active.spans.len() as u64
            + v.sealing.iter().map(|m| m.spans.len() as u64).sum::<u64>();
        let segment_spans: u64 = v.segments.iter().map(|s| s.meta.count).sum();
        let segment_bytes: u64 = v.segments.iter().map(|s| s.bytes).sum();
        let dbfile = |n: &str| {
            std::fs::metadata(self.inner.opts.dir.join(n))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        StoreStats {
            spans: mem + segment_spans,
            segments: v.segments.len() as u64,
            disk_bytes: segment_bytes
                + self.inner.wal_bytes.load(Ordering::Relaxed)
                + dbfile("rustmon.sqlite")
                + dbfile("rustmon.sqlite-wal"),
            segment_bytes,
            segment_spans,
            queue_depth: self.inner.queue_depth.load(Ordering::Relaxed),
            queue_bytes: self.inner.queue_bytes.load(Ordering::Relaxed),
        }
    }

    fn shutdown(&self) {
        if self.inner.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let _ = self.tx.send(Msg::Shutdown);
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A block a search has to read, and the best sort key any of its rows can have.
struct BlockPlan {
    segment: usize,
    block: usize,
    bound: u64,
}

/// The blocks that may hold matches of `q`, most promising first: skipped by time range,
/// service, and the block's operation summary (name, kind, longest duration, errors).
fn plan_blocks(segments: &[Arc<Segment>], q: &SpanQuery) -> Vec<BlockPlan> {
    let mut plan = Vec::new();
    for (si, s) in segments.iter().enumerate() {
        if s.meta.max_start < q.from_ns || s.meta.min_start >= q.to_ns {
            continue;
        }
        if q.service
            .as_ref()
            .is_some_and(|svc| !s.meta.services.iter().any(|x| x == svc))
        {
            continue;
        }
        for (bi, b) in s.meta.blocks.iter().enumerate() {
            if b.max_start < q.from_ns || b.min_start >= q.to_ns {
                continue;
            }
            let bound = match &b.ops {
                None if q.order == Order::Newest => b.max_start,
                None => u64::MAX,
                Some(ops) => match ops
                    .iter()
                    .filter(|o| op_may_match(q, o))
                    .map(|o| op_bound(q, o))
                    .max()
                {
                    Some(bound) => bound,
                    None => continue,
                },
            };
            plan.push(BlockPlan {
                segment: si,
                block: bi,
                bound,
            });
        }
    }
    plan.sort_by_key(|p| std::cmp::Reverse(p.bound));
    plan
}

/// The best sort key a span of the summarised operation `o` can have in the results of `q`.
fn op_bound(q: &SpanQuery, o: &BlockOp) -> u64 {
    match q.order {
        Order::Slowest => o.max_duration,
        Order::Newest if q.status == Some(STATUS_ERROR) => o.last_error_start,
        Order::Newest => o.last_start,
    }
}

/// Whether spans of the summarised operation `o` may match `q`.
fn op_may_match(q: &SpanQuery, o: &BlockOp) -> bool {
    o.max_duration >= q.min_duration_ns
        && q.service.as_deref().is_none_or(|s| s == o.service)
        && q.name.as_deref().is_none_or(|n| n == o.name)
        && q.kind.is_none_or(|k| k == o.kind)
        && (q.status != Some(STATUS_ERROR) || o.errors > 0)
}

/// The best matches of a search so far, at most one per trace, and the blocks they are in.
struct Matches<'q> {
    q: &'q SpanQuery,
    cands: Vec<Candidate>,
    blocks: HashMap<(usize, usize), Block>,
}

impl<'q> Matches<'q> {
    fn new(q: &'q SpanQuery) -> Self {
        Matches {
            q,
            cands: Vec::new(),
            blocks: HashMap::new(),
        }
    }

    fn key(&self, start: u64, duration: u64) -> u64 {
        match self.q.order {
            Order::Newest => start,
            Order::Slowest => duration,
        }
    }

    fn add_mem(&mut self, s: &Arc<SpanRecord>) {
        if mem_matches(self.q, s) {
            self.cands.push(Candidate {
                key: self.key(s.start_ns, s.duration_ns),
                trace: s.trace_id,
                found: Found::Mem(s.clone()),
            });
        }
    }

    fn add_block(&mut self, at: (usize, usize), block: Block) {
        let q = self.q;
        let before = self.cands.len();
        for i in 0..block.len() {
            if matches_core(
                q,
                block.service(i),
                block.name(i),
                block.kind(i),
                block.start(i),
                block.duration(i),
                block.status(i),
            ) && q.attrs.iter().all(|(k, v)| block.attr_matches(i, k, v))
            {
                self.cands.push(Candidate {
                    key: self.key(block.start(i), block.duration(i)),
                    trace: block.trace_ids[i],
                    found: Found::Seg(at.0, at.1, i),
                });
            }
        }
        if self.cands.len() > before {
            self.blocks.insert(at, block);
        }
        self.prune_if_full();
    }

    /// With `limit` or more candidates, keeps the best `limit` (one per trace) and their blocks.
    fn prune_if_full(&mut self) {
        if self.cands.len() < self.q.limit.max(1) {
            return;
        }
        prune(&mut self.cands, self.q.limit);
        let keep: std::collections::HashSet<(usize, usize)> = self
            .cands
            .iter()
            .filter_map(|c| match c.found {
                Found::Seg(a, b, _) => Some((a, b)),
                Found::Mem(_) => None,
            })
            .collect();
        self.blocks.retain(|k, _| keep.contains(k));
    }

    /// Whether a block whose rows have sort keys of at most `bound` cannot change the result.
    fn cannot_improve(&self, bound: u64) -> bool {
        let limit = self.q.limit.max(1);
        self.cands.len() >= limit && self.cands[limit - 1].key >= bound
    }

    fn into_spans(mut self) -> Vec<SpanRecord> {
        prune(&mut self.cands, self.q.limit);
        let mut services = Vec::new();
        self.cands
            .into_iter()
            .filter_map(|c| match c.found {
                Found::Mem(s) => Some((*s).clone()),
                Found::Seg(si, bi, i) => {
                    self.blocks.get(&(si, bi)).map(|b| b.row(i, &mut services))
                }
            })
            .collect()
    }
}

/// Sorts best first, keeps one candidate per trace and at most `limit`.
fn prune(c: &mut Vec<Candidate>, limit: usize) {
    c.sort_unstable_by_key(|x| std::cmp::Reverse(x.key));
    let mut seen = std::collections::HashSet::new();
    c.retain(|x| seen.insert(x.trace));
    c.truncate(limit);
}
