"""Consumer groups across a broker restart (SIGKILL or SIGTERM, same data dir and port):
committed offsets survive, a member that keeps running stays the same member of a Stable
group, and consumers resume exactly from their commits."""

from __future__ import annotations

import pytest
from confluent_kafka import Consumer, ConsumerGroupState

import helpers

PARTITIONS = 4


def restart(broker, how: str) -> None:
    if how == "sigkill":
        broker.kill_and_restart()
    else:
        code = broker.stop()
        assert code == 0, f"jet exited {code} on SIGTERM\n{broker.log_since(0)}"
        broker.start()


def consumer(bootstrap: str, group: str) -> Consumer:
    # librdkafka gives up its member id once a session timeout passes without a successful
    # heartbeat, so the session must outlast the restart (Kafka's JVM via jet-shim takes ~10 s)
    conf = {"enable.auto.commit": False, "session.timeout.ms": 30000, "reconnect.backoff.max.ms": 500}
    return Consumer(helpers.ck_group_conf(bootstrap, group, **conf))


def consume_and_commit(c: Consumer, want: set[str], what: str) -> list[str]:
    """Poll until every value of `want` was read, committing synchronously after each batch."""
    got: list[str] = []

    def done() -> bool:
        before = len(got)
        helpers.ck_drain(c, got, timeout=0.1)
        if len(got) > before:
            c.commit(asynchronous=False)
        return want <= set(got)

    helpers.wait_until(done, 60, what)
    return got


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_group_offsets_and_membership_survive_restart(fresh_group_broker, how):
    b = fresh_group_broker
    topic = helpers.new_topic(b.bootstrap, PARTITIONS, "grp-restart")
    live_group, closed_group = helpers.unique_group("grp-live"), helpers.unique_group("grp-closed")
    everything = {(topic, p) for p in range(PARTITIONS)}
    first = helpers.produce_ids(b.bootstrap, topic, range(1000), PARTITIONS)

    live = consumer(b.bootstrap, live_group)
    live.subscribe([topic])
    consume_and_commit(live, first, "the live member to read the first batch")
    member_id = live.memberid()
    closed = consumer(b.bootstrap, closed_group)
    closed.subscribe([topic])
    consume_and_commit(closed, first, "the closed group's member to read the first batch")
    closed.close()
    for g in (live_group, closed_group):
        helpers.wait_commits_at_end(b.bootstrap, g, topic, PARTITIONS)

    restart(b, how)

    for g in (live_group, closed_group):
        helpers.wait_commits_at_end(b.bootstrap, g, topic, PARTITIONS)

    seen = {}

    def same_member_stable() -> bool:
        helpers.ck_drain(live, [])  # nothing new was produced yet
        d = helpers.describe_group(b.bootstrap, live_group)
        seen["group"] = (d.state, [m.member_id for m in d.members], helpers.member_partitions(d), live.memberid())
        return seen["group"][:3] == (ConsumerGroupState.STABLE, [member_id], [everything])

    try:
        helpers.wait_until(same_member_stable, 60, f"{live_group} to be Stable again with member {member_id}")
    except TimeoutError as e:
        raise AssertionError(f"{e}; last (state, members, assignments, client member id): {seen.get('group')}") from None
    assert live.memberid() == member_id

    second = helpers.produce_ids(b.bootstrap, topic, range(1000, 2000), PARTITIONS)
    got = consume_and_commit(live, second, "the live member to read the second batch")
    assert set(got) == second, f"the live member re-read {len(set(got) - second)} committed records after the restart"
    live.close()

    resumed = consumer(b.bootstrap, closed_group)
    resumed.subscribe([topic])
    try:
        got = consume_and_commit(resumed, second, "a new member of the closed group to read the second batch")
    finally:
        resumed.close()
    assert set(got) == second, f"the new member re-read {len(set(got) - second)} committed records"
    for g in (live_group, closed_group):
        helpers.wait_commits_at_end(b.bootstrap, g, topic, PARTITIONS)
