//! Metric points that flow to listeners beside events, and the mergeable latency histogram.

use std::borrow::Cow;

use crate::attr::KeyValue;

/// A number, integer or float.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum Number {
    /// An integer.
    I64(i64),
    /// A float.
    F64(f64),
}

impl Number {
    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        match self {
            Number::I64(v) => v as f64,
            Number::F64(v) => v,
        }
    }
}

/// The value of a metric point.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricData {
    /// A value sampled at a point in time (memory in use, queue depth).
    Gauge(Number),
    /// A running total.
    Sum {
        /// The total.
        value: Number,
        /// Whether it only grows.
        monotonic: bool,
        /// `true`: the total since the previous export (delta); `false`: since `start_unix_nanos`.
        delta: bool,
    },
    /// A distribution over the interval since the previous export (delta temporality).
    Histogram(ExpHistogram),
}

/// One metric point.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    /// Semantic-convention name where one exists, e.g. `process.cpu.time`.
    pub name: Cow<'static, str>,
    /// One line on what it measures.
    pub description: Cow<'static, str>,
    /// UCUM unit: `s`, `By`, `{thread}`, `1`.
    pub unit: Cow<'static, str>,
    /// Dimensions.
    pub attributes: Vec<KeyValue>,
    /// Start of the interval (delta) or of the series (cumulative), ns since the Unix epoch.
    pub start_unix_nanos: u64,
    /// When the point was taken, ns since the Unix epoch.
    pub time_unix_nanos: u64,
    /// The value.
    pub data: MetricData,
}

/// A base-2 exponential histogram, as in OTLP: bucket `i` holds values in
/// `(base^i, base^(i+1)]` with `base = 2^(2^-scale)`. Mergeable, with a bounded relative error of
/// `base - 1` / 2 (about 2.2% at the default scale 4).
#[derive(Clone, Debug, PartialEq)]
pub struct ExpHistogram {
    /// The resolution: higher is finer.
    pub scale: i32,
    /// How many values were recorded.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The smallest value (`f64::INFINITY` when empty).
    pub min: f64,
    /// The largest value (`f64::NEG_INFINITY` when empty).
    pub max: f64,
    /// How many values were exactly zero.
    pub zero_count: u64,
    /// The index of the first bucket in `counts`.
    pub offset: i32,
    /// Bucket counts from `offset` on.
    pub counts: Vec<u64>,
}

impl Default for ExpHistogram {
    fn default() -> Self {
        ExpHistogram::new(ExpHistogram::DEFAULT_SCALE)
    }
}

impl ExpHistogram {
    /// The scale rustmon records at.
    pub const DEFAULT_SCALE: i32 = 4;

    /// An empty histogram.
    pub fn new(scale: i32) -> Self {
        ExpHistogram {
            scale,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            zero_count: 0,
            offset: 0,
            counts: Vec::new(),
        }
    }

    /// The bucket index of a positive value.
    pub fn index(&self, value: f64) -> i32 {
        let factor = (2.0_f64).powi(self.scale);
        ((value.log2() * factor).ceil() as i32) - 1
    }

    /// The upper bound of bucket `index`.
    pub fn upper_bound(&self, index: i32) -> f64 {
        (2.0_f64).powf(f64::from(index + 1) / (2.0_f64).powi(self.scale))
    }

    /// Records a non-negative value (negative and NaN values are ignored).
    pub fn record(&mut self, value: f64) {
        self.record_n(value, 1);
    }

    fn record_n(&mut self, value: f64, n: u64) {
        if value.is_nan() || value < 0.0 || n == 0 {
            return;
        }
        self.count += n;
        self.sum += value * n as f64;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if value == 0.0 {
            self.zero_count += n;
            return;
        }
        let idx = self.index(value);
        self.add_to_bucket(idx, n);
    }

    fn add_to_bucket(&mut self, idx: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = idx;
            self.counts.push(n);
            return;
        }
        if idx < self.offset {
            let grow = (self.offset - idx) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = idx;
        }
        let pos = (idx - self.offset) as usize;
        if pos >= self.counts.len() {
            self.counts.resize(pos + 1, 0);
        }
        self.counts[pos] += n;
    }

    /// Adds another histogram of the same scale into this one.
    pub fn merge(&mut self, other: &ExpHistogram) {
        debug_assert_eq!(self.scale, other.scale);
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.zero_count += other.zero_count;
        for (i, &c) in other.counts.iter().enumerate() {
            if c > 0 {
                self.add_to_bucket(other.offset + i as i32, c);
            }
        }
    }

    /// The value at quantile `q` (0..=1), within the histogram's relative error; `None` if empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = self.zero_count;
        if seen >= rank {
            return Some(0.0);
        }
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let idx = self.offset + i as i32;
                // The midpoint of the bucket (geometric), clamped to what was actually seen.
                let lower = self.upper_bound(idx - 1);
                let upper = self.upper_bound(idx);
                return Some((lower * upper).sqrt().clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_relative_error() {
        let mut h = ExpHistogram::default();
        for i in 1..=1000 {
            h.record(f64::from(i) / 1000.0);
        }
        for (q, want) in [(0.5, 0.5), (0.95, 0.95), (0.99, 0.99)] {
            let got = h.quantile(q).unwrap();
            assert!((got - want).abs() / want < 0.05, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.count, 1000);
        assert_eq!(h.min, 0.001);
        assert_eq!(h.max, 1.0);
    }

    #[test]
    fn merge_equals_recording_together() {
        let mut a = ExpHistogram::default();
        let mut b = ExpHistogram::default();
        let mut all = ExpHistogram::default();
        for i in 0..500 {
            let v = f64::from(i) * 0.37;
            if i % 2 == 0 {
                a.record(v)
            } else {
                b.record(v)
            }
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a.counts, all.counts);
        assert_eq!(a.offset, all.offset);
        assert_eq!(a.count, all.count);
        assert_eq!(a.zero_count, 1);
    }

    #[test]
    fn bucket_bounds_contain_the_value() {
        let h = ExpHistogram::default();
        for v in [1e-9, 0.003, 1.0, 2.0, 7.5, 1e6] {
            let i = h.index(v);
            assert!(
                h.upper_bound(i - 1) < v * (1.0 + 1e-12) && v <= h.upper_bound(i) * (1.0 + 1e-12),
                "{v}"
            );
        }
    }
}
