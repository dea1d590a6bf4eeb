//! CreatePartitions (key 37): grow a topic to `count` partitions.
//!
//! As in Kafka's controller: a name given twice is answered once with
//! `INVALID_REQUEST`, manual assignments must cover exactly the added partitions, each
//! naming registered brokers once (on a single node: this broker), and a request adding more than
//! [`MAX_PARTITIONS_PER_REQUEST`] partitions fails as a whole with `POLICY_VIOLATION`.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use crate::broker::{ApiError, Broker, MAX_PARTITIONS_PER_REQUEST, too_many_partitions};

use super::{message, split_duplicates};

fn error(result: CreatePartitionsTopicResult, e: ApiError) -> CreatePartitionsTopicResult {
    result.with_error_code(e.code.code()).with_error_message(message(e.message))
}

fn check_assignments(broker: &Broker, t: &CreatePartitionsTopic, current: i32) -> Result<(), ApiError> {
    let Some(assignments) = &t.assignments else {
        return Ok(());
    };
    let invalid = |m: String| ApiError::with_message(ResponseError::InvalidReplicaAssignment, m);
    let additional = i64::from(t.count) - i64::from(current);
    if additional > 0 && assignments.len() as i64 != additional {
        return Err(invalid(format!(
            "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        )));
    }
    let registered = super::registered_brokers(broker);
    for a in assignments {
        let ids: Vec<i32> = a.broker_ids.iter().map(|b| b.0).collect();
        super::check_replica_list(&ids, &registered).map_err(invalid)?;
    }
    Ok(())
}

pub fn handle(broker: &Broker, request: CreatePartitionsRequest, _version: i16) -> CreatePartitionsResponse {
    let (topics, duplicates): (Vec<CreatePartitionsTopic>, Vec<String>) =
        split_duplicates(request.topics, |t| t.name.0.to_string());
    let added: i64 = topics
        .iter()
        .filter_map(|t| Some(i64::from(t.count) - i64::from(broker.topic(&t.name.0)?.partition_count())))
        .filter(|&n| n > 0)
        .sum();
    let mut results: Vec<CreatePartitionsTopicResult> = topics
        .into_iter()
        .map(|t| {
            let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            if added > MAX_PARTITIONS_PER_REQUEST {
                return error(result, too_many_partitions());
            }
            let Some(topic) = broker.topic(&t.name.0) else {
                return error(result, ApiError::new(ResponseError::UnknownTopicOrPartition));
            };
            if let Err(e) = check_assignments(broker, &t, topic.partition_count()) {
                return error(result, e);
            }
            let assignments =
                t.assignments.map(|a| a.into_iter().map(|r| r.broker_ids.into_iter().map(|b| b.0).collect()).collect());
            match broker.create_partitions(&topic, t.count, assignments, request.validate_only) {
                Ok(()) => result,
                Err(e) => error(result, e),
            }
        })
        .collect();
    for name in duplicates {
        let e = ApiError::with_message(ResponseError::InvalidRequest, "Duplicate topic name.");
        results.push(error(CreatePartitionsTopicResult::default().with_name(super::topic_name(&name)), e));
    }
    CreatePartitionsResponse::default().with_results(results)
}
