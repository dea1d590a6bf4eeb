//! The frames of the raft transport.
//!
//! A frame is a big-endian `u32` length followed by that many bytes of one message encoded
//! with `postcard` (a compact, non-self-describing serde format: varint integers, byte
//! strings as length + raw bytes, so a record batch costs its own size plus a few bytes).
//! The length is checked against the cap before the buffer is allocated, so a peer cannot
//! make the broker allocate more than the cap whatever it sends.
//!
//! A connection starts with a [`Hello`] frame each way (magic, protocol version, the
//! sender's node id and the node id it means to talk to): the accepting broker refuses a
//! connection meant for another node, and the dialling broker one answered by another
//! node, so an address that moved to another broker is never mistaken for the old one.
//! Then the connection carries [`Request`] frames from the dialler and [`Response`] frames
//! back, matched by request id: responses come back in completion order, not request
//! order.

use std::io;

use bytes::Bytes;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc::Receiver;

use crate::raft::{CommittedLeaderId, GroupId, JetNode, NodeId, TypeConfig, Vote};

/// The default cap on one frame (an AppendEntries of many batches, or a snapshot).
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;

/// Identifies the raft transport's protocol in the first frame of a connection.
const MAGIC: [u8; 4] = *b"JETR";

/// The version of this frame layout; a peer speaking another is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// A snapshot's metadata as Jet's raft types name it.
pub type SnapshotMeta = openraft::SnapshotMeta<CommittedLeaderId, NodeId, JetNode>;

/// The first frame each way on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    magic: [u8; 4],
    version: u16,
    /// The sender's node id.
    pub node: NodeId,
    /// The node id the sender means to talk to.
    pub to: NodeId,
}

impl Hello {
    pub fn new(node: NodeId, to: NodeId) -> Hello {
        Hello { magic: MAGIC, version: PROTOCOL_VERSION, node, to }
    }

    /// Checks magic and version, and that the hello is meant for node `me`.
    pub fn validate(&self, me: NodeId) -> Result<(), WireError> {
        if self.magic != MAGIC {
            return Err(WireError::NotRaftTransport);
        }
        if self.version != PROTOCOL_VERSION {
            return Err(WireError::Version { got: self.version, expected: PROTOCOL_VERSION });
        }
        if self.to != me {
            return Err(WireError::WrongNode { to: self.to, me });
        }
        Ok(())
    }
}

/// One RPC for one raft group.
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// Unique among the requests in flight on the connection; echoed in the response.
    pub id: u64,
    pub group: GroupId,
    pub body: RequestBody,
}

/// [`Request`] borrowed, for encoding without cloning the body (same encoding).
#[derive(Debug, Serialize)]
pub struct RequestRef<'a> {
    pub id: u64,
    pub group: &'a GroupId,
    pub body: &'a RequestBody,
}

/// The raft RPCs a group receives.
#[derive(Debug, Serialize, Deserialize)]
pub enum RequestBody {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<TypeConfig>),
    PreVote(VoteRequest<TypeConfig>),
    /// A whole snapshot in one frame: a partition's snapshot is small (log start,
    /// producer state), so it is not chunked; it must fit the frame cap. A compacted
    /// partition's retained data goes before it, in [`RequestBody::SnapshotData`] chunks.
    FullSnapshot {
        vote: Vote,
        meta: SnapshotMeta,
        data: Bytes,
    },
    /// One chunk of the retained data of the snapshot at `last` (a compacted log's
    /// batches in `range`; see `crate::log::retained`): whole batches asked from `from`,
    /// the offset after them `next`; `done` on the last chunk.
    SnapshotData(RetainedChunk),
    TransferLeader(TransferLeaderRequest<TypeConfig>),
}

/// See [`RequestBody::SnapshotData`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetainedChunk {
    pub vote: Vote,
    pub last: Option<crate::raft::LogId>,
    pub range: (i64, i64),
    pub from: i64,
    pub next: i64,
    pub data: Bytes,
    pub done: bool,
}

/// The answer to request `id`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub body: Result<ResponseBody, RemoteFailure>,
}

/// What a group answered.
#[derive(Debug, Serialize, Deserialize)]
pub enum ResponseBody {
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    Vote(VoteResponse<TypeConfig>),
    Snapshot(SnapshotResponse<TypeConfig>),
    TransferLeader(TransferLeaderResponse<TypeConfig>),
    /// A [`RequestBody::SnapshotData`] chunk is staged.
    Staged,
}

/// Why the receiving broker could not hand a request to the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteFailure {
    /// The broker does not host the group (not yet created, or moved away): the caller
    /// treats the target as unreachable for that group and retries later.
    #[error("raft group {0} is not hosted on the target broker")]
    NotHosted(GroupId),
    /// The group's raft instance has stopped (shut down or a fatal storage error).
    #[error("raft group stopped on the target broker: {0}")]
    Stopped(String),
    /// The group refused the request (snapshot data out of order, or a snapshot whose
    /// data did not all arrive): the sender starts the snapshot again later.
    #[error("raft group refused the request: {0}")]
    Refused(String),
    /// The response could not be encoded (too large for a frame).
    #[error("the target broker could not encode its response: {0}")]
    Encode(String),
}

/// Errors of reading, decoding or encoding frames.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("frame of {len} bytes exceeds the {max}-byte cap")]
    TooLarge { len: usize, max: usize },
    #[error("empty frame")]
    Empty,
    #[error("cannot decode frame: {0}")]
    Decode(#[source] postcard::Error),
    #[error("cannot encode message: {0}")]
    Encode(#[source] postcard::Error),
    #[error("the peer does not speak the raft transport protocol")]
    NotRaftTransport,
    #[error("raft transport protocol version {got}, expected {expected}")]
    Version { got: u16, expected: u16 },
    #[error("the peer means node {to}, this is node {me}")]
    WrongNode { to: NodeId, me: NodeId },
    #[error("expected node {expected} at this address, node {got} answered")]
    UnexpectedPeer { expected: NodeId, got: NodeId },
    #[error("no hello within {0:?}")]
    HelloTimeout(std::time::Duration),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl WireError {
    /// Whether the peer sent something wrong (as opposed to the connection failing).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            WireError::TooLarge { .. }
                | WireError::Empty
                | WireError::Decode(_)
                | WireError::NotRaftTransport
                | WireError::Version { .. }
        )
    }
}

/// Encodes `message` as one frame (length prefix included).
pub fn encode<T: Serialize>(message: &T, max_frame_bytes: usize) -> Result<Bytes, WireError> {
    let frame = postcard::to_extend(message, vec![0u8; 4]).map_err(WireError::Encode)?;
    let len = frame.len() - 4;
    if len > max_frame_bytes {
        return Err(WireError::TooLarge { len, max: max_frame_bytes });
    }
    let mut frame = frame;
    let prefix = u32::try_from(len).map_err(|_| WireError::TooLarge { len, max: u32::MAX as usize })?;
    frame[..4].copy_from_slice(&prefix.to_be_bytes());
    Ok(Bytes::from(frame))
}

/// Decodes one frame's payload; trailing bytes are an error (a frame is one message).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, WireError> {
    let (message, rest) = postcard::take_from_bytes(payload).map_err(WireError::Decode)?;
    if !rest.is_empty() {
        return Err(WireError::Decode(postcard::Error::DeserializeBadEncoding));
    }
    Ok(message)
}

/// Reads one frame's payload; `None` at a clean end of stream between frames. The length
/// is checked against `max_frame_bytes` before anything is allocated.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_frame_bytes: usize,
) -> Result<Option<Vec<u8>>, WireError> {
    let mut prefix = [0u8; 4];
    let mut filled = 0;
    while filled < prefix.len() {
        let n = reader.read(&mut prefix[filled..]).await?;
        if n == 0 {
            if filled == 0 {
                return Ok(None);
            }
            return Err(WireError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        filled += n;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > max_frame_bytes {
        return Err(WireError::TooLarge { len, max: max_frame_bytes });
    }
    if len == 0 {
        return Err(WireError::Empty);
    }
    let mut payload = vec![0u8; len];
    reader.read_exact(&mut payload).await?;
    Ok(Some(payload))
}

/// Writes frames as they are queued, flushing when none are left (one syscall for a burst)
/// until the queue closes or a write fails.
pub async fn write_frames<W: AsyncWrite + Unpin>(write: W, mut frames: Receiver<Bytes>) -> io::Result<()> {
    let mut writer = BufWriter::new(write);
    while let Some(frame) = frames.recv().await {
        writer.write_all(&frame).await?;
        while let Ok(frame) = frames.try_recv() {
            writer.write_all(&frame).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}
