//! CreatePartitions (key 37): grow a topic to `count` partitions.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::broker::Broker;

use super::message;

pub fn handle(broker: &Broker, request: CreatePartitionsRequest, _version: i16) -> CreatePartitionsResponse {
    let results = request
        .topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            let Some(topic) = broker.topic(&t.name.0) else {
                return result.with_error_code(ResponseError::UnknownTopicOrPartition.code());
            };
            if let Some(assignments) = &t.assignments
                && assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != broker.node_id))
            {
                return result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(message(Some("assignments must name existing brokers".into())));
            }
            match broker.create_partitions(&topic, t.count, request.validate_only) {
                Ok(()) => result,
                Err(e) => result.with_error_code(e.code.code()).with_error_message(message(e.message)),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}
