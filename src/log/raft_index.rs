//! Raft index ↔ Kafka offset translation of a raft log (see `log::raft_entries`).
//!
//! With the segment files as the raft log, one raft entry is the batches of one append:
//! raft indexes are dense, Kafka offsets are not (an entry holds any number of offsets),
//! and blank or membership entries are one control batch each. An entry never spans two
//! segments (a roll happens before an append, never inside one).
//!
//! The translation keeps as little per entry as it can:
//! - an entry of **one batch** (the usual case: clients send one batch per partition per
//!   request, and raft's own entries are single control batches) costs nothing: it is
//!   the next batch in the file;
//! - an entry of **several batches** is a *group* `(raft index, batch count)`: the only
//!   state that cannot be derived from the segment data, so it must be durable no later
//!   than the batches it groups;
//! - **points** `(raft index, offset)` of entries' first batches, one at each segment
//!   start and then one every `interval` bytes (like the sparse offset index), bound the
//!   header walk of a lookup. They are derived data.
//!
//! A lookup takes the floor point and walks batch headers from it (the caller reads them
//! from the segment, from the offset index's position for the point's offset), counting
//! entries with [`RaftIndex::batches_in`]. Per segment this serializes to a small
//! `.raftindex` sidecar (first and next raft index, points, groups, CRC), written with the
//! segment's indexes when it is sealed; a segment without a usable sidecar is rebuilt from
//! its batch headers given its first raft index (the previous segment's next index) and
//! its groups.

use std::collections::BTreeMap;

/// Entry `index` starts at Kafka offset `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftPoint {
    pub index: u64,
    pub offset: i64,
}

/// Where one raft entry lies in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntrySpan {
    pub index: u64,
    pub segment_base: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// One batch as the translation needs it: its offsets and its size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpan {
    pub base_offset: i64,
    pub last_offset: i64,
    pub size: u64,
}

/// The translation for the entries of one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentEntries {
    pub segment_base: i64,
    /// Raft index of the first entry in this segment.
    pub first_index: u64,
    /// One past the last entry in this segment.
    pub next_index: u64,
    /// Sparse, increasing in both fields; the first is the segment's first entry.
    pub points: Vec<RaftPoint>,
    /// Entries of more than one batch: raft index -> batch count.
    pub groups: BTreeMap<u64, u32>,
    bytes_since_point: u64,
}

impl SegmentEntries {
    pub fn new(segment_base: i64, first_index: u64) -> Self {
        SegmentEntries {
            segment_base,
            first_index,
            next_index: first_index,
            points: Vec::new(),
            groups: BTreeMap::new(),
            bytes_since_point: 0,
        }
    }

    /// Records the next entry, made of `batches` (non-empty, consecutive), and returns
    /// its raft index.
    fn push(&mut self, batches: &[BatchSpan], interval: u64) -> u64 {
        let index = self.next_index;
        if self.points.is_empty() || self.bytes_since_point >= interval {
            self.points.push(RaftPoint { index, offset: batches[0].base_offset });
            self.bytes_since_point = 0;
        }
        if batches.len() > 1 {
            self.groups.insert(index, batches.len() as u32);
        }
        self.bytes_since_point += batches.iter().map(|b| b.size).sum::<u64>();
        self.next_index += 1;
        index
    }

    /// Rebuilds a segment's translation from its batch headers (in file order), its
    /// first raft index and its groups (the durable part).
    pub fn rebuild(
        segment_base: i64,
        first_index: u64,
        groups: BTreeMap<u64, u32>,
        batches: impl IntoIterator<Item = BatchSpan>,
        interval: u64,
    ) -> Self {
        let mut seg = SegmentEntries::new(segment_base, first_index);
        let mut pending: Vec<BatchSpan> = Vec::new();
        for b in batches {
            pending.push(b);
            let want = groups.get(&seg.next_index).copied().unwrap_or(1) as usize;
            if pending.len() == want {
                seg.push(&pending, interval);
                pending.clear();
            }
        }
        // Batches of an incomplete group (its tail was cut) do not form an entry.
        seg
    }

    fn floor_by_index(&self, index: u64) -> Option<RaftPoint> {
        let i = self.points.partition_point(|p| p.index <= index);
        i.checked_sub(1).map(|i| self.points[i])
    }

    fn floor_by_offset(&self, offset: i64) -> Option<RaftPoint> {
        let i = self.points.partition_point(|p| p.offset <= offset);
        i.checked_sub(1).map(|i| self.points[i])
    }

    /// Drops entries from `index` on.
    fn truncate(&mut self, index: u64) {
        self.points.retain(|p| p.index < index);
        self.groups.retain(|&i, _| i < index);
        self.next_index = self.next_index.min(index).max(self.first_index);
        // Points are re-spaced from the end as new entries come.
        self.bytes_since_point = 0;
    }
}

/// The raft index ↔ offset translation of one partition log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftIndex {
    /// Oldest segment first; never empty; the last one takes appends.
    segments: Vec<SegmentEntries>,
    /// Entries below this were purged (their data is below the log start).
    first_index: u64,
    interval: u64,
}

impl RaftIndex {
    /// An empty translation whose first entry will be `first_index`, in the segment at
    /// `segment_base`; a point every `interval` bytes.
    pub fn new(segment_base: i64, first_index: u64, interval: u64) -> Self {
        RaftIndex { segments: vec![SegmentEntries::new(segment_base, first_index)], first_index, interval }
    }

    /// From per-segment translations (loaded or rebuilt), oldest first.
    pub fn from_segments(segments: Vec<SegmentEntries>, first_index: u64, interval: u64) -> Option<Self> {
        let contiguous = segments.windows(2).all(|w| w[0].next_index == w[1].first_index);
        (!segments.is_empty() && contiguous).then_some(RaftIndex { segments, first_index, interval })
    }

    pub fn segments(&self) -> &[SegmentEntries] {
        &self.segments
    }

    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// The raft index the next entry gets.
    pub fn next_index(&self) -> u64 {
        self.active().next_index
    }

    fn active(&self) -> &SegmentEntries {
        &self.segments[self.segments.len() - 1]
    }

    /// How many batches entry `index` holds.
    pub fn batches_in(&self, index: u64) -> u32 {
        self.segment_of_index(index).and_then(|s| s.groups.get(&index).copied()).unwrap_or(1)
    }

    fn segment_of_index(&self, index: u64) -> Option<&SegmentEntries> {
        let i = self.segments.partition_point(|s| s.first_index <= index);
        i.checked_sub(1).map(|i| &self.segments[i]).filter(|s| index < s.next_index)
    }

    /// Records one append (the batches it wrote, in order) as the next entry, in the
    /// active segment; returns its raft index.
    pub fn append(&mut self, batches: &[BatchSpan]) -> Option<u64> {
        if batches.is_empty() {
            return None;
        }
        let interval = self.interval;
        let i = self.segments.len() - 1;
        Some(self.segments[i].push(batches, interval))
    }

    /// The log rolled to a new segment at `segment_base`.
    pub fn roll(&mut self, segment_base: i64) {
        let next = self.next_index();
        self.segments.push(SegmentEntries::new(segment_base, next));
    }

    /// The floor point for raft index `index` (with its segment's base), where a header
    /// walk to the entry starts; `None` if the entry is not in the log.
    pub fn point_for_index(&self, index: u64) -> Option<(i64, RaftPoint)> {
        if index < self.first_index {
            return None;
        }
        let seg = self.segment_of_index(index)?;
        seg.floor_by_index(index).map(|p| (seg.segment_base, p))
    }

    /// The floor point for Kafka offset `offset` (with its segment's base).
    pub fn point_for_offset(&self, offset: i64) -> Option<(i64, RaftPoint)> {
        let i = self.segments.partition_point(|s| s.segment_base <= offset);
        let seg = i.checked_sub(1).map(|i| &self.segments[i])?;
        seg.floor_by_offset(offset).map(|p| (seg.segment_base, p))
    }

    /// Walks batch headers from `point` (the batches of its segment starting at the
    /// point's offset, in order) to the entry that `wanted` selects.
    fn walk(
        &self,
        segment_base: i64,
        point: RaftPoint,
        batches: impl IntoIterator<Item = BatchSpan>,
        wanted: impl Fn(u64, &BatchSpan, &BatchSpan) -> bool,
    ) -> Option<EntrySpan> {
        let mut index = point.index;
        let mut first: Option<BatchSpan> = None;
        let mut taken = 0;
        for b in batches {
            if b.base_offset < point.offset {
                continue;
            }
            let start = *first.get_or_insert(b);
            taken += 1;
            if taken == self.batches_in(index) {
                if wanted(index, &start, &b) {
                    let (first_offset, last_offset) = (start.base_offset, b.last_offset);
                    return Some(EntrySpan { index, segment_base, first_offset, last_offset })
                        .filter(|e| e.index >= self.first_index);
                }
                index += 1;
                first = None;
                taken = 0;
            }
        }
        None
    }

    /// Entry `index`'s offsets, given the batches of its segment from
    /// [`point_for_index`](Self::point_for_index)'s point on.
    pub fn resolve_index(
        &self,
        index: u64,
        point: (i64, RaftPoint),
        batches: impl IntoIterator<Item = BatchSpan>,
    ) -> Option<EntrySpan> {
        if index >= self.next_index() {
            return None;
        }
        self.walk(point.0, point.1, batches, |i, _, _| i == index)
    }

    /// The entry holding Kafka offset `offset`, given the batches of its segment from
    /// [`point_for_offset`](Self::point_for_offset)'s point on.
    pub fn resolve_offset(
        &self,
        offset: i64,
        point: (i64, RaftPoint),
        batches: impl IntoIterator<Item = BatchSpan>,
    ) -> Option<EntrySpan> {
        self.walk(point.0, point.1, batches, |_, _, last| last.last_offset >= offset)
    }

    /// Raft truncation: entries from `index` on are gone (the caller truncates the log at
    /// the entry's first offset, which [`resolve_index`](Self::resolve_index) gives).
    /// Segments that then start after the log end go as the log's do; at least one stays.
    pub fn truncate(&mut self, index: u64) {
        while self.segments.len() > 1 && self.active().first_index >= index {
            self.segments.pop();
        }
        let i = self.segments.len() - 1;
        self.segments[i].truncate(index);
    }

    /// Raft purge: entries up to and including `index` are gone (the caller moves the log
    /// start to the first offset of entry `index + 1`). Segments holding only purged
    /// entries are dropped, except the active one.
    pub fn purge_through(&mut self, index: u64) {
        self.first_index = self.first_index.max(index + 1);
        let first = self.first_index;
        let whole = self.segments[..self.segments.len() - 1].iter().take_while(|s| s.next_index <= first).count();
        self.segments.drain(..whole);
        if let Some(seg) = self.segments.first_mut() {
            seg.groups.retain(|&i, _| i >= first);
        }
    }
}

const SIDECAR_MAGIC: &[u8; 4] = b"JRI1";

/// Errors reading a `.raftindex` sidecar (the caller rebuilds the segment's translation).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SidecarError {
    #[error("raft index sidecar is truncated")]
    Truncated,
    #[error("raft index sidecar has a bad magic")]
    Magic,
    #[error("raft index sidecar fails its CRC")]
    Crc,
    #[error("raft index sidecar is inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl SegmentEntries {
    /// The sidecar bytes: magic, first and next index, points, groups, CRC32C of all
    /// before it; big-endian like Kafka's index files.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.points.len() * 16 + self.groups.len() * 12);
        out.extend_from_slice(SIDECAR_MAGIC);
        out.extend_from_slice(&self.segment_base.to_be_bytes());
        out.extend_from_slice(&self.first_index.to_be_bytes());
        out.extend_from_slice(&self.next_index.to_be_bytes());
        out.extend_from_slice(&(self.points.len() as u32).to_be_bytes());
        for p in &self.points {
            out.extend_from_slice(&p.index.to_be_bytes());
            out.extend_from_slice(&p.offset.to_be_bytes());
        }
        out.extend_from_slice(&(self.groups.len() as u32).to_be_bytes());
        for (index, batches) in &self.groups {
            out.extend_from_slice(&index.to_be_bytes());
            out.extend_from_slice(&batches.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses [`encode`](Self::encode)'s bytes, refusing anything damaged or inconsistent.
    pub fn decode(bytes: &[u8]) -> Result<SegmentEntries, SidecarError> {
        let (body, crc) = bytes.split_last_chunk::<4>().ok_or(SidecarError::Truncated)?;
        if body.get(..4) != Some(SIDECAR_MAGIC.as_slice()) {
            return Err(SidecarError::Magic);
        }
        if crc32c::crc32c(body) != u32::from_be_bytes(*crc) {
            return Err(SidecarError::Crc);
        }
        let mut r = Reader(&body[4..]);
        let segment_base = r.u64()? as i64;
        let mut seg = SegmentEntries::new(segment_base, r.u64()?);
        seg.next_index = r.u64()?;
        for _ in 0..r.u32()? {
            seg.points.push(RaftPoint { index: r.u64()?, offset: r.u64()? as i64 });
        }
        for _ in 0..r.u32()? {
            let index = r.u64()?;
            seg.groups.insert(index, r.u32()?);
        }
        if !r.0.is_empty() {
            return Err(SidecarError::Inconsistent("bytes after the groups"));
        }
        let ordered = seg.points.windows(2).all(|w| w[0].index < w[1].index && w[0].offset < w[1].offset);
        let inside = |i: u64| (seg.first_index..seg.next_index).contains(&i);
        if seg.next_index < seg.first_index
            || !ordered
            || !seg.points.iter().all(|p| inside(p.index))
            || !seg.groups.iter().all(|(&i, &n)| inside(i) && n > 1)
        {
            return Err(SidecarError::Inconsistent("indexes out of order or outside the segment"));
        }
        Ok(seg)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], SidecarError> {
        let (head, rest) = self.0.split_first_chunk::<N>().ok_or(SidecarError::Truncated)?;
        self.0 = rest;
        Ok(*head)
    }

    fn u64(&mut self) -> Result<u64, SidecarError> {
        self.take::<8>().map(u64::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, SidecarError> {
        self.take::<4>().map(u32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A partition log as the translation sees it: segments of batches.
    struct Model {
        index: RaftIndex,
        segments: Vec<(i64, Vec<BatchSpan>)>,
        /// Expected (raft index, first offset, last offset) of every entry.
        entries: Vec<(u64, i64, i64)>,
        next_offset: i64,
    }

    const BATCH_BYTES: u64 = 100;

    impl Model {
        fn new() -> Self {
            Model {
                index: RaftIndex::new(0, 1, 250),
                segments: vec![(0, Vec::new())],
                entries: Vec::new(),
                next_offset: 0,
            }
        }

        /// One append of batches holding `records[i]` records each; rolls first when the
        /// active segment holds 6 batches or more.
        fn append(&mut self, records: &[i64]) {
            if self.segments.last().is_some_and(|(_, b)| b.len() >= 6) {
                self.segments.push((self.next_offset, Vec::new()));
                self.index.roll(self.next_offset);
            }
            let first = self.next_offset;
            let batches: Vec<BatchSpan> = records
                .iter()
                .map(|&n| {
                    let b = BatchSpan {
                        base_offset: self.next_offset,
                        last_offset: self.next_offset + n - 1,
                        size: BATCH_BYTES,
                    };
                    self.next_offset += n;
                    b
                })
                .collect();
            self.segments.last_mut().expect("segment").1.extend(&batches);
            let index = self.index.append(&batches).expect("index");
            self.entries.push((index, first, self.next_offset - 1));
        }

        fn batches(&self, segment_base: i64) -> Vec<BatchSpan> {
            self.segments.iter().find(|(b, _)| *b == segment_base).map(|(_, v)| v.clone()).unwrap_or_default()
        }

        fn by_index(&self, index: u64) -> Option<(u64, i64, i64)> {
            let point = self.index.point_for_index(index)?;
            let e = self.index.resolve_index(index, point, self.batches(point.0))?;
            Some((e.index, e.first_offset, e.last_offset))
        }

        fn by_offset(&self, offset: i64) -> Option<u64> {
            let point = self.index.point_for_offset(offset)?;
            self.index.resolve_offset(offset, point, self.batches(point.0)).map(|e| e.index)
        }

        /// Every expected entry resolves both ways.
        fn check(&self) {
            for &(index, first, last) in &self.entries {
                assert_eq!(self.by_index(index), Some((index, first, last)), "raft index {index}");
                for offset in first..=last {
                    assert_eq!(self.by_offset(offset), Some(index), "offset {offset}");
                }
            }
        }

        /// A mix of one-batch and several-batch appends of varied sizes.
        fn filled() -> Self {
            let mut m = Model::new();
            let appends: [&[i64]; 12] =
                [&[1], &[5, 2, 7], &[3], &[1], &[2, 2], &[9], &[4], &[1, 1, 1], &[6], &[2], &[3, 8], &[1]];
            for records in appends {
                m.append(records);
            }
            m
        }
    }

    #[test]
    fn translates_entries_of_one_and_several_batches_across_segments() {
        let m = Model::filled();
        m.check();
        assert_eq!(m.index.next_index(), 13);
        assert!(m.index.segments().len() >= 3, "the test spans several segments");
        let points: usize = m.index.segments().iter().map(|s| s.points.len()).sum();
        let groups: usize = m.index.segments().iter().map(|s| s.groups.len()).sum();
        assert!(points < m.entries.len(), "points are sparse ({points} for {} entries)", m.entries.len());
        assert_eq!(groups, 4, "only entries of several batches are recorded");
        assert_eq!(m.by_index(0), None);
        assert_eq!(m.by_index(13), None);
        assert_eq!(m.by_offset(m.next_offset), None);
    }

    #[test]
    fn truncation_inside_a_segment_and_at_a_segment_start() {
        for cut in [2u64, 3, 7, 8, 12] {
            let mut m = Model::filled();
            let (_, first_offset, _) = m.entries[(cut - 1) as usize];
            m.index.truncate(cut);
            // The log truncates at the entry's first offset, dropping segments after it.
            m.segments.retain(|(base, _)| *base < first_offset || *base == 0);
            if let Some((_, batches)) = m.segments.last_mut() {
                batches.retain(|b| b.base_offset < first_offset);
            }
            m.entries.truncate((cut - 1) as usize);
            m.next_offset = first_offset;
            assert_eq!(m.index.next_index(), cut, "cut at {cut}");
            assert_eq!(m.by_index(cut), None);
            assert_eq!(m.by_offset(first_offset), None);
            m.check();
            // New entries (a new leader's) continue from the cut.
            m.append(&[2, 3]);
            m.append(&[4]);
            assert_eq!(m.entries.last().map(|e| e.0), Some(cut + 1));
            m.check();
        }
    }

    #[test]
    fn purge_forgets_entries_and_drops_whole_segments() {
        let mut m = Model::filled();
        let segments_before = m.index.segments().len();
        m.index.purge_through(7);
        assert_eq!(m.index.first_index(), 8);
        assert!(m.index.segments().len() < segments_before, "a segment of purged entries went");
        for &(index, first, last) in m.entries.iter().filter(|e| e.0 <= 7) {
            assert_eq!(m.by_index(index), None, "purged {index}");
            for offset in first..=last {
                assert_eq!(m.by_offset(offset), None, "offset {offset} of purged entry {index}");
            }
        }
        m.entries.retain(|e| e.0 > 7);
        m.check();
        // Purging everything keeps the active segment for new entries.
        m.index.purge_through(12);
        assert_eq!(m.index.segments().len(), 1);
        m.append(&[1]);
        assert_eq!(m.entries.last().map(|e| e.0), Some(13));
        assert_eq!(m.by_index(13).map(|e| e.0), Some(13));
    }

    #[test]
    fn a_segment_is_rebuilt_from_its_batches_and_groups() {
        let m = Model::filled();
        for seg in m.index.segments() {
            let batches = m.batches(seg.segment_base);
            let rebuilt = SegmentEntries::rebuild(seg.segment_base, seg.first_index, seg.groups.clone(), batches, 250);
            assert_eq!((&rebuilt.points, rebuilt.next_index), (&seg.points, seg.next_index));
        }
        // A group whose last batch was cut (a torn tail) is not an entry.
        let seg = &m.index.segments()[0];
        let mut batches = m.batches(seg.segment_base);
        batches.truncate(2); // entry 1 (one batch) and the first of entry 2's three
        let rebuilt = SegmentEntries::rebuild(seg.segment_base, seg.first_index, seg.groups.clone(), batches, 250);
        assert_eq!(rebuilt.next_index, 2);
    }

    #[test]
    fn sidecar_round_trips_and_refuses_damage() {
        let m = Model::filled();
        for seg in m.index.segments() {
            let bytes = seg.encode();
            let decoded = SegmentEntries::decode(&bytes).expect("decode");
            assert_eq!((&decoded.points, &decoded.groups), (&seg.points, &seg.groups));
            assert_eq!((decoded.first_index, decoded.next_index), (seg.first_index, seg.next_index));
        }
        let bytes = m.index.segments()[0].encode();
        assert_eq!(SegmentEntries::decode(&bytes[..bytes.len() - 1]), Err(SidecarError::Crc));
        assert_eq!(SegmentEntries::decode(&bytes[..3]), Err(SidecarError::Truncated));
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert_eq!(SegmentEntries::decode(&flipped), Err(SidecarError::Crc));
        let mut magic = bytes;
        magic[0] = b'X';
        assert_eq!(SegmentEntries::decode(&magic), Err(SidecarError::Magic));
        // Well-formed bytes describing a group outside the segment are refused.
        let mut odd = m.index.segments()[0].clone();
        odd.groups.insert(odd.next_index + 5, 2);
        assert!(matches!(SegmentEntries::decode(&odd.encode()), Err(SidecarError::Inconsistent(_))));
    }

    #[test]
    fn segments_must_continue_each_other() {
        let m = Model::filled();
        let segs = m.index.segments().to_vec();
        assert!(RaftIndex::from_segments(segs.clone(), 1, 250).is_some());
        let mut gap = segs;
        gap.remove(1);
        assert!(RaftIndex::from_segments(gap, 1, 250).is_none());
        assert!(RaftIndex::from_segments(Vec::new(), 1, 250).is_none());
    }
}
