//! The cleaner's offset map: key → offset of the key's latest record in the part of the log
//! being cleaned, bounded by `log.cleaner.dedupe.buffer.size` like Kafka's
//! `SkimpyOffsetMap`.
//!
//! Keys are stored as 128-bit hashes (Kafka stores 16-byte MD5 digests), so a key of any
//! size costs one entry of [`BYTES_PER_ENTRY`] bytes. The hash is SipHash with keys drawn
//! at random for every map, so nobody can craft two keys that collide on purpose; an
//! accidental collision between two keys in the same pass has probability about n²/2¹²⁹.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

/// Bytes one entry is counted as: a 16-byte hash and an 8-byte offset, as in Kafka.
pub const BYTES_PER_ENTRY: usize = 24;
/// Fraction of the buffer's slots used before the map counts as full
/// (`log.cleaner.io.buffer.load.factor`, Kafka's default 0.9).
const LOAD_FACTOR: f64 = 0.9;

/// The map's own hasher: its keys are already random 128-bit hashes, so it only folds
/// them (keys as `[u64; 2]` keep each slot at 24 bytes, where `u128`'s 16-byte alignment
/// would pad it to 32).
#[derive(Default)]
struct Fold(u64);

impl Hasher for Fold {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(17) ^ u64::from_ne_bytes(word);
        }
    }
}

pub struct OffsetMap {
    entries: HashMap<[u64; 2], i64, BuildHasherDefault<Fold>>,
    capacity: usize,
    hashers: (std::collections::hash_map::RandomState, std::collections::hash_map::RandomState),
}

impl OffsetMap {
    /// A map whose table never needs more than `buffer_bytes`: the largest power-of-two
    /// table of 25-byte slots (an entry and its control byte) that fits, filled to the
    /// table's own 7/8, and no more than Kafka's 0.9 of `buffer_bytes / 24` entries.
    pub fn with_buffer(buffer_bytes: usize) -> Self {
        let slots = buffer_bytes / (BYTES_PER_ENTRY + 1);
        let table = if slots == 0 { 0 } else { 1usize << (usize::BITS - 1 - slots.leading_zeros()) };
        let kafka = ((buffer_bytes / BYTES_PER_ENTRY) as f64 * LOAD_FACTOR) as usize;
        // hashbrown's own fill limit: all but one slot of tables under 8, else 7/8.
        let fill = if table < 8 { table.saturating_sub(1) } else { table / 8 * 7 };
        OffsetMap { entries: HashMap::default(), capacity: fill.min(kafka), hashers: Default::default() }
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

    fn hash(&self, key: &[u8]) -> [u64; 2] {
        let mut a = self.hashers.0.build_hasher();
        a.write(key);
        let mut b = self.hashers.1.build_hasher();
        b.write(key);
        [a.finish(), b.finish()]
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

    /// Empties the map, keeping at most what `capacity` entries need.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.entries.shrink_to(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_wins_and_capacity_follows_the_buffer() {
        // 2,400 bytes: 96 slots, a 64-slot table, 56 entries.
        let mut m = OffsetMap::with_buffer(24 * 100);
        assert_eq!(m.capacity(), 56);
        m.put(b"a", 1);
        m.put(b"b", 2);
        m.put(b"a", 3);
        assert_eq!((m.get(b"a"), m.get(b"b"), m.get(b"c")), (Some(3), Some(2), None));
        assert_eq!(m.len(), 2);
        assert!(m.has_room_for(54) && !m.has_room_for(55));
        // Filled to capacity, the table is still the one the buffer allows.
        m.clear();
        for i in 0..56u32 {
            m.put(&i.to_be_bytes(), i64::from(i));
        }
        assert_eq!(m.entries.capacity(), 56);
        let big = OffsetMap::with_buffer(128 << 20);
        assert!(big.capacity() * (BYTES_PER_ENTRY + 1) * 8 / 7 <= 128 << 20);
    }
}
