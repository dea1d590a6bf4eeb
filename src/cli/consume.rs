//! `jet consume TOPIC`: fetch from each partition's leader and print records, either as
//! JSON lines (`--format json`) or through a template (`%k %v %o %p %t %T`).
//!
//! Where to start: with `--group`, the group's committed offset where it has one, else
//! `--offset` (`start`, `end` or a number). Stops after `--num` records, or with
//! `--exit-at-end` once every partition has reached the high watermark the broker
//! reports; with `--group` the positions reached are committed at the end (generation
//! -1, so the group must have no active members, as for Kafka's own tools), also when
//! stopped with Ctrl-C.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use clap::Args;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest};
use serde_json::json;

use super::Connect;
use super::error::CliError;
use super::group_offsets::{commit, committed};
use super::offsets::{EARLIEST, LATEST, LEADER_MOVED, PartitionInfo, list_offsets, partitions_of};
use super::output::Progress;
use super::records::{FetchedRecord, decode_fetched};
use super::session::{Session, topic_name};

/// Most bytes asked of a broker in one fetch (well under the response frame cap).
const FETCH_MAX_BYTES: i32 = 16 << 20;
/// Consecutive metadata refreshes tolerated before giving up.
const MAX_REFRESHES: u32 = 20;

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    pub topic: String,
    /// Consume only these partitions (repeatable; all when unset).
    #[arg(long)]
    pub partition: Vec<i32>,
    /// Where to start where the group has no committed offset: `start`, `end` or an offset.
    #[arg(long, default_value = "start", value_parser = parse_start)]
    pub offset: StartAt,
    /// Exit after this many records.
    #[arg(long)]
    pub num: Option<u64>,
    /// Exit once every partition is consumed up to its high watermark.
    #[arg(long)]
    pub exit_at_end: bool,
    /// Start from this group's committed offsets and commit the positions reached.
    #[arg(long)]
    pub group: Option<String>,
    /// `json` (one object per line) or a template: %t topic, %p partition, %o offset,
    /// %T timestamp (ms), %k key, %v value, %% a percent sign, \n \t escapes.
    #[arg(long, default_value = "%v")]
    pub format: String,
    /// Longest a fetch waits for new records, in milliseconds (at most half of
    /// `--timeout-ms`).
    #[arg(long, default_value_t = 500)]
    pub max_wait_ms: i32,
    /// Most bytes fetched per partition per request.
    #[arg(long, default_value_t = 1 << 20)]
    pub partition_max_bytes: i32,
    #[command(flatten)]
    pub connect: Connect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Start,
    End,
    Offset(i64),
}

fn parse_start(s: &str) -> Result<StartAt, String> {
    match s {
        "start" | "earliest" | "beginning" => Ok(StartAt::Start),
        "end" | "latest" => Ok(StartAt::End),
        n => match n.parse::<i64>() {
            Ok(o) if o >= 0 => Ok(StartAt::Offset(o)),
            _ => Err(format!("expected start, end or a non-negative offset, not {s:?}")),
        },
    }
}

pub async fn run(args: ConsumeArgs) -> Result<(), CliError> {
    let mut session = args.connect.session().await?;
    let topic = args.topic.as_str();
    let mut layout = selected_partitions(&mut session, &args).await?;
    let indexes: Vec<i32> = layout.iter().map(|p| p.partition).collect();
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    if let Some(group) = &args.group {
        for ((_, p), o) in committed(&mut session, group, Some((topic, &indexes))).await? {
            positions.insert(p, o);
        }
    }
    let missing: Vec<PartitionInfo> =
        layout.iter().filter(|p| !positions.contains_key(&p.partition)).cloned().collect();
    if !missing.is_empty() {
        match args.offset {
            StartAt::Offset(o) => missing.iter().for_each(|p| {
                positions.insert(p.partition, o);
            }),
            StartAt::Start => positions.extend(list_offsets(&mut session, topic, &missing, EARLIEST).await?),
            StartAt::End => positions.extend(list_offsets(&mut session, topic, &missing, LATEST).await?),
        }
    }
    let mut high_watermarks =
        if args.exit_at_end { list_offsets(&mut session, topic, &layout, LATEST).await? } else { BTreeMap::new() };
    let template = (args.format != "json").then(|| Template::parse(&args.format));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut progress = Progress::new("consumed");
    let (mut consumed, mut bytes) = (0u64, 0u64);
    let mut refreshes = 0;
    // Ctrl-C stops consuming cleanly: the positions reached are still committed. The
    // signal stream is made once so a signal between fetches is not lost.
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).map_err(CliError::Signal)?;
    'fetching: loop {
        if args.num.is_some_and(|n| consumed >= n) {
            break;
        }
        let wanted: Vec<&PartitionInfo> = layout
            .iter()
            .filter(|p| {
                !args.exit_at_end
                    || positions.get(&p.partition).copied().unwrap_or(0)
                        < high_watermarks.get(&p.partition).copied().unwrap_or(0)
            })
            .collect();
        if wanted.is_empty() {
            break;
        }
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in wanted {
            by_leader.entry(p.leader).or_default().push(p.partition);
        }
        let mut stale_layout = false;
        for (leader, partitions) in by_leader {
            if leader < 0 {
                stale_layout = true;
                continue;
            }
            let request = fetch_request(topic, &partitions, &positions, &args);
            let conn = session.broker(leader).await?;
            let response = tokio::select! {
                response = conn.call(&request) => response?,
                _ = interrupt.recv() => {
                    session.close_connections();
                    break 'fetching;
                }
            };
            CliError::check(response.error_code, None, || format!("fetch from {topic}"))?;
            for t in &response.responses {
                for p in &t.partitions {
                    let partition = p.partition_index;
                    if LEADER_MOVED.contains(&p.error_code) {
                        stale_layout = true;
                        continue;
                    }
                    CliError::check(p.error_code, None, || format!("fetch from {topic}-{partition}"))?;
                    high_watermarks.insert(partition, p.high_watermark);
                    let Some(records) = &p.records else { continue };
                    let from = positions.get(&partition).copied().unwrap_or(0);
                    let fetched = decode_fetched(records, from)?;
                    for record in &fetched.records {
                        if args.num.is_some_and(|n| consumed >= n) {
                            break 'fetching;
                        }
                        match write_record(&mut out, template.as_ref(), topic, partition, record) {
                            // The reader went away (`| head`): stop and commit the positions reached.
                            Err(e) if e.is_broken_pipe() => break 'fetching,
                            result => result?,
                        }
                        consumed += 1;
                        bytes += record.value.as_ref().map_or(0, |v| v.len() as u64);
                        positions.insert(partition, record.offset + 1);
                    }
                    if let Some(next) = fetched.next_offset
                        && next > positions.get(&partition).copied().unwrap_or(0)
                        && args.num.is_none_or(|n| consumed < n)
                    {
                        positions.insert(partition, next);
                    }
                }
            }
            match out.flush().map_err(CliError::Stdout) {
                Err(e) if e.is_broken_pipe() => break 'fetching,
                result => result?,
            }
            progress.update(consumed, bytes);
        }
        if stale_layout {
            refreshes += 1;
            if refreshes > MAX_REFRESHES {
                return Err(CliError::kafka(5, Some("no leader after repeated metadata refreshes"), topic));
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(refreshes.min(10)))).await;
            layout = selected_partitions(&mut session, &args).await?;
        } else {
            refreshes = 0;
        }
    }
    // Records already written are committed even if the reader went away.
    if let Err(e) = out.flush().map_err(CliError::Stdout)
        && !e.is_broken_pipe()
    {
        return Err(e);
    }
    progress.finish();
    if let Some(group) = &args.group {
        commit(&mut session, group, topic, &positions).await?;
    }
    Ok(())
}

/// The topic's partitions that `--partition` selects (all without it).
async fn selected_partitions(session: &mut Session, args: &ConsumeArgs) -> Result<Vec<PartitionInfo>, CliError> {
    let all = partitions_of(session, &args.topic).await?;
    if args.partition.is_empty() {
        return Ok(all);
    }
    for p in &args.partition {
        if !all.iter().any(|info| info.partition == *p) {
            return Err(CliError::kafka(3, Some("no such partition"), format!("partition {}-{p}", args.topic)));
        }
    }
    Ok(all.into_iter().filter(|p| args.partition.contains(&p.partition)).collect())
}

fn fetch_request(topic: &str, partitions: &[i32], positions: &BTreeMap<i32, i64>, args: &ConsumeArgs) -> FetchRequest {
    let partitions = partitions
        .iter()
        .map(|&p| {
            FetchPartition::default()
                .with_partition(p)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(positions.get(&p).copied().unwrap_or(0))
                .with_log_start_offset(-1)
                .with_partition_max_bytes(args.partition_max_bytes.clamp(1, FETCH_MAX_BYTES))
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        // Well inside the request timeout, so a long poll is not taken for a dead broker.
        .with_max_wait_ms(args.max_wait_ms.clamp(0, (args.connect.timeout_ms / 2).min(i32::MAX as u64) as i32))
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(topic_name(topic)).with_partitions(partitions)])
}

fn text(bytes: Option<&bytes::Bytes>) -> String {
    bytes.map_or_else(String::new, |b| String::from_utf8_lossy(b).into_owned())
}

fn write_record(
    out: &mut impl Write,
    template: Option<&Template>,
    topic: &str,
    partition: i32,
    record: &FetchedRecord,
) -> Result<(), CliError> {
    let line = match template {
        Some(t) => t.render(topic, partition, record),
        None => {
            let headers: serde_json::Map<String, serde_json::Value> = record
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.as_ref().map_or(serde_json::Value::Null, |v| text(Some(v)).into())))
                .collect();
            serde_json::to_string(&json!({
                "topic": topic, "partition": partition, "offset": record.offset,
                "timestamp": record.timestamp,
                "key": record.key.as_ref().map(|k| text(Some(k))),
                "value": record.value.as_ref().map(|v| text(Some(v))),
                "headers": headers,
            }))?
        }
    };
    out.write_all(line.as_bytes()).and_then(|()| out.write_all(b"\n")).map_err(CliError::Stdout)
}

/// A parsed `--format` template.
#[derive(Debug, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
}

#[derive(Debug)]
struct Template(Vec<Piece>);

impl Template {
    fn parse(format: &str) -> Template {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            let piece = match (c, chars.clone().next()) {
                ('%', Some(n @ ('t' | 'p' | 'o' | 'T' | 'k' | 'v'))) => match n {
                    't' => Piece::Topic,
                    'p' => Piece::Partition,
                    'o' => Piece::Offset,
                    'T' => Piece::Timestamp,
                    'k' => Piece::Key,
                    _ => Piece::Value,
                },
                ('%', Some('%')) => {
                    chars.next();
                    literal.push('%');
                    continue;
                }
                ('\\', Some(n @ ('n' | 't' | '\\'))) => {
                    chars.next();
                    literal.push(match n {
                        'n' => '\n',
                        't' => '\t',
                        _ => '\\',
                    });
                    continue;
                }
                _ => {
                    literal.push(c);
                    continue;
                }
            };
            chars.next();
            if !literal.is_empty() {
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
            }
            pieces.push(piece);
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Template(pieces)
    }

    fn render(&self, topic: &str, partition: i32, r: &FetchedRecord) -> String {
        let mut s = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(l) => s.push_str(l),
                Piece::Topic => s.push_str(topic),
                Piece::Partition => s.push_str(&partition.to_string()),
                Piece::Offset => s.push_str(&r.offset.to_string()),
                Piece::Timestamp => s.push_str(&r.timestamp.to_string()),
                Piece::Key => s.push_str(&text(r.key.as_ref())),
                Piece::Value => s.push_str(&text(r.value.as_ref())),
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn templates_substitute_fields_and_escapes() {
        let r = FetchedRecord {
            offset: 7,
            timestamp: 99,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"v")),
            headers: Vec::new(),
        };
        let t = Template::parse("%t/%p@%o %T %k=%v 100%% %x\\t.");
        assert_eq!(t.render("orders", 3, &r), "orders/3@7 99 k=v 100% %x\t.");
        assert_eq!(Template::parse("%v").render("t", 0, &r), "v");
    }

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("start"), Ok(StartAt::Start));
        assert_eq!(parse_start("end"), Ok(StartAt::End));
        assert_eq!(parse_start("42"), Ok(StartAt::Offset(42)));
        assert!(parse_start("-1").is_err());
    }
}
