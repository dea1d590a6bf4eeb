//! ConsumerGroupDescribe (KIP-848): members, assignments and epochs of consumer groups.

use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

use crate::broker::Broker;

pub fn handle(b: &Broker, r: ConsumerGroupDescribeRequest, v: i16) -> ConsumerGroupDescribeResponse {
    let groups =
        r.group_ids.iter().map(|id| b.groups.consumer_describe(b, id, v, r.include_authorized_operations)).collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
