//! The records the group coordinator keeps in `__consumer_offsets`, in Apache Kafka's own
//! key/value schemas, so any tool that decodes that topic (Kafka's
//! `kafka-console-consumer --formatter ...GroupMetadataMessageFormatter`, or a client that
//! knows the schemas) reads Jet's topic too.
//!
//! A key starts with an `int16` record type (Kafka's "coordinator-key" api key), followed
//! by that key's fields; a value starts with an `int16` version. A `null` value is a
//! tombstone. The classic records live here; KIP-848 consumer-group records use the same
//! [`Writer`]/[`Reader`] from [`crate::group::consumer`].

use bytes::{BufMut, Bytes, BytesMut};

/// Record types (the first `int16` of a key).
pub mod record_type {
    /// Offset commit, legacy key version 0.
    pub const OFFSET_COMMIT_LEGACY: i16 = 0;
    pub const OFFSET_COMMIT: i16 = 1;
    pub const GROUP_METADATA: i16 = 2;
}

/// Value versions Jet writes: what Kafka 4.x writes for records without the optional
/// fields of later versions.
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;
/// The first flexible (tagged-field) value version of both classic values.
const FIRST_FLEXIBLE_VALUE_VERSION: i16 = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record ends early: needed {needed} bytes at {at}")]
    Truncated { at: usize, needed: usize },
    #[error("invalid {what}: {value}")]
    Invalid { what: &'static str, value: i64 },
    #[error("string is not UTF-8")]
    NotUtf8,
    #[error("unknown {what} version {version}")]
    UnknownVersion { what: &'static str, version: i16 },
}

/// One key/value pair for `__consumer_offsets`; `value: None` is a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// A committed offset, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only in value version 1 (`-1` otherwise).
    pub expire_timestamp: i64,
}

/// A classic group's membership after a completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A decoded key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupMetadata {
        group: String,
    },
    /// Another record type (KIP-848 consumer groups, share groups, ...): its group id
    /// (every coordinator key starts with it) and the whole key.
    Other {
        record_type: i16,
        group: String,
    },
}

impl RecordKey {
    pub fn group(&self) -> &str {
        match self {
            RecordKey::OffsetCommit { group, .. }
            | RecordKey::GroupMetadata { group }
            | RecordKey::Other { group, .. } => group,
        }
    }
}

pub fn decode_key(key: &[u8]) -> Result<RecordKey, RecordError> {
    let mut r = Reader::new(key);
    let record_type = r.i16()?;
    let group = r.string()?;
    Ok(match record_type {
        record_type::OFFSET_COMMIT_LEGACY | record_type::OFFSET_COMMIT => {
            RecordKey::OffsetCommit { group, topic: r.string()?, partition: r.i32()? }
        }
        record_type::GROUP_METADATA => RecordKey::GroupMetadata { group },
        _ => RecordKey::Other { record_type, group },
    })
}

pub fn offset_commit_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut w = Writer::default();
    w.i16(record_type::OFFSET_COMMIT);
    w.string(group);
    w.string(topic);
    w.i32(partition);
    w.finish()
}

pub fn group_metadata_key(group: &str) -> Bytes {
    let mut w = Writer::default();
    w.i16(record_type::GROUP_METADATA);
    w.string(group);
    w.finish()
}

pub fn encode_offset_value(v: &OffsetValue) -> Bytes {
    let mut w = Writer::default();
    w.i16(OFFSET_COMMIT_VALUE_VERSION);
    w.i64(v.offset);
    w.i32(v.leader_epoch);
    w.string(&v.metadata);
    w.i64(v.commit_timestamp);
    w.finish()
}

pub fn decode_offset_value(value: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader::new(value);
    let version = r.i16()?;
    if !(0..=FIRST_FLEXIBLE_VALUE_VERSION).contains(&version) {
        return Err(RecordError::UnknownVersion { what: "OffsetCommitValue", version });
    }
    r.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string()?;
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 { r.i64()? } else { -1 };
    r.tagged_fields()?;
    Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp, expire_timestamp })
}

pub fn encode_group_metadata(v: &GroupMetadataValue) -> Bytes {
    let mut w = Writer::default();
    w.i16(GROUP_METADATA_VALUE_VERSION);
    w.string(&v.protocol_type);
    w.i32(v.generation);
    w.nullable_string(v.protocol.as_deref());
    w.nullable_string(v.leader.as_deref());
    w.i64(v.current_state_timestamp);
    w.array_len(v.members.len());
    for m in &v.members {
        w.string(&m.member_id);
        w.nullable_string(m.group_instance_id.as_deref());
        w.string(&m.client_id);
        w.string(&m.client_host);
        w.i32(m.rebalance_timeout);
        w.i32(m.session_timeout);
        w.bytes(&m.subscription);
        w.bytes(&m.assignment);
    }
    w.finish()
}

pub fn decode_group_metadata(value: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut r = Reader::new(value);
    let version = r.i16()?;
    if !(0..=FIRST_FLEXIBLE_VALUE_VERSION).contains(&version) {
        return Err(RecordError::UnknownVersion { what: "GroupMetadataValue", version });
    }
    r.flexible = version >= FIRST_FLEXIBLE_VALUE_VERSION;
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.nullable_string()?;
    let leader = r.nullable_string()?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = r.array_len()?;
    let mut members = Vec::new();
    for _ in 0..count {
        let member_id = r.string()?;
        let group_instance_id = if version >= 3 { r.nullable_string()? } else { None };
        let client_id = r.string()?;
        let client_host = r.string()?;
        let session_timeout_v0 = if version == 0 { Some(r.i32()?) } else { None };
        let (rebalance_timeout, session_timeout) = match session_timeout_v0 {
            Some(session) => (session, session),
            None => (r.i32()?, r.i32()?),
        };
        let subscription = r.bytes()?;
        let assignment = r.bytes()?;
        r.tagged_fields()?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout,
            session_timeout,
            subscription,
            assignment,
        });
    }
    r.tagged_fields()?;
    Ok(GroupMetadataValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
}

/// Writes Kafka's classic (non-flexible) encodings; `compact` switches to the flexible
/// ones (unsigned-varint lengths + 1, tagged-field sections) for flexible versions.
#[derive(Default)]
pub struct Writer {
    buf: BytesMut,
    pub compact: bool,
}

impl Writer {
    pub fn flexible() -> Self {
        Self { buf: BytesMut::new(), compact: true }
    }

    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }

    pub fn i8(&mut self, v: i8) {
        self.buf.put_i8(v);
    }

    pub fn i16(&mut self, v: i16) {
        self.buf.put_i16(v);
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.put_i32(v);
    }

    pub fn i64(&mut self, v: i64) {
        self.buf.put_i64(v);
    }

    pub fn uuid(&mut self, v: uuid::Uuid) {
        self.buf.put_slice(v.as_bytes());
    }

    pub fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.buf.put_u8((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.put_u8(v as u8);
    }

    /// A length (`None` = null) in this writer's encoding.
    fn len(&mut self, len: Option<usize>, wide: bool) {
        match (self.compact, len) {
            (true, None) => self.uvarint(0),
            (true, Some(n)) => self.uvarint(u32::try_from(n + 1).unwrap_or(u32::MAX)),
            (false, None) if wide => self.i32(-1),
            (false, None) => self.i16(-1),
            (false, Some(n)) if wide => self.i32(i32::try_from(n).unwrap_or(i32::MAX)),
            (false, Some(n)) => self.i16(i16::try_from(n).unwrap_or(i16::MAX)),
        }
    }

    pub fn string(&mut self, s: &str) {
        self.nullable_string(Some(s));
    }

    pub fn nullable_string(&mut self, s: Option<&str>) {
        self.len(s.map(str::len), false);
        if let Some(s) = s {
            self.buf.put_slice(s.as_bytes());
        }
    }

    pub fn bytes(&mut self, b: &[u8]) {
        self.len(Some(b.len()), true);
        self.buf.put_slice(b);
    }

    pub fn array_len(&mut self, n: usize) {
        self.len(Some(n), true);
    }

    /// An empty tagged-field section (flexible encodings only).
    pub fn tagged_fields(&mut self) {
        if self.compact {
            self.uvarint(0);
        }
    }
}

/// Reads what [`Writer`] writes, checking every length against the bytes left.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Flexible encoding (compact lengths, tagged fields).
    pub flexible: bool,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0, flexible: false }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(RecordError::Truncated { at: self.pos, needed: n })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn uuid(&mut self) -> Result<uuid::Uuid, RecordError> {
        Ok(uuid::Uuid::from_bytes(self.array()?))
    }

    pub fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.take(1)?[0];
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Invalid { what: "varint", value: i64::from(value) })
    }

    /// A length in this reader's encoding; `None` for null.
    fn len(&mut self, wide: bool) -> Result<Option<usize>, RecordError> {
        let n = match (self.flexible, wide) {
            (true, _) => i64::from(self.uvarint()?) - 1,
            (false, true) => i64::from(self.i32()?),
            (false, false) => i64::from(self.i16()?),
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(RecordError::Invalid { what: "length", value: n }),
            // Never trust a length beyond the bytes that are left.
            n if n as usize > self.data.len() - self.pos => {
                Err(RecordError::Truncated { at: self.pos, needed: n as usize })
            }
            n => Ok(Some(n as usize)),
        }
    }

    pub fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        match self.len(false)? {
            None => Ok(None),
            Some(n) => {
                let s = std::str::from_utf8(self.take(n)?).map_err(|_utf8| RecordError::NotUtf8)?;
                Ok(Some(s.to_string()))
            }
        }
    }

    pub fn string(&mut self) -> Result<String, RecordError> {
        self.nullable_string()?.ok_or(RecordError::Invalid { what: "null string", value: -1 })
    }

    pub fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let n = self.len(true)?.unwrap_or(0);
        Ok(Bytes::copy_from_slice(self.take(n)?))
    }

    /// An array's element count (null reads as empty), at most the bytes left.
    pub fn array_len(&mut self) -> Result<usize, RecordError> {
        Ok(self.len(true)?.unwrap_or(0))
    }

    /// Skips a tagged-field section (flexible encodings only).
    pub fn tagged_fields(&mut self) -> Result<(), RecordError> {
        if !self.flexible {
            return Ok(());
        }
        let count = self.uvarint()?;
        for _ in 0..count {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_commit_round_trips_in_kafkas_layout() {
        let key = offset_commit_key("g", "t", 3);
        // type 1, "g", "t", partition 3
        assert_eq!(&key[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3]);
        assert_eq!(
            decode_key(&key),
            Ok(RecordKey::OffsetCommit { group: "g".into(), topic: "t".into(), partition: 3 })
        );
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp: 99,
            expire_timestamp: -1,
        };
        let bytes = encode_offset_value(&v);
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_offset_value(&bytes), Ok(v));
    }

    #[test]
    fn older_offset_value_versions_decode() {
        // v1: offset, metadata, commit ts, expire ts
        let mut w = Writer::default();
        w.i16(1);
        w.i64(5);
        w.string("x");
        w.i64(10);
        w.i64(20);
        let v = decode_offset_value(&w.finish()).expect("v1");
        assert_eq!((v.offset, v.leader_epoch, v.metadata.as_str(), v.expire_timestamp), (5, -1, "x", 20));
        // v4: flexible
        let mut w = Writer::flexible();
        w.i16(4);
        w.i64(6);
        w.i32(2);
        w.string("y");
        w.i64(11);
        w.uvarint(1); // one unknown tagged field
        w.uvarint(9);
        w.uvarint(2);
        w.i16(0);
        let v = decode_offset_value(&w.finish()).expect("v4");
        assert_eq!((v.offset, v.leader_epoch, v.metadata.as_str()), (6, 2, "y"));
    }

    #[test]
    fn group_metadata_round_trips() {
        let v = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 1234,
            members: vec![MemberMetadata {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300_000,
                session_timeout: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group_metadata(&encode_group_metadata(&v)), Ok(v));
        assert_eq!(decode_key(&group_metadata_key("g")), Ok(RecordKey::GroupMetadata { group: "g".into() }));
    }

    #[test]
    fn hostile_lengths_are_refused_not_allocated() {
        let mut w = Writer::default();
        w.i16(3);
        w.string("consumer");
        w.i32(1);
        w.nullable_string(None);
        w.nullable_string(None);
        w.i64(0);
        w.i32(i32::MAX); // member count far beyond the bytes left
        assert!(matches!(decode_group_metadata(&w.finish()), Err(RecordError::Truncated { .. })));
        assert!(decode_key(&[0, 1, 0x7f, 0xff]).is_err());
        assert!(matches!(decode_offset_value(&[0, 9]), Err(RecordError::UnknownVersion { .. })));
        let full = encode_offset_value(&OffsetValue {
            offset: 1,
            leader_epoch: 1,
            metadata: "abc".into(),
            commit_timestamp: 1,
            expire_timestamp: -1,
        });
        for cut in 0..full.len() {
            assert!(decode_offset_value(&full[..cut]).is_err(), "cut at {cut}");
        }
    }
}
