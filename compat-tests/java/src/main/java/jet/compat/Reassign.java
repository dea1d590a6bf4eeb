package jet.compat;

import static jet.compat.Main.T;
import static jet.compat.Main.admin;
import static jet.compat.Main.check;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.PartitionReassignment;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.errors.InvalidReplicaAssignmentException;
import org.apache.kafka.common.errors.NoReassignmentInProgressException;

/**
 * reassign TOPIC PARTITION B1,B2,..: moves the partition to those brokers with the Admin API
 * kafka-reassign-partitions.sh uses (alterPartitionReassignments, then listPartitionReassignments
 * until it is done), after checking that a move to a broker that does not exist and a cancel with
 * nothing moving are refused with Kafka's errors. Prints {@code moved MS leader L} once
 * describeTopics shows exactly the target as replicas and in-sync replicas.
 */
final class Reassign {
    private Reassign() {}

    static void run(String bootstrap, String topic, int partition, List<Integer> target) throws Exception {
        TopicPartition tp = new TopicPartition(topic, partition);
        try (Admin admin = admin(bootstrap)) {
            expectError(admin, tp, Optional.of(new NewPartitionReassignment(List.of(target.get(0), 99, target.get(1)))),
                    InvalidReplicaAssignmentException.class);
            expectError(admin, tp, Optional.empty(), NoReassignmentInProgressException.class);

            long start = System.nanoTime();
            admin.alterPartitionReassignments(Map.of(tp, Optional.of(new NewPartitionReassignment(target))))
                    .all().get(T, TimeUnit.SECONDS);
            List<Integer> sorted = target.stream().sorted().toList();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (true) {
                Map<TopicPartition, PartitionReassignment> ongoing =
                        admin.listPartitionReassignments().reassignments().get(T, TimeUnit.SECONDS);
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(T, TimeUnit.SECONDS).get(topic);
                TopicPartitionInfo p = d.partitions().get(partition);
                List<Integer> replicas = p.replicas().stream().map(n -> n.id()).sorted().toList();
                List<Integer> isr = p.isr().stream().map(n -> n.id()).sorted().toList();
                if (!ongoing.containsKey(tp) && replicas.equals(sorted) && isr.equals(sorted)
                        && p.leader() != null && target.contains(p.leader().id())) {
                    long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                    System.out.println("moved " + ms + " leader " + p.leader().id());
                    System.out.flush();
                    return;
                }
                check(System.nanoTime() < deadline, "the move of %s to %s did not finish in 120 s: ongoing %s, replicas %s, isr %s",
                        tp, target, ongoing.get(tp), replicas, isr);
                Thread.sleep(100); // poll interval
            }
        }
    }

    private static void expectError(Admin admin, TopicPartition tp, Optional<NewPartitionReassignment> r, Class<?> want)
            throws Exception {
        try {
            admin.alterPartitionReassignments(Map.of(tp, r)).all().get(T, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            check(want.isInstance(e.getCause()), "%s: expected %s, got %s", r, want.getSimpleName(), e.getCause());
            return;
        }
        throw new AssertionError(r + ": expected " + want.getSimpleName() + ", but it was accepted");
    }

    static List<Integer> brokers(String csv) {
        return Arrays.stream(csv.split(",")).map(Integer::parseInt).toList();
    }
}
