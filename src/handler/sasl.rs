//! SaslHandshake (key 17) and SaslAuthenticate (key 36) on a PLAINTEXT listener.
//!
//! Jet has no SASL listener yet. Kafka advertises both APIs on every listener, and on a
//! PLAINTEXT one its `KafkaApis` answers them with `ILLEGAL_SASL_STATE` (the handshake with
//! no mechanisms; authenticate with "SaslAuthenticate request received after successful
//! authentication"), because SASL only exists inside a SASL listener's authenticator. Jet
//! answers exactly so: a SASL client fails at once with Kafka's error rather than on a
//! closed connection, and the broker logs the attempt (see `server`).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{
    RequestKind, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::protocol::Request;

pub fn handshake(_request: SaslHandshakeRequest, _version: i16) -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ResponseError::IllegalSaslState.code())
}

pub fn authenticate(_request: SaslAuthenticateRequest, _version: i16) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default().with_error_code(ResponseError::IllegalSaslState.code()).with_error_message(
        Some(StrBytes::from_static_str("SaslAuthenticate request received after successful authentication")),
    )
}

/// Describes a SASL request (for the broker log), `None` for any other request.
pub fn attempt(request: &Request) -> Option<String> {
    match &request.body {
        RequestKind::SaslHandshake(r) => Some(format!("SaslHandshake, mechanism {}", r.mechanism.as_str())),
        RequestKind::SaslAuthenticate(_) => Some("SaslAuthenticate".to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_as_kafka_on_a_plaintext_listener() {
        let r = handshake(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")), 1);
        assert_eq!(r.error_code, 34, "ILLEGAL_SASL_STATE");
        assert!(r.mechanisms.is_empty());
        let r = authenticate(SaslAuthenticateRequest::default(), 2);
        assert_eq!(r.error_code, 34);
        assert_eq!(
            r.error_message.as_deref(),
            Some("SaslAuthenticate request received after successful authentication")
        );
    }
}
