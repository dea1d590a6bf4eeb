use bytes::Bytes;
use kafka_protocol::ResponseError;

use super::*;

fn cfg(delay: i32) -> ClassicConfig {
    ClassicConfig {
        min_session_timeout_ms: 6_000,
        max_session_timeout_ms: 1_800_000,
        initial_rebalance_delay_ms: delay,
        max_size: usize::MAX,
    }
}

fn req(member_id: &str, instance: Option<&str>, protocols: &[(&str, &str)]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: instance.map(str::to_string),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: protocols.iter().map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m.as_bytes()))).collect(),
        require_known_member_id: true,
    }
}

const RANGE: &[(&str, &str)] = &[("range", "sub")];

/// Joins, answering all effects; returns the outcome if it is ready.
fn join(g: &mut ClassicGroup, r: JoinRequest, now: i64) -> (Reply<JoinOutcome>, Effects) {
    let mut effects = Effects::default();
    let reply = g.join(r, &cfg(0), now, &mut effects);
    (reply, effects)
}

fn now_outcome(reply: Reply<JoinOutcome>) -> JoinOutcome {
    match reply {
        Reply::Now(o) => o,
        Reply::Wait(_) => panic!("join should have been answered at once"),
    }
}

/// Delivers `effects` and reads the answer of a parked request.
fn answered<T>(reply: Reply<T>, effects: Effects) -> T {
    effects.deliver();
    match reply {
        Reply::Now(o) => o,
        Reply::Wait(mut rx) => rx.try_recv().expect("parked request answered"),
    }
}

/// The two-step join of a new dynamic member, completing a rebalance on its own.
fn join_alone(g: &mut ClassicGroup, now: i64) -> JoinOutcome {
    let first = now_outcome(join(g, req("", None, RANGE), now).0);
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    let (reply, effects) = join(g, req(&first.member_id, None, RANGE), now);
    answered(reply, effects)
}

fn sync(g: &mut ClassicGroup, member: &str, generation: i32, assignments: Vec<(String, Bytes)>) -> SyncOutcome {
    let mut effects = Effects::default();
    let req = SyncRequest {
        member_id: member.to_string(),
        generation,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
        ..Default::default()
    };
    let reply = g.sync(req, 0, &mut effects);
    answered(reply, effects)
}

#[test]
fn first_member_joins_in_two_steps_and_leads() {
    let mut g = ClassicGroup::new("g", 0);
    let joined = join_alone(&mut g, 0);
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation, 1);
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(g.state(), ClassicState::CompletingRebalance);
    let synced = sync(&mut g, &joined.member_id, 1, vec![(joined.member_id.clone(), Bytes::from_static(b"a"))]);
    assert_eq!(synced.assignment, Bytes::from_static(b"a"));
    assert_eq!(g.state(), ClassicState::Stable);
    assert_eq!(g.heartbeat(&joined.member_id, None, 1, 1), Ok(()));
}

#[test]
fn a_second_member_triggers_a_rebalance_that_fences_the_old_generation() {
    let mut g = ClassicGroup::new("g", 0);
    let a = join_alone(&mut g, 0);
    sync(&mut g, &a.member_id, 1, vec![]);
    let b_id = now_outcome(join(&mut g, req("", None, RANGE), 1).0).member_id;
    let (b_reply, _) = join(&mut g, req(&b_id, None, RANGE), 1);
    assert!(matches!(b_reply, Reply::Wait(_)));
    assert_eq!(g.state(), ClassicState::PreparingRebalance);
    assert_eq!(g.heartbeat(&a.member_id, None, 1, 2), Err(ResponseError::RebalanceInProgress));
    // Commits of the old generation are still accepted while members rejoin.
    assert_eq!(g.validate_offset_commit(&a.member_id, None, 1), Ok(()));
    let (a_reply, effects) = join(&mut g, req(&a.member_id, None, RANGE), 3);
    let a2 = answered(a_reply, effects);
    let b2 = answered(b_reply, Effects::default());
    assert_eq!((a2.generation, b2.generation), (2, 2));
    assert_eq!(a2.leader, a.member_id, "the leader stays the leader");
    assert_eq!((a2.members.len(), b2.members.len()), (2, 0), "only the leader gets the member list");
    assert_eq!(sync(&mut g, &b_id, 1, vec![]).error, Some(ResponseError::IllegalGeneration));
    assert_eq!(g.validate_offset_commit(&a.member_id, None, 1), Err(ResponseError::IllegalGeneration));
    assert_eq!(g.validate_offset_commit(&a.member_id, None, 2), Err(ResponseError::RebalanceInProgress));
    // The follower's sync waits for the leader's.
    let mut effects = Effects::default();
    let b_sync = g.sync(SyncRequest { member_id: b_id.clone(), generation: 2, ..Default::default() }, 4, &mut effects);
    assert!(matches!(b_sync, Reply::Wait(_)));
    let assignments = vec![(a.member_id.clone(), Bytes::from_static(b"p0")), (b_id.clone(), Bytes::from_static(b"p1"))];
    let a_sync = sync(&mut g, &a.member_id, 2, assignments);
    assert_eq!(a_sync.assignment, Bytes::from_static(b"p0"));
    assert_eq!(answered(b_sync, effects).assignment, Bytes::from_static(b"p1"));
    assert_eq!(g.validate_offset_commit(&b_id, None, 2), Ok(()));
}

#[test]
fn concurrent_joins_complete_together_when_the_last_member_rejoins() {
    let mut g = ClassicGroup::new("g", 0);
    let mut replies = Vec::new();
    let mut effects = Effects::default();
    for i in 0..3 {
        let mut r = req("", None, RANGE);
        r.require_known_member_id = false;
        r.client_id = format!("c{i}");
        replies.push(g.join(r, &cfg(0), 0, &mut effects));
    }
    effects.deliver();
    let mut replies = replies.into_iter();
    // Alone, the first member completed generation 1 at once; the others joining while
    // that generation completes start generation 2, which waits for the first to rejoin.
    let first = answered(replies.next().expect("first"), Effects::default());
    assert_eq!(first.generation, 1);
    assert_eq!(g.state(), ClassicState::PreparingRebalance);
    let mut waiting: Vec<_> = replies.collect();
    for r in &mut waiting {
        let Reply::Wait(rx) = r else { panic!("the others wait") };
        assert!(rx.try_recv().is_err());
    }
    let mut r = req(&first.member_id, None, RANGE);
    r.client_id = "c0".into();
    let (again, effects) = join(&mut g, r, 1);
    effects.deliver();
    let mut all = vec![answered(again, Effects::default())];
    all.extend(waiting.into_iter().map(|r| answered(r, Effects::default())));
    assert!(all.iter().all(|o| o.error.is_none() && o.generation == 2));
    assert_eq!(all.iter().filter(|o| o.members.len() == 3).count(), 1, "exactly one leader");
    assert_eq!(g.state(), ClassicState::CompletingRebalance);
}

#[test]
fn members_that_do_not_rejoin_in_time_are_removed() {
    let mut g = ClassicGroup::new("g", 0);
    let a = join_alone(&mut g, 0);
    sync(&mut g, &a.member_id, 1, vec![]);
    let b_id = now_outcome(join(&mut g, req("", None, RANGE), 1).0).member_id;
    let (b_reply, _) = join(&mut g, req(&b_id, None, RANGE), 1);
    // a keeps heartbeating but never rejoins: at the rebalance timeout it is dropped.
    let deadline = g.next_deadline().expect("a deadline");
    assert!(deadline <= 1 + 30_000);
    let mut effects = Effects::default();
    g.on_deadline(&cfg(0), 1 + 30_000, &mut effects);
    let b2 = answered(b_reply, effects);
    assert_eq!(b2.generation, 2);
    assert_eq!(b2.leader, b_id, "the remaining member leads");
    assert_eq!(g.member_count(), 1);
    assert_eq!(g.heartbeat(&a.member_id, None, 2, 30_002), Err(ResponseError::UnknownMemberId));
}

#[test]
fn session_expiry_removes_a_member_and_the_group_empties() {
    let mut g = ClassicGroup::new("g", 0);
    let a = join_alone(&mut g, 0);
    sync(&mut g, &a.member_id, 1, vec![]);
    assert_eq!(g.next_deadline(), Some(10_000));
    let mut effects = Effects::default();
    g.on_deadline(&cfg(0), 10_000, &mut effects);
    assert_eq!(g.state(), ClassicState::Empty);
    assert_eq!(g.generation(), 2);
    assert!(effects.persist, "the empty generation is persisted");
    assert_eq!(g.next_deadline(), None);
}

#[test]
fn static_member_rejoining_keeps_its_assignment_without_a_rebalance() {
    let mut g = ClassicGroup::new("g", 0);
    let (reply, effects) = join(&mut g, req("", Some("i1"), RANGE), 0);
    let a = answered(reply, effects);
    assert_eq!(a.error, None, "static members skip MEMBER_ID_REQUIRED");
    sync(&mut g, &a.member_id, 1, vec![(a.member_id.clone(), Bytes::from_static(b"mine"))]);
    // The process restarts: same instance id, no member id.
    let (reply, effects) = join(&mut g, req("", Some("i1"), RANGE), 5);
    assert!(effects.persist);
    let again = answered(reply, effects);
    assert_eq!(again.generation, 1, "no rebalance");
    assert_ne!(again.member_id, a.member_id);
    assert!(again.skip_assignment, "a rejoining static leader must not reassign");
    assert_eq!(g.state(), ClassicState::Stable);
    let mut effects = Effects::default();
    let req = SyncRequest {
        member_id: again.member_id.clone(),
        group_instance_id: Some("i1".into()),
        generation: 1,
        ..Default::default()
    };
    let synced = answered(g.sync(req, 6, &mut effects), effects);
    assert_eq!(synced.assignment, Bytes::from_static(b"mine"));
    assert_eq!(g.heartbeat(&a.member_id, Some("i1"), 1, 7), Err(ResponseError::FencedInstanceId));
    // Leaving by instance id.
    let mut effects = Effects::default();
    let left = g.leave(
        &[LeaveMember { member_id: String::new(), group_instance_id: Some("i1".into()) }],
        &cfg(0),
        8,
        &mut effects,
    );
    assert_eq!(left, vec![Ok(())]);
    assert_eq!(g.state(), ClassicState::Empty);
}

#[test]
fn leaving_members_and_unknown_members() {
    let mut g = ClassicGroup::new("g", 0);
    let a = join_alone(&mut g, 0);
    sync(&mut g, &a.member_id, 1, vec![]);
    let mut effects = Effects::default();
    let results = g.leave(
        &[
            LeaveMember { member_id: "nobody".into(), group_instance_id: None },
            LeaveMember { member_id: a.member_id.clone(), group_instance_id: None },
        ],
        &cfg(0),
        1,
        &mut effects,
    );
    assert_eq!(results, vec![Err(ResponseError::UnknownMemberId), Ok(())]);
    assert_eq!(g.state(), ClassicState::Empty);
    assert_eq!(g.validate_offset_commit("", None, -1), Ok(()), "standalone commits to an empty group");
    assert_eq!(g.heartbeat(&a.member_id, None, 2, 2), Err(ResponseError::UnknownMemberId));
}

#[test]
fn standalone_commits_are_refused_while_members_own_partitions() {
    let mut g = ClassicGroup::new("g", 0);
    let a = join_alone(&mut g, 0);
    sync(&mut g, &a.member_id, 1, vec![]);
    assert_eq!(g.validate_offset_commit("", None, -1), Err(ResponseError::UnknownMemberId));
    assert_eq!(g.validate_offset_commit("stranger", None, 1), Err(ResponseError::UnknownMemberId));
}

#[test]
fn the_initial_delay_waits_for_more_members() {
    let mut g = ClassicGroup::new("g", 0);
    let mut effects = Effects::default();
    let mut r = req("", None, RANGE);
    r.require_known_member_id = false;
    let first = g.join(r.clone(), &cfg(3_000), 0, &mut effects);
    assert!(matches!(first, Reply::Wait(_)), "held for the initial delay");
    let second = g.join(r, &cfg(3_000), 1_000, &mut effects);
    assert_eq!(g.next_deadline(), Some(4_000), "a new member extends the delay");
    g.on_deadline(&cfg(3_000), 4_000, &mut effects);
    effects.deliver();
    let (a, b) = (answered(first, Effects::default()), answered(second, Effects::default()));
    assert_eq!((a.generation, b.generation), (1, 1));
    assert_eq!(a.members.len() + b.members.len(), 2);
}

#[test]
fn inconsistent_protocols_are_refused() {
    let mut g = ClassicGroup::new("g", 0);
    join_alone(&mut g, 0);
    let other = now_outcome(join(&mut g, req("", None, &[("roundrobin", "x")]), 1).0);
    assert_eq!(other.error, Some(ResponseError::InconsistentGroupProtocol));
    let mut bad = req("", None, RANGE);
    bad.session_timeout_ms = 10;
    assert_eq!(now_outcome(join(&mut g, bad, 1).0).error, Some(ResponseError::InvalidSessionTimeout));
}

#[test]
fn protocol_selection_follows_member_votes() {
    let mut g = ClassicGroup::new("g", 0);
    let mut effects = Effects::default();
    let mut r1 = req("", None, &[("range", "1"), ("sticky", "1")]);
    r1.require_known_member_id = false;
    let mut r2 = req("", None, &[("sticky", "2"), ("range", "2")]);
    r2.require_known_member_id = false;
    let mut r3 = req("", None, &[("sticky", "3")]);
    r3.require_known_member_id = false;
    let cfg = cfg(3_000);
    let _w1 = g.join(r1, &cfg, 0, &mut effects);
    let _w2 = g.join(r2, &cfg, 0, &mut effects);
    let _w3 = g.join(r3, &cfg, 0, &mut effects);
    g.on_deadline(&cfg, 3_000, &mut effects);
    assert_eq!(g.protocol_name(), Some("sticky"));
}

#[test]
fn persisted_metadata_restores_a_stable_group() {
    let mut g = ClassicGroup::new("g", 0);
    let (reply, effects) = join(&mut g, req("", Some("i1"), RANGE), 0);
    let a = answered(reply, effects);
    sync(&mut g, &a.member_id, 1, vec![(a.member_id.clone(), Bytes::from_static(b"x"))]);
    let value = g.metadata_value();
    let restored = ClassicGroup::restore("g", value.clone(), 100);
    assert_eq!(restored.state(), ClassicState::Stable);
    assert_eq!(restored.generation(), 1);
    assert_eq!(restored.metadata_value(), value);
    let mut restored = restored;
    assert_eq!(restored.heartbeat(&a.member_id, Some("i1"), 1, 101), Ok(()));
}

#[test]
fn subscription_topics_are_read_from_consumer_protocol_metadata() {
    let mut w = crate::group::records::Writer::default();
    w.i16(1);
    w.array_len(2);
    w.string("orders");
    w.string("payments");
    w.bytes(b"");
    assert_eq!(subscription_topics(&w.finish()), vec!["orders".to_string(), "payments".to_string()]);
    assert!(subscription_topics(b"\x00").is_empty());
}
