//! `jet healthcheck`: asks a broker's admin server whether it is ready (`GET /readyz`),
//! for a container's HEALTHCHECK without curl in the image.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Why the broker is not reported healthy.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("cannot connect to the admin server at {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("HTTP exchange with {addr} failed: {source}")]
    Http { addr: String, source: hyper::Error },
    #[error("bad request for {addr}: {source}")]
    Request { addr: String, source: hyper::http::Error },
    #[error("not ready ({status}): {reason}")]
    NotReady { status: StatusCode, reason: String },
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
}

/// The address to connect to for a listen address: a wildcard host (`0.0.0.0`, `::`,
/// empty) means this machine.
pub fn connect_address(listen: &str) -> String {
    let (host, port) = match listen.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => return listen.to_string(),
    };
    match host {
        "" | "0.0.0.0" => format!("127.0.0.1:{port}"),
        "::" => format!("[::1]:{port}"),
        h if h.contains(':') => format!("[{h}]:{port}"),
        h => format!("{h}:{port}"),
    }
}

/// `GET /readyz` on `addr` (a `host:port`); `Ok` only for 200.
pub async fn check_ready(addr: &str, timeout: Duration) -> Result<(), HealthError> {
    match tokio::time::timeout(timeout, get_readyz(addr)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(HealthError::Timeout { addr: addr.to_string(), timeout }),
    }
}

async fn get_readyz(addr: &str) -> Result<(), HealthError> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|source| HealthError::Connect { addr: addr.to_string(), source })?;
    let http = |source| HealthError::Http { addr: addr.to_string(), source };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(http)?;
    let driver = tokio::spawn(connection);
    let request = Request::get("/readyz")
        .header(hyper::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .map_err(|source| HealthError::Request { addr: addr.to_string(), source })?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(http)?.to_bytes();
    driver.abort();
    if status == StatusCode::OK {
        Ok(())
    } else {
        Err(HealthError::NotReady { status, reason: String::from_utf8_lossy(&body).trim().to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_connect_locally() {
        assert_eq!(connect_address("0.0.0.0:9644"), "127.0.0.1:9644");
        assert_eq!(connect_address(":9644"), "127.0.0.1:9644");
        assert_eq!(connect_address("[::]:9644"), "[::1]:9644");
        assert_eq!(connect_address("10.1.2.3:9000"), "10.1.2.3:9000");
        assert_eq!(connect_address("[fe80::1]:9000"), "[fe80::1]:9000");
        assert_eq!(connect_address("jet-0.jet:9644"), "jet-0.jet:9644");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        // A port that was just free: bound then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = check_ready(&format!("127.0.0.1:{port}"), Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(e, HealthError::Connect { .. }), "{e}");
    }
}
