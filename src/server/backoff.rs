//! Backoff for a failing `accept` (out of file descriptors: `EMFILE`/`ENFILE`, and the
//! like). Retrying at once would spin and log on every pending connection; instead the
//! listener pauses with exponential backoff and warns once per streak, then at most
//! every [`WARN_EVERY`] with the number of failures in between.

use std::time::{Duration, Instant};

/// First pause after a failed accept.
pub const FIRST_DELAY: Duration = Duration::from_millis(5);
/// Longest pause: a freed descriptor is picked up within this.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// Least time between two warnings of one streak of failures.
pub const WARN_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub struct AcceptBackoff {
    /// Failures since the last successful accept.
    failures: u64,
    /// Failures not yet reported in a warning.
    unreported: u64,
    delay: Duration,
    last_warning: Option<Instant>,
}

/// What to do after a failed accept.
#[derive(Debug, PartialEq)]
pub struct Pause {
    pub delay: Duration,
    /// `Some(failures since the last warning)` when a warning is due now.
    pub warn: Option<u64>,
}

impl AcceptBackoff {
    pub fn failed(&mut self, now: Instant) -> Pause {
        self.failures += 1;
        self.unreported += 1;
        self.delay = if self.delay.is_zero() { FIRST_DELAY } else { (self.delay * 2).min(MAX_DELAY) };
        let due = self.last_warning.is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
        let warn = due.then(|| {
            self.last_warning = Some(now);
            std::mem::take(&mut self.unreported)
        });
        Pause { delay: self.delay, warn }
    }

    /// Resets after a successful accept; returns the failures of the streak it ends.
    pub fn succeeded(&mut self) -> Option<u64> {
        let failures = self.failures;
        *self = Self::default();
        (failures > 0).then_some(failures)
    }
}

/// Whether an accept error means the process or system is out of file descriptors.
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_to_the_cap_and_warns_once_per_interval() {
        let mut b = AcceptBackoff::default();
        let t0 = Instant::now();
        let first = b.failed(t0);
        assert_eq!(first, Pause { delay: FIRST_DELAY, warn: Some(1) });
        let mut delays = vec![first.delay];
        let mut warnings = 1;
        // 1,000 failures within one second: one warning only.
        for i in 1..1000 {
            let p = b.failed(t0 + Duration::from_millis(i));
            delays.push(p.delay);
            warnings += usize::from(p.warn.is_some());
        }
        assert_eq!(warnings, 1);
        assert_eq!(delays[1], FIRST_DELAY * 2);
        assert!(delays.windows(2).all(|w| w[1] >= w[0] && w[1] <= MAX_DELAY));
        assert_eq!(*delays.last().unwrap(), MAX_DELAY);
        // After the interval, a warning again, counting the failures in between.
        let p = b.failed(t0 + WARN_EVERY + Duration::from_millis(1));
        assert_eq!(p.warn, Some(1000));
        assert_eq!(p.delay, MAX_DELAY);
    }

    #[test]
    fn success_resets_the_streak() {
        let mut b = AcceptBackoff::default();
        assert_eq!(b.succeeded(), None);
        let now = Instant::now();
        b.failed(now);
        b.failed(now);
        assert_eq!(b.succeeded(), Some(2));
        // A new streak starts at the first delay and warns at once.
        assert_eq!(b.failed(now), Pause { delay: FIRST_DELAY, warn: Some(1) });
    }

    #[test]
    fn descriptor_exhaustion_is_recognised() {
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(out_of_descriptors(&std::io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!out_of_descriptors(&std::io::Error::from_raw_os_error(libc::ECONNABORTED)));
    }
}
