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
    let d = dir.to_str().unwrap();
    let cli = crate::config::Cli::try_parse_from(["jet", "--listen", "127.0.0.1:0", "--data-dir", d]).unwrap();
    Broker::open(cli.into_broker_config()).unwrap()
}

/// One uncompressed batch of one record stamped now.
pub fn batch() -> Bytes {
    Bytes::from(producer_batch(1, crate::broker::now_ms(), 1, Compression::None, (-1, -1, -1)))
}
