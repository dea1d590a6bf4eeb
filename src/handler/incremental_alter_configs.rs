//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT on individual
//! topic configs, leaving the others as they are.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use crate::broker::topic_config;
use crate::broker::{ApiError, Broker};

use super::alter_configs::alter_resource;
use super::message;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// Applies one resource's operations to its current override set.
fn apply_ops(
    broker: &Broker,
    mut configs: BTreeMap<String, String>,
    ops: &[AlterableConfig],
) -> Result<BTreeMap<String, String>, ApiError> {
    for c in ops {
        let name = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string());
        match c.config_operation {
            SET => {
                let v = value.ok_or_else(|| {
                    ApiError::with_message(
                        ResponseError::InvalidRequest,
                        format!("Null value not supported for {name}"),
                    )
                })?;
                configs.insert(name, v);
            }
            DELETE => {
                configs.remove(&name);
            }
            APPEND | SUBTRACT => {
                // List configs: start from the effective value (override or default).
                let current = configs.get(&name).cloned().or_else(|| {
                    topic_config::find(&name).map(|d| topic_config::resolve(&broker.config.kafka, &configs, d).value)
                });
                let mut items: Vec<String> = current
                    .unwrap_or_default()
                    .split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                for v in value.unwrap_or_default().split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    if c.config_operation == APPEND {
                        if !items.iter().any(|i| i == v) {
                            items.push(v.to_string());
                        }
                    } else {
                        items.retain(|i| i != v);
                    }
                }
                configs.insert(name, items.join(","));
            }
            op => {
                return Err(ApiError::with_message(
                    ResponseError::InvalidRequest,
                    format!("Unknown config operation {op}"),
                ));
            }
        }
    }
    Ok(configs)
}

pub fn handle(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let responses = request
        .resources
        .into_iter()
        .map(|res| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let ops = |configs| apply_ops(broker, configs, &res.configs);
            match alter_resource(broker, res.resource_type, res.resource_name.as_str(), ops, request.validate_only) {
                Ok(()) => response,
                Err(e) => response.with_error_code(e.code.code()).with_error_message(message(e.message)),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::test_support::broker;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
    use kafka_protocol::protocol::StrBytes;

    fn on_broker(op: i8, value: Option<&str>) -> i16 {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(4)
                .with_resource_name(StrBytes::from_static_str("1"))
                .with_configs(vec![
                    AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("leader.replication.throttled.rate"))
                        .with_config_operation(op)
                        .with_value(value.map(|v| StrBytes::from_string(v.to_string()))),
                ]),
        ]);
        handle(&b, request, 1).responses[0].error_code
    }

    #[test]
    fn a_broker_has_no_dynamic_overrides_to_delete_and_takes_none() {
        assert_eq!(on_broker(DELETE, None), 0, "clearing a throttle that is not set changes nothing");
        assert_eq!(on_broker(SET, Some("1000")), ResponseError::InvalidRequest.code(), "settings are static");
    }
}
