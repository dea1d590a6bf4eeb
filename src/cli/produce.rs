//! `jet produce TOPIC`: each line of standard input becomes a record (optionally
//! `key<SEP>value` with `--key-separator`), batched per partition and sent to each
//! partition's leader; the offsets written are printed at the end (per record with
//! `--print-offsets`).
//!
//! Partitioning follows Kafka's default partitioner so keyed records land where a Java
//! producer would put them: murmur2 of the key modulo the partition count; records
//! without a key stick to one partition per batch and move on to the next one after it.
//! A batch refused because leadership moved (nothing was written) is sent again to the
//! new leader, up to `MAX_ATTEMPTS` times.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::ProduceRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::records::Compression;
use serde_json::{Value, json};

use super::Common;
use super::error::CliError;
use super::offsets::{LEADER_MOVED, PartitionInfo, partitions_of};
use super::output::{OutputFormat, Progress, Table, print, print_json};
use super::records::encode_batch;
use super::session::{Session, topic_name};

#[derive(Debug, Args)]
pub struct ProduceArgs {
    pub topic: String,
    /// Split each line at the first occurrence of this string into key and value.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// Write every record to this partition (else: by key hash, or batch by batch).
    #[arg(long)]
    pub partition: Option<i32>,
    /// Acknowledgements to wait for: `all` (-1), `1` (the leader) or `0` (none: no offsets
    /// are known then).
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: i16,
    /// Compression of the batches sent.
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
    /// Send a batch once this many records are waiting.
    #[arg(long, default_value_t = 10_000)]
    pub batch_records: usize,
    /// Send a batch once this many bytes of keys and values are waiting.
    #[arg(long, default_value_t = 512 << 10)]
    pub batch_bytes: usize,
    /// Print the partition and offset of every record, not just a summary.
    #[arg(long)]
    pub print_offsets: bool,
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl From<CompressionArg> for Compression {
    fn from(c: CompressionArg) -> Compression {
        match c {
            CompressionArg::None => Compression::None,
            CompressionArg::Gzip => Compression::Gzip,
            CompressionArg::Snappy => Compression::Snappy,
            CompressionArg::Lz4 => Compression::Lz4,
            CompressionArg::Zstd => Compression::Zstd,
        }
    }
}

fn parse_acks(s: &str) -> Result<i16, String> {
    match s {
        "all" | "-1" => Ok(-1),
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(format!("acks must be all, -1, 0 or 1, not {s:?}")),
    }
}

/// Kafka's `Utils.murmur2`, which its default partitioner hashes keys with.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's default partition for a key.
pub fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as usize % partitions.max(1)) as i32
}

/// Sends of one batch before giving up when its partition's leader keeps moving.
const MAX_ATTEMPTS: u32 = 10;

/// Records waiting for one partition: (key, value).
type Pending = Vec<(Option<Bytes>, Bytes)>;

/// What was written to one partition.
#[derive(Debug, Default)]
struct Written {
    records: u64,
    first_offset: Option<i64>,
    last_offset: Option<i64>,
}

struct Producer<'a> {
    session: &'a mut Session,
    args: &'a ProduceArgs,
    partitions: Vec<PartitionInfo>,
    pending: BTreeMap<i32, Pending>,
    pending_records: usize,
    pending_bytes: usize,
    sticky: usize,
    written: BTreeMap<i32, Written>,
    /// (partition, offset) of every record, when asked for.
    offsets: Vec<(i32, i64)>,
    total_records: u64,
    total_bytes: u64,
}

pub async fn run(args: ProduceArgs) -> Result<(), CliError> {
    let mut session = args.common.connect.session().await?;
    let partitions = partitions_of(&mut session, &args.topic).await?;
    if let Some(p) = args.partition
        && !partitions.iter().any(|info| info.partition == p)
    {
        return Err(CliError::kafka(3, Some("no such partition"), format!("partition {}-{p}", args.topic)));
    }
    let mut producer = Producer {
        session: &mut session,
        args: &args,
        partitions,
        pending: BTreeMap::new(),
        pending_records: 0,
        pending_bytes: 0,
        sticky: 0,
        written: BTreeMap::new(),
        offsets: Vec::new(),
        total_records: 0,
        total_bytes: 0,
    };
    let mut progress = Progress::new("produced");
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        // Blocking read on the command's single-threaded runtime: nothing else runs meanwhile.
        if input.read_until(b'\n', &mut line).map_err(CliError::Stdin)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        producer.add(&line);
        if producer.pending_records >= args.batch_records.max(1) || producer.pending_bytes >= args.batch_bytes {
            producer.flush().await?;
            progress.update(producer.total_records, producer.total_bytes);
        }
    }
    producer.flush().await?;
    progress.finish();
    producer.report()
}

impl Producer<'_> {
    fn add(&mut self, line: &[u8]) {
        let (key, value) = match self.args.key_separator.as_deref().filter(|s| !s.is_empty()) {
            Some(sep) => match find(line, sep.as_bytes()) {
                Some(at) => {
                    (Some(Bytes::copy_from_slice(&line[..at])), Bytes::copy_from_slice(&line[at + sep.len()..]))
                }
                None => (None, Bytes::copy_from_slice(line)),
            },
            None => (None, Bytes::copy_from_slice(line)),
        };
        let partition = match (self.args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => self.partitions[partition_for_key(k, self.partitions.len()) as usize].partition,
            (None, None) => self.partitions[self.sticky % self.partitions.len()].partition,
        };
        self.pending_bytes += key.as_ref().map_or(0, Bytes::len) + value.len();
        self.pending_records += 1;
        self.pending.entry(partition).or_default().push((key, value));
    }

    async fn flush(&mut self) -> Result<(), CliError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.sticky = self.sticky.wrapping_add(1);
        let mut waiting = std::mem::take(&mut self.pending);
        self.total_bytes += self.pending_bytes as u64;
        self.pending_records = 0;
        self.pending_bytes = 0;
        let mut attempt = 0;
        loop {
            let (retry, last_error) = self.send(waiting).await?;
            if retry.is_empty() {
                return Ok(());
            }
            attempt += 1;
            if attempt > MAX_ATTEMPTS {
                return Err(last_error.unwrap_or_else(|| {
                    CliError::kafka(5, Some("no leader"), format!("produce to {}", self.args.topic))
                }));
            }
            // Leadership moved (or is moving): learn where, then send those batches again.
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10)))).await;
            self.partitions = partitions_of(self.session, &self.args.topic).await?;
            waiting = retry;
        }
    }

    /// Sends each partition's records to its leader. Returns the partitions to try again
    /// (no leader, or the broker is no longer the leader: nothing was written) and the
    /// error that said so.
    async fn send(
        &mut self,
        waiting: BTreeMap<i32, Pending>,
    ) -> Result<(BTreeMap<i32, Pending>, Option<CliError>), CliError> {
        let mut retry = BTreeMap::new();
        let mut last_error = None;
        let mut by_leader: BTreeMap<i32, BTreeMap<i32, Pending>> = BTreeMap::new();
        for (partition, records) in waiting {
            match self.partitions.iter().find(|p| p.partition == partition).map_or(-1, |p| p.leader) {
                leader if leader < 0 => {
                    retry.insert(partition, records);
                }
                leader => {
                    by_leader.entry(leader).or_default().insert(partition, records);
                }
            }
        }
        let timestamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        for (leader, mut batches) in by_leader {
            let mut data = Vec::new();
            for (partition, records) in &batches {
                let bytes = encode_batch(records, self.args.compression.into(), timestamp)?;
                data.push(PartitionProduceData::default().with_index(*partition).with_records(Some(bytes)));
            }
            let request = ProduceRequest::default()
                .with_acks(self.args.acks)
                .with_timeout_ms(self.session.timeout().as_millis().min(i32::MAX as u128) as i32)
                .with_topic_data(vec![
                    TopicProduceData::default().with_name(topic_name(&self.args.topic)).with_partition_data(data),
                ]);
            let conn = self.session.broker(leader).await?;
            if self.args.acks == 0 {
                let version = conn.version::<ProduceRequest>()?;
                conn.send_at(&request, version).await?;
                for (partition, records) in &batches {
                    self.written.entry(*partition).or_default().records += records.len() as u64;
                    self.total_records += records.len() as u64;
                }
                continue;
            }
            let response = conn.call(&request).await?;
            for t in &response.responses {
                for p in &t.partition_responses {
                    let topic = &self.args.topic;
                    let checked = CliError::check(p.error_code, p.error_message.as_deref(), || {
                        format!("produce to {topic}-{}", p.index)
                    });
                    if let Err(e) = checked {
                        if !LEADER_MOVED.contains(&p.error_code) {
                            return Err(e);
                        }
                        if let Some(records) = batches.remove(&p.index) {
                            retry.insert(p.index, records);
                        }
                        last_error = Some(e);
                        continue;
                    }
                    let n = batches.get(&p.index).map_or(0, Vec::len) as i64;
                    let w = self.written.entry(p.index).or_default();
                    w.records += n as u64;
                    w.first_offset.get_or_insert(p.base_offset);
                    w.last_offset = Some(p.base_offset + n - 1);
                    self.total_records += n as u64;
                    if self.args.print_offsets {
                        self.offsets.extend((0..n).map(|i| (p.index, p.base_offset + i)));
                    }
                }
            }
        }
        Ok((retry, last_error))
    }

    fn report(&self) -> Result<(), CliError> {
        let offset = |o: Option<i64>| o.map_or(Value::Null, Value::from);
        match self.args.common.format {
            OutputFormat::Json => {
                let mut value = json!({
                    "topic": self.args.topic,
                    "records": self.total_records,
                    "partitions": self.written.iter().map(|(p, w)| json!({
                        "partition": p, "records": w.records,
                        "first_offset": offset(w.first_offset), "last_offset": offset(w.last_offset),
                    })).collect::<Vec<_>>(),
                });
                if self.args.print_offsets {
                    value["offsets"] =
                        self.offsets.iter().map(|(p, o)| json!({"partition": p, "offset": o})).collect::<Value>();
                }
                print_json(&value)
            }
            OutputFormat::Text => {
                let mut text = String::new();
                if self.args.print_offsets {
                    let mut table = Table::new(&["PARTITION", "OFFSET"]);
                    for (p, o) in &self.offsets {
                        table.row(vec![p.to_string(), o.to_string()]);
                    }
                    text.push_str(&table.render());
                    text.push('\n');
                }
                let mut table = Table::new(&["PARTITION", "RECORDS", "FIRST-OFFSET", "LAST-OFFSET"]);
                let show = |o: Option<i64>| o.map_or_else(|| "-".to_string(), |o| o.to_string());
                for (p, w) in &self.written {
                    table.row(vec![p.to_string(), w.records.to_string(), show(w.first_offset), show(w.last_offset)]);
                }
                text.push_str(&table.render());
                print(&text)
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973932308);
        assert_eq!(murmur2(b"foobar"), -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58897971);
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn acks_accept_kafka_spellings() {
        assert_eq!(parse_acks("all"), Ok(-1));
        assert_eq!(parse_acks("1"), Ok(1));
        assert!(parse_acks("2").is_err());
    }

    #[test]
    fn separators_split_at_the_first_occurrence() {
        assert_eq!(find(b"k::v::w", b"::"), Some(1));
        assert_eq!(find(b"kv", b"::"), None);
    }
}
