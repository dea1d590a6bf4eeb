//! DescribeConfigs (key 32, v1+): every topic or broker config with its value, source
//! (which is also how clients derive "is default"), type (v3+), synonyms (when asked)
//! and documentation (v3+).

use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::broker::topic_config::{ConfigSource, ConfigType, TOPIC_CONFIGS, resolve};
use crate::config::BrokerConfig;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// `(name, type, value, Kafka's default)` of every broker setting Jet has.
pub fn broker_settings(config: &BrokerConfig) -> Vec<(&'static str, ConfigType, String, &'static str)> {
    use ConfigType::{Boolean, Int, List, Long};
    let k = &config.kafka;
    let advertised: Vec<String> = config
        .advertised_listeners()
        .into_iter()
        .map(|(name, host, port)| format!("{name}://{}", crate::cluster::gossip::HostPort::new(host, port)))
        .collect();
    vec![
        ("advertised.listeners", ConfigType::String, advertised.join(","), ""),
        ("auto.create.topics.enable", Boolean, k.auto_create_topics_enable.to_string(), "true"),
        ("broker.id", Int, config.node_id.to_string(), "-1"),
        ("compression.type", ConfigType::String, k.compression_type.clone(), "producer"),
        ("fetch.max.bytes", Int, k.fetch_max_bytes.to_string(), "57671680"),
        ("replica.lag.time.max.ms", Long, k.replica_lag_time_max_ms.to_string(), "30000"),
        ("auto.leader.rebalance.enable", Boolean, k.auto_leader_rebalance_enable.to_string(), "true"),
        ("leader.imbalance.check.interval.seconds", Long, k.leader_imbalance_check_interval_seconds.to_string(), "300"),
        ("leader.imbalance.per.broker.percentage", Int, k.leader_imbalance_per_broker_percentage.to_string(), "10"),
        ("min.insync.replicas", Int, k.min_insync_replicas.to_string(), "1"),
        ("default.replication.factor", Int, k.default_replication_factor.to_string(), "1"),
        ("listeners", ConfigType::String, config.listen.to_string(), "PLAINTEXT://:9092"),
        ("log.cleanup.policy", List, k.log_cleanup_policy.clone(), "delete"),
        ("log.dirs", ConfigType::String, config.data_dir.display().to_string(), "/tmp/kafka-logs"),
        ("log.flush.interval.ms", Long, k.log_flush_interval_ms.map(|v| v.to_string()).unwrap_or_default(), ""),
        ("log.index.interval.bytes", Int, k.log_index_interval_bytes.to_string(), "4096"),
        ("log.message.timestamp.type", ConfigType::String, k.log_message_timestamp_type.clone(), "CreateTime"),
        ("log.preallocate", Boolean, k.log_preallocate.to_string(), "false"),
        ("log.retention.bytes", Long, k.log_retention_bytes.to_string(), "-1"),
        ("log.retention.check.interval.ms", Long, k.log_retention_check_interval_ms.to_string(), "300000"),
        ("log.retention.ms", Long, k.log_retention_ms.to_string(), "604800000"),
        ("log.roll.ms", Long, k.log_roll_ms.to_string(), "604800000"),
        ("log.segment.bytes", Int, k.log_segment_bytes.to_string(), "1073741824"),
        ("log.max.open.segment.files", Long, k.log_max_open_segment_files.to_string(), "4096"),
        ("max.broker.partitions", Long, k.max_broker_partitions.to_string(), "10000"),
        ("message.max.bytes", Int, k.message_max_bytes.to_string(), "1048588"),
        ("node.id", Int, config.node_id.to_string(), "-1"),
        ("num.partitions", Int, k.num_partitions.to_string(), "1"),
        ("offsets.topic.num.partitions", Int, k.offsets_topic_num_partitions.to_string(), "50"),
        ("offsets.topic.segment.bytes", Int, k.offsets_topic_segment_bytes.to_string(), "104857600"),
        ("queued.max.request.bytes", Long, k.queued_max_request_bytes.to_string(), "-1"),
        ("socket.request.max.bytes", Int, k.socket_request_max_bytes.to_string(), "104857600"),
    ]
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    keys.as_ref().is_none_or(|k| k.is_empty() || k.iter().any(|x| x.as_str() == name))
}

fn entry(
    name: &str,
    value: String,
    source: ConfigSource,
    kind: ConfigType,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(s(name))
        .with_value(Some(s(value)))
        .with_read_only(false)
        .with_config_source(source as i8)
        .with_is_sensitive(false);
    if version >= 3 {
        r.config_type = kind as i8;
    }
    r
}

fn describe_topic(
    broker: &Broker,
    name: &str,
    keys: &Option<Vec<StrBytes>>,
    synonyms: bool,
    docs: bool,
    version: i16,
) -> Result<Vec<DescribeConfigsResourceResult>, ResponseError> {
    let topic = broker.topic(name).ok_or(ResponseError::UnknownTopicOrPartition)?;
    let overrides = topic.configs();
    let settings = &broker.config.kafka;
    Ok(TOPIC_CONFIGS
        .iter()
        .filter(|d| wanted(keys, d.name))
        .map(|def| {
            let r = resolve(settings, &overrides, def);
            let mut e = entry(def.name, r.value, r.source, def.kind, version);
            if synonyms {
                if let Some(v) = overrides.get(def.name) {
                    e.synonyms.push(
                        DescribeConfigsSynonym::default()
                            .with_name(s(def.name))
                            .with_value(Some(s(v.clone())))
                            .with_source(ConfigSource::DynamicTopic as i8),
                    );
                }
                let no_overrides = Default::default();
                let broker_level = resolve(settings, &no_overrides, def);
                if let (Some(syn), ConfigSource::StaticBroker) = (def.broker_synonym, broker_level.source) {
                    e.synonyms.push(
                        DescribeConfigsSynonym::default()
                            .with_name(s(syn))
                            .with_value(Some(s(broker_level.value)))
                            .with_source(ConfigSource::StaticBroker as i8),
                    );
                }
                // Kafka lists only broker-level synonyms after the topic override: a
                // config without a broker synonym has no default entry.
                if let Some(syn) = def.broker_synonym {
                    e.synonyms.push(
                        DescribeConfigsSynonym::default()
                            .with_name(s(syn))
                            .with_value(Some(s(def.kafka_default)))
                            .with_source(ConfigSource::Default as i8),
                    );
                }
            }
            if docs && version >= 3 {
                e.documentation = Some(s(def.doc));
            }
            e
        })
        .collect())
}

fn describe_broker(
    broker: &Broker,
    name: &str,
    keys: &Option<Vec<StrBytes>>,
    version: i16,
) -> Result<Vec<DescribeConfigsResourceResult>, ResponseError> {
    if name.is_empty() {
        // The cluster-wide dynamic defaults: Jet's settings are all static.
        return Ok(Vec::new());
    }
    if name != broker.node_id.to_string() {
        return Err(ResponseError::InvalidRequest);
    }
    Ok(broker_settings(&broker.config)
        .into_iter()
        .filter(|(n, ..)| wanted(keys, n))
        .map(|(n, kind, value, default)| {
            let source = if value == default { ConfigSource::Default } else { ConfigSource::StaticBroker };
            entry(n, value, source, kind, version)
        })
        .collect())
}

pub fn handle(broker: &Broker, request: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|res| {
            let result = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let name = res.resource_name.as_str();
            let configs = match res.resource_type {
                RESOURCE_TOPIC => describe_topic(
                    broker,
                    name,
                    &res.configuration_keys,
                    request.include_synonyms,
                    request.include_documentation,
                    version,
                ),
                RESOURCE_BROKER => describe_broker(broker, name, &res.configuration_keys, version),
                // Kafka requires this broker's id here, "" included.
                RESOURCE_BROKER_LOGGER if name == broker.node_id.to_string() => Ok(Vec::new()),
                RESOURCE_BROKER_LOGGER => Err(ResponseError::InvalidRequest),
                _ => Err(ResponseError::InvalidRequest),
            };
            match configs {
                Ok(configs) => result.with_configs(configs),
                Err(code) => result
                    .with_error_code(code.code())
                    .with_error_message(Some(s(format!("{code}: {} {name}", res.resource_type)))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
