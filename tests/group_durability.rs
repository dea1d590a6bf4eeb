//! Durable before visible for consumer groups: an offset commit or a group change is
//! seen (by OffsetFetch, ConsumerGroupDescribe, members) only once its
//! `__consumer_offsets` record is fsynced, and a write whose fsync fails leaves the
//! previous state — the coordinator never answers from state the log does not hold.
//!
//! The fsync is "held" by making the change through the coordinator directly and not
//! waiting for its completion: the append asks for its fsync from a task of its own,
//! which on the test's single-threaded runtime cannot run before the test awaits. It is
//! failed through the log's own failure path: the flag the flusher sets when an
//! fdatasync fails, after which no sync of that log may report success.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use common::{Client, TestBroker};
use jet::broker::Broker;
use jet::broker::partition::Partition;
use jet::broker::replica::Replica;
use jet::group::ops::{Committer, OffsetCommit};
use jet::group::{OFFSETS_TOPIC, partition_for};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn create_topic(c: &mut Client, name: &str) {
    let create = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(1)
            .with_replication_factor(1),
    ]);
    let r: CreateTopicsResponse = c.call(ApiKey::CreateTopics, 7, &create).await;
    assert_eq!(r.topics[0].error_code, 0);
}

/// A standalone (generation -1) commit over the wire; its error code.
async fn commit_over_wire(c: &mut Client, group: &str, offset: i64) -> i16 {
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(
                vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ],
            ),
        ]);
    let r: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &commit).await;
    r.topics[0].partitions[0].error_code
}

/// OffsetFetch v8 of t-0: the group's error code, or the committed offset.
async fn fetch_over_wire(c: &mut Client, group: &str) -> Result<i64, i16> {
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s(group))).with_topics(Some(
            vec![
                offset_fetch_request::OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0]),
            ],
        )),
    ]);
    let r: OffsetFetchResponse = c.call(ApiKey::OffsetFetch, 8, &fetch).await;
    let g = &r.groups[0];
    if g.error_code != 0 {
        return Err(g.error_code);
    }
    Ok(g.topics[0].partitions[0].committed_offset)
}

/// The partition of `__consumer_offsets` holding `group`.
fn offsets_partition(b: &Broker, group: &str) -> Arc<Partition> {
    let topic = b.topic(OFFSETS_TOPIC).expect("offsets topic");
    topic.partition(partition_for(group, topic.partition_count())).expect("partition")
}

/// What the flusher does when an fdatasync of this log fails: the log is fenced, and
/// no sync of it may report success any more.
fn fail_next_fsync(p: &Partition) {
    p.with_log(|log| {
        log.sync_target().failed.store(true, Ordering::SeqCst);
        Ok(())
    })
    .expect("fence");
}

/// A commit made through the coordinator whose completion is not awaited: its record
/// is appended, its fsync not yet made (the task asking for it has not run).
fn commit_held(b: &Arc<Broker>, group: &str, offset: i64) -> jet::group::Completion<Vec<Result<(), ResponseError>>> {
    let who = Committer { member_id: "", group_instance_id: None, generation: -1, version: 8 };
    let offsets = vec![OffsetCommit { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: None }];
    b.groups.commit_offsets(b, group, &who, offsets)
}

#[tokio::test]
async fn offset_fetch_never_shows_a_commit_before_its_record_is_durable() {
    let tb = TestBroker::start(&[]).await;
    let mut c = tb.client().await;
    create_topic(&mut c, "t").await;
    assert_eq!(commit_over_wire(&mut c, "g", 5).await, 0);
    let p = offsets_partition(&tb.broker, "g");

    let held = commit_held(&tb.broker, "g", 9);
    let offsets = p.offsets().expect("offsets");
    let (hw, end) = (offsets.high_watermark, offsets.log_end);
    assert!(hw < end, "the commit of 9 is appended but not fsynced");
    let fetched = fetch_over_wire(&mut c, "g").await;
    // Whatever OffsetFetch answered, a commit it shows must be durable by then.
    if fetched == Ok(9) {
        assert!(
            p.high_watermark() >= end,
            "OffsetFetch returned offset 9 while its record was not fsynced (high watermark {} < {end})",
            p.high_watermark()
        );
    } else {
        assert_eq!(fetched, Ok(5));
    }
    drop(held);
    tb.stop().await;
}

#[tokio::test]
async fn a_commit_whose_fsync_fails_is_never_visible_and_the_log_stays_the_truth() {
    let tb = TestBroker::start(&[]).await;
    let mut c = tb.client().await;
    create_topic(&mut c, "t").await;
    assert_eq!(commit_over_wire(&mut c, "g", 5).await, 0);
    let p = offsets_partition(&tb.broker, "g");

    let held = commit_held(&tb.broker, "g", 9);
    fail_next_fsync(&p);
    let answer = held.finish(|e| vec![Err(e)]).await;
    assert!(answer[0].is_err(), "the commit of 9 failed: {answer:?}");

    // Never 9: an error while the coordinator rebuilds the group, then the previous 5.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let offset = loop {
        match fetch_over_wire(&mut c, "g").await {
            Ok(offset) => break offset,
            Err(code) => {
                assert!(
                    code == ResponseError::NotCoordinator.code()
                        || code == ResponseError::CoordinatorNotAvailable.code(),
                    "retriable error expected, got {code}"
                );
                assert!(tokio::time::Instant::now() < deadline, "the group never came back");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(offset, 5, "a commit whose record was never durable must not be visible");

    // The log recovers in place (no restart) and takes commits again; after a
    // restart the coordinator and the log agree.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while commit_over_wire(&mut c, "g", 7).await != 0 {
        assert!(tokio::time::Instant::now() < deadline, "commits never resumed after the failed fsync");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fetch_over_wire(&mut c, "g").await, Ok(7));
    drop(c);
    let dir = tb.stop().await;
    let tb = TestBroker::start_in(dir, &[]).await;
    let mut c = tb.client().await;
    assert_eq!(fetch_over_wire(&mut c, "g").await, Ok(7));
    tb.stop().await;
}

fn consumer_heartbeat(group: &str, member: &str) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(10_000)
        .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
        .with_topic_partitions(Some(vec![]))
}

/// ConsumerGroupDescribe of one group, retried while the coordinator rebuilds it.
async fn describe_when_available(c: &mut Client, group: &str) -> consumer_group_describe_response::DescribedGroup {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
        let mut r: ConsumerGroupDescribeResponse = c.call(ApiKey::ConsumerGroupDescribe, 1, &request).await;
        let g = r.groups.remove(0);
        if g.error_code == 0 {
            return g;
        }
        assert!(
            g.error_code == ResponseError::NotCoordinator.code()
                || g.error_code == ResponseError::CoordinatorNotAvailable.code(),
            "retriable error expected, got {}",
            g.error_code
        );
        assert!(tokio::time::Instant::now() < deadline, "the group never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_member_join_whose_fsync_fails_leaves_the_group_as_it_was() {
    let tb = TestBroker::start(&[]).await;
    let mut c = tb.client().await;
    create_topic(&mut c, "t").await;
    let joined: ConsumerGroupHeartbeatResponse =
        c.call(ApiKey::ConsumerGroupHeartbeat, 1, &consumer_heartbeat("cg", "m1")).await;
    assert_eq!((joined.error_code, joined.member_epoch), (0, 1), "{:?}", joined.error_message);
    let p = offsets_partition(&tb.broker, "cg");

    // A second member's join: the group epoch moves to 2 in memory and its records are
    // appended, but their fsync fails.
    let client = jet::group::consumer::ClientInfo { client_id: "c", client_host: "/127.0.0.1" };
    let held = tb.broker.groups.consumer_heartbeat(&tb.broker, &consumer_heartbeat("cg", "m2"), 1, &client);
    fail_next_fsync(&p);
    let answer = held.finish(|e| ConsumerGroupHeartbeatResponse::default().with_error_code(e.code())).await;
    assert_ne!(answer.error_code, 0, "the join whose records were not written must fail");

    // Nobody ever sees the member or the epoch the log does not hold.
    let described = describe_when_available(&mut c, "cg").await;
    let members: Vec<&str> = described.members.iter().map(|m| m.member_id.as_str()).collect();
    assert_eq!(members, vec!["m1"], "a member whose join record failed must not be in the group");
    assert_eq!(described.group_epoch, 1, "the group epoch of the failed join must not be visible");
    tb.stop().await;
}
