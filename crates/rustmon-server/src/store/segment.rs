//! Sealed span segments: an immutable file of compressed column blocks.
//!
//! Layout: `RMSEG1\0\0`, then blocks, then a footer, then the footer length (u32 LE) and the
//! magic again. Spans are sorted by (trace id, start) and cut into blocks of [`BLOCK_SPANS`];
//! each block holds 12 columns, each compressed on its own with zstd:
//!
//! | column | encoding |
//! |---|---|
//! | dictionary | every string of the block once (services, names, keys, string values) |
//! | trace id | distinct ids (16 bytes each) + run lengths — spans of a trace are adjacent |
//! | span id | 8 raw bytes |
//! | parent | 0 none, 1 + 8 raw bytes, or 2 + k: the span k rows back (parents start first) |
//! | service, name | dictionary indexes |
//! | kind/status | one byte |
//! | start | zigzag delta from the previous row |
//! | duration | varint nanoseconds |
//! | attributes, events, resource, status message | dictionary-coded rows |
//!
//! The footer lists each block's offset, column lengths, trace-id range and time range, the
//! services present, and a bloom filter over the segment's trace ids, so a trace-by-id lookup
//! reads one block of one segment. After the bloom filter comes each block's operations
//! (service, kind, name, longest duration, errors, latest start, latest failed start), so that
//! a search skips blocks that cannot hold a match or a better one; segments written before
//! that section existed have none.

use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

use crate::codec::{CorruptError, Reader, put_bytes, put_ivarint, put_uvarint};
use crate::model::{AttrValue, Attrs, Key, SpanEvent, SpanRecord};

/// Spans per block.
pub const BLOCK_SPANS: usize = 4096;
const MAGIC: &[u8; 8] = b"RMSEG1\0\0";
const NCOLS: usize = 12;
const C_DICT: usize = 0;
const C_TRACE: usize = 1;
const C_SPAN: usize = 2;
const C_PARENT: usize = 3;
const C_SVCNAME: usize = 4;
const C_KS: usize = 5;
const C_START: usize = 6;
const C_DUR: usize = 7;
const C_ATTRS: usize = 8;
const C_EVENTS: usize = 9;
const C_RES: usize = 10;
const C_MSG: usize = 11;

/// Errors reading or writing segments.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// File system error.
    #[error("segment i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The file is not a valid segment.
    #[error("segment {0}")]
    Corrupt(#[from] CorruptError),
}

/// Operations summarised per block at most; a block with more has no summary.
const MAX_BLOCK_OPS: usize = 256;
/// Bytes of service and operation names summarised per block at most (footers stay in memory).
const MAX_BLOCK_OP_BYTES: usize = 16 << 10;

/// One operation's spans in a block, summarised.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockOp {
    /// Service.
    pub service: String,
    /// Span kind.
    pub kind: u8,
    /// Span name.
    pub name: String,
    /// Longest duration, nanoseconds.
    pub max_duration: u64,
    /// Spans with error status.
    pub errors: u32,
    /// Latest start.
    pub last_start: u64,
    /// Latest start of a span with error status (0 without errors).
    pub last_error_start: u64,
}

/// Where one block lives and what it holds.
#[derive(Debug, Clone)]
pub struct BlockMeta {
    /// Offset in the file.
    pub offset: u64,
    /// Compressed length of each column.
    pub col_lens: [u32; NCOLS],
    /// Number of spans.
    pub count: u32,
    /// Smallest trace id.
    pub min_trace: [u8; 16],
    /// Largest trace id.
    pub max_trace: [u8; 16],
    /// Earliest start.
    pub min_start: u64,
    /// Latest start.
    pub max_start: u64,
    /// The block's operations; `None` when there are more than 256, their names take more than
    /// 16 KiB, or the segment predates the summary.
    pub ops: Option<Vec<BlockOp>>,
}

/// The footer of a segment: enough to prune it and find blocks without reading them.
#[derive(Debug, Clone)]
pub struct SegmentMeta {
    /// Blocks in trace-id order.
    pub blocks: Vec<BlockMeta>,
    /// Services with spans in the segment.
    pub services: Vec<String>,
    /// Earliest span start.
    pub min_start: u64,
    /// Latest span start.
    pub max_start: u64,
    /// Number of spans.
    pub count: u64,
    /// Bloom filter over trace ids.
    pub bloom: Bloom,
}

/// A bloom filter over trace ids (about 1% false positives at 10 bits per id).
#[derive(Debug, Clone)]
pub struct Bloom {
    bits: Vec<u64>,
}

const BLOOM_K: u64 = 6;

impl Bloom {
    /// A filter sized for `n` ids.
    pub fn with_capacity(n: usize) -> Self {
        let words = (n * 10).div_ceil(64).max(1);
        Bloom {
            bits: vec![0; words],
        }
    }

    fn hashes(id: &[u8; 16]) -> (u64, u64) {
        let a = u64::from_le_bytes(id[..8].try_into().unwrap_or([0; 8]));
        let b = u64::from_le_bytes(id[8..].try_into().unwrap_or([0; 8]));
        let h1 = (a ^ b.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let h2 = (b ^ a.rotate_left(29)).wrapping_mul(0xC2B2_AE3D_27D4_EB4F) | 1;
        (h1 ^ (h1 >> 31), h2)
    }

    /// Adds an id.
    pub fn insert(&mut self, id: &[u8; 16]) {
        let m = self.bits.len() as u64 * 64;
        let (h1, h2) = Self::hashes(id);
        for i in 0..BLOOM_K {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
    }

    /// Whether the id may be present.
    pub fn may_contain(&self, id: &[u8; 16]) -> bool {
        let m = self.bits.len() as u64 * 64;
        let (h1, h2) = Self::hashes(id);
        (0..BLOOM_K).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0
        })
    }
}

/// Encodes a block's strings as dictionary indexes.
#[derive(Default)]
struct Dict<'a> {
    map: FxHashMap<&'a str, u32>,
    /// Shared attribute keys by address and length: found without hashing their text.
    keys: FxHashMap<(usize, usize), u32>,
    out: Vec<u8>,
    n: u32,
}

impl<'a> Dict<'a> {
    fn key(&mut self, k: &'a Key) -> u32 {
        match k {
            Cow::Borrowed(s) => {
                let addr = (s.as_ptr() as usize, s.len());
                if let Some(&i) = self.keys.get(&addr) {
                    return i;
                }
                let i = self.id(s);
                self.keys.insert(addr, i);
                i
            }
            Cow::Owned(s) => self.id(s),
        }
    }

    fn id(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.n;
        self.n += 1;
        put_bytes(&mut self.out, s.as_bytes());
        self.map.insert(s, i);
        i
    }
}

fn put_attrs<'a>(buf: &mut Vec<u8>, dict: &mut Dict<'a>, attrs: &'a Attrs) {
    put_uvarint(buf, attrs.len() as u64);
    for (k, v) in attrs {
        put_uvarint(buf, u64::from(dict.key(k)));
        match v {
            AttrValue::Str(s) => {
                buf.push(0);
                put_uvarint(buf, u64::from(dict.id(s)));
            }
            AttrValue::Int(i) => {
                buf.push(1);
                put_ivarint(buf, *i);
            }
            AttrValue::Double(d) => {
                buf.push(2);
                buf.extend_from_slice(&d.to_le_bytes());
            }
            AttrValue::Bool(b) => buf.push(if *b { 4 } else { 3 }),
        }
    }
}

/// Writes `spans` (any order) as a segment file at `path` and fsyncs it. Returns the footer.
pub fn write_segment(
    path: &Path,
    spans: &mut [&SpanRecord],
    level: i32,
) -> Result<SegmentMeta, SegmentError> {
    // sort a compact key array rather than chasing pointers in every comparison
    let mut keys: Vec<([u8; 16], u64, u32)> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.trace_id, s.start_ns, i as u32))
        .collect();
    keys.sort_unstable();
    let sorted: Vec<&SpanRecord> = keys.iter().map(|k| spans[k.2 as usize]).collect();
    spans.copy_from_slice(&sorted);
    drop(sorted);
    let mut f = std::io::BufWriter::new(File::create(path)?);
    f.write_all(MAGIC)?;
    let mut offset = MAGIC.len() as u64;
    let mut blocks = Vec::new();
    let mut bloom = Bloom::with_capacity(spans.len() / 2 + 1);
    let mut services: Vec<String> = Vec::new();
    let (mut min_start, mut max_start) = (u64::MAX, 0);
    let mut comp = zstd::bulk::Compressor::new(level)?;
    let mut i = 0;
    while i < spans.len() {
        let mut end = (i + BLOCK_SPANS).min(spans.len());
        // keep a trace within one block when it ends just past the cut
        while end < spans.len()
            && end - i < BLOCK_SPANS * 2
            && spans[end].trace_id == spans[end - 1].trace_id
        {
            end += 1;
        }
        let chunk = &spans[i..end];
        let (cols, meta) = encode_block(chunk, offset, &mut comp)?;
        for c in &cols {
            f.write_all(c)?;
            offset += c.len() as u64;
        }
        for s in chunk {
            if !services.iter().any(|x| **x == *s.service) {
                services.push(s.service.to_string());
            }
        }
        min_start = min_start.min(meta.min_start);
        max_start = max_start.max(meta.max_start);
        blocks.push(meta);
        i = end;
    }
    let mut last: Option<[u8; 16]> = None;
    for s in spans.iter() {
        if last != Some(s.trace_id) {
            bloom.insert(&s.trace_id);
            last = Some(s.trace_id);
        }
    }
    let meta = SegmentMeta {
        blocks,
        services,
        min_start: if spans.is_empty() { 0 } else { min_start },
        max_start,
        count: spans.len() as u64,
        bloom,
    };
    let footer = encode_footer(&meta);
    f.write_all(&footer)?;
    f.write_all(&(footer.len() as u32).to_le_bytes())?;
    f.write_all(MAGIC)?;
    let f = f.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok(meta)
}

fn encode_block(
    spans: &[&SpanRecord],
    offset: u64,
    comp: &mut zstd::bulk::Compressor<'static>,
) -> Result<(Vec<Vec<u8>>, BlockMeta), SegmentError> {
    let n = spans.len();
    let mut dict = Dict::default();
    dict.id("");
    let mut cols: Vec<Vec<u8>> = vec![Vec::new(); NCOLS];
    // trace ids as runs
    let mut ids: Vec<[u8; 16]> = Vec::new();
    let mut runs: Vec<u64> = Vec::new();
    for s in spans {
        if ids.last() == Some(&s.trace_id) {
            *runs.last_mut().unwrap_or(&mut 0) += 1;
        } else {
            ids.push(s.trace_id);
            runs.push(1);
        }
    }
    put_uvarint(&mut cols[C_TRACE], ids.len() as u64);
    for id in &ids {
        cols[C_TRACE].extend_from_slice(id);
    }
    for r in runs {
        put_uvarint(&mut cols[C_TRACE], r);
    }
    let mut pos_of: FxHashMap<[u8; 8], usize> = FxHashMap::default();
    pos_of.reserve(n);
    let mut prev_start = 0u64;
    let mut res_ids: FxHashMap<*const Attrs, u32> = FxHashMap::default();
    let mut res_col = Vec::new();
    let mut res_count = 0u32;
    let (mut min_start, mut max_start) = (u64::MAX, 0);
    let mut ops = OpSummary::default();
    for (row, s) in spans.iter().enumerate() {
        cols[C_SPAN].extend_from_slice(&s.span_id);
        match s.parent_span_id {
            None => cols[C_PARENT].push(0),
            Some(p) => match pos_of.get(&p) {
                Some(&r) if row > r && spans[r].trace_id == s.trace_id => {
                    put_uvarint(&mut cols[C_PARENT], (row - r) as u64 + 1)
                }
                _ => {
                    cols[C_PARENT].push(1);
                    cols[C_PARENT].extend_from_slice(&p);
                }
            },
        }
        pos_of.insert(s.span_id, row);
        let sv = dict.id(&s.service);
        let nm = dict.id(&s.name);
        put_uvarint(&mut cols[C_SVCNAME], u64::from(sv));
        put_uvarint(&mut cols[C_SVCNAME], u64::from(nm));
        ops.add((sv, nm, s.kind), row, s);
        cols[C_KS].push((s.kind << 2) | (s.status & 3));
        put_ivarint(&mut cols[C_START], s.start_ns as i64 - prev_start as i64);
        prev_start = s.start_ns;
        min_start = min_start.min(s.start_ns);
        max_start = max_start.max(s.start_ns);
        put_uvarint(&mut cols[C_DUR], s.duration_ns);
        let mut attrs = std::mem::take(&mut cols[C_ATTRS]);
        put_attrs(&mut attrs, &mut dict, &s.attributes);
        cols[C_ATTRS] = attrs;
        let mut ev = std::mem::take(&mut cols[C_EVENTS]);
        put_uvarint(&mut ev, s.events.len() as u64);
        for e in &s.events {
            put_uvarint(&mut ev, u64::from(dict.id(&e.name)));
            put_ivarint(&mut ev, e.time_ns as i64 - s.start_ns as i64);
            put_attrs(&mut ev, &mut dict, &e.attributes);
        }
        cols[C_EVENTS] = ev;
        let key = Arc::as_ptr(&s.resource);
        let rid = match res_ids.get(&key) {
            Some(&r) => r,
            None => {
                let r = res_count;
                res_count += 1;
                put_attrs(&mut res_col, &mut dict, &s.resource);
                res_ids.insert(key, r);
                r
            }
        };
        put_uvarint(&mut cols[C_RES], u64::from(rid));
        let msg = dict.id(&s.status_message);
        put_uvarint(&mut cols[C_MSG], u64::from(msg));
    }
    let mut res = Vec::new();
    put_uvarint(&mut res, u64::from(res_count));
    res.extend_from_slice(&res_col);
    res.extend_from_slice(&cols[C_RES]);
    cols[C_RES] = res;
    let mut d = Vec::new();
    put_uvarint(&mut d, u64::from(dict.n));
    d.extend_from_slice(&dict.out);
    cols[C_DICT] = d;
    let mut col_lens = [0u32; NCOLS];
    let mut out = Vec::with_capacity(NCOLS);
    for (i, c) in cols.iter().enumerate() {
        let z = comp.compress(c)?;
        col_lens[i] = z.len() as u32;
        out.push(z);
    }
    let meta = BlockMeta {
        offset,
        col_lens,
        count: n as u32,
        min_trace: ids.first().copied().unwrap_or_default(),
        max_trace: ids.last().copied().unwrap_or_default(),
        min_start,
        max_start,
        ops: ops.finish(spans),
    };
    Ok((out, meta))
}

/// Builds a block's [`BlockOp`]s, keyed by the dictionary ids of service and name and the kind.
#[derive(Default)]
struct OpSummary {
    /// Key → the first row of the operation (for its names) and its figures so far.
    ops: FxHashMap<(u32, u32, u8), (usize, BlockOp)>,
    /// Bytes of the services and names of `ops`.
    bytes: usize,
}

impl OpSummary {
    /// Whether the block has too many operations, or too long names, to be summarised.
    fn too_big(&self) -> bool {
        self.ops.len() > MAX_BLOCK_OPS || self.bytes > MAX_BLOCK_OP_BYTES
    }

    fn add(&mut self, key: (u32, u32, u8), row: usize, s: &SpanRecord) {
        if self.too_big() {
            return;
        }
        let (_, op) = self.ops.entry(key).or_insert_with(|| {
            self.bytes += s.service.len() + s.name.len();
            let named = BlockOp {
                service: String::new(),
                kind: s.kind,
                name: String::new(),
                max_duration: 0,
                errors: 0,
                last_start: 0,
                last_error_start: 0,
            };
            (row, named)
        });
        op.max_duration = op.max_duration.max(s.duration_ns);
        op.last_start = op.last_start.max(s.start_ns);
        if s.is_error() {
            op.errors += 1;
            op.last_error_start = op.last_error_start.max(s.start_ns);
        }
    }

    fn finish(self, spans: &[&SpanRecord]) -> Option<Vec<BlockOp>> {
        if self.too_big() {
            return None;
        }
        Some(
            self.ops
                .into_values()
                .map(|(row, op)| BlockOp {
                    service: spans[row].service.to_string(),
                    name: spans[row].name.clone(),
                    ..op
                })
                .collect(),
        )
    }
}

fn encode_footer(m: &SegmentMeta) -> Vec<u8> {
    let mut b = Vec::new();
    put_uvarint(&mut b, m.count);
    put_uvarint(&mut b, m.min_start);
    put_uvarint(&mut b, m.max_start);
    put_uvarint(&mut b, m.services.len() as u64);
    for s in &m.services {
        put_bytes(&mut b, s.as_bytes());
    }
    put_uvarint(&mut b, m.blocks.len() as u64);
    for bl in &m.blocks {
        put_uvarint(&mut b, bl.offset);
        for l in bl.col_lens {
            put_uvarint(&mut b, u64::from(l));
        }
        put_uvarint(&mut b, u64::from(bl.count));
        b.extend_from_slice(&bl.min_trace);
        b.extend_from_slice(&bl.max_trace);
        put_uvarint(&mut b, bl.min_start);
        put_uvarint(&mut b, bl.max_start);
    }
    put_uvarint(&mut b, m.bloom.bits.len() as u64);
    for w in &m.bloom.bits {
        b.extend_from_slice(&w.to_le_bytes());
    }
    put_uvarint(&mut b, OPS_SECTION);
    for bl in &m.blocks {
        encode_block_ops(&mut b, bl.ops.as_deref());
    }
    b
}

/// Tag of the footer section of block operation summaries in this layout. A footer ending in
/// another tag (an earlier layout) is read without summaries.
const OPS_SECTION: u64 = 0x6f70_7332;

/// `0` for no summary, else the number of operations plus one, then each operation.
fn encode_block_ops(b: &mut Vec<u8>, ops: Option<&[BlockOp]>) {
    let Some(ops) = ops else {
        put_uvarint(b, 0);
        return;
    };
    put_uvarint(b, ops.len() as u64 + 1);
    for op in ops {
        put_bytes(b, op.service.as_bytes());
        b.push(op.kind);
        put_bytes(b, op.name.as_bytes());
        put_uvarint(b, op.max_duration);
        put_uvarint(b, u64::from(op.errors));
        put_uvarint(b, op.last_start);
        put_uvarint(b, op.last_error_start);
    }
}

fn decode_block_ops(r: &mut Reader<'_>) -> Result<Option<Vec<BlockOp>>, CorruptError> {
    let n = r.len(MAX_BLOCK_OPS + 1)?;
    if n == 0 {
        return Ok(None);
    }
    let mut ops = Vec::with_capacity(n - 1);
    for _ in 1..n {
        ops.push(BlockOp {
            service: r.str()?.to_string(),
            kind: r.u8()?,
            name: r.str()?.to_string(),
            max_duration: r.uvarint()?,
            errors: r.len(u32::MAX as usize)? as u32,
            last_start: r.uvarint()?,
            last_error_start: r.uvarint()?,
        });
    }
    Ok(Some(ops))
}

fn decode_footer(b: &[u8]) -> Result<SegmentMeta, CorruptError> {
    let mut r = Reader::new(b);
    let count = r.uvarint()?;
    let min_start = r.uvarint()?;
    let max_start = r.uvarint()?;
    let ns = r.len(1 << 20)?;
    let mut services = Vec::with_capacity(ns);
    for _ in 0..ns {
        services.push(r.str()?.to_string());
    }
    let nb = r.len(1 << 24)?;
    let mut blocks = Vec::with_capacity(nb);
    for _ in 0..nb {
        let offset = r.uvarint()?;
        let mut col_lens = [0u32; NCOLS];
        for l in &mut col_lens {
            *l = r.len(u32::MAX as usize)? as u32;
        }
        let count = r.len(u32::MAX as usize)? as u32;
        let min_trace = r.array()?;
        let max_trace = r.array()?;
        let min_start = r.uvarint()?;
        let max_start = r.uvarint()?;
        blocks.push(BlockMeta {
            offset,
            col_lens,
            count,
            min_trace,
            max_trace,
            min_start,
            max_start,
            ops: None,
        });
    }
    let nw = r.len(1 << 28)?;
    let mut bits = Vec::with_capacity(nw);
    for _ in 0..nw {
        bits.push(u64::from_le_bytes(r.array()?));
    }
    if r.remaining() > 0 && r.uvarint()? == OPS_SECTION {
        for bl in &mut blocks {
            bl.ops = decode_block_ops(&mut r)?;
        }
    }
    Ok(SegmentMeta {
        blocks,
        services,
        min_start,
        max_start,
        count,
        bloom: Bloom { bits },
    })
}

/// Reads the footer of the segment at `path`.
pub fn read_meta(path: &Path) -> Result<SegmentMeta, SegmentError> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len < 20 {
        return Err(CorruptError("segment too short").into());
    }
    f.seek(SeekFrom::Start(len - 12))?;
    let mut tail = [0u8; 12];
    f.read_exact(&mut tail)?;
    if &tail[4..] != MAGIC {
        return Err(CorruptError("segment has no trailing magic").into());
    }
    let flen = u64::from(u32::from_le_bytes(tail[..4].try_into().unwrap_or([0; 4])));
    if flen + 20 > len {
        return Err(CorruptError("segment footer length out of range").into());
    }
    f.seek(SeekFrom::Start(len - 12 - flen))?;
    let mut footer = vec![0u8; flen as usize];
    f.read_exact(&mut footer)?;
    Ok(decode_footer(&footer)?)
}

thread_local! {
    static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// A decompressed block, able to materialize rows.
#[derive(Debug)]
pub struct Block {
    cols: Vec<Vec<u8>>,
    dict: Vec<(u32, u32)>,
    /// Trace id of each row.
    pub trace_ids: Vec<[u8; 16]>,
    parents: Vec<Option<[u8; 8]>>,
    svcname: Vec<(u32, u32)>,
    starts: Vec<u64>,
    durs: Vec<u64>,
    attr_off: Vec<u32>,
    event_off: Vec<u32>,
    res_sets: Vec<Arc<Attrs>>,
    res_of: Vec<u32>,
    msg: Vec<u32>,
}

impl Block {
    /// Reads and decompresses block `meta` from `f`.
    pub fn read(f: &mut File, meta: &BlockMeta) -> Result<Block, SegmentError> {
        let total: u64 = meta.col_lens.iter().map(|&l| u64::from(l)).sum();
        let mut raw = vec![0u8; total as usize];
        f.seek(SeekFrom::Start(meta.offset))?;
        f.read_exact(&mut raw)?;
        let mut cols = Vec::with_capacity(NCOLS);
        let mut p = 0usize;
        for &l in &meta.col_lens {
            let part = &raw[p..p + l as usize];
            p += l as usize;
            let cap = zstd::bulk::Decompressor::upper_bound(part).unwrap_or(64 << 20);
            cols.push(DCTX.with(|d| -> std::io::Result<Vec<u8>> {
                let mut d = d.borrow_mut();
                if d.is_none() {
                    *d = Some(zstd::bulk::Decompressor::new()?);
                }
                match d.as_mut() {
                    Some(d) => d.decompress(part, cap.min(256 << 20)),
                    None => Err(std::io::Error::other("no zstd context")),
                }
            })?);
        }
        Ok(Self::parse(cols, meta.count as usize)?)
    }

    fn parse(cols: Vec<Vec<u8>>, n: usize) -> Result<Block, CorruptError> {
        let mut r = Reader::new(&cols[C_DICT]);
        let nd = r.len(1 << 26)?;
        let mut dict = Vec::with_capacity(nd);
        for _ in 0..nd {
            let l = r.len(r.remaining())?;
            let start = r.pos();
            let s = r.take(l)?;
            std::str::from_utf8(s).map_err(|_| CorruptError("dictionary string not utf-8"))?;
            dict.push((start as u32, l as u32));
        }
        let mut r = Reader::new(&cols[C_TRACE]);
        let nt = r.len(n)?;
        let mut ids = Vec::with_capacity(nt);
        for _ in 0..nt {
            ids.push(r.array::<16>()?);
        }
        let mut trace_ids = Vec::with_capacity(n);
        for id in ids {
            let run = r.len(n)?;
            trace_ids.extend(std::iter::repeat_n(id, run));
        }
        if trace_ids.len() != n || cols[C_SPAN].len() != n * 8 || cols[C_KS].len() != n {
            return Err(CorruptError("column lengths disagree"));
        }
        let mut parents = Vec::with_capacity(n);
        let mut r = Reader::new(&cols[C_PARENT]);
        for row in 0..n {
            let t = r.uvarint()?;
            parents.push(match t {
                0 => None,
                1 => Some(r.array::<8>()?),
                k => {
                    let back = (k - 1) as usize;
                    if back > row {
                        return Err(CorruptError("parent reference out of range"));
                    }
                    let at = (row - back) * 8;
                    Some(cols[C_SPAN][at..at + 8].try_into().unwrap_or([0; 8]))
                }
            });
        }
        let ndict = dict.len();
        let check = |i: u64| -> Result<u32, CorruptError> {
            if (i as usize) < ndict {
                Ok(i as u32)
            } else {
                Err(CorruptError("dictionary index out of range"))
            }
        };
        let mut svcname = Vec::with_capacity(n);
        let mut r = Reader::new(&cols[C_SVCNAME]);
        for _ in 0..n {
            svcname.push((check(r.uvarint()?)?, check(r.uvarint()?)?));
        }
        let mut starts = Vec::with_capacity(n);
        let mut r = Reader::new(&cols[C_START]);
        let mut prev = 0i64;
        for _ in 0..n {
            prev = prev.wrapping_add(r.ivarint()?);
            starts.push(prev as u64);
        }
        let mut durs = Vec::with_capacity(n);
        let mut r = Reader::new(&cols[C_DUR]);
        for _ in 0..n {
            durs.push(r.uvarint()?);
        }
        let mut attr_off = Vec::with_capacity(n + 1);
        let mut r = Reader::new(&cols[C_ATTRS]);
        for _ in 0..n {
            attr_off.push(r.pos() as u32);
            skip_attrs(&mut r, dict.len())?;
        }
        let mut event_off = Vec::with_capacity(n);
        let mut r = Reader::new(&cols[C_EVENTS]);
        for _ in 0..n {
            event_off.push(r.pos() as u32);
            let ne = r.len(1 << 20)?;
            for _ in 0..ne {
                check(r.uvarint()?)?;
                r.ivarint()?;
                skip_attrs(&mut r, dict.len())?;
            }
        }
        let mut block = Block {
            dict,
            trace_ids,
            parents,
            svcname,
            starts,
            durs,
            attr_off,
            event_off,
            res_sets: Vec::new(),
            res_of: Vec::with_capacity(n),
            msg: Vec::with_capacity(n),
            cols: Vec::new(),
        };
        block.cols = cols;
        let cols = &block.cols;
        let mut r = Reader::new(&cols[C_RES]);
        let nr = r.len(n.max(1))?;
        let mut sets = Vec::with_capacity(nr);
        for _ in 0..nr {
            sets.push(Arc::new(read_attrs(&mut r, &cols[C_DICT], &block.dict)?));
        }
        for _ in 0..n {
            let i = r.len(nr.saturating_sub(1))?;
            block.res_of.push(i as u32);
        }
        let mut r = Reader::new(&cols[C_MSG]);
        for _ in 0..n {
            let i = r.uvarint()?;
            block.msg.push(check(i)?);
        }
        block.res_sets = sets;
        Ok(block)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.trace_ids.len()
    }

    /// Whether the block has no rows.
    pub fn is_empty(&self) -> bool {
        self.trace_ids.is_empty()
    }

    fn s(&self, i: u32) -> &str {
        let (a, l) = self.dict[i as usize];
        std::str::from_utf8(&self.cols[C_DICT][a as usize..(a + l) as usize]).unwrap_or("")
    }

    /// Service of row `i`.
    pub fn service(&self, i: usize) -> &str {
        self.s(self.svcname[i].0)
    }

    /// Name of row `i`.
    pub fn name(&self, i: usize) -> &str {
        self.s(self.svcname[i].1)
    }

    /// Start of row `i`.
    pub fn start(&self, i: usize) -> u64 {
        self.starts[i]
    }

    /// Duration of row `i`.
    pub fn duration(&self, i: usize) -> u64 {
        self.durs[i]
    }

    /// Kind of row `i`.
    pub fn kind(&self, i: usize) -> u8 {
        self.cols[C_KS][i] >> 2
    }

    /// Status of row `i`.
    pub fn status(&self, i: usize) -> u8 {
        self.cols[C_KS][i] & 3
    }

    /// Rows of trace `id` (the block is sorted by trace id).
    pub fn rows_of(&self, id: &[u8; 16]) -> std::ops::Range<usize> {
        let lo = self.trace_ids.partition_point(|t| t < id);
        let hi = self.trace_ids.partition_point(|t| t <= id);
        lo..hi
    }

    /// Builds the full record of row `i`; `services` interns service names.
    pub fn row(&self, i: usize, services: &mut Vec<Arc<str>>) -> SpanRecord {
        let svc = self.service(i);
        let service = match services.iter().find(|s| &***s == svc) {
            Some(s) => s.clone(),
            None => {
                let s: Arc<str> = Arc::from(svc);
                services.push(s.clone());
                s
            }
        };
        let dictb = &self.cols[C_DICT];
        let mut r = Reader::new(&self.cols[C_ATTRS]);
        r.seek(self.attr_off[i] as usize);
        let attributes = read_attrs(&mut r, dictb, &self.dict).unwrap_or_default();
        let mut r = Reader::new(&self.cols[C_EVENTS]);
        r.seek(self.event_off[i] as usize);
        let ne = r.uvarint().unwrap_or(0);
        let mut events = Vec::new();
        for _ in 0..ne {
            let (Ok(n), Ok(dt)) = (r.uvarint(), r.ivarint()) else {
                break;
            };
            let attributes = read_attrs(&mut r, dictb, &self.dict).unwrap_or_default();
            events.push(SpanEvent {
                name: self.s(n as u32).to_string(),
                time_ns: (self.starts[i] as i64).wrapping_add(dt) as u64,
                attributes,
            });
        }
        SpanRecord {
            trace_id: self.trace_ids[i],
            span_id: self.cols[C_SPAN][i * 8..i * 8 + 8]
                .try_into()
                .unwrap_or([0; 8]),
            parent_span_id: self.parents[i],
            service,
            kind: self.kind(i),
            name: self.name(i).to_string(),
            start_ns: self.starts[i],
            duration_ns: self.durs[i],
            status: self.status(i),
            status_message: self.s(self.msg[i]).to_string(),
            attributes,
            events,
            resource: self.res_sets[self.res_of[i] as usize].clone(),
        }
    }

    /// Whether row `i` has attribute `key` with text value `val`.
    pub fn attr_matches(&self, i: usize, key: &str, val: &str) -> bool {
        let dictb = &self.cols[C_DICT];
        let mut r = Reader::new(&self.cols[C_ATTRS]);
        r.seek(self.attr_off[i] as usize);
        let found = read_attrs(&mut r, dictb, &self.dict)
            .unwrap_or_default()
            .into_iter()
            .any(|(k, v)| k == key && v.matches(val));
        found
            || self.res_sets[self.res_of[i] as usize]
                .iter()
                .any(|(k, v)| k == key && v.matches(val))
    }
}

fn skip_attrs(r: &mut Reader<'_>, ndict: usize) -> Result<(), CorruptError> {
    let n = r.len(1 << 20)?;
    for _ in 0..n {
        if r.uvarint()? as usize >= ndict {
            return Err(CorruptError("attribute key out of range"));
        }
        match r.u8()? {
            0 => {
                if r.uvarint()? as usize >= ndict {
                    return Err(CorruptError("attribute value out of range"));
                }
            }
            1 => {
                r.ivarint()?;
            }
            2 => {
                r.take(8)?;
            }
            3 | 4 => {}
            _ => return Err(CorruptError("unknown attribute type")),
        }
    }
    Ok(())
}

fn read_attrs(
    r: &mut Reader<'_>,
    dictb: &[u8],
    dict: &[(u32, u32)],
) -> Result<Attrs, CorruptError> {
    let raw = |i: u64| -> Result<Cow<'_, str>, CorruptError> {
        let (a, l) = *dict
            .get(i as usize)
            .ok_or(CorruptError("dictionary index out of range"))?;
        Ok(String::from_utf8_lossy(
            &dictb[a as usize..(a + l) as usize],
        ))
    };
    let s = |i: u64| raw(i).map(Cow::into_owned);
    let n = r.len(1 << 20)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let k = crate::model::key(&raw(r.uvarint()?)?);
        let v = match r.u8()? {
            0 => AttrValue::Str(s(r.uvarint()?)?),
            1 => AttrValue::Int(r.ivarint()?),
            2 => AttrValue::Double(f64::from_le_bytes(r.array()?)),
            3 => AttrValue::Bool(false),
            4 => AttrValue::Bool(true),
            _ => return Err(CorruptError("unknown attribute type")),
        };
        out.push((k, v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(t: u8, s: u8, parent: Option<u8>) -> SpanRecord {
        SpanRecord {
            trace_id: [t; 16],
            span_id: [s; 8],
            parent_span_id: parent.map(|p| [p; 8]),
            service: Arc::from("svc"),
            kind: 2,
            name: format!("op{s}"),
            start_ns: 1_700_000_000_000_000_000 + u64::from(s) * 1000,
            duration_ns: 12345,
            status: 2,
            status_message: "boom".into(),
            attributes: vec![
                ("http.route".into(), AttrValue::Str("/a/{id}".into())),
                ("n".into(), AttrValue::Int(-5)),
                ("f".into(), AttrValue::Double(1.5)),
                ("b".into(), AttrValue::Bool(true)),
            ],
            events: vec![SpanEvent {
                name: "exception".into(),
                time_ns: 1_700_000_000_000_000_500,
                attributes: vec![("exception.message".into(), AttrValue::Str("x".into()))],
            }],
            resource: Arc::new(vec![("host.name".into(), AttrValue::Str("h".into()))]),
        }
    }

    #[test]
    fn round_trip() {
        let dir = std::env::temp_dir().join(format!("rmseg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.seg");
        let spans: Vec<SpanRecord> = (0..10_000u32)
            .map(|i| {
                span(
                    (i % 251) as u8 + 1,
                    (i % 97) as u8,
                    (i % 3 == 0).then_some(7),
                )
            })
            .collect();
        let mut refs: Vec<&SpanRecord> = spans.iter().collect();
        let meta = write_segment(&path, &mut refs, 3).unwrap();
        let meta2 = read_meta(&path).unwrap();
        assert_eq!(meta2.count, 10_000);
        assert_eq!(meta2.blocks.len(), meta.blocks.len());
        assert!(meta2.bloom.may_contain(&[5; 16]));
        let mut f = File::open(&path).unwrap();
        let mut services = Vec::new();
        let mut total = 0;
        for b in &meta2.blocks {
            let block = Block::read(&mut f, b).unwrap();
            for i in 0..block.len() {
                let r = block.row(i, &mut services);
                let orig = spans
                    .iter()
                    .find(|s| {
                        s.trace_id == r.trace_id
                            && s.span_id == r.span_id
                            && s.parent_span_id == r.parent_span_id
                    })
                    .unwrap();
                assert_eq!(orig.attributes, r.attributes);
                assert_eq!(orig.events, r.events);
                assert_eq!(orig.start_ns, r.start_ns);
                total += 1;
            }
        }
        assert_eq!(total, 10_000);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn blocks_summarise_their_operations() {
        let dir = std::env::temp_dir().join(format!("rmseg-ops-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.seg");
        // 97 names per block; op0 is slow and fails once in every block it is in
        let spans: Vec<SpanRecord> = (0..10_000u32)
            .map(|i| {
                let mut s = span((i % 251) as u8 + 1, (i % 97) as u8, None);
                s.status = u8::from(i % 97 == 0 && i % 2 == 0) * 2;
                s.duration_ns = if i % 97 == 0 {
                    1_000_000 + u64::from(i)
                } else {
                    5
                };
                s
            })
            .collect();
        let mut refs: Vec<&SpanRecord> = spans.iter().collect();
        let written = write_segment(&path, &mut refs, 3).unwrap();
        let read = read_meta(&path).unwrap();
        let mut slowest = 0;
        let mut errors = 0;
        for (w, r) in written.blocks.iter().zip(&read.blocks) {
            let ops = r.ops.as_ref().expect("summary");
            assert_eq!(w.ops.as_ref(), Some(ops));
            assert!(ops.iter().all(|o| o.service == "svc" && o.kind == 2));
            assert!(
                ops.iter()
                    .all(|o| o.last_start <= r.max_start && o.last_start > 0)
            );
            assert!(
                ops.iter()
                    .all(|o| (o.errors > 0) == (o.last_error_start > 0))
            );
            let op0 = ops.iter().find(|o| o.name == "op0").unwrap();
            slowest = slowest.max(op0.max_duration);
            errors += op0.errors;
            assert!(
                ops.iter()
                    .filter(|o| o.name != "op0")
                    .all(|o| o.max_duration == 5 && o.errors == 0)
            );
        }
        assert_eq!(slowest, 1_000_000 + 9_991);
        assert_eq!(
            errors as usize,
            spans.iter().filter(|s| s.status == 2).count()
        );
        // more distinct operations than a summary holds: no summary, and nothing skipped
        let many: Vec<SpanRecord> = (0..300u32)
            .map(|i| {
                let mut s = span(1, (i % 250) as u8, None);
                s.name = format!("op{i}");
                s
            })
            .collect();
        let mut refs: Vec<&SpanRecord> = many.iter().collect();
        write_segment(&path, &mut refs, 3).unwrap();
        assert!(read_meta(&path).unwrap().blocks[0].ops.is_none());
        // or names longer than a summary holds
        let long: Vec<SpanRecord> = (0..20u8)
            .map(|i| {
                let mut s = span(1, i, None);
                s.name = format!("{i}{}", "x".repeat(1000));
                s
            })
            .collect();
        let mut refs: Vec<&SpanRecord> = long.iter().collect();
        write_segment(&path, &mut refs, 3).unwrap();
        assert!(read_meta(&path).unwrap().blocks[0].ops.is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
