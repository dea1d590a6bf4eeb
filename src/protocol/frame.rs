//! Length-prefixed Kafka frames: a big-endian `i32` size followed by that many bytes.
//!
//! The size is checked against `socket.request.max.bytes` before anything is allocated,
//! and the buffer grows only as bytes actually arrive, so a client that declares a large
//! frame and sends nothing costs nothing.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

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

/// Reads one frame. `Ok(None)` means the peer closed the connection between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: u32,
) -> Result<Option<Bytes>, FrameError> {
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
    Ok(Some(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: u32) -> Result<Option<Bytes>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max).await
    }

    #[tokio::test]
    async fn reads_frames_and_clean_eof() {
        let mut data = vec![0, 0, 0, 3, b'a', b'b', b'c', 0, 0, 0, 0];
        data.extend_from_slice(&[]);
        let mut r = &data[..];
        assert_eq!(read_frame(&mut r, 10).await.unwrap().unwrap(), Bytes::from_static(b"abc"));
        assert_eq!(read_frame(&mut r, 10).await.unwrap().unwrap().len(), 0);
        assert!(read_frame(&mut r, 10).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn rejects_before_allocating() {
        assert!(matches!(read(&[0x7f, 0xff, 0xff, 0xff], 100).await, Err(FrameError::TooLarge { .. })));
        assert!(matches!(read(&[0xff, 0xff, 0xff, 0xfe], 100).await, Err(FrameError::NegativeSize(-2))));
        assert!(matches!(read(&[0, 0, 0, 9, 1], 100).await, Err(FrameError::Truncated { received: 1, .. })));
        assert!(matches!(read(&[0, 0], 100).await, Err(FrameError::Truncated { received: 2, expected: 4 })));
    }
}
