//! `jet group list|describe|reset-offsets|delete`: consumer groups through ListGroups
//! (asked of every broker, since each lists the groups it coordinates), DescribeGroups,
//! OffsetFetch / ListOffsets for lag, OffsetCommit to reset and DeleteGroups, all but
//! ListGroups sent to the group's coordinator.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, ListGroupsRequest,
};
use serde_json::{Value, json};

use super::Common;
use super::error::CliError;
use super::group_offsets::{commit, committed, group_id};
use super::offsets::{EARLIEST, LATEST, list_offsets, partitions_of};
use super::output::{OutputFormat, Table, print, print_json};
use super::session::{COORDINATOR_MOVED, Session};

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// List consumer groups.
    List(ListArgs),
    /// Show a group's state, members and committed offsets with lag.
    Describe(GroupArgs),
    /// Move a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
    /// Delete groups (they must have no active members).
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct GroupArgs {
    pub group: String,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["to_earliest", "to_latest", "to_offset"])))]
pub struct ResetArgs {
    pub group: String,
    #[arg(long)]
    pub topic: String,
    /// Only this partition (repeatable; all when unset).
    #[arg(long)]
    pub partition: Vec<i32>,
    #[arg(long)]
    pub to_earliest: bool,
    #[arg(long)]
    pub to_latest: bool,
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Show what would change without committing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[arg(required = true)]
    pub groups: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(command: GroupCommand) -> Result<(), CliError> {
    match command {
        GroupCommand::List(args) => list(args).await,
        GroupCommand::Describe(args) => describe(args).await,
        GroupCommand::ResetOffsets(args) => reset_offsets(args).await,
        GroupCommand::Delete(args) => delete(args).await,
    }
}

async fn list(args: ListArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let mut groups = BTreeMap::new();
    for id in session.broker_ids() {
        let response = session.broker(id).await?.call(&ListGroupsRequest::default()).await?;
        CliError::check(response.error_code, None, || format!("list groups on broker {id}"))?;
        for g in response.groups {
            groups.insert(g.group_id.to_string(), (g.group_state.to_string(), g.protocol_type.to_string(), id));
        }
    }
    let mut table = Table::new(&["GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"]);
    let mut rows = Vec::new();
    for (name, (state, protocol, coordinator)) in &groups {
        table.row(vec![name.clone(), state.clone(), protocol.clone(), coordinator.to_string()]);
        rows.push(json!({"group": name, "state": state, "protocol_type": protocol, "coordinator": coordinator}));
    }
    match args.common.format {
        OutputFormat::Json => print_json(&Value::Array(rows)),
        OutputFormat::Text => print(&table.render()),
    }
}

/// State and members of a group, as DescribeGroups reports them.
struct Described {
    state: String,
    protocol_type: String,
    protocol: String,
    members: Vec<(String, String, String)>,
}

async fn describe_group(session: &mut Session, group: &str) -> Result<Described, CliError> {
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let response = session
        .call_coordinator(group, &request, |r: &DescribeGroupsResponse| {
            r.groups.iter().any(|g| COORDINATOR_MOVED.contains(&g.error_code))
        })
        .await?;
    let Some(g) = response.groups.into_iter().next() else {
        return Err(CliError::Invalid(format!("DescribeGroups answered nothing for group {group}")));
    };
    // GROUP_ID_NOT_FOUND (69) describes a group that does not exist: shown as Dead.
    if g.error_code != 69 {
        CliError::check(g.error_code, g.error_message.as_deref(), || format!("describe group {group}"))?;
    }
    Ok(Described {
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol: g.protocol_data.to_string(),
        members: g
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.client_id.to_string(), m.client_host.to_string()))
            .collect(),
    })
}

async fn describe(args: GroupArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let group = args.group.as_str();
    let described = describe_group(&mut session, group).await?;
    let offsets = committed(&mut session, group, None).await?;
    let mut by_topic: BTreeMap<String, Vec<(i32, i64)>> = BTreeMap::new();
    for ((t, p), o) in &offsets {
        by_topic.entry(t.clone()).or_default().push((*p, *o));
    }
    let mut lag_rows = Vec::new();
    for (topic, commits) in &by_topic {
        let layout = partitions_of(&mut session, topic).await?;
        let wanted: Vec<_> = layout.into_iter().filter(|p| commits.iter().any(|(c, _)| *c == p.partition)).collect();
        let ends = list_offsets(&mut session, topic, &wanted, LATEST).await?;
        for (p, o) in commits {
            let end = ends.get(p).copied();
            lag_rows.push((topic.clone(), *p, *o, end, end.map(|e| (e - o).max(0))));
        }
    }
    match args.common.format {
        OutputFormat::Json => print_json(&json!({
            "group": group, "state": described.state, "protocol_type": described.protocol_type,
            "protocol": described.protocol,
            "members": described.members.iter().map(|(id, client, host)| json!({"member_id": id, "client_id": client, "host": host})).collect::<Vec<_>>(),
            "offsets": lag_rows.iter().map(|(t, p, o, e, l)| json!({"topic": t, "partition": p, "committed_offset": o, "log_end_offset": e, "lag": l})).collect::<Vec<_>>(),
            "total_lag": lag_rows.iter().filter_map(|r| r.4).sum::<i64>(),
        })),
        OutputFormat::Text => {
            let protocol = format!("{} {}", described.protocol_type, described.protocol);
            let protocol = if protocol.trim().is_empty() { "-" } else { protocol.trim() };
            let mut text = format!(
                "GROUP {group}: state {}, protocol {protocol}, {} members\n",
                described.state,
                described.members.len()
            );
            if !described.members.is_empty() {
                let mut table = Table::new(&["MEMBER", "CLIENT-ID", "HOST"]);
                for (id, client, host) in &described.members {
                    table.row(vec![id.clone(), client.clone(), host.clone()]);
                }
                text.push('\n');
                text.push_str(&table.render());
            }
            let mut table = Table::new(&["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG"]);
            let show = |v: Option<i64>| v.map_or_else(|| "-".into(), |v| v.to_string());
            for (t, p, o, e, l) in &lag_rows {
                table.row(vec![t.clone(), p.to_string(), o.to_string(), show(*e), show(*l)]);
            }
            text.push('\n');
            text.push_str(&table.render());
            print(&text)
        }
    }
}

async fn reset_offsets(args: ResetArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let (group, topic) = (args.group.as_str(), args.topic.as_str());
    let described = describe_group(&mut session, group).await?;
    if !matches!(described.state.as_str(), "Empty" | "Dead" | "") || !described.members.is_empty() {
        return Err(CliError::Invalid(format!(
            "group {group} is {} with {} members: offsets can only be reset while it has none (stop its consumers)",
            described.state,
            described.members.len()
        )));
    }
    let layout = partitions_of(&mut session, topic).await?;
    for p in &args.partition {
        if !layout.iter().any(|info| info.partition == *p) {
            return Err(CliError::kafka(3, Some("no such partition"), format!("partition {topic}-{p}")));
        }
    }
    let layout: Vec<_> =
        layout.into_iter().filter(|p| args.partition.is_empty() || args.partition.contains(&p.partition)).collect();
    let earliest = list_offsets(&mut session, topic, &layout, EARLIEST).await?;
    let latest = list_offsets(&mut session, topic, &layout, LATEST).await?;
    let mut targets = BTreeMap::new();
    for p in &layout {
        let (low, high) =
            (earliest.get(&p.partition).copied().unwrap_or(0), latest.get(&p.partition).copied().unwrap_or(0));
        let target = match args.to_offset {
            // Kafka's tool clamps an explicit offset into the log's range.
            Some(o) => o.clamp(low, high),
            None if args.to_earliest => low,
            None => high,
        };
        targets.insert(p.partition, target);
    }
    let indexes: Vec<i32> = layout.iter().map(|p| p.partition).collect();
    let before = committed(&mut session, group, Some((topic, &indexes))).await?;
    if !args.dry_run {
        commit(&mut session, group, topic, &targets).await?;
    }
    let mut table = Table::new(&["TOPIC", "PARTITION", "PREVIOUS", "NEW"]);
    let mut rows = Vec::new();
    for (p, target) in &targets {
        let old = before.get(&(topic.to_string(), *p)).copied();
        table.row(vec![
            topic.into(),
            p.to_string(),
            old.map_or_else(|| "-".into(), |o| o.to_string()),
            target.to_string(),
        ]);
        rows.push(json!({"topic": topic, "partition": p, "previous_offset": old, "new_offset": target}));
    }
    match args.common.format {
        OutputFormat::Json => print_json(&json!({"group": group, "dry_run": args.dry_run, "offsets": rows})),
        OutputFormat::Text => print(&table.render()),
    }
}

async fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let mut table = Table::new(&["GROUP", "STATUS"]);
    let mut rows = Vec::new();
    for group in &args.groups {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
        let response = session
            .call_coordinator(group, &request, |r: &DeleteGroupsResponse| {
                r.results.iter().any(|g| COORDINATOR_MOVED.contains(&g.error_code))
            })
            .await?;
        for r in &response.results {
            CliError::check(r.error_code, None, || format!("delete group {}", r.group_id.as_str()))?;
            table.row(vec![r.group_id.to_string(), "deleted".into()]);
            rows.push(json!({"group": r.group_id.to_string()}));
        }
    }
    match args.common.format {
        OutputFormat::Json => print_json(&Value::Array(rows)),
        OutputFormat::Text => print(&table.render()),
    }
}
