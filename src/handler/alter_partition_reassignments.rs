//! AlterPartitionReassignments (key 45): moves partitions to other replicas, or cancels a
//! move (`replicas` null). On a cluster the controller records the moves and the
//! partitions' leaders carry them out (`cluster::runtime::reassign`); the answer comes
//! once they are recorded, as Kafka's does. A single node has one broker: a partition may
//! only "move" to where it is.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

pub fn handle(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
    _version: i16,
) -> AlterPartitionReassignmentsResponse {
    let Some(cluster) = broker.replication() else {
        return on_single_node(broker, &request);
    };
    match cluster.alter_reassignments(&request) {
        Ok(response) => response,
        Err(e) => AlterPartitionReassignmentsResponse::default()
            .with_allow_replication_factor_change(request.allow_replication_factor_change)
            .with_error_code(e.code.code())
            .with_error_message(e.message.map(StrBytes::from_string)),
    }
}

fn on_single_node(
    broker: &Broker,
    request: &AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let responses = request
        .topics
        .iter()
        .map(|t| {
            let topic = broker.topics.get(&t.name.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let exists = topic.as_ref().is_some_and(|t| (0..t.partition_count()).contains(&p.partition_index));
                    let (code, message) = match &p.replicas {
                        _ if !exists => (Some(ResponseError::UnknownTopicOrPartition), None),
                        None => (Some(ResponseError::NoReassignmentInProgress), None),
                        Some(r) if r.len() == 1 && r[0].0 == broker.node_id => (None, None),
                        Some(_) => (
                            Some(ResponseError::InvalidReplicaAssignment),
                            Some(format!("This broker (id {}) is the only one: a single node.", broker.node_id)),
                        ),
                    };
                    ReassignablePartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.map_or(0, |c| c.code()))
                        .with_error_message(message.map(StrBytes::from_string))
                })
                .collect();
            ReassignableTopicResponse::default().with_name(t.name.clone()).with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(request.allow_replication_factor_change)
        .with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::test_support::broker;
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};

    #[test]
    fn a_single_node_moves_nothing_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        b.create_topic("t", 1, 1, Default::default(), false).unwrap();
        let me = BrokerId(b.node_id);
        let part =
            |index, replicas| ReassignablePartition::default().with_partition_index(index).with_replicas(replicas);
        let request = AlterPartitionReassignmentsRequest::default().with_topics(vec![
            ReassignableTopic::default().with_name(crate::cli::session::topic_name("t")).with_partitions(vec![
                part(0, Some(vec![me])),
                part(0, Some(vec![BrokerId(b.node_id + 1)])),
                part(0, None),
                part(1, Some(vec![me])),
            ]),
        ]);
        let r = handle(&b, request, 1);
        let codes: Vec<i16> = r.responses[0].partitions.iter().map(|p| p.error_code).collect();
        assert_eq!(
            codes,
            vec![
                0,
                ResponseError::InvalidReplicaAssignment.code(),
                ResponseError::NoReassignmentInProgress.code(),
                ResponseError::UnknownTopicOrPartition.code()
            ]
        );
    }
}
