//! KIP-890 part 1: a partition leader verifies a transactional write with the
//! transaction coordinator before it lets the write open a transaction on the partition.
//!
//! Without it, a producer that writes to a partition it never added to its transaction
//! (a bug, or a zombie whose request arrives after its transaction ended) opens a
//! transaction the coordinator knows nothing about: no marker ever closes it, and the
//! partition's last stable offset stays at its first offset for good (a "hanging
//! transaction"). So, as Kafka 4 does by default (`transaction.partition.verification.enable`):
//!
//! 1. When a transactional batch would open a transaction here (the producer has none
//!    open here, or comes with a newer epoch), the leader records a **guard** for the
//!    producer in the partition's producer table ([`VerificationGuards::begin`]);
//! 2. asks the coordinator whether the partition is in the producer's ongoing
//!    transaction at that epoch (`crate::txn::verify`);
//! 3. appends only if the coordinator said yes **and** the guard is still there: a
//!    transaction marker for the producer arriving in between (the transaction ended
//!    while the write was being verified) removes the guard, and the write is refused
//!    with INVALID_TXN_STATE instead of opening a transaction nobody will close.
//!
//! A batch that continues a transaction already open here needs no verification. Writes
//! the broker makes itself (markers, a group coordinator's transactional offset commits)
//! are not verified.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// What an append asks of a transactional batch that would open a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnVerification {
    /// Not checked: the broker's own writes, or verification turned off.
    Off,
    /// Checked: only with this guard, still held (`None`: not verified, refused).
    Required(Option<u64>),
}

/// Verifications in progress on one partition: producer id → (guard, started at ms).
#[derive(Debug, Clone, Default)]
pub struct VerificationGuards {
    guards: HashMap<i64, (u64, i64)>,
}

/// Guards are unique per broker process.
static NEXT_GUARD: AtomicU64 = AtomicU64::new(1);

/// At most this many verifications in progress per partition: past it, guards older
/// than [`STALE_MS`] (their request went away without ending them) are dropped first,
/// then the oldest.
const MAX_GUARDS: usize = 4096;
const STALE_MS: i64 = 120_000;

impl VerificationGuards {
    /// Starts a verification for `producer_id` (replacing one in progress).
    pub fn begin(&mut self, producer_id: i64, now_ms: i64) -> u64 {
        if self.guards.len() >= MAX_GUARDS && !self.guards.contains_key(&producer_id) {
            self.guards.retain(|_, (_, started)| now_ms.saturating_sub(*started) < STALE_MS);
            if self.guards.len() >= MAX_GUARDS
                && let Some(oldest) = self.guards.iter().min_by_key(|(_, (_, started))| *started).map(|(id, _)| *id)
            {
                self.guards.remove(&oldest);
            }
        }
        let guard = NEXT_GUARD.fetch_add(1, Ordering::Relaxed);
        self.guards.insert(producer_id, (guard, now_ms));
        guard
    }

    /// Ends the verification `guard` of `producer_id` (refused, or its write failed).
    pub fn end(&mut self, producer_id: i64, guard: u64) {
        if self.holds(producer_id, guard) {
            self.guards.remove(&producer_id);
        }
    }

    /// Drops the producer's verification: a marker ended its transaction, or a batch
    /// opened one.
    pub fn clear(&mut self, producer_id: i64) {
        self.guards.remove(&producer_id);
    }

    pub fn holds(&self, producer_id: i64, guard: u64) -> bool {
        self.guards.get(&producer_id).is_some_and(|(g, _)| *g == guard)
    }

    pub fn len(&self) -> usize {
        self.guards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guard_is_held_until_ended_cleared_or_replaced() {
        let mut g = VerificationGuards::default();
        let a = g.begin(7, 0);
        assert!(g.holds(7, a));
        g.end(7, a + 1000);
        assert!(g.holds(7, a), "another guard's end leaves it");
        let b = g.begin(7, 1);
        assert!(!g.holds(7, a) && g.holds(7, b), "replaced");
        g.clear(7);
        assert!(!g.holds(7, b));
        assert!(g.is_empty());
    }

    #[test]
    fn guards_are_bounded() {
        let mut g = VerificationGuards::default();
        for id in 0..MAX_GUARDS as i64 {
            g.begin(id, 0);
        }
        let late = g.begin(-5, STALE_MS + 1);
        assert_eq!(g.len(), 1, "every stale guard dropped");
        assert!(g.holds(-5, late));
        for id in 0..(MAX_GUARDS as i64 - 1) {
            g.begin(id, STALE_MS + 2);
        }
        g.begin(99_999, STALE_MS + 3);
        assert_eq!(g.len(), MAX_GUARDS);
        assert!(!g.holds(-5, late), "the oldest dropped");
    }
}
