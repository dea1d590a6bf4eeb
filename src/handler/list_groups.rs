//! ListGroups, with KIP-518 state filters (v4+) and KIP-848 type filters (v5+).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use std::sync::Arc;

use kafka_protocol::messages::ResponseKind;

use crate::broker::Broker;
use crate::group::durability::{Barrier, durable};
use crate::handler::GroupReply;

/// Lists the groups, answering once the writes their states reflect are durable.
pub fn start(b: &Arc<Broker>, r: ListGroupsRequest, v: i16) -> GroupReply {
    let (response, barriers) = handle(b, r, v);
    Box::pin(async move {
        for barrier in barriers {
            if let Err(e) = durable(barrier).await {
                return ResponseKind::ListGroups(ListGroupsResponse::default().with_error_code(e.code()));
            }
        }
        ResponseKind::ListGroups(response)
    })
}

fn handle(b: &Broker, r: ListGroupsRequest, v: i16) -> (ListGroupsResponse, Vec<Barrier>) {
    let (listings, barriers) = match b.groups.list(b) {
        Ok(l) => l,
        Err(e) => return (ListGroupsResponse::default().with_error_code(e.code()), Vec::new()),
    };
    let wanted =
        |filter: &[StrBytes], value: &str| filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value));
    let mut groups: Vec<ListedGroup> = listings
        .into_iter()
        .filter(|l| wanted(&r.states_filter, l.state) && wanted(&r.types_filter, l.group_type))
        .map(|l| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(l.group_id)))
                .with_protocol_type(StrBytes::from_string(l.protocol_type))
                .with_group_state(if v >= 4 { StrBytes::from_static_str(l.state) } else { StrBytes::default() })
                .with_group_type(if v >= 5 { StrBytes::from_static_str(l.group_type) } else { StrBytes::default() })
        })
        .collect();
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    (ListGroupsResponse::default().with_error_code(0).with_groups(groups), barriers)
}
