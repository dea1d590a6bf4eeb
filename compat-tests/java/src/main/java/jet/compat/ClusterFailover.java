package jet.compat;

import static jet.compat.Main.T;
import static jet.compat.Main.admin;
import static jet.compat.Main.b;
import static jet.compat.Main.check;
import static jet.compat.Main.s;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * cluster-failover TOPIC OUTFILE: an idempotent acks=all KafkaProducer writes "v<n>" to partition
 * n % partitions of TOPIC (replicated, created by the caller) while a KafkaConsumer in a group
 * reads it and commits after every poll. Talks to the test through lines:
 * <ul>
 *   <li>stdout {@code group NAME} first, then {@code acked N} every 100 acknowledgements (N = total acknowledged so far);</li>
 *   <li>stdin {@code killed}: the test has SIGKILLed a broker; from then on the program prints
 *       {@code first-ack-after-kill P MS} for the first acknowledgement of a record of partition P
 *       sent after that line (MS since it was read), keeps producing until 2000 more are acknowledged, stops,
 *       waits until the group has read every acknowledged value and committed the end offsets,
 *       writes "value partition offset" of every acknowledged record to OUTFILE.</li>
 * </ul>
 * Any send error, consumer error other than a retriable/rebalance commit failure, or deadline
 * fails the scenario.
 */
final class ClusterFailover {
    private ClusterFailover() {}

    static final int AFTER_KILL = 2000;
    static final int IN_FLIGHT = 500; // records sent but not yet acknowledged, at most

    record Ack(String value, int partition, long offset) {}

    static void run(String bootstrap, String topic, Path outFile) throws Exception {
        int partitions;
        try (Admin a = admin(bootstrap)) {
            partitions = a.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS).get(topic).partitions().size();
        }
        check(partitions > 0, "topic %s has no partitions", topic);

        // The test's "killed" line on stdin.
        AtomicLong killedAt = new AtomicLong(0);
        CountDownLatch killed = new CountDownLatch(1);
        Thread stdin = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    if (line.trim().equals("killed")) {
                        killedAt.set(System.nanoTime());
                        killed.countDown();
                    }
                }
            } catch (Exception e) {
                // stdin closed: the test is gone; the deadlines below end the run
            }
        }, "stdin");
        stdin.setDaemon(true);
        stdin.start();

        Set<String> seen = ConcurrentHashMap.newKeySet();
        AtomicInteger commitFailures = new AtomicInteger();
        ConcurrentLinkedQueue<Throwable> consumerErrors = new ConcurrentLinkedQueue<>();
        String group = Main.topicName("java-cluster-g");
        System.out.println("group " + group);
        System.out.flush();
        AtomicBoolean stopConsumer = new AtomicBoolean();
        Thread consumer = startConsumer(bootstrap, group, topic, stopConsumer, seen, commitFailures, consumerErrors);

        List<Ack> acked = Collections.synchronizedList(new ArrayList<>());
        ConcurrentLinkedQueue<Exception> sendErrors = new ConcurrentLinkedQueue<>();
        AtomicInteger ackCount = new AtomicInteger();
        Set<Integer> firstAfterKill = ConcurrentHashMap.newKeySet();
        Semaphore window = new Semaphore(IN_FLIGHT);

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 120000);
        long target = -1;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(300);
        try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp)) {
            for (int n = 0; ; n++) {
                check(System.nanoTime() < deadline, "still producing after 300 s: %d acknowledged, target %d", ackCount.get(), target);
                check(sendErrors.isEmpty(), "send failed: %s", sendErrors.peek());
                checkConsumer(consumer, consumerErrors);
                if (target < 0 && killed.getCount() == 0) {
                    target = ackCount.get() + AFTER_KILL;
                    System.out.println("kill seen at acked " + ackCount.get() + ", producing until " + target);
                    System.out.flush();
                }
                if (target >= 0 && ackCount.get() >= target) {
                    System.out.println("acked " + ackCount.get()); // the target reached, whether or not a multiple of 100
                    System.out.flush();
                    break;
                }
                if (!window.tryAcquire(1, TimeUnit.SECONDS)) continue; // re-check deadline and errors
                String v = "v" + n;
                int part = n % partitions;
                boolean sentAfterKill = killedAt.get() != 0;
                p.send(new ProducerRecord<>(topic, part, null, b(v)), (md, e) -> {
                    window.release();
                    if (e != null) {
                        sendErrors.add(e);
                        return;
                    }
                    acked.add(new Ack(v, md.partition(), md.offset()));
                    if (sentAfterKill && firstAfterKill.add(md.partition())) {
                        long k = killedAt.get();
                        System.out.printf("first-ack-after-kill %d %d%n", md.partition(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - k));
                        System.out.flush();
                    }
                    int c = ackCount.incrementAndGet();
                    if (c % 100 == 0) {
                        System.out.println("acked " + c);
                        System.out.flush();
                    }
                });
            }
            p.flush();
        }
        check(sendErrors.isEmpty(), "%d sends failed, e.g. %s", sendErrors.size(), sendErrors.peek());
        List<Ack> all;
        synchronized (acked) {
            all = new ArrayList<>(acked);
        }
        System.out.println("stopped producing: " + all.size() + " acknowledged");
        System.out.flush();

        // Every acknowledged value read by the group, its commits at the end offsets.
        long readDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!seen.containsAll(all.stream().map(Ack::value).toList())) {
            checkConsumer(consumer, consumerErrors);
            long missing = all.stream().filter(x -> !seen.contains(x.value())).count();
            check(System.nanoTime() < readDeadline, "the group has not read %d of %d acknowledged records after 120 s", missing, all.size());
            Thread.sleep(50); // poll interval
        }
        System.out.println("group read every acknowledged record");
        System.out.flush();
        try (Admin a = admin(bootstrap)) {
            Map<TopicPartition, OffsetSpec> specs = new HashMap<>();
            for (int i = 0; i < partitions; i++) specs.put(new TopicPartition(topic, i), OffsetSpec.latest());
            Map<TopicPartition, Long> ends = new HashMap<>();
            a.listOffsets(specs).all().get(T, TimeUnit.SECONDS).forEach((tp, info) -> ends.put(tp, info.offset()));
            Map<TopicPartition, Long> got = new HashMap<>();
            long commitDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (true) {
                checkConsumer(consumer, consumerErrors);
                got.clear();
                try {
                    a.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(T, TimeUnit.SECONDS)
                            .forEach((tp, om) -> got.put(tp, om.offset()));
                } catch (Exception e) {
                    got.put(new TopicPartition("error: " + e, -1), -1L);
                }
                if (got.equals(ends)) break;
                check(System.nanoTime() < commitDeadline, "group %s commits %s, end offsets %s after 60 s", group, got, ends);
                Thread.sleep(50); // poll interval
            }
            System.out.println("group commits at the end offsets " + ends);
        }
        stopConsumer.set(true);
        consumer.join(TimeUnit.SECONDS.toMillis(60));
        check(!consumer.isAlive(), "the consumer did not stop within 60 s");
        check(consumerErrors.isEmpty(), "consumer failed: %s", consumerErrors.peek());
        System.out.println("commit failures (retriable or rebalance): " + commitFailures.get());

        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(outFile, StandardCharsets.UTF_8))) {
            for (Ack x : all) w.printf("%s %d %d%n", x.value(), x.partition(), x.offset());
        }
        System.out.flush();
    }

    static void checkConsumer(Thread consumer, ConcurrentLinkedQueue<Throwable> errors) {
        if (!errors.isEmpty()) throw new AssertionError("consumer failed: " + errors.peek(), errors.peek());
        check(consumer.isAlive(), "the consumer thread ended");
    }

    /** A classic-protocol group member on its own thread until stop: commitSync after every poll. */
    static Thread startConsumer(String bootstrap, String group, String topic, AtomicBoolean stop,
            Set<String> seen, AtomicInteger commitFailures,
            ConcurrentLinkedQueue<Throwable> errors) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 6000);
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 500);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        Thread t = new Thread(() -> {
            try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
                c.subscribe(List.of(topic));
                while (!stop.get()) {
                    ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(100));
                    for (ConsumerRecord<byte[], byte[]> r : rs) seen.add(s(r.value()));
                    try {
                        c.commitSync(Duration.ofSeconds(T));
                    } catch (RetriableException | RebalanceInProgressException | CommitFailedException e) {
                        // the coordinator moved or the group rebalanced: Kafka's documented outcomes; counted, re-committed next round
                        int k = commitFailures.incrementAndGet();
                        System.out.println("commit failed (" + k + "): " + e);
                        System.out.flush();
                    }
                }
            } catch (Throwable e) {
                errors.add(e);
            }
        }, "group-consumer");
        t.start();
        return t;
    }
}
