//! Runs a Jet broker inside another program, the way Jet's own tests do: bind a listener
//! (port 0 lets the OS pick one), open a broker on a data directory, and serve until a
//! shutdown future resolves.
//!
//! ```sh
//! cargo run --example embedded_broker
//! # then, in another terminal, with the printed address:
//! kcat -b 127.0.0.1:PORT -L
//! ```

use clap::Parser;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let data = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let data_dir = data.path().to_str().ok_or("temporary directory path is not UTF-8")?;
    let mut config = jet::config::Cli::try_parse_from(["jet", "--data-dir", data_dir])?.into_broker_config();
    config.advertised_listener = Some(addr.to_string());
    config.kafka.num_partitions = 3;
    let broker = jet::broker::Broker::open(config)?;
    println!("Kafka-compatible broker on {addr} (data in {}); Ctrl-C stops it", data.path().display());
    jet::server::run(listener, broker, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
    Ok(())
}
