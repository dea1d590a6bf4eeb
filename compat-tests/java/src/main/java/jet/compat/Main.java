package jet.compat;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Properties;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DeleteRecordsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Java kafka-clients scenarios against a broker.
 * Usage: Main BOOTSTRAP SCENARIO. Exits 0 on success, 1 with "MISMATCH: ..." on stderr otherwise.
 */
public final class Main {
    static final long T = 30; // seconds for every admin future

    public static void main(String[] args) throws Exception {
        if (args.length < 2 || (args.length != 2 && !args[1].equals("cluster-failover") && !args[1].equals("reassign")
                && !args[1].equals("txn-checker"))) {
            System.err.println("usage: Main BOOTSTRAP SCENARIO | Main BOOTSTRAP cluster-failover TOPIC OUTFILE"
                    + " | Main BOOTSTRAP reassign TOPIC PARTITION B1,B2,..");
            System.exit(2);
        }
        String bootstrap = args[0];
        String scenario = args[1];
        try {
            switch (scenario) {
                case "produce-consume" -> produceConsume(bootstrap);
                case "admin-topics" -> adminTopics(bootstrap);
                case "describe-cluster" -> describeCluster(bootstrap);
                case "describe-configs" -> describeConfigs(bootstrap);
                case "create-partitions" -> createPartitions(bootstrap);
                case "delete-records" -> deleteRecords(bootstrap);
                case "codecs" -> codecs(bootstrap);
                case "compacted-topic" -> compactedTopic(bootstrap);
                case "transactions" -> Transactions.run(bootstrap);
                case "group-classic" -> Groups.consume(bootstrap, "classic", null);
                case "group-consumer-uniform" -> Groups.consume(bootstrap, "consumer", "uniform");
                case "group-consumer-range" -> Groups.consume(bootstrap, "consumer", "range");
                case "group-admin-classic" -> Groups.adminApis(bootstrap, "classic");
                case "group-admin-consumer" -> Groups.adminApis(bootstrap, "consumer");
                case "cluster-failover" -> {
                    if (args.length != 4) throw new IllegalArgumentException("usage: Main BOOTSTRAP cluster-failover TOPIC OUTFILE");
                    ClusterFailover.run(bootstrap, args[2], java.nio.file.Path.of(args[3]));
                }
                case "txn-checker" -> {
                    if (args.length != 7) throw new IllegalArgumentException("usage: Main BOOTSTRAP txn-checker TOPIC PARTITIONS WRITERS SEED OUTFILE");
                    TxnChecker.run(bootstrap, args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]), Long.parseLong(args[5]),
                            java.nio.file.Path.of(args[6]));
                }
                case "reassign" -> {
                    if (args.length != 5) throw new IllegalArgumentException("usage: Main BOOTSTRAP reassign TOPIC PARTITION B1,B2,..");
                    Reassign.run(bootstrap, args[2], Integer.parseInt(args[3]), Reassign.brokers(args[4]));
                }
                default -> throw new IllegalArgumentException("unknown scenario " + scenario);
            }
        } catch (AssertionError e) {
            System.err.println("MISMATCH: " + e.getMessage());
            e.printStackTrace();
            System.exit(1);
        } catch (Throwable e) {
            System.err.println("ERROR: " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println("OK " + scenario);
        System.exit(0);
    }

    // ------------------------------------------------------------------ helpers

    static void check(boolean cond, String fmt, Object... a) {
        if (!cond) throw new AssertionError(String.format(fmt, a));
    }

    static void eq(Object got, Object want, String what) {
        if (!Objects.equals(got, want)) throw new AssertionError(what + ": got " + got + " want " + want);
    }

    static void waitUntil(BooleanSupplier c, String what) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(T);
        while (System.nanoTime() < end) {
            if (c.getAsBoolean()) return;
            Thread.sleep(50); // poll interval
        }
        throw new AssertionError("timed out waiting for " + what);
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 60000);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 30000);
        return Admin.create(p);
    }

    /** Producer with DEFAULT settings (idempotence on, acks=all) apart from serializers. */
    static KafkaProducer<byte[], byte[]> producer(String bootstrap) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    /** Consumer without group.id: only assign/seek, no group coordination, no commits. */
    static KafkaConsumer<byte[], byte[]> consumer(String bootstrap) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        return new KafkaConsumer<>(p);
    }

    static String topicName(String prefix) {
        return prefix + "-" + UUID.randomUUID().toString().replace("-", "").substring(0, 12);
    }

    static void createTopic(Admin a, String name, int partitions, Map<String, String> configs) throws Exception {
        NewTopic nt = new NewTopic(name, partitions, (short) 1);
        if (configs != null) nt.configs(configs);
        a.createTopics(List.of(nt)).all().get(T, TimeUnit.SECONDS);
        waitUntil(() -> {
            try {
                TopicDescription d = a.describeTopics(List.of(name)).allTopicNames().get(T, TimeUnit.SECONDS).get(name);
                return d.partitions().size() == partitions && d.partitions().stream().allMatch(p -> p.leader() != null && p.leader().id() == 1);
            } catch (Exception e) {
                return false;
            }
        }, "topic " + name + " with leaders");
    }

    static List<ConsumerRecord<byte[], byte[]>> pollN(KafkaConsumer<byte[], byte[]> c, int n) {
        List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (out.size() < n) {
            check(System.nanoTime() < end, "consumed only %d of %d records before the deadline", out.size(), n);
            for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) out.add(r);
        }
        return out;
    }

    static byte[] b(String s) {
        return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    // ------------------------------------------------------------------ scenarios

    /** Every record of partition 0 up to the high watermark, read with assign/seek. */
    static List<ConsumerRecord<byte[], byte[]>> readAll(String bootstrap, String topic) {
        TopicPartition tp = new TopicPartition(topic, 0);
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
            c.assign(List.of(tp));
            c.seekToBeginning(List.of(tp));
            long end = c.endOffsets(List.of(tp)).get(tp);
            List<ConsumerRecord<byte[], byte[]>> out = new ArrayList<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (c.position(tp) < end) {
                check(System.nanoTime() < deadline, "read up to %d of %d before the deadline", c.position(tp), end);
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) out.add(r);
            }
            return out;
        }
    }

    /**
     * cleanup.policy=compact (issue 9): the latest value per key survives at its offset, a
     * tombstone goes after delete.retention.ms, a record without a key is refused.
     */
    static void compactedTopic(String bootstrap) throws Exception {
        String topic = topicName("java-compact");
        try (Admin a = admin(bootstrap)) {
            createTopic(a, topic, 1, Map.of("cleanup.policy", "compact", "segment.ms", "100",
                    "min.cleanable.dirty.ratio", "0.01", "delete.retention.ms", "1000"));
        }
        Map<String, Long> offsets = new HashMap<>();
        Map<String, String> values = new HashMap<>();
        try (KafkaProducer<byte[], byte[]> p = producer(bootstrap)) {
            for (int round = 0; round < 20; round++) {
                for (int k = 0; k < 5; k++) {
                    String key = "k" + k, value = "v" + round;
                    offsets.put(key, p.send(new ProducerRecord<>(topic, b(key), b(value))).get().offset());
                    values.put(key, value);
                }
            }
            p.send(new ProducerRecord<>(topic, b("k4"), null)).get(); // tombstone
            values.remove("k4");
            offsets.remove("k4");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(T);
            while (true) {
                p.send(new ProducerRecord<>(topic, b("tick"), b("x"))).get(); // rolls the active segment
                Map<String, Long> gotOffsets = new HashMap<>();
                Map<String, String> gotValues = new HashMap<>();
                int count = 0;
                for (ConsumerRecord<byte[], byte[]> r : readAll(bootstrap, topic)) {
                    if ("tick".equals(s(r.key()))) continue;
                    count++;
                    gotOffsets.put(s(r.key()), r.offset());
                    gotValues.put(s(r.key()), s(r.value()));
                }
                if (count == values.size() && gotOffsets.equals(offsets) && gotValues.equals(values)) break;
                check(System.nanoTime() < deadline, "not compacted: %d records, offsets %s values %s", count, gotOffsets, gotValues);
                Thread.sleep(100); // poll interval
            }
            try {
                p.send(new ProducerRecord<>(topic, null, b("no key"))).get();
                throw new AssertionError("a record without a key was accepted by a compacted topic");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof org.apache.kafka.common.InvalidRecordException,
                        "keyless record refused with %s", e.getCause());
            }
        }
        System.out.println("compacted topic: latest value per key at its offset, tombstone gone, keyless refused");
    }

    /** Default producer (idempotent, acks=all) + assign/seek consumer without group.id. */
    static void produceConsume(String bootstrap) throws Exception {
        String topic = topicName("java-pc");
        try (Admin a = admin(bootstrap)) {
            createTopic(a, topic, 2, null);
        }
        final int n = 2000;
        final long base = (System.currentTimeMillis() - 3_600_000L) / 1000 * 1000; // recent: inside retention
        List<List<ProducerRecord<byte[], byte[]>>> sent = List.of(new ArrayList<>(), new ArrayList<>());
        try (KafkaProducer<byte[], byte[]> p = producer(bootstrap)) {
            eq(p.metrics().isEmpty(), false, "producer metrics present");
            List<Future<RecordMetadata>> futs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int part = i % 2;
                List<Header> headers = List.of(new RecordHeader("i", b(Integer.toString(i))), new RecordHeader("nul", (byte[]) null));
                ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, part, base + i, i % 100 == 0 ? null : b("key-" + i),
                        b("java-value-" + i + "-" + "y".repeat(i % 50)), headers);
                sent.get(part).add(r);
                futs.add(p.send(r));
            }
            p.flush();
            for (int i = 0; i < n; i++) {
                RecordMetadata md = futs.get(i).get(T, TimeUnit.SECONDS);
                eq(md.partition(), i % 2, "partition of record " + i);
                eq(md.offset(), (long) (i / 2), "offset of record " + i);
                eq(md.timestamp(), base + i, "timestamp of record " + i);
            }
        }
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
            List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
            c.assign(tps);
            c.seekToBeginning(tps);
            eq(c.beginningOffsets(tps), Map.of(tps.get(0), 0L, tps.get(1), 0L), "beginningOffsets");
            eq(c.endOffsets(tps), Map.of(tps.get(0), (long) n / 2, tps.get(1), (long) n / 2), "endOffsets");
            List<ConsumerRecord<byte[], byte[]>> got = pollN(c, n);
            Map<Integer, List<ConsumerRecord<byte[], byte[]>>> byPart = new HashMap<>();
            for (ConsumerRecord<byte[], byte[]> r : got) byPart.computeIfAbsent(r.partition(), k -> new ArrayList<>()).add(r);
            for (int part = 0; part < 2; part++) {
                List<ConsumerRecord<byte[], byte[]>> rs = byPart.getOrDefault(part, List.of());
                eq(rs.size(), n / 2, "records in partition " + part);
                for (int off = 0; off < rs.size(); off++) {
                    ConsumerRecord<byte[], byte[]> r = rs.get(off);
                    ProducerRecord<byte[], byte[]> w = sent.get(part).get(off);
                    eq(r.offset(), (long) off, "offset");
                    check(Arrays.equals(r.key(), w.key()), "key at %d/%d: got %s want %s", part, off, s(r.key()), s(w.key()));
                    check(Arrays.equals(r.value(), w.value()), "value at %d/%d: got %s want %s", part, off, s(r.value()), s(w.value()));
                    eq(r.timestamp(), w.timestamp(), "timestamp at " + part + "/" + off);
                    eq(r.timestampType(), TimestampType.CREATE_TIME, "timestampType");
                    Header[] hs = r.headers().toArray();
                    eq(hs.length, 2, "header count at " + part + "/" + off);
                    eq(hs[0].key(), "i", "header 0 key");
                    check(Arrays.equals(hs[0].value(), w.headers().toArray()[0].value()), "header 0 value at %d/%d", part, off);
                    eq(hs[1].key(), "nul", "header 1 key");
                    check(hs[1].value() == null, "header 1 value should be null at %d/%d", part, off);
                }
            }
            // seek
            c.seek(tps.get(1), 777);
            c.pause(List.of(tps.get(0)));
            List<ConsumerRecord<byte[], byte[]>> mid = pollN(c, 5);
            eq(mid.get(0).partition(), 1, "partition after seek");
            eq(mid.get(0).offset(), 777L, "offset after seek");
            check(Arrays.equals(mid.get(0).value(), sent.get(1).get(777).value()), "value after seek");
            eq(c.position(tps.get(1)) >= 778, true, "position advanced");
            // offsetsForTimes: record i has ts base+i; partition 0 holds even i -> ts base+101 => first >= is i=102 -> offset 51
            var oft = c.offsetsForTimes(Map.of(tps.get(0), base + 101));
            eq(oft.get(tps.get(0)).offset(), 51L, "offsetsForTimes offset");
            eq(oft.get(tps.get(0)).timestamp(), base + 102, "offsetsForTimes timestamp");
        }
    }

    /** Default producer settings plus compression.type, for every codec; consumer reads back exactly. */
    static void codecs(String bootstrap) throws Exception {
        for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
            String topic = topicName("java-" + codec);
            try (Admin a = admin(bootstrap)) {
                createTopic(a, topic, 1, null);
            }
            Properties props = new Properties();
            props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
            props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            props.put(ProducerConfig.LINGER_MS_CONFIG, 20);
            final int n = 3000;
            final long base = (System.currentTimeMillis() - 3_600_000L) / 1000 * 1000;
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(props)) {
                List<Future<RecordMetadata>> futs = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    futs.add(p.send(new ProducerRecord<>(topic, 0, base + i, b("k" + i), b(codec + "-" + i + "-" + "c".repeat(i % 80)),
                            List.of(new RecordHeader("i", b(Integer.toString(i)))))));
                }
                p.flush();
                for (int i = 0; i < n; i++) eq(futs.get(i).get(T, TimeUnit.SECONDS).offset(), (long) i, codec + " offset of record " + i);
            }
            try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
                TopicPartition tp = new TopicPartition(topic, 0);
                c.assign(List.of(tp));
                c.seek(tp, 0);
                List<ConsumerRecord<byte[], byte[]>> rs = pollN(c, n);
                for (int i = 0; i < n; i++) {
                    ConsumerRecord<byte[], byte[]> r = rs.get(i);
                    eq(r.offset(), (long) i, codec + " offset");
                    eq(s(r.key()), "k" + i, codec + " key");
                    eq(s(r.value()), codec + "-" + i + "-" + "c".repeat(i % 80), codec + " value");
                    eq(r.timestamp(), base + i, codec + " timestamp");
                    eq(s(r.headers().lastHeader("i").value()), Integer.toString(i), codec + " header");
                }
            }
        }
    }

    static void adminTopics(String bootstrap) throws Exception {
        try (Admin a = admin(bootstrap)) {
            String t1 = topicName("java-adm"), t2 = topicName("java-adm");
            a.createTopics(List.of(new NewTopic(t1, 3, (short) 1), new NewTopic(t2, 1, (short) 1).configs(Map.of("retention.ms", "3600000"))))
                    .all().get(T, TimeUnit.SECONDS);
            waitUntil(() -> {
                try {
                    return a.listTopics().names().get(T, TimeUnit.SECONDS).containsAll(List.of(t1, t2));
                } catch (Exception e) {
                    return false;
                }
            }, "listTopics to show both topics");
            Map<String, TopicDescription> d = a.describeTopics(List.of(t1, t2)).allTopicNames().get(T, TimeUnit.SECONDS);
            eq(d.get(t1).name(), t1, "name");
            eq(d.get(t1).isInternal(), false, "internal");
            eq(d.get(t1).partitions().size(), 3, "t1 partitions");
            eq(d.get(t2).partitions().size(), 1, "t2 partitions");
            check(d.get(t1).topicId() != null && !d.get(t1).topicId().toString().equals("AAAAAAAAAAAAAAAAAAAAAA"), "topic id should be set, got %s", d.get(t1).topicId());
            for (int i = 0; i < 3; i++) {
                TopicPartitionInfo pi = d.get(t1).partitions().get(i);
                eq(pi.partition(), i, "partition index");
                eq(pi.leader().id(), 1, "leader");
                eq(pi.replicas().size(), 1, "replicas");
                eq(pi.isr().size(), 1, "isr");
            }
            // duplicate -> TopicExistsException
            try {
                a.createTopics(List.of(new NewTopic(t1, 1, (short) 1))).all().get(T, TimeUnit.SECONDS);
                throw new AssertionError("creating an existing topic succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof TopicExistsException, "want TopicExistsException, got %s", e.getCause());
            }
            // describe unknown -> UnknownTopicOrPartitionException
            try {
                a.describeTopics(List.of(topicName("java-none"))).allTopicNames().get(T, TimeUnit.SECONDS);
                throw new AssertionError("describing an unknown topic succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof UnknownTopicOrPartitionException, "want UnknownTopicOrPartitionException, got %s", e.getCause());
            }
            a.deleteTopics(List.of(t1, t2)).all().get(T, TimeUnit.SECONDS);
            waitUntil(() -> {
                try {
                    Set<String> names = a.listTopics().names().get(T, TimeUnit.SECONDS);
                    return !names.contains(t1) && !names.contains(t2);
                } catch (Exception e) {
                    return false;
                }
            }, "deleted topics to disappear");
        }
    }

    static void describeCluster(String bootstrap) throws Exception {
        String[] hp = bootstrap.split(":");
        try (Admin a = admin(bootstrap)) {
            DescribeClusterResult r = a.describeCluster();
            Collection<Node> nodes = r.nodes().get(T, TimeUnit.SECONDS);
            eq(nodes.size(), 1, "node count");
            Node n = nodes.iterator().next();
            eq(n.id(), 1, "node id");
            eq(n.host(), hp[0], "node host");
            eq(n.port(), Integer.parseInt(hp[1]), "node port");
            Node ctrl = r.controller().get(T, TimeUnit.SECONDS);
            check(ctrl != null && !ctrl.isEmpty(), "controller should be a node, got %s", ctrl);
            String cid = r.clusterId().get(T, TimeUnit.SECONDS);
            check(cid != null && !cid.isEmpty(), "clusterId should be non-empty, got %s", cid);
        }
    }

    static void describeConfigs(String bootstrap) throws Exception {
        try (Admin a = admin(bootstrap)) {
            String t = topicName("java-cfg");
            createTopic(a, t, 1, Map.of("retention.ms", "7200000", "segment.bytes", "10485760"));
            ConfigResource tr = new ConfigResource(ConfigResource.Type.TOPIC, t);
            ConfigResource br = new ConfigResource(ConfigResource.Type.BROKER, "1");
            Map<ConfigResource, Config> cfg = a.describeConfigs(List.of(tr, br)).all().get(T, TimeUnit.SECONDS);
            Config tc = cfg.get(tr);
            ConfigEntry ret = tc.get("retention.ms");
            check(ret != null, "topic config retention.ms missing; have %s", tc.entries());
            eq(ret.value(), "7200000", "retention.ms");
            eq(ret.source(), ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG, "retention.ms source");
            ConfigEntry seg = tc.get("segment.bytes");
            check(seg != null, "topic config segment.bytes missing");
            eq(seg.value(), "10485760", "segment.bytes");
            ConfigEntry cp = tc.get("cleanup.policy");
            check(cp != null, "topic config cleanup.policy (default) missing; have %s", tc.entries());
            eq(cp.value(), "delete", "cleanup.policy default");
            Config bc = cfg.get(br);
            check(!bc.entries().isEmpty(), "broker config is empty");
            check(bc.get("num.partitions") != null, "broker config num.partitions missing; have %s", bc.entries());
            eq(bc.get("num.partitions").value(), "1", "num.partitions");
        }
    }

    static void createPartitions(String bootstrap) throws Exception {
        try (Admin a = admin(bootstrap)) {
            String t = topicName("java-cp");
            createTopic(a, t, 1, null);
            a.createPartitions(Map.of(t, NewPartitions.increaseTo(3))).all().get(T, TimeUnit.SECONDS);
            waitUntil(() -> {
                try {
                    return a.describeTopics(List.of(t)).allTopicNames().get(T, TimeUnit.SECONDS).get(t).partitions().size() == 3;
                } catch (Exception e) {
                    return false;
                }
            }, "3 partitions");
            // decreasing must fail
            try {
                a.createPartitions(Map.of(t, NewPartitions.increaseTo(2))).all().get(T, TimeUnit.SECONDS);
                throw new AssertionError("decreasing partitions succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof org.apache.kafka.common.errors.InvalidPartitionsException,
                        "want InvalidPartitionsException, got %s", e.getCause());
            }
            // the new partition is usable
            try (KafkaProducer<byte[], byte[]> p = producer(bootstrap)) {
                RecordMetadata md = p.send(new ProducerRecord<>(t, 2, b("k"), b("in-new-partition"))).get(T, TimeUnit.SECONDS);
                eq(md.partition(), 2, "partition");
                eq(md.offset(), 0L, "offset");
            }
            try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
                TopicPartition tp = new TopicPartition(t, 2);
                c.assign(List.of(tp));
                c.seek(tp, 0);
                ConsumerRecord<byte[], byte[]> r = pollN(c, 1).get(0);
                eq(s(r.value()), "in-new-partition", "value");
            }
        }
    }

    static void deleteRecords(String bootstrap) throws Exception {
        try (Admin a = admin(bootstrap)) {
            String t = topicName("java-dr");
            createTopic(a, t, 1, null);
            TopicPartition tp = new TopicPartition(t, 0);
            try (KafkaProducer<byte[], byte[]> p = producer(bootstrap)) {
                for (int i = 0; i < 100; i++) p.send(new ProducerRecord<>(t, 0, null, b("r" + i)));
                p.flush();
            }
            DeleteRecordsResult r = a.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(40)));
            long low = r.lowWatermarks().get(tp).get(T, TimeUnit.SECONDS).lowWatermark();
            eq(low, 40L, "lowWatermark after deleteRecords(40)");
            try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap)) {
                c.assign(List.of(tp));
                eq(c.beginningOffsets(List.of(tp)).get(tp), 40L, "beginningOffsets");
                eq(c.endOffsets(List.of(tp)).get(tp), 100L, "endOffsets");
                c.seekToBeginning(List.of(tp));
                eq(c.position(tp), 40L, "position after seekToBeginning");
                List<ConsumerRecord<byte[], byte[]>> rs = pollN(c, 60);
                eq(rs.get(0).offset(), 40L, "first offset");
                eq(s(rs.get(0).value()), "r40", "first value");
                eq(rs.get(59).offset(), 99L, "last offset");
            }
            // deleting beyond the high watermark fails with OffsetOutOfRange
            try {
                a.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(1000))).all().get(T, TimeUnit.SECONDS);
                throw new AssertionError("deleteRecords past the high watermark succeeded");
            } catch (ExecutionException e) {
                check(e.getCause() instanceof org.apache.kafka.common.errors.OffsetOutOfRangeException,
                        "want OffsetOutOfRangeException, got %s", e.getCause());
            }
        }
    }

    @SuppressWarnings("unused")
    private static <T> List<T> list(Collection<T> c) {
        return Collections.unmodifiableList(new ArrayList<>(c));
    }
}
