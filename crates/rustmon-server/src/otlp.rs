//! Decoding OTLP requests (protobuf or JSON, optionally gzip) and converting metrics.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
use prost::Message;
use serde_json::Value as Json;

use crate::histogram::Histogram;
use crate::model::{MetricPoint, UNKNOWN_SERVICE, any_value, kind_from_name};
use crate::store::rollup::{MINUTE_NS, OpKey, Rollups};

/// Body format of an OTLP/HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The content type to answer with.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Why a request body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Content type not protobuf or JSON.
    #[error("unsupported content type {0:?}: expected application/x-protobuf or application/json")]
    UnsupportedMediaType(String),
    /// Content encoding not gzip or identity.
    #[error("unsupported content encoding {0:?}: expected gzip or identity")]
    UnsupportedEncoding(String),
    /// Body larger than the limit (after decompression).
    #[error("request body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    /// Body is not valid gzip.
    #[error("invalid gzip body: {0}")]
    BadGzip(String),
    /// Body is not a valid message.
    #[error("malformed {kind} {what}: {msg}")]
    Malformed {
        /// `protobuf` or `JSON`.
        kind: &'static str,
        /// Which request.
        what: &'static str,
        /// Decoder's message.
        msg: String,
    },
}

/// Chooses the encoding from a `Content-Type` header value.
pub fn encoding_of(content_type: Option<&str>) -> Result<Encoding, DecodeError> {
    let ct = content_type.unwrap_or("");
    let base = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(DecodeError::UnsupportedMediaType(ct.to_string())),
    }
}

/// Decompresses `body` per `Content-Encoding`, refusing more than `max` bytes of output.
pub fn decompress(
    body: &[u8],
    content_encoding: Option<&str>,
    max: usize,
) -> Result<Option<Vec<u8>>, DecodeError> {
    match content_encoding.map(|s| s.trim().to_ascii_lowercase()) {
        None => Ok(None),
        Some(e) if e.is_empty() || e == "identity" => Ok(None),
        Some(e) if e == "gzip" || e == "x-gzip" => {
            let mut out = Vec::with_capacity((body.len() * 4).min(max));
            let mut d = flate2::read::GzDecoder::new(body).take(max as u64 + 1);
            d.read_to_end(&mut out)
                .map_err(|e| DecodeError::BadGzip(e.to_string()))?;
            if out.len() > max {
                return Err(DecodeError::TooLarge(max));
            }
            Ok(Some(out))
        }
        Some(e) => Err(DecodeError::UnsupportedEncoding(e)),
    }
}

/// Decodes a trace export request.
pub fn decode_traces(enc: Encoding, body: &[u8]) -> Result<ExportTraceServiceRequest, DecodeError> {
    match enc {
        Encoding::Protobuf => {
            ExportTraceServiceRequest::decode(body).map_err(|e| DecodeError::Malformed {
                kind: "protobuf",
                what: "ExportTraceServiceRequest",
                msg: e.to_string(),
            })
        }
        Encoding::Json => serde_json::from_slice(body).map_err(|e| DecodeError::Malformed {
            kind: "JSON",
            what: "ExportTraceServiceRequest",
            msg: e.to_string(),
        }),
    }
}

/// Decodes a metrics export request.
pub fn decode_metrics(
    enc: Encoding,
    body: &[u8],
) -> Result<ExportMetricsServiceRequest, DecodeError> {
    match enc {
        Encoding::Protobuf => {
            ExportMetricsServiceRequest::decode(body).map_err(|e| DecodeError::Malformed {
                kind: "protobuf",
                what: "ExportMetricsServiceRequest",
                msg: e.to_string(),
            })
        }
        Encoding::Json => serde_json::from_slice(body).map_err(|e| DecodeError::Malformed {
            kind: "JSON",
            what: "ExportMetricsServiceRequest",
            msg: e.to_string(),
        }),
    }
}

/// Name of the metric through which an agent sends RED rollups computed before sampling.
///
/// A delta histogram (explicit or exponential) of operation durations, unit `s`, `ms`, `us`
/// or `ns`, with attributes `span.kind` (`server`, `client`, …), `span.name` and
/// `otel.status_code` (`ERROR` counts as an error). When present for an operation, it
/// replaces the rollups computed from that operation's (possibly sampled) spans.
pub const AGENT_RED_METRIC: &str = "rustmon.operation.duration";

/// Converted metrics.
#[derive(Debug, Default)]
pub struct ConvertedMetrics {
    /// Points to store.
    pub points: Vec<MetricPoint>,
    /// RED rollups from [`AGENT_RED_METRIC`].
    pub rollups: Rollups,
    /// Points rejected.
    pub rejected: u64,
    /// Why the first was rejected.
    pub error: Option<String>,
}

fn attrs_key(kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> String {
    let m: BTreeMap<&str, Json> = kvs
        .iter()
        .map(|kv| (kv.key.as_str(), any_value(kv.value.clone()).to_json()))
        .collect();
    serde_json::to_string(&m).unwrap_or_else(|_| "{}".into())
}

fn unit_scale(unit: &str) -> f64 {
    match unit {
        "s" => 1e9,
        "ms" => 1e6,
        "us" | "µs" => 1e3,
        "ns" => 1.0,
        _ => 1e9,
    }
}

fn red_key(
    service: &Arc<str>,
    kvs: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    t: u64,
) -> Option<(OpKey, bool)> {
    let mut kind = None;
    let mut name = None;
    let mut err = false;
    for kv in kvs {
        let v = any_value(kv.value.clone());
        let s = match &v {
            crate::model::AttrValue::Str(s) => s.clone(),
            _ => continue,
        };
        match kv.key.as_str() {
            "span.kind" => kind = kind_from_name(&s),
            "span.name" => name = Some(s),
            "otel.status_code" => err = s.eq_ignore_ascii_case("error"),
            _ => {}
        }
    }
    Some((
        OpKey {
            minute: t / MINUTE_NS,
            service: service.clone(),
            kind: kind?,
            name: name?,
        },
        err,
    ))
}

/// Converts a metrics export request.
pub fn convert_metrics(req: ExportMetricsServiceRequest) -> ConvertedMetrics {
    let mut out = ConvertedMetrics::default();
    for rm in req.resource_metrics {
        let mut service: Arc<str> = Arc::from(UNKNOWN_SERVICE);
        for kv in rm.resource.map(|r| r.attributes).unwrap_or_default() {
            if kv.key == "service.name" {
                if let crate::model::AttrValue::Str(s) = any_value(kv.value) {
                    if !s.is_empty() {
                        service = Arc::from(s.as_str());
                    }
                }
            }
        }
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                if m.name.is_empty() {
                    out.rejected += 1;
                    out.error
                        .get_or_insert_with(|| "metric with an empty name".to_string());
                    continue;
                }
                let red = m.name == AGENT_RED_METRIC;
                let scale = unit_scale(&m.unit);
                let mut push =
                    |kind: &'static str, t: u64, attrs: String, value: f64, count: Option<u64>| {
                        out.points.push(MetricPoint {
                            service: service.to_string(),
                            name: m.name.clone(),
                            unit: m.unit.clone(),
                            kind,
                            time_ns: t,
                            attributes: attrs,
                            value,
                            count,
                        });
                    };
                let num = |v: Option<number_data_point::Value>| match v {
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    None => 0.0,
                };
                match m.data {
                    Some(Data::Gauge(g)) => {
                        for p in g.data_points {
                            push(
                                "gauge",
                                p.time_unix_nano,
                                attrs_key(&p.attributes),
                                num(p.value),
                                None,
                            );
                        }
                    }
                    Some(Data::Sum(s)) => {
                        for p in s.data_points {
                            push(
                                "sum",
                                p.time_unix_nano,
                                attrs_key(&p.attributes),
                                num(p.value),
                                None,
                            );
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        let delta = h.aggregation_temporality == 1;
                        for p in h.data_points {
                            if red && delta {
                                if let Some((k, err)) =
                                    red_key(&service, &p.attributes, p.time_unix_nano)
                                {
                                    let mut hist = Histogram::new();
                                    for (i, &c) in p.bucket_counts.iter().enumerate() {
                                        let lo = if i == 0 {
                                            0.0
                                        } else {
                                            p.explicit_bounds.get(i - 1).copied().unwrap_or(0.0)
                                        };
                                        let hi =
                                            p.explicit_bounds.get(i).copied().unwrap_or(lo * 2.0);
                                        let mid =
                                            if lo > 0.0 { (lo * hi).sqrt() } else { hi / 2.0 };
                                        hist.record_n(mid * scale, c);
                                    }
                                    let a = out.rollups.ops.entry(k);
                                    a.count += p.count;
                                    if err {
                                        a.errors += p.count;
                                    }
                                    a.sum_ns += (p.sum.unwrap_or(0.0) * scale) as u64;
                                    a.hist.merge(&hist);
                                }
                            }
                            push(
                                "histogram",
                                p.time_unix_nano,
                                attrs_key(&p.attributes),
                                p.sum.unwrap_or(0.0),
                                Some(p.count),
                            );
                        }
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        let delta = h.aggregation_temporality == 1;
                        for p in h.data_points {
                            if red && delta {
                                if let Some((k, err)) =
                                    red_key(&service, &p.attributes, p.time_unix_nano)
                                {
                                    let mut hist = Histogram::new();
                                    let base = 2f64.powf(2f64.powi(-p.scale));
                                    if let Some(b) = &p.positive {
                                        for (i, &c) in b.bucket_counts.iter().enumerate() {
                                            let idx = b.offset as f64 + i as f64;
                                            let mid = base.powf(idx + 0.5);
                                            hist.record_n(mid * scale, c);
                                        }
                                    }
                                    hist.record_n(0.0, p.zero_count);
                                    let a = out.rollups.ops.entry(k);
                                    a.count += p.count;
                                    if err {
                                        a.errors += p.count;
                                    }
                                    a.sum_ns += (p.sum.unwrap_or(0.0) * scale) as u64;
                                    a.hist.merge(&hist);
                                }
                            }
                            push(
                                "exponential_histogram",
                                p.time_unix_nano,
                                attrs_key(&p.attributes),
                                p.sum.unwrap_or(0.0),
                                Some(p.count),
                            );
                        }
                    }
                    Some(Data::Summary(s)) => {
                        for p in s.data_points {
                            push(
                                "summary",
                                p.time_unix_nano,
                                attrs_key(&p.attributes),
                                p.sum,
                                Some(p.count),
                            );
                        }
                    }
                    None => {
                        out.rejected += 1;
                        out.error
                            .get_or_insert_with(|| format!("metric {:?} has no data", m.name));
                    }
                }
            }
        }
    }
    out
}
