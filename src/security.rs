//! Fail closed on security: Jet serves PLAINTEXT only for now (no TLS, no SASL).
//!
//! - A listener or setting that asks for a security protocol Jet does not implement
//!   (`SSL://`, `SASL_SSL://`, `SASL_PLAINTEXT://`, `ssl.*`, `sasl.*`, ...) stops the broker
//!   at start-up with a message naming it, rather than serving that traffic unencrypted
//!   and unauthenticated.
//! - A TLS ClientHello (or any TLS record) on the plaintext port is recognised from its first bytes (before
//!   they are read as a frame size) and logged as such, rate-limited per peer address.
//! - SaslHandshake/SaslAuthenticate on the plaintext listener are answered as Kafka's
//!   `KafkaApis` answers them there (`ILLEGAL_SASL_STATE`, see `handler::sasl`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Kafka's `SecurityProtocol` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Parses a protocol name as Kafka does (listener names are case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

/// What Jet says whenever security is asked of it.
pub const PLAINTEXT_ONLY: &str = "Jet serves PLAINTEXT only for now (no TLS or SASL); refusing to start rather than serve it without the security asked for";

/// A listener or setting that asks for security Jet does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("listener `{listener}` uses security protocol {}: {PLAINTEXT_ONLY}", .protocol.name())]
    UnsupportedProtocol { listener: String, protocol: SecurityProtocol },
    #[error(
        "listener `{listener}`: no security protocol is defined for listener name `{name}`; {PLAINTEXT_ONLY}: write PLAINTEXT://host:port or map the name with listener.security.protocol.map={name}:PLAINTEXT"
    )]
    UnknownListenerName { listener: String, name: String },
    #[error("`{0}`: expected one address here, not a list")]
    SeveralListeners(String),
    #[error("setting `{key}={value}` asks for {what}: {PLAINTEXT_ONLY}")]
    SecuritySetting { key: String, value: String, what: String },
}

/// Splits a listener written Kafka's way (`NAME://host:port`) into its security protocol
/// and `host:port`; a bare `host:port` is PLAINTEXT. Fails for anything but one PLAINTEXT
/// listener.
pub fn plaintext_listener(listener: &str) -> Result<&str, SecurityError> {
    if listener.contains(',') {
        // A list: refuse it, naming the first listener that asks for security if any.
        for one in listener.split(',') {
            plaintext_listener(one.trim())?;
        }
        return Err(SecurityError::SeveralListeners(listener.to_string()));
    }
    let Some((name, address)) = listener.split_once("://") else {
        return Ok(listener);
    };
    match SecurityProtocol::from_name(name) {
        Some(SecurityProtocol::Plaintext) => Ok(address),
        Some(protocol) => Err(SecurityError::UnsupportedProtocol { listener: listener.to_string(), protocol }),
        None => Err(SecurityError::UnknownListenerName { listener: listener.to_string(), name: name.to_string() }),
    }
}

/// Checks a `--set key=value` that is not one of Jet's settings: the Kafka settings that
/// configure TLS, SASL or listener security get a [`SecurityError`] naming what they ask
/// for (so the broker refuses to start with a clear reason); `Ok` for any other key.
pub fn check_security_setting(key: &str, value: &str) -> Result<(), SecurityError> {
    let err = |what: &str| {
        Err(SecurityError::SecuritySetting { key: key.to_string(), value: value.to_string(), what: what.to_string() })
    };
    let protocols_named = || {
        value
            .split([',', ':', ' ', '/'])
            .filter_map(SecurityProtocol::from_name)
            .find(|p| *p != SecurityProtocol::Plaintext)
    };
    let listener_setting = matches!(
        key,
        "listeners"
            | "advertised.listeners"
            | "listener.security.protocol.map"
            | "security.inter.broker.protocol"
            | "inter.broker.listener.name"
            | "security.protocol"
    );
    if listener_setting {
        if let Some(p) = protocols_named() {
            return err(&format!("security protocol {}", p.name()));
        }
        return Ok(());
    }
    if key.starts_with("ssl.") || (key.starts_with("listener.name.") && key.contains(".ssl.")) {
        return err("TLS");
    }
    if key.starts_with("sasl.") || (key.starts_with("listener.name.") && key.contains(".sasl")) {
        return err("SASL");
    }
    if key.starts_with("authorizer.") || key == "super.users" {
        return err("an authorizer");
    }
    Ok(())
}

/// Whether four bytes read where a frame size belongs are a TLS record header: content
/// type 20-23 (change_cipher_spec, alert, handshake — a ClientHello —, application data)
/// and record version 3.x (SSL 3.0 to TLS 1.3 all write 0x03 0x00..=0x04). librdkafka
/// sends a handshake record first and, on a reconnect, sometimes an alert. Read as a
/// Kafka frame size these are 335,544,320 to 402,980,863 bytes: beyond any sane
/// `socket.request.max.bytes` (Kafka's default is 100 MiB), so such a size is taken for
/// TLS whatever the setting.
pub fn is_tls_record(first: [u8; 4]) -> bool {
    (0x14..=0x17).contains(&first[0]) && first[1] == 0x03 && first[2] <= 0x04
}

/// How often one peer address may get the same "wrong protocol" line.
const LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Peers remembered at once; past this, all peers share one line per interval.
const MAX_PEERS: usize = 1024;

/// Rate-limits a warning per peer address, so a client retrying in a loop logs one
/// line per [`LOG_INTERVAL`] (with the number of repeats suppressed since), not one
/// per connection. Memory is bounded: at most [`MAX_PEERS`] addresses are remembered,
/// and beyond that all peers share one global slot.
#[derive(Default)]
pub struct PeerLogLimiter {
    state: Mutex<LimiterState>,
}

#[derive(Default)]
struct LimiterState {
    peers: HashMap<Option<IpAddr>, Slot>,
    overflow: Slot,
}

#[derive(Default, Clone, Copy)]
struct Slot {
    last: Option<Instant>,
    suppressed: u64,
}

impl Slot {
    fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

impl PeerLogLimiter {
    /// `Some(suppressed)` when a line for `peer` should be logged now (`suppressed`
    /// repeats were not logged since the last one), `None` when it is rate-limited.
    pub fn should_log(&self, peer: Option<IpAddr>, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !state.peers.contains_key(&peer) && state.peers.len() >= MAX_PEERS {
            state.peers.retain(|_, slot| slot.last.is_some_and(|t| now.duration_since(t) < LOG_INTERVAL));
            if state.peers.len() >= MAX_PEERS {
                return state.overflow.hit(now);
            }
        }
        state.peers.entry(peer).or_default().hit(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_listeners_pass_and_security_protocols_are_named() {
        assert_eq!(plaintext_listener("127.0.0.1:9092"), Ok("127.0.0.1:9092"));
        assert_eq!(plaintext_listener("PLAINTEXT://:9092"), Ok(":9092"));
        assert_eq!(plaintext_listener("plaintext://h:1"), Ok("h:1"));
        for (listener, protocol) in [
            ("SSL://127.0.0.1:0", SecurityProtocol::Ssl),
            ("SASL_SSL://h:9093", SecurityProtocol::SaslSsl),
            ("sasl_plaintext://h:9094", SecurityProtocol::SaslPlaintext),
        ] {
            let e = plaintext_listener(listener).unwrap_err();
            assert_eq!(e, SecurityError::UnsupportedProtocol { listener: listener.into(), protocol });
            let text = e.to_string();
            assert!(text.contains(protocol.name()) && text.contains("PLAINTEXT only for now"), "{text}");
        }
        assert!(matches!(plaintext_listener("CLIENT://h:1"), Err(SecurityError::UnknownListenerName { .. })));
        // A list with a secure listener names that one; an all-plaintext list is refused too.
        let e = plaintext_listener("PLAINTEXT://:9092,SSL://:9093").unwrap_err();
        assert!(matches!(e, SecurityError::UnsupportedProtocol { protocol: SecurityProtocol::Ssl, .. }), "{e}");
        assert!(matches!(plaintext_listener("PLAINTEXT://:1,PLAINTEXT://:2"), Err(SecurityError::SeveralListeners(_))));
    }

    #[test]
    fn security_settings_are_refused_by_name() {
        let refused = |k: &str, v: &str| check_security_setting(k, v).unwrap_err().to_string();
        assert!(refused("listener.security.protocol.map", "CLIENT:SASL_SSL").contains("SASL_SSL"));
        assert!(refused("security.inter.broker.protocol", "SSL").contains("security protocol SSL"));
        assert!(refused("listeners", "SASL_PLAINTEXT://:9092").contains("SASL_PLAINTEXT"));
        assert!(refused("ssl.keystore.location", "/k.jks").contains("TLS"));
        assert!(refused("sasl.enabled.mechanisms", "PLAIN").contains("SASL"));
        assert!(refused("listener.name.client.scram-sha-256.sasl.jaas.config", "x").contains("SASL"));
        assert!(refused("authorizer.class.name", "x").contains("authorizer"));
        assert_eq!(check_security_setting("listener.security.protocol.map", "CLIENT:PLAINTEXT"), Ok(()));
        assert_eq!(check_security_setting("no.such.thing", "1"), Ok(()));
    }

    #[test]
    fn tls_record_headers_are_recognised() {
        // TLS 1.2/1.3 ClientHello record headers as openssl and librdkafka send them.
        assert!(is_tls_record([0x16, 0x03, 0x01, 0x02]));
        assert!(is_tls_record([0x16, 0x03, 0x03, 0x00]));
        // An alert (librdkafka sends one when it gives up a handshake).
        assert!(is_tls_record([0x15, 0x03, 0x01, 0x00]));
        assert!(!is_tls_record([0x00, 0x00, 0x00, 0x2a]));
        assert!(!is_tls_record([0x16, 0x03, 0x05, 0x00]));
        assert!(!is_tls_record([0x18, 0x03, 0x03, 0x00]));
    }

    #[test]
    fn limiter_logs_once_per_interval_per_peer_and_counts_the_rest() {
        let limiter = PeerLogLimiter::default();
        let t0 = Instant::now();
        let a: Option<IpAddr> = Some([10, 0, 0, 1].into());
        let b: Option<IpAddr> = Some([10, 0, 0, 2].into());
        assert_eq!(limiter.should_log(a, t0), Some(0));
        for i in 1..=100 {
            assert_eq!(limiter.should_log(a, t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(limiter.should_log(b, t0), Some(0), "another peer has its own slot");
        assert_eq!(limiter.should_log(a, t0 + LOG_INTERVAL), Some(100));
    }

    #[test]
    fn limiter_memory_is_bounded() {
        let limiter = PeerLogLimiter::default();
        let t0 = Instant::now();
        let mut logged = 0;
        for i in 0..(MAX_PEERS as u32 + 500) {
            let peer: Option<IpAddr> = Some(std::net::Ipv4Addr::from(i).into());
            logged += usize::from(limiter.should_log(peer, t0).is_some());
        }
        // Past MAX_PEERS remembered peers, the rest share one slot: one more line.
        assert_eq!(logged, MAX_PEERS + 1);
        assert!(limiter.state.lock().unwrap().peers.len() <= MAX_PEERS);
    }
}
