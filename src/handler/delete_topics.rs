//! DeleteTopics (key 20): by name (v0–5) or by name or id (v6+).
//!
//! As in Kafka's controller: an entry giving both a name and an id, or neither, is an
//! `INVALID_REQUEST`, and a name or id given twice is answered once with
//! `INVALID_REQUEST` and not deleted.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use crate::broker::Broker;

use super::{message, split_duplicates, topic_name};

/// One topic the request names, by name or by id.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Target {
    Name(String),
    Id(uuid::Uuid),
}

fn invalid(name: Option<TopicName>, id: uuid::Uuid, msg: &str) -> DeletableTopicResult {
    DeletableTopicResult::default()
        .with_name(name)
        .with_topic_id(id)
        .with_error_code(ResponseError::InvalidRequest.code())
        .with_error_message(message(Some(msg.to_string())))
}

pub fn handle(broker: &Broker, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let mut responses = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    if version >= 6 {
        for t in request.topics {
            match (t.name, t.topic_id.is_nil()) {
                (None, true) => responses.push(invalid(None, t.topic_id, "Neither topic name nor id were specified.")),
                (None, false) => targets.push(Target::Id(t.topic_id)),
                (Some(n), true) => targets.push(Target::Name(n.0.to_string())),
                (Some(n), false) => {
                    responses.push(invalid(Some(n), t.topic_id, "You may not specify both topic name and topic id."));
                }
            }
        }
    } else {
        targets.extend(request.topic_names.into_iter().map(|n| Target::Name(n.0.to_string())));
    }
    let (targets, duplicates) = split_duplicates(targets, Target::clone);
    for t in targets {
        let (name, id) = match &t {
            Target::Name(n) => (Some(topic_name(n)), uuid::Uuid::nil()),
            Target::Id(id) => (None, *id),
        };
        let topic = match &t {
            Target::Name(n) => broker.topic(n),
            Target::Id(id) => broker.topics.get_by_id(*id),
        };
        let Some(topic) = topic else {
            let code =
                if name.is_some() { ResponseError::UnknownTopicOrPartition } else { ResponseError::UnknownTopicId };
            responses
                .push(DeletableTopicResult::default().with_name(name).with_topic_id(id).with_error_code(code.code()));
            continue;
        };
        let result = DeletableTopicResult::default().with_name(Some(topic_name(&topic.name))).with_topic_id(topic.id);
        responses.push(match broker.delete_topic(&topic) {
            Ok(()) => result,
            Err(e) => result.with_error_code(e.code.code()).with_error_message(message(e.message)),
        });
    }
    for t in duplicates {
        responses.push(match t {
            Target::Name(n) => invalid(Some(topic_name(&n)), uuid::Uuid::nil(), "Duplicate topic name."),
            Target::Id(id) => invalid(None, id, "Duplicate topic id."),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
