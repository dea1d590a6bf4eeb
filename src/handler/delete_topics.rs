//! DeleteTopics (key 20): by name (v0–5) or by name or id (v6+).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use crate::broker::Broker;

use super::{message, topic_name};

pub fn handle(broker: &Broker, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let targets: Vec<(Option<TopicName>, uuid::Uuid)> = if version >= 6 {
        request.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        request.topic_names.into_iter().map(|n| (Some(n), uuid::Uuid::nil())).collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let topic = match &name {
                Some(n) => broker.topic(&n.0),
                None => broker.topics.get_by_id(id),
            };
            let Some(topic) = topic else {
                let code = if name.is_some() { ResponseError::UnknownTopicOrPartition } else { ResponseError::UnknownTopicId };
                return DeletableTopicResult::default().with_name(name).with_topic_id(id).with_error_code(code.code());
            };
            let result = DeletableTopicResult::default().with_name(Some(topic_name(&topic.name))).with_topic_id(topic.id);
            match broker.delete_topic(&topic) {
                Ok(()) => result,
                Err(e) => result.with_error_code(e.code.code()).with_error_message(message(e.message)),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}
