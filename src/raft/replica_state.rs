//! What a partition's raft state machine ([`super::partition_state`]), its log store's
//! events ([`LogEvents`]) and its [`RaftReplica`](crate::broker::raft_replica::RaftReplica)
//! share: the high watermark ([`Progress`]), the applied point and membership, the
//! idempotent-producer state of the applied entries and, on the leader, the proposals in
//! flight.
//!
//! # A proposal learns its offsets from the leader's own store
//!
//! Kafka offsets are assigned by every replica's log store as a pure function of the log
//! prefix (see `log::raft_entries`), so a leader learns a proposal's base offset only when
//! its own store writes the entry. The replica checks and sends proposals one at a time,
//! in order; openraft's leader writes its entries in the order it receives them; and with
//! `leader_id_std` every entry of term T in this node's log was written by T's one leader.
//! So the normal entries of the term this node leads, as its store reports them
//! ([`LogEvents::written`]), are exactly its accepted proposals, in order: a FIFO of
//! waiters ([`Leading::pending`]) matches them. A proposal openraft refuses (leadership
//! already lost) is never written, and neither is any later one of that term: the waiters
//! of a term fail when this node is seen to stop leading it. A proposal refused while
//! this node still leads (an expired leader lease, a leadership transfer) gives the term
//! up ([`ReplicaState::refused`]).
//!
//! # Idempotent producers
//!
//! Every replica rebuilds producer state from the batches it applies (committed data). A
//! leader checks a new batch against more than that: its whole log (a new leader's
//! uncommitted tail from earlier terms will be committed by it) plus its proposals in
//! flight, so a producer's pipelined batches are checked in sequence. That table is built
//! when this node starts leading a term and dropped when it stops. A proposal is recorded
//! before its offsets exist; they are filled in when the store writes it. A retry of a
//! batch still in flight is refused with a retriable error (REQUEST_TIMED_OUT): its
//! offsets are not known yet, and the producer's next retry finds them.
//!
//! # Losses
//!
//! A loss ([`Progress::lose`]) is counted when this node stops leading a term in which it
//! proposed, and when its store truncates an uncommitted tail, before the truncating call
//! returns to openraft: a [`Commit`](crate::broker::replica::Commit) waiting for data that
//! a new leader may discard fails (NOT_LEADER_OR_FOLLOWER) instead of being acknowledged
//! when other data refills its offsets.

use std::collections::VecDeque;
use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use kafka_protocol::ResponseError;
use openraft::EntryPayload;
use openraft::storage::{Snapshot, SnapshotMeta};
use tokio::sync::{oneshot, watch};

use super::log_store::{LogEvents, PartitionRaftLog, RaftLogError, RaftLogStore, StoredSnapshot, WrittenEntry};
use super::{AppendBatches, CommittedLeaderId, JetNode, LogId, NodeId, StoredMembership, Term};
use crate::broker::partition::PartitionError;
use crate::broker::producer_batches::{aborted_entry, admit_new_producer, apply_batch, apply_batches, check_sequences};
use crate::broker::producer_state::{ProducerLimits, ProducerStateTable, SavedProducer, SeqCheck};
use crate::broker::replica::Progress;
use crate::log::batch::BatchHeader;

/// Snapshot metadata of a partition's group.
pub type PartitionSnapshotMeta = SnapshotMeta<CommittedLeaderId, NodeId, JetNode>;
/// A partition snapshot with its data in memory.
pub type PartitionSnapshot = Snapshot<CommittedLeaderId, NodeId, JetNode, Cursor<Vec<u8>>>;

/// Where a proposal landed in the leader's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub base_offset: i64,
    pub end_offset: i64,
    /// [`Progress::losses`] when it was written.
    pub losses: u64,
}

/// The outcome of checking an append on the leader.
#[derive(Debug)]
pub enum Checked {
    /// A retry of a batch already written: its offsets, nothing to propose.
    Duplicate(Placed),
    /// Recorded as in flight: propose it now; the receiver learns where it landed.
    Propose(oneshot::Receiver<Result<Placed, PartitionError>>),
}

/// One proposal in flight, not yet written by the store.
struct Pending {
    /// `(producer id, first sequence, first and last offset relative to the entry)` of
    /// each idempotent batch, to place them in the leader's table once written.
    batches: Vec<(i64, i32, i64, i64)>,
    /// The producer's entry before this proposal was recorded (undone if it is not sent).
    saved: Option<SavedProducer>,
    done: oneshot::Sender<Result<Placed, PartitionError>>,
}

/// This node leads `term`.
struct Leading {
    term: Term,
    /// Producer state of the whole log plus the proposals in flight.
    producers: ProducerStateTable,
    pending: VecDeque<Pending>,
    /// Whether anything was proposed in the term (stopping then counts a loss).
    proposed: bool,
}

struct Inner {
    applied: Option<LogId>,
    membership: StoredMembership,
    /// The memberships applied since the last snapshot's point, oldest first; the first
    /// was in effect at that point.
    memberships: Vec<StoredMembership>,
    /// Producer state of the applied entries.
    producers: ProducerStateTable,
    leading: Option<Leading>,
    /// A term this node gave up leading after openraft refused one of its proposals (see
    /// [`ReplicaState::refused`]): no proposal is checked in it any more.
    given_up: Option<Term>,
    snapshot: Option<(PartitionSnapshotMeta, Vec<u8>)>,
}

/// The shared state of one partition replica (see the module docs).
pub struct ReplicaState {
    store: RaftLogStore,
    /// Bumped when the log start moves: segments below it may be purgeable.
    log_start_moved: watch::Sender<u64>,
    progress: watch::Sender<Progress>,
    inner: Mutex<Inner>,
    /// Whether the topic is compacted (its data stays below raft's log; see
    /// [`retained`]); watched by the task that triggers snapshots.
    compacted: watch::Sender<bool>,
    /// The raft entry a compacted partition's purges may not pass (`u64::MAX`: none; see
    /// [`ReplicaState::hold_compaction_purge`]).
    purge_hold: std::sync::atomic::AtomicU64,
    /// Snapshots' retained data being received from the leader, and received.
    staging: Mutex<retained::Stagings>,
}

fn not_leader() -> PartitionError {
    PartitionError::Rejected(ResponseError::NotLeaderOrFollower)
}

fn now_ms() -> i64 {
    crate::broker::now_ms()
}

impl ReplicaState {
    /// The state of a replica whose raft log is `store`, as recovered from disk: the
    /// applied point and membership from the raft state file, the high watermark at the
    /// end of the applied entry (never the log end: an uncommitted tail stays invisible),
    /// producer state from the batches below it.
    pub fn open(store: RaftLogStore) -> Result<Arc<Self>, RaftLogError> {
        let (applied, membership, memberships, high_watermark, producers, snapshot) = {
            let mut log = store.lock().map_err(RaftLogError::Poisoned)?;
            let state = log.state();
            let applied = state.applied;
            let membership = state.membership.clone().unwrap_or_default();
            let memberships =
                if state.memberships.is_empty() { vec![membership.clone()] } else { state.memberships.clone() };
            let (first, next) = log.log().raft_index().map_or((0, 0), |r| (r.first_index(), r.next_index()));
            let high_watermark = match applied {
                Some(l) if (first..next).contains(&l.index) => log.end_offset_of(l.index)?,
                // Applied past what the log kept (a crash lost a tail that was committed
                // but not yet synced here): all of what is left is committed.
                Some(l) if l.index >= next => log.log().log_end_offset(),
                // Applied up to a snapshot's point, the entries after it not yet: the
                // first of those starts where the snapshot ends.
                Some(l) if first > 0 && l.index + 1 == first => {
                    log.log().read_entry(first)?.map_or(log.log().log_end_offset(), |e| e.first_offset)
                }
                _ => log.log().log_start_offset(),
            };
            let snapshot = log.snapshot().map(|s| (s.meta.clone(), s.data.clone().into_bytes()));
            let now = now_ms();
            // The last snapshot's producers (those of the log up to its point), then the
            // batches after it.
            let (mut producers, from) = log
                .snapshot()
                .and_then(|s| {
                    let data: SnapshotData = serde_json::from_str(&s.data).ok()?;
                    Some((ProducerStateTable::from_snapshot(&data.producers, s.base_offset, now)?, s.base_offset))
                })
                .unwrap_or_default();
            // The aborted-transaction index of the replayed part is written again.
            let mut aborted = Vec::new();
            let mut failed = None;
            log.log().for_each_batch(|h, bytes| {
                if h.base_offset >= from && h.last_offset() < high_watermark {
                    match apply_batch(&mut producers, h, bytes, h.base_offset, now) {
                        Ok(completed) => aborted.extend(completed.and_then(|c| aborted_entry(&producers, c))),
                        Err(e) => failed = failed.take().or(Some(e)),
                    }
                }
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            log.drop_aborted_txns_from(from)?;
            log.index_aborted_txns(&aborted)?;
            // Every replayed marker is committed.
            producers.last_stable_offset(i64::MAX);
            (applied, membership, memberships, high_watermark, producers, snapshot)
        };
        Ok(Arc::new(ReplicaState {
            store,
            log_start_moved: watch::channel(0).0,
            progress: watch::channel(Progress::new(high_watermark)).0,
            compacted: watch::channel(false).0,
            staging: Mutex::new(retained::Stagings::default()),
            purge_hold: std::sync::atomic::AtomicU64::new(u64::MAX),
            inner: Mutex::new(Inner {
                applied,
                membership,
                memberships,
                producers,
                leading: None,
                given_up: None,
                snapshot,
            }),
        }))
    }

    /// Changes whenever a log-start entry is applied (see [`Self::purgeable`]).
    pub fn watch_log_start(&self) -> watch::Receiver<u64> {
        self.log_start_moved.subscribe()
    }

    /// The last snapshot's point when raft has not purged up to it yet (a restart came
    /// between the snapshot and the purge): the replica asks raft to purge it.
    pub fn unpurged_snapshot(&self) -> Result<Option<u64>, PartitionError> {
        let inner = self.lock()?;
        let log = self.log()?;
        let covered = inner.snapshot.as_ref().and_then(|(meta, _)| meta.last_log_id).map(|l| l.index);
        let purged = log.state().last_purged.map(|l| l.index);
        Ok(covered.filter(|c| purged.is_none_or(|p| p < *c)))
    }

    /// Whether whole segments lie below the log start with entries no snapshot covers
    /// yet: a snapshot now would let raft purge them (and the segments go).
    pub fn purgeable(&self) -> Result<bool, PartitionError> {
        let inner = self.lock()?;
        let log = self.log()?;
        let point = self.purge_point(&log);
        let covered = inner.snapshot.as_ref().and_then(|(meta, _)| meta.last_log_id).map(|l| l.index);
        Ok(point.is_some_and(|(index, _)| covered.is_none_or(|c| index > c)))
    }

    /// The store handle to give openraft: it reports writes and truncations here.
    pub fn raft_store(self: &Arc<Self>) -> RaftLogStore {
        let events: Weak<dyn LogEvents> = Arc::downgrade(self) as Weak<dyn LogEvents>;
        self.store.clone().with_events(events)
    }

    /// The partition's raft log (reads, offsets).
    pub fn log(&self) -> Result<MutexGuard<'_, PartitionRaftLog>, PartitionError> {
        self.store.lock().map_err(|_poisoned| PartitionError::Poisoned)
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, PartitionError> {
        self.inner.lock().map_err(|_poisoned| PartitionError::Poisoned)
    }

    /// The inner state even after a panic elsewhere: for the events, which must count
    /// losses whatever happened.
    fn lock_anyway(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    pub fn high_watermark(&self) -> i64 {
        self.progress.borrow().high_watermark
    }

    /// The last stable offset of the applied entries (see
    /// [`crate::broker::producer_state`]), never below the log start (as Kafka's
    /// `maybeIncrementFirstUnstableOffset`: retention may pass an open transaction).
    pub fn last_stable_offset(&self) -> Result<i64, PartitionError> {
        let mut inner = self.lock()?;
        let hw = self.high_watermark();
        let log_start = self.log()?.log().log_start_offset();
        Ok(inner.producers.last_stable_offset(hw).max(log_start))
    }

    /// KIP-890: starts verifying a transactional write of `producer_id` at `epoch` as the
    /// leader of `term`, in the table its appends are checked against (see
    /// [`crate::broker::txn_verification`]).
    pub fn begin_txn_verification(
        &self,
        term: Term,
        producer_id: i64,
        epoch: i16,
        now_ms: i64,
    ) -> Result<Option<u64>, PartitionError> {
        let mut inner = self.lock()?;
        let inner = &mut *inner;
        if inner.given_up == Some(term) {
            return Err(not_leader());
        }
        self.lead(inner, term)?;
        let Some(leading) = inner.leading.as_mut() else { return Err(not_leader()) };
        Ok(leading.producers.begin_txn_verification(producer_id, epoch, now_ms))
    }

    /// Ends a verification whose write will not come.
    pub fn end_txn_verification(&self, producer_id: i64, guard: u64) {
        if let Ok(mut inner) = self.lock()
            && let Some(leading) = inner.leading.as_mut()
        {
            leading.producers.end_txn_verification(producer_id, guard);
        }
    }

    /// Checks an append as the leader of `term` and, unless it is a retry of a written
    /// batch, records it as in flight. The caller proposes it next, before checking
    /// another append (the order of checks is the order of entries).
    pub fn check(
        &self,
        term: Term,
        headers: &[BatchHeader],
        data: &[u8],
        now_ms: i64,
        limits: ProducerLimits<'_>,
    ) -> Result<Checked, PartitionError> {
        let mut inner = self.lock()?;
        let inner = &mut *inner;
        if inner.given_up == Some(term) {
            return Err(not_leader());
        }
        self.lead(inner, term)?;
        let losses = self.progress.borrow().losses;
        let Some(leading) = inner.leading.as_mut() else { return Err(not_leader()) };
        if let Some(first) = headers.first() {
            match check_sequences(&leading.producers, headers, data, limits.txn) {
                SeqCheck::Append => admit_new_producer(&leading.producers, first.producer_id, limits)?,
                SeqCheck::Duplicate(meta) if headers.len() == 1 && first.producer_id >= 0 => {
                    if meta.first_offset < 0 {
                        // The original is in flight: its offsets are not known yet.
                        return Err(PartitionError::Rejected(ResponseError::RequestTimedOut));
                    }
                    let placed = Placed { base_offset: meta.first_offset, end_offset: meta.last_offset + 1, losses };
                    return Ok(Checked::Duplicate(placed));
                }
                SeqCheck::Duplicate(_) => return Err(PartitionError::Rejected(ResponseError::DuplicateSequenceNumber)),
                SeqCheck::Reject(code) => return Err(PartitionError::Rejected(code)),
            }
        }
        let saved = headers.first().filter(|h| h.producer_id >= 0).map(|h| leading.producers.save(h.producer_id));
        let mut batches = Vec::new();
        let (mut relative, mut pos) = (0i64, 0usize);
        for h in headers {
            let last = relative + i64::from(h.last_offset_delta);
            let end = (pos + h.total_size()).min(data.len());
            if h.producer_id >= 0 {
                // Offsets unknown until written (negative: "in flight").
                let in_flight = -1 - i64::from(h.last_offset_delta);
                apply_batch(&mut leading.producers, h, &data[pos..end], in_flight, now_ms)?;
                if !h.is_control() {
                    batches.push((h.producer_id, h.base_sequence, relative, last));
                }
            }
            (relative, pos) = (last + 1, end);
        }
        let (done, placed) = oneshot::channel();
        leading.pending.push_back(Pending { batches, saved, done });
        leading.proposed = true;
        Ok(Checked::Propose(placed))
    }

    /// The proposal last checked was not sent (openraft stopped, or the append was
    /// dropped while waiting to send): forget its waiter and its producer records. It is
    /// the last one queued: check and send happen under the replica's proposal lock.
    pub fn unpropose(&self, term: Term) {
        let mut inner = self.lock_anyway();
        let Some(leading) = inner.leading.as_mut().filter(|l| l.term == term) else { return };
        if let Some(Pending { saved: Some(saved), .. }) = leading.pending.pop_back() {
            leading.producers.restore(saved);
        }
    }

    /// openraft refused a proposal of `term` while this node still leads it (its leader
    /// lease ran out, or a leadership transfer began). Called by openraft's core as it
    /// refuses, before it handles anything sent later, so the proposals it accepted before
    /// are written and their waiters resolved. But it may accept later proposals of the
    /// term again, which the FIFO of waiters would then pair with the wrong requests: the
    /// term is given up instead. Every waiter fails (NOT_LEADER_OR_FOLLOWER, retriable), a
    /// loss is counted, no proposal is checked in the term any more, and the caller moves
    /// the leadership on (a new term rebuilds the producer table from the log).
    pub fn refused(&self, term: Term) {
        let mut inner = self.lock_anyway();
        if inner.leading.as_ref().is_some_and(|l| l.term == term) {
            self.stop_leading(&mut inner);
        }
        inner.given_up = Some(term);
    }

    /// Starts leading `term` (if not yet): builds the leader's producer table from the
    /// applied state and the log past it.
    fn lead(&self, inner: &mut Inner, term: Term) -> Result<(), PartitionError> {
        if inner.leading.as_ref().is_some_and(|l| l.term == term) {
            return Ok(());
        }
        self.stop_leading(inner);
        let mut producers = inner.producers.clone();
        let from = inner.applied.map_or(0, |l| l.index + 1);
        let tail = self.log()?.entries(from..)?;
        let now = now_ms();
        for entry in tail {
            if let EntryPayload::Normal(AppendBatches(batches)) = &entry.payload {
                apply_batches(&mut producers, batches, now)?;
            }
        }
        // The leader's table only checks appends: no marker holds anything back in it.
        producers.last_stable_offset(i64::MAX);
        inner.leading = Some(Leading { term, producers, pending: VecDeque::new(), proposed: false });
        Ok(())
    }

    /// Stops leading: waiters of unwritten proposals fail; a loss is counted if anything
    /// was proposed (it may be discarded by the next leader).
    fn stop_leading(&self, inner: &mut Inner) {
        let Some(leading) = inner.leading.take() else { return };
        for p in leading.pending {
            // The waiter may be gone (a dropped request): nothing to tell then.
            let _ = p.done.send(Err(not_leader()));
        }
        if leading.proposed {
            self.progress.send_modify(|p| p.lose(not_leader()));
        }
    }

    /// What the metrics say this node leads now (`None`: nothing). Called on every change
    /// of raft metrics.
    pub fn observe_leadership(&self, leading: Option<Term>) {
        let mut inner = self.lock_anyway();
        if inner.leading.as_ref().is_some_and(|l| Some(l.term) != leading) {
            self.stop_leading(&mut inner);
        }
    }

    /// The applied point and membership (openraft's `applied_state`).
    pub fn applied_state(&self) -> Result<(Option<LogId>, StoredMembership), PartitionError> {
        let inner = self.lock()?;
        Ok((inner.applied, inner.membership.clone()))
    }

    /// Records applied entries: `batches` of normal entries (stored, offsets assigned)
    /// update producer state; `applied` and `membership` are persisted; a log start they
    /// carry (`log_start`) moves the log's; then the high watermark moves to `end_offset`,
    /// the end of the last of them.
    pub fn applied(
        &self,
        normal: &[&[u8]],
        applied: LogId,
        memberships: Vec<StoredMembership>,
        end_offset: i64,
        log_start: Option<i64>,
    ) -> Result<(), PartitionError> {
        let mut inner = self.lock()?;
        let now = now_ms();
        let mut aborted = Vec::new();
        for batches in normal {
            aborted.extend(apply_batches(&mut inner.producers, batches, now)?);
        }
        // Applied markers are committed: none holds the last stable offset back.
        inner.producers.last_stable_offset(i64::MAX);
        inner.applied = Some(applied);
        for m in memberships {
            inner.membership = m.clone();
            inner.memberships.push(m);
        }
        let membership = inner.membership.clone();
        let mut log = self.log()?;
        // Before the high watermark passes the markers: a read_committed fetch below the
        // last stable offset finds every aborted transaction indexed.
        log.index_aborted_txns(&aborted)?;
        // Before the applied point is saved: an entry saved as applied is never applied
        // again, so its log start must be durable first (moving it twice is harmless).
        if let Some(offset) = log_start {
            log.move_log_start(offset.min(end_offset))?;
        }
        log.save_applied(Some(applied), Some(membership), &inner.memberships)?;
        drop(log);
        drop(inner);
        if log_start.is_some() {
            self.log_start_moved.send_modify(|n| *n += 1);
        }
        self.progress.send_if_modified(|p| p.advance(end_offset));
        Ok(())
    }

    /// A snapshot at the last entry of the segments wholly below the log start (see
    /// [`crate::log::PartitionLog::raft_purge_point`]), so raft may purge them: its
    /// membership, the offset after it, and the producer state for the log up to there.
    /// Data below the log start is gone on every replica, so a far-behind follower
    /// installs this and fetches the entries after it; nothing else needs shipping. With
    /// nothing new to cover, the last snapshot again.
    pub fn build_snapshot(&self) -> Result<PartitionSnapshot, PartitionError> {
        let mut inner = self.lock()?;
        let mut log = self.log()?;
        let covered = inner.snapshot.as_ref().and_then(|(meta, _)| meta.last_log_id);
        let point = self.purge_point(&log).filter(|(index, _)| covered.is_none_or(|c| *index > c.index));
        // The membership in effect at the point: the last one applied at or before it.
        let at_point = point
            .and_then(|(index, _)| inner.memberships.iter().rposition(|m| m.log_id().is_none_or(|l| l.index <= index)));
        let (Some((index, base_offset)), Some(m)) = (point, at_point) else {
            return Ok(match inner.snapshot.clone() {
                Some((meta, data)) => Snapshot { meta, snapshot: Cursor::new(data) },
                None => Snapshot { meta: PartitionSnapshotMeta::default(), snapshot: Cursor::new(Vec::new()) },
            });
        };
        let last = log.entry(index).map_err(SnapshotError::Log)?.log_id;
        let meta = PartitionSnapshotMeta { last_log_id: Some(last), last_membership: inner.memberships[m].clone() };
        let producers = inner.producers.before(base_offset).to_snapshot(base_offset).map_err(SnapshotError::Encode)?;
        let log_start = Some(log.log().log_start_offset());
        let data = serde_json::to_vec(&SnapshotData { high_watermark: base_offset, producers, log_start })
            .map_err(SnapshotError::Encode)?;
        let text = String::from_utf8(data.clone()).map_err(SnapshotError::from)?;
        log.save_snapshot(StoredSnapshot { meta: meta.clone(), base_offset, data: text })
            .map_err(SnapshotError::Log)?;
        inner.memberships.drain(..m);
        inner.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Cursor::new(data) })
    }

    /// Installs a leader's snapshot (see [`Self::build_snapshot`]): stored durably; a log
    /// lacking its last entry restarts empty after it
    /// ([`PartitionRaftLog::install_snapshot`]); the applied point, membership and
    /// producer state become the snapshot's, the high watermark its end. The log-start
    /// entry that made the leader purge follows the snapshot's point, so this replica
    /// moves its log start when it applies that entry; until then it starts at the
    /// snapshot's end.
    pub fn install_snapshot(&self, meta: &PartitionSnapshotMeta, data: Vec<u8>) -> Result<(), PartitionError> {
        let decoded: SnapshotData = serde_json::from_slice(&data).map_err(SnapshotError::Encode)?;
        let Some(last) = meta.last_log_id else { return Err(SnapshotError::Empty.into()) };
        let base_offset = decoded.high_watermark;
        let producers = ProducerStateTable::from_snapshot(&decoded.producers, base_offset, now_ms())
            .ok_or(SnapshotError::Producers)?;
        let text = String::from_utf8(data.clone()).map_err(SnapshotError::from)?;
        let log_start = decoded.log_start.unwrap_or(base_offset).min(base_offset);
        let staged_end = if log_start < base_offset { self.take_staged(last)? } else { None };
        let mut inner = self.lock()?;
        let mut log = self.log()?;
        let restarted = log
            .install_snapshot(StoredSnapshot { meta: meta.clone(), base_offset, data: text }, log_start, staged_end)
            .map_err(SnapshotError::Log)?;
        tracing::info!(
            dir = %log.dir().display(),
            last_index = last.index,
            end_offset = base_offset,
            log_start,
            restarted,
            with_retained_data = staged_end.is_some(),
            "installed a leader's snapshot"
        );
        // Nothing staged is needed any more (a restart moved in what it used).
        self.discard_stagings(log.dir()).map_err(|e| SnapshotError::Log(e.into()))?;
        inner.producers = producers;
        inner.applied = Some(last);
        inner.membership = meta.last_membership.clone();
        inner.memberships = vec![meta.last_membership.clone()];
        log.save_applied(Some(last), Some(meta.last_membership.clone()), &inner.memberships)
            .map_err(SnapshotError::Log)?;
        inner.snapshot = Some((meta.clone(), data));
        drop(log);
        drop(inner);
        self.progress.send_if_modified(|p| p.advance(base_offset));
        Ok(())
    }

    pub fn current_snapshot(&self) -> Result<Option<PartitionSnapshot>, PartitionError> {
        let inner = self.lock()?;
        Ok(inner.snapshot.clone().map(|(meta, data)| Snapshot { meta, snapshot: Cursor::new(data) }))
    }
}

/// A partition snapshot's data.
#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotData {
    high_watermark: i64,
    /// [`ProducerStateTable::to_snapshot`]'s JSON.
    producers: String,
    /// The log start when the snapshot was built; below `high_watermark` for a compacted
    /// log, whose data from here up to it ships with the snapshot. Absent in snapshots
    /// of earlier versions: the snapshot's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    log_start: Option<i64>,
}

/// Why a partition snapshot cannot be built or installed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("partition snapshot encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("partition snapshot without a last log id")]
    Empty,
    #[error("partition snapshot's producer state does not match its high watermark")]
    Producers,
    #[error("partition snapshot storage: {0}")]
    Log(#[from] RaftLogError),
    #[error("partition snapshot data is not UTF-8 JSON: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

impl LogEvents for ReplicaState {
    fn written(&self, entries: &[WrittenEntry]) {
        let mut inner = self.lock_anyway();
        let Some(leading) = inner.leading.as_mut() else { return };
        let losses = self.progress.borrow().losses;
        for e in entries.iter().filter(|e| e.normal && e.log_id.leader_id.term == leading.term) {
            let Some(p) = leading.pending.pop_front() else { break };
            for &(producer_id, first_seq, first, last) in &p.batches {
                leading.producers.place(producer_id, first_seq, e.base_offset + first, e.base_offset + last);
            }
            let placed = Placed { base_offset: e.base_offset, end_offset: e.end_offset, losses };
            // The waiter may be gone (a dropped request): the entry stands anyway.
            let _ = p.done.send(Ok(placed));
        }
    }

    fn truncated(&self, _last_kept: Option<LogId>) {
        let mut inner = self.lock_anyway();
        self.stop_leading(&mut inner);
        self.progress.send_modify(|p| p.lose(not_leader()));
    }
}

mod retained;

#[cfg(test)]
#[path = "replica_state_tests.rs"]
mod tests;
