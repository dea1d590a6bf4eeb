use std::collections::BTreeSet;

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedTopicPartitions;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::*;
use crate::group::records::decode_key;

const CLIENT: ClientInfo<'static> = ClientInfo { client_id: "client", client_host: "/127.0.0.1" };

fn tid(n: u8) -> Uuid {
    Uuid::from_bytes([n; 16])
}

fn snapshot(topics: &[(&str, u8, i32)]) -> TopicsSnapshot {
    topics.iter().map(|(name, id, partitions)| (*name, tid(*id), *partitions)).collect()
}

fn join_request(member_id: &str, names: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(
            names.iter().map(|n| TopicName(StrBytes::from_string(n.to_string()))).collect(),
        ))
        .with_topic_partitions(Some(Vec::new()))
}

fn heartbeat_request(member_id: &str, epoch: i32, owned: Option<&Assignment>) -> ConsumerGroupHeartbeatRequest {
    let owned = owned.map(|a| {
        a.iter()
            .map(|(t, ps)| {
                OwnedTopicPartitions::default().with_topic_id(*t).with_partitions(ps.iter().copied().collect())
            })
            .collect()
    });
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(owned)
}

fn assignment_of(response: &ConsumerGroupHeartbeatResponse) -> Option<Assignment> {
    response
        .assignment
        .as_ref()
        .map(|a| a.topic_partitions.iter().map(|t| (t.topic_id, t.partitions.iter().copied().collect())).collect())
}

fn parts(topic: u8, partitions: &[i32]) -> Assignment {
    Assignment::from([(tid(topic), partitions.iter().copied().collect())])
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// A group, the broker's topics, and every record written so far.
struct Harness {
    group: ConsumerGroup,
    topics: TopicsSnapshot,
    cfg: ConsumerGroupConfig,
    log: Vec<KeyValue>,
    now: i64,
}

impl Harness {
    fn new(topics: &[(&str, u8, i32)]) -> Self {
        Self {
            group: ConsumerGroup::new("g"),
            topics: snapshot(topics),
            cfg: ConsumerGroupConfig::default(),
            log: Vec::new(),
            now: 1_000,
        }
    }

    fn send(&mut self, req: &ConsumerGroupHeartbeatRequest, version: i16) -> ConsumerGroupHeartbeatResponse {
        let outcome = self.group.heartbeat(req, version, &CLIENT, &self.topics, self.now, &self.cfg);
        if outcome.response.error_code != 0 {
            assert!(outcome.records.is_empty(), "an error wrote records");
        }
        self.log.extend(outcome.records);
        outcome.response
    }

    fn topics_changed(&mut self, topics: &[(&str, u8, i32)]) {
        self.topics = snapshot(topics);
        let records = self.group.on_topics_changed(&self.topics, self.now, &self.cfg);
        self.log.extend(records);
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let records = self.group.on_deadline(self.now, &self.topics, &self.cfg);
        self.log.extend(records);
    }
}

/// A well-behaved consumer: reports what it owns and takes what it is given.
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

impl Client {
    fn join(h: &mut Harness, id: &str, names: &[&str]) -> Self {
        let response = h.send(&join_request(id, names), 1);
        assert_eq!(response.error_code, 0, "{:?}", response.error_message);
        Self { id: id.into(), epoch: response.member_epoch, owned: assignment_of(&response).unwrap_or_default() }
    }

    fn poll(&mut self, h: &mut Harness) -> ConsumerGroupHeartbeatResponse {
        let response = h.send(&heartbeat_request(&self.id, self.epoch, Some(&self.owned)), 1);
        assert_eq!(response.error_code, 0, "{:?}", response.error_message);
        self.epoch = response.member_epoch;
        if let Some(a) = assignment_of(&response) {
            self.owned = a;
        }
        response
    }
}

fn assert_disjoint(clients: &[&Client]) {
    let mut seen = BTreeSet::new();
    for c in clients {
        for (t, ps) in &c.owned {
            for p in ps {
                assert!(seen.insert((*t, *p)), "{t}/{p} owned twice");
            }
        }
    }
}

#[test]
fn first_member_joins_and_gets_everything() {
    let mut h = Harness::new(&[("t", 1, 4)]);
    let a = Client::join(&mut h, "a", &["t"]);
    assert_eq!(a.epoch, 1);
    assert_eq!(a.owned, parts(1, &[0, 1, 2, 3]));
    assert_eq!(h.group.state(), ConsumerGroupState::Stable);
    assert_eq!((h.group.group_epoch(), h.group.assignment_epoch()), (1, 1));
    let types: Vec<i16> = h.log.iter().map(|kv| i16::from_be_bytes([kv.key[0], kv.key[1]])).collect();
    // member metadata, group epoch, target member, target epoch, current assignment
    assert_eq!(types, vec![5, 3, 7, 6, 8]);
    assert!(h.log.iter().all(|kv| decode_key(&kv.key).map(|k| k.group().to_string()) == Ok("g".into())));
    // A plain heartbeat returns no assignment (it did not change) but the interval.
    let mut a = a;
    let response = a.poll(&mut h);
    assert!(response.assignment.is_none());
    assert_eq!(response.heartbeat_interval_ms, 5_000);
}

#[test]
fn second_member_waits_for_revocation() {
    let mut h = Harness::new(&[("t", 1, 4)]);
    let mut a = Client::join(&mut h, "a", &["t"]);
    let mut b = Client::join(&mut h, "b", &["t"]);
    // b is at the new epoch but its partitions are still a's.
    assert_eq!(b.epoch, 2);
    assert!(b.owned.is_empty());
    assert_eq!(h.group.member("b").map(|m| m.state), Some(MemberState::UnreleasedPartitions));
    assert_eq!(h.group.state(), ConsumerGroupState::Reconciling);
    // a must revoke two partitions first, keeping its epoch.
    let response = a.poll(&mut h);
    assert_eq!(response.member_epoch, 1);
    assert_eq!(count(&a.owned), 2);
    assert_eq!(h.group.member("a").map(|m| m.state), Some(MemberState::UnrevokedPartitions));
    assert_disjoint(&[&a, &b]);
    // b still gets nothing: a has not acknowledged.
    b.poll(&mut h);
    assert!(b.owned.is_empty());
    // a acknowledges (reports only what it kept) and moves to epoch 2.
    a.poll(&mut h);
    assert_eq!(a.epoch, 2);
    b.poll(&mut h);
    assert_eq!(count(&b.owned), 2);
    assert_disjoint(&[&a, &b]);
    assert_eq!(h.group.state(), ConsumerGroupState::Stable);
}

#[test]
fn leaving_member_partitions_go_to_the_others() {
    let mut h = Harness::new(&[("t", 1, 4)]);
    let mut a = Client::join(&mut h, "a", &["t"]);
    let mut b = Client::join(&mut h, "b", &["t"]);
    for _ in 0..2 {
        a.poll(&mut h);
        b.poll(&mut h);
    }
    let before = h.log.len();
    let response = h.send(&heartbeat_request("b", -1, None), 1);
    assert_eq!((response.error_code, response.member_epoch), (0, -1));
    // Tombstones of b's three records, then the group epoch and the new target.
    let tombstones: Vec<i16> = h.log[before..]
        .iter()
        .filter(|kv| kv.value.is_none())
        .map(|kv| i16::from_be_bytes([kv.key[0], kv.key[1]]))
        .collect();
    assert_eq!(tombstones, vec![8, 7, 5]);
    assert_eq!(h.group.member_count(), 1);
    a.poll(&mut h);
    assert_eq!(a.owned, parts(1, &[0, 1, 2, 3]));
    // Leaving again: unknown member.
    let response = h.send(&heartbeat_request("b", -1, None), 1);
    assert_eq!(response.error_code, ResponseError::UnknownMemberId.code());
}

#[test]
fn session_expiry_removes_the_member() {
    let mut h = Harness::new(&[("t", 1, 2)]);
    let mut a = Client::join(&mut h, "a", &["t"]);
    let _b = Client::join(&mut h, "b", &["t"]);
    h.now += 40_000;
    a.poll(&mut h);
    assert_eq!(h.group.next_deadline(), Some(1_000 + 45_000));
    h.advance(5_000);
    assert!(h.group.member("b").is_none());
    assert!(h.group.member("a").is_some());
    a.poll(&mut h);
    assert_eq!(a.owned, parts(1, &[0, 1]));
    h.advance(45_000);
    assert!(h.group.is_empty());
    assert_eq!(h.group.state(), ConsumerGroupState::Empty);
    assert_eq!(h.group.next_deadline(), None);
}

#[test]
fn member_not_revoking_in_time_is_removed() {
    let mut h = Harness::new(&[("t", 1, 2)]);
    let mut a = Client::join(&mut h, "a", &["t"]);
    let mut b = Client::join(&mut h, "b", &["t"]);
    // a is asked to revoke but keeps reporting everything.
    let owned_before = a.owned.clone();
    a.poll(&mut h);
    assert_eq!(h.group.member("a").map(|m| m.state), Some(MemberState::UnrevokedPartitions));
    a.owned = owned_before;
    h.now += 20_000;
    a.poll(&mut h);
    b.poll(&mut h);
    assert!(b.owned.is_empty());
    h.advance(10_000); // the 30 s rebalance timeout
    assert!(h.group.member("a").is_none());
    b.poll(&mut h);
    assert_eq!(b.owned, parts(1, &[0, 1]));
}

#[test]
fn static_member_rejoins_with_its_assignment() {
    let mut h = Harness::new(&[("t", 1, 4)]);
    let mut a = h.send(&join_request("a1", &["t"]).with_instance_id(Some(StrBytes::from_static_str("i-a"))), 1);
    assert_eq!(a.error_code, 0);
    let _b = Client::join(&mut h, "b", &["t"]);
    let mut first = Client { id: "a1".into(), epoch: a.member_epoch, owned: assignment_of(&a).unwrap_or_default() };
    first.poll(&mut h);
    first.poll(&mut h);
    let kept = first.owned.clone();
    assert_eq!(count(&kept), 2);
    // A second instance with the same id while the first is alive is refused.
    a = h.send(&join_request("a2", &["t"]).with_instance_id(Some(StrBytes::from_static_str("i-a"))), 1);
    assert_eq!(a.error_code, ResponseError::UnreleasedInstanceId.code());
    // Temporary leave keeps the member (epoch -2) and its partitions.
    let leave = heartbeat_request("a1", -2, None).with_instance_id(Some(StrBytes::from_static_str("i-a")));
    assert_eq!(h.send(&leave, 1).member_epoch, -2);
    let epoch = h.group.group_epoch();
    // The restarted instance takes over at once, with the same partitions and no rebalance.
    a = h.send(&join_request("a2", &["t"]).with_instance_id(Some(StrBytes::from_static_str("i-a"))), 1);
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    assert_eq!(assignment_of(&a), Some(kept));
    assert_eq!(h.group.group_epoch(), epoch);
    assert!(h.group.member("a1").is_none());
    // The old member id is fenced.
    let old = heartbeat_request("a1", 2, None).with_instance_id(Some(StrBytes::from_static_str("i-a")));
    assert_eq!(h.send(&old, 1).error_code, ResponseError::FencedInstanceId.code());
}

#[test]
fn added_partitions_are_assigned() {
    let mut h = Harness::new(&[("t", 1, 2)]);
    let mut a = Client::join(&mut h, "a", &["t"]);
    h.topics_changed(&[("t", 1, 3)]);
    assert_eq!(h.group.group_epoch(), 2);
    a.poll(&mut h);
    assert_eq!((a.epoch, a.owned.clone()), (2, parts(1, &[0, 1, 2])));
    // Nothing changed: no epoch bump, no records.
    let before = h.log.len();
    h.topics_changed(&[("t", 1, 3), ("other", 2, 1)]);
    assert_eq!((h.group.group_epoch(), h.log.len()), (2, before));
    // A subscribed topic that did not exist yet is picked up when created.
    let mut b = Client::join(&mut h, "b", &["later"]);
    assert!(b.owned.is_empty());
    h.topics_changed(&[("t", 1, 3), ("later", 3, 1)]);
    b.poll(&mut h);
    assert_eq!(b.owned, parts(3, &[0]));
    // Deleted: the partition is revoked and the group settles.
    h.topics_changed(&[("t", 1, 3)]);
    b.poll(&mut h);
    assert!(b.owned.is_empty());
    b.poll(&mut h);
    a.poll(&mut h);
    assert_eq!(h.group.state(), ConsumerGroupState::Stable);
    assert!(
        h.group.describe(1, &h.topics, false, &h.cfg).members.iter().all(|m| m.assignment.topic_partitions.len() <= 1)
    );
}

#[test]
fn regex_subscription_follows_new_topics() {
    let mut h = Harness::new(&[("foo-1", 1, 1), ("bar", 2, 1), ("__consumer_offsets", 9, 50)]);
    let join = join_request("a", &[])
        .with_subscribed_topic_names(Some(Vec::new()))
        .with_subscribed_topic_regex(Some(StrBytes::from_static_str("foo-.*|__.*")));
    let response = h.send(&join, 1);
    assert_eq!(response.error_code, 0, "{:?}", response.error_message);
    let mut a =
        Client { id: "a".into(), epoch: response.member_epoch, owned: assignment_of(&response).unwrap_or_default() };
    // As in Kafka 4.1, a regex matches internal topics too: `__.*` takes __consumer_offsets.
    let mut first = parts(1, &[0]);
    first.extend(parts(9, &(0..50).collect::<Vec<_>>()));
    assert_eq!(a.owned, first);
    assert!(h.group.is_subscribed_to("__consumer_offsets"));
    assert!(h.group.is_subscribed_to("foo-1"));
    assert!(!h.group.is_subscribed_to("bar"));
    h.topics_changed(&[("foo-1", 1, 1), ("bar", 2, 1), ("foo-2", 3, 2)]);
    // The vanished topic's partitions are revoked first, then foo-2's are assigned.
    a.poll(&mut h);
    a.poll(&mut h);
    let mut expected = parts(1, &[0]);
    expected.extend(parts(3, &[0, 1]));
    assert_eq!(a.owned, expected);
    assert!(h.group.resolved_regex("foo-.*|__.*").is_some_and(|r| r.topics.contains("foo-2")));
    // Switching to names deletes the regex resolution.
    let switch = heartbeat_request("a", a.epoch, Some(&a.owned))
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str("bar"))]))
        .with_subscribed_topic_regex(Some(StrBytes::from_static_str("")));
    assert_eq!(h.send(&switch, 1).error_code, 0);
    assert!(h.group.resolved_regex("foo-.*|__.*").is_none());
    assert!(h.log.last().is_some() && h.log.iter().any(|kv| kv.key[1] == 16 && kv.value.is_none()));
}

#[test]
fn invalid_requests_are_refused() {
    let mut h = Harness::new(&[("t", 1, 1)]);
    let code = |h: &mut Harness, req: &ConsumerGroupHeartbeatRequest, v| h.send(req, v).error_code;
    let bad_assignor = join_request("a", &["t"]).with_server_assignor(Some(StrBytes::from_static_str("sticky")));
    assert_eq!(code(&mut h, &bad_assignor, 1), ResponseError::UnsupportedAssignor.code());
    let bad_regex = join_request("a", &[]).with_subscribed_topic_regex(Some(StrBytes::from_static_str("(")));
    assert_eq!(code(&mut h, &bad_regex, 1), ResponseError::InvalidRegularExpression.code());
    let no_timeout = join_request("a", &["t"]).with_rebalance_timeout_ms(-1);
    assert_eq!(code(&mut h, &no_timeout, 1), ResponseError::InvalidRequest.code());
    let no_topics = join_request("a", &[]);
    assert_eq!(code(&mut h, &no_topics, 1), ResponseError::InvalidRequest.code());
    // v1: the client generates the member id; v0: the server does.
    assert_eq!(code(&mut h, &join_request("", &["t"]), 1), ResponseError::InvalidRequest.code());
    assert!(!h.group.exists());
    let v0 = h.send(&join_request("", &["t"]), 0);
    assert_eq!(v0.error_code, 0);
    let id = v0.member_id.map(|s| s.to_string()).unwrap_or_default();
    assert_eq!(id.len(), 22);
    // Unknown member, and a heartbeat to a group that does not exist.
    assert_eq!(code(&mut h, &heartbeat_request("nobody", 1, None), 1), ResponseError::UnknownMemberId.code());
    let mut fresh = Harness::new(&[]);
    assert_eq!(code(&mut fresh, &heartbeat_request("x", 1, None), 1), ResponseError::GroupIdNotFound.code());
    assert_eq!(code(&mut h, &heartbeat_request(&id, -3, None), 1), ResponseError::InvalidRequest.code());
}

#[test]
fn group_max_size_is_enforced() {
    let mut h = Harness::new(&[("t", 1, 1)]);
    h.cfg.max_size = 1;
    let mut a = Client::join(&mut h, "a", &["t"]);
    assert_eq!(h.send(&join_request("b", &["t"]), 1).error_code, ResponseError::GroupMaxSizeReached.code());
    a.poll(&mut h);
}

#[test]
fn stale_epochs_are_fenced() {
    let mut h = Harness::new(&[("t", 1, 2)]);
    let mut a = Client::join(&mut h, "a", &["t"]);
    let ahead = heartbeat_request("a", a.epoch + 1, Some(&a.owned));
    assert_eq!(h.send(&ahead, 1).error_code, ResponseError::FencedMemberEpoch.code());
    let _b = Client::join(&mut h, "b", &["t"]);
    a.poll(&mut h); // revoke
    a.poll(&mut h); // epoch 1 -> 2
    assert_eq!(a.epoch, 2);
    // The previous epoch with owned partitions within the assignment: a lost response.
    let retry = heartbeat_request("a", 1, Some(&a.owned));
    assert_eq!(h.send(&retry, 1).error_code, 0);
    // The previous epoch owning more than assigned, or an older epoch: fenced.
    let greedy = heartbeat_request("a", 1, Some(&parts(1, &[0, 1])));
    assert_eq!(h.send(&greedy, 1).error_code, ResponseError::FencedMemberEpoch.code());
    let _c = Client::join(&mut h, "c", &["t"]);
    a.poll(&mut h);
    a.poll(&mut h);
    let old = heartbeat_request("a", 1, Some(&a.owned));
    assert_eq!(h.send(&old, 1).error_code, ResponseError::FencedMemberEpoch.code());
    // After being fenced the client rejoins with epoch 0 and the same member id.
    let rejoin = h.send(&join_request("a", &["t"]), 1);
    assert_eq!((rejoin.error_code, rejoin.member_epoch), (0, a.epoch));
}

#[test]
fn offset_commit_and_fetch_validation() {
    let mut h = Harness::new(&[("t", 1, 1)]);
    // Empty group: admin commits (epoch -1) are allowed.
    assert_eq!(h.group.validate_offset_commit("", -1), Ok(()));
    let a = Client::join(&mut h, "a", &["t"]);
    assert_eq!(h.group.validate_offset_commit("", -1), Err(ResponseError::UnknownMemberId));
    assert_eq!(h.group.validate_offset_commit("a", a.epoch), Ok(()));
    assert_eq!(h.group.validate_offset_commit("a", a.epoch - 1), Err(ResponseError::StaleMemberEpoch));
    assert_eq!(h.group.validate_offset_commit("x", 1), Err(ResponseError::UnknownMemberId));
    assert_eq!(h.group.validate_offset_fetch("", -1), Ok(()));
    assert_eq!(h.group.validate_offset_fetch("a", a.epoch), Ok(()));
    assert_eq!(h.group.validate_offset_fetch("a", a.epoch + 1), Err(ResponseError::StaleMemberEpoch));
    assert_eq!(h.group.validate_offset_fetch("x", 1), Err(ResponseError::UnknownMemberId));
}

#[test]
fn range_assignor_on_request() {
    let mut h = Harness::new(&[("t", 1, 3), ("u", 2, 3)]);
    let range = |id| join_request(id, &["t", "u"]).with_server_assignor(Some(StrBytes::from_static_str("range")));
    let mut a = h.send(&range("m0"), 1);
    a = h.send(&heartbeat_request("m0", a.member_epoch, assignment_of(&a).as_ref()), 1);
    let _ = a;
    let b = h.send(&range("m1"), 1);
    assert_eq!(b.error_code, 0);
    let mut expected = parts(1, &[0, 1]);
    expected.extend(parts(2, &[0, 1]));
    assert_eq!(h.group.target_assignment("m0"), Some(&expected));
    let described = h.group.describe(1, &h.topics, false, &h.cfg);
    assert_eq!(described.assignor_name.as_str(), "range");
}

/// The observable, persisted state of a group.
fn persisted(g: &ConsumerGroup, topics: &TopicsSnapshot, cfg: &ConsumerGroupConfig) -> String {
    let members: Vec<&Member> = g.members().collect();
    let targets: Vec<_> = members.iter().map(|m| g.target_assignment(&m.member_id)).collect();
    format!(
        "{:?} {:?} {:?} {:?} {members:?} {targets:?} {:?} {:?}",
        g.state(),
        g.group_epoch(),
        g.assignment_epoch(),
        g.metadata_hash,
        g.regexes,
        g.describe(1, topics, true, cfg)
    )
}

#[test]
fn replay_rebuilds_the_same_group() {
    let mut h = Harness::new(&[("t", 1, 4), ("foo-a", 2, 2)]);
    let mut a = Client::join(&mut h, "a", &["t"]);
    let mut b = Client::join(&mut h, "b", &["t", "foo-a"]);
    let static_join = join_request("s1", &["t"]).with_instance_id(Some(StrBytes::from_static_str("inst")));
    assert_eq!(h.send(&static_join, 1).error_code, 0);
    let regex = join_request("r", &[]).with_subscribed_topic_regex(Some(StrBytes::from_static_str("foo-.*")));
    assert_eq!(h.send(&regex, 1).error_code, 0);
    a.poll(&mut h);
    b.poll(&mut h);
    let leave = heartbeat_request("s1", -2, None).with_instance_id(Some(StrBytes::from_static_str("inst")));
    assert_eq!(h.send(&leave, 1).error_code, 0);
    h.topics_changed(&[("t", 1, 5), ("foo-a", 2, 2), ("foo-b", 3, 1)]);
    assert_eq!(h.send(&heartbeat_request("b", -1, None), 1).error_code, 0);
    a.poll(&mut h);

    let mut replayed = ConsumerGroup::new("g");
    for kv in &h.log {
        let record_type = i16::from_be_bytes([kv.key[0], kv.key[1]]);
        assert!(record_type::is_consumer_group(record_type));
        replayed.replay(record_type, &kv.key, kv.value.as_deref()).expect("replay");
    }
    assert_eq!(persisted(&replayed, &h.topics, &h.cfg), persisted(&h.group, &h.topics, &h.cfg));
    assert_eq!(replayed.state(), ConsumerGroupState::Reconciling);

    // The replayed group keeps working: timers armed by on_loaded, heartbeats accepted.
    replayed.on_loaded(h.now, &h.cfg);
    assert_eq!(replayed.next_deadline(), Some(h.now + 45_000));
    let outcome =
        replayed.heartbeat(&heartbeat_request("a", a.epoch, Some(&a.owned)), 1, &CLIENT, &h.topics, h.now, &h.cfg);
    assert_eq!(outcome.response.error_code, 0);

    // DeleteGroups: a tombstone for every key ever written.
    let written: BTreeSet<_> = h.log.iter().map(|kv| kv.key.clone()).collect();
    let mut all = h.log.clone();
    all.extend(h.group.delete_records());
    let mut deleted = ConsumerGroup::new("g");
    let mut last = std::collections::BTreeMap::new();
    for kv in &all {
        let record_type = i16::from_be_bytes([kv.key[0], kv.key[1]]);
        deleted.replay(record_type, &kv.key, kv.value.as_deref()).expect("replay");
        last.insert(kv.key.clone(), kv.value.is_some());
    }
    assert!(written.iter().all(|k| last.get(k) == Some(&false)), "a key survives the deletion");
    assert_eq!(deleted.state(), ConsumerGroupState::Dead);
    assert_eq!(deleted.member_count(), 0);
    assert!(!deleted.exists());
    // A join recreates it from scratch.
    let outcome = deleted.heartbeat(&join_request("n", &["t"]), 1, &CLIENT, &h.topics, h.now, &h.cfg);
    assert_eq!((outcome.response.error_code, outcome.response.member_epoch), (0, 1));
    assert_eq!(deleted.state(), ConsumerGroupState::Stable);
}

#[test]
fn replay_refuses_foreign_and_truncated_records() {
    let mut h = Harness::new(&[("t", 1, 1)]);
    let _a = Client::join(&mut h, "a", &["t"]);
    let mut other = ConsumerGroup::new("other");
    let kv = &h.log[0];
    assert!(other.replay(5, &kv.key, kv.value.as_deref()).is_err());
    let mut fresh = ConsumerGroup::new("g");
    for kv in &h.log {
        let record_type = i16::from_be_bytes([kv.key[0], kv.key[1]]);
        if let Some(value) = &kv.value {
            for cut in 0..value.len() {
                assert!(
                    fresh.replay(record_type, &kv.key, Some(&value[..cut])).is_err(),
                    "type {record_type} cut {cut}"
                );
            }
        }
    }
}

#[test]
fn describe_respects_versions() {
    use kafka_protocol::messages::ConsumerGroupDescribeResponse;
    use kafka_protocol::protocol::Encodable;
    let mut h = Harness::new(&[("t", 1, 2)]);
    let _a = Client::join(&mut h, "a", &["t"]);
    for version in 0..=1 {
        let described = h.group.describe(version, &h.topics, true, &h.cfg);
        assert_eq!(described.group_state.as_str(), "Stable");
        assert_eq!(described.assignor_name.as_str(), "uniform");
        assert_eq!(described.authorized_operations, GROUP_AUTHORIZED_OPERATIONS);
        let member = &described.members[0];
        assert_eq!(member.member_type, if version == 0 { -1 } else { 1 });
        assert_eq!(member.assignment.topic_partitions[0].topic_name.0.as_str(), "t");
        assert_eq!(member.client_host.as_str(), "/127.0.0.1");
        let response = ConsumerGroupDescribeResponse::default().with_groups(vec![described]);
        let mut buf = bytes::BytesMut::new();
        response.encode(&mut buf, version).expect("encodes");
    }
    for version in 0..=1 {
        let mut buf = bytes::BytesMut::new();
        let response = h.send(&heartbeat_request("a", 1, None), version);
        response.encode(&mut buf, version).expect("encodes");
    }
}
