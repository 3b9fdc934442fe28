//! The JSON query API on `--listen`, plus `/metrics` and the OpenAPI document.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value as Json, json};

use crate::histogram::bucket_lower;
use crate::metrics::SelfMetrics;
use crate::model::{KIND_NAMES, STATUS_ERROR, format_ns, hex, kind_from_name, parse_hex};
use crate::store::rollup::{Agg, ErrorAgg, MINUTE_NS};
use crate::store::{ConfigStatus, OpRow, Order, SpanQuery, Store, StoreError};

/// State of the API.
#[derive(Clone)]
pub struct Api {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Self-metrics.
    pub metrics: Arc<SelfMetrics>,
}

/// An API error: a status and a message, sent as `{"error": "…"}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    fn bad(msg: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, msg.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionMismatch(..) => {
                ApiError(StatusCode::PRECONDITION_FAILED, e.to_string())
            }
            StoreError::Closed => ApiError(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            e => ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        }
    }
}

type ApiResult = Result<Response, ApiError>;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Query parameters, checked against the names an endpoint accepts.
struct Params {
    map: HashMap<String, String>,
    attrs: Vec<(String, String)>,
}

impl Params {
    fn parse(raw: Option<String>, allowed: &[&str], allow_attrs: bool) -> Result<Params, ApiError> {
        let raw = raw.unwrap_or_default();
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&raw)
            .map_err(|e| ApiError::bad(format!("invalid query string: {e}")))?;
        let mut map = HashMap::new();
        let mut attrs = Vec::new();
        for (k, v) in pairs {
            if allow_attrs {
                if let Some(a) = k.strip_prefix("attr.") {
                    if a.is_empty() {
                        return Err(ApiError::bad(
                            "attribute filter `attr.` needs a key: attr.KEY=VALUE",
                        ));
                    }
                    attrs.push((a.to_string(), v));
                    continue;
                }
            }
            if !allowed.contains(&k.as_str()) {
                let mut exp: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
                if allow_attrs {
                    exp.push("attr.KEY".into());
                }
                return Err(ApiError::bad(format!(
                    "unknown query parameter `{k}`; expected one of: {}",
                    exp.join(", ")
                )));
            }
            if map.insert(k.clone(), v).is_some() {
                return Err(ApiError::bad(format!("query parameter `{k}` given twice")));
            }
        }
        Ok(Params { map, attrs })
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(String::as_str)
    }

    /// `from`/`to` as Unix nanoseconds: RFC 3339, `now`, or relative like `-15m`.
    fn range(&self) -> Result<(u64, u64), ApiError> {
        let now = now_ns();
        let to = match self.get("to") {
            Some(s) => {
                parse_time(s, now).map_err(|e| ApiError::bad(format!("invalid `to`: {e}")))?
            }
            None => now,
        };
        let from = match self.get("from") {
            Some(s) => {
                parse_time(s, now).map_err(|e| ApiError::bad(format!("invalid `from`: {e}")))?
            }
            None => to.saturating_sub(3600 * 1_000_000_000),
        };
        if from >= to {
            return Err(ApiError::bad(format!(
                "`from` ({}) must be before `to` ({})",
                format_ns(from),
                format_ns(to)
            )));
        }
        Ok((from, to))
    }

    /// `limit`: an integer from 1 to `max`, `default` when absent.
    fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default),
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad(format!(
                    "invalid `limit` {s:?}: expected an integer from 1 to {max}"
                ))),
            },
        }
    }

    fn kind(&self) -> Result<Option<u8>, ApiError> {
        self.get("kind")
            .map(|k| {
                kind_from_name(k).ok_or_else(|| {
                    ApiError::bad(format!(
                        "invalid `kind` {k:?}: expected one of server, client, internal, producer, consumer"
                    ))
                })
            })
            .transpose()
    }
}

/// Parses a time: RFC 3339, `now`, or a duration relative to now (`-15m`, `-2h`, `-1d`).
pub fn parse_time(s: &str, now: u64) -> Result<u64, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let d = humantime::parse_duration(rel)
            .map_err(|e| format!("{s:?} is not a relative time like -15m ({e})"))?;
        return Ok(now.saturating_sub(d.as_nanos() as u64));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
        format!("{s:?} is not a time: expected RFC 3339 (2024-05-01T12:00:00Z), `now` or relative like -15m")
    })?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0))
}

fn ms(ns: f64) -> f64 {
    (ns / 1e6 * 1000.0).round() / 1000.0
}

fn pct(a: &Agg, q: f64) -> Json {
    a.hist
        .quantile(q)
        .map(|v| json!(ms(v)))
        .unwrap_or(Json::Null)
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

fn minutes(from: u64, to: u64) -> (u64, u64) {
    (from / MINUTE_NS, to.div_ceil(MINUTE_NS))
}

/// Drops span-derived rows of operations for which an agent sent RED metrics.
fn prefer_agent(rows: Vec<OpRow>) -> Vec<OpRow> {
    let agent: std::collections::HashSet<(String, u8, String)> = rows
        .iter()
        .filter(|r| r.source == 1)
        .map(|r| (r.service.clone(), r.kind, r.name.clone()))
        .collect();
    if agent.is_empty() {
        return rows;
    }
    rows.into_iter()
        .filter(|r| r.source == 1 || !agent.contains(&(r.service.clone(), r.kind, r.name.clone())))
        .collect()
}

/// Whether a row counts as a request of its service: server/consumer spans when it has any.
fn entry_filter(rows: &[OpRow]) -> impl Fn(&OpRow) -> bool + use<> {
    let with_entry: std::collections::HashSet<String> = rows
        .iter()
        .filter(|r| matches!(r.kind, 2 | 5))
        .map(|r| r.service.clone())
        .collect();
    move |r: &OpRow| !with_entry.contains(&r.service) || matches!(r.kind, 2 | 5)
}

/// Which rows an operation view covers: one operation (`name`, and `kind` if given), or without
/// a name the spans of `kind`, or the service's requests (see [`entry_filter`]).
fn op_filter(
    name: Option<String>,
    kind: Option<u8>,
    rows: &[OpRow],
) -> impl Fn(&OpRow) -> bool + use<> {
    let entry = entry_filter(rows);
    move |r: &OpRow| match &name {
        Some(n) => n == &r.name && kind.is_none_or(|k| k == r.kind),
        None => match kind {
            Some(k) => k == r.kind,
            None => entry(r),
        },
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn health(State(api): State<Api>, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[], false)?;
    let st = api.store.stats();
    Ok(axum::Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "spans": st.spans,
        "segments": st.segments,
        "sealed_spans": st.segment_spans,
        "disk_bytes": st.disk_bytes,
        "queue_depth": st.queue_depth,
    }))
    .into_response())
}

async fn services(State(api): State<Api>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["from", "to"], false)?;
    let (from, to) = p.range()?;
    let secs = (to - from) as f64 / 1e9;
    blocking(move || {
        let (fm, tm) = minutes(from, to);
        let rows = prefer_agent(api.store.op_rows(None, fm, tm)?);
        let entry = entry_filter(&rows);
        let mut by: BTreeMap<String, Agg> = BTreeMap::new();
        for r in &rows {
            let a = by.entry(r.service.clone()).or_default();
            if entry(r) {
                a.merge(&r.agg);
            }
        }
        let list: Vec<Json> = by
            .iter()
            .map(|(s, a)| {
                json!({
                    "service": s,
                    "count": a.count,
                    "throughput_per_s": a.count as f64 / secs,
                    "errors": a.errors,
                    "error_rate": ratio(a.errors, a.count),
                    "p50_ms": pct(a, 0.5), "p95_ms": pct(a, 0.95), "p99_ms": pct(a, 0.99),
                })
            })
            .collect();
        Ok(
            axum::Json(json!({ "from": format_ns(from), "to": format_ns(to), "services": list }))
                .into_response(),
        )
    })
    .await
}

async fn operations(
    State(api): State<Api>,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q, &["from", "to", "kind"], false)?;
    let (from, to) = p.range()?;
    let kind = p.kind()?;
    let secs = (to - from) as f64 / 1e9;
    blocking(move || {
        let (fm, tm) = minutes(from, to);
        let rows = prefer_agent(api.store.op_rows(Some(&service), fm, tm)?);
        let mut by: BTreeMap<(u8, String), Agg> = BTreeMap::new();
        for r in rows.iter().filter(|r| kind.is_none_or(|k| k == r.kind)) {
            by.entry((r.kind, r.name.clone()))
                .or_default()
                .merge(&r.agg);
        }
        let total: u64 = by.values().map(|a| a.sum_ns).sum();
        let mut list: Vec<(u64, Json)> = by
            .iter()
            .map(|((k, n), a)| {
                (
                    a.sum_ns,
                    json!({
                        "kind": KIND_NAMES[*k as usize % 6],
                        "name": n,
                        "count": a.count,
                        "throughput_per_s": a.count as f64 / secs,
                        "errors": a.errors,
                        "error_rate": ratio(a.errors, a.count),
                        "avg_ms": ms(a.sum_ns as f64 / a.count.max(1) as f64),
                        "p50_ms": pct(a, 0.5), "p95_ms": pct(a, 0.95), "p99_ms": pct(a, 0.99),
                        "total_ms": ms(a.sum_ns as f64),
                        "time_share": ratio(a.sum_ns, total),
                    }),
                )
            })
            .collect();
        list.sort_by_key(|x| std::cmp::Reverse(x.0));
        Ok(axum::Json(json!({
            "service": service, "from": format_ns(from), "to": format_ns(to),
            "operations": list.into_iter().map(|x| x.1).collect::<Vec<_>>(),
        }))
        .into_response())
    })
    .await
}

async fn timeseries(
    State(api): State<Api>,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q, &["from", "to", "step", "name", "kind"], false)?;
    let (from, to) = p.range()?;
    let kind = p.kind()?;
    let name = p.get("name").map(str::to_string);
    let step = match p.get("step") {
        Some(s) => {
            let d = humantime::parse_duration(s).map_err(|e| {
                ApiError::bad(format!(
                    "invalid `step` {s:?}: expected a duration like 1m or 5m ({e})"
                ))
            })?;
            let n = d.as_nanos() as u64;
            if n < MINUTE_NS || n % MINUTE_NS != 0 {
                return Err(ApiError::bad(format!(
                    "invalid `step` {s:?}: must be a whole number of minutes, at least 1m"
                )));
            }
            n
        }
        None => ((to - from) / 60).div_ceil(MINUTE_NS).max(1) * MINUTE_NS,
    };
    let buckets = (to - from).div_ceil(step);
    if buckets > 10_000 {
        return Err(ApiError::bad(format!(
            "`step` gives {buckets} buckets; at most 10000 are allowed"
        )));
    }
    blocking(move || {
        let start = from / MINUTE_NS * MINUTE_NS;
        let (fm, tm) = minutes(from, to);
        let rows = prefer_agent(api.store.op_rows(Some(&service), fm, tm)?);
        let keep = op_filter(name.clone(), kind, &rows);
        let mut series: Vec<Agg> = vec![Agg::default(); buckets as usize + 1];
        for r in rows.iter().filter(|r| keep(r)) {
            let t = r.minute * MINUTE_NS;
            let i = (t.saturating_sub(start) / step) as usize;
            if let Some(b) = series.get_mut(i) {
                b.merge(&r.agg);
            }
        }
        series.truncate(buckets as usize);
        let step_s = step as f64 / 1e9;
        let points: Vec<Json> = series
            .iter()
            .enumerate()
            .map(|(i, a)| {
                json!({
                    "time": format_ns(start + i as u64 * step),
                    "count": a.count,
                    "throughput_per_s": a.count as f64 / step_s,
                    "errors": a.errors,
                    "error_rate": ratio(a.errors, a.count),
                    "p50_ms": pct(a, 0.5), "p95_ms": pct(a, 0.95), "p99_ms": pct(a, 0.99),
                })
            })
            .collect();
        Ok(axum::Json(json!({
            "service": service, "name": name, "step_seconds": step_s, "points": points,
        }))
        .into_response())
    })
    .await
}

async fn histogram(
    State(api): State<Api>,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q, &["from", "to", "name", "kind"], false)?;
    let (from, to) = p.range()?;
    let kind = p.kind()?;
    let name = p.get("name").map(str::to_string);
    blocking(move || {
        let (fm, tm) = minutes(from, to);
        let rows = prefer_agent(api.store.op_rows(Some(&service), fm, tm)?);
        let keep = op_filter(name.clone(), kind, &rows);
        let mut all = Agg::default();
        for r in rows.iter().filter(|r| keep(r)) {
            all.merge(&r.agg);
        }
        let zero = all.hist.zero_count();
        let zero_bucket =
            (zero > 0).then(|| json!({"lower_ms": 0.0, "upper_ms": 0.0, "count": zero}));
        let buckets: Vec<Json> = zero_bucket
            .into_iter()
            .chain(all.hist.buckets().map(|(i, count)| {
                json!({
                    "lower_ms": ms(bucket_lower(i)),
                    "upper_ms": ms(bucket_lower(i + 1)),
                    "count": count,
                })
            }))
            .collect();
        Ok(axum::Json(json!({
            "service": service, "name": name, "kind": kind.map(|k| KIND_NAMES[k as usize % 6]),
            "from": format_ns(from), "to": format_ns(to), "count": all.count,
            "p50_ms": pct(&all, 0.5), "p95_ms": pct(&all, 0.95), "p99_ms": pct(&all, 0.99),
            "buckets": buckets,
        }))
        .into_response())
    })
    .await
}

async fn errors(State(api): State<Api>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["from", "to", "service", "limit"], false)?;
    let service = p.get("service").map(str::to_string);
    error_groups(api, service, &p).await
}

async fn service_errors(
    State(api): State<Api>,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q, &["from", "to", "limit"], false)?;
    error_groups(api, Some(service), &p).await
}

/// Error groups over the range, merged across minutes, most frequent first.
async fn error_groups(api: Api, service: Option<String>, p: &Params) -> ApiResult {
    let (from, to) = p.range()?;
    let limit = p.limit(100, 1000)?;
    blocking(move || {
        let (fm, tm) = minutes(from, to);
        let mut groups: HashMap<(String, String, String), ErrorAgg> = HashMap::new();
        for r in api.store.error_rows(service.as_deref(), fm, tm)? {
            groups
                .entry((r.service, r.error_type, r.fingerprint))
                .or_default()
                .merge(&r.agg);
        }
        let total: u64 = groups.values().map(|a| a.count).sum();
        let mut list: Vec<_> = groups.into_iter().collect();
        list.sort_by(|a, b| (b.1.count, b.1.last_ns, &a.0).cmp(&(a.1.count, a.1.last_ns, &b.0)));
        let truncated = list.len() > limit;
        let list: Vec<Json> = list
            .iter()
            .take(limit)
            .map(|(k, a)| error_group_json(k, a))
            .collect();
        Ok(axum::Json(json!({
            "service": service, "from": format_ns(from), "to": format_ns(to),
            "total": total, "truncated": truncated, "groups": list,
        }))
        .into_response())
    })
    .await
}

fn error_group_json(
    (service, error_type, fingerprint): &(String, String, String),
    a: &ErrorAgg,
) -> Json {
    let mut ops = a.ops.clone();
    ops.sort_by(|x, y| y.2.cmp(&x.2).then_with(|| x.1.cmp(&y.1)));
    json!({
        "service": service,
        "type": error_type,
        "fingerprint": fingerprint,
        "message": a.message,
        "count": a.count,
        "first_seen": format_ns(a.first_ns),
        "last_seen": format_ns(a.last_ns),
        "first_seen_unix_nano": a.first_ns,
        "last_seen_unix_nano": a.last_ns,
        "operations": ops.iter().map(|(k, n, c)| json!({
            "kind": KIND_NAMES[*k as usize % 6], "name": n, "count": c,
        })).collect::<Vec<_>>(),
        "examples": a.examples.iter().map(|e| json!({
            "trace_id": hex(&e.trace_id), "span_id": hex(&e.span_id), "start": format_ns(e.start_ns),
        })).collect::<Vec<_>>(),
    })
}

async fn traces(State(api): State<Api>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(
        q,
        &[
            "service",
            "name",
            "kind",
            "min_duration_ms",
            "status",
            "from",
            "to",
            "limit",
            "sort",
        ],
        true,
    )?;
    let (from, to) = p.range()?;
    let min_duration_ns = match p.get("min_duration_ms") {
        Some(s) => {
            let v: f64 = s.parse().map_err(|_| {
                ApiError::bad(format!(
                    "invalid `min_duration_ms` {s:?}: expected a number of milliseconds"
                ))
            })?;
            if !(v >= 0.0 && v.is_finite()) {
                return Err(ApiError::bad(format!(
                    "invalid `min_duration_ms` {s:?}: must be zero or more"
                )));
            }
            (v * 1e6) as u64
        }
        None => 0,
    };
    let status = match p.get("status") {
        None => None,
        Some("error") => Some(STATUS_ERROR),
        Some("ok") => Some(crate::model::STATUS_OK),
        Some("unset") => Some(crate::model::STATUS_UNSET),
        Some(s) => {
            return Err(ApiError::bad(format!(
                "invalid `status` {s:?}: expected ok, error or unset"
            )));
        }
    };
    let limit = p.limit(20, 1000)?;
    let order = match p.get("sort") {
        None | Some("newest") => Order::Newest,
        Some("slowest") => Order::Slowest,
        Some(s) => {
            return Err(ApiError::bad(format!(
                "invalid `sort` {s:?}: expected newest or slowest"
            )));
        }
    };
    let q = SpanQuery {
        service: p.get("service").map(str::to_string),
        name: p.get("name").map(str::to_string),
        kind: p.kind()?,
        min_duration_ns,
        status,
        attrs: p.attrs.clone(),
        from_ns: from,
        to_ns: to,
        limit,
        order,
    };
    blocking(move || {
        let spans = api.store.search(&q)?;
        let list: Vec<Json> = spans
            .iter()
            .map(|s| {
                let mut j = s.to_json();
                j["trace_url"] = json!(format!("/api/v1/traces/{}", hex(&s.trace_id)));
                j
            })
            .collect();
        Ok(axum::Json(json!({ "traces": list })).into_response())
    })
    .await
}

async fn trace(State(api): State<Api>, Path(id): Path<String>, RawQuery(q): RawQuery) -> ApiResult {
    Params::parse(q, &[], false)?;
    let tid = parse_hex::<16>(&id.to_ascii_lowercase())
        .ok_or_else(|| ApiError::bad(format!("invalid trace id {id:?}: expected 32 hex digits")))?;
    if tid == [0; 16] {
        return Err(ApiError::bad("invalid trace id: all zero"));
    }
    blocking(move || {
        let spans = api.store.trace(tid)?;
        if spans.is_empty() {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("trace {id} not found"),
            ));
        }
        // depth from parent links
        let ids: HashMap<[u8; 8], usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i))
            .collect();
        let depth = |mut i: usize| {
            let mut d = 0;
            while let Some(p) = spans[i].parent_span_id.and_then(|p| ids.get(&p)) {
                d += 1;
                i = *p;
                if d > 1000 {
                    break;
                }
            }
            d
        };
        let start = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
        let end = spans
            .iter()
            .map(|s| s.start_ns + s.duration_ns)
            .max()
            .unwrap_or(0);
        let mut services: Vec<&str> = spans.iter().map(|s| &*s.service).collect();
        services.sort_unstable();
        services.dedup();
        let root = spans
            .iter()
            .find(|s| s.parent_span_id.is_none_or(|p| !ids.contains_key(&p)));
        let list: Vec<Json> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut j = s.to_json();
                j["depth"] = json!(depth(i));
                j["offset_ms"] = json!(ms((s.start_ns - start) as f64));
                j
            })
            .collect();
        Ok(axum::Json(json!({
            "trace_id": hex(&tid),
            "root": root.map(|r| json!({"service": &*r.service, "name": r.name})),
            "start": format_ns(start),
            "duration_ms": ms((end - start) as f64),
            "services": services,
            "span_count": spans.len(),
            "spans": list,
        }))
        .into_response())
    })
    .await
}

async fn queries(
    State(api): State<Api>,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q, &["from", "to"], false)?;
    let (from, to) = p.range()?;
    blocking(move || {
        let (fm, tm) = minutes(from, to);
        let rows = api.store.db_rows(&service, fm, tm)?;
        let mut list: Vec<(&String, &Agg)> = rows.iter().collect();
        list.sort_by_key(|x| std::cmp::Reverse(x.1.sum_ns));
        let list: Vec<Json> = list
            .into_iter()
            .map(|(f, a)| {
                json!({
                    "fingerprint": f,
                    "calls": a.count,
                    "errors": a.errors,
                    "total_ms": ms(a.sum_ns as f64),
                    "avg_ms": ms(a.sum_ns as f64 / a.count.max(1) as f64),
                    "p95_ms": pct(a, 0.95),
                    "rows": a.rows,
                })
            })
            .collect();
        Ok(axum::Json(json!({ "service": service, "queries": list })).into_response())
    })
    .await
}

async fn metrics_api(
    State(api): State<Api>,
    Path(service): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let p = Params::parse(q, &["from", "to", "name"], false)?;
    let (from, to) = p.range()?;
    let name = p.get("name").map(str::to_string);
    blocking(move || match name {
        None => {
            let names = api.store.metric_names(&service)?;
            Ok(axum::Json(json!({ "service": service, "metrics": names })).into_response())
        }
        Some(name) => {
            let pts = api.store.metric_points(&service, &name, from, to)?;
            let mut series: BTreeMap<String, Vec<Json>> = BTreeMap::new();
            let mut kind = "";
            let mut unit = String::new();
            for p in &pts {
                kind = p.kind;
                unit.clone_from(&p.unit);
                series.entry(p.attributes.clone()).or_default().push(json!({
                    "time": format_ns(p.time_ns),
                    "value": p.value,
                    "count": p.count,
                }));
            }
            let series: Vec<Json> = series
                .into_iter()
                .map(|(a, pts)| {
                    json!({
                        "attributes": serde_json::from_str::<Json>(&a).unwrap_or(Json::Null),
                        "points": pts,
                    })
                })
                .collect();
            Ok(axum::Json(json!({
                "service": service, "name": name, "kind": kind, "unit": unit, "series": series,
            }))
            .into_response())
        }
    })
    .await
}

async fn dependencies(State(api): State<Api>, RawQuery(q): RawQuery) -> ApiResult {
    let p = Params::parse(q, &["from", "to"], false)?;
    let (from, to) = p.range()?;
    blocking(move || {
        let (fm, tm) = minutes(from, to);
        let rows = api.store.edge_rows(fm, tm)?;
        let mut list: Vec<_> = rows.into_iter().collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        let edges: Vec<Json> = list
            .iter()
            .map(|((c, d), a)| {
                json!({
                    "caller": c, "callee": d, "calls": a.count, "errors": a.errors,
                    "error_rate": ratio(a.errors, a.count), "p95_ms": pct(a, 0.95),
                })
            })
            .collect();
        Ok(axum::Json(json!({ "edges": edges })).into_response())
    })
    .await
}

fn etag(v: u64) -> String {
    format!("\"{v}\"")
}

fn config_doc(service: &str, version: u64, body: &str, updated: u64) -> Json {
    json!({
        "service": service,
        "version": version,
        "config": serde_json::from_str::<Json>(body).unwrap_or(json!({})),
        "updated": if updated == 0 { Json::Null } else { json!(format_ns(updated)) },
    })
}

fn check_service(s: &str) -> Result<(), ApiError> {
    if s.is_empty() || s.len() > 256 {
        return Err(ApiError::bad("service name must be 1 to 256 bytes"));
    }
    Ok(())
}

async fn get_config(
    State(api): State<Api>,
    Path(service): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult {
    Params::parse(q, &[], false)?;
    check_service(&service)?;
    blocking(move || {
        let e = api.store.get_config(&service)?;
        let (v, body, up) =
            e.map(|e| (e.version, e.body, e.updated_ns))
                .unwrap_or((0, "{}".into(), 0));
        let tag = etag(v);
        let inm = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|h| h.to_str().ok());
        if inm.is_some_and(|h| {
            h.split(',')
                .any(|t| t.trim().trim_start_matches("W/") == tag || t.trim() == "*")
        }) {
            return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
        }
        Ok((
            [(header::ETAG, tag)],
            axum::Json(config_doc(&service, v, &body, up)),
        )
            .into_response())
    })
    .await
}

async fn put_config(
    State(api): State<Api>,
    Path(service): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult {
    Params::parse(q, &[], false)?;
    check_service(&service)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content type {ct:?}: expected application/json"),
        ));
    }
    let v: Json = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))?;
    // accept either the bare configuration object or {"config": {...}}
    let cfg = match v {
        Json::Object(mut m) if m.len() == 1 && m.get("config").is_some_and(Json::is_object) => {
            m.remove("config").unwrap_or(json!({}))
        }
        Json::Object(m) => Json::Object(m),
        _ => {
            return Err(ApiError::bad(
                "configuration must be a JSON object of plugin name to settings",
            ));
        }
    };
    let if_match = match headers.get(header::IF_MATCH).and_then(|h| h.to_str().ok()) {
        None => None,
        Some(h) => Some(h.trim().trim_matches('"').parse::<u64>().map_err(|_| {
            ApiError(
                StatusCode::PRECONDITION_FAILED,
                format!("If-Match {h:?} is not a version ETag like \"3\""),
            )
        })?),
    };
    blocking(move || {
        let e = api.store.put_config(&service, &cfg.to_string(), if_match)?;
        Ok((
            [(header::ETAG, etag(e.version))],
            axum::Json(config_doc(&service, e.version, &e.body, e.updated_ns)),
        )
            .into_response())
    })
    .await
}

async fn post_config_status(
    State(api): State<Api>,
    Path(service): Path<String>,
    body: Bytes,
) -> ApiResult {
    check_service(&service)?;
    let st: ConfigStatus = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid status report: {e}; expected {{\"instance\": \"…\", \"version\": N, \"error\": null}}")))?;
    blocking(move || {
        api.store.put_config_status(&service, &st)?;
        Ok(StatusCode::NO_CONTENT.into_response())
    })
    .await
}

async fn get_config_status(State(api): State<Api>, Path(service): Path<String>) -> ApiResult {
    blocking(move || {
        let list = api.store.config_status(&service)?;
        Ok(axum::Json(json!({ "service": service, "agents": list })).into_response())
    })
    .await
}

async fn prometheus(State(api): State<Api>) -> Response {
    let st = api.store.stats();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        api.metrics.render(&st),
    )
        .into_response()
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}

async fn not_found() -> ApiError {
    ApiError(
        StatusCode::NOT_FOUND,
        "not found; the API is described at /api/v1/openapi.json".into(),
    )
}

/// `/` opens the dashboard.
async fn index() -> Response {
    axum::response::Redirect::temporary("/ui/").into_response()
}

/// The API router.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/v1/health", get(health))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/services", get(services))
        .route("/api/v1/services/{service}/operations", get(operations))
        .route("/api/v1/services/{service}/timeseries", get(timeseries))
        .route("/api/v1/services/{service}/histogram", get(histogram))
        .route("/api/v1/services/{service}/errors", get(service_errors))
        .route("/api/v1/services/{service}/queries", get(queries))
        .route("/api/v1/services/{service}/metrics", get(metrics_api))
        .route("/api/v1/traces", get(traces))
        .route("/api/v1/traces/{trace_id}", get(trace))
        .route("/api/v1/errors", get(errors))
        .route("/api/v1/dependencies", get(dependencies))
        .route("/api/v1/config/{service}", get(get_config).put(put_config))
        .route(
            "/api/v1/config/{service}/status",
            post(post_config_status).get(get_config_status),
        )
        .route("/metrics", get(prometheus))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(1 << 20))
        .with_state(api)
}
