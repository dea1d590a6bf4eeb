//! The Kafka wire protocol: frames, request headers, bounded body decoding and
//! response encoding. Message types come from the `kafka-protocol` crate; this module
//! adds what a server needs around them.
//!
//! Decoding order matters for safety: the header is checked by hand before the crate
//! sees it (the crate panics on frames shorter than 4 bytes), and the body is walked by
//! [`bounds`] before the crate decodes it (the crate pre-allocates arrays from the counts
//! it reads, so a 20-byte frame could otherwise demand gigabytes).

pub mod bounds;
pub mod frame;
pub mod splice;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, VersionRange};

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// What a frame turned out to be.
#[derive(Debug)]
pub enum Decoded {
    Request(Box<Request>),
    /// An ApiVersions request at a version this broker does not know: Kafka answers it
    /// with a v0 response carrying `UNSUPPORTED_VERSION` and the supported ranges, so the
    /// client can retry at a version both sides speak.
    UnsupportedApiVersions {
        correlation_id: i32,
    },
}

/// A frame that cannot be served; the connection is closed with this reason logged.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api_key:?} v{version} is not supported (supported: {supported:?})")]
    UnsupportedVersion { api_key: ApiKey, version: i16, supported: Option<VersionRange> },
    #[error("malformed request header for {api_key:?} v{version}: {cause:#}")]
    Header { api_key: ApiKey, version: i16, cause: anyhow::Error },
    #[error("{api_key:?} v{version} body rejected before decoding: {cause}")]
    Bounds { api_key: ApiKey, version: i16, cause: bounds::BoundsError },
    #[error("malformed {api_key:?} v{version} body: {cause:#}")]
    Body { api_key: ApiKey, version: i16, cause: anyhow::Error },
}

/// Decodes one request frame. `supported` gives the version range Jet serves for a key.
pub fn decode_request(
    mut frame: Bytes,
    supported: impl Fn(ApiKey) -> Option<VersionRange>,
) -> Result<Decoded, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::TooShort(frame.len()));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|()| DecodeError::UnknownApiKey(raw_key))?;
    let range = supported(api_key);
    let in_range = range.is_some_and(|r| version >= r.min && version <= r.max);
    if !in_range {
        if api_key == ApiKey::ApiVersions {
            return Ok(Decoded::UnsupportedApiVersions { correlation_id });
        }
        return Err(DecodeError::UnsupportedVersion { api_key, version, supported: range });
    }
    let header_version = api_key.request_header_version(version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|cause| DecodeError::Header {
        api_key,
        version,
        cause,
    })?;
    bounds::check_request(raw_key, version, &frame).map_err(|cause| DecodeError::Bounds { api_key, version, cause })?;
    let body = RequestKind::decode(api_key, &mut frame, version).map_err(|cause| DecodeError::Body {
        api_key,
        version,
        cause,
    })?;
    Ok(Decoded::Request(Box::new(Request { api_key, header, body })))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version} response: {cause:#}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub cause: anyhow::Error,
}

/// Encodes a response frame (size prefix, header, body) for the given request.
pub fn encode_response(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<Bytes, EncodeError> {
    let err = |cause| EncodeError { api_key, version, cause };
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version).map_err(err)? + body_size(body, version).unwrap_or(0);
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(0);
    header.encode(&mut buf, header_version).map_err(err)?;
    body.encode(&mut buf, version).map_err(err)?;
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Exact body size when cheap to know, so the response buffer is allocated once.
fn body_size(body: &ResponseKind, version: i16) -> Option<usize> {
    match body {
        ResponseKind::Fetch(r) => r.compute_size(version).ok(),
        _ => None,
    }
}

/// Reads the correlation id of a frame, if it has one (for logging rejected frames).
pub fn peek_correlation_id(frame: &[u8]) -> Option<i32> {
    let mut b = frame.get(4..8)?;
    Some(b.get_i32())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};
    use kafka_protocol::protocol::StrBytes;

    fn all(_: ApiKey) -> Option<VersionRange> {
        Some(VersionRange { min: 0, max: 20 })
    }

    fn frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        header.encode(&mut buf, key.request_header_version(version)).unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn decodes_a_request() {
        let f = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
        match decode_request(f, all).unwrap() {
            Decoded::Request(r) => {
                assert_eq!(r.header.correlation_id, 7);
                assert!(matches!(r.body, RequestKind::Metadata(_)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn short_unknown_and_unsupported() {
        assert!(matches!(decode_request(Bytes::from_static(&[0, 3]), all), Err(DecodeError::TooShort(2))));
        let unknown = Bytes::from_static(&[0x7f, 0, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(decode_request(unknown, all), Err(DecodeError::UnknownApiKey(0x7f00))));
        let none = |_| None;
        let f = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert!(matches!(decode_request(f, none).unwrap(), Decoded::UnsupportedApiVersions { correlation_id: 7 }));
        let f = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
        assert!(matches!(decode_request(f, none), Err(DecodeError::UnsupportedVersion { .. })));
    }
}
