"""kcat -G (balanced consumer, Debian's librdkafka 2.0.2): two members share a topic."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import helpers

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat not installed (run compat-tests/run.sh)")

PARTITIONS = 6


def test_two_kcat_members_share_a_topic(group_broker, tmp_path):
    b = group_broker.bootstrap
    topic = helpers.new_topic(b, PARTITIONS, "kcat-g")
    group = helpers.unique_group("kcat-g")
    everything = {(topic, p) for p in range(PARTITIONS)}
    outs = [tmp_path / f"member{i}.out" for i in range(2)]
    procs = []
    try:
        for out in outs:
            with open(out, "wb") as f, open(out.with_suffix(".err"), "wb") as err:
                procs.append(subprocess.Popen(
                    [KCAT, "-b", b, "-G", group, topic, "-u", "-f", "%p %s\\n", "-o", "beginning",
                     "-X", f"session.timeout.ms={helpers.GROUP_SESSION_MS}",
                     "-X", f"heartbeat.interval.ms={helpers.GROUP_HEARTBEAT_MS}", "-X", "auto.commit.interval.ms=500"],
                    stdout=f, stderr=err))

        def two_members_split_the_topic():
            assert all(p.poll() is None for p in procs), "a kcat member exited"
            d = helpers.describe_group(b, group)
            parts = helpers.member_partitions(d)
            return len(parts) == 2 and all(parts) and helpers.is_partitioned(parts, everything)

        helpers.wait_until(two_members_split_the_topic, 60, "two kcat members to split the 6 partitions")
        produced = helpers.produce_ids(b, topic, range(3000), PARTITIONS)

        def read(out):
            return [ln.split(" ", 1) for ln in out.read_text().splitlines()]

        def consumed_everything():
            return produced <= {v for out in outs for _, v in read(out)}

        helpers.wait_until(consumed_everything, 60, "the two kcat members to consume every record")
        got = [read(out) for out in outs]
        helpers.assert_all_consumed(produced, [v for g in got for _, v in g], "kcat -G")
        owned = [{int(p) for p, _ in g} for g in got]
        assert all(owned) and not owned[0] & owned[1], f"partitions consumed per member: {owned}"
        helpers.wait_commits_at_end(b, group, topic, PARTITIONS)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(30)
