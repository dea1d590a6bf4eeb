//! Incremental fetch sessions (KIP-227).
//!
//! A consumer opens a session with a full fetch (`session_id` 0, epoch 0); later
//! fetches name only the partitions whose fetch position changed, and the broker answers
//! only for partitions with something new (records, a moved high watermark or log start
//! offset, or an error). This module keeps each session's partitions and what was last
//! reported for them; the Fetch handler drives it.
//!
//! As in Kafka's `FetchSession`: partitions are keyed by topic id from Fetch v13 (by
//! name before), a partition that returned records moves to the end of the session's
//! order so later partitions get their turn under `max_bytes`, and a session left with
//! no partitions is closed. Session ids are random, so a restarted broker does not hand
//! a client's stale id to someone else.

use std::collections::HashMap;
use std::sync::Mutex;

use indexmap::IndexMap;

/// Sessions kept at most; the least recently used one is evicted beyond this (Kafka's
/// `max.incremental.fetch.session.cache.slots` default).
pub const MAX_SESSIONS: usize = 1000;

/// Partitions cached over all sessions at most (a few hundred bytes each). Least
/// recently used sessions are evicted to stay under it; a single session larger than
/// this is not cached at all, and its client fetches without a session.
pub const MAX_CACHED_PARTITIONS: usize = 1_000_000;

/// Identifies a partition inside a session: by topic id (v13+, `topic` empty) or by
/// topic name (before v13, `topic_id` nil).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub topic: String,
    pub topic_id: uuid::Uuid,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionPartition {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// The leader epoch the client believes current (-1: unchecked).
    pub current_leader_epoch: i32,
    /// Last values sent to the client; `None` until first reported, and again after an
    /// error so the partition is re-sent once the error clears.
    pub reported: Option<ReportedValues>,
}

#[derive(Debug, Default)]
pub struct Session {
    pub epoch: i32,
    pub partitions: IndexMap<SessionKey, SessionPartition>,
    uses_topic_ids: bool,
    last_used: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SessionError {
    #[error("fetch session {0} not found")]
    NotFound(i32),
    #[error("fetch session {id} expected epoch {expected}, got {got}")]
    InvalidEpoch { id: i32, expected: i32, got: i32 },
    #[error("fetch session {0} was opened with a Fetch version on the other side of v13 (topic ids)")]
    TopicIdMismatch(i32),
}

/// What [`FetchSessions::update`] did with the session after applying the request.
#[derive(Debug, PartialEq)]
pub struct Updated<T> {
    pub value: T,
    /// The session was closed (no partitions left, or too large to cache); the
    /// response goes out without a session.
    pub closed: bool,
}

/// What a fetch response told the client of a partition: its high watermark, last stable
/// offset and log start offset. An incremental response sends a partition again when
/// one of them changed.
pub type ReportedValues = (i64, i64, i64);

/// One partition's part of a response, for [`FetchSessions::record_reported`].
pub struct Reported {
    pub key: SessionKey,
    /// `(high watermark, log start offset)` sent, `None` for an error.
    pub values: Option<ReportedValues>,
    pub had_records: bool,
}

#[derive(Default)]
pub struct FetchSessions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<i32, Session>,
    cached_partitions: usize,
    clock: u64,
}

impl Inner {
    fn new_id(&self) -> i32 {
        loop {
            // Random and positive, like Kafka's; 0 means "no session".
            let id = (uuid::Uuid::new_v4().as_u128() as u32 & 0x7fff_ffff) as i32;
            if id > 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn remove(&mut self, id: i32) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        self.cached_partitions = self.cached_partitions.saturating_sub(s.partitions.len());
        Some(s)
    }

    /// Evicts least recently used sessions other than `keep` until `fits` holds.
    fn evict_until(&mut self, keep: Option<i32>, fits: impl Fn(&Inner) -> bool) {
        while !fits(self) {
            let oldest = self.sessions.iter().filter(|(id, _)| Some(**id) != keep).min_by_key(|(_, s)| s.last_used);
            let Some(id) = oldest.map(|(id, _)| *id) else { return };
            self.remove(id);
        }
    }
}

impl FetchSessions {
    /// The session cache is only a cache: after a panic elsewhere its contents are still
    /// usable (at worst a client's session is reset), so poisoning is ignored.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a new session holding `partitions`; returns its id, or 0 when the session
    /// is too large to cache.
    pub fn create(&self, partitions: IndexMap<SessionKey, SessionPartition>, uses_topic_ids: bool) -> i32 {
        let mut inner = self.lock();
        let size = partitions.len();
        if size > MAX_CACHED_PARTITIONS {
            return 0;
        }
        inner.evict_until(None, |i| {
            i.sessions.len() < MAX_SESSIONS && i.cached_partitions + size <= MAX_CACHED_PARTITIONS
        });
        let id = inner.new_id();
        inner.clock += 1;
        let last_used = inner.clock;
        inner.cached_partitions += size;
        inner.sessions.insert(id, Session { epoch: 1, partitions, uses_topic_ids, last_used });
        id
    }

    pub fn remove(&self, id: i32) {
        self.lock().remove(id);
    }

    /// Runs `f` on session `id` if `epoch` is the one expected, then advances the epoch.
    /// A session `f` leaves empty, or too large to cache, is closed.
    pub fn update<T>(
        &self,
        id: i32,
        epoch: i32,
        uses_topic_ids: bool,
        f: impl FnOnce(&mut Session) -> T,
    ) -> Result<Updated<T>, SessionError> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let session = inner.sessions.get_mut(&id).ok_or(SessionError::NotFound(id))?;
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch { id, expected: session.epoch, got: epoch });
        }
        if session.uses_topic_ids != uses_topic_ids {
            return Err(SessionError::TopicIdMismatch(id));
        }
        session.epoch = if session.epoch == i32::MAX { 1 } else { session.epoch + 1 };
        session.last_used = now;
        let before = session.partitions.len();
        let value = f(session);
        let after = session.partitions.len();
        inner.cached_partitions = (inner.cached_partitions + after).saturating_sub(before);
        if after == 0 || after > MAX_CACHED_PARTITIONS {
            inner.remove(id);
            return Ok(Updated { value, closed: true });
        }
        inner.evict_until(Some(id), |i| i.cached_partitions <= MAX_CACHED_PARTITIONS);
        Ok(Updated { value, closed: false })
    }

    /// Stores what was reported back into the session after a response was built.
    /// With `rotate` (incremental responses), partitions that returned records move to
    /// the end of the session's order, as Kafka's `IncrementalFetchContext` does.
    pub fn record_reported(&self, id: i32, reported: Vec<Reported>, rotate: bool) {
        let mut inner = self.lock();
        let Some(session) = inner.sessions.get_mut(&id) else { return };
        let mut moved: HashMap<&SessionKey, usize> = HashMap::new();
        for r in &reported {
            if let Some(p) = session.partitions.get_mut(&r.key) {
                p.reported = r.values;
                if rotate && r.had_records {
                    let rank = moved.len() + 1;
                    moved.insert(&r.key, rank);
                }
            }
        }
        if !moved.is_empty() {
            // Stable: partitions without records keep their order, ahead of the others.
            session
                .partitions
                .sort_by(|a, _, b, _| moved.get(a).copied().unwrap_or(0).cmp(&moved.get(b).copied().unwrap_or(0)));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> SessionKey {
        SessionKey { topic: "t".into(), topic_id: uuid::Uuid::nil(), partition: p }
    }

    fn part(offset: i64) -> SessionPartition {
        SessionPartition { fetch_offset: offset, max_bytes: 100, current_leader_epoch: -1, reported: None }
    }

    fn keys(sessions: &FetchSessions, id: i32, epoch: i32) -> Vec<i32> {
        sessions.update(id, epoch, false, |s| s.partitions.keys().map(|k| k.partition).collect()).unwrap().value
    }

    #[test]
    fn epochs_are_enforced() {
        let sessions = FetchSessions::default();
        let id = sessions.create([(key(0), part(0))].into_iter().collect(), false);
        assert!(id > 0);
        assert_eq!(sessions.update(id, 1, false, |s| s.partitions.len()).unwrap().value, 1);
        assert_eq!(
            sessions.update(id, 1, false, |_| ()).unwrap_err(),
            SessionError::InvalidEpoch { id, expected: 2, got: 1 }
        );
        assert_eq!(sessions.update(id, 2, true, |_| ()).unwrap_err(), SessionError::TopicIdMismatch(id));
        sessions.update(id, 2, false, |s| s.partitions.insert(key(1), part(5))).unwrap();
        assert_eq!(sessions.update(id, 3, false, |s| s.partitions.len()).unwrap().value, 2);
        sessions.remove(id);
        assert_eq!(sessions.update(id, 4, false, |_| ()).unwrap_err(), SessionError::NotFound(id));
    }

    #[test]
    fn evicts_least_recently_used() {
        let sessions = FetchSessions::default();
        let first = sessions.create(IndexMap::new(), false);
        for _ in 0..MAX_SESSIONS {
            sessions.create(IndexMap::new(), false);
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.update(first, 1, false, |_| ()).unwrap_err(), SessionError::NotFound(first));
    }

    #[test]
    fn partitions_that_returned_records_rotate_to_the_end() {
        let sessions = FetchSessions::default();
        let id = sessions.create((0..4).map(|p| (key(p), part(0))).collect(), false);
        let report = |p: i32, had_records: bool| Reported { key: key(p), values: Some((1, 1, 0)), had_records };
        sessions.record_reported(id, vec![report(0, true), report(1, false), report(2, true)], true);
        assert_eq!(keys(&sessions, id, 1), vec![1, 3, 0, 2]);
    }

    #[test]
    fn a_session_left_empty_is_closed() {
        let sessions = FetchSessions::default();
        let id = sessions.create([(key(0), part(0))].into_iter().collect(), false);
        let updated = sessions.update(id, 1, false, |s| s.partitions.shift_remove(&key(0)).is_some()).unwrap();
        assert_eq!(updated, Updated { value: true, closed: true });
        assert!(sessions.is_empty());
    }

    #[test]
    fn cached_partitions_are_bounded() {
        let sessions = FetchSessions::default();
        let big = |n: i32| (0..n).map(|p| (key(p), part(0))).collect::<IndexMap<_, _>>();
        let half = (MAX_CACHED_PARTITIONS / 2) as i32;
        let a = sessions.create(big(half), false);
        let b = sessions.create(big(half), false);
        let c = sessions.create(big(half), false);
        assert!(a > 0 && b > 0 && c > 0);
        // The oldest went to make room.
        assert_eq!(sessions.update(a, 1, false, |_| ()).unwrap_err(), SessionError::NotFound(a));
        assert_eq!(sessions.len(), 2);
        assert_eq!(sessions.create(big(MAX_CACHED_PARTITIONS as i32 + 1), false), 0);
    }
}
