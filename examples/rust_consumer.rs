//! A Rust consumer for Jet, with [rskafka](https://crates.io/crates/rskafka) (a pure-Rust
//! Kafka client; no Jet code involved): reads partition 0 of a topic from its earliest
//! record up to the high watermark it found at start, printing `offset: key = value`.
//! rskafka has no consumer groups: the reader keeps its own offset, as here.
//!
//! ```sh
//! cargo run --example rust_consumer -- localhost:9092 demo             # bootstrap, topic
//! ```

use rskafka::client::ClientBuilder;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "localhost:9092".into());
    let topic = args.next().unwrap_or_else(|| "demo".into());

    let client = ClientBuilder::new(vec![bootstrap]).build().await?;
    let partition = client.partition_client(topic.clone(), 0, UnknownTopicHandling::Error).await?;
    let mut offset = partition.get_offset(OffsetAt::Earliest).await?;
    let end = partition.get_offset(OffsetAt::Latest).await?;
    while offset < end {
        // Up to 1 MiB per fetch, waiting at most 500 ms for the first byte.
        let (records, _high_watermark) = partition.fetch_records(offset, 1..1_048_576, 500).await?;
        for r in records {
            let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            println!("{}: {} = {}", r.offset, text(r.record.key), text(r.record.value));
            offset = r.offset + 1;
        }
    }
    Ok(())
}
