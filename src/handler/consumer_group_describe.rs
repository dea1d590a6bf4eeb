//! ConsumerGroupDescribe (KIP-848): members, assignments and epochs of consumer groups.

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ResponseKind};

use crate::broker::Broker;
use crate::group::durability::durable;
use crate::handler::GroupReply;

/// Describes the groups, answering once the writes their states reflect are durable.
pub fn start(b: &Arc<Broker>, r: ConsumerGroupDescribeRequest, v: i16) -> GroupReply {
    let (groups, barriers): (Vec<_>, Vec<_>) =
        r.group_ids.iter().map(|id| b.groups.consumer_describe(b, id, v, r.include_authorized_operations)).unzip();
    Box::pin(async move {
        let mut groups = groups;
        for (d, barrier) in groups.iter_mut().zip(barriers) {
            if let Err(e) = durable(barrier).await {
                *d = DescribedGroup::default().with_group_id(d.group_id.clone()).with_error_code(e.code());
            }
        }
        ResponseKind::ConsumerGroupDescribe(ConsumerGroupDescribeResponse::default().with_groups(groups))
    })
}
