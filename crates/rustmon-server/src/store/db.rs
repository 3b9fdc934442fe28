//! SQLite for the small, hot, mutable data: segment catalogue, rollups, metric points, config.

use std::path::Path;

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OptionalExtension, params};

use super::rollup::{
    Agg, ErrorAgg, ErrorExample, ErrorKey, MAX_ERROR_GROUPS, OTHER_ERRORS, Rollups,
};
use crate::histogram::Histogram;
use crate::model::{MetricPoint, hex, parse_hex};

const SCHEMA: &str = "
PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS segments(
  id INTEGER PRIMARY KEY, file TEXT NOT NULL, min_start INTEGER NOT NULL, max_start INTEGER NOT NULL,
  spans INTEGER NOT NULL, bytes INTEGER NOT NULL, created_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS op_rollups(
  service TEXT NOT NULL, minute INTEGER NOT NULL, kind INTEGER NOT NULL, name TEXT NOT NULL,
  source INTEGER NOT NULL, count INTEGER NOT NULL, errors INTEGER NOT NULL, sum_ns INTEGER NOT NULL, hist BLOB NOT NULL,
  PRIMARY KEY(service, minute, kind, name, source)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS op_rollups_minute ON op_rollups(minute);
CREATE TABLE IF NOT EXISTS db_rollups(
  service TEXT NOT NULL, minute INTEGER NOT NULL, fingerprint TEXT NOT NULL,
  count INTEGER NOT NULL, errors INTEGER NOT NULL, sum_ns INTEGER NOT NULL, rows INTEGER NOT NULL, hist BLOB NOT NULL,
  PRIMARY KEY(service, minute, fingerprint)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS edge_rollups(
  minute INTEGER NOT NULL, caller TEXT NOT NULL, callee TEXT NOT NULL,
  count INTEGER NOT NULL, errors INTEGER NOT NULL, sum_ns INTEGER NOT NULL, hist BLOB NOT NULL,
  PRIMARY KEY(minute, caller, callee)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS error_rollups(
  service TEXT NOT NULL, minute INTEGER NOT NULL, type TEXT NOT NULL, fingerprint TEXT NOT NULL,
  count INTEGER NOT NULL, first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL, message TEXT NOT NULL,
  ops TEXT NOT NULL, examples TEXT NOT NULL,
  PRIMARY KEY(service, minute, type, fingerprint)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS error_rollups_minute ON error_rollups(minute);
CREATE TABLE IF NOT EXISTS metric_points(
  service TEXT NOT NULL, name TEXT NOT NULL, unit TEXT NOT NULL, kind TEXT NOT NULL, time_ns INTEGER NOT NULL,
  attributes TEXT NOT NULL, value REAL NOT NULL, count INTEGER);
CREATE INDEX IF NOT EXISTS metric_points_idx ON metric_points(service, name, time_ns);
CREATE TABLE IF NOT EXISTS config(service TEXT PRIMARY KEY, version INTEGER NOT NULL, body TEXT NOT NULL, updated_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS config_status(
  service TEXT NOT NULL, instance TEXT NOT NULL, version INTEGER NOT NULL, error TEXT, time_ns INTEGER NOT NULL,
  PRIMARY KEY(service, instance));
";

/// Opens (creating) the database and registers `hist_merge`.
pub fn open(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open(path)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    c.execute_batch(SCHEMA)?;
    c.create_scalar_function(
        "hist_merge",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let a: Vec<u8> = ctx.get(0)?;
            let b: Vec<u8> = ctx.get(1)?;
            let mut h = Histogram::from_bytes(&a).unwrap_or_default();
            h.merge(&Histogram::from_bytes(&b).unwrap_or_default());
            Ok(h.to_bytes())
        },
    )?;
    Ok(c)
}

/// A meta value.
pub fn get_meta(c: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    c.query_row("SELECT value FROM meta WHERE key=?1", [key], |r| r.get(0))
        .optional()
}

/// Sets a meta value.
pub fn set_meta(c: &Connection, key: &str, v: i64) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO meta(key,value) VALUES(?1,?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        params![key, v],
    )?;
    Ok(())
}

/// Merges rollups into the tables (inside the caller's transaction). `source` 0 = spans, 1 = agent metrics.
pub fn merge_rollups(c: &Connection, r: &Rollups, source: i64) -> rusqlite::Result<()> {
    let mut st = c.prepare_cached(
        "INSERT INTO op_rollups(service,minute,kind,name,source,count,errors,sum_ns,hist) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9)
         ON CONFLICT DO UPDATE SET count=count+excluded.count, errors=errors+excluded.errors,
           sum_ns=sum_ns+excluded.sum_ns, hist=hist_merge(hist, excluded.hist)",
    )?;
    for (k, a) in &r.ops {
        st.execute(params![
            &*k.service,
            k.minute as i64,
            k.kind,
            k.name,
            source,
            a.count as i64,
            a.errors as i64,
            a.sum_ns as i64,
            a.hist.to_bytes()
        ])?;
    }
    let mut st = c.prepare_cached(
        "INSERT INTO db_rollups(service,minute,fingerprint,count,errors,sum_ns,rows,hist) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)
         ON CONFLICT DO UPDATE SET count=count+excluded.count, errors=errors+excluded.errors,
           sum_ns=sum_ns+excluded.sum_ns, rows=rows+excluded.rows, hist=hist_merge(hist, excluded.hist)",
    )?;
    for (k, a) in &r.db {
        st.execute(params![
            &*k.service,
            k.minute as i64,
            k.fingerprint,
            a.count as i64,
            a.errors as i64,
            a.sum_ns as i64,
            a.rows as i64,
            a.hist.to_bytes()
        ])?;
    }
    let mut st = c.prepare_cached(
        "INSERT INTO edge_rollups(minute,caller,callee,count,errors,sum_ns,hist) VALUES(?1,?2,?3,?4,?5,?6,?7)
         ON CONFLICT DO UPDATE SET count=count+excluded.count, errors=errors+excluded.errors,
           sum_ns=sum_ns+excluded.sum_ns, hist=hist_merge(hist, excluded.hist)",
    )?;
    for (k, a) in &r.edges {
        st.execute(params![
            k.minute as i64,
            &*k.caller,
            k.callee,
            a.count as i64,
            a.errors as i64,
            a.sum_ns as i64,
            a.hist.to_bytes()
        ])?;
    }
    for (k, a) in r.errors.iter() {
        merge_error_group(c, k, a)?;
    }
    Ok(())
}

/// Adds one error group to its row, or to the overflow group of its service and minute when
/// that minute already has [`MAX_ERROR_GROUPS`] others.
fn merge_error_group(c: &Connection, k: &ErrorKey, a: &ErrorAgg) -> rusqlite::Result<()> {
    let (key, mut agg) = match error_group(c, k)? {
        Some(stored) => (k.clone(), stored),
        None if !k.is_other() && error_groups_in_minute(c, k)? >= MAX_ERROR_GROUPS => {
            let other = k.other();
            let stored = error_group(c, &other)?.unwrap_or_default();
            (other, stored)
        }
        None => (k.clone(), ErrorAgg::default()),
    };
    agg.merge(a);
    let ops: Vec<(u8, &str, u64)> = agg
        .ops
        .iter()
        .map(|(k, n, c)| (*k, n.as_str(), *c))
        .collect();
    let examples: Vec<(String, String, u64)> = agg
        .examples
        .iter()
        .map(|e| (hex(&e.trace_id), hex(&e.span_id), e.start_ns))
        .collect();
    c.prepare_cached(
        "INSERT OR REPLACE INTO error_rollups(service,minute,type,fingerprint,count,first_ns,last_ns,message,ops,examples)
         VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
    )?
    .execute(params![
        &*key.service,
        key.minute as i64,
        key.error_type,
        key.fingerprint,
        agg.count as i64,
        agg.first_ns as i64,
        agg.last_ns as i64,
        agg.message,
        serde_json::to_string(&ops).unwrap_or_default(),
        serde_json::to_string(&examples).unwrap_or_default(),
    ])?;
    Ok(())
}

fn error_groups_in_minute(c: &Connection, k: &ErrorKey) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "SELECT count(*) FROM error_rollups WHERE service=?1 AND minute=?2 AND type<>?3",
    )?
    .query_row(params![&*k.service, k.minute as i64, OTHER_ERRORS], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as usize)
}

fn error_group(c: &Connection, k: &ErrorKey) -> rusqlite::Result<Option<ErrorAgg>> {
    c.prepare_cached(
        "SELECT count,first_ns,last_ns,message,ops,examples FROM error_rollups
         WHERE service=?1 AND minute=?2 AND type=?3 AND fingerprint=?4",
    )?
    .query_row(
        params![&*k.service, k.minute as i64, k.error_type, k.fingerprint],
        error_agg_from,
    )
    .optional()
}

/// Reads columns `count, first_ns, last_ns, message, ops, examples` from index 0 of `r`.
fn error_agg_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<ErrorAgg> {
    let ops: String = r.get(4)?;
    let examples: String = r.get(5)?;
    let examples: Vec<(String, String, u64)> = serde_json::from_str(&examples).unwrap_or_default();
    Ok(ErrorAgg {
        count: r.get::<_, i64>(0)? as u64,
        first_ns: r.get::<_, i64>(1)? as u64,
        last_ns: r.get::<_, i64>(2)? as u64,
        message: r.get(3)?,
        ops: serde_json::from_str(&ops).unwrap_or_default(),
        examples: examples
            .into_iter()
            .filter_map(|(t, s, start_ns)| {
                Some(ErrorExample {
                    trace_id: parse_hex(&t)?,
                    span_id: parse_hex(&s)?,
                    start_ns,
                })
            })
            .collect(),
    })
}

/// One error group rollup row.
#[derive(Debug, Clone)]
pub struct ErrorRow {
    /// Service.
    pub service: String,
    /// Minute.
    pub minute: u64,
    /// Error type.
    pub error_type: String,
    /// Message fingerprint.
    pub fingerprint: String,
    /// Aggregate.
    pub agg: ErrorAgg,
}

/// Error group rollups for minutes in `[from, to)`, optionally for one service.
pub fn error_rows(
    c: &Connection,
    service: Option<&str>,
    from_min: u64,
    to_min: u64,
) -> rusqlite::Result<Vec<ErrorRow>> {
    let mut st = c.prepare_cached(
        "SELECT count,first_ns,last_ns,message,ops,examples,service,minute,type,fingerprint FROM error_rollups
         WHERE minute>=?1 AND minute<?2 AND (?3 IS NULL OR service=?3)",
    )?;
    let rows = st.query_map(params![from_min as i64, to_min as i64, service], |r| {
        Ok(ErrorRow {
            agg: error_agg_from(r)?,
            service: r.get(6)?,
            minute: r.get::<_, i64>(7)? as u64,
            error_type: r.get(8)?,
            fingerprint: r.get(9)?,
        })
    })?;
    rows.collect()
}

fn agg_from(count: i64, errors: i64, sum: i64, rows: i64, hist: &[u8]) -> Agg {
    Agg {
        count: count as u64,
        errors: errors as u64,
        sum_ns: sum as u64,
        rows: rows as u64,
        hist: Histogram::from_bytes(hist).unwrap_or_default(),
    }
}

/// One operation rollup row.
#[derive(Debug, Clone)]
pub struct OpRow {
    /// Service.
    pub service: String,
    /// Minute.
    pub minute: u64,
    /// Span kind.
    pub kind: u8,
    /// Operation name.
    pub name: String,
    /// 0 = from spans, 1 = from agent metrics.
    pub source: u8,
    /// Aggregate.
    pub agg: Agg,
}

/// Operation rollups for minutes in `[from, to)`, optionally for one service.
pub fn op_rows(
    c: &Connection,
    service: Option<&str>,
    from_min: u64,
    to_min: u64,
) -> rusqlite::Result<Vec<OpRow>> {
    let mut st = c.prepare_cached(
        "SELECT service,minute,kind,name,source,count,errors,sum_ns,hist FROM op_rollups
         WHERE minute>=?1 AND minute<?2 AND (?3 IS NULL OR service=?3)",
    )?;
    let rows = st.query_map(params![from_min as i64, to_min as i64, service], |r| {
        let hist: Vec<u8> = r.get(8)?;
        Ok(OpRow {
            service: r.get(0)?,
            minute: r.get::<_, i64>(1)? as u64,
            kind: r.get(2)?,
            name: r.get(3)?,
            source: r.get(4)?,
            agg: agg_from(r.get(5)?, r.get(6)?, r.get(7)?, 0, &hist),
        })
    })?;
    rows.collect()
}

/// Statement rollups: (fingerprint, minute, agg).
pub fn db_rows(
    c: &Connection,
    service: &str,
    from_min: u64,
    to_min: u64,
) -> rusqlite::Result<Vec<(String, Agg)>> {
    let mut st = c.prepare_cached(
        "SELECT fingerprint,count,errors,sum_ns,rows,hist FROM db_rollups
         WHERE service=?1 AND minute>=?2 AND minute<?3",
    )?;
    let rows = st.query_map(params![service, from_min as i64, to_min as i64], |r| {
        let hist: Vec<u8> = r.get(5)?;
        Ok((
            r.get(0)?,
            agg_from(r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, &hist),
        ))
    })?;
    rows.collect()
}

/// Edge rollups: (caller, callee, agg).
pub fn edge_rows(
    c: &Connection,
    from_min: u64,
    to_min: u64,
) -> rusqlite::Result<Vec<(String, String, Agg)>> {
    let mut st = c.prepare_cached(
        "SELECT caller,callee,count,errors,sum_ns,hist FROM edge_rollups WHERE minute>=?1 AND minute<?2",
    )?;
    let rows = st.query_map(params![from_min as i64, to_min as i64], |r| {
        let hist: Vec<u8> = r.get(5)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            agg_from(r.get(2)?, r.get(3)?, r.get(4)?, 0, &hist),
        ))
    })?;
    rows.collect()
}

/// Inserts metric points.
pub fn insert_points(c: &mut Connection, points: &[MetricPoint]) -> rusqlite::Result<()> {
    let tx = c.transaction()?;
    {
        let mut st = tx.prepare_cached(
            "INSERT INTO metric_points(service,name,unit,kind,time_ns,attributes,value,count) VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
        )?;
        for p in points {
            st.execute(params![
                p.service,
                p.name,
                p.unit,
                p.kind,
                p.time_ns as i64,
                p.attributes,
                p.value,
                p.count.map(|c| c as i64)
            ])?;
        }
    }
    tx.commit()
}
