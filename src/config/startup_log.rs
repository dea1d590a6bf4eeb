//! The settings logged once at start: the effective broker configuration in one line,
//! and the Kafka settings accepted that do not apply to Jet in another.

use super::BrokerConfig;
use super::layers::{Given, Resolution};

fn listed(given: &[Given]) -> String {
    given.iter().map(|g| format!("{}={} ({})", g.key, g.value, g.source)).collect::<Vec<_>>().join(", ")
}

/// Logs the effective configuration (no secrets exist in it today: Jet refuses every
/// security setting).
pub fn log_settings(config: &BrokerConfig, resolution: &Resolution) {
    let k = &config.kafka;
    tracing::info!(
        config_file = resolution.config_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        node_id = config.node_id,
        listeners = %config.listen,
        advertised_listeners = config.advertised_listener.as_deref().unwrap_or("(from the listeners)"),
        log_dirs = %config.data_dir.display(),
        broker_rack = config.broker_rack.as_deref().unwrap_or(""),
        gossip_listen = if config.cluster.gossip_enabled() { config.cluster.gossip_bind().to_string() } else { "off".into() },
        seeds = config.cluster.seeds.join(","),
        bootstrap_expect = config.cluster.bootstrap_expect.map(|n| n.to_string()).unwrap_or_default(),
        gossip_encrypted = config.cluster.gossip_key.is_some(),
        raft_listen = %config.cluster.raft_bind(),
        num_partitions = k.num_partitions,
        default_replication_factor = k.default_replication_factor,
        replica_selector_class = ?k.replica_selector_class,
        replica_lag_time_max_ms = k.replica_lag_time_max_ms,
        auto_leader_rebalance_enable = k.auto_leader_rebalance_enable,
        leader_imbalance_check_interval_seconds = k.leader_imbalance_check_interval_seconds,
        min_insync_replicas = k.min_insync_replicas,
        log_retention_ms = k.log_retention_ms,
        log_retention_bytes = k.log_retention_bytes,
        log_segment_bytes = k.log_segment_bytes,
        log_flush_interval_ms = k.log_flush_interval_ms.map(|ms| ms.to_string()).unwrap_or_else(|| "fsync every write".into()),
        auto_create_topics_enable = k.auto_create_topics_enable,
        set_by_file_or_set = listed(&resolution.applied),
        file_settings_overridden_by_env_or_flags = listed(&resolution.overridden),
        "effective configuration"
    );
    if !resolution.not_applicable.is_empty() {
        tracing::info!(
            settings = listed(&resolution.not_applicable),
            "accepted Kafka settings that do not apply to Jet (ignored)"
        );
    }
}
