//! The `/metrics` page: everything [`super`] counts plus what is read from the broker's
//! state at scrape time, encoded with prometheus-client in the Prometheus text format
//! (0.0.4). Names follow Kafka's metrics where one exists (see the README's metrics
//! reference); counters get prometheus-client's `_total` suffix.

use std::sync::Arc;

use kafka_protocol::messages::ApiKey;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::histogram::Snapshot;
use crate::broker::Broker;

/// Most (group, topic) lag series one scrape reports; past it the rest are counted in
/// `jet_consumer_group_lag_series_dropped`.
pub const MAX_LAG_SERIES: usize = 10_000;

/// The Prometheus text page for `broker`.
pub fn render(broker: &Arc<Broker>) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector(broker.clone())));
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
    Ok(out)
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

struct BrokerCollector(Arc<Broker>);

impl std::fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerCollector").field("node_id", &self.0.node_id).finish()
    }
}

fn counter(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, value: u64) -> Result<(), std::fmt::Error> {
    m.encode_family(labels)?.encode_counter::<NoLabelSet, u64, f64>(&value, None)
}

fn gauge(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, value: i64) -> Result<(), std::fmt::Error> {
    m.encode_family(labels)?.encode_gauge(&value)
}

fn histogram(m: &mut MetricEncoder<'_>, labels: &impl EncodeLabelSet, s: &Snapshot) -> Result<(), std::fmt::Error> {
    m.encode_family(labels)?.encode_histogram::<NoLabelSet>(s.sum_seconds, s.count, &s.buckets, None)
}

const NO_LABELS: [(&str, &str); 0] = [];

impl Collector for BrokerCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let broker = &self.0;
        let topics = broker.topics.all();

        // Per-topic traffic, summed over each topic's partitions.
        let traffic: Vec<(&str, [u64; 3])> = topics
            .iter()
            .map(|t| {
                let sum = t
                    .replicas()
                    .iter()
                    .filter_map(|p| p.traffic().map(|t| t.totals()))
                    .fold([0; 3], |a, b| [a[0] + b[0], a[1] + b[1], a[2] + b[2]]);
                (t.name.as_str(), sum)
            })
            .collect();
        // In the order of `PartitionTraffic::totals`.
        let per_topic = [
            ("jet_topic_bytes_in", "Record bytes appended to the topic (Kafka BytesInPerSec)."),
            ("jet_topic_messages_in", "Records appended to the topic (Kafka MessagesInPerSec)."),
            ("jet_topic_bytes_out", "Record bytes sent to fetchers of the topic (Kafka BytesOutPerSec)."),
        ];
        for (i, (name, help)) in per_topic.into_iter().enumerate() {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (topic, totals) in &traffic {
                counter(&mut m, &[("topic", *topic)], totals[i])?;
            }
        }

        // Requests per API key.
        let keys = crate::handler::IMPLEMENTED;
        let names: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
        let stats = |k: ApiKey| broker.metrics.api(k);
        let mut m = e.encode_descriptor(
            "jet_requests",
            "Requests received, per API (Kafka RequestsPerSec).",
            None,
            MetricType::Counter,
        )?;
        for (k, name) in keys.iter().zip(&names) {
            if let Some(s) = stats(*k) {
                counter(&mut m, &[("request", name.as_str())], s.requests.load(std::sync::atomic::Ordering::Relaxed))?;
            }
        }
        let mut m = e.encode_descriptor(
            "jet_request_duration_seconds",
            "Time from a request's decoding to its response being ready, per API (Kafka TotalTimeMs, without the send).",
            None,
            MetricType::Histogram,
        )?;
        for (k, name) in keys.iter().zip(&names) {
            if let Some(s) = stats(*k) {
                histogram(&mut m, &[("request", name.as_str())], &s.latency.snapshot())?;
            }
        }

        let mut m = e.encode_descriptor(
            "jet_request_errors",
            "Error codes in responses, per API and Kafka error name; NONE is not counted (Kafka ErrorsPerSec; process-wide).",
            None,
            MetricType::Counter,
        )?;
        for (k, name) in keys.iter().zip(&names) {
            for (code, n) in super::errors::API_ERRORS.counts(*k as i16) {
                let error = super::errors::error_name(code);
                counter(&mut m, &[("request", name.as_str()), ("error", error.as_str())], n)?;
            }
        }

        let mut m = e.encode_descriptor(
            "jet_connections",
            "Open client connections (Kafka connection-count).",
            None,
            MetricType::Gauge,
        )?;
        gauge(&mut m, &NO_LABELS, i64::try_from(broker.metrics.open_connections()).unwrap_or(i64::MAX))?;
        let mut m = e.encode_descriptor(
            "jet_connections_created",
            "Client connections accepted (Kafka connection-creation-total).",
            None,
            MetricType::Counter,
        )?;
        counter(&mut m, &NO_LABELS, broker.metrics.connections_created())?;

        let mut m = e.encode_descriptor(
            "jet_log_flush_duration_seconds",
            "Duration of the group-commit flusher's fdatasync calls (Kafka LogFlushRateAndTimeMs).",
            None,
            MetricType::Histogram,
        )?;
        histogram(&mut m, &NO_LABELS, &super::FSYNC_SECONDS.snapshot())?;

        let mut m = e.encode_descriptor(
            "jet_brokers",
            "Live brokers in this broker's view of the cluster, itself included (Kafka ActiveBrokerCount).",
            None,
            MetricType::Gauge,
        )?;
        gauge(&mut m, &NO_LABELS, i64::try_from(broker.cluster.live_brokers().len()).unwrap_or(i64::MAX))?;

        // A single node's own topics are hosted and led here; a cluster's replicated
        // topics count the replicas on this broker and the ones it leads.
        let cluster = broker.replication();
        let own: i64 = topics
            .iter()
            .filter(|t| cluster.is_none_or(|c| !c.is_replicated(t)))
            .map(|t| i64::from(t.partition_count()))
            .sum();
        let replicas = cluster.map(|c| c.replica_counts()).unwrap_or_default();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut m = e.encode_descriptor(
            "jet_partitions",
            "Partitions on this broker (Kafka PartitionCount).",
            None,
            MetricType::Gauge,
        )?;
        gauge(&mut m, &NO_LABELS, own + count(replicas.hosted))?;
        let mut m = e.encode_descriptor(
            "jet_leader_partitions",
            "Partitions this broker leads (Kafka LeaderCount).",
            None,
            MetricType::Gauge,
        )?;
        gauge(&mut m, &NO_LABELS, own + count(replicas.leading))?;
        if cluster.is_some() {
            let mut m = e.encode_descriptor(
                "jet_under_replicated_partitions",
                "Partitions led here with fewer in-sync replicas than assigned ones (Kafka UnderReplicatedPartitions).",
                None,
                MetricType::Gauge,
            )?;
            gauge(&mut m, &NO_LABELS, count(replicas.under_replicated))?;
            let mut m = e.encode_descriptor(
                "jet_leaderless_partitions",
                "Replicas on this broker whose partition has no leader known here (an election running, or no quorum).",
                None,
                MetricType::Gauge,
            )?;
            gauge(&mut m, &NO_LABELS, count(replicas.leaderless))?;
            let mut m = e.encode_descriptor(
                "jet_raft_requests_received",
                "Raft requests (appends, votes, heartbeats of every group) received from other brokers.",
                None,
                MetricType::Counter,
            )?;
            counter(&mut m, &NO_LABELS, replicas.raft_requests_received)?;
        }

        let lag = broker.groups.lag(broker, MAX_LAG_SERIES);
        let mut m = e.encode_descriptor(
            "jet_consumer_group_lag",
            "High watermark minus committed offset, summed over the topic's partitions the group committed.",
            None,
            MetricType::Gauge,
        )?;
        for l in &lag.series {
            gauge(&mut m, &[("group", l.group.as_str()), ("topic", l.topic.as_str())], l.lag)?;
        }
        let mut m = e.encode_descriptor(
            "jet_consumer_group_lag_series_dropped",
            "Lag series left out of this scrape past the cap of 10000.",
            None,
            MetricType::Gauge,
        )?;
        gauge(&mut m, &NO_LABELS, i64::try_from(lag.dropped).unwrap_or(i64::MAX))?;

        encode_process(&mut e)
    }
}

/// `process_*` metrics with the names Prometheus client libraries use, read from /proc.
fn encode_process(e: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let figures = [
        ("process_resident_memory_bytes", "Resident memory size in bytes.", process::resident_bytes()),
        ("process_open_fds", "Number of open file descriptors.", process::open_fds()),
        ("process_max_fds", "Maximum number of open file descriptors.", process::max_fds()),
    ];
    for (name, help, value) in figures {
        if let Some(v) = value {
            let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
            gauge(&mut m, &NO_LABELS, i64::try_from(v).unwrap_or(i64::MAX))?;
        }
    }
    Ok(())
}

mod process {
    /// Resident set size from `/proc/self/statm` (pages).
    pub fn resident_bytes() -> Option<u64> {
        let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * u64::try_from(page).ok()?)
    }

    pub fn open_fds() -> Option<u64> {
        Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
    }

    pub fn max_fds() -> Option<u64> {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: a valid pointer to an rlimit.
        (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use clap::Parser;
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, produce_request};
    use kafka_protocol::protocol::Decodable;

    use super::*;

    pub(crate) fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let args = ["jet", "--listen", "127.0.0.1:0", "--data-dir", dir.to_str().unwrap()];
        Broker::open(crate::config::Cli::try_parse_from(args).unwrap().into_broker_config()).unwrap()
    }

    /// One uncompressed batch of `records` records of `size` bytes each, stamped now.
    pub(crate) fn batch(records: usize, size: usize) -> bytes::Bytes {
        bytes::Bytes::from(crate::log::test_util::producer_batch(
            records,
            crate::broker::now_ms(),
            size,
            kafka_protocol::records::Compression::None,
            (-1, -1, -1),
        ))
    }

    /// Produces `data` through the Produce handler with acks=all (so it is durable and
    /// under the high watermark when this returns).
    pub(crate) async fn produce(b: &Arc<Broker>, topic: &str, partition: i32, data: bytes::Bytes) {
        let part = produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(data));
        let topic = produce_request::TopicProduceData::default()
            .with_name(crate::handler::topic_name(topic))
            .with_partition_data(vec![part]);
        let request = ProduceRequest::default().with_acks(-1).with_timeout_ms(30_000).with_topic_data(vec![topic]);
        // v8: the last version with a plain response header (size, correlation id).
        let to = crate::handler::ReplyTo {
            api_key: ApiKey::Produce,
            version: 8,
            correlation_id: 1,
            listener: Default::default(),
        };
        let out = crate::handler::produce::start(b.clone(), request, to).await.await.expect("encode").expect("answer");
        let crate::protocol::splice::Part::Bytes(bytes) = &out.parts[0] else { panic!("not bytes") };
        let mut body = bytes.slice(8..);
        let r = ProduceResponse::decode(&mut body, 8).expect("decode");
        let p = &r.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "{:?}", p.error_message);
    }

    /// The value of the sample named exactly `series` (name and labels).
    pub(crate) fn sample(page: &str, series: &str) -> Option<f64> {
        page.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn page_has_per_topic_traffic_requests_and_broker_figures() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        let t = b.create_topic("orders", 2, 1, BTreeMap::new(), false).unwrap().unwrap();
        b.create_topic("idle", 1, 1, BTreeMap::new(), false).unwrap();
        let data = batch(3, 10);
        // Two appends on two partitions: the topic's series is their sum.
        produce(&b, "orders", 0, data.clone()).await;
        produce(&b, "orders", 1, data.clone()).await;
        crate::metrics::record_fetched(&b, "orders", 1, 100);
        b.metrics.request_started(ApiKey::Produce).finish(&b.metrics);
        let _c = b.metrics.connection_opened();

        let page = render(&b).unwrap();
        let len = data.len() as f64;
        assert_eq!(sample(&page, r#"jet_topic_bytes_in_total{topic="orders"}"#), Some(2.0 * len), "{page}");
        assert_eq!(sample(&page, r#"jet_topic_messages_in_total{topic="orders"}"#), Some(6.0));
        assert_eq!(sample(&page, r#"jet_topic_bytes_out_total{topic="orders"}"#), Some(100.0));
        assert_eq!(sample(&page, r#"jet_topic_bytes_in_total{topic="idle"}"#), Some(0.0));
        assert_eq!(sample(&page, r#"jet_requests_total{request="Produce"}"#), Some(1.0));
        assert_eq!(sample(&page, r#"jet_requests_total{request="Fetch"}"#), Some(0.0));
        assert_eq!(sample(&page, r#"jet_request_duration_seconds_count{request="Produce"}"#), Some(1.0));
        assert_eq!(sample(&page, r#"jet_request_duration_seconds_bucket{request="Produce",le="+Inf"}"#), Some(1.0));
        // `le` buckets are cumulative: the largest finite one holds the observation too.
        assert_eq!(sample(&page, r#"jet_request_duration_seconds_bucket{request="Produce",le="10"}"#), Some(1.0));
        assert!(page.contains("# TYPE jet_request_duration_seconds histogram\n"), "{page}");
        assert!(page.contains("# TYPE jet_topic_bytes_in_total counter\n"), "{page}");
        assert_eq!(sample(&page, "jet_connections"), Some(1.0));
        assert_eq!(sample(&page, "jet_brokers"), Some(1.0), "a single node counts itself");
        assert_eq!(sample(&page, "jet_partitions"), Some(3.0));
        assert_eq!(sample(&page, "jet_leader_partitions"), Some(3.0));
        // acks=all: the appends waited for timed fsyncs.
        assert!(sample(&page, "jet_log_flush_duration_seconds_count").is_some_and(|n| n >= 1.0), "{page}");
        assert!(sample(&page, "process_resident_memory_bytes").is_some_and(|v| v > 0.0), "{page}");
        assert!(sample(&page, "process_open_fds").is_some_and(|v| v > 0.0), "{page}");

        // A deleted topic's series go with it.
        b.delete_topic(&t).unwrap();
        let page = render(&b).unwrap();
        assert!(!page.contains(r#"topic="orders""#), "{page}");
        assert_eq!(sample(&page, "jet_partitions"), Some(1.0));
    }

    #[tokio::test]
    async fn group_lag_series_are_labelled_by_group_and_topic() {
        let dir = tempfile::tempdir().unwrap();
        let b = broker(dir.path());
        b.create_topic("events", 1, 1, BTreeMap::new(), false).unwrap();
        produce(&b, "events", 0, batch(4, 1)).await;
        {
            let mut state = b.groups.lock().unwrap();
            let value = crate::group::records::OffsetValue {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 0,
                expire_timestamp: -1,
            };
            state.entry("readers", 0).offsets.insert(("events".to_string(), 0), value);
        }
        let page = render(&b).unwrap();
        assert_eq!(sample(&page, r#"jet_consumer_group_lag{group="readers",topic="events"}"#), Some(3.0), "{page}");
        assert_eq!(sample(&page, "jet_consumer_group_lag_series_dropped"), Some(0.0));
    }
}
