"""DeleteRecords on a replicated topic with stock clients: confluent-kafka's
AdminClient.delete_records (the request kafka-delete-records.sh sends) trims partition 0 of a
replication-factor-3 topic on a 3-broker cluster (examples/cluster.sh) while an idempotent
acks=all producer has written to it. The answer's low watermark is the requested offset; through
every broker the partition's earliest offset is that offset, a consumer reading from the
beginning starts there and finds every acknowledged record from there on at its offset, and
kcat (Debian's librdkafka) reading from the beginning starts there too. Every wait is on a
condition."""

from __future__ import annotations


from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

import helpers
from test_cluster_clients import IdempotentProducer, bootstrap, cluster, create_rf3_topic, read_partition  # noqa: F401 (cluster: fixture)
from test_cluster_script import HOST, IDS, kafka_port


def test_delete_records_trims_a_replicated_partition_for_every_client(cluster):
    bs = bootstrap(cluster)
    topic = helpers.unique_topic("trimmed")
    create_rf3_topic(bs, topic)
    producer = IdempotentProducer(bs, topic)
    helpers.wait_until(lambda: len(producer.acked) >= 3000, 60, "3000 acknowledged records")
    acked = producer.stop()
    on_zero = sorted((off, v) for v, (part, off) in acked.items() if part == 0)
    cut = on_zero[len(on_zero) // 2][0]
    end = on_zero[-1][0] + 1

    admin = AdminClient({"bootstrap.servers": bs})
    (deleted,) = admin.delete_records([TopicPartition(topic, 0, cut)]).values()
    assert deleted.result(30).low_watermark == cut

    expected = [(off, v) for off, v in on_zero if off >= cut]
    for broker in IDS:
        one = f"{HOST}:{kafka_port(cluster.base, broker)}"
        c = Consumer({"bootstrap.servers": one, "group.id": "jet-watermarks"})
        try:
            low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        finally:
            c.close()
        assert low == cut and high >= end, (broker, low, high)
        log = read_partition(one, topic, 0, end, start=OFFSET_BEGINNING)
        assert log[0][0] == cut, f"through broker {broker} the partition starts at {log[0][0]}, not {cut}"
        at = dict(log)
        missing = [(off, v) for off, v in expected if at.get(off) != v]
        assert not missing, f"through broker {broker}: {len(missing)} acknowledged records missing, e.g. {missing[:3]}"

    kcat = helpers.run(["kcat", "-b", bs, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-c", "1", "-f", "%o\n"])
    assert kcat.stdout.decode().split() == [str(cut)], kcat.stdout
