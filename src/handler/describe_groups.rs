//! DescribeGroups: state, protocol and members of classic groups.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use std::sync::Arc;

use kafka_protocol::messages::ResponseKind;

use crate::broker::Broker;
use crate::group::classic::ClassicState;
use crate::group::consumer::GROUP_AUTHORIZED_OPERATIONS;
use crate::group::coordinator::Group;
use crate::group::durability::{Barrier, durable};
use crate::handler::GroupReply;

/// Describes the groups, answering once the writes their states reflect are durable.
pub fn start(b: &Arc<Broker>, r: DescribeGroupsRequest, v: i16) -> GroupReply {
    let (mut response, barriers) = handle(b, r, v);
    Box::pin(async move {
        for (i, barrier) in barriers {
            if let Err(e) = durable(barrier).await
                && let Some(d) = response.groups.get_mut(i)
            {
                *d = DescribedGroup::default().with_group_id(d.group_id.clone()).with_error_code(e.code());
            }
        }
        ResponseKind::DescribeGroups(response)
    })
}

fn handle(b: &Broker, r: DescribeGroupsRequest, v: i16) -> (DescribeGroupsResponse, Vec<(usize, Barrier)>) {
    let string = |s: String| StrBytes::from_string(s);
    let mut barriers = Vec::new();
    let groups = r
        .groups
        .into_iter()
        .enumerate()
        .map(|(i, group_id)| {
            // Only classic groups: Kafka describes a KIP-848 group here as not found.
            let described = b.groups.with_group(b, &group_id, |entry| match entry.map(|e| &e.group) {
                Some(Group::Classic(g)) => {
                    let members = g
                        .describe_members()
                        .into_iter()
                        .map(|(member_id, instance, client_id, host, metadata, assignment)| {
                            DescribedGroupMember::default()
                                .with_member_id(string(member_id))
                                .with_group_instance_id(if v >= 4 { instance.map(string) } else { None })
                                .with_client_id(string(client_id))
                                .with_client_host(string(host))
                                .with_member_metadata(metadata)
                                .with_member_assignment(assignment)
                        })
                        .collect();
                    Some((
                        g.state(),
                        g.protocol_type().unwrap_or_default().to_string(),
                        g.protocol_name().unwrap_or_default().to_string(),
                        members,
                    ))
                }
                _ => None,
            });
            let mut d = DescribedGroup::default().with_group_id(group_id).with_authorized_operations(i32::MIN);
            let described = described.map(|(found, barrier)| {
                barriers.push((i, barrier));
                found
            });
            match described {
                Err(e) => d.error_code = e.code(),
                Ok(Some((state, protocol_type, protocol, members))) => {
                    d.group_state = StrBytes::from_static_str(state.name());
                    d.protocol_type = string(protocol_type);
                    d.protocol_data = string(protocol);
                    d.members = members;
                }
                // Kafka describes an unknown group as Dead; v6+ also says it was not found.
                Ok(None) => {
                    d.group_state = StrBytes::from_static_str(ClassicState::Dead.name());
                    if v >= 6 {
                        d.error_code = ResponseError::GroupIdNotFound.code();
                        d.error_message = Some(string(format!("Group {} not found.", d.group_id.as_str())));
                    }
                }
            }
            if v >= 3 && r.include_authorized_operations {
                d.authorized_operations = GROUP_AUTHORIZED_OPERATIONS;
            }
            d
        })
        .collect();
    (DescribeGroupsResponse::default().with_groups(groups), barriers)
}
