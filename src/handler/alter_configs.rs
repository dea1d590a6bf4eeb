//! AlterConfigs (key 33): replaces a topic's whole set of config overrides. Broker
//! settings are static in Jet (given at start), so altering them is refused.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use crate::broker::topic_config;
use crate::broker::{ApiError, Broker};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::message;

/// Validates and applies a new override set to a topic (shared with the incremental API).
pub fn apply_topic_configs(
    broker: &Broker,
    topic_name: &str,
    build: impl FnOnce(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError>,
    validate_only: bool,
) -> Result<(), ApiError> {
    let topic = broker.topic(topic_name).ok_or_else(|| ApiError::new(ResponseError::UnknownTopicOrPartition))?;
    let configs = build(topic.configs())?;
    for (k, v) in &configs {
        topic_config::validate(k, v)
            .map_err(|e| ApiError::with_message(ResponseError::InvalidConfig, e.to_string()))?;
    }
    if validate_only {
        return Ok(());
    }
    broker.set_topic_configs(&topic, configs)
}

/// Alters one resource of an (Incremental)AlterConfigs request: topics get `build`'s
/// new override set; broker settings are static in Jet (given at start), so a broker has
/// no dynamic overrides: a change that leaves none (deleting overrides, as
/// `kafka-reassign-partitions.sh --verify` does to clear throttles) changes nothing and
/// succeeds, any other is refused.
pub fn alter_resource(
    broker: &Broker,
    resource_type: i8,
    resource_name: &str,
    build: impl FnOnce(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError>,
    validate_only: bool,
) -> Result<(), ApiError> {
    match resource_type {
        RESOURCE_TOPIC => apply_topic_configs(broker, resource_name, build, validate_only),
        RESOURCE_BROKER if build(BTreeMap::new())?.is_empty() => Ok(()),
        RESOURCE_BROKER => Err(ApiError::with_message(
            ResponseError::InvalidRequest,
            "Jet broker settings are static: set them with flags or --set at start",
        )),
        other => {
            Err(ApiError::with_message(ResponseError::InvalidRequest, format!("Unsupported resource type {other}")))
        }
    }
}

pub fn handle(broker: &Broker, request: AlterConfigsRequest, _version: i16) -> AlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|res| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            // AlterConfigs replaces the whole override set.
            let replacement = |_| {
                Ok(res
                    .configs
                    .iter()
                    .filter_map(|c| c.value.as_ref().map(|v| (c.name.to_string(), v.to_string())))
                    .collect())
            };
            let outcome = alter_resource(
                broker,
                res.resource_type,
                res.resource_name.as_str(),
                replacement,
                request.validate_only,
            );
            match outcome {
                Ok(()) => response,
                Err(e) => response.with_error_code(e.code.code()).with_error_message(message(e.message)),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}
