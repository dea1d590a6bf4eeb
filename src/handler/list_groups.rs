//! ListGroups, with KIP-518 state filters (v4+) and KIP-848 type filters (v5+).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub fn handle(b: &Broker, r: ListGroupsRequest, v: i16) -> ListGroupsResponse {
    let listings = match b.groups.list() {
        Ok(l) => l,
        Err(e) => return ListGroupsResponse::default().with_error_code(e.code()),
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
    ListGroupsResponse::default().with_error_code(0).with_groups(groups)
}
