//! ApiVersions (key 18): the APIs and version ranges this broker serves.
//!
//! Only non-default tagged fields are written (the crate's encoder already omits
//! defaults), and Jet leaves the feature fields empty: librdkafka 2.0.2, still shipped
//! by Debian's kcat, mis-skips tagged fields and fails with "Read underflow" otherwise.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;

use super::{IMPLEMENTED, supported_versions};

fn api_list() -> Vec<ApiVersion> {
    IMPLEMENTED
        .iter()
        .filter_map(|&key| {
            let range = supported_versions(key)?;
            Some(ApiVersion::default().with_api_key(key as i16).with_min_version(range.min).with_max_version(range.max))
        })
        .collect()
}

pub fn handle(_request: ApiVersionsRequest, _version: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(api_list())
}

/// The v0 answer Kafka gives to an ApiVersions request of a version it does not know.
pub fn unsupported_version_response(correlation_id: i32) -> Bytes {
    let body = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(api_list());
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    // Encoding v0 of these two types cannot fail: no field is out of range.
    if header.encode(&mut buf, 0).is_err() || body.encode(&mut buf, 0).is_err() {
        tracing::error!("encoding ApiVersions v0 failed");
    }
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiKey;
    use kafka_protocol::protocol::Decodable;

    #[test]
    fn advertises_exactly_the_implemented_apis() {
        let r = handle(ApiVersionsRequest::default(), 3);
        assert_eq!(r.api_keys.len(), IMPLEMENTED.len());
        let produce = r.api_keys.iter().find(|a| a.api_key == ApiKey::Produce as i16).unwrap();
        assert_eq!(produce.min_version, 3);
        let fetch = r.api_keys.iter().find(|a| a.api_key == ApiKey::Fetch as i16).unwrap();
        assert_eq!(fetch.min_version, 4);
        // No tagged fields beyond the empty set: the v3 body ends with a 0 tag count.
        let mut buf = BytesMut::new();
        r.encode(&mut buf, 3).unwrap();
        assert_eq!(*buf.last().unwrap(), 0);
    }

    #[test]
    fn unsupported_version_answer_is_v0() {
        let mut bytes = unsupported_version_response(42).slice(4..);
        let header = ResponseHeader::decode(&mut bytes, 0).unwrap();
        assert_eq!(header.correlation_id, 42);
        let body = ApiVersionsResponse::decode(&mut bytes, 0).unwrap();
        assert_eq!(body.error_code, ResponseError::UnsupportedVersion.code());
        assert!(!body.api_keys.is_empty());
    }
}
