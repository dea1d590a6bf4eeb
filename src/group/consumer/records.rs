//! The consumer-group records in `__consumer_offsets`, in Kafka's schemas
//! (`group-coordinator/src/main/resources/common/message/ConsumerGroup*.json`): keys are
//! the non-flexible `int16` record type, the group id and (per member) the member id;
//! values are flexible version 0 with tagged-field sections.
//!
//! Kafka 4.1 (KIP-1101) stopped writing `ConsumerGroupPartitionMetadata` (type 4) and
//! keeps a hash of the subscribed topics' metadata in `ConsumerGroupMetadataValue`'s
//! tagged field 0 instead; Jet does the same (its own hash function: the value is only
//! compared with itself). Type 4 records are accepted on replay and ignored.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::member::{Assignment, Member, MemberState};
use super::{ConsumerGroup, ResolvedRegex};
use crate::group::records::{KeyValue, Reader, RecordError, Writer};

/// Record types (the first `int16` of a key) of consumer groups.
pub mod record_type {
    pub const GROUP_METADATA: i16 = 3;
    pub const PARTITION_METADATA: i16 = 4;
    pub const MEMBER_METADATA: i16 = 5;
    pub const TARGET_ASSIGNMENT_METADATA: i16 = 6;
    pub const TARGET_ASSIGNMENT_MEMBER: i16 = 7;
    pub const CURRENT_MEMBER_ASSIGNMENT: i16 = 8;
    pub const REGULAR_EXPRESSION: i16 = 16;

    /// Whether a record of this type belongs to a KIP-848 consumer group.
    pub fn is_consumer_group(record_type: i16) -> bool {
        matches!(record_type, 3..=8 | 16)
    }
}

const VALUE_VERSION: i16 = 0;
/// `ConsumerGroupMetadataValue.MetadataHash`.
const METADATA_HASH_TAG: u32 = 0;

fn key(record_type: i16, group: &str, suffix: Option<&str>) -> Bytes {
    let mut w = Writer::default();
    w.i16(record_type);
    w.string(group);
    if let Some(s) = suffix {
        w.string(s);
    }
    w.finish()
}

fn value_writer() -> Writer {
    let mut w = Writer::flexible();
    w.i16(VALUE_VERSION);
    w
}

fn value_reader<'a>(value: &'a [u8], what: &'static str) -> Result<Reader<'a>, RecordError> {
    let mut r = Reader::new(value);
    let version = r.i16()?;
    if version != VALUE_VERSION {
        return Err(RecordError::UnknownVersion { what, version });
    }
    r.flexible = true;
    Ok(r)
}

fn write_topic_partitions(w: &mut Writer, assignment: &Assignment) {
    w.array_len(assignment.len());
    for (topic, partitions) in assignment {
        w.uuid(*topic);
        w.array_len(partitions.len());
        for p in partitions {
            w.i32(*p);
        }
        w.tagged_fields();
    }
}

fn read_topic_partitions(r: &mut Reader<'_>) -> Result<Assignment, RecordError> {
    let mut assignment = Assignment::new();
    for _ in 0..r.array_len()? {
        let topic = r.uuid()?;
        let mut partitions = BTreeSet::new();
        for _ in 0..r.array_len()? {
            partitions.insert(r.i32()?);
        }
        r.tagged_fields()?;
        if !partitions.is_empty() {
            assignment.entry(topic).or_default().extend(partitions);
        }
    }
    Ok(assignment)
}

/// Reads a tagged-field section, returning the `int64` of `wanted` if present.
fn read_tagged_i64(r: &mut Reader<'_>, wanted: u32) -> Result<Option<i64>, RecordError> {
    let mut found = None;
    for _ in 0..r.uvarint()? {
        let tag = r.uvarint()?;
        let size = r.uvarint()?;
        if tag == wanted && size == 8 {
            found = Some(r.i64()?);
        } else {
            for _ in 0..size {
                r.i8()?;
            }
        }
    }
    Ok(found)
}

fn kv(key: Bytes, value: Option<Bytes>) -> KeyValue {
    KeyValue { key, value }
}

impl ConsumerGroup {
    pub(super) fn group_metadata_record(&self) -> KeyValue {
        let mut w = value_writer();
        w.i32(self.group_epoch);
        if self.metadata_hash == 0 {
            w.tagged_fields();
        } else {
            w.uvarint(1);
            w.uvarint(METADATA_HASH_TAG);
            w.uvarint(8);
            w.i64(self.metadata_hash);
        }
        kv(key(record_type::GROUP_METADATA, &self.group_id, None), Some(w.finish()))
    }

    pub(super) fn member_metadata_record(&self, member: &Member) -> KeyValue {
        let mut w = value_writer();
        w.nullable_string(member.instance_id.as_deref());
        w.nullable_string(member.rack_id.as_deref());
        w.string(&member.client_id);
        w.string(&member.client_host);
        w.array_len(member.subscribed_topic_names.len());
        for name in &member.subscribed_topic_names {
            w.string(name);
        }
        w.nullable_string(member.subscribed_topic_regex.as_deref());
        w.i32(member.rebalance_timeout_ms);
        w.nullable_string(member.server_assignor.as_deref());
        w.tagged_fields();
        kv(key(record_type::MEMBER_METADATA, &self.group_id, Some(&member.member_id)), Some(w.finish()))
    }

    pub(super) fn target_metadata_record(&self) -> KeyValue {
        let mut w = value_writer();
        w.i32(self.assignment_epoch);
        w.tagged_fields();
        kv(key(record_type::TARGET_ASSIGNMENT_METADATA, &self.group_id, None), Some(w.finish()))
    }

    pub(super) fn target_member_record(&self, member_id: &str, assignment: &Assignment) -> KeyValue {
        let mut w = value_writer();
        write_topic_partitions(&mut w, assignment);
        w.tagged_fields();
        kv(key(record_type::TARGET_ASSIGNMENT_MEMBER, &self.group_id, Some(member_id)), Some(w.finish()))
    }

    pub(super) fn current_assignment_record(&self, member: &Member) -> KeyValue {
        let mut w = value_writer();
        w.i32(member.epoch);
        w.i32(member.previous_epoch);
        w.i8(member.state.to_byte());
        write_topic_partitions(&mut w, &member.assigned);
        write_topic_partitions(&mut w, &member.pending_revocation);
        w.tagged_fields();
        kv(key(record_type::CURRENT_MEMBER_ASSIGNMENT, &self.group_id, Some(&member.member_id)), Some(w.finish()))
    }

    pub(super) fn regex_record(&self, regex: &str, resolved: Option<&ResolvedRegex>) -> KeyValue {
        let value = resolved.map(|resolved| {
            let mut w = value_writer();
            w.array_len(resolved.topics.len());
            for topic in &resolved.topics {
                w.string(topic);
            }
            w.i64(resolved.version);
            w.i64(resolved.timestamp_ms);
            w.tagged_fields();
            w.finish()
        });
        kv(key(record_type::REGULAR_EXPRESSION, &self.group_id, Some(regex)), value)
    }

    /// Tombstones of a member's three records, in Kafka's order.
    pub(super) fn member_tombstones(&self, member_id: &str) -> [KeyValue; 3] {
        [record_type::CURRENT_MEMBER_ASSIGNMENT, record_type::TARGET_ASSIGNMENT_MEMBER, record_type::MEMBER_METADATA]
            .map(|t| kv(key(t, &self.group_id, Some(member_id)), None))
    }

    /// Tombstones for every record of this group (DeleteGroups), in Kafka's order: per
    /// member current and target assignments, the target epoch, member metadata, regular
    /// expressions, the (no longer written) partition metadata and finally the group.
    pub fn delete_records(&self) -> Vec<KeyValue> {
        let group = &self.group_id;
        let per_member = |t| self.members.keys().map(move |m| kv(key(t, group, Some(m)), None));
        let mut records: Vec<KeyValue> = per_member(record_type::CURRENT_MEMBER_ASSIGNMENT)
            .chain(per_member(record_type::TARGET_ASSIGNMENT_MEMBER))
            .collect();
        records.push(kv(key(record_type::TARGET_ASSIGNMENT_METADATA, group, None), None));
        records.extend(per_member(record_type::MEMBER_METADATA));
        records.extend(self.regexes.keys().map(|regex| self.regex_record(regex, None)));
        records.push(kv(key(record_type::PARTITION_METADATA, group, None), None));
        records.push(kv(key(record_type::GROUP_METADATA, group, None), None));
        records
    }

    /// Applies one record of this group read back from `__consumer_offsets` (startup).
    /// Records of other types are refused; the caller routes by [`record_type::is_consumer_group`].
    pub fn replay(&mut self, record_type: i16, key: &[u8], value: Option<&[u8]>) -> Result<(), RecordError> {
        let mut k = Reader::new(key);
        let key_type = k.i16()?;
        if key_type != record_type {
            return Err(RecordError::Invalid { what: "record type in key", value: i64::from(key_type) });
        }
        let group = k.string()?;
        if group != self.group_id {
            return Err(RecordError::Invalid { what: "group id in key", value: 0 });
        }
        match record_type {
            record_type::GROUP_METADATA => match value {
                Some(value) => {
                    let mut r = value_reader(value, "ConsumerGroupMetadataValue")?;
                    self.group_epoch = r.i32()?;
                    self.metadata_hash = read_tagged_i64(&mut r, METADATA_HASH_TAG)?.unwrap_or(0);
                    self.dead = false;
                }
                // The group is deleted: nothing of it remains.
                None => {
                    *self = ConsumerGroup::new(&group);
                    self.dead = true;
                }
            },
            record_type::PARTITION_METADATA => {}
            record_type::MEMBER_METADATA => {
                let member_id = k.string()?;
                match value {
                    Some(value) => {
                        let mut r = value_reader(value, "ConsumerGroupMemberMetadataValue")?;
                        let member = self.members.entry(member_id.clone()).or_insert_with(|| Member::new(&member_id));
                        member.instance_id = r.nullable_string()?;
                        member.rack_id = r.nullable_string()?;
                        member.client_id = r.string()?;
                        member.client_host = r.string()?;
                        let mut names = BTreeSet::new();
                        for _ in 0..r.array_len()? {
                            names.insert(r.string()?);
                        }
                        member.subscribed_topic_names = names;
                        member.subscribed_topic_regex = r.nullable_string()?;
                        member.rebalance_timeout_ms = r.i32()?;
                        member.server_assignor = r.nullable_string()?;
                        r.tagged_fields()?;
                    }
                    None => {
                        self.members.remove(&member_id);
                        self.timers.remove(&member_id);
                    }
                }
            }
            record_type::TARGET_ASSIGNMENT_METADATA => {
                self.assignment_epoch = match value {
                    Some(value) => {
                        let mut r = value_reader(value, "ConsumerGroupTargetAssignmentMetadataValue")?;
                        let epoch = r.i32()?;
                        r.tagged_fields()?;
                        epoch
                    }
                    None => 0,
                };
            }
            record_type::TARGET_ASSIGNMENT_MEMBER => {
                let member_id = k.string()?;
                match value {
                    Some(value) => {
                        let mut r = value_reader(value, "ConsumerGroupTargetAssignmentMemberValue")?;
                        let assignment = read_topic_partitions(&mut r)?;
                        r.tagged_fields()?;
                        self.target.insert(member_id, assignment);
                    }
                    None => {
                        self.target.remove(&member_id);
                    }
                }
            }
            record_type::CURRENT_MEMBER_ASSIGNMENT => {
                let member_id = k.string()?;
                let (epoch, previous_epoch, state, assigned, pending) = match value {
                    Some(value) => {
                        let mut r = value_reader(value, "ConsumerGroupCurrentMemberAssignmentValue")?;
                        let epoch = r.i32()?;
                        let previous = r.i32()?;
                        let state = MemberState::from_byte(r.i8()?);
                        let assigned = read_topic_partitions(&mut r)?;
                        let pending = read_topic_partitions(&mut r)?;
                        r.tagged_fields()?;
                        (epoch, previous, state, assigned, pending)
                    }
                    // Kafka resets a member whose current assignment is deleted.
                    None => (-1, -1, MemberState::Stable, Assignment::new(), Assignment::new()),
                };
                if value.is_none() && !self.members.contains_key(&member_id) {
                    return Ok(());
                }
                let member = self.members.entry(member_id.clone()).or_insert_with(|| Member::new(&member_id));
                member.epoch = epoch;
                member.previous_epoch = previous_epoch;
                member.state = state;
                member.assigned = assigned;
                member.pending_revocation = pending;
            }
            record_type::REGULAR_EXPRESSION => {
                let regex = k.string()?;
                match value {
                    Some(value) => {
                        let mut r = value_reader(value, "ConsumerGroupRegularExpressionValue")?;
                        let mut topics = BTreeSet::new();
                        for _ in 0..r.array_len()? {
                            topics.insert(r.string()?);
                        }
                        let version = r.i64()?;
                        let timestamp_ms = r.i64()?;
                        r.tagged_fields()?;
                        self.regexes.insert(regex, ResolvedRegex { topics, version, timestamp_ms });
                    }
                    None => {
                        self.regexes.remove(&regex);
                    }
                }
            }
            other => return Err(RecordError::Invalid { what: "consumer group record type", value: i64::from(other) }),
        }
        Ok(())
    }
}
