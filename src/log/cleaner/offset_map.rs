//! The cleaner's offset map: key → offset of the key's latest record in the part of the log
//! being cleaned, bounded by `log.cleaner.dedupe.buffer.size` like Kafka's
//! `SkimpyOffsetMap`.
//!
//! Keys are stored as 128-bit hashes (Kafka stores 16-byte MD5 digests), so a key of any
//! size costs one entry of [`BYTES_PER_ENTRY`] bytes. The hash is SipHash with keys drawn
//! at random for every map, so nobody can craft two keys that collide on purpose; an
//! accidental collision between two keys in the same pass has probability about n²/2¹²⁹.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Bytes one entry is counted as: a 16-byte hash and an 8-byte offset, as in Kafka.
pub const BYTES_PER_ENTRY: usize = 24;
/// Fraction of the buffer's slots used before the map counts as full
/// (`log.cleaner.io.buffer.load.factor`, Kafka's default 0.9).
const LOAD_FACTOR: f64 = 0.9;

pub struct OffsetMap {
    entries: HashMap<u128, i64>,
    capacity: usize,
    hashers: (std::collections::hash_map::RandomState, std::collections::hash_map::RandomState),
}

impl OffsetMap {
    /// A map using at most `buffer_bytes` worth of entries.
    pub fn with_buffer(buffer_bytes: usize) -> Self {
        let slots = buffer_bytes / BYTES_PER_ENTRY;
        OffsetMap {
            entries: HashMap::new(),
            capacity: ((slots as f64) * LOAD_FACTOR) as usize,
            hashers: Default::default(),
        }
    }

    /// How many entries the map may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn hash(&self, key: &[u8]) -> u128 {
        let mut a = self.hashers.0.build_hasher();
        a.write(key);
        let mut b = self.hashers.1.build_hasher();
        b.write(key);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }

    /// Whether `more` new keys would still fit.
    pub fn has_room_for(&self, more: usize) -> bool {
        self.entries.len().saturating_add(more) <= self.capacity
    }

    /// Records `offset` as the latest for `key` (offsets are put in increasing order).
    pub fn put(&mut self, key: &[u8], offset: i64) {
        let h = self.hash(key);
        self.entries.insert(h, offset);
    }

    /// The latest offset of `key`, if the map saw it.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.entries.get(&self.hash(key)).copied()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_wins_and_capacity_follows_the_buffer() {
        let mut m = OffsetMap::with_buffer(24 * 100);
        assert_eq!(m.capacity(), 90);
        m.put(b"a", 1);
        m.put(b"b", 2);
        m.put(b"a", 3);
        assert_eq!((m.get(b"a"), m.get(b"b"), m.get(b"c")), (Some(3), Some(2), None));
        assert_eq!(m.len(), 2);
        assert!(m.has_room_for(88) && !m.has_room_for(89));
    }
}
