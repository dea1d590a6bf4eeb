//! Kafka 4.x broker settings that Jet does not implement, sorted by what taking them
//! silently would do: tuning knobs that do not apply to Jet are accepted and listed at
//! start (a copied `server.properties` works); settings whose meaning Jet cannot keep and
//! whose loss would weaken safety are refused. Security settings are refused by
//! `crate::security`. Anything else unknown is refused as a likely typo.

/// What Jet does with a Kafka setting it has no use for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Accepted and listed at start as not applying to Jet.
    NotApplicable,
    /// Refused: ignoring it would silently change what the user asked for.
    Refused(&'static str),
}

/// Prefixes of settings for parts Kafka has and Jet does not: ZooKeeper, the KRaft
/// controller quorum and metadata log, replica fetchers, the thread pools and socket
/// buffers, the transaction/share coordinators' internal topics, quotas, remote storage.
const NOT_APPLICABLE_PREFIXES: &[&str] = &[
    "zookeeper.",
    "controller.",
    "metadata.",
    "replica.",
    "socket.send.",
    "socket.receive.",
    "socket.listen.",
    "socket.connection.",
    "transaction.state.log.",
    "transaction.",
    "transactional.id.",
    "share.coordinator.",
    "group.share.",
    "controlled.shutdown.",
    "log.cleaner.io.",
    "log.flush.offset.checkpoint.",
    "log.flush.start.offset.checkpoint.",
    "log.flush.scheduler.",
    "quota.",
    "client.quota.",
    "remote.log.",
    "log.local.retention.",
    "broker.heartbeat.",
    "broker.session.",
    "initial.broker.registration.",
    "offsets.topic.",
    "offsets.load.",
    "offsets.commit.",
    "connections.max.",
    "fetch.purgatory.",
    "producer.purgatory.",
    "delete.records.purgatory.",
    "telemetry.",
    "sasl.mechanism.controller.",
];

/// Single settings that do not apply to Jet.
const NOT_APPLICABLE_KEYS: &[&str] = &[
    "process.roles",
    "num.network.threads",
    "num.io.threads",
    "num.replica.fetchers",
    "num.recovery.threads.per.data.dir",
    "num.replica.alter.log.dirs.threads",
    "broker.id.generation.enable",
    "inter.broker.protocol.version",
    "log.message.format.version",
    "background.threads",
    "queued.max.requests",
    "request.timeout.ms",
    "log.index.size.max.bytes",
    "log.segment.delete.delay.ms",
    // Fsync every N messages: Jet already fsyncs every write before acknowledging it.
    "log.flush.interval.messages",
    "log.dir.failure.timeout.ms",
    "unstable.api.versions.enable",
    "unstable.feature.versions.enable",
    "group.coordinator.threads",
    "group.coordinator.rebalance.protocols",
    "group.coordinator.new.enable",
    "metric.reporters",
    "metrics.num.samples",
    "metrics.recording.level",
    "metrics.sample.window.ms",
    "kafka.metrics.reporters",
    "kafka.metrics.polling.interval.secs",
    "create.topic.policy.class.name",
    "alter.config.policy.class.name",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.zstd.level",
    "producer.id.expiration.ms.check",
];

/// Classifies a setting Jet has no typed field for. `None`: unknown to Jet (a typo, or a
/// setting of a newer Kafka) — the caller refuses it.
pub fn classify(key: &str, value: &str) -> Option<Disposition> {
    let value = value.trim();
    let on = value.eq_ignore_ascii_case("true");
    match key {
        // Jet deletes topics when asked; `false` would be a promise Jet does not keep.
        "delete.topic.enable" if on => Some(Disposition::NotApplicable),
        "delete.topic.enable" => Some(Disposition::Refused(
            "Jet always serves DeleteTopics; refusing to start rather than let clients delete topics you meant to protect",
        )),
        // A lone replica never elects an out-of-sync leader; `true` asks for data loss
        // Jet would not give, and says the operator accepts it — refuse the mismatch.
        "unclean.leader.election.enable" if on => Some(Disposition::Refused(
            "Jet never elects an out-of-sync replica leader (it would lose acknowledged data)",
        )),
        "unclean.leader.election.enable" => Some(Disposition::NotApplicable),
        _ if NOT_APPLICABLE_KEYS.contains(&key) => Some(Disposition::NotApplicable),
        _ if NOT_APPLICABLE_PREFIXES.iter().any(|p| key.starts_with(p)) => Some(Disposition::NotApplicable),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuning_knobs_and_kraft_settings_do_not_apply() {
        for (key, value) in [
            ("num.network.threads", "3"),
            ("num.io.threads", "8"),
            ("num.recovery.threads.per.data.dir", "1"),
            ("socket.send.buffer.bytes", "102400"),
            ("socket.receive.buffer.bytes", "102400"),
            ("delete.topic.enable", "true"),
            ("zookeeper.connect", "localhost:2181"),
            ("controller.quorum.bootstrap.servers", "localhost:9093"),
            ("controller.listener.names", "CONTROLLER"),
            ("process.roles", "broker,controller"),
            ("offsets.topic.replication.factor", "1"),
            ("transaction.state.log.replication.factor", "1"),
            ("transaction.state.log.min.isr", "1"),
            ("share.coordinator.state.topic.replication.factor", "1"),
            ("unclean.leader.election.enable", "false"),
            ("log.flush.interval.messages", "10000"),
        ] {
            assert_eq!(classify(key, value), Some(Disposition::NotApplicable), "{key}={value}");
        }
    }

    #[test]
    fn settings_that_would_weaken_safety_are_refused_and_unknown_ones_left_to_the_caller() {
        assert!(matches!(classify("delete.topic.enable", "false"), Some(Disposition::Refused(_))));
        assert!(matches!(classify("unclean.leader.election.enable", "true"), Some(Disposition::Refused(_))));
        assert_eq!(classify("num.partitons", "1"), None);
        assert_eq!(classify("log.retention.hourz", "1"), None);
        assert_eq!(classify("ssl.keystore.location", "/k"), None);
    }
}
