//! `jet topic create|list|describe|delete|alter-config`: topic administration through
//! CreateTopics, Metadata, DescribeConfigs, DeleteTopics and IncrementalAlterConfigs,
//! sent to the controller (any broker forwards, but the controller answers first-hand);
//! a NOT_CONTROLLER answer (the controller moved) is retried at the new one.

use clap::{Args, Subcommand};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::{Request, StrBytes};
use serde_json::{Value, json};

use super::error::CliError;
use super::offsets::{EARLIEST, LATEST, list_offsets, partitions_of};
use super::output::{OutputFormat, Table, print, print_json};
use super::session::{Session, topic_name};
use super::{Common, parse_key_value};

/// Kafka's resource type for a topic in DescribeConfigs / IncrementalAlterConfigs.
const TOPIC_RESOURCE: i8 = 2;
/// DescribeConfigs `config_source` of a value nobody set.
const DEFAULT_CONFIG_SOURCE: i8 = 5;

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create topics.
    Create(CreateArgs),
    /// List topics with their partition and replica counts.
    List(ListArgs),
    /// Show a topic's partitions (leader, replicas, ISR, offsets) and configs.
    Describe(DescribeArgs),
    /// Delete topics.
    Delete(DeleteArgs),
    /// Set or remove topic configs (`--set retention.ms=60000`, `--delete cleanup.policy`).
    AlterConfig(AlterConfigArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(required = true)]
    pub topics: Vec<String>,
    /// Partitions per topic (the broker's `num.partitions` when unset).
    #[arg(short, long)]
    pub partitions: Option<i32>,
    /// Replicas per partition (the broker's `default.replication.factor` when unset).
    #[arg(short, long)]
    pub replication_factor: Option<i16>,
    /// A topic config `key=value`; repeatable.
    #[arg(short, long = "config", value_parser = parse_key_value)]
    pub configs: Vec<(String, String)>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Include internal topics (`__consumer_offsets`).
    #[arg(long)]
    pub internal: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    pub topic: String,
    /// Show every config, not only those set on the topic or the broker.
    #[arg(long)]
    pub all_configs: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[arg(required = true)]
    pub topics: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct AlterConfigArgs {
    pub topic: String,
    /// Set a config `key=value`; repeatable.
    #[arg(long = "set", value_parser = parse_key_value)]
    pub set: Vec<(String, String)>,
    /// Remove a config (back to the broker's default); repeatable.
    #[arg(long = "delete")]
    pub delete: Vec<String>,
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(command: TopicCommand) -> Result<(), CliError> {
    match command {
        TopicCommand::Create(args) => create(args).await,
        TopicCommand::List(args) => list(args).await,
        TopicCommand::Describe(args) => describe(args).await,
        TopicCommand::Delete(args) => delete(args).await,
        TopicCommand::AlterConfig(args) => alter_config(args).await,
    }
}

/// Kafka's NOT_CONTROLLER: the request went to a broker that stopped being controller.
const NOT_CONTROLLER: i16 = 41;
/// Sends to the controller before giving up while the controller keeps moving.
const CONTROLLER_ATTEMPTS: u32 = 5;

/// Sends `request` to the controller; while `moved` says the answer is NOT_CONTROLLER,
/// reads the metadata again (which names the new controller) and resends.
async fn to_controller<R: Request>(
    session: &mut Session,
    request: &R,
    moved: impl Fn(&R::Response) -> bool,
) -> Result<R::Response, CliError> {
    let mut attempt = 1;
    loop {
        let response = session.controller().await?.call(request).await?;
        if !moved(&response) || attempt >= CONTROLLER_ATTEMPTS {
            return Ok(response);
        }
        attempt += 1;
        tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt))).await;
        session.metadata(Some(&[])).await?;
    }
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn timeout_ms(session: &Session) -> i32 {
    session.timeout().as_millis().min(i32::MAX as u128) as i32
}

/// Prints what succeeded, then fails with the first per-item error (if any), saying how
/// many failed.
fn finish(
    format: OutputFormat,
    table: Table,
    json_rows: Vec<Value>,
    mut failures: Vec<CliError>,
) -> Result<(), CliError> {
    // Nothing succeeded: the error says it all (stdout stays empty for scripts).
    let nothing_done = json_rows.is_empty() && !failures.is_empty();
    match format {
        _ if nothing_done => {}
        OutputFormat::Json => print_json(&Value::Array(json_rows))?,
        OutputFormat::Text => print(&table.render())?,
    }
    if failures.len() > 1 {
        for extra in &failures[1..] {
            eprintln!("jet: {extra}");
        }
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(failures.swap_remove(0)),
    }
}

async fn create(args: CreateArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let topics = args
        .topics
        .iter()
        .map(|name| {
            CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(args.partitions.unwrap_or(-1))
                .with_replication_factor(args.replication_factor.unwrap_or(-1))
                .with_configs(
                    args.configs
                        .iter()
                        .map(|(k, v)| {
                            CreatableTopicConfig::default().with_name(str_bytes(k)).with_value(Some(str_bytes(v)))
                        })
                        .collect(),
                )
        })
        .collect();
    let request = CreateTopicsRequest::default().with_topics(topics).with_timeout_ms(timeout_ms(&session));
    let response = to_controller(&mut session, &request, |r: &CreateTopicsResponse| {
        r.topics.iter().any(|t| t.error_code == NOT_CONTROLLER)
    })
    .await?;
    let mut table = Table::new(&["TOPIC", "PARTITIONS", "REPLICATION", "STATUS"]);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for t in &response.topics {
        let name = t.name.as_str();
        if let Err(e) = CliError::check(t.error_code, t.error_message.as_deref(), || format!("create topic {name}")) {
            failures.push(e);
            continue;
        }
        table.row(vec![name.into(), t.num_partitions.to_string(), t.replication_factor.to_string(), "created".into()]);
        rows.push(json!({"topic": name, "partitions": t.num_partitions, "replication_factor": t.replication_factor,
            "topic_id": t.topic_id.to_string()}));
    }
    finish(args.common.format, table, rows, failures)
}

async fn list(args: ListArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let response = session.metadata(None).await?;
    let mut topics: Vec<_> = response.topics.iter().filter(|t| args.internal || !t.is_internal).collect();
    topics.sort_by(|a, b| a.name.as_deref().cmp(&b.name.as_deref()));
    let mut table = Table::new(&["NAME", "PARTITIONS", "REPLICAS"]);
    let mut rows = Vec::new();
    for t in topics {
        let name = t.name.as_ref().map_or("", |n| n.as_str());
        let replicas = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
        table.row(vec![name.into(), t.partitions.len().to_string(), replicas.to_string()]);
        rows.push(json!({"name": name, "partitions": t.partitions.len(), "replicas": replicas,
            "internal": t.is_internal, "topic_id": t.topic_id.to_string()}));
    }
    match args.common.format {
        OutputFormat::Json => print_json(&Value::Array(rows)),
        OutputFormat::Text => print(&table.render()),
    }
}

async fn describe(args: DescribeArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let topic = args.topic.as_str();
    let partitions = partitions_of(&mut session, topic).await?;
    let start = list_offsets(&mut session, topic, &partitions, EARLIEST).await?;
    let end = list_offsets(&mut session, topic, &partitions, LATEST).await?;
    let request = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default().with_resource_type(TOPIC_RESOURCE).with_resource_name(str_bytes(topic)),
    ]);
    let configs_response = session.controller().await?.call(&request).await?;
    let mut configs = Vec::new();
    for result in &configs_response.results {
        CliError::check(result.error_code, result.error_message.as_deref(), || format!("describe configs of {topic}"))?;
        for c in &result.configs {
            if args.all_configs || c.config_source != DEFAULT_CONFIG_SOURCE {
                let value = if c.is_sensitive { None } else { c.value.as_ref().map(|v| v.to_string()) };
                configs.push((c.name.to_string(), value, config_source_name(c.config_source)));
            }
        }
    }
    configs.sort();
    let offset = |m: &std::collections::BTreeMap<i32, i64>, p: i32| m.get(&p).copied().unwrap_or(-1);
    let ids = |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    match args.common.format {
        OutputFormat::Json => print_json(&json!({
            "topic": topic,
            "partitions": partitions.iter().map(|p| json!({
                "partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
                "replicas": p.replicas, "isr": p.isr,
                "log_start_offset": offset(&start, p.partition), "high_watermark": offset(&end, p.partition),
            })).collect::<Vec<_>>(),
            "configs": configs.iter().map(|(n, v, s)| json!({"name": n, "value": v, "source": s})).collect::<Vec<_>>(),
        })),
        OutputFormat::Text => {
            let mut text = format!("TOPIC {topic}: {} partitions\n\n", partitions.len());
            let mut table =
                Table::new(&["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "HIGH-WATERMARK"]);
            for p in &partitions {
                table.row(vec![
                    p.partition.to_string(),
                    p.leader.to_string(),
                    p.leader_epoch.to_string(),
                    ids(&p.replicas),
                    ids(&p.isr),
                    offset(&start, p.partition).to_string(),
                    offset(&end, p.partition).to_string(),
                ]);
            }
            text.push_str(&table.render());
            let mut table = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
            for (name, value, source) in &configs {
                table.row(vec![name.clone(), value.clone().unwrap_or_else(|| "-".into()), source.to_string()]);
            }
            text.push('\n');
            text.push_str(&table.render());
            print(&text)
        }
    }
}

/// Kafka's name of a DescribeConfigs `config_source`.
fn config_source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

async fn delete(args: DeleteArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let timeout = timeout_ms(&session);
    let version = session.controller().await?.version::<DeleteTopicsRequest>()?;
    let request = if version >= 6 {
        DeleteTopicsRequest::default().with_topics(
            args.topics.iter().map(|t| DeleteTopicState::default().with_name(Some(topic_name(t)))).collect(),
        )
    } else {
        DeleteTopicsRequest::default().with_topic_names(args.topics.iter().map(|t| topic_name(t)).collect())
    }
    .with_timeout_ms(timeout);
    let response = to_controller(&mut session, &request, |r: &DeleteTopicsResponse| {
        r.responses.iter().any(|t| t.error_code == NOT_CONTROLLER)
    })
    .await?;
    let mut table = Table::new(&["TOPIC", "STATUS"]);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for r in &response.responses {
        let name = r.name.as_ref().map_or_else(|| r.topic_id.to_string(), |n| n.to_string());
        if let Err(e) = CliError::check(r.error_code, r.error_message.as_deref(), || format!("delete topic {name}")) {
            failures.push(e);
            continue;
        }
        table.row(vec![name.clone(), "deleted".into()]);
        rows.push(json!({"topic": name}));
    }
    finish(args.common.format, table, rows, failures)
}

/// IncrementalAlterConfigs operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

async fn alter_config(args: AlterConfigArgs) -> Result<(), CliError> {
    if args.set.is_empty() && args.delete.is_empty() {
        return Err(CliError::Invalid("nothing to change: give --set key=value or --delete key".into()));
    }
    let mut session = args.common.connect.session().await?;
    let topic = args.topic.as_str();
    let mut changes: Vec<AlterableConfig> = args
        .set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default().with_name(str_bytes(k)).with_config_operation(SET).with_value(Some(str_bytes(v)))
        })
        .collect();
    changes.extend(
        args.delete.iter().map(|k| AlterableConfig::default().with_name(str_bytes(k)).with_config_operation(DELETE)),
    );
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(TOPIC_RESOURCE)
            .with_resource_name(str_bytes(topic))
            .with_configs(changes),
    ]);
    let response = session.controller().await?.call(&request).await?;
    for r in &response.responses {
        CliError::check(r.error_code, r.error_message.as_deref(), || format!("alter configs of topic {topic}"))?;
    }
    let mut table = Table::new(&["CONFIG", "CHANGE"]);
    let mut rows = Vec::new();
    for (k, v) in &args.set {
        table.row(vec![k.clone(), format!("set to {v}")]);
        rows.push(json!({"name": k, "operation": "set", "value": v}));
    }
    for k in &args.delete {
        table.row(vec![k.clone(), "deleted".into()]);
        rows.push(json!({"name": k, "operation": "delete"}));
    }
    match args.common.format {
        OutputFormat::Json => print_json(&json!({"topic": topic, "changes": rows})),
        OutputFormat::Text => print(&table.render()),
    }
}
