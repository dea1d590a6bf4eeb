//! Shared helpers for the handler tests: a broker on a temporary directory, topic names
//! and a one-record batch.

use std::sync::Arc;

use bytes::Bytes;
use clap::Parser;
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use crate::broker::Broker;
use crate::log::test_util::producer_batch;

pub fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

pub fn broker(dir: &std::path::Path) -> Arc<Broker> {
    broker_with(dir, &[])
}

/// A broker with extra command-line arguments (e.g. `--set key=value`).
pub fn broker_with(dir: &std::path::Path, extra: &[&str]) -> Arc<Broker> {
    let mut args = vec!["jet", "--listen", "127.0.0.1:0", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut config = crate::config::Cli::try_parse_from(args).unwrap().into_broker_config();
    config.apply_overrides().unwrap();
    Broker::open(config).unwrap()
}

/// One uncompressed batch of one record stamped now.
pub fn batch() -> Bytes {
    Bytes::from(producer_batch(1, crate::broker::now_ms(), 1, Compression::None, (-1, -1, -1)))
}
