//! `jet cluster info|health`: the brokers and controller from Metadata, and a health
//! check that every broker answers and every partition has a leader and a full ISR
//! (exit 1 when not, so scripts and probes can use it).

use clap::{Args, Subcommand};
use serde_json::json;

use super::Common;
use super::error::CliError;
use super::output::{OutputFormat, Table, print, print_json};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Cluster id, controller and brokers.
    Info(ClusterArgs),
    /// Exit 0 when every broker answers and every partition has a leader and a full ISR.
    Health(ClusterArgs),
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(command: ClusterCommand) -> Result<(), CliError> {
    match command {
        ClusterCommand::Info(args) => info(args).await,
        ClusterCommand::Health(args) => health(args).await,
    }
}

async fn info(args: ClusterArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let metadata = session.metadata(Some(&[])).await?;
    let cluster_id = metadata.cluster_id.as_deref().unwrap_or("");
    let controller = metadata.controller_id.0;
    let mut brokers: Vec<_> = metadata.brokers.iter().collect();
    brokers.sort_by_key(|b| b.node_id.0);
    match args.common.format {
        OutputFormat::Json => print_json(&json!({
            "cluster_id": cluster_id, "controller_id": controller,
            "brokers": brokers.iter().map(|b| json!({"id": b.node_id.0, "host": b.host.as_str(), "port": b.port,
                "rack": b.rack.as_deref(), "controller": b.node_id.0 == controller})).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            let mut text = format!("CLUSTER {cluster_id}\n\n");
            let mut table = Table::new(&["ID", "HOST", "PORT", "RACK", "CONTROLLER"]);
            for b in brokers {
                table.row(vec![
                    b.node_id.0.to_string(),
                    b.host.to_string(),
                    b.port.to_string(),
                    b.rack.as_deref().unwrap_or("-").to_string(),
                    if b.node_id.0 == controller { "yes".into() } else { String::new() },
                ]);
            }
            text.push_str(&table.render());
            print(&text)
        }
    }
}

async fn health(args: ClusterArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let metadata = session.metadata(None).await?;
    let mut unreachable = Vec::new();
    for id in session.broker_ids() {
        if let Err(e) = session.broker(id).await {
            unreachable.push(format!("broker {id}: {e}"));
        }
    }
    let (mut offline, mut under_replicated) = (Vec::new(), Vec::new());
    for t in &metadata.topics {
        let name = t.name.as_ref().map_or("", |n| n.as_str());
        for p in &t.partitions {
            if p.leader_id.0 < 0 {
                offline.push(format!("{name}-{}", p.partition_index));
            } else if p.isr_nodes.len() < p.replica_nodes.len() {
                under_replicated.push(format!("{name}-{}", p.partition_index));
            }
        }
    }
    let healthy = unreachable.is_empty() && offline.is_empty() && under_replicated.is_empty();
    match args.common.format {
        OutputFormat::Json => print_json(&json!({
            "healthy": healthy, "brokers": metadata.brokers.len(), "unreachable_brokers": unreachable,
            "offline_partitions": offline, "under_replicated_partitions": under_replicated,
        }))?,
        OutputFormat::Text => {
            let mut table = Table::new(&["CHECK", "RESULT"]);
            table.row(vec!["healthy".into(), healthy.to_string()]);
            table.row(vec!["brokers".into(), metadata.brokers.len().to_string()]);
            table.row(vec!["unreachable brokers".into(), list(&unreachable)]);
            table.row(vec!["offline partitions".into(), list(&offline)]);
            table.row(vec!["under-replicated partitions".into(), list(&under_replicated)]);
            print(&table.render())?;
        }
    }
    if healthy {
        return Ok(());
    }
    Err(CliError::Unhealthy(format!(
        "{} unreachable brokers, {} offline and {} under-replicated partitions",
        unreachable.len(),
        offline.len(),
        under_replicated.len()
    )))
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}
