//! Leadership hints: "broker X observes leader Y for partition P at epoch E", spread by
//! gossip so any broker can name a partition's leader in Metadata without asking it.
//! Raft stays the authority; a hint is only what some broker last saw.
//!
//! The table is a map keyed by partition, last-writer-wins by leader epoch, capped at a
//! configured number of partitions. New hints wait in a queue keyed by partition (a newer
//! hint replaces a queued older one, so the queue is bounded by the table) and ride on
//! gossip packets a limited number of times each, fewest-sent first — memberlist's own
//! retransmit rule. The whole table travels in push/pull state syncs, which heals whatever
//! the lossy broadcasts missed.

use std::collections::HashMap;

use uuid::Uuid;

/// A topic-partition, by topic id (Kafka 4.x topic ids: compact and rename-proof).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartitionKey {
    pub topic_id: Uuid,
    pub partition: i32,
}

/// One broker's observation of one partition's leadership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeadershipHint {
    pub partition: PartitionKey,
    /// Leader broker id, -1 when the observer knows there is no leader at this epoch.
    pub leader: i32,
    /// The partition leader epoch (the raft term at the edge).
    pub leader_epoch: i32,
    /// The broker that made the observation.
    pub observer: i32,
}

impl LeadershipHint {
    /// Does this hint replace `current`? Higher epoch wins; at the same epoch a known
    /// leader replaces "no leader" (raft has at most one leader per term).
    fn supersedes(&self, current: &LeadershipHint) -> bool {
        self.leader_epoch > current.leader_epoch
            || (self.leader_epoch == current.leader_epoch && current.leader < 0 && self.leader >= 0)
    }
}

/// Tag of a gossip user message carrying one hint.
const MSG_HINT: u8 = 1;
/// Version tag of an encoded full table.
const STATE_V1: u8 = 1;
/// Bytes of one encoded hint (without tag).
pub const HINT_LEN: usize = 16 + 4 + 4 + 4 + 4;

/// Why hint bytes from a peer were not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HintDecodeError {
    #[error("leadership hint message has unknown tag {0}")]
    UnknownTag(u8),
    #[error("leadership hint state has unknown version {0}")]
    UnknownVersion(u8),
    #[error("leadership hint bytes have length {0}, not a whole number of hints")]
    BadLength(usize),
}

fn put_hint(out: &mut Vec<u8>, h: &LeadershipHint) {
    out.extend_from_slice(h.partition.topic_id.as_bytes());
    for v in [h.partition.partition, h.leader, h.leader_epoch, h.observer] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn get_hint(b: &[u8]) -> LeadershipHint {
    let i32_at = |at: usize| i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&b[..16]);
    LeadershipHint {
        partition: PartitionKey { topic_id: Uuid::from_bytes(id), partition: i32_at(16) },
        leader: i32_at(20),
        leader_epoch: i32_at(24),
        observer: i32_at(28),
    }
}

/// One hint as a gossip user message.
pub fn encode_message(h: &LeadershipHint) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + HINT_LEN);
    out.push(MSG_HINT);
    put_hint(&mut out, h);
    out
}

pub fn decode_message(b: &[u8]) -> Result<LeadershipHint, HintDecodeError> {
    match b.split_first() {
        Some((&MSG_HINT, rest)) if rest.len() == HINT_LEN => Ok(get_hint(rest)),
        Some((&MSG_HINT, rest)) => Err(HintDecodeError::BadLength(rest.len())),
        Some((&tag, _)) => Err(HintDecodeError::UnknownTag(tag)),
        None => Err(HintDecodeError::BadLength(0)),
    }
}

fn decode_state(b: &[u8]) -> Result<Vec<LeadershipHint>, HintDecodeError> {
    match b.split_first() {
        None => Ok(Vec::new()),
        Some((&STATE_V1, rest)) if rest.len() % HINT_LEN == 0 => {
            Ok(rest.chunks_exact(HINT_LEN).map(get_hint).collect())
        }
        Some((&STATE_V1, rest)) => Err(HintDecodeError::BadLength(rest.len())),
        Some((&version, _)) => Err(HintDecodeError::UnknownVersion(version)),
    }
}

/// The hint table plus its outgoing broadcast queue.
#[derive(Debug)]
pub struct LeadershipHints {
    table: HashMap<PartitionKey, LeadershipHint>,
    /// Hints waiting to be gossiped, with how many times each has been sent.
    queue: HashMap<PartitionKey, (LeadershipHint, u32)>,
    max_partitions: usize,
    /// Hints for new partitions refused because the table was full.
    refused: u64,
}

impl LeadershipHints {
    pub fn new(max_partitions: usize) -> LeadershipHints {
        LeadershipHints { table: HashMap::new(), queue: HashMap::new(), max_partitions, refused: 0 }
    }

    /// Merge one hint; returns whether the table changed. A changed entry is queued for
    /// gossip (a hint that changes nothing is not re-spread, so gossip quiets down).
    pub fn apply(&mut self, hint: LeadershipHint) -> bool {
        let full = self.table.len() >= self.max_partitions;
        match self.table.get_mut(&hint.partition) {
            Some(current) if !hint.supersedes(current) => return false,
            Some(current) => *current = hint,
            None if full => {
                self.refused += 1;
                return false;
            }
            None => {
                self.table.insert(hint.partition, hint);
            }
        }
        self.queue.insert(hint.partition, (hint, 0));
        true
    }

    pub fn get(&self, partition: &PartitionKey) -> Option<LeadershipHint> {
        self.table.get(partition).copied()
    }

    pub fn all(&self) -> Vec<LeadershipHint> {
        self.table.values().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Hints to piggyback on one gossip packet: fewest-sent first, each costing
    /// `cost(message)` bytes of `limit`; a hint sent `retransmit_limit` times leaves the
    /// queue.
    pub fn take_broadcasts(
        &mut self,
        limit: usize,
        retransmit_limit: u32,
        cost: impl Fn(&[u8]) -> usize,
    ) -> Vec<Vec<u8>> {
        let mut pending: Vec<_> = self.queue.values().map(|(h, sent)| (*sent, h.partition)).collect();
        pending.sort_unstable();
        let mut out = Vec::new();
        let mut used = 0;
        for (_, key) in pending {
            let Some((hint, sent)) = self.queue.get_mut(&key) else { continue };
            let msg = encode_message(hint);
            let len = cost(&msg);
            if used + len > limit {
                break;
            }
            used += len;
            *sent += 1;
            if *sent >= retransmit_limit {
                self.queue.remove(&key);
            }
            out.push(msg);
        }
        out
    }

    /// The whole table, for a push/pull state sync.
    pub fn encode_state(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.table.len() * HINT_LEN);
        out.push(STATE_V1);
        for h in self.table.values() {
            put_hint(&mut out, h);
        }
        out
    }

    /// Merge a peer's table; returns how many entries changed.
    pub fn merge_state(&mut self, bytes: &[u8]) -> Result<usize, HintDecodeError> {
        Ok(decode_state(bytes)?.into_iter().filter(|h| self.apply(*h)).count())
    }
}

/// memberlist's retransmit limit: `mult * ceil(log10(n + 1))`.
pub fn retransmit_limit(mult: usize, nodes: usize) -> u32 {
    let scale = ((nodes + 1) as f64).log10().ceil() as usize;
    (mult * scale).max(1) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> PartitionKey {
        PartitionKey { topic_id: Uuid::from_u128(0xfeed), partition: p }
    }

    fn hint(p: i32, leader: i32, epoch: i32) -> LeadershipHint {
        LeadershipHint { partition: key(p), leader, leader_epoch: epoch, observer: 9 }
    }

    #[test]
    fn message_and_state_round_trip() {
        let h = LeadershipHint {
            partition: PartitionKey { topic_id: Uuid::from_u128(u128::MAX - 3), partition: -2 },
            leader: 3,
            leader_epoch: i32::MAX,
            observer: -1,
        };
        let msg = encode_message(&h);
        assert_eq!(msg.len(), 1 + HINT_LEN);
        assert_eq!(decode_message(&msg), Ok(h));
        let mut table = LeadershipHints::new(10);
        table.apply(h);
        table.apply(hint(1, 2, 5));
        let mut other = LeadershipHints::new(10);
        assert_eq!(other.merge_state(&table.encode_state()), Ok(2));
        assert_eq!(other.get(&h.partition), Some(h));
        assert_eq!(other.get(&key(1)), Some(hint(1, 2, 5)));
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert_eq!(decode_message(&[]), Err(HintDecodeError::BadLength(0)));
        assert_eq!(decode_message(&[7, 1, 2]), Err(HintDecodeError::UnknownTag(7)));
        assert_eq!(decode_message(&[MSG_HINT, 1, 2]), Err(HintDecodeError::BadLength(2)));
        let mut t = LeadershipHints::new(10);
        assert_eq!(t.merge_state(&[STATE_V1, 0]), Err(HintDecodeError::BadLength(1)));
        assert_eq!(t.merge_state(&[2]), Err(HintDecodeError::UnknownVersion(2)));
        assert_eq!(t.merge_state(&[]), Ok(0));
    }

    #[test]
    fn last_writer_wins_by_epoch() {
        let mut t = LeadershipHints::new(10);
        assert!(t.apply(hint(0, 1, 5)));
        assert!(!t.apply(hint(0, 2, 4)), "an older epoch never replaces a newer one");
        assert!(!t.apply(hint(0, 2, 5)), "same epoch, known leader: first observation stays");
        assert!(t.apply(hint(0, 3, 6)));
        assert_eq!(t.get(&key(0)).map(|h| h.leader), Some(3));
        assert!(t.apply(hint(1, -1, 2)));
        assert!(t.apply(hint(1, 4, 2)), "a known leader replaces 'no leader' at the same epoch");
        assert!(!t.apply(hint(1, -1, 2)));
        // Merging in any order converges to the same table.
        let hints = [hint(0, 1, 1), hint(0, 2, 3), hint(0, 3, 2), hint(1, -1, 4), hint(1, 5, 4)];
        let mut forward = LeadershipHints::new(10);
        let mut backward = LeadershipHints::new(10);
        hints.iter().for_each(|h| _ = forward.apply(*h));
        hints.iter().rev().for_each(|h| _ = backward.apply(*h));
        let (mut f, mut b) = (forward.all(), backward.all());
        f.sort_by_key(|h| h.partition);
        b.sort_by_key(|h| h.partition);
        assert_eq!(f, b);
    }

    #[test]
    fn table_and_queue_are_bounded() {
        let mut t = LeadershipHints::new(3);
        for p in 0..5 {
            t.apply(hint(p, 1, 1));
        }
        assert_eq!((t.len(), t.queued(), t.refused()), (3, 3, 2));
        // Updates to known partitions still apply and replace their queued entry.
        for epoch in 2..100 {
            assert!(t.apply(hint(0, 1, epoch)));
        }
        assert_eq!((t.len(), t.queued()), (3, 3));
    }

    #[test]
    fn broadcasts_respect_the_byte_limit_and_retransmit_limit() {
        let mut t = LeadershipHints::new(100);
        for p in 0..10 {
            t.apply(hint(p, 1, 1));
        }
        let cost = |m: &[u8]| m.len() + 2;
        // Room for three messages per packet.
        let per = 1 + HINT_LEN + 2;
        let first = t.take_broadcasts(per * 3 + per - 1, 2, cost);
        assert_eq!(first.len(), 3);
        // Fewest-sent first: the next packets carry the other seven before any repeat.
        let mut seen: std::collections::HashSet<Vec<u8>> = first.into_iter().collect();
        for _ in 0..3 {
            for m in t.take_broadcasts(per * 3, 2, cost) {
                seen.insert(m);
            }
        }
        assert_eq!(seen.len(), 10);
        // Each hint goes out exactly twice, then the queue is empty.
        let mut total = 12;
        while t.queued() > 0 {
            total += t.take_broadcasts(per * 3, 2, cost).len();
        }
        assert_eq!(total, 20);
        assert!(t.take_broadcasts(per * 3, 2, cost).is_empty());
        assert_eq!(t.len(), 10, "the table keeps what the queue has finished sending");
    }

    #[test]
    fn retransmit_limit_matches_memberlist() {
        assert_eq!(retransmit_limit(4, 0), 1, "never zero: a hint goes out at least once");
        assert_eq!(retransmit_limit(4, 3), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 4 * 2);
        assert_eq!(retransmit_limit(4, 99), 4 * 2);
    }
}
