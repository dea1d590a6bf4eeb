package jet.compat;

import static jet.compat.Main.admin;
import static jet.compat.Main.b;
import static jet.compat.Main.check;
import static jet.compat.Main.createTopic;
import static jet.compat.Main.eq;
import static jet.compat.Main.pollN;
import static jet.compat.Main.s;
import static jet.compat.Main.topicName;
import static jet.compat.Main.waitUntil;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * A transactional producer (commit, abort, a zombie fenced by a new instance) and consumers
 * of both isolation levels: read_committed sees exactly the committed transactions.
 */
final class Transactions {
    private Transactions() {}

    static KafkaProducer<byte[], byte[]> transactional(String bootstrap, String id) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<byte[], byte[]> consumer(String bootstrap, String isolation) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        return new KafkaConsumer<>(p);
    }

    static void send(KafkaProducer<byte[], byte[]> p, String topic, String prefix, int n, List<String> into) {
        for (int i = 0; i < n; i++) {
            String v = prefix + "-" + i;
            p.send(new ProducerRecord<>(topic, i % 2, b("k" + i), b(v)));
            if (into != null) into.add(v);
        }
    }

    static List<String> values(List<ConsumerRecord<byte[], byte[]>> rs) {
        List<String> out = new ArrayList<>();
        for (ConsumerRecord<byte[], byte[]> r : rs) out.add(s(r.value()));
        out.sort(null);
        return out;
    }

    static void run(String bootstrap) throws Exception {
        String topic = topicName("java-txn");
        try (Admin a = admin(bootstrap)) {
            createTopic(a, topic, 2, null);
        }
        String id = "java-txn-" + topic;
        List<String> committed = new ArrayList<>();
        int written = 0;
        try (KafkaProducer<byte[], byte[]> p = transactional(bootstrap, id)) {
            p.initTransactions();
            p.beginTransaction();
            send(p, topic, "first", 10, committed);
            p.commitTransaction();
            p.beginTransaction();
            send(p, topic, "aborted", 5, null);
            p.flush();
            p.abortTransaction();
            p.beginTransaction();
            send(p, topic, "second", 7, committed);
            p.commitTransaction();
            written = 22;

            // A new instance with the same transactional.id fences this one.
            try (KafkaProducer<byte[], byte[]> next = transactional(bootstrap, id)) {
                next.initTransactions();
                boolean fenced = false;
                try {
                    p.beginTransaction();
                    send(p, topic, "zombie", 2, null);
                    p.commitTransaction();
                } catch (ProducerFencedException e) {
                    fenced = true;
                } catch (org.apache.kafka.common.KafkaException e) {
                    fenced = e.getCause() instanceof ProducerFencedException
                            || e instanceof org.apache.kafka.common.errors.InvalidProducerEpochException;
                }
                check(fenced, "the old instance was not fenced");
                next.beginTransaction();
                send(next, topic, "third", 4, committed);
                next.commitTransaction();
            }
        } catch (ProducerFencedException expectedOnClose) {
            // close() of the fenced instance may report it again.
        }
        committed.sort(null);
        // The admin APIs of kafka-transactions.sh: the id is listed and described.
        try (Admin a = admin(bootstrap)) {
            // Completed once its markers are written, just after commitTransaction returns.
            waitUntil(() -> {
                try {
                    return a.listTransactions().all().get(30, java.util.concurrent.TimeUnit.SECONDS).stream()
                            .anyMatch(l -> l.transactionalId().equals(id) && l.state().toString().equals("CompleteCommit"));
                } catch (Exception e) {
                    return false;
                }
            }, "listTransactions to list " + id + " as CompleteCommit");
            var d = a.describeTransactions(List.of(id)).all().get(30, java.util.concurrent.TimeUnit.SECONDS).get(id);
            eq(d.state().toString(), "CompleteCommit", "describeTransactions state");
            check(d.producerId() >= 0 && d.producerEpoch() >= 1, "describeTransactions producer %d/%d", d.producerId(), d.producerEpoch());
            check(d.topicPartitions().isEmpty(), "a completed transaction has no partitions: %s", d.topicPartitions());
        }
        List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap, "read_committed")) {
            c.assign(tps);
            c.seekToBeginning(tps);
            List<ConsumerRecord<byte[], byte[]>> got = pollN(c, committed.size());
            // Nothing more arrives: aborted records and markers are skipped.
            for (int i = 0; i < 4; i++) {
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(250))) got.add(r);
            }
            eq(values(got), committed, "read_committed values");
            long end = 0;
            for (long e : c.endOffsets(tps).values()) end += e;
            check(end >= written + 4 + 6, "read_committed end offsets %d cover the markers", end);
        }
        try (KafkaConsumer<byte[], byte[]> c = consumer(bootstrap, "read_uncommitted")) {
            c.assign(tps);
            c.seekToBeginning(tps);
            List<ConsumerRecord<byte[], byte[]>> got = pollN(c, committed.size() + 5);
            long aborted = got.stream().filter(r -> s(r.value()).startsWith("aborted")).count();
            eq(aborted, 5L, "read_uncommitted sees the aborted records");
        }
        System.out.println("transactions: committed " + committed.size() + " records in 3 transactions, aborted 5, fenced a zombie");
    }
}
