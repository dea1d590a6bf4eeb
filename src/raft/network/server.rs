//! The receiving side: accepts connections from peers and hands each request to its
//! group's handler.
//!
//! Per connection: one reader (this task) that decodes frames in order, one writer task
//! that sends responses as they complete, and one short-lived task per request in flight
//! (bounded by a semaphore, so a peer cannot make the broker hold unbounded work). Nothing
//! lives per group: a group is a map entry.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::Shared;
use super::wire::{self, Hello, RemoteFailure, Request, Response, WireError};
use crate::raft::NodeId;

/// How long the accept loop pauses after an accept error (out of descriptors, say).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts until `shutdown` resolves, then closes every accepted connection.
pub(super) async fn serve(shared: Arc<Shared>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    connections.spawn(serve_connection(shared.clone(), stream, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "raft transport: accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// Serves one peer's connection until it closes or sends something malformed.
async fn serve_connection(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(peer = %addr, error = %e, "raft transport: cannot set TCP_NODELAY");
    }
    let max = shared.config.max_frame_bytes;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let hello = tokio::time::timeout(shared.config.handshake_timeout, read_hello(&mut reader, max, shared.node)).await;
    let node = match hello.unwrap_or(Err(WireError::HelloTimeout(shared.config.handshake_timeout))) {
        Ok(hello) => hello.node,
        Err(e) => {
            if e.is_malformed() {
                shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
            }
            tracing::warn!(peer = %addr, error = %e, "raft transport: closing connection: bad hello");
            return;
        }
    };
    // Open until this function returns, whichever way the connection ends.
    let _open = super::InboundGuard::new(shared.clone(), node);
    let reply = wire::encode(&Hello::new(shared.node, node), max).map_err(io::Error::other);
    if let Err(e) = async { write.write_all(&reply?).await }.await {
        tracing::debug!(peer = %addr, node, error = %e, "raft transport: cannot answer the hello");
        return;
    }
    // Bounded like the requests in flight: a peer that does not read its responses stops
    // having its requests read.
    let (responses, outgoing) = mpsc::channel(shared.config.max_queued_frames);
    // Dropping the set (this task ends or is aborted) aborts the writer and every request
    // still being handled for this connection.
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        if let Err(e) = wire::write_frames(write, outgoing).await {
            tracing::debug!(peer = %addr, error = %e, "raft transport: cannot write responses");
        }
    });
    let in_flight = Arc::new(Semaphore::new(shared.config.max_in_flight_per_connection));
    loop {
        let request: Request = match read_frame(&mut reader, max).await {
            Ok(Some(request)) => request,
            Ok(None) => {
                tracing::debug!(peer = %addr, node, "raft transport: peer closed the connection");
                break;
            }
            Err(e) => {
                if e.is_malformed() {
                    shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
                }
                tracing::warn!(peer = %addr, node, error = %e, "raft transport: closing connection");
                break;
            }
        };
        shared.stats.received.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = in_flight.clone().acquire_owned().await else { break };
        let handler = shared.registry.get(&request.group);
        let responses = responses.clone();
        tasks.spawn(async move {
            let Request { id, group, body } = request;
            let body = match handler {
                Some(handler) => handler.handle(body).await,
                None => Err(RemoteFailure::NotHosted(group)),
            };
            let frame = wire::encode(&Response { id, body }, max)
                .or_else(|e| wire::encode(&Response { id, body: Err(RemoteFailure::Encode(e.to_string())) }, max));
            match frame {
                // A closed channel means the connection is going away; the peer times out.
                Ok(frame) => drop(responses.send(frame).await),
                Err(e) => tracing::error!(error = %e, "raft transport: cannot encode an error response"),
            }
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
}

async fn read_hello(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    max: usize,
    me: NodeId,
) -> Result<Hello, WireError> {
    let hello: Hello = read_frame(reader, max).await?.ok_or(WireError::Io(io::ErrorKind::UnexpectedEof.into()))?;
    hello.validate(me)?;
    Ok(hello)
}

async fn read_frame<T: serde::de::DeserializeOwned>(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    max: usize,
) -> Result<Option<T>, WireError> {
    match wire::read_frame(reader, max).await? {
        Some(payload) => Ok(Some(wire::decode(&payload)?)),
        None => Ok(None),
    }
}
