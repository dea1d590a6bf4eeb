//! Transactions in the log: COMMIT/ABORT **markers** and the **aborted-transaction
//! index** (Kafka's `.txnindex`).
//!
//! A transaction marker is a control batch (attributes: transactional and control) of the
//! transaction's producer id and epoch, holding one record whose key is `version: int16 (0),
//! type: int16` (0 ABORT, 1 COMMIT) and whose value is `version: int16 (0),
//! coordinatorEpoch: int32`, as Kafka's `EndTransactionMarker`. Consumers skip control
//! batches; a read_committed consumer also drops the records of every producer between
//! an aborted transaction's first offset and its ABORT marker, which the fetch response
//! lists (`aborted_transactions`).
//!
//! That list comes from the aborted-transaction index: per segment, a `.txnindex` file of
//! 34-byte big-endian entries in Kafka's layout (`version: int16 (0), producerId: int64,
//! firstOffset: int64, lastOffset: int64, lastStableOffset: int64`), one per ABORT marker
//! the segment holds (`lastOffset` is the marker's offset). The file is derived data: each
//! partition kind writes the entries of the markers it applies (a local log when it
//! appends them, a raft replica when it applies committed entries) and, on open, drops the
//! entries of the part of the log it replays and writes them again from the markers it
//! finds there. Entries are fsynced as they are written (aborts are rare), so what a
//! replay does not cover is durable; the file goes with its segment.
//!
//! `lastStableOffset` is the last stable offset just after the marker: a search for the
//! transactions overlapping `[from, upper)` may stop at the first entry whose
//! `lastStableOffset >= upper`, since every transaction starting below `upper` was
//! decided by then (Kafka's `TransactionIndex.collectAbortedTxns`).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::batch::BatchHeader;
use super::segment::{Segment, segment_path, sync_dir};
use super::{LogError, PartitionLog, io_err};

/// The extension of a segment's aborted-transaction index.
pub const TXN_INDEX_EXT: &str = "txnindex";
/// Bytes per `.txnindex` entry.
pub const ENTRY_SIZE: usize = 34;
/// The control record type of an ABORT marker.
pub const ABORT: i16 = 0;
/// The control record type of a COMMIT marker.
pub const COMMIT: i16 = 1;

/// A COMMIT or ABORT marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// One aborted transaction: a `.txnindex` entry and a fetch response's
/// `aborted_transactions` item (which sends the producer id and first offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset right after the marker.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    pub fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut out = [0u8; ENTRY_SIZE];
        out[0..2].copy_from_slice(&0i16.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    /// One entry; `None` for an entry of a version this broker does not know.
    pub fn decode(b: &[u8; ENTRY_SIZE]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(v)
        };
        (i16::from_be_bytes([b[0], b[1]]) == 0).then(|| AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// The marker batch a transaction coordinator's WriteTxnMarkers asks a partition to append.
pub fn marker_batch(producer_id: i64, producer_epoch: i16, marker: TxnMarker, now_ms: i64) -> Result<Bytes, LogError> {
    let mut key = BytesMut::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&(if marker.commit { COMMIT } else { ABORT }).to_be_bytes());
    let mut value = BytesMut::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: now_ms,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::None };
    RecordBatchEncoder::encode(&mut buf, [&record], &options).map_err(|e| LogError::Decode(format!("{e:#}")))?;
    Ok(buf.freeze())
}

/// The transaction marker `batch` (one whole stored batch, described by `h`) holds, if it
/// is one: a control batch of a producer (raft's own control batches have none) whose
/// record key is an ABORT or COMMIT.
pub fn read_marker(h: &BatchHeader, batch: &[u8]) -> Result<Option<TxnMarker>, LogError> {
    if !h.is_control() || h.producer_id < 0 {
        return Ok(None);
    }
    let mut buf = Bytes::copy_from_slice(&batch[..h.total_size().min(batch.len())]);
    let set = RecordBatchDecoder::decode(&mut buf).map_err(|e| LogError::Decode(format!("{e:#}")))?;
    let Some(record) = set.records.first() else { return Ok(None) };
    let control_type = match record.key.as_deref() {
        Some(&[_, _, a, b, ..]) => i16::from_be_bytes([a, b]),
        _ => return Ok(None),
    };
    let coordinator_epoch = match record.value.as_deref() {
        Some(&[_, _, a, b, c, d, ..]) => i32::from_be_bytes([a, b, c, d]),
        _ => -1,
    };
    Ok(match control_type {
        ABORT => Some(TxnMarker { commit: false, coordinator_epoch }),
        COMMIT => Some(TxnMarker { commit: true, coordinator_epoch }),
        _ => None,
    })
}

/// The entries of a `.txnindex` file (none when it does not exist). A torn last entry (a
/// crash mid-write) is ignored: the replay on open writes it again.
pub(crate) fn read_entries(path: &Path) -> Result<Vec<AbortedTxn>, LogError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("read transaction index", path)(e)),
    };
    Ok(bytes
        .chunks_exact(ENTRY_SIZE)
        .filter_map(|c| <&[u8; ENTRY_SIZE]>::try_from(c).ok().and_then(AbortedTxn::decode))
        .collect())
}

/// Replaces `path` with `entries` (removing it when there are none), durably.
fn rewrite_entries(dir: &Path, path: &Path, entries: &[AbortedTxn]) -> Result<(), LogError> {
    if entries.is_empty() {
        return match std::fs::remove_file(path) {
            Ok(()) => sync_dir(dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove transaction index", path)(e)),
        };
    }
    let bytes: Vec<u8> = entries.iter().flat_map(AbortedTxn::encode).collect();
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    super::write_bytes_durably(dir, &name, &bytes)
}

/// Appends `entries` to `seg`'s index, fsynced (with the directory when the file is new).
fn append_to_segment(seg: &mut Segment, entries: &[AbortedTxn]) -> Result<(), LogError> {
    let path = segment_path(&seg.dir, seg.base_offset, TXN_INDEX_EXT);
    let created = !path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(&path).map_err(io_err("open", &path))?;
    // A torn entry at the end (a crash mid-write) would misalign everything after it.
    let len = file.metadata().map_err(io_err("stat", &path))?.len();
    if len % ENTRY_SIZE as u64 != 0 {
        file.set_len(len - len % ENTRY_SIZE as u64).map_err(io_err("truncate", &path))?;
    }
    let bytes: Vec<u8> = entries.iter().flat_map(AbortedTxn::encode).collect();
    file.write_all(&bytes).map_err(io_err("append to", &path))?;
    file.sync_data().map_err(io_err("fsync", &path))?;
    if created {
        sync_dir(&seg.dir)?;
    }
    seg.aborted_txns = seg.aborted_txns.saturating_add(u32::try_from(entries.len()).unwrap_or(u32::MAX));
    Ok(())
}

impl PartitionLog {
    /// Records aborted transactions (in marker order), each in the index of the segment
    /// holding its marker.
    pub fn append_aborted_txns(&mut self, entries: &[AbortedTxn]) -> Result<(), LogError> {
        let mut rest = entries;
        while let Some(first) = rest.first() {
            let Some(i) = self.segments.iter().rposition(|s| s.base_offset <= first.last_offset) else {
                // Below the first segment: removed already, nothing to index.
                rest = &rest[1..];
                continue;
            };
            let limit = self.segments.get(i + 1).map_or(i64::MAX, |s| s.base_offset);
            let n = rest.iter().take_while(|e| e.last_offset < limit).count().max(1);
            append_to_segment(&mut self.segments[i], &rest[..n])?;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Drops the entries of markers at or after `offset` (a replay from `offset` writes
    /// them again; a truncation removed them).
    pub fn drop_aborted_txns_from(&mut self, offset: i64) -> Result<(), LogError> {
        let dir = self.dir.clone();
        for seg in self.segments.iter_mut().filter(|s| s.next_offset > offset || s.aborted_txns > 0) {
            let path = segment_path(&dir, seg.base_offset, TXN_INDEX_EXT);
            if seg.aborted_txns == 0 && !path.exists() {
                continue;
            }
            let all = read_entries(&path)?;
            let kept: Vec<AbortedTxn> = all.iter().copied().filter(|e| e.last_offset < offset).collect();
            if kept.len() != all.len() || seg.aborted_txns as usize != all.len() {
                rewrite_entries(&dir, &path, &kept)?;
            }
            seg.aborted_txns = u32::try_from(kept.len()).unwrap_or(u32::MAX);
        }
        Ok(())
    }

    /// The aborted transactions overlapping `[from, upper)`: those whose ABORT marker is at
    /// or after `from` and whose first offset is below `upper`, in marker order.
    pub fn aborted_txns(&self, from: i64, upper: i64) -> Result<Vec<AbortedTxn>, LogError> {
        let mut found = Vec::new();
        for seg in self.segments.iter().filter(|s| s.next_offset > from && s.aborted_txns > 0) {
            for e in read_entries(&segment_path(&self.dir, seg.base_offset, TXN_INDEX_EXT))? {
                if e.last_offset >= from && e.first_offset < upper {
                    found.push(e);
                }
                if e.last_stable_offset >= upper {
                    return Ok(found);
                }
            }
        }
        Ok(found)
    }

    /// Writes the aborted-transaction index of the whole log again from the markers in it
    /// (a raft follower's log restarted with a snapshot's retained data, which comes
    /// without its `.txnindex` files). As a replay would: a producer's transaction starts
    /// at its first transactional batch after its last marker, and an ABORT marker
    /// closing one with records gives the entry `(producer, first offset, marker offset)`.
    /// Redone safely: the entries there were are dropped first.
    pub fn reindex_aborted_txns(&mut self) -> Result<(), LogError> {
        let mut open: std::collections::HashMap<i64, i64> = std::collections::HashMap::new();
        let mut entries = Vec::new();
        let mut failed = None;
        self.for_each_batch(|h, bytes| {
            if h.producer_id < 0 || failed.is_some() {
                return;
            }
            if !h.is_control() {
                if h.is_transactional() {
                    open.entry(h.producer_id).or_insert(h.base_offset);
                }
                return;
            }
            let marker = match read_marker(h, bytes) {
                Ok(Some(marker)) => marker,
                Ok(None) => return,
                Err(e) => {
                    failed = Some(e);
                    return;
                }
            };
            let first = open.remove(&h.producer_id);
            if let Some(first) = first.filter(|f| !marker.commit && *f < h.base_offset) {
                let last_stable_offset = open.values().copied().min().unwrap_or(h.base_offset + 1);
                entries.push(AbortedTxn {
                    producer_id: h.producer_id,
                    first_offset: first,
                    last_offset: h.base_offset,
                    last_stable_offset,
                });
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        self.drop_aborted_txns_from(i64::MIN)?;
        self.append_aborted_txns(&entries)
    }

    /// Counts each segment's index entries (on open: the files are read once).
    pub(crate) fn load_txn_index_counts(&mut self) -> Result<(), LogError> {
        for seg in &mut self.segments {
            let path = segment_path(&seg.dir, seg.base_offset, TXN_INDEX_EXT);
            match std::fs::metadata(&path) {
                Ok(m) => seg.aborted_txns = u32::try_from(m.len() / ENTRY_SIZE as u64).unwrap_or(u32::MAX),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => seg.aborted_txns = 0,
                Err(e) => return Err(io_err("stat", &path)(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::BatchIter;

    #[test]
    fn index_entries_are_kafkas_34_byte_layout() {
        let e = AbortedTxn { producer_id: 7, first_offset: 10, last_offset: 20, last_stable_offset: 21 };
        let bytes = e.encode();
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[26..34], &21i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&bytes), Some(e));
        let mut newer = bytes;
        newer[1] = 1;
        assert_eq!(AbortedTxn::decode(&newer), None);
    }

    #[test]
    fn marker_batches_round_trip_and_raft_control_batches_are_not_markers() {
        for marker in
            [TxnMarker { commit: true, coordinator_epoch: 3 }, TxnMarker { commit: false, coordinator_epoch: 0 }]
        {
            let batch = marker_batch(42, 5, marker, 1_000).expect("encode");
            let (h, _) = BatchIter::new(&batch).next().expect("one batch").expect("valid");
            assert!(h.is_control() && h.is_transactional());
            assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (42, 5, -1));
            assert_eq!(read_marker(&h, &batch).expect("decode"), Some(marker));
        }
        let blank = crate::raft::control::blank_batch(0).expect("blank");
        let (h, _) = BatchIter::new(&blank).next().expect("one batch").expect("valid");
        assert_eq!(read_marker(&h, &blank).expect("decode"), None);
    }
}
