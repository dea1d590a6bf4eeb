//! The admin CLI in the `jet` binary (like Redpanda's `rpk`): `jet topic …`, `jet produce`,
//! `jet consume`, `jet group …`, `jet cluster …`, speaking the Kafka protocol to any
//! Kafka-compatible broker (Jet or Apache Kafka); `jet` with no subcommand stays the broker.
//!
//! Design:
//! - **Kafka protocol only**, no admin side channel, so the same commands work against
//!   Apache Kafka. Messages are the `kafka-protocol` crate's; [`wire`] frames them, caps
//!   response frames and negotiates each API's version with ApiVersions (the highest both
//!   sides speak, capped at what the command code fills in).
//! - **Routing like a client**: [`session`] bootstraps from `--brokers` (env
//!   `JET_BROKERS`), learns the brokers from Metadata and sends each request where it
//!   belongs: produce/fetch/list-offsets to the partition leader, group requests to the
//!   coordinator found with FindCoordinator, topic administration to the controller.
//! - **Output for people and scripts**: aligned tables by default, `--format json`;
//!   a progress line on stderr only when stderr is a terminal.
//! - **Exit codes scripts can trust** ([`error::CliError::exit_code`]): 0 ok, 1 a request
//!   the cluster refused (the one-line message names the Kafka error code, e.g.
//!   `TOPIC_ALREADY_EXISTS`), 2 bad arguments, 3 no broker reachable or connection lost,
//!   4 an answer that could not be understood.
//! - **Bounded**: response frames are capped and read as they arrive; fetched batches
//!   are checked and decompressed with a limit by the broker's own batch code
//!   ([`records`]), never sized from what a server claims.
//!
//! One file per command group: [`topic`], [`produce`], [`consume`], [`group`], [`cluster`].

pub mod cluster;
pub mod consume;
pub mod error;
pub mod group;
pub mod group_offsets;
pub mod offsets;
pub mod output;
pub mod produce;
pub mod records;
pub mod session;
pub mod topic;
pub mod wire;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

use error::CliError;
use output::OutputFormat;
use session::Session;

/// The admin subcommands of `jet`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create, list, describe, delete topics and change their configs.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Produce lines of standard input as records, one per line.
    Produce(produce::ProduceArgs),
    /// Consume records and print them.
    Consume(consume::ConsumeArgs),
    /// List, describe, delete consumer groups and reset their offsets.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Brokers and health of the cluster.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
}

/// Where the cluster is and how long to wait for it.
#[derive(Debug, Clone, Args)]
pub struct Connect {
    /// Bootstrap brokers, `host:port[,host:port…]`.
    #[arg(long, env = "JET_BROKERS", default_value = "localhost:9092")]
    pub brokers: String,
    /// Milliseconds to wait for a connection or a response before giving up.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

impl Connect {
    pub async fn session(&self) -> Result<Session, CliError> {
        Session::connect(&self.brokers, Duration::from_millis(self.timeout_ms)).await
    }
}

/// Options every table-printing command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    #[command(flatten)]
    pub connect: Connect,
    /// `text` (aligned tables) or `json`.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// `key=value` on the command line.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected key=value, got {s:?}")),
    }
}

/// Runs an admin command to completion; prints a one-line error on failure.
pub fn run(command: AdminCommand) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
        .and_then(|runtime| runtime.block_on(dispatch(command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of the output stopped early (`| head`): not a failure of the command.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jet: {e}");
            e.exit_code()
        }
    }
}

async fn dispatch(command: AdminCommand) -> Result<(), CliError> {
    match command {
        AdminCommand::Topic(c) => topic::run(c).await,
        AdminCommand::Produce(args) => produce::run(args).await,
        AdminCommand::Consume(args) => consume::run(args).await,
        AdminCommand::Group(c) => group::run(c).await,
        AdminCommand::Cluster(c) => cluster::run(c).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_split_at_the_first_equals_sign() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert_eq!(parse_key_value("retention.ms="), Ok(("retention.ms".into(), String::new())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
