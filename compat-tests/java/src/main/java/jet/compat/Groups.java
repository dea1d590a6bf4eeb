package jet.compat;

import static jet.compat.Main.T;
import static jet.compat.Main.admin;
import static jet.compat.Main.b;
import static jet.compat.Main.check;
import static jet.compat.Main.createTopic;
import static jet.compat.Main.eq;
import static jet.compat.Main.producer;
import static jet.compat.Main.s;
import static jet.compat.Main.topicName;
import static jet.compat.Main.waitUntil;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.ConsumerGroupListing;
import org.apache.kafka.clients.admin.ListConsumerGroupsOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.GroupState;
import org.apache.kafka.common.GroupType;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.GroupIdNotFoundException;
import org.apache.kafka.common.errors.GroupNotEmptyException;
import org.apache.kafka.common.errors.GroupSubscribedToTopicException;
import org.apache.kafka.common.errors.UnknownMemberIdException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/** Consumer-group scenarios: KafkaConsumer with group.protocol=classic|consumer, Admin group APIs. */
final class Groups {
    private Groups() {}

    /** One subscribing KafkaConsumer on its own thread; commitSync after every non-empty poll. */
    static final class Member implements AutoCloseable {
        private final Thread thread;
        private volatile boolean stop;
        private volatile Throwable error;

        Member(String bootstrap, String group, String topic, String protocol, String assignor, Set<String> out) {
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            if (protocol.equals("classic")) { // with group.protocol=consumer these are the broker's to set
                p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
                p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
            }
            if (assignor != null) p.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor);
            thread = new Thread(() -> {
                try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
                    c.subscribe(List.of(topic));
                    while (!stop) {
                        ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(100));
                        for (ConsumerRecord<byte[], byte[]> r : rs) out.add(s(r.value()));
                        if (!rs.isEmpty()) c.commitSync();
                    }
                } catch (Throwable t) {
                    error = t;
                }
            });
            thread.start();
        }

        void check() {
            if (error != null) throw new AssertionError("group member failed: " + error, error);
        }

        @Override
        public void close() throws InterruptedException {
            stop = true;
            thread.join(TimeUnit.SECONDS.toMillis(60));
            Main.check(!thread.isAlive(), "a group member did not stop within 60 s");
            check();
        }
    }

    static <V> V get(Future<V> f) throws Exception {
        return f.get(T, TimeUnit.SECONDS);
    }

    /** Produce values from..to-1, value i to partition i % partitions; all acknowledged. */
    static Set<String> produceIds(String bootstrap, String topic, int from, int to, int partitions) throws Exception {
        Set<String> out = new HashSet<>();
        try (KafkaProducer<byte[], byte[]> p = producer(bootstrap)) {
            List<Future<RecordMetadata>> futs = new ArrayList<>();
            for (int i = from; i < to; i++) {
                futs.add(p.send(new ProducerRecord<>(topic, i % partitions, null, b(Integer.toString(i)))));
                out.add(Integer.toString(i));
            }
            p.flush();
            for (Future<RecordMetadata> f : futs) get(f);
        }
        return out;
    }

    static Set<TopicPartition> partitions(String topic, int n) {
        Set<TopicPartition> out = new HashSet<>();
        for (int i = 0; i < n; i++) out.add(new TopicPartition(topic, i));
        return out;
    }

    static ConsumerGroupDescription describe(Admin a, String group) throws Exception {
        return get(a.describeConsumerGroups(List.of(group)).describedGroups().get(group));
    }

    static Map<TopicPartition, OffsetAndMetadata> committed(Admin a, String group) throws Exception {
        return get(a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata());
    }

    static Map<String, ConsumerGroupListing> listGroups(Admin a, ListConsumerGroupsOptions opts) throws Exception {
        return get(a.listConsumerGroups(opts).all()).stream().collect(Collectors.toMap(ConsumerGroupListing::groupId, l -> l));
    }

    interface Check {
        boolean test() throws Exception;
    }

    /** Polls cond until true; exceptions count as "not yet", AssertionErrors (failed members) end the wait. */
    static void waitFor(String what, Check cond) throws InterruptedException {
        waitUntil(() -> {
            try {
                return cond.test();
            } catch (Exception e) {
                return false;
            }
        }, what);
    }

    /** Waits for a Stable group of `members` members, each owning some partitions, together all of them once. */
    static ConsumerGroupDescription waitSplit(Admin a, String group, int members, Set<TopicPartition> all, Member... running)
            throws InterruptedException {
        ConsumerGroupDescription[] last = new ConsumerGroupDescription[1];
        waitFor(members + " members splitting " + all.size() + " partitions in " + group, () -> {
            for (Member m : running) m.check();
            ConsumerGroupDescription d = last[0] = describe(a, group);
            if (d.groupState() != GroupState.STABLE || d.members().size() != members) return false;
            Set<TopicPartition> union = new HashSet<>();
            int count = 0;
            for (MemberDescription m : d.members()) {
                Set<TopicPartition> own = m.assignment().topicPartitions();
                if (own.isEmpty()) return false;
                union.addAll(own);
                count += own.size();
            }
            return union.equals(all) && count == all.size();
        });
        return last[0];
    }

    static void waitCommitsAtEnd(Admin a, String group, Set<TopicPartition> all) throws Exception {
        Map<TopicPartition, OffsetSpec> specs = all.stream().collect(Collectors.toMap(tp -> tp, tp -> OffsetSpec.latest()));
        Map<TopicPartition, Long> ends = new HashMap<>();
        get(a.listOffsets(specs).all()).forEach((tp, info) -> ends.put(tp, info.offset()));
        waitFor("commits of " + group + " to reach the end offsets " + ends, () -> {
            Map<TopicPartition, Long> got = new HashMap<>();
            committed(a, group).forEach((tp, om) -> got.put(tp, om.offset()));
            return got.equals(ends);
        });
    }

    static void expectFailure(Class<? extends Throwable> want, String what, Check call) throws Exception {
        try {
            call.test();
        } catch (ExecutionException e) {
            check(want.isInstance(e.getCause()), "%s: want %s, got %s", what, want.getSimpleName(), e.getCause());
            return;
        }
        throw new AssertionError(what + " succeeded, want " + want.getSimpleName());
    }

    // ------------------------------------------------------------------ scenarios

    /** Two members (classic, or KIP-848 with a server-side assignor) share 6 partitions; all consumed, commits at the end. */
    static void consume(String bootstrap, String protocol, String assignor) throws Exception {
        String topic = topicName("java-" + protocol);
        String group = topicName("java-g-" + protocol);
        Set<TopicPartition> all = partitions(topic, 6);
        Set<String> consumed = ConcurrentHashMap.newKeySet();
        try (Admin a = admin(bootstrap)) {
            createTopic(a, topic, 6, null);
            try (Member m1 = new Member(bootstrap, group, topic, protocol, assignor, consumed);
                 Member m2 = new Member(bootstrap, group, topic, protocol, assignor, consumed)) {
                ConsumerGroupDescription d = waitSplit(a, group, 2, all, m1, m2);
                eq(d.type(), protocol.equals("classic") ? GroupType.CLASSIC : GroupType.CONSUMER, "group type");
                eq(d.partitionAssignor(), assignor == null ? "range" : assignor, "assignor");
                eq(d.coordinator().id(), 1, "coordinator");
                if ("range".equals(assignor)) { // server-side range: each member gets a contiguous half
                    for (MemberDescription m : d.members()) {
                        TreeSet<Integer> ps = m.assignment().topicPartitions().stream().map(TopicPartition::partition)
                                .collect(Collectors.toCollection(TreeSet::new));
                        eq(ps.last() - ps.first() + 1, 3, "range assignment " + ps + " is contiguous and of 3");
                    }
                }
                Set<String> produced = produceIds(bootstrap, topic, 0, 3000, 6);
                waitFor("every record consumed", () -> {
                    m1.check();
                    m2.check();
                    return consumed.containsAll(produced);
                });
            }
            waitCommitsAtEnd(a, group, all);
            waitFor(group + " to be empty", () -> describe(a, group).groupState() == GroupState.EMPTY);
        }
    }

    /** Admin list/describe/offsets/alter/delete against a live and then an empty group. */
    static void adminApis(String bootstrap, String protocol) throws Exception {
        String topic = topicName("java-adm-" + protocol);
        String group = topicName("java-ga-" + protocol);
        GroupType type = protocol.equals("classic") ? GroupType.CLASSIC : GroupType.CONSUMER;
        TopicPartition p0 = new TopicPartition(topic, 0), p1 = new TopicPartition(topic, 1);
        try (Admin a = admin(bootstrap)) {
            createTopic(a, topic, 2, null);
            Set<String> produced = produceIds(bootstrap, topic, 0, 100, 2); // 50 per partition
            Set<String> consumed = ConcurrentHashMap.newKeySet();
            try (Member m = new Member(bootstrap, group, topic, protocol, null, consumed)) {
                waitFor("every record consumed", () -> {
                    m.check();
                    return consumed.containsAll(produced);
                });
                waitCommitsAtEnd(a, group, Set.of(p0, p1));

                ConsumerGroupListing l = listGroups(a, new ListConsumerGroupsOptions()).get(group);
                check(l != null, "listConsumerGroups lacks %s", group);
                eq(l.groupState(), Optional.of(GroupState.STABLE), "listed state");
                eq(l.type(), Optional.of(type), "listed type");
                eq(l.isSimpleConsumerGroup(), false, "simple consumer group");
                check(!listGroups(a, new ListConsumerGroupsOptions().inGroupStates(Set.of(GroupState.EMPTY))).containsKey(group),
                        "%s listed as EMPTY while it has a member", group);
                ConsumerGroupDescription d = describe(a, group);
                eq(d.groupState(), GroupState.STABLE, "described state");
                eq(d.type(), type, "described type");
                eq(d.members().size(), 1, "members");
                eq(d.members().iterator().next().assignment().topicPartitions(), Set.of(p0, p1), "member assignment");

                // an active group's offsets belong to its members; the group cannot be deleted
                expectFailure(UnknownMemberIdException.class, "alterConsumerGroupOffsets on an active group",
                        () -> get(a.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(10))).all()) != null);
                expectFailure(GroupSubscribedToTopicException.class, "deleteConsumerGroupOffsets of a subscribed topic",
                        () -> get(a.deleteConsumerGroupOffsets(group, Set.of(p1)).all()) != null);
                expectFailure(GroupNotEmptyException.class, "deleteConsumerGroups on an active group",
                        () -> get(a.deleteConsumerGroups(List.of(group)).all()) != null);
            }
            waitFor(group + " to be empty", () -> describe(a, group).groupState() == GroupState.EMPTY);
            check(listGroups(a, new ListConsumerGroupsOptions().inGroupStates(Set.of(GroupState.EMPTY))).containsKey(group),
                    "%s not listed as EMPTY", group);

            get(a.alterConsumerGroupOffsets(group, Map.of(p0, new OffsetAndMetadata(10, "rewound"))).all());
            get(a.deleteConsumerGroupOffsets(group, Set.of(p1)).all());
            Map<TopicPartition, OffsetAndMetadata> c = committed(a, group);
            eq(c.keySet(), Set.of(p0), "committed partitions after alter + deleteOffsets");
            eq(c.get(p0).offset(), 10L, "altered offset");
            eq(c.get(p0).metadata(), "rewound", "altered metadata");

            // a new member resumes at p0 offset 10 (value 20) and at the start of p1 (no commit)
            Set<String> want = produced.stream().filter(v -> Integer.parseInt(v) % 2 == 1 || Integer.parseInt(v) >= 20)
                    .collect(Collectors.toSet());
            Set<String> resumed = ConcurrentHashMap.newKeySet();
            try (Member m = new Member(bootstrap, group, topic, protocol, null, resumed)) {
                waitFor("the new member to consume from the altered offsets", () -> {
                    m.check();
                    return resumed.containsAll(want);
                });
            }
            eq(resumed, want, "records read by the resumed member");
            waitFor(group + " to be empty", () -> describe(a, group).groupState() == GroupState.EMPTY);

            get(a.deleteConsumerGroups(List.of(group)).all());
            check(!listGroups(a, new ListConsumerGroupsOptions()).containsKey(group), "%s still listed after deletion", group);
            eq(committed(a, group), Map.of(), "offsets of a deleted group");
            expectFailure(GroupIdNotFoundException.class, "deleteConsumerGroups of a deleted group",
                    () -> get(a.deleteConsumerGroups(List.of(group)).all()) != null);
        }
    }
}
