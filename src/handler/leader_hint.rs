//! KIP-951: a Produce (v10+) or Fetch (v16+) that reaches a broker which does not lead the
//! partition is answered with `NOT_LEADER_OR_FOLLOWER` plus the leader this broker knows
//! (`current_leader`: id and epoch) and that leader's address (`node_endpoints`), so the
//! client moves at once instead of refreshing its metadata first.

use std::collections::BTreeMap;

use kafka_protocol::messages::{BrokerId, fetch_response, produce_response};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::broker::replica::{Leader, Replica};
use crate::cluster::gossip::BrokerIdentity;
use crate::config::ListenerId;

/// The leaders named in one response, and their endpoints on the request's listener.
pub struct LeaderHints {
    listener: ListenerId,
    endpoints: BTreeMap<i32, BrokerIdentity>,
}

impl LeaderHints {
    pub fn on(listener: ListenerId) -> LeaderHints {
        LeaderHints { listener, endpoints: BTreeMap::new() }
    }

    /// The leader (id, epoch) of `partition` when another live broker leads it, noting
    /// that broker's endpoint for the response.
    pub fn leader_of(&mut self, broker: &Broker, partition: &dyn Replica) -> Option<(i32, i32)> {
        let Leader::Broker(id) = partition.leader() else { return None };
        if let std::collections::btree_map::Entry::Vacant(slot) = self.endpoints.entry(id) {
            slot.insert(broker.cluster.live_brokers_on(self.listener).into_iter().find(|b| b.broker_id == id)?);
        }
        Some((id, partition.leader_epoch()))
    }

    pub fn produce_leader((id, epoch): (i32, i32)) -> produce_response::LeaderIdAndEpoch {
        produce_response::LeaderIdAndEpoch::default().with_leader_id(BrokerId(id)).with_leader_epoch(epoch)
    }

    pub fn fetch_leader((id, epoch): (i32, i32)) -> fetch_response::LeaderIdAndEpoch {
        fetch_response::LeaderIdAndEpoch::default().with_leader_id(BrokerId(id)).with_leader_epoch(epoch)
    }

    pub fn produce_endpoints(&self) -> Vec<produce_response::NodeEndpoint> {
        self.endpoints
            .values()
            .map(|b| {
                produce_response::NodeEndpoint::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(StrBytes::from_string(b.kafka.host.clone()))
                    .with_port(i32::from(b.kafka.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
            })
            .collect()
    }

    pub fn fetch_endpoints(&self) -> Vec<fetch_response::NodeEndpoint> {
        self.endpoints
            .values()
            .map(|b| {
                fetch_response::NodeEndpoint::default()
                    .with_node_id(BrokerId(b.broker_id))
                    .with_host(StrBytes::from_string(b.kafka.host.clone()))
                    .with_port(i32::from(b.kafka.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
            })
            .collect()
    }
}
