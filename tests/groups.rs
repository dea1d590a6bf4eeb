//! Consumer groups end to end over the wire: rebalances across connections, session
//! expiry, and committed offsets plus membership surviving a restart.

mod common;

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use common::{Client, TestBroker};

const NO_DELAY: &[&str] = &["--set", "group.initial.rebalance.delay.ms=0"];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_request(group: &str, member: &str, session_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"subscription")),
        ])
}

/// The two-step join of a new member (v9): returns the completed join.
async fn join(c: &mut Client, group: &str, session_ms: i32) -> JoinGroupResponse {
    let first: JoinGroupResponse = c.call(ApiKey::JoinGroup, 9, &join_request(group, "", session_ms)).await;
    assert_eq!(first.error_code, ResponseError::MemberIdRequired.code());
    c.call(ApiKey::JoinGroup, 9, &join_request(group, &first.member_id, session_ms)).await
}

async fn sync(
    c: &mut Client,
    group: &str,
    j: &JoinGroupResponse,
    assignments: &[(&StrBytes, &'static [u8])],
) -> SyncGroupResponse {
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(j.generation_id)
        .with_member_id(j.member_id.clone())
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(j.protocol_name.clone())
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id((*m).clone())
                        .with_assignment(Bytes::from_static(a))
                })
                .collect(),
        );
    c.call(ApiKey::SyncGroup, 5, &req).await
}

async fn heartbeat(c: &mut Client, group: &str, member: &StrBytes, generation: i32) -> i16 {
    let req = HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(member.clone())
        .with_generation_id(generation);
    let r: HeartbeatResponse = c.call(ApiKey::Heartbeat, 4, &req).await;
    r.error_code
}

async fn group_state(c: &mut Client, group: &str) -> String {
    let r: DescribeGroupsResponse =
        c.call(ApiKey::DescribeGroups, 5, &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))])).await;
    r.groups[0].group_state.to_string()
}

#[tokio::test]
async fn a_second_member_rebalances_the_group_across_connections() {
    let b = TestBroker::start(NO_DELAY).await;
    let (mut c1, mut c2) = (b.client().await, b.client().await);
    let a = join(&mut c1, "g", 10_000).await;
    assert_eq!((a.error_code, a.generation_id), (0, 1));
    assert_eq!(sync(&mut c1, "g", &a, &[(&a.member_id, b"all")]).await.assignment, Bytes::from_static(b"all"));
    // The second member's join waits for the first to rejoin.
    let second = tokio::spawn(async move {
        let j = join(&mut c2, "g", 10_000).await;
        (c2, j)
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while heartbeat(&mut c1, "g", &a.member_id, 1).await != ResponseError::RebalanceInProgress.code() {
        assert!(tokio::time::Instant::now() < deadline, "no rebalance started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a2: JoinGroupResponse = c1.call(ApiKey::JoinGroup, 9, &join_request("g", &a.member_id, 10_000)).await;
    let (mut c2, b2) = second.await.unwrap();
    assert_eq!((a2.generation_id, b2.generation_id), (2, 2));
    assert_eq!(a2.leader, a.member_id);
    assert_eq!(a2.members.len(), 2);
    // Followers' syncs wait for the leader's assignment.
    let follower = tokio::spawn(async move { sync(&mut c2, "g", &b2, &[]).await });
    let leader = sync(&mut c1, "g", &a2, &[(&a2.members[0].member_id, b"p0"), (&a2.members[1].member_id, b"p1")]).await;
    let follower = follower.await.unwrap();
    let mut got = [leader.assignment, follower.assignment];
    got.sort();
    assert_eq!(got, [Bytes::from_static(b"p0"), Bytes::from_static(b"p1")]);
    assert_eq!(group_state(&mut c1, "g").await, "Stable");
    b.stop().await;
}

#[tokio::test]
async fn a_silent_member_expires_after_its_session_timeout() {
    let b = TestBroker::start(&[
        "--set",
        "group.initial.rebalance.delay.ms=0",
        "--set",
        "group.min.session.timeout.ms=100",
    ])
    .await;
    let mut c = b.client().await;
    let a = join(&mut c, "quiet", 200).await;
    sync(&mut c, "quiet", &a, &[]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while group_state(&mut c, "quiet").await != "Empty" {
        assert!(tokio::time::Instant::now() < deadline, "the member never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(heartbeat(&mut c, "quiet", &a.member_id, 1).await, ResponseError::UnknownMemberId.code());
    b.stop().await;
}

#[tokio::test]
async fn committed_offsets_and_membership_survive_a_restart() {
    let b = TestBroker::start(NO_DELAY).await;
    let mut c = b.client().await;
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("t")))
            .with_num_partitions(2)
            .with_replication_factor(1),
    ]);
    let _: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create).await;
    let a = join(&mut c, "g", 30_000).await;
    sync(&mut c, "g", &a, &[(&a.member_id, b"both")]).await;
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("g")))
        .with_generation_id_or_member_epoch(a.generation_id)
        .with_member_id(a.member_id.clone())
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(
                vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_committed_leader_epoch(0)
                        .with_committed_metadata(Some(s("where I was"))),
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(7),
                ],
            ),
        ]);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 9, &commit).await;
    assert!(r.topics[0].partitions.iter().all(|p| p.error_code == 0));
    let dir = b.stop().await;

    let b = TestBroker::start_in(dir, NO_DELAY).await;
    let mut c = b.client().await;
    // The member carries on where it was: same id, same generation, no rebalance.
    assert_eq!(heartbeat(&mut c, "g", &a.member_id, a.generation_id).await, 0);
    assert_eq!(group_state(&mut c, "g").await, "Stable");
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s("g"))).with_topics(None),
    ]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &fetch).await;
    let parts = &r.groups[0].topics[0].partitions;
    assert_eq!(parts.len(), 2);
    assert_eq!((parts[0].committed_offset, parts[0].committed_leader_epoch), (42, 0));
    assert_eq!(parts[0].metadata.as_deref(), Some("where I was"));
    assert_eq!(parts[1].committed_offset, 7);
    b.stop().await;
}

#[tokio::test]
async fn offsets_of_an_empty_group_expire_after_the_retention() {
    let b =
        TestBroker::start(&["--set", "offsets.retention.minutes=0", "--set", "offsets.retention.check.interval.ms=50"])
            .await;
    let mut c = b.client().await;
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("t")))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let _: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create).await;
    // A standalone commit (no generation) creates an empty group holding one offset.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s("old")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(
                vec![offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(5)],
            ),
        ]);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 9, &commit).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed: ListGroupsResponse = c.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default()).await;
        if listed.groups.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the group's offsets never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s("old"))).with_topics(None),
    ]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &fetch).await;
    assert!(r.groups[0].topics.is_empty());
    // The expiry is durable: after a restart the group is still gone.
    let dir = b.stop().await;
    let b = TestBroker::start_in(dir, &[]).await;
    let mut c = b.client().await;
    let listed: ListGroupsResponse = c.call(ApiKey::ListGroups, 5, &ListGroupsRequest::default()).await;
    assert!(listed.groups.is_empty());
    b.stop().await;
}

fn consumer_heartbeat(
    group: &str,
    member: &str,
    epoch: i32,
    owned: Option<Vec<(uuid::Uuid, Vec<i32>)>>,
) -> ConsumerGroupHeartbeatRequest {
    let mut req = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_topic_partitions(owned.map(|o| {
            o.into_iter()
                .map(|(id, partitions)| {
                    consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect()
        }));
    if epoch == 0 {
        req = req.with_rebalance_timeout_ms(10_000).with_subscribed_topic_names(Some(vec![TopicName(s("t"))]));
    }
    req
}

#[tokio::test]
async fn a_kip848_member_keeps_its_epoch_and_assignment_across_a_restart() {
    let b = TestBroker::start(&[]).await;
    let mut c = b.client().await;
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("t")))
            .with_num_partitions(3)
            .with_replication_factor(1),
    ]);
    let _: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create).await;
    let joined: ConsumerGroupHeartbeatResponse =
        c.call(ApiKey::ConsumerGroupHeartbeat, 1, &consumer_heartbeat("cg", "m1", 0, Some(vec![]))).await;
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    assert_eq!(joined.member_epoch, 1);
    let assignment = joined.assignment.expect("an assignment");
    let owned: Vec<(uuid::Uuid, Vec<i32>)> =
        assignment.topic_partitions.iter().map(|t| (t.topic_id, t.partitions.clone())).collect();
    assert_eq!(owned.iter().map(|(_, p)| p.len()).sum::<usize>(), 3, "the only member owns every partition");
    let dir = b.stop().await;

    let b = TestBroker::start_in(dir, &[]).await;
    let mut c = b.client().await;
    let again: ConsumerGroupHeartbeatResponse =
        c.call(ApiKey::ConsumerGroupHeartbeat, 1, &consumer_heartbeat("cg", "m1", 1, Some(owned))).await;
    assert_eq!(again.error_code, 0, "{:?}", again.error_message);
    assert_eq!(again.member_epoch, 1, "same member, same epoch: no rebalance");
    let described: ConsumerGroupDescribeResponse = c
        .call(
            ApiKey::ConsumerGroupDescribe,
            1,
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s("cg"))]),
        )
        .await;
    assert_eq!(described.groups[0].group_state.as_str(), "Stable");
    assert_eq!(described.groups[0].members.len(), 1);
    b.stop().await;
}
