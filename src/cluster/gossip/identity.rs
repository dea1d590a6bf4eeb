//! A broker's identity as gossip carries it in node metadata: broker id, Kafka advertised
//! address, rack and raft address — nothing that changes while the broker runs (the one
//! exception is the `leaving` flag, set just before a graceful leave so peers can tell a
//! leave from a failure).
//!
//! memberlist 0.8.5 panics when node metadata exceeds [`METADATA_LIMIT`] bytes, so
//! [`BrokerIdentity::encode`] refuses an identity that would not fit, naming the fields,
//! and start-up reports that instead of letting the gossip layer panic.
//!
//! Layout (all integers big-endian):
//! `version u8 = 1 | flags u8 (bit 0 rack present, bit 1 leaving) | broker id i32 |
//! kafka host (u8 length + UTF-8) | kafka port u16 | raft host (u8 length + UTF-8) |
//! raft port u16 | [rack (u8 length + UTF-8)] | sections`. Each section is `tag u8 | length
//! u16 | body`, and a decoder skips the tags it does not know, so a later version can add
//! one without making older brokers ignore its peers. Tag 1, listeners (absent for a
//! broker with one listener named PLAINTEXT): `name of the kafka listener (u8 length +
//! UTF-8) | count u8 | (name | host | port u16) per other listener`.

use std::fmt;

/// memberlist's hard limit on node metadata (`memberlist::META_MAX_SIZE`, checked by a
/// test against the crate's constant).
pub const METADATA_LIMIT: usize = 512;

const VERSION: u8 = 1;
const FLAG_RACK: u8 = 1;
const FLAG_LEAVING: u8 = 2;
/// Tag of the listeners section.
const SECTION_LISTENERS: u8 = 1;
/// The listener name a broker with no other name uses.
const PLAINTEXT: &str = "PLAINTEXT";
/// Longest string one length byte can describe.
const MAX_FIELD: usize = u8::MAX as usize;

/// A host (name or IP literal, as clients are told it) and port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> HostPort {
        HostPort { host: host.into(), port }
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Who a broker is and how to reach it: what every other broker needs to answer Metadata
/// and to open raft connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerIdentity {
    /// Kafka's `node.id` / `broker.id`.
    pub broker_id: i32,
    /// Where Kafka clients connect (the advertised address of the broker's own listener).
    pub kafka: HostPort,
    /// The name of that listener (`PLAINTEXT` unless configured otherwise).
    pub listener: String,
    /// The advertised addresses of the broker's other listeners, by listener name.
    pub other_listeners: Vec<(String, HostPort)>,
    /// `broker.rack`, if set (KIP-392 follower reads, rack-aware placement).
    pub rack: Option<String>,
    /// Where peers reach this broker's raft transport.
    pub raft: HostPort,
    /// Set just before a graceful leave, so peers report `Left` rather than `Failed`.
    pub leaving: bool,
}

/// Why an identity cannot be put into (or read from) gossip metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("{field} is {len} bytes long; gossip node metadata allows at most {MAX_FIELD} bytes for it")]
    FieldTooLong { field: &'static str, len: usize },
    #[error(
        "broker identity needs {total} bytes of gossip node metadata, over memberlist's limit of \
         {METADATA_LIMIT} bytes; shorten {fields}"
    )]
    TooLarge { total: usize, fields: String },
    #[error("gossip node metadata ends early (reading {field})")]
    Truncated { field: &'static str },
    #[error("gossip node metadata has unknown version {0}")]
    UnknownVersion(u8),
    #[error("{field} in gossip node metadata is not UTF-8")]
    NotUtf8 { field: &'static str },
    #[error("gossip node metadata has {0} trailing bytes")]
    Trailing(usize),
}

impl BrokerIdentity {
    pub fn new(broker_id: i32, kafka: HostPort, rack: Option<String>, raft: HostPort) -> BrokerIdentity {
        BrokerIdentity {
            broker_id,
            kafka,
            listener: PLAINTEXT.into(),
            other_listeners: Vec::new(),
            rack,
            raft,
            leaving: false,
        }
    }

    /// The same broker with its listeners named: `kafka` is the address of `listener`.
    pub fn with_listeners(mut self, listener: String, others: Vec<(String, HostPort)>) -> BrokerIdentity {
        self.listener = listener;
        self.other_listeners = others;
        self
    }

    /// Where a client of the listener called `name` reaches this broker (`None`: the
    /// broker has no such listener).
    pub fn endpoint(&self, name: &str) -> Option<&HostPort> {
        if self.listener.eq_ignore_ascii_case(name) {
            return Some(&self.kafka);
        }
        self.other_listeners.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, hp)| hp)
    }

    /// Whether the listeners section is written (more than one PLAINTEXT listener).
    fn has_listeners_section(&self) -> bool {
        self.listener != PLAINTEXT || !self.other_listeners.is_empty()
    }

    /// The variable-length fields, named as an operator sets them.
    fn fields(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            Some(("the Kafka advertised host", self.kafka.host.as_str())),
            Some(("the raft address host", self.raft.host.as_str())),
            self.rack.as_deref().map(|rack| ("broker.rack", rack)),
            self.has_listeners_section().then_some(("a listener name", self.listener.as_str())),
        ]
        .into_iter()
        .flatten()
        .chain(self.other_listeners.iter().flat_map(|(name, hp)| {
            [("a listener name", name.as_str()), ("an advertised listener host", hp.host.as_str())]
        }))
    }

    /// Encoded size in bytes.
    pub fn encoded_len(&self) -> usize {
        // Section header (tag, length) and count, and a port per other listener.
        let listeners = if self.has_listeners_section() { 3 + 1 + 2 * self.other_listeners.len() } else { 0 };
        2 + 4 + self.fields().map(|(_, s)| 1 + s.len()).sum::<usize>() + 2 + 2 + listeners
    }

    /// The metadata bytes, or why they would not fit memberlist's limit.
    pub fn encode(&self) -> Result<Vec<u8>, MetadataError> {
        for (field, value) in self.fields() {
            if value.len() > MAX_FIELD {
                return Err(MetadataError::FieldTooLong { field, len: value.len() });
            }
        }
        let total = self.encoded_len();
        if self.other_listeners.len() > usize::from(u8::MAX) {
            return Err(MetadataError::FieldTooLong { field: "the listener list", len: self.other_listeners.len() });
        }
        if total > METADATA_LIMIT {
            let mut fields: Vec<_> = self.fields().collect();
            fields.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
            let fields =
                fields.iter().map(|(field, value)| format!("{field} ({} bytes)", value.len())).collect::<Vec<_>>();
            return Err(MetadataError::TooLarge { total, fields: fields.join(", ") });
        }
        let mut out = Vec::with_capacity(total);
        out.push(VERSION);
        out.push(if self.rack.is_some() { FLAG_RACK } else { 0 } | if self.leaving { FLAG_LEAVING } else { 0 });
        out.extend_from_slice(&self.broker_id.to_be_bytes());
        for hp in [&self.kafka, &self.raft] {
            put_str(&mut out, &hp.host);
            out.extend_from_slice(&hp.port.to_be_bytes());
        }
        if let Some(rack) = &self.rack {
            put_str(&mut out, rack);
        }
        if self.has_listeners_section() {
            out.push(SECTION_LISTENERS);
            let length_at = out.len();
            out.extend_from_slice(&[0, 0]);
            put_str(&mut out, &self.listener);
            // Checked above: at most 255.
            out.push(self.other_listeners.len() as u8);
            for (name, hp) in &self.other_listeners {
                put_str(&mut out, name);
                put_str(&mut out, &hp.host);
                out.extend_from_slice(&hp.port.to_be_bytes());
            }
            // The whole identity is at most 512 bytes, so the section's length fits.
            let length = (out.len() - length_at - 2) as u16;
            out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Result<BrokerIdentity, MetadataError> {
        let mut r = Reader(bytes);
        let version = r.u8("version")?;
        if version != VERSION {
            return Err(MetadataError::UnknownVersion(version));
        }
        let flags = r.u8("flags")?;
        let broker_id = i32::from_be_bytes(r.array("broker id")?);
        let kafka =
            HostPort { host: r.str("Kafka advertised host")?, port: u16::from_be_bytes(r.array("Kafka port")?) };
        let raft = HostPort { host: r.str("raft host")?, port: u16::from_be_bytes(r.array("raft port")?) };
        let rack = if flags & FLAG_RACK != 0 { Some(r.str("broker.rack")?) } else { None };
        let mut listener = PLAINTEXT.to_string();
        let mut other_listeners = Vec::new();
        // Sections: tag, length, body; a tag this version does not know is skipped.
        while !r.0.is_empty() {
            let tag = r.u8("section tag")?;
            let length = u16::from_be_bytes(r.array("section length")?);
            let mut body = Reader(r.take(usize::from(length), "section")?);
            if tag != SECTION_LISTENERS {
                continue;
            }
            listener = body.str("listener name")?;
            other_listeners.clear();
            for _ in 0..body.u8("listener count")? {
                let name = body.str("listener name")?;
                let host = body.str("listener host")?;
                other_listeners.push((name, HostPort { host, port: u16::from_be_bytes(body.array("listener port")?) }));
            }
            if !body.0.is_empty() {
                return Err(MetadataError::Trailing(body.0.len()));
            }
        }
        Ok(BrokerIdentity {
            broker_id,
            kafka,
            listener,
            other_listeners,
            rack,
            raft,
            leaving: flags & FLAG_LEAVING != 0,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Lengths are checked by `encode` before anything is written.
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&[u8], MetadataError> {
        if self.0.len() < n {
            return Err(MetadataError::Truncated { field });
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self, field: &'static str) -> Result<u8, MetadataError> {
        Ok(self.take(1, field)?[0])
    }
    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], MetadataError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N, field)?);
        Ok(a)
    }
    fn str(&mut self, field: &'static str) -> Result<String, MetadataError> {
        let len = self.u8(field)? as usize;
        let bytes = self.take(len, field)?;
        std::str::from_utf8(bytes).map(str::to_string).map_err(|_| MetadataError::NotUtf8 { field })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(rack: Option<&str>) -> BrokerIdentity {
        BrokerIdentity::new(
            7,
            HostPort::new("broker-7.jet.svc", 9092),
            rack.map(str::to_string),
            HostPort::new("10.0.0.7", 9093),
        )
    }

    #[test]
    fn limit_is_memberlists() {
        assert_eq!(METADATA_LIMIT, memberlist::META_MAX_SIZE);
    }

    #[test]
    fn round_trips_with_and_without_rack_and_leaving() {
        for rack in [None, Some("eu-west-1a"), Some("")] {
            for leaving in [false, true] {
                let id = BrokerIdentity { leaving, ..identity(rack) };
                let bytes = id.encode().unwrap();
                assert_eq!(bytes.len(), id.encoded_len());
                assert_eq!(BrokerIdentity::decode(&bytes).unwrap(), id);
            }
        }
    }

    #[test]
    fn other_listeners_round_trip_and_are_found_by_name() {
        let id = identity(Some("a")).with_listeners(
            "INTERNAL".into(),
            vec![("EXTERNAL".into(), HostPort::new("203.0.113.7", 31092)), ("LB".into(), HostPort::new("lb", 9094))],
        );
        let bytes = id.encode().unwrap();
        assert_eq!(bytes.len(), id.encoded_len());
        let back = BrokerIdentity::decode(&bytes).unwrap();
        assert_eq!(back, id);
        assert_eq!(back.endpoint("internal"), Some(&HostPort::new("broker-7.jet.svc", 9092)));
        assert_eq!(back.endpoint("EXTERNAL"), Some(&HostPort::new("203.0.113.7", 31092)));
        assert_eq!(back.endpoint("PLAINTEXT"), None);
        // Every cut fails but the one just before the section (an identity without it).
        let base = identity(Some("a")).encoded_len();
        for cut in (0..bytes.len()).filter(|&cut| cut != base) {
            assert!(BrokerIdentity::decode(&bytes[..cut]).is_err(), "cut {cut}");
        }
        // An external host counts against the limit and is named when too long.
        let long = identity(None)
            .with_listeners("PLAINTEXT".into(), vec![("EXTERNAL".into(), HostPort::new("e".repeat(300), 1))]);
        assert_eq!(long.encode(), Err(MetadataError::FieldTooLong { field: "an advertised listener host", len: 300 }));
    }

    #[test]
    fn encoding_is_compact() {
        // 2 header + 4 id + (1+16+2) kafka + (1+8+2) raft + (1+10) rack.
        assert_eq!(identity(Some("eu-west-1a")).encode().unwrap().len(), 47);
    }

    #[test]
    fn largest_identity_that_fits_is_accepted_and_one_more_byte_is_refused() {
        let mut id = identity(Some(&"r".repeat(200)));
        id.kafka.host = "k".repeat(255);
        // Size the raft host so the whole identity is exactly at the limit.
        let fixed = id.encoded_len() - id.raft.host.len();
        id.raft.host = "h".repeat(METADATA_LIMIT - fixed);
        assert_eq!(id.encoded_len(), METADATA_LIMIT);
        let bytes = id.encode().unwrap();
        assert_eq!(BrokerIdentity::decode(&bytes).unwrap(), id);

        id.raft.host.push('h');
        match id.encode() {
            Err(MetadataError::TooLarge { total, fields }) => {
                assert_eq!(total, METADATA_LIMIT + 1);
                assert!(
                    fields
                        == "the Kafka advertised host (255 bytes), broker.rack (200 bytes), the raft address host (45 bytes)",
                    "{fields}"
                );
                let message = id.encode().unwrap_err().to_string();
                assert!(message.contains("513 bytes") && message.contains("limit of 512"), "{message}");
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn a_field_over_255_bytes_is_named() {
        let mut id = identity(None);
        id.kafka.host = "a".repeat(256);
        assert_eq!(id.encode(), Err(MetadataError::FieldTooLong { field: "the Kafka advertised host", len: 256 }));
        let id = identity(Some(&"b".repeat(300)));
        let err = id.encode().unwrap_err();
        assert!(err.to_string().starts_with("broker.rack is 300 bytes long"), "{err}");
    }

    #[test]
    fn malformed_metadata_is_an_error_not_a_panic() {
        let bytes = identity(Some("a")).encode().unwrap();
        for cut in 0..bytes.len() {
            assert!(matches!(BrokerIdentity::decode(&bytes[..cut]), Err(MetadataError::Truncated { .. })), "cut {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(matches!(BrokerIdentity::decode(&extra), Err(MetadataError::Truncated { .. })));
        // A section of a later version is skipped.
        let mut later = bytes.clone();
        later.extend_from_slice(&[9, 0, 2, 0xab, 0xcd]);
        assert_eq!(BrokerIdentity::decode(&later).unwrap(), BrokerIdentity::decode(&bytes).unwrap());
        let mut version = bytes.clone();
        version[0] = 9;
        assert_eq!(BrokerIdentity::decode(&version), Err(MetadataError::UnknownVersion(9)));
        let mut utf8 = bytes;
        utf8[7] = 0xff;
        assert!(matches!(BrokerIdentity::decode(&utf8), Err(MetadataError::NotUtf8 { .. })));
    }

    #[test]
    fn ipv6_hosts_display_bracketed() {
        assert_eq!(HostPort::new("::1", 9092).to_string(), "[::1]:9092");
        assert_eq!(HostPort::new("localhost", 9092).to_string(), "localhost:9092");
    }
}
