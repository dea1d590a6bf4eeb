//! Command-line parsing of the broker settings.

use super::*;

#[test]
fn no_arguments_is_a_local_broker() {
    let cli = Cli::try_parse_from(["jet"]).unwrap();
    let config = cli.into_broker_config();
    assert_eq!(config.listen.primary().addr.port, 9092);
    assert_eq!(config.advertised(), ("localhost".to_string(), 9092));
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert!(config.kafka.auto_create_topics_enable);
    assert_eq!(config.kafka.num_partitions, 1);
    assert_eq!(config.admin_listen, ListenAddr { host: "0.0.0.0".into(), port: 9644 });
}

#[test]
fn admin_listen_flag_and_healthcheck_subcommand() {
    let config = Cli::try_parse_from(["jet", "--admin-listen", "127.0.0.1:0"]).unwrap().into_broker_config();
    assert_eq!(config.admin_listen, ListenAddr { host: "127.0.0.1".into(), port: 0 });
    assert!(Cli::try_parse_from(["jet", "--admin-listen", "http://127.0.0.1:1"]).is_err());
    let cli = Cli::try_parse_from(["jet", "healthcheck", "--admin-listen", "0.0.0.0:9700"]).unwrap();
    let Some(Command::Healthcheck(args)) = cli.command else { panic!("not healthcheck") };
    assert_eq!((args.admin_listen.to_string().as_str(), args.timeout_ms), ("0.0.0.0:9700", 5_000));
    // Broker flags still work after `serve` and without a subcommand.
    let cli = Cli::try_parse_from(["jet", "serve", "--admin-listen", ":9645", "--node-id", "3"]).unwrap();
    let config = cli.into_broker_config();
    assert_eq!((config.admin_listen.port, config.node_id), (9645, 3));
}

#[test]
fn serve_subcommand_and_overrides() {
    let cli = Cli::try_parse_from([
        "jet",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--advertised-listener",
        "PLAINTEXT://example:19092",
        "--set",
        "num.partitions=3,log.retention.hours=1",
    ])
    .unwrap();
    let mut config = cli.into_broker_config();
    config.apply_overrides().unwrap();
    assert_eq!(config.kafka.num_partitions, 3);
    assert_eq!(config.kafka.log_retention_ms, 3_600_000);
    assert_eq!(config.advertised(), ("example".to_string(), 19092));
}

#[test]
fn listen_addresses_in_kafka_and_plain_forms() {
    let p = |s| parse_listen(s).unwrap();
    assert_eq!(p("PLAINTEXT://localhost:9093"), ListenAddr { host: "localhost".into(), port: 9093 });
    assert_eq!(p(":9092"), ListenAddr { host: "0.0.0.0".into(), port: 9092 });
    assert_eq!(p("[::1]:9092").to_string(), "[::1]:9092");
    assert!(parse_listen("localhost").is_err());
    assert!(parse_listen("localhost:99999").is_err());
}

#[test]
fn port_zero_advertises_the_bound_port() {
    let config = |args: &[&str]| {
        let mut c =
            Cli::try_parse_from([&["jet", "--listen", "127.0.0.1:0"], args].concat()).unwrap().into_broker_config();
        c.bound_to(ListenerId(0), 40123);
        c.advertised()
    };
    // A listener bound to one address advertises it, as Kafka does.
    assert_eq!(config(&[]), ("127.0.0.1".to_string(), 40123));
    // An advertised host without a port (or with port 0) takes the listener's actual port.
    assert_eq!(config(&["--advertised-listener", "example"]), ("example".to_string(), 40123));
    assert_eq!(config(&["--advertised-listener", "example:0"]), ("example".to_string(), 40123));
    assert_eq!(config(&["--advertised-listener", "example:9000"]), ("example".to_string(), 9000));
}

#[test]
fn security_listeners_and_settings_fail_closed() {
    for listener in ["SSL://127.0.0.1:0", "SASL_SSL://:9093", "SASL_PLAINTEXT://h:1"] {
        for flag in ["--listen", "--advertised-listener"] {
            let e = Cli::try_parse_from(["jet", flag, listener]).unwrap_err().to_string();
            assert!(e.contains("PLAINTEXT only for now"), "{flag} {listener}: {e}");
        }
    }
    let mut s = Cli::try_parse_from(["jet"]).unwrap().into_broker_config();
    s.kafka.overrides = vec!["ssl.keystore.location=/etc/k.jks".into()];
    let e = s.apply_overrides().unwrap_err();
    assert!(matches!(e, ConfigError::Security(_)), "{e}");
    assert!(e.to_string().contains("ssl.keystore.location"), "{e}");
}

#[test]
fn list_values_keep_their_commas() {
    let cli = Cli::try_parse_from([
        "jet",
        "--set",
        "max.connections.per.ip.overrides=10.0.0.1:5,localhost:7,max.connections=9",
    ])
    .unwrap();
    let mut config = cli.into_broker_config();
    config.apply_overrides().unwrap();
    assert_eq!(config.kafka.max_connections_per_ip_overrides, "10.0.0.1:5,localhost:7");
    assert_eq!(config.kafka.max_connections, 9);
}

#[test]
fn unknown_override_is_an_error() {
    let mut s = Cli::try_parse_from(["jet"]).unwrap().into_broker_config();
    s.kafka.overrides = vec!["no.such.thing=1".into()];
    assert!(matches!(s.apply_overrides(), Err(ConfigError::UnknownKey(_))));
}

/// Backticked words of `text`, with `{a,b}` alternatives expanded and a `=value` dropped.
fn backticked_keys(text: &str) -> std::collections::BTreeSet<String> {
    let mut keys = std::collections::BTreeSet::new();
    for (i, word) in text.split('`').enumerate() {
        if i % 2 == 0 {
            continue; // outside backticks
        }
        let word = word.split('=').next().unwrap_or_default();
        match (word.find('{'), word.find('}')) {
            (Some(open), Some(close)) if open < close => {
                for alt in word[open + 1..close].split(',') {
                    keys.insert(format!("{}{alt}{}", &word[..open], &word[close + 1..]));
                }
            }
            _ => {
                keys.insert(word.to_string());
            }
        }
    }
    keys
}

/// The README's configuration reference cannot drift from the code: every key `--set` and
/// the config file accept (the arms of `KafkaSettings::set`, read from its source) is named
/// in README.md, and is accepted with the value the README shows for it, if any.
#[test]
fn every_setting_jet_reads_is_in_the_readme() {
    let source = include_str!("../config.rs");
    let body = source.split("pub fn set(&mut self, key: &str, value: &str)").nth(1).expect("KafkaSettings::set");
    let body = body.split("_ => {").next().expect("its match");
    let keys: Vec<&str> =
        body.lines().filter_map(|l| l.trim().strip_prefix('"')?.split_once("\" =>").map(|(k, _)| k)).collect();
    assert!(keys.len() > 50, "read {} keys from KafkaSettings::set", keys.len());
    let documented = backticked_keys(include_str!("../../README.md"));
    let missing: Vec<&&str> = keys.iter().filter(|k| !documented.contains(**k)).collect();
    assert!(missing.is_empty(), "README.md does not name these settings: {missing:?}");
    // Each is a key `set` knows (not the catch-all), so the parse above read real arms.
    let mut settings = Cli::try_parse_from(["jet"]).unwrap().into_broker_config().kafka;
    for key in keys {
        let result = settings.set(key, "not a value");
        assert!(!matches!(result, Err(ConfigError::UnknownKey(_))), "{key}: {result:?}");
    }
}

#[test]
fn several_named_listeners_each_advertise_their_own_address() {
    let parse = |args: &[&str]| {
        let mut c = Cli::try_parse_from([&["jet"], args].concat()).unwrap().into_broker_config();
        c.apply_overrides().map(|()| c)
    };
    let c = parse(&[
        "--listen",
        "EXTERNAL://0.0.0.0:9094,INTERNAL://0.0.0.0:9092",
        "--advertised-listener",
        "INTERNAL://jet-0.jet-headless:9092,EXTERNAL://203.0.113.7:31092",
        "--set",
        "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,inter.broker.listener.name=INTERNAL",
    ])
    .unwrap();
    assert_eq!(c.listen.primary().name, "INTERNAL", "inter.broker.listener.name makes it the broker's own");
    assert_eq!(c.advertised(), ("jet-0.jet-headless".to_string(), 9092));
    assert_eq!(
        c.advertised_listeners(),
        vec![
            ("INTERNAL".to_string(), "jet-0.jet-headless".to_string(), 9092),
            ("EXTERNAL".to_string(), "203.0.113.7".to_string(), 31092)
        ]
    );
    // A listener without an advertised entry advertises the default host and its port.
    let c =
        parse(&["--listen", "PLAINTEXT://:9092,LB://:9095", "--set", "listener.security.protocol.map=LB:PLAINTEXT"])
            .unwrap();
    assert_eq!(c.advertised_listeners()[1], ("LB".to_string(), "localhost".to_string(), 9095));
    assert!(c.advertises_a_wildcard());

    // Fail closed: a name no protocol map makes PLAINTEXT.
    let e = parse(&["--listen", "PLAINTEXT://:9092,EXTERNAL://:9094"]).unwrap_err().to_string();
    assert!(e.contains("EXTERNAL") && e.contains("listener.security.protocol.map"), "{e}");
    let e = parse(&[
        "--listen",
        "PLAINTEXT://:9092,EXTERNAL://:9094",
        "--set",
        "listener.security.protocol.map=EXTERNAL:SSL",
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("SSL"), "{e}");
    // An advertised listener that is not a listener, and an unknown inter-broker name.
    let e = parse(&["--advertised-listener", "EXTERNAL://h:1"]).unwrap_err().to_string();
    assert!(e.contains("EXTERNAL") && e.contains("not one of the listeners"), "{e}");
    let e = parse(&["--set", "inter.broker.listener.name=INTERNAL"]).unwrap_err().to_string();
    assert!(e.contains("INTERNAL") && e.contains("not one of the listeners"), "{e}");
    assert!(Cli::try_parse_from(["jet", "--listen", "PLAINTEXT://:9092,SASL_SSL://:9093"]).is_err());
}
