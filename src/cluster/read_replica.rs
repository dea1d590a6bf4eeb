//! Reads from followers (KIP-392): which replica a consumer that names its rack
//! (`client.rack`) is told to fetch from, as Kafka's `RackAwareReplicaSelector` decides.
//!
//! Only a partition's leader answers this, and only for a consumer's Fetch (v11+, with a
//! `rack_id`). When the leader shares the client's rack, or no in-sync follower does, the
//! client stays on the leader. Otherwise the leader names a same-rack in-sync follower in
//! the partition's `preferred_read_replica` (with no records), and the client fetches
//! there; a follower serves committed records up to its own high watermark.

use std::str::FromStr;

/// `replica.selector.class`: how the leader picks the replica a consumer reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaSelector {
    /// Kafka's `LeaderSelector`: always the leader (Kafka's behaviour when the setting is
    /// empty).
    Leader,
    /// Kafka's `RackAwareReplicaSelector`: a follower in the client's rack when the
    /// leader is elsewhere (Jet's default: without `broker.rack` and `client.rack` it
    /// changes nothing).
    RackAware,
}

/// The class name Kafka users configure for rack-aware reads.
pub const RACK_AWARE_CLASS: &str = "org.apache.kafka.common.replica.RackAwareReplicaSelector";
const LEADER_CLASS: &str = "org.apache.kafka.common.replica.LeaderSelector";

impl FromStr for ReplicaSelector {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.trim() {
            "" | LEADER_CLASS | "LeaderSelector" => Ok(ReplicaSelector::Leader),
            RACK_AWARE_CLASS | "RackAwareReplicaSelector" => Ok(ReplicaSelector::RackAware),
            other => Err(format!(
                "Jet cannot load Java classes; it implements {RACK_AWARE_CLASS} and {LEADER_CLASS}, not {other}"
            )),
        }
    }
}

/// One replica of a partition as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaInfo<'a> {
    pub broker_id: i32,
    /// Its `broker.rack`, if set (from gossip).
    pub rack: Option<&'a str>,
    /// Holds everything committed (the leader's ISR) and is alive.
    pub in_sync: bool,
}

/// The follower a client in `client_rack` should fetch from, or `None` to stay on the
/// leader: the leader's own rack wins, then the in-sync follower with the lowest id in the
/// client's rack (deterministic, so a client is not moved between followers).
pub fn preferred_read_replica(
    selector: ReplicaSelector,
    client_rack: &str,
    leader: &ReplicaInfo<'_>,
    followers: &[ReplicaInfo<'_>],
) -> Option<i32> {
    if selector == ReplicaSelector::Leader || client_rack.is_empty() || leader.rack == Some(client_rack) {
        return None;
    }
    followers
        .iter()
        .filter(|f| f.in_sync && f.broker_id != leader.broker_id && f.rack == Some(client_rack))
        .map(|f| f.broker_id)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(broker_id: i32, rack: Option<&str>, in_sync: bool) -> ReplicaInfo<'_> {
        ReplicaInfo { broker_id, rack, in_sync }
    }

    #[test]
    fn a_client_in_a_followers_rack_is_sent_to_that_follower() {
        let leader = replica(1, Some("a"), true);
        let followers = [replica(2, Some("b"), true), replica(3, Some("c"), true)];
        let rack_aware = ReplicaSelector::RackAware;
        assert_eq!(preferred_read_replica(rack_aware, "b", &leader, &followers), Some(2));
        assert_eq!(preferred_read_replica(rack_aware, "c", &leader, &followers), Some(3));
        // The leader's rack, an unknown rack, no rack: stay on the leader.
        assert_eq!(preferred_read_replica(rack_aware, "a", &leader, &followers), None);
        assert_eq!(preferred_read_replica(rack_aware, "z", &leader, &followers), None);
        assert_eq!(preferred_read_replica(rack_aware, "", &leader, &followers), None);
        // LeaderSelector never moves a client.
        assert_eq!(preferred_read_replica(ReplicaSelector::Leader, "b", &leader, &followers), None);
    }

    #[test]
    fn only_in_sync_followers_are_chosen_and_the_choice_is_stable() {
        let leader = replica(1, Some("a"), true);
        let lagging = [replica(2, Some("b"), false), replica(3, Some("c"), true)];
        assert_eq!(preferred_read_replica(ReplicaSelector::RackAware, "b", &leader, &lagging), None);
        let two_in_b = [replica(4, Some("b"), true), replica(2, Some("b"), true), replica(3, None, true)];
        assert_eq!(preferred_read_replica(ReplicaSelector::RackAware, "b", &leader, &two_in_b), Some(2));
        // A leader without a rack still sends a rack's client to its follower.
        let no_rack = replica(1, None, true);
        assert_eq!(preferred_read_replica(ReplicaSelector::RackAware, "b", &no_rack, &two_in_b), Some(2));
    }

    #[test]
    fn the_setting_takes_kafkas_class_names_and_refuses_others() {
        assert_eq!(RACK_AWARE_CLASS.parse(), Ok(ReplicaSelector::RackAware));
        assert_eq!("org.apache.kafka.common.replica.LeaderSelector".parse(), Ok(ReplicaSelector::Leader));
        assert_eq!("".parse(), Ok(ReplicaSelector::Leader));
        let refused = "com.example.MySelector".parse::<ReplicaSelector>().unwrap_err();
        assert!(
            refused.contains("com.example.MySelector") && refused.contains("RackAwareReplicaSelector"),
            "{refused}"
        );
    }
}
