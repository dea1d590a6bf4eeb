//! Rate-limited warnings: a failure that repeats on every request (a full disk fails
//! every produce) is logged at most once per interval, with how many were not logged.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// One kind of repeated failure.
pub struct RateLimited {
    interval_ms: i64,
    next_ms: AtomicI64,
    suppressed: AtomicU64,
}

impl RateLimited {
    pub const fn new(interval_ms: i64) -> Self {
        RateLimited { interval_ms, next_ms: AtomicI64::new(i64::MIN), suppressed: AtomicU64::new(0) }
    }

    /// `Some(n)` when a line may be logged now (`n` occurrences were not logged since the
    /// last one), `None` when this one only counts.
    pub fn check(&self, now_ms: i64) -> Option<u64> {
        let next = self.next_ms.load(Ordering::Relaxed);
        if now_ms >= next
            && self
                .next_ms
                .compare_exchange(next, now_ms.saturating_add(self.interval_ms), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.suppressed.swap(0, Ordering::Relaxed));
        }
        self.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// How often a repeated storage failure is logged.
pub const STORAGE_ERROR_LOG_INTERVAL_MS: i64 = 10_000;

/// Produce requests refused because the log could not be written.
pub static PRODUCE_STORAGE_ERRORS: RateLimited = RateLimited::new(STORAGE_ERROR_LOG_INTERVAL_MS);
/// fsyncs of produced data that failed.
pub static PRODUCE_SYNC_ERRORS: RateLimited = RateLimited::new(STORAGE_ERROR_LOG_INTERVAL_MS);
/// Writes to `__consumer_offsets` that failed.
pub static GROUP_WRITE_ERRORS: RateLimited = RateLimited::new(STORAGE_ERROR_LOG_INTERVAL_MS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let limit = RateLimited::new(1_000);
        assert_eq!(limit.check(5_000), Some(0));
        for t in 5_001..5_999 {
            assert_eq!(limit.check(t), None);
        }
        assert_eq!(limit.check(6_000), Some(998));
        assert_eq!(limit.check(6_001), None);
        assert_eq!(limit.check(7_000), Some(1));
    }
}
