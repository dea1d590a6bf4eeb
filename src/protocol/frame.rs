//! Length-prefixed Kafka frames: a big-endian `i32` size followed by that many bytes.
//!
//! The size is checked against `socket.request.max.bytes` before anything is allocated,
//! and memory is committed only as bytes actually arrive, so a client that declares a
//! large frame and sends nothing costs nothing. See [`MemoryBudget`] for how large frames
//! share memory without deadlocking.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of a frame read on the connection's own allowance, outside the shared budget:
/// most requests fit, and a connection that declares a large frame but sends little
/// holds at most this much.
const ALLOWANCE: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Where a frame size belongs is a TLS record header (a ClientHello, usually): the
    /// client was configured for SSL/SASL_SSL (Jet serves PLAINTEXT only for now).
    #[error("client spoke TLS to a PLAINTEXT listener")]
    TlsRecord,
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
    #[error("frame size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i32, max: u32 },
    #[error("connection closed after {received} of {expected} frame bytes")]
    Truncated { received: usize, expected: usize },
    #[error("the request memory budget is closed")]
    BudgetClosed,
    #[error("socket read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes of request frames the whole broker holds at once (Kafka's
/// `queued.max.request.bytes`), beyond each connection's small allowance.
///
/// A frame's first `ALLOWANCE` bytes are read without the budget. Only when a client
/// actually sends more does the frame reserve the rest of its declared size, all at once;
/// it is released when the response is written. All-or-nothing matters: frames that each
/// held part of the budget while waiting for more could wait for each other forever,
/// whereas a waiting frame here holds nothing, and every holder is a frame that can
/// finish. Connections that merely *declare* large frames hold nothing from the budget,
/// and small requests never wait for it.
#[derive(Clone)]
pub struct MemoryBudget {
    semaphore: Arc<Semaphore>,
    capacity: usize,
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> Self {
        let capacity = bytes.min(Semaphore::MAX_PERMITS);
        Self { semaphore: Arc::new(Semaphore::new(capacity)), capacity }
    }

    /// The whole budget.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Waits until `bytes` can be reserved at once; `None` only if the budget was closed
    /// (or `bytes` exceeds what a frame can be).
    async fn reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = u32::try_from(bytes).ok()?;
        self.semaphore.clone().acquire_many_owned(n).await.ok()
    }

    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// Reserves `bytes` now, or `None` when the budget cannot cover them at the moment.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = u32::try_from(bytes).ok()?;
        self.semaphore.clone().try_acquire_many_owned(n).ok()
    }
}

/// Bytes held against a [`MemoryBudget`]; released on drop. `merge` combines two and
/// `split` gives part back early.
pub type Reservation = OwnedSemaphorePermit;

/// A request frame and its share of the [`MemoryBudget`].
pub struct Frame {
    pub bytes: Bytes,
    pub reservation: Option<OwnedSemaphorePermit>,
}

/// Reads one frame. `Ok(None)` means the peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: u32,
    budget: &MemoryBudget,
) -> Result<Option<Frame>, FrameError> {
    let mut size_bytes = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut size_bytes[got..]).await?;
        if n == 0 {
            return if got == 0 { Ok(None) } else { Err(FrameError::Truncated { received: got, expected: 4 }) };
        }
        got += n;
    }
    // Before the size checks: a ClientHello would otherwise be refused as a frame of
    // ~369 MB, which tells nobody what happened.
    if crate::security::is_tls_record(size_bytes) {
        return Err(FrameError::TlsRecord);
    }
    let size = i32::from_be_bytes(size_bytes);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    if size as u32 > max_size {
        return Err(FrameError::TooLarge { size, max: max_size });
    }
    let size = size as usize;
    let mut reservation = None;
    // A `Vec` grown with `reserve_exact` as bytes arrive, and reads limited to what was
    // grown: a `BytesMut` doubles its allocation when it grows, so the buffer could hold
    // about twice what arrived (and what the budget accounts for).
    let mut buf: Vec<u8> = Vec::new();
    let mut grown = 0usize;
    while buf.len() < size {
        if grown == buf.len() {
            if buf.len() == ALLOWANCE {
                // The client really is sending a large frame: reserve all of the rest.
                reservation = Some(budget.reserve(size - ALLOWANCE).await.ok_or(FrameError::BudgetClosed)?);
            }
            // Within the allowance, or once the rest is reserved: allocate it in one go
            // (pages are only touched as bytes arrive).
            let step = if buf.len() < ALLOWANCE { size.min(ALLOWANCE) - buf.len() } else { size - buf.len() };
            grown += step;
            buf.reserve_exact(step);
        }
        let want = grown - buf.len();
        let mut limited = (&mut *reader).take(want as u64);
        let n = limited.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated { received: buf.len(), expected: size });
        }
    }
    Ok(Some(Frame { bytes: Bytes::from(buf), reservation }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: u32) -> Result<Option<Bytes>, FrameError> {
        let mut r = bytes;
        Ok(read_frame(&mut r, max, &MemoryBudget::new(1 << 20)).await?.map(|f| f.bytes))
    }

    #[tokio::test]
    async fn reads_frames_and_clean_eof() {
        let mut data = vec![0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0];
        data.extend_from_slice(&[]);
        let mut r = &data[..];
        let budget = MemoryBudget::new(100);
        let frame = read_frame(&mut r, 10, &budget).await.unwrap().unwrap();
        assert_eq!(frame.bytes, Bytes::from_static(b"abc"));
        drop(frame);
        assert_eq!(read_frame(&mut r, 10, &budget).await.unwrap().unwrap().bytes.len(), 0);
        assert!(read_frame(&mut r, 10, &budget).await.unwrap().is_none());
    }

    const MIB: usize = 1 << 20;

    #[tokio::test]
    async fn small_frames_and_declared_but_unsent_frames_hold_no_budget() {
        let budget = MemoryBudget::new(10 * MIB);
        let (mut client, mut server) = tokio::io::duplex(64);
        let b = budget.clone();
        let reader = tokio::spawn(async move { read_frame(&mut server, u32::MAX, &b).await.map(|f| f.is_some()) });
        use tokio::io::AsyncWriteExt;
        client.write_all(&(50 * MIB as i32).to_be_bytes()).await.unwrap();
        // The duplex holds 64 bytes, so once this returns the reader has taken the rest.
        client.write_all(&[1u8; 1000]).await.unwrap();
        assert_eq!(budget.available(), 10 * MIB);
        drop(client);
        assert!(matches!(reader.await.unwrap(), Err(FrameError::Truncated { .. })));
        assert_eq!(budget.available(), 10 * MIB);
        // A complete small frame never touches the budget either.
        let mut data = 1000i32.to_be_bytes().to_vec();
        data.resize(1004, 3);
        let frame = read_frame(&mut &data[..], u32::MAX, &budget).await.unwrap().unwrap();
        assert!(frame.reservation.is_none());
    }

    #[tokio::test]
    async fn a_complete_frame_holds_its_size_beyond_the_allowance() {
        let size = 8 * MIB + 123;
        let mut data = (size as i32).to_be_bytes().to_vec();
        data.resize(4 + size, 7);
        let budget = MemoryBudget::new(64 * MIB);
        let frame = read_frame(&mut &data[..], u32::MAX, &budget).await.unwrap().unwrap();
        assert_eq!(frame.bytes.len(), size);
        assert_eq!(64 * MIB - budget.available(), size - ALLOWANCE);
        drop(frame);
        assert_eq!(budget.available(), 64 * MIB);
    }

    #[tokio::test]
    async fn large_frames_that_do_not_fit_together_take_turns_instead_of_deadlocking() {
        // Each frame needs most of the budget; both stream concurrently.
        let budget = MemoryBudget::new(3 * MIB);
        let size = 2 * MIB;
        let mut data = (size as i32).to_be_bytes().to_vec();
        data.resize(4 + size, 9);
        let (mut c1, mut s1) = tokio::io::duplex(64 << 10);
        let (mut c2, mut s2) = tokio::io::duplex(64 << 10);
        use tokio::io::AsyncWriteExt;
        let (d1, d2) = (data.clone(), data.clone());
        let w1 = tokio::spawn(async move { c1.write_all(&d1).await });
        let w2 = tokio::spawn(async move { c2.write_all(&d2).await });
        let (b1, b2) = (budget.clone(), budget.clone());
        let r1 =
            tokio::spawn(async move { read_frame(&mut s1, u32::MAX, &b1).await.map(|f| f.map(|f| f.bytes.len())) });
        let r2 =
            tokio::spawn(async move { read_frame(&mut s2, u32::MAX, &b2).await.map(|f| f.map(|f| f.bytes.len())) });
        // Frames are dropped as soon as read (the request answered), so both complete.
        let done = async {
            assert_eq!(r1.await.unwrap().unwrap(), Some(size));
            assert_eq!(r2.await.unwrap().unwrap(), Some(size));
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), done).await.expect("frames deadlocked");
        w1.await.unwrap().unwrap();
        w2.await.unwrap().unwrap();
        assert_eq!(budget.available(), 3 * MIB);
    }

    #[tokio::test]
    async fn a_tls_client_hello_is_recognised_before_the_size_check() {
        // The record header of a TLS 1.2 ClientHello (librdkafka with security.protocol=SSL),
        // followed by the start of the handshake message.
        let hello = [0x16, 0x03, 0x01, 0x01, 0x2c, 0x01, 0x00, 0x01, 0x28, 0x03, 0x03];
        // Even with a limit that would admit a ~369 MB frame.
        for max in [100, u32::MAX] {
            assert!(matches!(read(&hello, max).await, Err(FrameError::TlsRecord)));
        }
    }

    #[tokio::test]
    async fn rejects_before_allocating() {
        assert!(matches!(read(&[0x7f, 0xff, 0xff, 0xff], 100).await, Err(FrameError::TooLarge { .. })));
        assert!(matches!(read(&[0xff, 0xff, 0xff, 0xfe], 100).await, Err(FrameError::NegativeSize(-2))));
        assert!(matches!(read(&[0, 0, 0, 9, 1], 100).await, Err(FrameError::Truncated { received: 1, .. })));
        assert!(matches!(read(&[0, 0], 100).await, Err(FrameError::Truncated { received: 2, expected: 4 })));
    }
}
