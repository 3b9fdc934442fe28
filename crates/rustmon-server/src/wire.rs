//! Decoding an OTLP/protobuf `ExportTraceServiceRequest` straight into [`SpanRecord`]s.
//!
//! Decoding into the prost types first and converting them after cost about half of the
//! collector's ingest CPU in the load benchmark: every span, attribute and value was built twice,
//! and the growing `Vec<Span>` of a 1000-span batch (~280 KB) kept taking fresh pages from the
//! kernel. This decoder reads the wire format once and builds only what is stored.
//!
//! It accepts and refuses exactly what `ExportTraceServiceRequest::decode` followed by
//! [`convert_traces`](crate::model::convert_traces) does, with the same result (the tests and
//! the fuzz target compare the two): fields it does not store (links, scopes, schema URLs, entity
//! references) are still checked as prost would check them, a singular message field that
//! occurs more than once merges, and rare shapes (array and map values) go through prost.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{AnyValue, EntityRef, InstrumentationScope};
use opentelemetry_proto::tonic::trace::v1::span::Link;
use prost::Message;

use crate::model::{
    AttrValue, Attrs, Converted, Key, STATUS_UNSET, SpanEvent, SpanRecord, UNKNOWN_SERVICE,
    add_fingerprint, any_value, hex,
};

/// Why a request is not a valid `ExportTraceServiceRequest`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(&'static str);

type Result<T> = std::result::Result<T, WireError>;

/// Nesting allowed for skipped groups, as prost's recursion limit.
const MAX_DEPTH: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over one message's fields.
struct Fields<'a> {
    buf: &'a [u8],
    /// Nesting of the message, which counts towards the recursion limit as in prost.
    depth: u32,
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some((&b, rest)) = self.buf.split_first() else {
                break;
            };
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                // the tenth byte may only hold the top bit of a u64
                if i == 9 && b >= 2 {
                    break;
                }
                return Ok(v);
            }
        }
        Err(WireError("invalid varint"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        if n > self.buf.len() as u64 {
            return Err(WireError("buffer underflow"));
        }
        let (a, b) = self.buf.split_at(n as usize);
        self.buf = b;
        Ok(a)
    }

    /// The next field's tag and wire type, or `None` at the end.
    fn next(&mut self) -> Result<Option<(u32, u8)>> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(WireError("invalid key value"));
        }
        let wt = (key & 7) as u8;
        if wt > FIXED32 {
            return Err(WireError("invalid wire type value"));
        }
        let tag = (key >> 3) as u32;
        if tag == 0 {
            return Err(WireError("invalid tag value: 0"));
        }
        Ok(Some((tag, wt)))
    }

    /// The value of a field of wire type `wt`, which must be `want`.
    fn expect(&mut self, wt: u8, want: u8) -> Result<()> {
        if wt == want {
            Ok(())
        } else {
            Err(WireError("invalid wire type"))
        }
    }

    fn u64(&mut self, wt: u8) -> Result<u64> {
        self.expect(wt, VARINT)?;
        self.varint()
    }

    fn fixed64(&mut self, wt: u8) -> Result<u64> {
        self.expect(wt, FIXED64)?;
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    }

    fn bytes(&mut self, wt: u8) -> Result<&'a [u8]> {
        self.expect(wt, LEN)?;
        let n = self.varint()?;
        self.take(n)
    }

    fn str(&mut self, wt: u8) -> Result<&'a str> {
        std::str::from_utf8(self.bytes(wt)?)
            .map_err(|_| WireError("invalid string value: data is not UTF-8 encoded"))
    }

    /// Skips a field nobody reads, as prost does (groups included).
    fn skip(&mut self, tag: u32, wt: u8) -> Result<()> {
        self.skip_at(tag, wt, self.depth)
    }

    fn skip_at(&mut self, tag: u32, wt: u8, depth: u32) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(WireError("recursion limit reached"));
        }
        match wt {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            FIXED32 => self.take(4).map(drop),
            LEN => {
                let n = self.varint()?;
                self.take(n).map(drop)
            }
            START_GROUP => loop {
                match self.next()? {
                    Some((t, END_GROUP)) if t == tag => return Ok(()),
                    Some((_, END_GROUP)) => return Err(WireError("unexpected end group tag")),
                    Some((t, w)) => self.skip_at(t, w, depth + 1)?,
                    None => return Err(WireError("buffer underflow")),
                }
            },
            _ => Err(WireError("unexpected end group tag")),
        }
    }
}

fn fields(buf: &[u8], depth: u32) -> Fields<'_> {
    Fields { buf, depth }
}

/// Checks a message the collector does not store by decoding it with prost.
fn check<M: Message + Default>(buf: &[u8]) -> Result<()> {
    M::decode(buf)
        .map(drop)
        .map_err(|_| WireError("invalid nested message"))
}

/// Decodes an `ExportTraceServiceRequest`, rejecting spans as
/// [`convert_traces`](crate::model::convert_traces) does.
pub fn decode_traces(body: &[u8]) -> Result<Converted> {
    let mut resource_spans = Vec::new();
    let mut f = fields(body, 0);
    while let Some((tag, wt)) = f.next()? {
        match tag {
            1 => resource_spans.push(f.bytes(wt)?),
            _ => f.skip(tag, wt)?,
        }
    }
    let mut out = Converted::default();
    let mut spans = Vec::new();
    for rs in resource_spans {
        decode_resource_spans(rs, &mut spans, &mut out)?;
    }
    Ok(out)
}

fn decode_resource_spans<'a>(
    buf: &'a [u8],
    spans: &mut Vec<&'a [u8]>,
    out: &mut Converted,
) -> Result<()> {
    // the resource may follow the spans on the wire: collect the spans first
    let mut attrs = Attrs::new();
    spans.clear();
    let mut f = fields(buf, 1);
    while let Some((tag, wt)) = f.next()? {
        match tag {
            1 => decode_resource(f.bytes(wt)?, &mut attrs)?,
            2 => decode_scope_spans(f.bytes(wt)?, spans)?,
            3 => drop(f.str(wt)?),
            _ => f.skip(tag, wt)?,
        }
    }
    let mut service: Arc<str> = Arc::from(UNKNOWN_SERVICE);
    let mut resource = Attrs::with_capacity(attrs.len());
    for (k, v) in attrs {
        if k == "service.name" {
            if let AttrValue::Str(s) = &v {
                if !s.is_empty() {
                    service = Arc::from(s.as_str());
                }
            }
        } else {
            resource.push((k, v));
        }
    }
    let resource = Arc::new(resource);
    out.spans.reserve(spans.len());
    for s in spans.iter() {
        decode_span(s, &service, &resource, out)?;
    }
    Ok(())
}

fn decode_resource(buf: &[u8], attrs: &mut Attrs) -> Result<()> {
    let mut f = fields(buf, 2);
    while let Some((tag, wt)) = f.next()? {
        match tag {
            1 => attrs.push(decode_kv(f.bytes(wt)?, 3)?),
            2 => drop(f.u64(wt)?),
            3 => check::<EntityRef>(f.bytes(wt)?)?,
            _ => f.skip(tag, wt)?,
        }
    }
    Ok(())
}

fn decode_scope_spans<'a>(buf: &'a [u8], spans: &mut Vec<&'a [u8]>) -> Result<()> {
    let mut f = fields(buf, 2);
    while let Some((tag, wt)) = f.next()? {
        match tag {
            1 => check::<InstrumentationScope>(f.bytes(wt)?)?,
            2 => spans.push(f.bytes(wt)?),
            3 => drop(f.str(wt)?),
            _ => f.skip(tag, wt)?,
        }
    }
    Ok(())
}

fn decode_kv(buf: &[u8], depth: u32) -> Result<(Key, AttrValue)> {
    let mut key = "";
    let mut values: Vec<&[u8]> = Vec::new();
    let mut f = fields(buf, depth);
    while let Some((tag, wt)) = f.next()? {
        match tag {
            1 => key = f.str(wt)?,
            2 => values.push(f.bytes(wt)?),
            3 => drop(f.u64(wt)?),
            _ => f.skip(tag, wt)?,
        }
    }
    let value = match values[..] {
        [] => AttrValue::Str(String::new()),
        [v] => decode_value(v, depth + 1)?,
        // occurrences of a message field merge: let prost do that
        _ => {
            let mut v = AnyValue::default();
            for b in values {
                v.merge(b)
                    .map_err(|_| WireError("invalid attribute value"))?;
            }
            any_value(Some(v))
        }
    };
    Ok((crate::model::key(key), value))
}

/// The last scalar an `AnyValue` holds, or an array or map through prost.
fn decode_value(buf: &[u8], depth: u32) -> Result<AttrValue> {
    enum V<'a> {
        None,
        Str(&'a str),
        Bool(bool),
        Int(i64),
        Double(f64),
        Bytes(&'a [u8]),
    }
    let mut v = V::None;
    let mut f = fields(buf, depth);
    while let Some((tag, wt)) = f.next()? {
        v = match tag {
            1 => V::Str(f.str(wt)?),
            2 => V::Bool(f.u64(wt)? != 0),
            3 => V::Int(f.u64(wt)? as i64),
            4 => V::Double(f64::from_bits(f.fixed64(wt)?)),
            7 => V::Bytes(f.bytes(wt)?),
            5 | 6 | 8 => {
                let v = AnyValue::decode(buf).map_err(|_| WireError("invalid attribute value"))?;
                return Ok(any_value(Some(v)));
            }
            _ => {
                f.skip(tag, wt)?;
                v
            }
        };
    }
    Ok(match v {
        V::None => AttrValue::Str(String::new()),
        V::Str(s) => AttrValue::Str(s.to_string()),
        V::Bool(b) => AttrValue::Bool(b),
        V::Int(i) => AttrValue::Int(i),
        V::Double(d) => AttrValue::Double(d),
        V::Bytes(b) => AttrValue::Str(hex(b)),
    })
}

fn decode_event(buf: &[u8]) -> Result<SpanEvent> {
    let mut e = SpanEvent {
        name: String::new(),
        time_ns: 0,
        attributes: Attrs::new(),
    };
    let mut name = "";
    let mut f = fields(buf, 4);
    while let Some((tag, wt)) = f.next()? {
        match tag {
            1 => e.time_ns = f.fixed64(wt)?,
            2 => name = f.str(wt)?,
            3 => e.attributes.push(decode_kv(f.bytes(wt)?, 5)?),
            4 => drop(f.u64(wt)?),
            _ => f.skip(tag, wt)?,
        }
    }
    e.name = name.to_string();
    Ok(e)
}

fn decode_status<'a>(buf: &'a [u8], code: &mut i32, message: &mut &'a str) -> Result<()> {
    let mut f = fields(buf, 4);
    while let Some((tag, wt)) = f.next()? {
        match tag {
            2 => *message = f.str(wt)?,
            3 => *code = f.u64(wt)? as i32,
            _ => f.skip(tag, wt)?,
        }
    }
    Ok(())
}

/// How many times field `tag` occurs in a message (a malformed message is refused later).
fn count_fields(buf: &[u8], tag: u32) -> usize {
    let mut f = fields(buf, 0);
    let mut n = 0;
    while let Ok(Some((t, wt))) = f.next() {
        n += usize::from(t == tag);
        if f.skip(t, wt).is_err() {
            break;
        }
    }
    n
}

fn reject(out: &mut Converted, why: impl FnOnce() -> String) {
    out.rejected += 1;
    if out.error.is_none() {
        out.error = Some(why());
    }
}

fn decode_span(
    buf: &[u8],
    service: &Arc<str>,
    resource: &Arc<Attrs>,
    out: &mut Converted,
) -> Result<()> {
    let (mut trace_id, mut span_id, mut parent): (&[u8], &[u8], &[u8]) = (&[], &[], &[]);
    let mut name = "";
    let (mut kind, mut start, mut end) = (0i32, 0u64, 0u64);
    let mut status: Option<(i32, &str)> = None;
    // sized exactly: a span's attributes are most of its memory while it waits to be sealed
    let mut attributes = Attrs::with_capacity(count_fields(buf, 9));
    let mut events = Vec::new();
    let mut f = fields(buf, 3);
    while let Some((tag, wt)) = f.next()? {
        match tag {
            1 => trace_id = f.bytes(wt)?,
            2 => span_id = f.bytes(wt)?,
            3 => drop(f.str(wt)?),
            4 => parent = f.bytes(wt)?,
            5 => name = f.str(wt)?,
            6 => kind = f.u64(wt)? as i32,
            7 => start = f.fixed64(wt)?,
            8 => end = f.fixed64(wt)?,
            9 => attributes.push(decode_kv(f.bytes(wt)?, 4)?),
            11 => events.push(decode_event(f.bytes(wt)?)?),
            10 | 12 | 14 => drop(f.u64(wt)?),
            13 => check::<Link>(f.bytes(wt)?)?,
            15 => {
                let (code, message) = status.get_or_insert((0, ""));
                decode_status(f.bytes(wt)?, code, message)?;
            }
            16 => {
                f.expect(wt, FIXED32)?;
                f.take(4)?;
            }
            _ => f.skip(tag, wt)?,
        }
    }
    // the same checks, in the same order and words, as convert_traces
    let Ok(trace_id) = <[u8; 16]>::try_from(trace_id) else {
        let n = trace_id.len();
        reject(out, || {
            format!("span {name:?}: trace_id must be 16 bytes, got {n}")
        });
        return Ok(());
    };
    if trace_id == [0; 16] {
        reject(out, || format!("span {name:?}: trace_id is all zero"));
        return Ok(());
    }
    let Ok(span_id) = <[u8; 8]>::try_from(span_id) else {
        let n = span_id.len();
        reject(out, || {
            format!("span {name:?}: span_id must be 8 bytes, got {n}")
        });
        return Ok(());
    };
    let parent_span_id = match <[u8; 8]>::try_from(parent) {
        _ if parent.is_empty() => None,
        Ok(p) => (p != [0; 8]).then_some(p),
        Err(_) => {
            let n = parent.len();
            reject(out, || {
                format!("span {name:?}: parent_span_id must be 8 bytes, got {n}")
            });
            return Ok(());
        }
    };
    let (status, status_message) = match status {
        Some((code, message)) => (code.clamp(0, 2) as u8, message.to_string()),
        None => (STATUS_UNSET, String::new()),
    };
    add_fingerprint(&mut attributes);
    out.spans.push(Arc::new(SpanRecord {
        trace_id,
        span_id,
        parent_span_id,
        service: service.clone(),
        kind: kind.clamp(0, 5) as u8,
        name: name.to_string(),
        start_ns: start,
        duration_ns: end.saturating_sub(start),
        status,
        status_message,
        attributes,
        events,
        resource: resource.clone(),
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::convert_traces;
    use crate::testdata::{Rng, realistic_request};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::trace::v1::Status;

    /// What prost and the conversion make of `body`, as text (NaN equals NaN).
    fn via_prost(body: &[u8]) -> Option<String> {
        let req = ExportTraceServiceRequest::decode(body).ok()?;
        let c = convert_traces(req);
        Some(format!("{:?} {} {:?}", c.spans, c.rejected, c.error))
    }

    fn via_wire(body: &[u8]) -> Option<String> {
        let c = decode_traces(body).ok()?;
        Some(format!("{:?} {} {:?}", c.spans, c.rejected, c.error))
    }

    fn sample() -> ExportTraceServiceRequest {
        let mut rng = Rng::new(5);
        let mut req = realistic_request(&mut rng, 40, 1_700_000_000_000_000_000);
        let spans = &mut req.resource_spans[0].scope_spans[0].spans;
        spans[0].status = Some(Status {
            message: "boom".into(),
            code: 2,
        });
        spans[1].trace_id = vec![1, 2, 3];
        spans[2].parent_span_id = vec![0; 8];
        spans[3].events.push(Default::default());
        spans[5].attributes.push(KeyValue {
            key: "list".into(),
            value: Some(AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::BoolValue(true)),
                    }],
                })),
            }),
            ..Default::default()
        });
        spans[6].attributes.push(KeyValue {
            key: "raw".into(),
            value: Some(AnyValue {
                value: Some(Value::BytesValue(vec![0xab, 1])),
            }),
            ..Default::default()
        });
        spans[7].links.push(Default::default());
        spans[8].kind = 99;
        req.resource_spans.push(Default::default());
        req
    }

    #[test]
    fn same_as_prost_and_convert() {
        let body = sample().encode_to_vec();
        let wire = via_wire(&body).unwrap();
        assert_eq!(Some(wire), via_prost(&body));
        let c = decode_traces(&body).unwrap();
        assert_eq!(c.rejected, 1);
        assert_eq!(c.spans.len(), 39);
    }

    #[test]
    fn repeated_singular_fields_merge() {
        // a span's status given twice: prost merges field by field
        let mut body = sample().encode_to_vec();
        let extra = ExportTraceServiceRequest::decode(&body[..]).unwrap();
        body.extend_from_slice(&extra.encode_to_vec());
        assert_eq!(via_wire(&body), via_prost(&body));
    }

    /// Truncations and byte flips of a valid request: both decoders accept the same inputs
    /// and make the same spans of them.
    #[test]
    fn mutations_agree_with_prost() {
        let body = sample().encode_to_vec();
        let mut rng = Rng::new(11);
        for n in (0..body.len()).step_by(7) {
            assert_eq!(via_wire(&body[..n]), via_prost(&body[..n]), "cut at {n}");
        }
        for _ in 0..3000 {
            let mut b = body.clone();
            for _ in 0..=rng.below(3) {
                let i = rng.below(b.len() as u64) as usize;
                b[i] = rng.next_u64() as u8;
            }
            assert_eq!(via_wire(&b), via_prost(&b), "{b:?}");
        }
    }
}
