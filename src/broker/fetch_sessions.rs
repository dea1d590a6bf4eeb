//! Incremental fetch sessions (KIP-227).
//!
//! A consumer opens a session with a full fetch (`session_id` 0, epoch 0); later
//! fetches name only the partitions whose fetch position changed, and the broker answers
//! only for partitions with something new (records, a moved high watermark or log start
//! offset, or an error). This module keeps each session's partitions and what was last
//! reported for them; the Fetch handler drives it.

use std::collections::HashMap;
use std::sync::Mutex;

use indexmap::IndexMap;

/// Sessions kept at most; the least recently used one is evicted beyond this (Kafka's
/// `max.incremental.fetch.session.cache.slots` default).
pub const MAX_SESSIONS: usize = 1000;

/// Identifies a partition inside a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionPartition {
    pub topic_id: uuid::Uuid,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// The leader epoch the client believes current (-1: unchecked).
    pub current_leader_epoch: i32,
    /// Last values sent to the client; `None` until first reported.
    pub reported: Option<(i64, i64)>,
}

#[derive(Debug, Default)]
pub struct Session {
    pub epoch: i32,
    pub partitions: IndexMap<SessionKey, SessionPartition>,
    last_used: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SessionError {
    #[error("fetch session {0} not found")]
    NotFound(i32),
    #[error("fetch session {id} expected epoch {expected}, got {got}")]
    InvalidEpoch { id: i32, expected: i32, got: i32 },
}

#[derive(Default)]
pub struct FetchSessions {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<i32, Session>,
    next_id: i32,
    clock: u64,
}

impl Inner {
    fn new_id(&mut self) -> i32 {
        loop {
            self.next_id = self.next_id.wrapping_add(1);
            if self.next_id > 0 && !self.sessions.contains_key(&self.next_id) {
                return self.next_id;
            }
        }
    }

    fn evict_if_full(&mut self) {
        while self.sessions.len() >= MAX_SESSIONS {
            let Some(oldest) = self.sessions.iter().min_by_key(|(_, s)| s.last_used).map(|(id, _)| *id) else {
                return;
            };
            self.sessions.remove(&oldest);
        }
    }
}

impl FetchSessions {
    /// Starts a new session holding `partitions`; returns its id.
    pub fn create(&self, partitions: IndexMap<SessionKey, SessionPartition>) -> i32 {
        let Ok(mut inner) = self.inner.lock() else { return 0 };
        inner.evict_if_full();
        let id = inner.new_id();
        inner.clock += 1;
        let last_used = inner.clock;
        inner.sessions.insert(id, Session { epoch: 1, partitions, last_used });
        id
    }

    pub fn remove(&self, id: i32) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.sessions.remove(&id);
        }
    }

    /// Runs `f` on session `id` if `epoch` is the one expected, then advances the epoch.
    pub fn update<T>(&self, id: i32, epoch: i32, f: impl FnOnce(&mut Session) -> T) -> Result<T, SessionError> {
        let mut inner = self.inner.lock().map_err(|_| SessionError::NotFound(id))?;
        inner.clock += 1;
        let now = inner.clock;
        let session = inner.sessions.get_mut(&id).ok_or(SessionError::NotFound(id))?;
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch { id, expected: session.epoch, got: epoch });
        }
        session.epoch = if session.epoch == i32::MAX { 1 } else { session.epoch + 1 };
        session.last_used = now;
        Ok(f(session))
    }

    /// Stores what was reported back into the session after a response was built.
    pub fn record_reported(&self, id: i32, reported: Vec<(SessionKey, (i64, i64))>) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if let Some(session) = inner.sessions.get_mut(&id) {
            for (key, values) in reported {
                if let Some(p) = session.partitions.get_mut(&key) {
                    p.reported = Some(values);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.sessions.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: i32) -> SessionKey {
        SessionKey { topic: "t".into(), partition: p }
    }

    fn part(offset: i64) -> SessionPartition {
        SessionPartition { topic_id: uuid::Uuid::nil(), fetch_offset: offset, max_bytes: 100, current_leader_epoch: -1, reported: None }
    }

    #[test]
    fn epochs_are_enforced() {
        let sessions = FetchSessions::default();
        let id = sessions.create([(key(0), part(0))].into_iter().collect());
        assert!(id > 0);
        assert_eq!(sessions.update(id, 1, |s| s.partitions.len()).unwrap(), 1);
        assert_eq!(
            sessions.update(id, 1, |_| ()).unwrap_err(),
            SessionError::InvalidEpoch { id, expected: 2, got: 1 }
        );
        sessions.update(id, 2, |s| s.partitions.insert(key(1), part(5))).unwrap();
        assert_eq!(sessions.update(id, 3, |s| s.partitions.len()).unwrap(), 2);
        sessions.remove(id);
        assert_eq!(sessions.update(id, 4, |_| ()).unwrap_err(), SessionError::NotFound(id));
    }

    #[test]
    fn evicts_least_recently_used() {
        let sessions = FetchSessions::default();
        let first = sessions.create(IndexMap::new());
        for _ in 0..MAX_SESSIONS {
            sessions.create(IndexMap::new());
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(sessions.update(first, 1, |_| ()).unwrap_err(), SessionError::NotFound(first));
    }
}
