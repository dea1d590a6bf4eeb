//! Encoding a response whose large byte fields are not in memory (fetched records sent
//! from the segment files with `sendfile`), using the `kafka-protocol` crate's own
//! encoders for everything else.
//!
//! Each such field is given a *placeholder*: a `Bytes` of the right length that points
//! into [`Placeholders`]' region, a large read-only anonymous mapping that is never
//! touched (so it costs address space, not memory). The crate encodes a byte field with
//! one `put_slice` of exactly the slice it was given; [`SplicedBuf`] recognises slices
//! that point into the region and records a hole instead of copying. The result is the
//! response as [`Part`]s: encoded bytes, and holes to be filled with what each placeholder
//! stands for. Frame sizes and length prefixes come out right because the crate computes
//! them from the placeholders' lengths.

use std::ops::Range;
use std::sync::OnceLock;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::protocol::buf::ByteBufMut;

use super::EncodeError;

/// Address space reserved for placeholders: more than one response can carry
/// (`fetch.max.bytes` is an int32, plus one whole first batch under KIP-74, itself
/// smaller than `socket.request.max.bytes`, another int32).
const REGION_SIZE: usize = 4 << 30;

/// One piece of an encoded response.
#[derive(Debug)]
pub enum Part<T> {
    Bytes(Bytes),
    /// Bytes to be supplied by the caller: what the placeholder stood for.
    Hole(T),
}

/// The read-only region placeholders point into, mapped once per process and never
/// unmapped. Nothing ever reads it (only addresses are compared), so it costs address
/// space, not memory.
pub fn region() -> Result<&'static [u8], &'static std::io::Error> {
    static REGION: OnceLock<Result<&'static [u8], std::io::Error>> = OnceLock::new();
    REGION
        .get_or_init(|| {
            // SAFETY: an anonymous private read-only mapping of REGION_SIZE bytes; it is
            // checked before use and never unmapped, so the slice stays valid (all zeroes)
            // for the whole process. MAP_NORESERVE: no memory is committed.
            unsafe {
                let ptr = libc::mmap(
                    std::ptr::null_mut(),
                    REGION_SIZE,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                );
                if ptr == libc::MAP_FAILED {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(std::slice::from_raw_parts(ptr.cast::<u8>().cast_const(), REGION_SIZE))
            }
        })
        .as_ref()
        .copied()
}

/// Hands out non-overlapping placeholders for one response.
pub struct Placeholders<T> {
    next: usize,
    /// Each placeholder's range in the region, with what it stands for.
    holes: Vec<(Range<usize>, T)>,
}

impl<T> Default for Placeholders<T> {
    fn default() -> Self {
        Placeholders { next: 0, holes: Vec::new() }
    }
}

impl<T> Placeholders<T> {
    /// A placeholder of `len` bytes standing for `value`; `Err(value)` for an empty
    /// placeholder, or when the region is unavailable or used up.
    pub fn add(&mut self, len: usize, value: T) -> Result<Bytes, T> {
        let region = match region() {
            Ok(r) if len > 0 && self.next + len <= r.len() => r,
            _ => return Err(value),
        };
        let range = self.next..self.next + len;
        self.next = range.end;
        self.holes.push((range.clone(), value));
        Ok(Bytes::from_static(&region[range]))
    }

    /// What `bytes` stands for, if it is one of these placeholders.
    pub fn resolve(&self, bytes: &[u8]) -> Option<&T> {
        let start = (bytes.as_ptr() as usize).checked_sub(region().ok()?.as_ptr() as usize)?;
        self.holes.iter().find(|(r, _)| r.start == start && r.len() == bytes.len()).map(|(_, v)| v)
    }

    /// Bytes the placeholders stand for in total.
    fn total(&self) -> usize {
        self.holes.iter().map(|(r, _)| r.len()).sum()
    }
}

/// A `ByteBufMut` that copies everything except placeholders, which become holes.
struct SplicedBuf<T> {
    head: BytesMut,
    /// Where in `head` each hole goes, and its value; in encoding order.
    holes: Vec<(usize, T)>,
    /// Placeholders not yet met, by their start in the region.
    pending: Vec<(Range<usize>, Option<T>)>,
    region: usize,
}

impl<T> SplicedBuf<T> {
    /// The placeholder `src` is, if it is one.
    fn take_placeholder(&mut self, src: &[u8]) -> Option<T> {
        let start = (src.as_ptr() as usize).checked_sub(self.region)?;
        let i = self.pending.binary_search_by_key(&start, |(r, _)| r.start).ok()?;
        let (range, value) = &mut self.pending[i];
        if range.len() != src.len() {
            return None;
        }
        value.take()
    }

    fn into_parts(self) -> Result<Vec<Part<T>>, String> {
        if self.pending.iter().any(|(_, v)| v.is_some()) {
            return Err("a placeholder was not encoded".into());
        }
        let mut head = self.head;
        let mut parts = Vec::with_capacity(self.holes.len() * 2 + 1);
        let mut taken = 0;
        for (at, value) in self.holes {
            parts.push(Part::Bytes(head.split_to(at - taken).freeze()));
            parts.push(Part::Hole(value));
            taken = at;
        }
        parts.push(Part::Bytes(head.freeze()));
        Ok(parts)
    }
}

// SAFETY: every method delegates to `BytesMut`'s implementation, which upholds
// `BufMut`'s contract; `put_slice` either delegates too or writes nothing.
unsafe impl<T> BufMut for SplicedBuf<T> {
    fn remaining_mut(&self) -> usize {
        self.head.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: forwarded unchanged; the caller upholds the contract for `head`.
        unsafe { self.head.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.head.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.take_placeholder(src) {
            Some(value) => self.holes.push((self.head.len(), value)),
            None => self.head.extend_from_slice(src),
        }
    }
}

impl<T> ByteBufMut for SplicedBuf<T> {
    fn offset(&self) -> usize {
        self.head.offset()
    }

    fn seek(&mut self, offset: usize) {
        self.head.seek(offset)
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        self.head.range(r)
    }
}

/// Encodes a response frame (size, header, body) whose body carries the placeholders
/// of `placeholders`, as parts: the encoded bytes and, where each placeholder was, a hole
/// with its value.
pub fn encode_response_parts<T>(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
    placeholders: Placeholders<T>,
) -> Result<Vec<Part<T>>, EncodeError> {
    let err = |cause| EncodeError { api_key, version, cause };
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let holes_len = placeholders.total();
    let size = header.compute_size(header_version).map_err(err)? + body.compute_size(version).map_err(err)?;
    let frame_len = i32::try_from(size).map_err(|e| err(anyhow::Error::new(e)))?;
    let mut buf = SplicedBuf {
        head: BytesMut::with_capacity(4 + size.saturating_sub(holes_len)),
        holes: Vec::new(),
        pending: placeholders.holes.into_iter().map(|(r, v)| (r, Some(v))).collect(),
        region: region().map_or(0, |r| r.as_ptr() as usize),
    };
    buf.put_i32(frame_len);
    header.encode(&mut buf, header_version).map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    buf.into_parts().map_err(|e| err(anyhow::anyhow!(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, ResponseKind};

    fn response(records: Vec<Bytes>) -> FetchResponse {
        let partitions = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| PartitionData::default().with_partition_index(i as i32).with_records(Some(r)))
            .collect();
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(kafka_protocol::messages::TopicName("t".into()))
                .with_topic_id(uuid::Uuid::from_u128(7))
                .with_partitions(partitions),
        ])
    }

    /// Filling the holes with what the placeholders stood for gives exactly the crate's
    /// own encoding of the response with the real bytes, at every Fetch version.
    #[test]
    fn spliced_equals_plain_encoding_at_every_version() {
        let real: Vec<Bytes> =
            vec![Bytes::from(vec![1u8; 300]), Bytes::new(), Bytes::from(vec![2u8; 70_000]), Bytes::from(vec![3u8; 5])];
        let range = crate::handler::supported_versions(ApiKey::Fetch).expect("fetch is served");
        for version in range.min..=range.max {
            let plain =
                super::super::encode_response(ApiKey::Fetch, version, 42, &ResponseKind::Fetch(response(real.clone())))
                    .expect("plain");
            let mut placeholders = Placeholders::default();
            let stand_ins: Vec<Bytes> =
                real.iter().map(|r| placeholders.add(r.len(), r.clone()).unwrap_or_else(|r| r)).collect();
            let parts =
                encode_response_parts(ApiKey::Fetch, version, 42, &response(stand_ins), placeholders).expect("spliced");
            let holes = parts.iter().filter(|p| matches!(p, Part::Hole(_))).count();
            assert_eq!(holes, 3, "v{version}: the empty record set is not a hole");
            let mut joined = Vec::new();
            for part in parts {
                match part {
                    Part::Bytes(b) | Part::Hole(b) => joined.extend_from_slice(&b),
                }
            }
            assert_eq!(joined, plain.to_vec(), "v{version}");
        }
    }

    #[test]
    fn equal_bytes_elsewhere_are_copied_not_spliced() {
        let mut placeholders = Placeholders::default();
        let stand_in = placeholders.add(16, "hole").expect("region");
        // Same length and (zero) content as the placeholder, but not the placeholder.
        let lookalike = Bytes::from(vec![0u8; 16]);
        let body = response(vec![lookalike, stand_in]);
        let parts = encode_response_parts(ApiKey::Fetch, 12, 1, &body, placeholders).expect("spliced");
        let holes: Vec<&str> =
            parts.iter().filter_map(|p| if let Part::Hole(v) = p { Some(*v) } else { None }).collect();
        assert_eq!(holes, vec!["hole"]);
    }

    #[test]
    fn a_placeholder_missing_from_the_body_is_an_error() {
        let mut placeholders = Placeholders::default();
        let _unused = placeholders.add(10, ()).expect("region");
        let body = response(vec![Bytes::from_static(b"abc")]);
        assert!(encode_response_parts(ApiKey::Fetch, 12, 1, &body, placeholders).is_err());
    }
}
