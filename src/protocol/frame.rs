//! Length-prefixed Kafka frames: a big-endian `i32` size followed by that many bytes.
//!
//! The size is checked against `socket.request.max.bytes` before anything is allocated,
//! and the buffer grows only as bytes actually arrive, so a client that declares a large
//! frame and sends nothing costs nothing.

use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The frame buffer starts at this size and doubles, up to [`GROWTH_STEP`] per step,
/// as a large frame trickles in: an idle connection that declared 100 MiB holds 64 KiB.
const FIRST_STEP: usize = 64 << 10;
/// Largest growth of the frame buffer at once.
const GROWTH_STEP: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
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
/// `queued.max.request.bytes`). A frame reserves budget as its bytes actually arrive (in
/// steps of at most `GROWTH_STEP`) and releases it when its request is answered, so
/// connections sending large frames wait for each other instead of exhausting memory,
/// while connections that merely *declare* large frames hold almost nothing.
#[derive(Clone)]
pub struct MemoryBudget {
    semaphore: Arc<Semaphore>,
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> Self {
        Self { semaphore: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))) }
    }

    /// Adds `bytes` to `held`. `false` only if the budget was closed.
    async fn reserve(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> bool {
        let Ok(n) = u32::try_from(bytes) else { return false };
        match self.semaphore.clone().acquire_many_owned(n).await {
            Ok(permit) => {
                match held {
                    Some(h) => h.merge(permit),
                    None => *held = Some(permit),
                }
                true
            }
            Err(_closed) => false,
        }
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
    let size = i32::from_be_bytes(size_bytes);
    if size < 0 {
        return Err(FrameError::NegativeSize(size));
    }
    if size as u32 > max_size {
        return Err(FrameError::TooLarge { size, max: max_size });
    }
    let size = size as usize;
    let mut reservation = None;
    // A `Vec` grown with `reserve_exact`, and reads limited to what is reserved: a
    // `BytesMut` doubles its allocation when it grows, so the buffer would hold about
    // twice what the budget accounts for.
    let mut buf: Vec<u8> = Vec::new();
    let mut reserved = 0usize;
    while buf.len() < size {
        if reserved == buf.len() {
            let step = (size - buf.len()).min(buf.len().clamp(FIRST_STEP, GROWTH_STEP));
            if !budget.reserve(&mut reservation, step).await {
                return Err(FrameError::BudgetClosed);
            }
            reserved += step;
            buf.reserve_exact(step);
        }
        let want = reserved - buf.len();
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
        assert_eq!(budget.available(), 97);
        drop(frame);
        assert_eq!(budget.available(), 100);
        assert_eq!(read_frame(&mut r, 10, &budget).await.unwrap().unwrap().bytes.len(), 0);
        assert!(read_frame(&mut r, 10, &budget).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn declaring_a_large_frame_reserves_only_what_arrives() {
        let budget = MemoryBudget::new(10 * GROWTH_STEP);
        let (mut client, mut server) = tokio::io::duplex(64);
        let b = budget.clone();
        let reader = tokio::spawn(async move { read_frame(&mut server, u32::MAX, &b).await.map(|f| f.is_some()) });
        use tokio::io::AsyncWriteExt;
        client.write_all(&(50 * GROWTH_STEP as i32).to_be_bytes()).await.unwrap();
        client.write_all(&[1u8; 100]).await.unwrap();
        // Wait until the reader has consumed the bytes, then check what it holds.
        while budget.available() == 10 * GROWTH_STEP {
            tokio::task::yield_now().await;
        }
        assert_eq!(budget.available(), 10 * GROWTH_STEP - FIRST_STEP);
        drop(client);
        assert!(matches!(reader.await.unwrap(), Err(FrameError::Truncated { .. })));
        assert_eq!(budget.available(), 10 * GROWTH_STEP);
    }

    #[tokio::test]
    async fn a_complete_frame_holds_exactly_its_size() {
        // The buffer grows past GROWTH_STEP many times; every byte of it must be reserved.
        let size = 8 * GROWTH_STEP + 123;
        let mut data = (size as i32).to_be_bytes().to_vec();
        data.resize(4 + size, 7);
        let budget = MemoryBudget::new(64 * GROWTH_STEP);
        let frame = read_frame(&mut &data[..], u32::MAX, &budget).await.unwrap().unwrap();
        assert_eq!(frame.bytes.len(), size);
        assert_eq!(64 * GROWTH_STEP - budget.available(), size);
    }

    #[tokio::test]
    async fn rejects_before_allocating() {
        assert!(matches!(read(&[0x7f, 0xff, 0xff, 0xff], 100).await, Err(FrameError::TooLarge { .. })));
        assert!(matches!(read(&[0xff, 0xff, 0xff, 0xfe], 100).await, Err(FrameError::NegativeSize(-2))));
        assert!(matches!(read(&[0, 0, 0, 9, 1], 100).await, Err(FrameError::Truncated { received: 1, .. })));
        assert!(matches!(read(&[0, 0], 100).await, Err(FrameError::Truncated { received: 2, expected: 4 })));
    }
}
