//! A cheap latency histogram: log-linear buckets with 16 sub-buckets per
//! power of two (about 6 % relative precision), counted with relaxed
//! atomics so every connection task can record into one shared histogram.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two, as a power of two.
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Enough buckets for any `u64`.
const BUCKETS: usize = ((64 - SUB_BITS as usize) + 1) * SUB as usize;

/// Bucket index of a value.
fn bucket_of(v: u64) -> usize {
    if v < SUB {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (exp - SUB_BITS)) & (SUB - 1);
    ((exp - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// Smallest and largest value that fall in bucket `i`.
fn bucket_range(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < SUB {
        return (i, i);
    }
    let exp = (i / SUB) as u32 + SUB_BITS - 1;
    let sub = i % SUB;
    let width = 1u64 << (exp - SUB_BITS);
    let low = (1u64 << exp) + sub * width;
    (low, low + (width - 1))
}

/// A histogram shared by many recorders.
#[derive(Debug)]
pub struct AtomicHistogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl AtomicHistogram {
    /// Counts one value.
    pub fn record(&self, value: u64) {
        self.buckets[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Histogram {
        Histogram {
            counts: self
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A frozen copy of an [`AtomicHistogram`].
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
}

impl Histogram {
    /// Number of values counted.
    pub fn len(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds the counts of `other` to these.
    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
    }

    /// The non-zero buckets as `(index, count)` pairs, to send to another
    /// process ([`Histogram::from_pairs`] reads them back).
    pub fn to_pairs(&self) -> Vec<(usize, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| (i, c))
            .collect()
    }

    /// The histogram of `(index, count)` pairs from [`Histogram::to_pairs`];
    /// an index out of range is an error.
    pub fn from_pairs(pairs: &[(usize, u64)]) -> anyhow::Result<Self> {
        let mut counts = vec![0; BUCKETS];
        for &(i, c) in pairs {
            let Some(slot) = counts.get_mut(i) else {
                anyhow::bail!("histogram bucket {i} out of range");
            };
            *slot += c;
        }
        Ok(Self { counts })
    }

    /// An empty histogram.
    pub fn empty() -> Self {
        Self { counts: Vec::new() }
    }

    /// The value at quantile `q` (0.0..=1.0), as the midpoint of its bucket;
    /// `None` if the histogram is empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.len();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (low, high) = bucket_range(i);
                return Some(low + (high - low) / 2);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut prev = 0;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < BUCKETS);
            assert!(b >= prev, "bucket order at {v}");
            prev = b;
            let (low, high) = bucket_range(b);
            assert!(low <= v && v <= high, "{v} not in {low}..={high}");
        }
    }

    #[test]
    fn quantiles_are_within_precision() {
        let h = AtomicHistogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.len(), 10_000);
        let p50 = s.quantile(0.5).unwrap() as f64;
        let p99 = s.quantile(0.99).unwrap() as f64;
        assert!((p50 / 5000.0 - 1.0).abs() < 0.07, "p50 {p50}");
        assert!((p99 / 9900.0 - 1.0).abs() < 0.07, "p99 {p99}");
        assert_eq!(AtomicHistogram::default().snapshot().quantile(0.5), None);
    }

    #[test]
    fn pairs_round_trip_and_merge() {
        let h = AtomicHistogram::default();
        for v in [1, 5, 5, 1000, 1_000_000] {
            h.record(v);
        }
        let s = h.snapshot();
        let pairs = s.to_pairs();
        assert_eq!(pairs.len(), 4);
        let back = Histogram::from_pairs(&pairs).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.quantile(0.5), s.quantile(0.5));
        let mut merged = Histogram::empty();
        merged.merge(&back);
        merged.merge(&back);
        assert_eq!(merged.len(), 10);
        assert_eq!(merged.quantile(1.0), s.quantile(1.0));
        assert!(Histogram::from_pairs(&[(BUCKETS, 1)]).is_err());
    }
}
