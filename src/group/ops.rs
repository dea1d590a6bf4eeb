//! The coordinator's request-level operations: classic membership (join, sync,
//! heartbeat, leave), committed offsets (commit, fetch, delete) and group deletion.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId};
use kafka_protocol::protocol::StrBytes;

use crate::broker::{Broker, now_ms};
use crate::group::GroupCoordinator;
use crate::group::classic::{
    ClassicGroup, Effects, JoinOutcome, JoinRequest, LeaveMember, Reply, SyncOutcome, SyncRequest,
};
use crate::group::consumer::{ClientInfo, ConsumerGroup};
use crate::group::coordinator::{Completion, Group, GroupEntry, topics_snapshot};
use crate::group::durability::Barrier;
use crate::group::records::{self, KeyValue, OffsetValue};

/// One partition's offset in an OffsetCommit.
pub struct OffsetCommit {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// Who commits: a member of a generation, or (generation -1, empty member) a standalone
/// client.
pub struct Committer<'a> {
    pub member_id: &'a str,
    pub group_instance_id: Option<&'a str>,
    pub generation: i32,
    /// OffsetCommit v9+ names an unknown group GROUP_ID_NOT_FOUND rather than
    /// ILLEGAL_GENERATION.
    pub version: i16,
}

/// A partition whose committed offset was asked for: the offset if there is one, or
/// UNSTABLE_OFFSET_COMMIT when the fetch requires stable offsets and a transaction has
/// offsets pending for it.
pub type FetchedOffset = (String, i32, Result<Option<OffsetValue>, ResponseError>);

/// Which offsets an OffsetFetch wants: `None` = all of the group's.
pub type OffsetSelection = Option<Vec<(String, Vec<i32>)>>;

impl GroupCoordinator {
    pub fn join(&self, broker: &Broker, group_id: &str, req: JoinRequest) -> Completion<JoinOutcome> {
        let member_id = req.member_id.clone();
        let fail = |e| Completion::ready(JoinOutcome::error(e, &member_id));
        if group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        if let Err(e) = self.offsets_topic(broker) {
            return fail(e);
        }
        let mut state = match self.lock_group(broker, group_id) {
            Ok((state, _)) => state,
            Err(e) => return fail(e),
        };
        let mut effects = Effects::default();
        let now = now_ms();
        let entry = state.entry(group_id, now);
        let mut records = Vec::new();
        if let Group::Consumer(g) = &entry.group {
            if !g.is_empty() {
                return fail(ResponseError::InconsistentGroupProtocol);
            }
            // An empty consumer group becomes a classic one (Kafka's downgrade of an
            // empty group); its records are deleted.
            records = g.delete_records();
            entry.group = Group::Classic(Box::new(ClassicGroup::new(group_id, now)));
        }
        let Group::Classic(group) = &mut entry.group else { return fail(ResponseError::InconsistentGroupProtocol) };
        let reply = group.join(req, &self.settings.classic, now, &mut effects);
        self.complete(broker, &mut state, group_id, records, effects, reply)
    }

    pub fn sync(&self, broker: &Broker, group_id: &str, req: SyncRequest) -> Completion<SyncOutcome> {
        let fail = |e| Completion::ready(SyncOutcome::error(e));
        if group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId);
        }
        let mut state = match self.lock_group(broker, group_id) {
            Ok((state, _)) => state,
            Err(e) => return fail(e),
        };
        let Some(GroupEntry { group: Group::Classic(group), .. }) = state.groups.get_mut(group_id) else {
            return fail(ResponseError::UnknownMemberId);
        };
        let mut effects = Effects::default();
        let reply = group.sync(req, now_ms(), &mut effects);
        self.complete(broker, &mut state, group_id, Vec::new(), effects, reply)
    }

    pub fn heartbeat(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if group_id.is_empty() {
            return Err(ResponseError::InvalidGroupId);
        }
        let (mut state, _) = self.lock_group(broker, group_id)?;
        let Some(GroupEntry { group: Group::Classic(group), .. }) = state.groups.get_mut(group_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        let result = group.heartbeat(member_id, instance_id, generation, now_ms());
        state.reschedule(group_id);
        result
    }

    /// LeaveGroup: per-member results, or a group-level error.
    pub fn leave(
        &self,
        broker: &Broker,
        group_id: &str,
        members: &[LeaveMember],
    ) -> Completion<Result<Vec<Result<(), ResponseError>>, ResponseError>> {
        if group_id.is_empty() {
            return Completion::ready(Err(ResponseError::InvalidGroupId));
        }
        let mut state = match self.lock_group(broker, group_id) {
            Ok((state, _)) => state,
            Err(e) => return Completion::ready(Err(e)),
        };
        let Some(GroupEntry { group: Group::Classic(group), .. }) = state.groups.get_mut(group_id) else {
            return Completion::ready(Ok(members.iter().map(|_| Err(ResponseError::UnknownMemberId)).collect()));
        };
        let mut effects = Effects::default();
        let results = group.leave(members, &self.settings.classic, now_ms(), &mut effects);
        self.complete(broker, &mut state, group_id, Vec::new(), effects, Reply::Now(Ok(results)))
    }

    /// OffsetCommit: one result per offset, in order.
    pub fn commit_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        who: &Committer<'_>,
        offsets: Vec<OffsetCommit>,
    ) -> Completion<Vec<Result<(), ResponseError>>> {
        self.store_offsets(broker, group_id, who, offsets, None)
    }

    /// OffsetCommit, or with `transaction` (producer id and epoch) TxnOffsetCommit: the
    /// offsets are written as the producer's transactional batch and stay pending until
    /// its transaction's marker (see [`crate::group::txn_offsets`]). One result per
    /// offset, in order.
    pub(crate) fn store_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        who: &Committer<'_>,
        offsets: Vec<OffsetCommit>,
        transaction: Option<(i64, i16)>,
    ) -> Completion<Vec<Result<(), ResponseError>>> {
        let all = |e: ResponseError, n: usize| Completion::ready(vec![Err(e); n]);
        let n = offsets.len();
        if group_id.is_empty() {
            return all(ResponseError::InvalidGroupId, n);
        }
        if let Err(e) = self.offsets_topic(broker) {
            return all(e, n);
        }
        let mut state = match self.lock_group(broker, group_id) {
            Ok((state, _)) => state,
            Err(e) => return all(e, n),
        };
        let now = now_ms();
        let verdict = match state.groups.get(group_id).map(|e| &e.group) {
            Some(Group::Classic(g)) => g.validate_offset_commit(who.member_id, who.group_instance_id, who.generation),
            // KIP-848 members commit with OffsetCommit v9+, which carries their epoch
            // (TxnOffsetCommit carries it in every version that has a generation).
            Some(Group::Consumer(_)) if transaction.is_none() && who.version < 9 && who.generation >= 0 => {
                Err(ResponseError::UnsupportedVersion)
            }
            Some(Group::Consumer(g)) => g.validate_offset_commit(who.member_id, who.generation),
            None if who.generation < 0 => Ok(()),
            None if transaction.is_none() && who.version >= 9 => Err(ResponseError::GroupIdNotFound),
            None => Err(ResponseError::IllegalGeneration),
        };
        if let Err(e) = verdict {
            return all(e, n);
        }
        let max_metadata = self.settings.offset_metadata_max_bytes;
        let mut results = Vec::with_capacity(n);
        let mut accepted = Vec::new();
        for o in offsets {
            let metadata = o.metadata.unwrap_or_default();
            if broker.topic(&o.topic).is_none() {
                results.push(Err(ResponseError::UnknownTopicOrPartition));
            } else if metadata.len() > max_metadata {
                results.push(Err(ResponseError::OffsetMetadataTooLarge));
            } else {
                let value = OffsetValue {
                    offset: o.offset,
                    leader_epoch: o.leader_epoch,
                    metadata,
                    commit_timestamp: now,
                    expire_timestamp: -1,
                };
                accepted.push((o.topic, o.partition, value));
                results.push(Ok(()));
            }
        }
        let records: Vec<KeyValue> = accepted
            .iter()
            .map(|(t, p, v)| KeyValue {
                key: records::offset_commit_key(group_id, t, *p),
                value: Some(records::encode_offset_value(v)),
            })
            .collect();
        // The offsets are visible to OffsetFetch from here on, but every answer derived
        // from them waits for this write (see `crate::group::durability`); if it fails,
        // the partition's groups are rebuilt from the log, without them.
        match self.append_to_group(broker, &mut state, group_id, records, transaction) {
            Ok(durable) => {
                let entry = state.entry(group_id, now);
                let stored = match transaction {
                    Some((producer_id, _)) => entry.pending.entry(producer_id).or_default(),
                    None => &mut entry.offsets,
                };
                for (t, p, v) in accepted {
                    stored.insert((t, p), v);
                }
                Completion::durable(durable, results)
            }
            Err(e) => all(e, n),
        }
    }

    /// OffsetFetch for one group; `member` (v9+) is a KIP-848 member's id and epoch.
    /// The answer may only be given once the returned barrier is durable.
    pub fn fetch_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        member: Option<(&str, i32)>,
        wanted: OffsetSelection,
        require_stable: bool,
    ) -> Result<(Vec<FetchedOffset>, Barrier), ResponseError> {
        let (offsets, barrier) = self.with_group(broker, group_id, |entry| {
            if let (Some(GroupEntry { group: Group::Consumer(g), .. }), Some((id, epoch))) = (entry, member) {
                g.validate_offset_fetch(id, epoch)?;
            }
            Ok(committed_offsets(entry, wanted, require_stable))
        })?;
        Ok((offsets?, barrier))
    }

    /// ConsumerGroupHeartbeat: joins, reconciles or leaves a KIP-848 group.
    pub fn consumer_heartbeat(
        &self,
        broker: &Broker,
        req: &ConsumerGroupHeartbeatRequest,
        version: i16,
        client: &ClientInfo<'_>,
    ) -> Completion<ConsumerGroupHeartbeatResponse> {
        let fail = |e: ResponseError, message: &str| {
            Completion::ready(
                ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(e.code())
                    .with_error_message(Some(StrBytes::from_string(message.to_string()))),
            )
        };
        let group_id = req.group_id.as_str();
        if group_id.is_empty() {
            return fail(ResponseError::InvalidGroupId, "The group id must not be empty.");
        }
        if let Err(e) = self.offsets_topic(broker) {
            return fail(e, "The coordinator is not available.");
        }
        let topics = topics_snapshot(broker);
        let mut state = match self.lock_group(broker, group_id) {
            Ok((state, _)) => state,
            Err(e) => return fail(e, "The coordinator is not available."),
        };
        let now = now_ms();
        let entry = state.entry(group_id, now);
        if let Group::Classic(g) = &entry.group {
            if !g.is_empty() {
                return fail(ResponseError::GroupIdNotFound, &format!("Group {group_id} is not a consumer group."));
            }
            entry.group = Group::Consumer(ConsumerGroup::new(group_id));
        }
        let Group::Consumer(group) = &mut entry.group else { return fail(ResponseError::UnknownServerError, "") };
        let outcome = group.heartbeat(req, version, client, &topics, now, &self.settings.consumer);
        if !group.exists() {
            // A refused first join leaves nothing behind (but the group's offsets).
            entry.group = Group::Classic(Box::new(ClassicGroup::new(group_id, now)));
            if !entry.holds_offsets() {
                state.groups.remove(group_id);
            }
        }
        self.complete(broker, &mut state, group_id, outcome.records, Effects::default(), Reply::Now(outcome.response))
    }

    /// ConsumerGroupDescribe of one group.
    pub fn consumer_describe(
        &self,
        broker: &Broker,
        group_id: &str,
        version: i16,
        include_ops: bool,
    ) -> (DescribedGroup, Barrier) {
        let topics = topics_snapshot(broker);
        let not_found = || {
            DescribedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(group_id.to_string())))
                .with_error_code(ResponseError::GroupIdNotFound.code())
                .with_error_message(Some(StrBytes::from_string(format!("Group {group_id} is not a consumer group."))))
        };
        self.with_group(broker, group_id, |entry| match entry {
            Some(GroupEntry { group: Group::Consumer(g), .. }) => {
                g.describe(version, &topics, include_ops, &self.settings.consumer)
            }
            _ => not_found(),
        })
        .unwrap_or_else(|e| (not_found().with_error_code(e.code()).with_error_message(None), None))
    }
}

/// The committed offsets an OffsetFetch asked for (`-1` where there is none); with
/// `require_stable` (OffsetFetch v7+, sent by read_committed consumers) a partition with
/// transactional offsets pending gets UNSTABLE_OFFSET_COMMIT, as in Kafka, and the
/// client retries until the transaction completes.
fn committed_offsets(entry: Option<&GroupEntry>, wanted: OffsetSelection, require_stable: bool) -> Vec<FetchedOffset> {
    let answer = |topic: &str, p: i32, committed: Option<&OffsetValue>| {
        let key = (topic.to_string(), p);
        let unstable = require_stable && entry.is_some_and(|e| e.pending.values().any(|o| o.contains_key(&key)));
        let value = if unstable { Err(ResponseError::UnstableOffsetCommit) } else { Ok(committed.cloned()) };
        (key.0, p, value)
    };
    match wanted {
        Some(topics) => topics
            .into_iter()
            .flat_map(|(topic, partitions)| {
                partitions
                    .into_iter()
                    .map(move |p| answer(&topic, p, entry.and_then(|e| e.offsets.get(&(topic.clone(), p)))))
            })
            .collect(),
        None => entry.map(|e| e.offsets.iter().map(|((t, p), v)| answer(t, *p, Some(v))).collect()).unwrap_or_default(),
    }
}

impl GroupCoordinator {
    /// DeleteGroups: one result per group, in order.
    pub fn delete_groups(&self, broker: &Broker, ids: &[String]) -> Vec<Completion<Result<(), ResponseError>>> {
        let Ok(mut state) = self.lock() else {
            return ids.iter().map(|_| Completion::failed(ResponseError::CoordinatorNotAvailable)).collect();
        };
        let offsets_topic = broker.topic(crate::group::OFFSETS_TOPIC);
        let mut done = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(topic) = &offsets_topic {
                let index = crate::group::partition_for(id, topic.partition_count());
                if let Err(e) = self.ensure_loaded(&mut state, topic, index, now_ms()) {
                    done.push(Completion::ready(Err(e)));
                    continue;
                }
            }
            let Some(entry) = state.groups.get_mut(id) else {
                done.push(Completion::ready(Err(ResponseError::GroupIdNotFound)));
                continue;
            };
            // As Kafka: a group with offsets pending in a transaction is not deleted (its
            // marker would bring them back).
            if !entry.group.is_empty() || !entry.pending.is_empty() {
                done.push(Completion::ready(Err(ResponseError::NonEmptyGroup)));
                continue;
            }
            let mut records: Vec<KeyValue> = entry
                .offsets
                .keys()
                .map(|(t, p)| KeyValue { key: records::offset_commit_key(id, t, *p), value: None })
                .collect();
            records.extend(entry.group.delete_records(id));
            match self.append(broker, &mut state, id, records) {
                Ok(durable) => {
                    if let Some(GroupEntry { group: Group::Classic(mut g), .. }) = state.groups.remove(id) {
                        g.mark_dead().deliver();
                    }
                    state.reschedule(id);
                    done.push(Completion::durable(durable, Ok(())));
                }
                Err(e) => done.push(Completion::ready(Err(e))),
            }
        }
        done
    }

    /// OffsetDelete: a group-level error, or one result per partition.
    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Completion<Result<Vec<Result<(), ResponseError>>, ResponseError>> {
        let mut state = match self.lock_group(broker, group_id) {
            Ok((state, _)) => state,
            Err(e) => return Completion::ready(Err(e)),
        };
        let Some(entry) = state.groups.get_mut(group_id) else {
            return Completion::ready(Err(ResponseError::GroupIdNotFound));
        };
        let group = &entry.group;
        // Offsets of a group whose members do not follow the consumer protocol cannot be
        // checked against subscriptions: only an empty group's may go.
        if let Group::Classic(g) = group
            && !g.is_empty()
            && g.protocol_type() != Some("consumer")
        {
            return Completion::ready(Err(ResponseError::NonEmptyGroup));
        }
        let mut results = Vec::with_capacity(partitions.len());
        let mut deleted = Vec::new();
        for (topic, p) in partitions {
            if group.is_subscribed_to(topic) {
                results.push(Err(ResponseError::GroupSubscribedToTopic));
            } else {
                if entry.offsets.contains_key(&(topic.clone(), *p)) {
                    deleted.push((topic.clone(), *p));
                }
                results.push(Ok(()));
            }
        }
        let records =
            deleted.iter().map(|(t, p)| KeyValue { key: records::offset_commit_key(group_id, t, *p), value: None });
        match self.append(broker, &mut state, group_id, records.collect()) {
            Ok(durable) => {
                if let Some(entry) = state.groups.get_mut(group_id) {
                    for k in &deleted {
                        entry.offsets.remove(k);
                    }
                }
                Completion::durable(durable, Ok(results))
            }
            Err(e) => Completion::ready(Err(e)),
        }
    }
}
