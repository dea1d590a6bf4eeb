"""The classic group state machine on the wire, where clients do not go.

Raw requests (kgroups.py on kproto's codec) at fixed versions: FindCoordinator v4, JoinGroup
v9, SyncGroup v5, Heartbeat v4, LeaveGroup v5, OffsetCommit v8, OffsetFetch v8, DescribeGroups
v5, ListGroups v5, DeleteGroups v2. Every expectation was checked against Apache Kafka 4.1.1.
"""

from __future__ import annotations

import pytest

import helpers
import kgroups
from kproto import Conn

REBALANCE_MS = 10_000


@pytest.fixture
def conn(group_broker):
    """conn() -> a new raw connection to the broker (closed at test end)."""
    opened = []

    def make() -> Conn:
        c = Conn(group_broker.host, group_broker.port)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


@pytest.fixture(scope="module")
def topic6(group_broker):
    return helpers.new_topic(group_broker.bootstrap, 6, "wire")


def find_coordinator(c: Conn, *groups: str) -> list[dict]:
    """FindCoordinator v4 for groups, polled until every key has a coordinator (Kafka creates
    __consumer_offsets on first use and answers COORDINATOR_NOT_AVAILABLE meanwhile)."""

    def ask():
        cs = c.call(kgroups.FIND_COORDINATOR_V4, key_type=0, coordinator_keys=list(groups))["coordinators"]
        return cs if all(x["error_code"] == 0 for x in cs) else None

    return helpers.wait_until(ask, 30, f"a coordinator for {groups}")


def join_fields(group: str, topic: str, member_id: str = "", instance_id: str | None = None) -> dict:
    return dict(
        group_id=group,
        session_timeout_ms=helpers.GROUP_SESSION_MS,
        rebalance_timeout_ms=REBALANCE_MS,
        member_id=member_id,
        group_instance_id=instance_id,
        protocol_type="consumer",
        protocols=[{"name": "range", "metadata": kgroups.consumer_subscription([topic])}],
        reason=None,
    )


def join(c: Conn, group: str, topic: str, member_id: str = "", instance_id: str | None = None) -> dict:
    return c.call(kgroups.JOIN_GROUP_V9, **join_fields(group, topic, member_id, instance_id))


def join_member(c: Conn, group: str, topic: str, instance_id: str | None = None) -> dict:
    """A successful join of a new member (dynamic members first get MEMBER_ID_REQUIRED)."""
    find_coordinator(c, group)
    r = join(c, group, topic, instance_id=instance_id)
    if r["error_code"] == kgroups.ERR_MEMBER_ID_REQUIRED:
        r = join(c, group, topic, member_id=r["member_id"], instance_id=instance_id)
    assert r["error_code"] == 0, r
    return r


def sync(c: Conn, group: str, member_id: str, generation: int, assignments: dict[str, dict] | None = None,
         instance_id: str | None = None) -> dict:
    return c.call(
        kgroups.SYNC_GROUP_V5,
        group_id=group,
        generation_id=generation,
        member_id=member_id,
        group_instance_id=instance_id,
        protocol_type="consumer",
        protocol_name="range",
        assignments=[{"member_id": m, "assignment": kgroups.consumer_assignment(a)} for m, a in (assignments or {}).items()],
    )


def heartbeat(c: Conn, group: str, member_id: str, generation: int, instance_id: str | None = None) -> int:
    return c.call(kgroups.HEARTBEAT_V4, group_id=group, generation_id=generation, member_id=member_id,
                  group_instance_id=instance_id)["error_code"]


def stable_member(c: Conn, group: str, topic: str, partitions: list[int], instance_id: str | None = None) -> dict:
    """Join as the only member, sync `partitions` of `topic` to itself; returns the JoinGroup response."""
    j = join_member(c, group, topic, instance_id)
    assert j["leader"] == j["member_id"] and j["generation_id"] >= 1, j
    s = sync(c, group, j["member_id"], j["generation_id"], {j["member_id"]: {topic: partitions}}, instance_id)
    assert s["error_code"] == 0, s
    assert kgroups.parse_consumer_assignment(s["assignment"]) == {topic: partitions}
    return j


def commit(c: Conn, group: str, topic: str, offsets: dict[int, tuple[int, str | None]], generation: int = -1,
           member_id: str = "") -> dict[int, int]:
    """OffsetCommit v8 -> {partition: error_code}; generation -1 + no member = an admin commit."""
    r = c.call(
        kgroups.OFFSET_COMMIT_V8,
        group_id=group,
        generation_id_or_member_epoch=generation,
        member_id=member_id,
        group_instance_id=None,
        topics=[{"name": topic, "partitions": [
            {"partition_index": p, "committed_offset": o, "committed_leader_epoch": -1, "committed_metadata": m}
            for p, (o, m) in offsets.items()]}],
    )
    return {p["partition_index"]: p["error_code"] for t in r["topics"] for p in t["partitions"]}


def leave(c: Conn, group: str, member_id: str) -> dict:
    return c.call(kgroups.LEAVE_GROUP_V5, group_id=group,
                  members=[{"member_id": member_id, "group_instance_id": None, "reason": "test"}])


def list_groups(c: Conn, states: list[str]) -> dict[str, dict]:
    r = c.call(kgroups.LIST_GROUPS_V5, states_filter=states, types_filter=[])
    assert r["error_code"] == 0, r
    return {g["group_id"]: g for g in r["groups"]}


def describe(c: Conn, group: str) -> dict:
    (g,) = c.call(kgroups.DESCRIBE_GROUPS_V5, groups=[group], include_authorized_operations=False)["groups"]
    return g


# ---------------------------------------------------------------- tests


def test_find_coordinator_v4_batched_keys(group_broker, conn):
    groups = [helpers.unique_group("wire-fc") for _ in range(3)]
    cs = find_coordinator(conn(), *groups)
    assert [x["key"] for x in cs] == groups
    for x in cs:
        assert (x["node_id"], x["host"], x["port"], x["error_code"]) == (1, group_broker.host, group_broker.port, 0), x


def test_join_without_member_id_then_sync_heartbeat_leave(conn, topic6):
    group = helpers.unique_group("wire-join")
    c = conn()
    find_coordinator(c, group)
    first = join(c, group, topic6)
    # JoinGroup v4+: a dynamic member without an id is handed one and must rejoin with it
    assert first["error_code"] == kgroups.ERR_MEMBER_ID_REQUIRED, first
    assert first["member_id"] and first["generation_id"] == -1 and first["members"] == [], first

    j = join(c, group, topic6, member_id=first["member_id"])
    assert j["error_code"] == 0, j
    assert (j["member_id"], j["leader"], j["generation_id"]) == (first["member_id"], first["member_id"], 1), j
    assert (j["protocol_type"], j["protocol_name"], j["skip_assignment"]) == ("consumer", "range", False), j
    assert [(m["member_id"], m["group_instance_id"]) for m in j["members"]] == [(j["member_id"], None)]
    assert j["members"][0]["metadata"] == kgroups.consumer_subscription([topic6])
    mid, gen = j["member_id"], j["generation_id"]

    # SyncGroup with a wrong generation is refused; the right one hands out the leader's plan
    assert sync(c, group, mid, gen + 1, {mid: {topic6: [0]}})["error_code"] == kgroups.ERR_ILLEGAL_GENERATION
    s = sync(c, group, mid, gen, {mid: {topic6: list(range(6))}})
    assert (s["error_code"], s["protocol_type"], s["protocol_name"]) == (0, "consumer", "range"), s
    assert kgroups.parse_consumer_assignment(s["assignment"]) == {topic6: list(range(6))}

    assert heartbeat(c, group, mid, gen) == 0
    assert heartbeat(c, group, "unknown-member", gen) == kgroups.ERR_UNKNOWN_MEMBER_ID
    assert heartbeat(c, group, mid, gen + 1) == kgroups.ERR_ILLEGAL_GENERATION

    d = describe(c, group)
    assert (d["error_code"], d["group_state"], d["protocol_type"], d["protocol_data"]) == (0, "Stable", "consumer", "range"), d
    assert [m["member_id"] for m in d["members"]] == [mid]
    assert kgroups.parse_consumer_assignment(d["members"][0]["member_assignment"]) == {topic6: list(range(6))}

    r = leave(c, group, mid)
    assert r["error_code"] == 0 and [(m["member_id"], m["error_code"]) for m in r["members"]] == [(mid, 0)], r
    assert describe(c, group)["group_state"] == "Empty"
    assert heartbeat(c, group, mid, gen) == kgroups.ERR_UNKNOWN_MEMBER_ID


def test_offset_commit_with_stale_generation(group_broker, conn, topic6):
    group = helpers.unique_group("wire-stale")
    c = conn()
    j1 = stable_member(c, group, topic6, [0, 1, 2, 3, 4, 5])
    mid, gen1 = j1["member_id"], j1["generation_id"]
    assert commit(c, group, topic6, {0: (10, "gen1")}, gen1, mid) == {0: 0}

    # the leader rejoining starts a new generation
    j2 = join(c, group, topic6, member_id=mid)
    assert j2["error_code"] == 0 and j2["generation_id"] == gen1 + 1, j2
    assert sync(c, group, mid, j2["generation_id"], {mid: {topic6: [0, 1, 2, 3, 4, 5]}})["error_code"] == 0

    assert commit(c, group, topic6, {0: (20, "stale")}, gen1, mid) == {0: kgroups.ERR_ILLEGAL_GENERATION}
    assert commit(c, group, topic6, {0: (20, "x")}, j2["generation_id"], "unknown-member") == {0: kgroups.ERR_UNKNOWN_MEMBER_ID}
    assert commit(c, group, topic6, {0: (30, "gen2")}, j2["generation_id"], mid) == {0: 0}
    assert helpers.committed_offsets(group_broker.bootstrap, group) == {(topic6, 0): 30}


def test_offset_fetch_v8_several_groups(conn, topic6):
    ga, gb, gnone = (helpers.unique_group(p) for p in ("wire-fa", "wire-fb", "wire-fnone"))
    c = conn()
    find_coordinator(c, ga, gb, gnone)
    assert commit(c, ga, topic6, {0: (5, "meta-a0"), 1: (7, None)}) == {0: 0, 1: 0}
    assert commit(c, gb, topic6, {3: (3, "")}) == {3: 0}

    r = c.call(kgroups.OFFSET_FETCH_V8, require_stable=True, groups=[
        {"group_id": ga, "topics": [{"name": topic6, "partition_indexes": [0, 1, 2]}]},
        {"group_id": gb, "topics": None},  # every committed partition
        {"group_id": gnone, "topics": None},
    ])
    by_group = {g["group_id"]: g for g in r["groups"]}
    assert [g["group_id"] for g in r["groups"]] == [ga, gb, gnone]
    assert all(g["error_code"] == 0 for g in r["groups"]), r

    def offsets(g):
        return {(t["name"], p["partition_index"]): (p["committed_offset"], p["metadata"], p["error_code"])
                for t in by_group[g]["topics"] for p in t["partitions"]}

    # a partition without a commit: offset -1, metadata "" (Kafka), no error
    assert offsets(ga) == {(topic6, 0): (5, "meta-a0", 0), (topic6, 1): (7, "", 0), (topic6, 2): (-1, "", 0)}
    assert offsets(gb) == {(topic6, 3): (3, "", 0)}
    assert offsets(gnone) == {}


def test_list_groups_states_filter(conn, topic6):
    stable, empty = helpers.unique_group("wire-ls-stable"), helpers.unique_group("wire-ls-empty")
    c = conn()
    stable_member(c, stable, topic6, [0])
    find_coordinator(c, empty)
    assert commit(c, empty, topic6, {0: (1, None)}) == {0: 0}

    s = list_groups(c, ["Stable"])
    assert stable in s and empty not in s, s.keys()
    assert (s[stable]["protocol_type"], s[stable]["group_state"], s[stable]["group_type"]) == ("consumer", "Stable", "classic")
    e = list_groups(c, ["Empty"])
    assert empty in e and stable not in e, e.keys()
    # a group that only ever had offsets committed has no protocol type
    assert (e[empty]["protocol_type"], e[empty]["group_state"], e[empty]["group_type"]) == ("", "Empty", "classic")
    both = list_groups(c, [])
    assert {stable, empty} <= both.keys()


def test_static_member_rejoin_keeps_assignment_without_rebalance(conn, topic6):
    group, instance = helpers.unique_group("wire-static"), "static-1"
    c = conn()
    find_coordinator(c, group)
    # a static member gets its member id at once: no MEMBER_ID_REQUIRED round trip
    j1 = join(c, group, topic6, instance_id=instance)
    assert j1["error_code"] == 0 and j1["member_id"], j1
    old, gen = j1["member_id"], j1["generation_id"]
    assert sync(c, group, old, gen, {old: {topic6: [1, 3, 5]}}, instance)["error_code"] == 0

    # the same instance comes back (a restarted process, no LeaveGroup): new member id, same generation
    j2 = join(c, group, topic6, instance_id=instance)
    assert j2["error_code"] == 0, j2
    new = j2["member_id"]
    assert new != old and j2["generation_id"] == gen, (j1, j2)
    s = sync(c, group, new, gen, None, instance)  # nothing to assign: the group did not rebalance
    assert s["error_code"] == 0, s
    assert kgroups.parse_consumer_assignment(s["assignment"]) == {topic6: [1, 3, 5]}

    # the replaced member id is fenced; the group still has one member, the new one
    assert heartbeat(c, group, old, gen, instance) == kgroups.ERR_FENCED_INSTANCE_ID
    assert heartbeat(c, group, new, gen, instance) == 0
    d = describe(c, group)
    assert d["group_state"] == "Stable" and [(m["member_id"], m["group_instance_id"]) for m in d["members"]] == [(new, instance)], d


def test_delete_groups_non_empty_then_empty(conn, topic6):
    group = helpers.unique_group("wire-del")
    c = conn()
    j = stable_member(c, group, topic6, [0])
    assert commit(c, group, topic6, {0: (4, None)}, j["generation_id"], j["member_id"]) == {0: 0}

    def delete() -> int:
        (res,) = c.call(kgroups.DELETE_GROUPS_V2, groups_names=[group])["results"]
        assert res["group_id"] == group
        return res["error_code"]

    assert delete() == kgroups.ERR_NON_EMPTY_GROUP
    assert leave(c, group, j["member_id"])["error_code"] == 0
    assert delete() == 0
    assert group not in list_groups(c, [])
    assert delete() == kgroups.ERR_GROUP_ID_NOT_FOUND
    # its offsets went with it
    r = c.call(kgroups.OFFSET_FETCH_V8, require_stable=True, groups=[{"group_id": group, "topics": None}])
    assert r["groups"][0]["topics"] == [] and r["groups"][0]["error_code"] == 0, r


def test_second_member_triggers_rebalance_with_join_and_sync_barriers(conn, topic6):
    group = helpers.unique_group("wire-rebalance")
    ca, cb = conn(), conn()
    a = stable_member(ca, group, topic6, list(range(6)))
    ma, gen = a["member_id"], a["generation_id"]

    # B's JoinGroup is held until every known member has rejoined
    find_coordinator(cb, group)
    first = join(cb, group, topic6)
    assert first["error_code"] == kgroups.ERR_MEMBER_ID_REQUIRED, first
    mb = first["member_id"]
    pending_b = cb.send(kgroups.JOIN_GROUP_V9, **join_fields(group, topic6, member_id=mb))
    helpers.wait_until(lambda: heartbeat(ca, group, ma, gen) == kgroups.ERR_REBALANCE_IN_PROGRESS, 30,
                       "A's heartbeat to report the rebalance")
    # while preparing the rebalance, the old generation can still commit
    assert commit(ca, group, topic6, {0: (1, None)}, gen, ma) == {0: 0}

    ja = join(ca, group, topic6, member_id=ma)
    jb = cb.recv(kgroups.JOIN_GROUP_V9, pending_b)
    assert ja["error_code"] == jb["error_code"] == 0, (ja, jb)
    assert ja["generation_id"] == jb["generation_id"] == gen + 1, (ja, jb)
    assert ja["leader"] == jb["leader"] == ma, "the member that stayed leads"
    assert sorted(m["member_id"] for m in ja["members"]) == sorted([ma, mb]) and jb["members"] == [], (ja, jb)
    gen2 = ja["generation_id"]
    # between join and sync the group is CompletingRebalance: commits are refused
    assert commit(ca, group, topic6, {0: (2, None)}, gen2, ma) == {0: kgroups.ERR_REBALANCE_IN_PROGRESS}

    # the follower's SyncGroup waits for the leader's assignment
    sync_sent = cb.send(kgroups.SYNC_GROUP_V5, group_id=group, generation_id=gen2, member_id=mb, group_instance_id=None,
                        protocol_type="consumer", protocol_name="range", assignments=[])
    sa = sync(ca, group, ma, gen2, {ma: {topic6: [0, 1, 2]}, mb: {topic6: [3, 4, 5]}})
    sb = cb.recv(kgroups.SYNC_GROUP_V5, sync_sent)
    assert sa["error_code"] == sb["error_code"] == 0, (sa, sb)
    assert kgroups.parse_consumer_assignment(sa["assignment"]) == {topic6: [0, 1, 2]}
    assert kgroups.parse_consumer_assignment(sb["assignment"]) == {topic6: [3, 4, 5]}
    assert heartbeat(ca, group, ma, gen2) == heartbeat(cb, group, mb, gen2) == 0
    assert commit(cb, group, topic6, {3: (5, None)}, gen2, mb) == {3: 0}
    assert describe(ca, group)["group_state"] == "Stable"
