//! Consumer groups: the group coordinator and its durable state in `__consumer_offsets`.
//!
//! - [`classic`]: the classic rebalance protocol's state machine (pure; no I/O).
//! - [`consumer`]: KIP-848 consumer groups (ConsumerGroupHeartbeat), with server-side
//!   assignors (pure; no I/O).
//! - [`records`]: the records of `__consumer_offsets` in Kafka's own schemas.
//! - [`coordinator`]: [`GroupCoordinator`] — all groups in memory, every change written
//!   to the group's partition of `__consumer_offsets` through the ordinary
//!   [`crate::broker::Partition`] append path (so it is fsynced, and with replication
//!   replicated, like any other record) before the request is answered; deadlines kept
//!   in a [`deadlines::DeadlineQueue`] and served by one timer task.
//! - [`txn_offsets`]: transactional offset commits, pending per producer until their
//!   transaction's marker, which is appended through the coordinator.
//! - [`durability`]: durable before visible — reads of group state wait for the writes
//!   they reflect; a failed write rebuilds the partition's groups from the log
//!   (`loading`) and backs the partition off instead of rebalancing in a loop.
//!
//! The coordinator of a group is the leader of partition
//! `abs(java_hash(group_id)) % offsets.topic.num.partitions` of `__consumer_offsets`, as
//! in Kafka; on start it reloads its groups by reading those partitions.

pub mod classic;
pub mod consumer;
pub mod coordinator;
pub mod deadlines;
pub mod durability;
pub mod lag;
mod loading;
pub mod ops;
pub mod records;
mod replicated;
pub mod txn_offsets;

pub use coordinator::{Completion, GroupCoordinator, GroupSettings, Listing};

/// The internal topic holding offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` (over UTF-16 code units), which Kafka uses to place a group.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The partition of `__consumer_offsets` that holds `group_id` (Kafka's
/// `Utils.abs(groupId.hashCode) % partitions`, where `abs` masks the sign bit).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    (java_string_hash(group_id) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_land_on_the_same_partition_as_in_kafka() {
        // Java: "".hashCode() == 0, "a".hashCode() == 97, "test-group".hashCode() == 627841412,
        // "polygenelubricants".hashCode() == Integer.MIN_VALUE (abs() masks it to 0).
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("test-group"), 627_841_412);
        assert_eq!(partition_for("test-group", 50), 12);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert!((0..50).contains(&partition_for("ü-group", 50)));
    }
}
