package jet.bench;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Open-loop ack-latency probe.
 *
 * <p>Sends records on a fixed schedule (record i is due at start + i / rate) whether or not
 * earlier records have been acknowledged, and measures each record's latency from its due time
 * to its acknowledgement. A stall therefore counts against every record scheduled behind it
 * (no coordinated omission). Records due during the warm-up are sent but not measured.
 *
 * <p>Usage: {@code LatencyProbe --bootstrap H:P --topic T --size BYTES --rate RECORDS_PER_S
 * --seconds S --warmup-seconds W --acks 1|all --compression none|lz4 [--linger-ms MS]}
 *
 * <p>Prints one JSON object: the percentiles in milliseconds, the rate achieved, errors.
 */
public final class LatencyProbe {
  public static void main(String[] argv) throws Exception {
    Map<String, String> a = parse(argv);
    int size = Integer.parseInt(a.get("size"));
    double rate = Double.parseDouble(a.get("rate"));
    double seconds = Double.parseDouble(a.get("seconds"));
    double warmup = Double.parseDouble(a.get("warmup-seconds"));
    int warm = (int) (rate * warmup);
    int total = warm + (int) (rate * seconds);
    long periodNanos = (long) (1e9 / rate);

    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
    p.put(ProducerConfig.ACKS_CONFIG, a.get("acks"));
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, a.get("compression"));
    p.put(ProducerConfig.LINGER_MS_CONFIG, a.getOrDefault("linger-ms", "0"));
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());

    // Like ProducerPerformance: random upper-case letters, so compression has something to do.
    byte[] value = new byte[size];
    Random rnd = new Random(42);
    for (int i = 0; i < size; i++) value[i] = (byte) ('A' + rnd.nextInt(26));

    long[] latencyNanos = new long[total];
    AtomicLong errors = new AtomicLong();
    String topic = a.get("topic");
    long start;
    long sendEnd;
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
      producer.partitionsFor(topic); // metadata before the clock starts
      start = System.nanoTime();
      for (int i = 0; i < total; i++) {
        final long due = start + i * periodNanos;
        final int idx = i;
        long now;
        while ((now = System.nanoTime()) < due) LockSupport.parkNanos(due - now);
        producer.send(new ProducerRecord<>(topic, value), (md, e) -> {
          if (e != null) errors.incrementAndGet();
          latencyNanos[idx] = System.nanoTime() - due;
        });
      }
      sendEnd = System.nanoTime();
      producer.flush();
    } // close() joins the I/O thread: every callback's write is visible below

    long[] measured = Arrays.copyOfRange(latencyNanos, warm, total);
    Arrays.sort(measured);
    double sentSeconds = (sendEnd - start - warm * periodNanos) / 1e9;
    System.out.printf(
        "{\"records\": %d, \"errors\": %d, \"target_rate\": %.1f, \"achieved_rate\": %.1f, "
            + "\"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f}%n",
        measured.length, errors.get(), rate, measured.length / sentSeconds,
        pct(measured, 0.50), pct(measured, 0.99), pct(measured, 0.999),
        measured[measured.length - 1] / 1e6);
  }

  private static double pct(long[] sorted, double q) {
    return sorted[(int) Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] / 1e6;
  }

  private static Map<String, String> parse(String[] argv) {
    Map<String, String> m = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) {
      if (!argv[i].startsWith("--")) throw new IllegalArgumentException("expected --flag: " + argv[i]);
      m.put(argv[i].substring(2), argv[i + 1]);
    }
    for (String k : new String[] {"bootstrap", "topic", "size", "rate", "seconds", "warmup-seconds", "acks", "compression"}) {
      if (!m.containsKey(k)) throw new IllegalArgumentException("missing --" + k);
    }
    return m;
  }
}
