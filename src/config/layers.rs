//! Where each setting comes from, lowest first: the config file (`--config`, Kafka's
//! `server.properties` keys), environment variables (`JET_*`), flags, and `--set`.
//! Broker-level Kafka keys (`node.id`, `listeners`, `log.dirs`, ...) are set here; the
//! rest go to [`KafkaSettings::set`]. Every error names the key and where it was given.

use std::path::PathBuf;

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::kafka_keys::{self, Disposition};
use super::{BrokerConfig, ConfigError, parse, parse_advertised, parse_listeners};
use crate::security::{SecurityError, SecurityProtocol};

/// What one setting did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// A Kafka setting that has no meaning for Jet: accepted and listed at start.
    NotApplicable,
}

/// A setting as given, with where it came from (`server.properties:12`, `--set`, `JET_SET`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    pub key: String,
    pub value: String,
    pub source: String,
}

/// The settings the file and `--set` gave, split by what they did; logged at start.
#[derive(Debug, Default)]
pub struct Resolution {
    pub config_file: Option<PathBuf>,
    pub applied: Vec<Given>,
    /// File settings not applied because an environment variable or flag set the same.
    pub overridden: Vec<Given>,
    pub not_applicable: Vec<Given>,
}

/// Listener names from `controller.listener.names` and `listener.security.protocol.map`,
/// read before any listener is parsed (in Kafka's own files they come after `listeners`).
#[derive(Debug, Clone, Default)]
pub struct ListenerNames {
    /// Names of KRaft controller listeners: Jet has no controller, so their entries in
    /// `listeners`/`advertised.listeners` are left out (and listed at start).
    pub controller: Vec<String>,
    /// `NAME:PLAINTEXT` entries: listeners by those names are PLAINTEXT.
    pub plaintext: Vec<String>,
    /// `inter.broker.listener.name`: the listener that becomes the broker's own.
    pub inter_broker: Option<String>,
}

impl ListenerNames {
    pub(super) fn learn(&mut self, key: &str, value: &str) {
        let names = value.split(',').map(str::trim).filter(|s| !s.is_empty());
        match key {
            "controller.listener.names" => self.controller.extend(names.map(str::to_ascii_uppercase)),
            "listener.security.protocol.map" => {
                for entry in names {
                    if let Some((name, protocol)) = entry.split_once(':')
                        && SecurityProtocol::from_name(protocol.trim()) == Some(SecurityProtocol::Plaintext)
                    {
                        self.plaintext.push(name.trim().to_ascii_uppercase());
                    }
                }
            }
            _ => {}
        }
    }

    fn is_controller(&self, name: &str) -> bool {
        self.controller.iter().any(|c| c.eq_ignore_ascii_case(name))
    }

    /// The listeners of a `listeners` value Jet serves: controller listeners left out.
    fn broker_listeners(&self, value: &str) -> String {
        let mut kept = Vec::new();
        for one in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match one.split_once("://") {
                Some((name, _)) if self.is_controller(name) => {}
                _ => kept.push(one.to_string()),
            }
        }
        kept.join(",")
    }
}

impl BrokerConfig {
    /// Sets one setting by its Kafka name, broker-level keys included.
    pub fn set_property(&mut self, key: &str, value: &str) -> Result<Outcome, ConfigError> {
        match key {
            "node.id" | "broker.id" => self.node_id = parse(key, value)?,
            "listeners" => {
                let listeners = self.listener_names.broker_listeners(value);
                self.listen = parse_listeners(&listeners).map_err(|reason| bad(key, value, reason))?;
            }
            "advertised.listeners" => {
                let listeners = self.listener_names.broker_listeners(value);
                self.advertised_listener =
                    Some(parse_advertised(&listeners).map_err(|reason| bad(key, value, reason))?);
            }
            "inter.broker.listener.name" => {
                self.listener_names.inter_broker = Some(value.trim().to_ascii_uppercase()).filter(|n| !n.is_empty());
            }
            "log.dirs" | "log.dir" => {
                let dirs: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                match dirs.as_slice() {
                    [one] => self.data_dir = PathBuf::from(one),
                    [] => return Err(bad(key, value, "no directory given".into())),
                    _ => return Err(ConfigError::SeveralLogDirs { key: key.to_string(), value: value.to_string() }),
                }
            }
            "broker.rack" => self.broker_rack = Some(value.to_string()).filter(|r| !r.is_empty()),
            "controller.listener.names" => return Ok(Outcome::NotApplicable),
            "listener.security.protocol.map" => {
                self.check_protocol_map(value)?;
                return Ok(Outcome::NotApplicable);
            }
            _ => match self.kafka.set(key, value) {
                Err(ConfigError::UnknownKey(_)) => {
                    return match kafka_keys::classify(key, value) {
                        Some(Disposition::NotApplicable) => Ok(Outcome::NotApplicable),
                        Some(Disposition::Refused(reason)) => {
                            Err(ConfigError::Refused { key: key.to_string(), value: value.to_string(), reason })
                        }
                        None => Err(ConfigError::UnknownKey(key.to_string())),
                    };
                }
                other => other?,
            },
        }
        Ok(Outcome::Applied)
    }

    /// A protocol map only defines names; it asks for security when a listener Jet
    /// would serve is mapped to TLS or SASL. The identity entries of Kafka's own example
    /// (`SSL:SSL`, ...) and controller listeners (Jet has none) define nothing Jet serves;
    /// any other name mapped to a secure protocol is refused.
    fn check_protocol_map(&self, value: &str) -> Result<(), SecurityError> {
        for entry in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, protocol) = entry.split_once(':').unwrap_or((entry, ""));
            let Some(protocol) = SecurityProtocol::from_name(protocol.trim()) else { continue };
            let identity = name.trim().eq_ignore_ascii_case(protocol.name());
            if protocol != SecurityProtocol::Plaintext && !identity && !self.listener_names.is_controller(name.trim()) {
                return Err(SecurityError::SecuritySetting {
                    key: "listener.security.protocol.map".into(),
                    value: value.to_string(),
                    what: format!("security protocol {} for listener {}", protocol.name(), name.trim()),
                });
            }
        }
        Ok(())
    }

    /// Applies the config file (where no environment variable or flag set the same) and
    /// then `--set`, recording what each did. `matches` are the parsed arguments of the
    /// broker (the `serve` subcommand's when given).
    pub fn resolve(&mut self, matches: &ArgMatches) -> Result<Resolution, ConfigError> {
        let mut resolution = Resolution { config_file: self.config_file.clone(), ..Resolution::default() };
        let mut file = Vec::new();
        if let Some(path) = &self.config_file {
            let name = path.display().to_string();
            for p in super::properties::read(path)? {
                file.push(Given { key: p.key, value: p.value, source: format!("{name}:{}", p.line) });
            }
        }
        let set_source = match matches.value_source("overrides") {
            Some(ValueSource::EnvVariable) => "JET_SET",
            _ => "--set",
        };
        let sets = joined_overrides(std::mem::take(&mut self.kafka.overrides))
            .into_iter()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => Ok(Given { key: k.trim().into(), value: v.trim().into(), source: set_source.into() }),
                None => Err(ConfigError::NotKeyValue(kv)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        for g in file.iter().chain(&sets) {
            self.listener_names.learn(&g.key, &g.value);
        }
        for g in file {
            if given_by_env_or_flag(matches, &g.key) {
                resolution.overridden.push(g);
                continue;
            }
            self.apply_given(g, &mut resolution)?;
        }
        for g in sets {
            self.apply_given(g, &mut resolution)?;
        }
        self.check_listeners()?;
        Ok(resolution)
    }

    fn apply_given(&mut self, g: Given, resolution: &mut Resolution) -> Result<(), ConfigError> {
        match self.set_property(&g.key, &g.value) {
            Ok(Outcome::Applied) => resolution.applied.push(g),
            Ok(Outcome::NotApplicable) => resolution.not_applicable.push(g),
            Err(e) => return Err(ConfigError::At { given_in: g.source, error: Box::new(e) }),
        }
        Ok(())
    }
}

fn bad(key: &str, value: &str, reason: String) -> ConfigError {
    ConfigError::BadValue { key: key.to_string(), value: value.to_string(), reason }
}

/// `--set` splits on commas, but some values are lists
/// (`max.connections.per.ip.overrides=a:1,b:2`): an item without `=` continues the value
/// before it.
pub(super) fn joined_overrides(overrides: Vec<String>) -> Vec<String> {
    let mut joined: Vec<String> = Vec::with_capacity(overrides.len());
    for item in overrides {
        match joined.last_mut() {
            Some(last) if !item.contains('=') => {
                last.push(',');
                last.push_str(&item);
            }
            _ => joined.push(item),
        }
    }
    joined
}

/// The argument (flag and environment variable) that sets the same as a Kafka key.
fn arg_id(key: &str) -> String {
    match key {
        "node.id" | "broker.id" => "node_id".into(),
        "listeners" => "listen".into(),
        "advertised.listeners" => "advertised_listener".into(),
        "log.dirs" | "log.dir" => "data_dir".into(),
        "log.retention.hours" | "log.retention.minutes" | "log.retention.ms" => "log_retention_ms".into(),
        "log.roll.hours" | "log.roll.ms" => "log_roll_ms".into(),
        _ => key.replace('.', "_"),
    }
}

/// Whether an environment variable or flag set what `key` sets (they win over the file).
fn given_by_env_or_flag(matches: &ArgMatches, key: &str) -> bool {
    let id = arg_id(key);
    // `value_source` is only asked of arguments that exist (it asserts in debug builds).
    matches.ids().any(|i| i.as_str() == id)
        && matches!(matches.value_source(&id), Some(ValueSource::CommandLine | ValueSource::EnvVariable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use clap::{CommandFactory, FromArgMatches, Parser};

    /// Parses arguments (and an environment the test controls through `JET_*` flags'
    /// `env` values is not needed: flags stand for both) and resolves the layers.
    fn resolve(file: &str, args: &[&str]) -> Result<(BrokerConfig, Resolution), ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        std::fs::write(&path, file).unwrap();
        let path = path.to_str().unwrap().to_string();
        let argv = [&["jet", "--config", path.as_str()], args].concat();
        let matches = Cli::command().try_get_matches_from(argv).unwrap();
        let mut config = Cli::from_arg_matches(&matches).unwrap().into_broker_config();
        let resolution = config.resolve(&matches)?;
        Ok((config, resolution))
    }

    #[test]
    fn file_is_under_flags_and_set() {
        let file = "node.id=7\nnum.partitions=3\nlog.retention.hours=2\nlog.dirs=/var/lib/jet\nlisteners=PLAINTEXT://:19092\nbroker.rack=zone-a\n";
        let (c, r) = resolve(file, &["--num-partitions", "4", "--set", "log.retention.ms=5"]).unwrap();
        assert_eq!(c.node_id, 7);
        assert_eq!(c.kafka.num_partitions, 4, "the flag wins over the file");
        assert_eq!(c.kafka.log_retention_ms, 5, "--set wins over the file");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/jet"));
        assert_eq!(c.listen.primary().addr.port, 19092);
        assert_eq!(c.broker_rack.as_deref(), Some("zone-a"));
        assert_eq!(r.overridden.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(), ["num.partitions"]);
        assert!(r.applied.iter().any(|g| g.key == "node.id" && g.source.ends_with("server.properties:1")));
    }

    #[test]
    fn a_copied_kraft_server_properties_works() {
        let file = "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.bootstrap.servers=localhost:9093\nlisteners=PLAINTEXT://:9092,CONTROLLER://:9093\ninter.broker.listener.name=PLAINTEXT\nadvertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\ncontroller.listener.names=CONTROLLER\nlistener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\nnum.network.threads=3\nnum.io.threads=8\nsocket.send.buffer.bytes=102400\nsocket.receive.buffer.bytes=102400\nsocket.request.max.bytes=104857600\nlog.dirs=/tmp/kraft-combined-logs\nnum.partitions=1\nnum.recovery.threads.per.data.dir=1\noffsets.topic.replication.factor=1\nshare.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\ntransaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\nlog.retention.hours=168\nlog.segment.bytes=1073741824\nlog.retention.check.interval.ms=300000\ndelete.topic.enable=true\nlog.cleaner.enable=true\ngroup.initial.rebalance.delay.ms=0\n";
        let (c, r) = resolve(file, &[]).unwrap();
        assert_eq!(c.listen.primary().addr.port, 9092);
        assert_eq!(c.advertised(), ("localhost".to_string(), 9092));
        assert_eq!(c.kafka.group_initial_rebalance_delay_ms, 0);
        assert_eq!(c.kafka.log_retention_ms, 168 * 3_600_000);
        let ignored: Vec<&str> = r.not_applicable.iter().map(|g| g.key.as_str()).collect();
        for key in ["process.roles", "num.network.threads", "controller.listener.names", "delete.topic.enable"] {
            assert!(ignored.contains(&key), "{key} in {ignored:?}");
        }
    }

    #[test]
    fn refusals_name_the_key_and_where_it_was_given() {
        let e = |file: &str, args: &[&str]| resolve(file, args).unwrap_err().to_string();
        let msg = e("num.io.threads=8\nlog.retention.hours=1099511627776\n", &[]);
        assert!(msg.contains("server.properties:2") && msg.contains("log.retention.hours"), "{msg}");
        let msg = e("", &["--set", "log.retention.hours=1099511627776"]);
        assert!(msg.starts_with("--set: ") && msg.contains("log.retention.hours"), "{msg}");
        let msg = e("log.dirs=/a,/b\n", &[]);
        assert!(msg.contains("server.properties:1") && msg.contains("one directory"), "{msg}");
        let msg = e("delete.topic.enable=false\n", &[]);
        assert!(msg.contains("delete.topic.enable=false") && msg.contains("refused"), "{msg}");
        let msg = e("unclean.leader.election.enable=true\n", &[]);
        assert!(msg.contains("unclean.leader.election.enable"), "{msg}");
        let msg = e("num.partitons=3\n", &[]);
        assert!(msg.contains("unknown broker setting `num.partitons`"), "{msg}");
        let msg = e("listeners=SSL://:9093\n", &[]);
        assert!(msg.contains("server.properties:1") && msg.contains("PLAINTEXT only"), "{msg}");
        let msg = e("listener.security.protocol.map=PLAINTEXT:SASL_SSL\n", &[]);
        assert!(msg.contains("listener.security.protocol.map") && msg.contains("SASL_SSL"), "{msg}");
        let msg = e("ssl.keystore.location=/k.jks\n", &[]);
        assert!(msg.contains("ssl.keystore.location"), "{msg}");
    }

    #[test]
    fn listeners_and_log_dirs_by_their_kafka_names_through_set() {
        let mut c = Cli::try_parse_from(["jet", "--set", "listeners=PLAINTEXT://127.0.0.1:0,log.dirs=/srv/jet"])
            .unwrap()
            .into_broker_config();
        c.apply_overrides().unwrap();
        assert_eq!(c.listen.primary().addr.host, "127.0.0.1");
        assert_eq!(c.data_dir, PathBuf::from("/srv/jet"));
    }
}
