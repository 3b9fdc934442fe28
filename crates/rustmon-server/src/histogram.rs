//! A mergeable base-2 exponential latency histogram (the OTLP exponential histogram layout).
//!
//! Bucket `i` holds values in `(2^(i/8), 2^((i+1)/8)]` nanoseconds, i.e. scale 3 in OTLP terms:
//! each bucket is ~9% wide, so a percentile read from it is within ~4.5% of the true value.
//! Histograms merge by adding bucket counts, which is what makes per-minute rollups composable.

use crate::codec::{CorruptError, Reader, put_uvarint};

/// OTLP scale of this histogram: 2^scale buckets per power of two.
pub const SCALE: i32 = 3;
const PER_OCTAVE: f64 = (1 << SCALE) as f64;

/// A sparse exponential histogram of non-negative values (nanoseconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Index of the first bucket in `counts`.
    offset: i32,
    /// Dense counts from `offset`.
    counts: Vec<u64>,
    /// Values that were zero.
    zero: u64,
}

/// Bucket index of a positive value at [`SCALE`].
pub fn bucket_index(v: f64) -> i32 {
    // ceil(log2(v) * 2^scale) - 1 gives the upper-inclusive layout of OTLP.
    ((v.log2() * PER_OCTAVE).ceil() as i32) - 1
}

/// Lower bound of bucket `i`.
pub fn bucket_lower(i: i32) -> f64 {
    (f64::from(i) / PER_OCTAVE).exp2()
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one value.
    pub fn record(&mut self, v: u64) {
        self.record_n(v as f64, 1);
    }

    /// Records `n` values equal to `v`.
    pub fn record_n(&mut self, v: f64, n: u64) {
        if v.is_nan() || v <= 0.0 || n == 0 {
            self.zero += n;
            return;
        }
        self.add_bucket(bucket_index(v), n);
    }

    /// Adds `n` to bucket `i`.
    pub fn add_bucket(&mut self, i: i32, n: u64) {
        let i = i.clamp(-2000, 2000);
        if self.counts.is_empty() {
            self.offset = i;
            self.counts.push(n);
            return;
        }
        if i < self.offset {
            let grow = (self.offset - i) as usize;
            let mut c = vec![0u64; grow];
            c.extend_from_slice(&self.counts);
            self.counts = c;
            self.offset = i;
        }
        let idx = (i - self.offset) as usize;
        if idx >= self.counts.len() {
            self.counts.resize(idx + 1, 0);
        }
        self.counts[idx] += n;
    }

    /// Adds every count of `other` into `self`.
    pub fn merge(&mut self, other: &Histogram) {
        self.zero += other.zero;
        for (k, &c) in other.counts.iter().enumerate() {
            if c > 0 {
                self.add_bucket(other.offset + k as i32, c);
            }
        }
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.zero + self.counts.iter().sum::<u64>()
    }

    /// Values that were zero.
    pub fn zero_count(&self) -> u64 {
        self.zero
    }

    /// `(index, count)` of every bucket from the first to the last non-empty one, empty ones
    /// between included; bucket `i` holds values in `(bucket_lower(i), bucket_lower(i + 1)]`.
    pub fn buckets(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        let first = self.counts.iter().position(|&c| c > 0).unwrap_or(0);
        let last = self
            .counts
            .iter()
            .rposition(|&c| c > 0)
            .map_or(0, |l| l + 1);
        self.counts[first..last.max(first)]
            .iter()
            .enumerate()
            .map(move |(k, &c)| (self.offset + (first + k) as i32, c))
    }

    /// The value at quantile `q` (0..=1): the geometric middle of the bucket holding it.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = self.zero;
        if seen >= rank {
            return Some(0.0);
        }
        for (k, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let i = self.offset + k as i32;
                return Some((bucket_lower(i) * bucket_lower(i + 1)).sqrt());
            }
        }
        None
    }

    /// Appends the compact binary form.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        put_uvarint(buf, self.zero);
        put_uvarint(
            buf,
            ((self.offset << 1) ^ (self.offset >> 31)) as u32 as u64,
        );
        put_uvarint(buf, self.counts.len() as u64);
        for &c in &self.counts {
            put_uvarint(buf, c);
        }
    }

    /// The compact binary form as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(8 + self.counts.len());
        self.encode(&mut b);
        b
    }

    /// Reads the form written by [`Histogram::encode`].
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CorruptError> {
        let zero = r.uvarint()?;
        let z = r.uvarint()? as u32;
        let offset = ((z >> 1) as i32) ^ -((z & 1) as i32);
        let n = r.len(4096)?;
        let mut counts = Vec::with_capacity(n);
        for _ in 0..n {
            counts.push(r.uvarint()?);
        }
        Ok(Histogram {
            offset,
            counts,
            zero,
        })
    }

    /// Reads a histogram from bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CorruptError> {
        Self::decode(&mut Reader::new(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_error() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        for (q, want) in [(0.5, 5_000_000.0), (0.95, 9_500_000.0), (0.99, 9_900_000.0)] {
            let got = h.quantile(q).unwrap();
            assert!((got - want).abs() / want < 0.05, "q{q}: {got} vs {want}");
        }
    }

    #[test]
    fn merge_and_round_trip() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        a.record(10);
        b.record(1_000_000);
        b.record(0);
        a.merge(&b);
        assert_eq!(a.count(), 3);
        let back = Histogram::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn buckets_span_the_recorded_values() {
        let mut h = Histogram::new();
        assert_eq!(h.buckets().count(), 0);
        for v in [1_000_000u64, 1_000_000, 4_000_000, 0] {
            h.record(v);
        }
        let b: Vec<(i32, u64)> = h.buckets().collect();
        assert_eq!(b.len(), 17, "two octaves of 8 buckets, both ends included");
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>() + h.zero_count(), 4);
        let (first, last) = (b[0].0, b[16].0);
        assert!(bucket_lower(first) < 1e6 && 1e6 <= bucket_lower(first + 1));
        assert!(bucket_lower(last) < 4e6 && 4e6 <= bucket_lower(last + 1));
    }
}
