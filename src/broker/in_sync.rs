//! Which followers a raft leader counts as in sync (Kafka's ISR).
//!
//! Raft's own view (a follower's matched index against the commit index) flickers under
//! load: every new entry commits on a majority before the slower follower has it, so a
//! healthy follower drops out and comes back many times a second. Kafka's ISR is stable
//! instead: a follower stays in it while it has caught up with the leader within the last
//! `replica.lag.time.max.ms`. [`CaughtUp`] keeps, per follower, the last time the leader
//! saw it hold everything committed, and answers the ISR from that.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::raft::NodeId;

/// `replica.lag.time.max.ms` default (Kafka's).
pub const DEFAULT_REPLICA_LAG_TIME_MAX: Duration = Duration::from_secs(30);

/// The last time each follower held everything committed, in the current leadership.
#[derive(Debug, Default)]
pub struct CaughtUp {
    inner: Mutex<Tracked>,
}

#[derive(Debug, Default)]
struct Tracked {
    /// The leadership (term) the times belong to; a new term starts afresh.
    term: Option<u64>,
    at: HashMap<NodeId, Instant>,
}

impl CaughtUp {
    /// Records what the leader sees at `now` in `term`: `followers` with their matched
    /// index, against the `committed` index. A follower counts as caught up when it holds
    /// at least everything committed.
    pub fn observe<I>(&self, term: u64, committed: Option<u64>, followers: I, now: Instant)
    where
        I: IntoIterator<Item = (NodeId, Option<u64>)>,
    {
        let mut t = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.term != Some(term) {
            t.term = Some(term);
            t.at.clear();
        }
        for (id, matched) in followers {
            if matched >= committed {
                t.at.insert(id, now);
            }
        }
    }

    /// The followers among `voters` that caught up within `lag` before `now` in `term`.
    pub fn in_sync(&self, term: u64, voters: &[NodeId], lag: Duration, now: Instant) -> Vec<NodeId> {
        let t = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.term != Some(term) {
            return Vec::new();
        }
        voters
            .iter()
            .copied()
            .filter(|id| t.at.get(id).is_some_and(|at| now.saturating_duration_since(*at) <= lag))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_secs(30);

    #[test]
    fn a_follower_that_held_everything_committed_stays_in_sync_for_the_lag_time() {
        let c = CaughtUp::default();
        let t0 = Instant::now();
        c.observe(3, Some(10), [(2, Some(10)), (3, Some(9))], t0);
        assert_eq!(c.in_sync(3, &[2, 3], LAG, t0), vec![2]);
        // Behind now, but it caught up 29 s ago: still in sync.
        c.observe(3, Some(20), [(2, Some(15)), (3, Some(9))], t0 + Duration::from_secs(29));
        assert_eq!(c.in_sync(3, &[2, 3], LAG, t0 + Duration::from_secs(29)), vec![2]);
        // Past the lag time without catching up: out.
        assert!(c.in_sync(3, &[2, 3], LAG, t0 + Duration::from_secs(31)).is_empty());
        // Caught up again: back in.
        c.observe(3, Some(20), [(2, Some(20)), (3, Some(20))], t0 + Duration::from_secs(32));
        assert_eq!(c.in_sync(3, &[2, 3], LAG, t0 + Duration::from_secs(32)), vec![2, 3]);
    }

    #[test]
    fn an_empty_log_counts_every_follower_as_caught_up() {
        let c = CaughtUp::default();
        let now = Instant::now();
        c.observe(1, None, [(2, None), (3, None)], now);
        assert_eq!(c.in_sync(1, &[2, 3], LAG, now), vec![2, 3]);
    }

    #[test]
    fn a_new_term_forgets_what_the_last_leadership_saw() {
        let c = CaughtUp::default();
        let now = Instant::now();
        c.observe(1, Some(5), [(2, Some(5))], now);
        assert!(c.in_sync(2, &[2], LAG, now).is_empty(), "another term");
        c.observe(2, Some(6), [(2, Some(5))], now);
        assert!(c.in_sync(2, &[2], LAG, now).is_empty(), "term 2 has not seen it caught up");
    }

    #[test]
    fn only_voters_are_in_sync() {
        let c = CaughtUp::default();
        let now = Instant::now();
        c.observe(1, Some(5), [(2, Some(5)), (4, Some(5))], now);
        assert_eq!(c.in_sync(1, &[2, 3], LAG, now), vec![2]);
    }
}
