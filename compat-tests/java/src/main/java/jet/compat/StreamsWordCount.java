package jet.compat;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.config.TopicConfig;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

/**
 * Kafka Streams WordCount with processing.guarantee=exactly_once_v2.
 * Usage: StreamsWordCount BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR
 *
 * INPUT (String lines) -> flatMapValues (lower-cased words) -> groupBy word (a repartition
 * topic) -> count (state store "counts", its changelog a compacted internal topic) ->
 * OUTPUT (String word -> Long count). The record cache is off, so every input word yields one
 * output record: a read_committed reader of OUTPUT must see, for each word, exactly the counts
 * 1, 2, .., N in order. Internal topics are created at replication factor 3 with
 * min.insync.replicas 2; commit.interval.ms is 100.
 *
 * Runs until "stop" is read on stdin (or stdin closes), then closes the app and exits 0
 * ("OK streams-wordcount"). Every state change is printed on stdout as "state OLD NEW"; an
 * exception that kills a stream thread is printed as "thread-error ..." (stack on stderr) and
 * shuts the client down, and the program exits 1 if the app reached the ERROR state.
 */
public final class StreamsWordCount {
    private StreamsWordCount() {}

    static Topology topology(String input, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
                .flatMapValues(line -> Arrays.asList(line.toLowerCase(java.util.Locale.ROOT).split("\\W+")))
                .filter((key, word) -> !word.isEmpty())
                .groupBy((key, word) -> word, Grouped.with("words", Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    static Properties config(String bootstrap, String applicationId, String stateDir) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 100);
        p.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 3);
        p.put(StreamsConfig.topicPrefix(TopicConfig.MIN_IN_SYNC_REPLICAS_CONFIG), 2);
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir);
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, 0);
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, 1);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        // Across a broker kill: give the clients room to ride out the leader elections.
        p.put(StreamsConfig.producerPrefix(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG), 120000);
        p.put(StreamsConfig.producerPrefix(ProducerConfig.MAX_BLOCK_MS_CONFIG), 120000);
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 30000);
        p.put(StreamsConfig.TASK_TIMEOUT_MS_CONFIG, 120000);
        return p;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: StreamsWordCount BOOTSTRAP APPLICATION_ID INPUT OUTPUT STATE_DIR");
            System.exit(2);
        }
        String bootstrap = args[0], applicationId = args[1], input = args[2], output = args[3], stateDir = args[4];
        Topology topology = topology(input, output);
        System.out.println("topology " + topology.describe().toString().replace('\n', ' '));

        CountDownLatch done = new CountDownLatch(1);
        AtomicBoolean errored = new AtomicBoolean(false);
        KafkaStreams streams = new KafkaStreams(topology, config(bootstrap, applicationId, stateDir));
        streams.setStateListener((now, before) -> {
            System.out.println("state " + before + " " + now);
            if (now == KafkaStreams.State.ERROR) {
                errored.set(true);
                done.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            Throwable root = e;
            while (root.getCause() != null && root.getCause() != root) root = root.getCause();
            System.out.println("thread-error " + e + " (root cause: " + root + ")");
            System.err.println("uncaught exception in a stream thread:");
            e.printStackTrace();
            return StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });

        Thread stdin = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null && !line.trim().equals("stop")) {
                    // only "stop" (or the end of stdin) matters
                }
            } catch (Exception e) {
                System.err.println("stdin: " + e);
            }
            System.out.println("stop requested");
            done.countDown();
        }, "stdin");
        stdin.setDaemon(true);
        stdin.start();

        streams.start();
        done.await();
        boolean closed = streams.close(Duration.ofSeconds(60));
        KafkaStreams.State last = streams.state();
        System.out.println("final-state " + last + (closed ? "" : " (close timed out)"));
        if (errored.get() || !closed) {
            System.err.println("ERROR: Kafka Streams " + (errored.get() ? "reached the ERROR state" : "did not close within 60 s"));
            System.exit(1);
        }
        System.out.println("OK streams-wordcount");
        System.exit(0);
    }
}
