//! The Kafka listener: accepts connections and serves each one until it closes or the
//! broker shuts down.
//!
//! Per connection a reader decodes frames and starts each request in arrival order; the
//! order-sensitive part of a request (a produce's append, an admin change) runs right
//! there, so two pipelined requests take effect in the order they were sent. What can
//! wait (a produce waiting for its fsync, a fetch long-poll) continues as its own task,
//! and a writer sends the responses back strictly in request order.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use std::io::ErrorKind;
use std::os::fd::AsRawFd;

use tokio::io::{AsyncWriteExt, BufWriter, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

mod backoff;
pub mod limits;

use crate::broker::Broker;
use crate::config::ListenerId;
use crate::handler;
use crate::log::FileRange;
use crate::protocol::splice::Part;
use crate::protocol::{self, Decoded, frame};
use crate::security::PeerLogLimiter;

/// Requests a connection may have in flight before the reader stops reading.
const MAX_IN_FLIGHT: usize = 16;

/// How long one response may take to be written before the client is considered gone.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// How long shutdown waits for connections to deliver their last responses before
/// dropping them (a client that stops reading must not keep the broker alive).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// How long a stopping broker waits for the leadership of its raft groups to move.
const LEADERSHIP_HAND_OFF: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets every
/// connection finish the requests it has read, flushes the logs and returns.
pub async fn run(listener: TcpListener, broker: Arc<Broker>, shutdown: impl Future<Output = ()>) {
    run_listeners(vec![(ListenerId(0), listener)], broker, shutdown).await
}

/// [`run`] for every Kafka listener of the broker, each bound socket with its position in
/// the broker's `listeners`: a connection's clients are told brokers' addresses on the
/// listener it came in on.
pub async fn run_listeners(
    listeners: Vec<(ListenerId, TcpListener)>,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()>,
) {
    let stop_rx = broker.shutdown_signal();
    let budget = frame::MemoryBudget::new(broker.config.frame_budget_bytes());
    let tls_log = Arc::new(PeerLogLimiter::default());
    let housekeeping = tokio::spawn(broker.clone().run_housekeeping(stop_rx.clone()));
    let group_timers = tokio::spawn(crate::group::GroupCoordinator::run_timers(broker.clone(), stop_rx.clone()));
    let txn_timers = tokio::spawn(crate::txn::markers::run_timers(broker.clone(), stop_rx.clone()));
    let scrubber = broker.start_scrubber();
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let mut backoff = backoff::AcceptBackoff::default();
    let mut paused_until: Option<tokio::time::Instant> = None;
    // Validated when the broker opened; unparsable overrides cannot reach here.
    let limits = limits::ConnectionLimits::from_settings(&broker.config.kafka).unwrap_or_else(|e| {
        warn!(error = %e, "ignoring max.connections.per.ip.overrides");
        limits::ConnectionLimits::new(
            usize::try_from(broker.config.kafka.max_connections).unwrap_or(usize::MAX),
            usize::try_from(broker.config.kafka.max_connections_per_ip).unwrap_or(usize::MAX),
            Default::default(),
        )
    });
    // A place under max.connections, taken before accepting.
    let mut slot: Option<limits::Slot> = None;
    let mut next_listener = 0;
    loop {
        tokio::select! {
            s = limits.wait_for_slot(), if slot.is_none() => slot = Some(s),
            (listener_id, accepted) = accept_any(&listeners, &mut next_listener), if paused_until.is_none() && slot.is_some() => match accepted {
                Ok((stream, peer)) => {
                    if let Some(failures) = backoff.succeeded() {
                        info!(failures, "accepting connections again");
                    }
                    let Some(taken) = slot.take() else { continue };
                    let guard = match limits.admit(peer.ip(), taken) {
                        Ok(guard) => guard,
                        Err(refused) => {
                            debug!(%peer, error = %refused, "connection closed at once");
                            drop(stream);
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let broker = broker.clone();
                    let stop = stop_rx.clone();
                    let budget = budget.clone();
                    let tls_log = tls_log.clone();
                    connections.spawn(async move {
                        let counted = broker.clone();
                        let _open = counted.metrics.connection_opened();
                        debug!(%peer, "connection opened");
                        serve_connection(stream, broker, listener_id, stop, budget, &tls_log).await;
                        drop(guard);
                        debug!(%peer, "connection closed");
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the others and
                    // retry with exponential backoff, warning once per streak.
                    let pause = backoff.failed(std::time::Instant::now());
                    if let Some(failures) = pause.warn {
                        let out_of_fds = backoff::out_of_descriptors(&e);
                        warn!(error = %e, out_of_fds, failures, retry_in = ?pause.delay, "accept failed; backing off");
                    }
                    paused_until = Some(tokio::time::Instant::now() + pause.delay);
                }
            },
            () = tokio::time::sleep_until(paused_until.unwrap_or_else(tokio::time::Instant::now)), if paused_until.is_some() => {
                paused_until = None;
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    if let Some(cluster) = broker.replication() {
        // Kafka's controlled shutdown: clients move to the new leaders while this broker
        // still answers them (NOT_LEADER_OR_FOLLOWER naming the new leader).
        cluster.hand_off_leadership(LEADERSHIP_HAND_OFF).await;
    }
    info!("shutting down: no longer accepting connections");
    broker.begin_shutdown();
    drop(listeners);
    let drained =
        tokio::time::timeout(SHUTDOWN_GRACE, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!(connections = connections.len(), "connections still busy after the grace period; dropping them");
        connections.shutdown().await;
    }
    let _ = housekeeping.await;
    let _ = group_timers.await;
    let _ = txn_timers.await;
    if let Some(scrubber) = scrubber {
        // Ends at the next segment boundary; the join waits off the runtime.
        let _ = tokio::task::spawn_blocking(move || scrubber.stop()).await;
    }
    if let Some(cluster) = broker.replication() {
        // Raft members stop before the logs under them close.
        cluster.shutdown().await;
    }
    let closer = broker.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || closer.close()).await {
        warn!(error = %e, "closing logs failed");
    }
    info!("shutdown complete");
}

type Pending = JoinHandle<handler::Reply>;

/// The next connection on any of `listeners`, with the listener it came in on. Polled in
/// turn from a rotating start, so a busy listener cannot starve another.
async fn accept_any(
    listeners: &[(ListenerId, TcpListener)],
    start: &mut usize,
) -> (ListenerId, std::io::Result<(TcpStream, SocketAddr)>) {
    std::future::poll_fn(|cx| {
        let n = listeners.len();
        for k in 0..n {
            let (id, listener) = &listeners[(*start + k) % n];
            if let std::task::Poll::Ready(accepted) = listener.poll_accept(cx) {
                *start = (*start + k + 1) % n;
                return std::task::Poll::Ready((*id, accepted));
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn serve_connection(
    stream: TcpStream,
    broker: Arc<Broker>,
    listener: ListenerId,
    mut stop: watch::Receiver<bool>,
    budget: frame::MemoryBudget,
    tls_log: &PeerLogLimiter,
) {
    let peer = stream.peer_addr().ok();
    let mut sasl_logged = false;
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = mpsc::channel::<Pending>(MAX_IN_FLIGHT);
    // Aborted if this connection's task is (shutdown grace elapsed), so the writer never
    // outlives the broker.
    let mut writer_task = AbortOnDrop(tokio::spawn(write_responses(writer, rx)));
    let max = broker.config.kafka.socket_request_max_bytes;
    loop {
        let frame = tokio::select! {
            f = frame::read_frame(&mut reader, max, &budget) => f,
            _ = stop.changed() => break,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(frame::FrameError::TlsRecord) => {
                // Rate-limited per peer address: a client retrying in a loop must not
                // flood the log.
                if let Some(suppressed) = tls_log.should_log(peer.map(|p| p.ip()), std::time::Instant::now()) {
                    warn!(
                        ?peer,
                        suppressed,
                        "client spoke TLS to a PLAINTEXT listener (its security.protocol is SSL or SASL_SSL; Jet serves PLAINTEXT only for now); closing connection"
                    );
                }
                // Refuse in TLS's own terms, so the client reports a failed handshake
                // rather than a reset connection: a fatal handshake_failure alert. The
                // rest of its hello is read first (briefly): closing with unread input
                // sends a reset, which can overtake the alert.
                let alert = tokio::spawn(async {
                    Ok(Some(handler::Outgoing::new(bytes::Bytes::from_static(&TLS_HANDSHAKE_FAILURE))))
                });
                let _ = tx.send(alert).await;
                drain_briefly(&mut reader).await;
                break;
            }
            Err(e) => {
                warn!(?peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        let frame::Frame { bytes, reservation } = frame;
        let correlation = protocol::peek_correlation_id(&bytes);
        let request = match protocol::decode_request(bytes, handler::supported_versions) {
            Ok(Decoded::Request(r)) => r,
            Ok(Decoded::UnsupportedApiVersions { correlation_id }) => {
                let bytes = handler::api_versions::unsupported_version_response(correlation_id);
                if tx.send(tokio::spawn(async move { Ok(Some(handler::Outgoing::new(bytes))) })).await.is_err() {
                    break;
                }
                continue;
            }
            Err(e) => {
                warn!(?peer, correlation_id = ?correlation, error = %e, "closing connection: undecodable request");
                break;
            }
        };
        if let Some(attempt) = handler::sasl::attempt(&request)
            && !std::mem::replace(&mut sasl_logged, true)
        {
            warn!(
                ?peer,
                client_id = request.header.client_id.as_deref().unwrap_or_default(),
                "client attempted SASL authentication ({attempt}) on a PLAINTEXT listener: answering ILLEGAL_SASL_STATE as Kafka does (Jet serves PLAINTEXT only for now; the client's security.protocol is SASL_PLAINTEXT or SASL_SSL)"
            );
        }
        let timer = broker.metrics.request_started(request.api_key);
        let pending = handler::dispatch(&broker, *request, peer, listener).await;
        // The frame's reservation is held until the response is written: decoded
        // strings and record sets share the frame's buffer.
        let metrics_of = broker.clone();
        let task = tokio::spawn(async move {
            let reply = pending.await;
            timer.finish(&metrics_of.metrics);
            reply.map(|reply| reply.map(|out| out.holding(reservation)))
        });
        if tx.send(task).await.is_err() {
            break;
        }
    }
    drop(tx);
    if let Err(e) = (&mut writer_task.0).await {
        warn!(?peer, error = %e, "response writer failed");
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The write half of a connection: buffered only while responses are being written,
/// so an idle connection holds no write buffer.
enum Out {
    Idle(OwnedWriteHalf),
    Writing(BufWriter<OwnedWriteHalf>),
}

/// Size of a connection's write buffer while it has responses to write.
const WRITE_BUFFER: usize = 64 * 1024;

/// A TLS record (alert, TLS 1.0 record version, 2 bytes): fatal `handshake_failure`.
const TLS_HANDSHAKE_FAILURE: [u8; 7] = [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28];

/// Reads and discards what the client already sent (at most 64 KiB, for at most 200 ms).
async fn drain_briefly(reader: &mut tokio::net::tcp::OwnedReadHalf) {
    use tokio::io::AsyncReadExt;
    let mut scratch = [0u8; 4096];
    let mut left = 64 * 1024usize;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
    while left > 0 {
        match tokio::time::timeout_at(deadline, reader.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

async fn write_responses(writer: OwnedWriteHalf, mut rx: mpsc::Receiver<Pending>) {
    let mut out = Out::Idle(writer);
    while let Some(pending) = rx.recv().await {
        let response = match pending.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                warn!(error = %e, "closing connection: response cannot be encoded");
                return;
            }
            Err(e) => {
                warn!(error = %e, "request task failed; closing connection");
                return;
            }
        };
        let mut writer = match out {
            Out::Idle(w) => BufWriter::with_capacity(WRITE_BUFFER, w),
            Out::Writing(w) => w,
        };
        // A client that stops reading must not hold its responses' memory forever: each
        // write (and flush) gets WRITE_TIMEOUT.
        let write = async {
            if let Some(out) = &response {
                write_parts(&mut writer, &out.parts).await?;
            }
            let idle = rx.is_empty();
            if idle {
                writer.flush().await?;
            }
            Ok::<bool, std::io::Error>(idle)
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(idle)) => {
                drop(response);
                // Flushed and nothing queued: give the buffer back.
                out = if idle { Out::Idle(writer.into_inner()) } else { Out::Writing(writer) };
            }
            Ok(Err(e)) => {
                debug!(error = %e, "write failed; closing connection");
                return;
            }
            Err(_elapsed) => {
                warn!("client did not read its responses within {WRITE_TIMEOUT:?}; closing connection");
                return;
            }
        }
    }
    let _ = match &mut out {
        Out::Idle(w) => w.shutdown().await,
        Out::Writing(w) => w.shutdown().await,
    };
}

/// Writes a response's parts: encoded bytes through the buffer, file ranges straight from
/// the page cache to the socket.
async fn write_parts(writer: &mut BufWriter<OwnedWriteHalf>, parts: &[Part<Vec<FileRange>>]) -> std::io::Result<()> {
    let spliced = parts.len() > 1;
    if spliced {
        // Corked, the frame's small encoded pieces go out in full segments together with
        // the file data instead of as packets of their own (each one a wake-up of the
        // client); uncorking after the last piece sends what is left at once.
        set_cork(writer.get_ref().as_ref(), true)?;
    }
    for part in parts {
        match part {
            Part::Bytes(bytes) => writer.write_all(bytes).await?,
            Part::Hole(ranges) => {
                writer.flush().await?;
                for range in ranges {
                    send_file(writer.get_ref().as_ref(), range).await?;
                }
            }
        }
    }
    if spliced {
        writer.flush().await?;
        set_cork(writer.get_ref().as_ref(), false)?;
    }
    Ok(())
}

fn set_cork(stream: &TcpStream, on: bool) -> std::io::Result<()> {
    let value: libc::c_int = on.into();
    // SAFETY: a valid socket and a pointer to a c_int of the length given.
    let r = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// `sendfile(2)` of one file range to the (non-blocking) socket. Like Kafka's
/// `FileRecords.writeTo`, the copy happens in the kernel; a range not entirely in the page
/// cache is first read on the blocking pool (see [`crate::log::page_cache`]), so the copy
/// never waits for the disk on an async worker.
async fn send_file(stream: &TcpStream, range: &FileRange) -> std::io::Result<()> {
    if !crate::log::page_cache::is_resident(&range.file, range.pos, range.len) {
        let cold = range.clone();
        tokio::task::spawn_blocking(move || crate::log::page_cache::warm(&cold))
            .await
            .map_err(std::io::Error::other)??;
    }
    let end = range.pos + range.len as u64;
    let mut pos = range.pos;
    while pos < end {
        stream.writable().await?;
        let sent = stream.try_io(Interest::WRITABLE, || {
            let mut offset = libc::off_t::try_from(pos).map_err(|e| std::io::Error::new(ErrorKind::InvalidInput, e))?;
            let count = usize::try_from(end - pos).unwrap_or(usize::MAX);
            // SAFETY: both descriptors are open for the duration of the call (the socket is
            // borrowed, the file held by its Arc) and `offset` is a valid out-parameter.
            let n = unsafe { libc::sendfile(stream.as_raw_fd(), range.file.as_raw_fd(), &mut offset, count) };
            if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as u64) }
        });
        match sent {
            // The segment is shorter than planned (it cannot be: plans cover written bytes
            // and files are only cut at startup); the frame cannot be completed.
            Ok(0) => {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("{} ends before byte {end}", range.path.display()),
                ));
            }
            Ok(n) => pos += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
