//! One connection to one broker: size-prefixed frames with a cap, correlation ids, and
//! the API versions the broker announced.
//!
//! Versions are negotiated per request kind: the highest version both this client (the
//! `kafka-protocol` crate's range, capped where the command code has only been written for
//! lower versions, see [`client_max_version`]) and the broker (its ApiVersions answer)
//! speak. A response frame is never trusted for its size: it is refused above
//! [`MAX_RESPONSE_BYTES`] and its buffer grows only as bytes actually arrive.
//!
//! Known gap: inside a frame, the `kafka-protocol` decoder still reserves each array
//! from the count it reads (as for requests, which the broker guards with
//! `protocol::bounds`); there are no response schemas to pre-scan with yet, so a hostile
//! server can make this client fail an allocation, though not read unbounded input.

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::error::CliError;

/// Largest response frame accepted. Fetches ask for at most `FETCH_MAX_BYTES`, so a
/// well-behaved broker stays far below this.
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

const CLIENT_ID: &str = "jet-cli";

/// Kafka's UNSUPPORTED_VERSION error code.
const UNSUPPORTED_VERSION: i16 = 35;

/// The highest version of `api` the command code fills in correctly (above it, requests
/// name topics by id or group several groups, which this client does not do).
pub fn client_max_version(api: ApiKey) -> i16 {
    match api {
        ApiKey::ApiVersions => 3,
        ApiKey::Metadata => 12,
        ApiKey::Produce => 12,
        ApiKey::Fetch => 12,
        ApiKey::ListOffsets => 8,
        ApiKey::OffsetFetch => 7,
        ApiKey::OffsetCommit => 8,
        ApiKey::FindCoordinator => 4,
        ApiKey::ListGroups => 4,
        ApiKey::DescribeGroups => 5,
        ApiKey::DeleteGroups => 2,
        ApiKey::CreateTopics => 7,
        ApiKey::DeleteTopics => 6,
        ApiKey::DescribeConfigs => 4,
        ApiKey::IncrementalAlterConfigs => 1,
        ApiKey::AlterPartitionReassignments => 1,
        _ => 0,
    }
}

/// The highest version in both `ours` and `theirs` (inclusive `(min, max)` ranges), if
/// they overlap; `None` when the broker does not serve the API at all.
pub fn pick_version(ours: (i16, i16), theirs: Option<(i16, i16)>) -> Option<i16> {
    let (min, max) = theirs?;
    let version = ours.1.min(max);
    (version >= ours.0.max(min)).then_some(version)
}

fn api_key_of<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).unwrap_or(ApiKey::ApiVersions)
}

pub struct Connection {
    stream: TcpStream,
    pub addr: String,
    /// Broker's (min, max) per API key.
    versions: HashMap<i16, (i16, i16)>,
    next_correlation_id: i32,
    timeout: Duration,
}

impl Connection {
    /// Connects and asks the broker which versions it speaks.
    pub async fn open(addr: &str, timeout: Duration) -> Result<Connection, CliError> {
        let timeout_ms = timeout.as_millis() as u64;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(CliError::Connect { addr: addr.to_string(), source }),
            Err(_) => return Err(CliError::ConnectTimeout { addr: addr.to_string(), timeout_ms }),
        };
        // Best effort: small requests should not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let mut conn =
            Connection { stream, addr: addr.to_string(), versions: HashMap::new(), next_correlation_id: 1, timeout };
        conn.negotiate().await?;
        Ok(conn)
    }

    async fn negotiate(&mut self) -> Result<(), CliError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("jet-cli"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut body = self.exchange(&request, 3).await?;
        // A broker that does not speak v3 answers UNSUPPORTED_VERSION in a v0 body (the
        // error code leads in every version), listing its ranges; v0 works anywhere.
        let unsupported = body.get(..2) == Some(&UNSUPPORTED_VERSION.to_be_bytes()[..]);
        let response: ApiVersionsResponse = if unsupported {
            self.decode_body::<ApiVersionsRequest>(&mut body, 0)?;
            self.call_at(&ApiVersionsRequest::default(), 0).await?
        } else {
            self.decode_body::<ApiVersionsRequest>(&mut body, 3)?
        };
        CliError::check(response.error_code, None, || format!("ApiVersions to {}", self.addr))?;
        self.versions = response.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Ok(())
    }

    /// The version of `R` to use with this broker: the highest both sides speak.
    pub fn version<R: Request>(&self) -> Result<i16, CliError> {
        let api = api_key_of::<R>();
        let ours = (R::VERSIONS.min, client_max_version(api).min(R::VERSIONS.max));
        let unsupported = |theirs: String| CliError::UnsupportedApi {
            api,
            addr: self.addr.clone(),
            ours: format!("v{}-v{}", ours.0, ours.1),
            theirs,
        };
        let theirs = self.versions.get(&R::KEY).copied();
        pick_version(ours, theirs).ok_or_else(|| {
            unsupported(theirs.map_or_else(|| "none".to_string(), |(min, max)| format!("v{min}-v{max}")))
        })
    }

    /// Sends `request` at the negotiated version and waits for its response.
    pub async fn call<R: Request>(&mut self, request: &R) -> Result<R::Response, CliError> {
        let version = self.version::<R>()?;
        self.call_at(request, version).await
    }

    /// Sends `request` at `version` and waits for its response.
    pub async fn call_at<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, CliError> {
        let mut body = self.exchange(request, version).await?;
        self.decode_body::<R>(&mut body, version)
    }

    /// Sends `request` at `version` and returns the response body (after its header).
    async fn exchange<R: Request>(&mut self, request: &R, version: i16) -> Result<Bytes, CliError> {
        let api = api_key_of::<R>();
        let correlation_id = self.send_at(request, version).await?;
        let timeout_ms = self.timeout.as_millis() as u64;
        let addr = self.addr.clone();
        let mut frame = match tokio::time::timeout(self.timeout, self.read_frame(api)).await {
            Ok(frame) => frame?,
            Err(_) => return Err(CliError::RequestTimeout { api, addr, timeout_ms }),
        };
        let decode_error = |cause| CliError::Decode { api, version, addr: addr.clone(), cause };
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version)).map_err(decode_error)?;
        if header.correlation_id != correlation_id {
            return Err(CliError::CorrelationMismatch {
                api,
                addr,
                got: header.correlation_id,
                expected: correlation_id,
            });
        }
        Ok(frame)
    }

    /// Decodes a whole response body of `R` at `version`.
    fn decode_body<R: Request>(&self, body: &mut Bytes, version: i16) -> Result<R::Response, CliError> {
        let api = api_key_of::<R>();
        let decode_error = |cause| CliError::Decode { api, version, addr: self.addr.clone(), cause };
        let response = R::Response::decode(body, version).map_err(decode_error)?;
        if body.has_remaining() {
            return Err(decode_error(anyhow::anyhow!("{} trailing bytes", body.remaining())));
        }
        Ok(response)
    }

    /// Sends `request` without waiting for an answer (a Produce with acks=0 gets none).
    /// Returns its correlation id.
    pub async fn send_at<R: Request>(&mut self, request: &R, version: i16) -> Result<i32, CliError> {
        let api = api_key_of::<R>();
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let encode_error = |cause| CliError::Encode { api, version, cause };
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header.encode(&mut buf, api.request_header_version(version)).map_err(encode_error)?;
        request.encode(&mut buf, version).map_err(encode_error)?;
        let len = i32::try_from(buf.len() - 4).map_err(|e| encode_error(anyhow::Error::new(e)))?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        let io_error = |source| CliError::Io { api, addr: self.addr.clone(), source };
        match tokio::time::timeout(self.timeout, self.stream.write_all(&buf)).await {
            Ok(result) => result.map_err(io_error)?,
            Err(_) => {
                let timeout_ms = self.timeout.as_millis() as u64;
                return Err(CliError::RequestTimeout { api, addr: self.addr.clone(), timeout_ms });
            }
        }
        Ok(correlation_id)
    }

    /// One response frame, refused above the cap; memory grows only with bytes received.
    async fn read_frame(&mut self, api: ApiKey) -> Result<Bytes, CliError> {
        let io_error = |source| CliError::Io { api, addr: self.addr.clone(), source };
        let declared = self.stream.read_i32().await.map_err(io_error)?;
        if declared < 0 || declared as usize > MAX_RESPONSE_BYTES {
            let (addr, size) = (self.addr.clone(), i64::from(declared));
            return Err(CliError::ResponseTooLarge { api, addr, size, max: MAX_RESPONSE_BYTES });
        }
        let size = declared as usize;
        let mut buf = Vec::with_capacity(size.min(64 << 10));
        let read = (&mut self.stream).take(size as u64).read_to_end(&mut buf).await.map_err(io_error)?;
        if read < size {
            return Err(io_error(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("connection closed after {read} of {size} response bytes"),
            )));
        }
        Ok(Bytes::from(buf))
    }

    /// The request timeout this connection uses.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A fake broker that answers the ApiVersions request with `reply` bytes.
    async fn serve_once(reply: Vec<u8>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let size = s.read_i32().await.unwrap();
            let mut req = vec![0u8; size as usize];
            s.read_exact(&mut req).await.unwrap();
            s.write_all(&reply).await.unwrap();
            // Keep the socket open so a short frame is not mistaken for a closed one.
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        addr
    }

    #[tokio::test]
    async fn an_oversized_response_frame_is_refused_before_allocating() {
        let addr = serve_once(i32::MAX.to_be_bytes().to_vec()).await;
        let err = Connection::open(&addr, Duration::from_secs(5)).await.err().unwrap();
        assert!(matches!(err, CliError::ResponseTooLarge { size, .. } if size == i32::MAX as i64), "{err}");
        let addr = serve_once((-5i32).to_be_bytes().to_vec()).await;
        let err = Connection::open(&addr, Duration::from_secs(5)).await.err().unwrap();
        assert!(matches!(err, CliError::ResponseTooLarge { size: -5, .. }), "{err}");
    }

    #[test]
    fn the_highest_common_version_is_picked() {
        assert_eq!(pick_version((3, 12), Some((0, 13))), Some(12), "capped by this client");
        assert_eq!(pick_version((3, 12), Some((0, 9))), Some(9), "capped by the broker");
        assert_eq!(pick_version((3, 12), Some((3, 3))), Some(3));
        assert_eq!(pick_version((4, 12), Some((0, 3))), None, "no overlap");
        assert_eq!(pick_version((0, 12), Some((13, 15))), None, "no overlap");
        assert_eq!(pick_version((0, 12), None), None, "not served");
    }

    /// An old broker: ApiVersions v3 is answered at v0 with UNSUPPORTED_VERSION (as Kafka
    /// does), then the v0 request with its ranges.
    #[tokio::test]
    async fn an_unsupported_api_versions_version_falls_back_to_v0() {
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut versions_seen = Vec::new();
            for error_code in [35i16, 0] {
                let size = s.read_i32().await.unwrap();
                let mut req = vec![0u8; size as usize];
                s.read_exact(&mut req).await.unwrap();
                versions_seen.push(i16::from_be_bytes([req[2], req[3]]));
                let correlation_id = i32::from_be_bytes([req[4], req[5], req[6], req[7]]);
                let ranges = [(ApiKey::ApiVersions, 0, 2), (ApiKey::Metadata, 1, 9)];
                let body = ApiVersionsResponse::default().with_error_code(error_code).with_api_keys(
                    ranges
                        .iter()
                        .map(|&(k, min, max)| {
                            ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max)
                        })
                        .collect(),
                );
                let mut frame = BytesMut::new();
                frame.put_i32(0);
                ResponseHeader::default().with_correlation_id(correlation_id).encode(&mut frame, 0).unwrap();
                body.encode(&mut frame, 0).unwrap();
                let len = (frame.len() - 4) as i32;
                frame[..4].copy_from_slice(&len.to_be_bytes());
                s.write_all(&frame).await.unwrap();
            }
            versions_seen
        });
        let conn = Connection::open(&addr, Duration::from_secs(5)).await.unwrap();
        assert_eq!(server.await.unwrap(), [3, 0]);
        assert_eq!(conn.version::<kafka_protocol::messages::MetadataRequest>().unwrap(), 9);
        let produce = conn.version::<kafka_protocol::messages::ProduceRequest>().unwrap_err();
        assert!(matches!(produce, CliError::UnsupportedApi { .. }), "{produce}");
    }

    #[tokio::test]
    async fn a_silent_broker_times_out() {
        let addr = serve_once(Vec::new()).await;
        let err = Connection::open(&addr, Duration::from_millis(200)).await.err().unwrap();
        assert!(matches!(err, CliError::RequestTimeout { .. }), "{err}");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = Connection::open(&addr, Duration::from_secs(5)).await.err().unwrap();
        assert!(matches!(err, CliError::Connect { .. }), "{err}");
    }
}
