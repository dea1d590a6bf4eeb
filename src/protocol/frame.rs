//! Length-prefixed Kafka frames: a big-endian `i32` size followed by that many bytes.
//!
//! The size is checked against `socket.request.max.bytes` before anything is allocated,
//! and the buffer grows only as bytes actually arrive, so a client that declares a large
//! frame and sends nothing costs nothing.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How much the frame buffer grows per read while a large frame trickles in.
const GROWTH_STEP: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame size {0} is negative")]
    NegativeSize(i32),
    #[error("frame size {size} exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i32, max: u32 },
    #[error("connection closed after {received} of {expected} frame bytes")]
    Truncated { received: usize, expected: usize },
    #[error("socket read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Bytes of request frames the whole broker holds at once (Kafka's
/// `queued.max.request.bytes`). A frame's bytes are reserved before its body is read and
/// released when its request is answered, so many connections sending large frames at
/// once wait for each other instead of exhausting memory.
#[derive(Clone)]
pub struct MemoryBudget {
    semaphore: Arc<Semaphore>,
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> Self {
        Self { semaphore: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))) }
    }

    async fn reserve(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(bytes).ok()?;
        self.semaphore.clone().acquire_many_owned(n).await.ok()
    }

    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }
}

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
            return if got == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated { received: got, expected: 4 })
            };
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
    let reservation = budget.reserve(size).await;
    let mut buf = BytesMut::with_capacity(size.min(GROWTH_STEP));
    while buf.len() < size {
        if buf.capacity() == buf.len() {
            buf.reserve((size - buf.len()).min(GROWTH_STEP));
        }
        let want = size - buf.len();
        let mut limited = (&mut *reader).take(want as u64);
        let n = limited.read_buf(&mut buf).await?;
        if n == 0 {
            return Err(FrameError::Truncated { received: buf.len(), expected: size });
        }
    }
    Ok(Some(Frame { bytes: buf.freeze(), reservation }))
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
    async fn rejects_before_allocating() {
        assert!(matches!(read(&[0x7f, 0xff, 0xff, 0xff], 100).await, Err(FrameError::TooLarge { .. })));
        assert!(matches!(read(&[0xff, 0xff, 0xff, 0xfe], 100).await, Err(FrameError::NegativeSize(-2))));
        assert!(matches!(read(&[0, 0, 0, 9, 1], 100).await, Err(FrameError::Truncated { received: 1, .. })));
        assert!(matches!(read(&[0, 0], 100).await, Err(FrameError::Truncated { received: 2, expected: 4 })));
    }
}
