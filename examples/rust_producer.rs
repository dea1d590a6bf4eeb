//! A Rust producer for Jet, with [rskafka](https://crates.io/crates/rskafka) (a pure-Rust
//! Kafka client; no Jet code involved): creates the topic if it is missing, then writes
//! records `key-<i>` → `message <i>` to partition 0 in one request and prints their
//! offsets.
//!
//! ```sh
//! cargo run --release                                                  # a broker on localhost:9092
//! cargo run --example rust_producer -- localhost:9092 demo 10          # bootstrap, topic, count
//! ```

use std::collections::BTreeMap;

use rskafka::client::ClientBuilder;
use rskafka::client::error::{Error, ProtocolError};
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "localhost:9092".into());
    let topic = args.next().unwrap_or_else(|| "demo".into());
    let count: usize = args.next().map_or(Ok(10), |n| n.parse())?;

    let client = ClientBuilder::new(vec![bootstrap]).build().await?;
    // One partition, the broker's default replication factor (-1).
    match client.controller_client()?.create_topic(&topic, 1, -1, 5_000).await {
        Ok(()) => println!("created topic {topic}"),
        Err(Error::ServerError { protocol_error: ProtocolError::TopicAlreadyExists, .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let partition = client.partition_client(topic.clone(), 0, UnknownTopicHandling::Retry).await?;
    let records = (0..count)
        .map(|i| Record {
            key: Some(format!("key-{i}").into_bytes()),
            value: Some(format!("message {i}").into_bytes()),
            headers: BTreeMap::new(),
            timestamp: chrono::Utc::now(),
        })
        .collect();
    let offsets = partition.produce(records, Compression::NoCompression).await?;
    for (i, offset) in offsets.iter().enumerate() {
        println!("{topic}/0@{offset}: message {i}");
    }
    Ok(())
}
