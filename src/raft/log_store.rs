//! The raft log store of one partition: the partition's segment files are the raft log.
//!
//! [`PartitionRaftLog`] is the plain inner type with all the logic (testable without
//! openraft's traits): a [`PartitionLog`] with its raft index
//! ([`PartitionLog::open_raft_index`]) plus the small state raft needs durably — vote,
//! committed log id, last purged log id, applied point and membership — in a per-partition
//! `raft-state` file (JSON, written tmp + fsync + rename + directory fsync).
//! [`RaftLogStore`] is the thin openraft impl around it.
//!
//! Why a file and not fjall: the state changes rarely (a vote per election, the committed
//! id when raft saves it), must be durable before the call returns, and belongs to the
//! partition directory so deleting a partition deletes it; a file keeps one partition's
//! raft state self-contained with no shared store to open in tests. At 10,000 partitions
//! fjall's shared journal (one fsync for many groups' votes) may win; the inner type keeps
//! the storage behind three methods so it can move.
//!
//! Entries: normal entries are the batches of one append; blank and membership entries are
//! control batches (see [`super::control`]). The entry's term is its batches'
//! `partitionLeaderEpoch`.
//!
//! Flush: with the broker's group-commit [`Flusher`] ([`RaftLogStore::with_flusher`]),
//! `append` writes to the page cache and returns; `IOFlushed` completes when the flusher's
//! round has fdatasynced the partition's active segment and every older segment is sealed
//! (one round answers many partitions, so completions come later and out of order).
//! Without one ([`RaftLogStore::new`]) `append` fsyncs inline and completes it at once.
//! The sidecar writes that must precede their batches (see `log::raft_entries`) are
//! synchronous either way. The store does its file I/O on the calling task (under the
//! partition's mutex); moving it to a blocking pool is left for the broker integration.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{EntryPayload, OptionalSend, RaftLogReader};
use serde::{Deserialize, Serialize};

use super::control::{self, ControlError, RaftControl};
use super::{AppendBatches, CommittedLeaderId, Entry, LogId, StoredMembership, Term, TermOverflow, TypeConfig, Vote};
use crate::log::{BatchHeader, Flusher, LogConfig, LogError, PartitionLog, StoredEntry, SyncTarget, write_durably};

/// The file holding a partition's raft state.
pub const RAFT_STATE_FILE: &str = "raft-state.json";
/// The file holding a partition's last snapshot (see [`StoredSnapshot`]).
pub const RAFT_SNAPSHOT_FILE: &str = "raft-snapshot.json";

/// Errors of the raft log store.
#[derive(Debug, thiserror::Error)]
pub enum RaftLogError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Term(#[from] TermOverflow),
    #[error("raft state file {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read raft state file {path}: {source}")]
    StateIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("raft entry {got} does not follow the log's last entry (next is {expected})")]
    NotContiguous { expected: u64, got: u64 },
    #[error("raft entry {index} has leader epoch {epoch}, not a raft term")]
    BadEpoch { index: u64, epoch: i32 },
    #[error("raft entry {0} is missing from the log")]
    Missing(u64),
    #[error("snapshot at raft entry {index} needs its retained data, which was not received")]
    RetainedNotStaged { index: u64 },
    #[error("raft log lock poisoned: {0}")]
    Poisoned(io::Error),
}

impl From<RaftLogError> for io::Error {
    fn from(e: RaftLogError) -> Self {
        io::Error::other(e)
    }
}

/// The small durable state beside the log.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RaftState {
    pub vote: Option<Vote>,
    pub committed: Option<LogId>,
    pub last_purged: Option<LogId>,
    pub applied: Option<LogId>,
    pub membership: Option<StoredMembership>,
    /// The memberships applied since the last snapshot's point, oldest first; the first
    /// was in effect at that point (a snapshot names the membership of its last entry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memberships: Vec<StoredMembership>,
    /// A restart after an installed snapshot not known to be finished: (the snapshot's
    /// last raft index, the offset the log restarts at). Redone at open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarting: Option<(u64, i64)>,
    /// With `restarting`: the log restarts with the snapshot's staged retained data (see
    /// [`crate::log::retained`]): (its log start, the offset after the last batch staged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarting_from: Option<(i64, i64)>,
    /// The offset after the last purged entry: sealed segments wholly below it hold data
    /// only (a compacted log's), no entries (see [`PartitionLog::open_raft_index`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged_end: Option<i64>,
}

/// A partition snapshot as stored beside the log: small (see
/// [`crate::raft::replica_state`]), written durably before raft may purge the entries it
/// covers, so a restarted replica still has it to send to a far-behind follower.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub meta: openraft::storage::SnapshotMeta<CommittedLeaderId, super::NodeId, super::JetNode>,
    /// The offset after the snapshot's last entry: where a replica lacking that entry
    /// restarts its log.
    pub base_offset: i64,
    /// The snapshot's data (JSON).
    pub data: String,
}

/// One entry the store wrote (to the page cache; durability is `IOFlushed`'s business):
/// where its batches landed. A raft leader learns its proposals' offsets from these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenEntry {
    pub log_id: LogId,
    /// An append's batches (not a blank or membership entry).
    pub normal: bool,
    pub base_offset: i64,
    /// The log end after the entry.
    pub end_offset: i64,
}

/// What the store tells the replica above it, after the fact and outside the store's
/// lock, before the call that caused it returns to openraft (so a truncation is known
/// before any entry written after it can be applied).
pub trait LogEvents: Send + Sync {
    /// Entries were written, in log order.
    fn written(&self, entries: &[WrittenEntry]);
    /// Entries after `last_kept` were removed (raft truncation of an uncommitted tail;
    /// not reported when there was nothing to remove).
    fn truncated(&self, last_kept: Option<LogId>);
}

/// The log id of raft entry `index` written in `term`.
pub fn log_id(term: Term, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term), index)
}

/// The raft log of one partition (the logic; see [`RaftLogStore`] for the trait impl).
#[derive(Debug)]
pub struct PartitionRaftLog {
    log: PartitionLog,
    dir: PathBuf,
    state: RaftState,
    last_log_id: Option<LogId>,
    snapshot: Option<StoredSnapshot>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl PartitionRaftLog {
    /// Opens (or creates) the partition in `dir`, recovering the log and its raft index.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, RaftLogError> {
        let log = PartitionLog::open_raft(dir, config)?;
        let state: RaftState = read_json(&dir.join(RAFT_STATE_FILE))?.unwrap_or_default();
        let snapshot: Option<StoredSnapshot> = read_json(&dir.join(RAFT_SNAPSHOT_FILE))?;
        let mut me = PartitionRaftLog { log, dir: dir.to_path_buf(), state, last_log_id: None, snapshot };
        match me.state.restarting {
            // A snapshot was being installed past this log's end when the broker stopped:
            // the restart is redone whatever it had got to.
            Some((index, base)) => {
                crate::log::retained::discard_staged(dir, Some(index))?;
                me.restart_after_snapshot(index, base)?
            }
            None => {
                crate::log::retained::discard_staged(dir, None)?;
                let first = me.state.last_purged.map_or(0, |l| l.index + 1);
                me.log.open_raft_index(first, me.state.purged_end.unwrap_or(i64::MIN))?
            }
        }
        me.last_log_id = me.recompute_last_log_id()?;
        Ok(me)
    }

    /// The last snapshot stored.
    pub fn snapshot(&self) -> Option<&StoredSnapshot> {
        self.snapshot.as_ref()
    }

    /// Stores `snapshot` durably (replacing the last one).
    pub fn save_snapshot(&mut self, snapshot: StoredSnapshot) -> Result<(), RaftLogError> {
        let path = self.dir.join(RAFT_SNAPSHOT_FILE);
        let text = serde_json::to_string(&snapshot).map_err(|source| RaftLogError::State { path, source })?;
        write_durably(&self.dir, RAFT_SNAPSHOT_FILE, &text)?;
        self.snapshot = Some(snapshot);
        Ok(())
    }

    /// Installs a snapshot from the leader, durably: stored first; then its point becomes
    /// the applied one (with its membership); and if this log lacks its last entry, the
    /// entries up to it count as purged in the same state write and the log restarts
    /// empty after it (see [`PartitionLog::restart_after_snapshot`]; a crash before the
    /// files are replaced finishes it at open). Returns whether it restarted.
    /// `log_start` is the snapshot's: below `base` (a compacted log) the data from it
    /// goes with the snapshot, and a restart keeps what was staged of it (see
    /// [`crate::log::retained`]; `staged_end`: staged complete, ending there) and cannot
    /// happen without it. A log that holds the snapshot's entries moves its start there
    /// before the snapshot's point counts as applied.
    pub fn install_snapshot(
        &mut self,
        snapshot: StoredSnapshot,
        log_start: i64,
        staged_end: Option<i64>,
    ) -> Result<bool, RaftLogError> {
        let Some(last) = snapshot.meta.last_log_id else { return Ok(false) };
        let base = snapshot.base_offset;
        let membership = snapshot.meta.last_membership.clone();
        let held = self.log.read_entry(last.index)?.map(|e| e.epoch);
        let restart = held.is_none() || held != last.leader_id.term.to_leader_epoch().ok();
        let retained_from = match staged_end {
            _ if !restart || log_start >= base => None,
            Some(end) => Some((log_start, end)),
            None => return Err(RaftLogError::RetainedNotStaged { index: last.index }),
        };
        if !restart {
            // Log-start entries up to the snapshot's point are never applied here: its
            // log start is durable before that point counts as applied.
            self.log.move_log_start(log_start)?;
        }
        self.save_snapshot(snapshot)?;
        self.state.applied = Some(last);
        self.state.membership = Some(membership.clone());
        self.state.memberships = vec![membership];
        if restart {
            self.state.last_purged = Some(last);
            self.state.purged_end = Some(base);
            self.state.restarting = Some((last.index, base));
            self.state.restarting_from = retained_from;
        }
        self.persist()?;
        if restart {
            self.restart_after_snapshot(last.index, base)?;
            self.last_log_id = Some(last);
        }
        Ok(restart)
    }

    /// Restarts the log empty at `base` after raft entry `index` (files first, then the
    /// durable marker of [`RaftState::restarting`] is cleared).
    fn restart_after_snapshot(&mut self, index: u64, base: i64) -> Result<(), RaftLogError> {
        match self.state.restarting_from {
            Some((log_start, staged_end)) => self.log.restart_with_staged(index + 1, base, log_start, staged_end)?,
            None => self.log.restart_after_snapshot(index, base)?,
        }
        self.state.restarting = None;
        self.state.restarting_from = None;
        self.persist()
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The partition log (reads, offsets).
    pub fn log(&self) -> &PartitionLog {
        &self.log
    }

    /// The partition log, for the cleaner: it may rewrite only the segments below raft's
    /// log (see `broker::raft_replica::compaction`); everything else is raft's.
    pub fn data_below_raft_mut(&mut self) -> &mut PartitionLog {
        &mut self.log
    }

    /// New segment settings (the topic's configs changed).
    pub fn set_log_config(&mut self, config: crate::log::LogConfig) {
        self.log.set_config(config);
    }

    pub fn state(&self) -> &RaftState {
        &self.state
    }

    fn persist(&self) -> Result<(), RaftLogError> {
        let path = self.dir.join(RAFT_STATE_FILE);
        let text = serde_json::to_string(&self.state).map_err(|source| RaftLogError::State { path, source })?;
        Ok(write_durably(&self.dir, RAFT_STATE_FILE, &text)?)
    }

    fn first_and_next(&self) -> (u64, u64) {
        self.log.raft_index().map_or((0, 0), |r| (r.first_index(), r.next_index()))
    }

    fn recompute_last_log_id(&self) -> Result<Option<LogId>, RaftLogError> {
        let (first, next) = self.first_and_next();
        if next > first {
            return Ok(Some(self.entry(next - 1)?.log_id));
        }
        Ok(self.state.last_purged)
    }

    /// Entry `index`, decoded from its stored batches.
    pub fn entry(&self, index: u64) -> Result<Entry, RaftLogError> {
        let stored = self.log.read_entry(index)?.ok_or(RaftLogError::Missing(index))?;
        decode_entry(stored)
    }

    /// The entries of `range` that the log holds (purged ones are skipped).
    pub fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>, RaftLogError> {
        let (first, next) = self.first_and_next();
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => next,
        };
        (start.max(first)..end.min(next)).map(|i| self.entry(i)).collect()
    }

    pub fn log_state(&self) -> LogState<TypeConfig> {
        LogState {
            last_purged_log_id: self.state.last_purged,
            last_log_id: self.last_log_id.or(self.state.last_purged),
        }
    }

    /// Appends entries (each the next index, or any index on an empty log) and fsyncs.
    pub fn append(&mut self, entries: impl IntoIterator<Item = Entry>) -> Result<Vec<WrittenEntry>, RaftLogError> {
        let (_, written) = self.append_unsynced(entries)?;
        self.log.flush()?;
        Ok(written)
    }

    /// Appends entries to the page cache; returns what the group-commit flusher must sync
    /// to make them durable, and where each entry landed.
    pub fn append_unsynced(
        &mut self,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Result<(SyncTarget, Vec<WrittenEntry>), RaftLogError> {
        let mut written = Vec::new();
        for entry in entries {
            let (first, next) = self.first_and_next();
            let index = entry.log_id.index;
            if index != next {
                if first != next {
                    return Err(RaftLogError::NotContiguous { expected: next, got: index });
                }
                self.log.restart_raft_index(index)?;
            }
            let epoch = entry.log_id.leader_id.term.to_leader_epoch()?;
            let now = now_ms();
            // Every replica builds raft's own entries itself: they carry no timestamp
            // (Kafka's -1), so their bytes, like those of appends, are the same everywhere.
            let batches = match &entry.payload {
                EntryPayload::Blank => control::blank_batch(control::NO_TIMESTAMP)?,
                EntryPayload::Membership(m) => control::membership_batch(m, control::NO_TIMESTAMP)?,
                EntryPayload::Normal(AppendBatches(b)) => b.clone(),
            };
            let (info, _) = self.log.append_entry(&batches, epoch, now)?;
            self.last_log_id = Some(entry.log_id);
            written.push(WrittenEntry {
                log_id: entry.log_id,
                normal: matches!(entry.payload, EntryPayload::Normal(_)),
                base_offset: info.base_offset,
                end_offset: info.last_offset + 1,
            });
        }
        Ok((self.log.sync_target(), written))
    }

    /// The log end after entry `index` (its last offset + 1), read from the segment files.
    pub fn end_offset_of(&self, index: u64) -> Result<i64, RaftLogError> {
        let stored = self.log.read_entry(index)?.ok_or(RaftLogError::Missing(index))?;
        Ok(stored.last_offset + 1)
    }

    /// Removes entries after `last` (all of them for `None`).
    pub fn truncate_after(&mut self, last: Option<LogId>) -> Result<(), RaftLogError> {
        let from = last.map_or(0, |l| l.index + 1);
        self.log.truncate_entries_from(from)?;
        self.last_log_id = self.recompute_last_log_id()?;
        Ok(())
    }

    /// Removes entries up to and including `upto`. The purged id is recorded first: a
    /// crash before the files go leaves readable entries below it, which raft ignores.
    pub fn purge(&mut self, upto: LogId) -> Result<(), RaftLogError> {
        if self.state.last_purged.is_some_and(|p| p.index >= upto.index) {
            return Ok(());
        }
        // Where the purged entries end, while the entry can still be read (a compacted
        // log keeps the data below it).
        let (_, next) = self.first_and_next();
        let end = match self.log.read_entry(upto.index)? {
            Some(entry) => Some(entry.last_offset + 1),
            // Past the last entry: everything here is below raft's log from now on.
            None if upto.index + 1 >= next => Some(self.log.log_end_offset()),
            None => None,
        };
        if end.is_some() {
            self.state.purged_end = end;
        }
        self.state.last_purged = Some(upto);
        self.persist()?;
        self.log.purge_entries_through(upto.index)?;
        if self.last_log_id.is_none_or(|l| l.index <= upto.index) {
            self.last_log_id = Some(upto);
        }
        Ok(())
    }

    pub fn save_vote(&mut self, vote: &Vote) -> Result<(), RaftLogError> {
        self.state.vote = Some(*vote);
        self.persist()
    }

    pub fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftLogError> {
        self.state.committed = committed;
        self.persist()
    }

    /// Records the applied point and membership (with the memberships applied since the
    /// last snapshot's point), so start-up need not scan the log for them.
    pub fn save_applied(
        &mut self,
        applied: Option<LogId>,
        membership: Option<StoredMembership>,
        memberships: &[StoredMembership],
    ) -> Result<(), RaftLogError> {
        self.state.applied = applied;
        self.state.membership = membership;
        if self.state.memberships != memberships {
            self.state.memberships = memberships.to_vec();
        }
        self.persist()
    }

    /// Indexes the aborted transactions applied markers closed (see [`crate::log::txn`]).
    pub fn index_aborted_txns(&mut self, entries: &[crate::log::txn::AbortedTxn]) -> Result<(), RaftLogError> {
        Ok(self.log.append_aborted_txns(entries)?)
    }

    /// Drops the index entries of markers from `offset` on (a replay writes them again).
    pub fn drop_aborted_txns_from(&mut self, offset: i64) -> Result<(), RaftLogError> {
        Ok(self.log.drop_aborted_txns_from(offset)?)
    }

    /// Moves the log start (a log-start entry applied; see [`PartitionLog::move_log_start`]).
    pub fn move_log_start(&mut self, offset: i64) -> Result<i64, RaftLogError> {
        let start = self.log.move_log_start(offset)?;
        self.log.delete_data_below_start()?;
        Ok(start)
    }
}

/// Reads a JSON file beside the log; `None` if it does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, RaftLogError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| RaftLogError::State { path: path.to_path_buf(), source }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(RaftLogError::StateIo { path: path.to_path_buf(), source }),
    }
}

/// An openraft entry from stored batches: control batches are raft's own entries, but
/// for a log-start batch, which was proposed as a normal entry.
fn decode_entry(stored: StoredEntry) -> Result<Entry, RaftLogError> {
    let StoredEntry { index, epoch, batches, .. } = stored;
    let term = Term::from_leader_epoch(epoch).ok_or(RaftLogError::BadEpoch { index, epoch })?;
    let header = BatchHeader::parse(&batches).map_err(LogError::from)?;
    let control = if control::is_raft_control(&header) {
        Some(control::decode(&batches.slice(..header.total_size().min(batches.len())))?)
    } else {
        None
    };
    let payload = match control {
        Some(RaftControl::Blank) => EntryPayload::Blank,
        Some(RaftControl::Membership(m)) => EntryPayload::Membership(m),
        Some(RaftControl::LogStart(_)) | None => EntryPayload::Normal(AppendBatches(batches)),
    };
    Ok(Entry { log_id: log_id(term, index), payload })
}

/// The openraft log store and reader of one partition: a shared handle on the inner type.
#[derive(Clone)]
pub struct RaftLogStore {
    inner: Arc<Mutex<PartitionRaftLog>>,
    /// The broker's group-commit flusher; `None` fsyncs inside `append`.
    flusher: Option<Flusher>,
    /// Who learns of writes and truncations (the partition's replica); weak, since the
    /// replica holds the store.
    events: Option<Weak<dyn LogEvents>>,
}

impl Debug for RaftLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftLogStore").field("inner", &self.inner).field("flusher", &self.flusher.is_some()).finish()
    }
}

impl RaftLogStore {
    /// A store that fsyncs inside each `append` and completes `IOFlushed` inline.
    pub fn new(inner: PartitionRaftLog) -> Self {
        RaftLogStore { inner: Arc::new(Mutex::new(inner)), flusher: None, events: None }
    }

    /// A store whose appends return once written; `IOFlushed` completes when `flusher`'s
    /// round has synced them (one fsync round answers every partition on the broker, so
    /// callbacks complete later and possibly out of order across groups).
    pub fn with_flusher(inner: PartitionRaftLog, flusher: Flusher) -> Self {
        RaftLogStore { inner: Arc::new(Mutex::new(inner)), flusher: Some(flusher), events: None }
    }

    /// This handle (and the clones made from it) report writes and truncations to `events`.
    pub fn with_events(mut self, events: Weak<dyn LogEvents>) -> Self {
        self.events = Some(events);
        self
    }

    fn events(&self) -> Option<Arc<dyn LogEvents>> {
        self.events.as_ref().and_then(Weak::upgrade)
    }

    fn report_written(&self, written: &[WrittenEntry]) {
        if let Some(events) = self.events() {
            events.written(written);
        }
    }

    /// The inner log; a poisoned lock (a panic while holding it) is an I/O error.
    pub fn lock(&self) -> Result<MutexGuard<'_, PartitionRaftLog>, io::Error> {
        self.inner.lock().map_err(|e| io::Error::other(e.to_string()))
    }
}

/// Reports a failed append to raft through the callback and to the caller.
fn fail(callback: IOFlushed<TypeConfig>, e: RaftLogError) -> io::Error {
    let e = io::Error::from(e);
    callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
    e
}

impl RaftLogReader<TypeConfig> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        Ok(self.lock()?.entries(range)?)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock()?.state.vote)
    }
}

impl RaftLogStorage<TypeConfig> for RaftLogStore {
    type LogReader = RaftLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        Ok(self.lock()?.log_state())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        Ok(self.lock()?.save_vote(vote)?)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        Ok(self.lock()?.save_committed(committed)?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock()?.state.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        if let Some(flusher) = &self.flusher {
            let appended = self.lock()?.append_unsynced(entries);
            let target = match appended {
                Ok((t, written)) => {
                    self.report_written(&written);
                    t
                }
                Err(e) => return Err(fail(callback, e)),
            };
            let flusher = flusher.clone();
            tokio::spawn(async move {
                let synced = flusher.sync(target).await;
                callback.io_completed(synced.map(drop).map_err(io::Error::other));
            });
            return Ok(());
        }
        let result = self.lock()?.append(entries);
        match result {
            Ok(written) => {
                self.report_written(&written);
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => Err(fail(callback, e)),
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let removed = {
            let mut log = self.lock()?;
            let end = log.log().log_end_offset();
            log.truncate_after(last_log_id)?;
            log.log().log_end_offset() < end
        };
        if removed && let Some(events) = self.events() {
            events.truncated(last_log_id);
        }
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        Ok(self.lock()?.purge(log_id)?)
    }
}
