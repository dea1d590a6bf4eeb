package jet.compat;

import static jet.compat.Main.b;
import static jet.compat.Main.s;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.InvalidProducerEpochException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * txn-checker TOPIC PARTITIONS WRITERS SEED OUTFILE: WRITERS threads, each a transactional
 * producer, run transactions of 1-4 records ("w<i>-t<n>-r<k>of<K>") over random partitions,
 * then commit or abort at random, until the test writes "stop" on stdin (it kills and
 * restarts brokers meanwhile). Each transaction's outcome goes to OUTFILE as
 * "txn w<i>-t<n> K committed|aborted|unknown" (unknown: the commit or abort failed, so
 * the transaction may have gone either way, but all or nothing). Then a read_committed
 * consumer reads every partition up to its read_committed end offset and writes
 * "read VALUE PARTITION OFFSET" for every record. Prints "committed N" as transactions commit.
 */
final class TxnChecker {
    private TxnChecker() {}

    static KafkaProducer<byte[], byte[]> producer(String bootstrap, String id) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 20000);
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000);
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 60000);
        return new KafkaProducer<>(p);
    }

    static void run(String bootstrap, String topic, int partitions, int writers, long seed, Path out) throws Exception {
        AtomicBoolean stop = new AtomicBoolean(false);
        AtomicInteger committedCount = new AtomicInteger();
        ConcurrentLinkedQueue<String> outcomes = new ConcurrentLinkedQueue<>();
        List<Thread> threads = new ArrayList<>();
        for (int w = 0; w < writers; w++) {
            final int writer = w;
            Thread t = new Thread(() -> {
                Random rnd = new Random(seed * 31 + writer);
                String id = "chk-" + topic + "-w" + writer;
                KafkaProducer<byte[], byte[]> p = producer(bootstrap, id);
                p.initTransactions();
                int n = 0;
                while (!stop.get()) {
                    String txn = "w" + writer + "-t" + (n++);
                    int k = 1 + rnd.nextInt(4);
                    boolean commit = rnd.nextInt(10) < 7;
                    String outcome;
                    try {
                        p.beginTransaction();
                        for (int r = 0; r < k; r++) {
                            p.send(new ProducerRecord<>(topic, rnd.nextInt(partitions), null, b(txn + "-r" + r + "of" + k)));
                        }
                        if (commit) {
                            p.commitTransaction();
                            outcome = "committed";
                            int c = committedCount.incrementAndGet();
                            if (c % 20 == 0) System.out.println("committed " + c);
                        } else {
                            p.abortTransaction();
                            outcome = "aborted";
                        }
                    } catch (ProducerFencedException | InvalidProducerEpochException e) {
                        // Fenced (a coordinator aborted the transaction after a timeout, or a
                        // retry crossed a fence): start over as a new instance.
                        outcome = "unknown";
                        p.close(Duration.ZERO);
                        p = producer(bootstrap, id);
                        p.initTransactions();
                    } catch (KafkaException e) {
                        // Anything else during a broker kill: the outcome is unknown; abort if
                        // the producer allows it, else start over.
                        outcome = "unknown";
                        try {
                            p.abortTransaction();
                        } catch (KafkaException again) {
                            p.close(Duration.ZERO);
                            p = producer(bootstrap, id);
                            p.initTransactions();
                        }
                    }
                    outcomes.add("txn " + txn + " " + k + " " + outcome);
                }
                p.close(Duration.ofSeconds(30));
            });
            t.start();
            threads.add(t);
        }
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null && !line.equals("stop")) {
            // only "stop" matters
        }
        stop.set(true);
        for (Thread t : threads) t.join(TimeUnit.SECONDS.toMillis(180));
        List<String> lines = new ArrayList<>(outcomes);
        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) tps.add(new TopicPartition(topic, i));
            c.assign(tps);
            c.seekToBeginning(tps);
            // Every transaction is decided once the writers stopped (an open one is aborted
            // by its timeout): wait until the read_committed end offsets (the last stable
            // offsets) reach the read_uncommitted ones.
            Properties up = new Properties();
            up.putAll(cp);
            up.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_uncommitted");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            Map<TopicPartition, Long> end;
            try (KafkaConsumer<byte[], byte[]> u = new KafkaConsumer<>(up)) {
                while (true) {
                    Map<TopicPartition, Long> stable = c.endOffsets(tps);
                    if (stable.equals(u.endOffsets(tps))) {
                        end = stable;
                        break;
                    }
                    if (System.nanoTime() > deadline) throw new AssertionError("transactions still open: " + stable);
                    Thread.sleep(200); // poll interval
                }
            }
            long readDeadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) if (c.position(tp) < end.get(tp)) done = false;
                if (done) break;
                if (System.nanoTime() > readDeadline) throw new AssertionError("read_committed consumer did not reach " + end);
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    lines.add("read " + s(r.value()) + " " + r.partition() + " " + r.offset());
                }
            }
        }
        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(out, StandardCharsets.UTF_8))) {
            for (String l : lines) w.println(l);
        }
        System.out.println("done");
    }
}
