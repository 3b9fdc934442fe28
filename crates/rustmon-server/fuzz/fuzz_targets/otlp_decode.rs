//! Fuzz the OTLP decoding path: gzip, protobuf and JSON decoding of trace and metric export
//! requests, conversion into stored spans (ids, attributes, fingerprints), the direct protobuf
//! decoder against prost and the conversion, the segment codec round trip, and the WAL record
//! reader. Nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustmon_server::otlp::{self, Encoding};
use rustmon_server::{model, store, wire};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let enc = if sel & 1 == 0 { Encoding::Protobuf } else { Encoding::Json };
    let owned;
    let body = if sel & 2 != 0 {
        match otlp::decompress(body, Some("gzip"), 1 << 20) {
            Ok(Some(b)) => {
                owned = b;
                &owned[..]
            }
            _ => return,
        }
    } else {
        body
    };
    if sel & 4 == 0 {
        let decoded = otlp::decode_traces(enc, body);
        if enc == Encoding::Protobuf {
            // the receiver's direct decoder must agree with prost and the conversion
            let show = |c: &model::Converted| format!("{:?} {} {:?}", c.spans, c.rejected, c.error);
            let direct = wire::decode_traces(body).ok().map(|c| show(&c));
            let via_prost = decoded.as_ref().ok().map(|r| show(&model::convert_traces(r.clone())));
            assert_eq!(direct, via_prost);
        }
        if let Ok(req) = decoded {
            let conv = model::convert_traces(req);
            for s in &conv.spans {
                let _ = s.to_json();
            }
            if !conv.spans.is_empty() && sel & 8 != 0 {
                // the segment codec must round-trip whatever was accepted
                let dir = std::env::temp_dir().join(format!("rustmon-fuzz-{}", std::process::id()));
                let _ = std::fs::create_dir_all(&dir);
                let path = dir.join("f.seg");
                let mut refs: Vec<&model::SpanRecord> = conv.spans.iter().map(|s| &**s).collect();
                let meta = store::segment::write_segment(&path, &mut refs, 1).expect("write segment");
                let mut f = std::fs::File::open(&path).expect("open segment");
                let mut n = 0;
                let mut services = Vec::new();
                for b in &meta.blocks {
                    let block = store::segment::Block::read(&mut f, b).expect("read block");
                    for i in 0..block.len() {
                        let _ = block.row(i, &mut services);
                        n += 1;
                    }
                }
                assert_eq!(n, conv.spans.len());
            }
        }
    } else if let Ok(req) = otlp::decode_metrics(enc, body) {
        let _ = otlp::convert_metrics(req);
    }
});
