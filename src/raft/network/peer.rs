//! The sending side: one TCP connection per peer broker, shared by the clients of every
//! group that replicates to that peer.
//!
//! A [`Peer`] dials lazily on the first call and again after a connection is lost; a failed
//! dial starts a backoff window (doubling up to a cap) during which calls fail at once as
//! unreachable instead of dialling again, so thousands of groups aiming at a dead broker
//! cost one connect attempt per window, not one each. A [`Connection`] has two tasks (a
//! reader that completes calls by request id and a writer that drains queued frames), and
//! any number of calls in flight; nothing in it is per group.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::Shared;
use super::wire::{self, Hello, RemoteFailure, RequestBody, RequestRef, Response, ResponseBody, WireError};
use crate::raft::{GroupId, NodeId};

/// Why a call did not get an answer from the group.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot connect to raft peer {node} at {addr}: {source}")]
    Connect {
        node: NodeId,
        addr: String,
        #[source]
        source: io::Error,
    },
    #[error("raft peer {node} at {addr} is unreachable; next connection attempt in {wait:?}")]
    BackingOff { node: NodeId, addr: String, wait: Duration },
    #[error("connection to raft peer {node} at {addr} was lost")]
    ConnectionLost { node: NodeId, addr: String },
    #[error("cannot send to raft peer {node}: {source}")]
    Encode {
        node: NodeId,
        #[source]
        source: WireError,
    },
    #[error(transparent)]
    Remote(#[from] RemoteFailure),
    #[error("the raft transport is closed")]
    TransportClosed,
}

impl CallError {
    /// Whether openraft should back off before retrying (its `Unreachable`) rather than
    /// retry at once (its `NetworkError`). A lost connection is retried at once: the next
    /// call dials again, and if that fails it is unreachable. A request too large for a
    /// frame would fail the same way on every retry, so it backs off too.
    pub fn is_unreachable(&self) -> bool {
        !matches!(self, CallError::ConnectionLost { .. })
    }
}

type Pending = HashMap<u64, oneshot::Sender<Result<ResponseBody, RemoteFailure>>>;

/// One live connection to a peer.
pub(super) struct Connection {
    /// Frames for the writer; bounded, so a peer that stops reading makes calls wait (and
    /// time out) instead of queueing without limit.
    frames: mpsc::Sender<Bytes>,
    /// Calls waiting for their response; `None` once the connection is closed.
    pending: Mutex<Option<Pending>>,
    next_id: AtomicU64,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Connection {
    fn pending(&self) -> MutexGuard<'_, Option<Pending>> {
        // The map is consistent after any single operation, so a poisoned lock is usable.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn is_closed(&self) -> bool {
        self.pending().is_none()
    }

    /// Fails every waiting call (their senders drop) and stops the reader and writer.
    pub(super) fn close(&self) {
        self.pending().take();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for task in tasks {
            task.abort();
        }
    }

    fn complete(&self, response: Response) {
        let waiter = self.pending().as_mut().and_then(|pending| pending.remove(&response.id));
        match waiter {
            // The caller may have timed out and gone; nothing to do then.
            Some(waiter) => drop(waiter.send(response.body)),
            None => tracing::debug!(id = response.id, "raft transport: response for a call no longer waiting"),
        }
    }
}

/// Removes a call's pending entry when the call ends early (timeout, cancellation).
struct PendingGuard<'a> {
    connection: &'a Connection,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if let Some(pending) = self.connection.pending().as_mut() {
            pending.remove(&self.id);
        }
    }
}

#[derive(Default)]
struct DialState {
    failures: u32,
    retry_at: Option<Instant>,
}

/// A peer broker as the sending side sees it.
pub(super) struct Peer {
    pub(super) node: NodeId,
    pub(super) addr: String,
    live: Mutex<Option<Arc<Connection>>>,
    /// Held while dialling, so concurrent calls wait for one dial instead of racing.
    dial: tokio::sync::Mutex<DialState>,
}

impl Peer {
    pub(super) fn new(node: NodeId, addr: String) -> Peer {
        Peer { node, addr, live: Mutex::new(None), dial: tokio::sync::Mutex::new(DialState::default()) }
    }

    fn live(&self) -> Option<Arc<Connection>> {
        let live = self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        live.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    /// Whether a connection to the peer is open now.
    pub(super) fn is_connected(&self) -> bool {
        self.live().is_some()
    }

    /// Closes the connection, failing the calls waiting on it.
    pub(super) fn close(&self) {
        let live = self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(connection) = live {
            connection.close();
        }
    }

    /// Sends `body` to `group` on the peer and waits for the answer (no timeout here: the
    /// caller bounds the whole call).
    pub(super) async fn call(
        &self,
        shared: &Shared,
        group: &GroupId,
        body: &RequestBody,
    ) -> Result<ResponseBody, CallError> {
        let connection = self.connection(shared).await?;
        let id = connection.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = wire::encode(&RequestRef { id, group, body }, shared.config.max_frame_bytes)
            .map_err(|source| CallError::Encode { node: self.node, source })?;
        let (answer, answered) = oneshot::channel();
        match connection.pending().as_mut() {
            Some(pending) => pending.insert(id, answer),
            None => return Err(self.lost()),
        };
        let _guard = PendingGuard { connection: &connection, id };
        connection.frames.send(frame).await.map_err(|_closed| self.lost())?;
        match answered.await {
            Ok(result) => Ok(result?),
            Err(_closed) => Err(self.lost()),
        }
    }

    fn lost(&self) -> CallError {
        CallError::ConnectionLost { node: self.node, addr: self.addr.clone() }
    }

    /// The live connection, dialling if there is none and the backoff window allows.
    async fn connection(&self, shared: &Shared) -> Result<Arc<Connection>, CallError> {
        if shared.is_closed() {
            return Err(CallError::TransportClosed);
        }
        if let Some(connection) = self.live() {
            return Ok(connection);
        }
        let mut dial = self.dial.lock().await;
        if let Some(connection) = self.live() {
            return Ok(connection);
        }
        let now = Instant::now();
        if let Some(retry_at) = dial.retry_at.filter(|at| *at > now) {
            return Err(CallError::BackingOff { node: self.node, addr: self.addr.clone(), wait: retry_at - now });
        }
        match self.dial(shared).await {
            Ok(connection) => {
                *dial = DialState::default();
                let previous =
                    self.live.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).replace(connection.clone());
                if let Some(previous) = previous {
                    previous.close();
                }
                if shared.is_closed() {
                    // Closed while dialling: do not leave a connection behind.
                    self.close();
                    return Err(CallError::TransportClosed);
                }
                Ok(connection)
            }
            Err(source) => {
                dial.failures = dial.failures.saturating_add(1);
                let delay = backoff_delay(shared.config.reconnect_backoff, dial.failures);
                dial.retry_at = Some(Instant::now() + delay);
                tracing::debug!(peer = self.node, addr = %self.addr, error = %source, ?delay, "raft transport: dial failed");
                Err(CallError::Connect { node: self.node, addr: self.addr.clone(), source })
            }
        }
    }

    async fn dial(&self, shared: &Shared) -> Result<Arc<Connection>, io::Error> {
        let connect = TcpStream::connect(self.addr.as_str());
        let stream = tokio::time::timeout(shared.config.connect_timeout, connect)
            .await
            .map_err(|elapsed| io::Error::new(io::ErrorKind::TimedOut, elapsed))??;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let max = shared.config.max_frame_bytes;
        let hello = wire::encode(&Hello::new(shared.node, self.node), max).map_err(io::Error::other)?;
        write.write_all(&hello).await?;
        let mut reader = BufReader::new(read);
        let reply = tokio::time::timeout(shared.config.connect_timeout, wire::read_frame(&mut reader, max))
            .await
            .map_err(|elapsed| io::Error::new(io::ErrorKind::TimedOut, elapsed))?
            .map_err(io::Error::other)?
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        let reply: Hello = wire::decode(&reply).map_err(io::Error::other)?;
        reply.validate(shared.node).map_err(io::Error::other)?;
        if reply.node != self.node {
            return Err(io::Error::other(WireError::UnexpectedPeer { expected: self.node, got: reply.node }));
        }
        shared.stats.dialled.fetch_add(1, Ordering::Relaxed);
        let (frames, queued) = mpsc::channel(shared.config.max_queued_frames);
        let connection = Arc::new(Connection {
            frames,
            pending: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let (node, addr) = (self.node, self.addr.clone());
        let writer = tokio::spawn({
            let connection = connection.clone();
            async move {
                if let Err(e) = wire::write_frames(write, queued).await {
                    tracing::debug!(peer = node, %addr, error = %e, "raft transport: write failed, closing connection");
                }
                connection.close();
            }
        });
        let reader = tokio::spawn(read_responses(
            connection.clone(),
            reader,
            shared.config.max_frame_bytes,
            self.node,
            self.addr.clone(),
        ));
        connection
            .tasks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .extend([writer.abort_handle(), reader.abort_handle()]);
        Ok(connection)
    }
}

/// The wait after `failures` failed dials in a row: doubling from the minimum, capped.
fn backoff_delay((min, max): (Duration, Duration), failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    min.saturating_mul(1u32 << doublings).min(max)
}

/// Completes calls from response frames until the connection ends or a frame is bad.
async fn read_responses(
    connection: Arc<Connection>,
    mut reader: BufReader<OwnedReadHalf>,
    max: usize,
    node: NodeId,
    addr: String,
) {
    loop {
        let response = match wire::read_frame(&mut reader, max).await {
            Ok(Some(payload)) => wire::decode::<Response>(&payload),
            Ok(None) => {
                tracing::debug!(peer = node, %addr, "raft transport: peer closed the connection");
                break;
            }
            Err(e) => Err(e),
        };
        match response {
            Ok(response) => connection.complete(response),
            Err(e) => {
                tracing::warn!(peer = node, %addr, error = %e, "raft transport: closing connection");
                break;
            }
        }
    }
    connection.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_minimum_up_to_the_cap() {
        let bounds = (Duration::from_millis(50), Duration::from_secs(2));
        let delays: Vec<u128> = (1..=8).map(|n| backoff_delay(bounds, n).as_millis()).collect();
        assert_eq!(delays, vec![50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff_delay(bounds, u32::MAX), Duration::from_secs(2));
    }
}
