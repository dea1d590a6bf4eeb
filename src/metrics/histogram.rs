//! A latency histogram recorded with atomics only (prometheus-client's own histogram
//! takes a lock per observation), encoded through prometheus-client at scrape time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Most buckets a histogram has (bounds plus the `+Inf` bucket).
const MAX_BUCKETS: usize = 16;

/// Fixed-bucket histogram of durations: one relaxed add for the bucket and one for the
/// sum per observation.
#[derive(Debug)]
pub struct AtomicHistogram {
    /// Upper bounds in seconds, ascending; at most `MAX_BUCKETS - 1`.
    bounds: &'static [f64],
    /// Non-cumulative count per bucket; index `bounds.len()` is `+Inf`.
    counts: [AtomicU64; MAX_BUCKETS],
    sum_nanos: AtomicU64,
}

/// A consistent-enough reading of a histogram: `count` is the sum of the buckets read.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub sum_seconds: f64,
    pub count: u64,
    /// (upper bound, count in that bucket alone), ending with `+Inf`: the form
    /// prometheus-client's encoders take (they write the cumulative `le` counts).
    pub buckets: Vec<(f64, u64)>,
}

impl AtomicHistogram {
    /// A histogram with `bounds` (seconds, ascending, fewer than 16).
    pub const fn new(bounds: &'static [f64]) -> Self {
        assert!(bounds.len() < MAX_BUCKETS, "too many histogram buckets");
        AtomicHistogram { bounds, counts: [const { AtomicU64::new(0) }; MAX_BUCKETS], sum_nanos: AtomicU64::new(0) }
    }

    pub fn observe(&self, d: Duration) {
        let seconds = d.as_secs_f64();
        let bucket = self.bounds.iter().position(|&b| seconds <= b).unwrap_or(self.bounds.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut count = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len() + 1);
        for (i, bound) in self.bounds.iter().copied().chain(std::iter::once(f64::INFINITY)).enumerate() {
            let n = self.counts[i].load(Ordering::Relaxed);
            count += n;
            buckets.push((bound, n));
        }
        let sum_seconds = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        Snapshot { sum_seconds, count, buckets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_their_buckets() {
        static H: AtomicHistogram = AtomicHistogram::new(&[0.001, 0.01, 0.1]);
        H.observe(Duration::from_micros(500)); // <= 1 ms
        H.observe(Duration::from_millis(1)); // on the bound: still <= 1 ms
        H.observe(Duration::from_millis(50)); // <= 100 ms
        H.observe(Duration::from_secs(3)); // +Inf
        let s = H.snapshot();
        assert_eq!(s.count, 4);
        assert_eq!(s.buckets, vec![(0.001, 2), (0.01, 0), (0.1, 1), (f64::INFINITY, 1)]);
        assert!((s.sum_seconds - 3.0515).abs() < 1e-9, "{}", s.sum_seconds);
    }
}
