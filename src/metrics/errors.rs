//! Error codes in responses, per API key and code (Kafka's `ErrorsPerSec{request,error}`,
//! without `NONE`): counted where a response body is encoded, from the error-code fields
//! at every level of it (as Kafka's `errorCounts()`), in a process-wide table of atomics.

use std::sync::atomic::{AtomicU64, Ordering};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseKind};

/// API keys 0..128 (Kafka 4 uses 0..=92).
const API_SLOTS: usize = 128;
/// Error codes -1..=134 (Kafka 4 defines up to about 130); a code outside is not counted.
const CODE_SLOTS: usize = 136;

/// Counts of non-zero error codes per (API key, code). Process-wide, like the fsync
/// histogram: one broker per process outside tests.
pub struct ApiErrors {
    counts: [[AtomicU64; CODE_SLOTS]; API_SLOTS],
}

pub static API_ERRORS: ApiErrors =
    ApiErrors { counts: [const { [const { AtomicU64::new(0) }; CODE_SLOTS] }; API_SLOTS] };

fn code_slot(code: i16) -> Option<usize> {
    usize::try_from(i32::from(code) + 1).ok().filter(|&i| i < CODE_SLOTS)
}

/// Counts `code` unless it is NONE (0) or outside the table.
fn count(row: &[AtomicU64; CODE_SLOTS], code: i16) {
    if let Some(slot) = code_slot(code).filter(|_| code != 0) {
        row[slot].fetch_add(1, Ordering::Relaxed);
    }
}

fn slot_code(slot: usize) -> i16 {
    i16::try_from(slot).map_or(i16::MAX, |s| s - 1)
}

impl ApiErrors {
    /// Counts the error codes in a response of API `key`.
    pub fn record(&self, key: i16, body: &ResponseKind) {
        let Some(row) = usize::try_from(key).ok().and_then(|k| self.counts.get(k)) else { return };
        each_error_code(body, |code| count(row, code));
    }

    /// Counts the error codes in a Fetch response (encoded by itself, with file ranges).
    pub fn record_fetch(&self, body: &FetchResponse) {
        let Some(row) = self.counts.get(ApiKey::Fetch as usize) else { return };
        fetch_codes(body, &mut |code| count(row, code));
    }

    /// (code, count) of API `key`, non-zero counts only.
    pub fn counts(&self, key: i16) -> Vec<(i16, u64)> {
        let Some(row) = usize::try_from(key).ok().and_then(|k| self.counts.get(k)) else { return Vec::new() };
        row.iter()
            .enumerate()
            .filter_map(|(slot, n)| Some((slot_code(slot), n.load(Ordering::Relaxed))).filter(|(_, n)| *n > 0))
            .collect()
    }
}

/// Kafka's name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), or the number.
pub fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => code.to_string(),
        Some(e) => screaming_snake(&format!("{e:?}")),
    }
}

/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn fetch_codes(r: &FetchResponse, e: &mut impl FnMut(i16)) {
    e(r.error_code);
    r.responses.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code));
}

/// Calls `f` with every non-zero error code in `body`.
fn each_error_code(body: &ResponseKind, mut f: impl FnMut(i16)) {
    use ResponseKind as R;
    let mut e = |code: i16| {
        if code != 0 {
            f(code)
        }
    };
    match body {
        R::Produce(r) => r.responses.iter().flat_map(|t| &t.partition_responses).for_each(|p| e(p.error_code)),
        R::Fetch(r) => fetch_codes(r, &mut e),
        R::ListOffsets(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code)),
        R::Metadata(r) => {
            e(r.error_code);
            for t in &r.topics {
                e(t.error_code);
                t.partitions.iter().for_each(|p| e(p.error_code));
            }
        }
        R::OffsetCommit(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code)),
        R::OffsetFetch(r) => {
            e(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code));
            for g in &r.groups {
                e(g.error_code);
                g.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code));
            }
        }
        R::FindCoordinator(r) => {
            e(r.error_code);
            r.coordinators.iter().for_each(|c| e(c.error_code));
        }
        R::JoinGroup(r) => e(r.error_code),
        R::Heartbeat(r) => e(r.error_code),
        R::LeaveGroup(r) => {
            e(r.error_code);
            r.members.iter().for_each(|m| e(m.error_code));
        }
        R::SyncGroup(r) => e(r.error_code),
        R::DescribeGroups(r) => r.groups.iter().for_each(|g| e(g.error_code)),
        R::ListGroups(r) => e(r.error_code),
        R::CreateTopics(r) => r.topics.iter().for_each(|t| e(t.error_code)),
        R::DeleteTopics(r) => r.responses.iter().for_each(|t| e(t.error_code)),
        R::DeleteRecords(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code)),
        R::InitProducerId(r) => e(r.error_code),
        R::DescribeConfigs(r) => r.results.iter().for_each(|x| e(x.error_code)),
        R::AlterConfigs(r) => r.responses.iter().for_each(|x| e(x.error_code)),
        R::IncrementalAlterConfigs(r) => r.responses.iter().for_each(|x| e(x.error_code)),
        R::CreatePartitions(r) => r.results.iter().for_each(|x| e(x.error_code)),
        R::DeleteGroups(r) => r.results.iter().for_each(|x| e(x.error_code)),
        R::OffsetDelete(r) => {
            e(r.error_code);
            r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code));
        }
        R::ConsumerGroupHeartbeat(r) => e(r.error_code),
        R::ConsumerGroupDescribe(r) => r.groups.iter().for_each(|g| e(g.error_code)),
        R::DescribeCluster(r) => e(r.error_code),
        R::OffsetForLeaderEpoch(r) => r.topics.iter().flat_map(|t| &t.partitions).for_each(|p| e(p.error_code)),
        R::DescribeLogDirs(r) => {
            e(r.error_code);
            r.results.iter().for_each(|x| e(x.error_code));
        }
        R::SaslHandshake(r) => e(r.error_code),
        R::SaslAuthenticate(r) => e(r.error_code),
        R::ApiVersions(r) => e(r.error_code),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::ProduceResponse;
    use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};

    use super::*;

    #[test]
    fn partition_codes_are_counted_per_api_and_code() {
        let table = ApiErrors { counts: [const { [const { AtomicU64::new(0) }; CODE_SLOTS] }; API_SLOTS] };
        let part = |code: ResponseError| PartitionProduceResponse::default().with_error_code(code.code());
        let ok = PartitionProduceResponse::default();
        let body = ResponseKind::Produce(ProduceResponse::default().with_responses(vec![
            TopicProduceResponse::default().with_partition_responses(vec![
                part(ResponseError::UnknownTopicOrPartition),
                ok,
                part(ResponseError::UnknownTopicOrPartition),
            ]),
            TopicProduceResponse::default().with_partition_responses(vec![part(ResponseError::UnknownServerError)]),
        ]));
        table.record(ApiKey::Produce as i16, &body);
        assert_eq!(table.counts(ApiKey::Produce as i16), vec![(-1, 1), (3, 2)]);
        assert!(table.counts(ApiKey::Fetch as i16).is_empty());
        // Fetch responses are counted on their own path, NONE left out there too.
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let fetch = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_partitions(vec![PartitionData::default(), PartitionData::default().with_error_code(1)]),
        ]);
        table.record_fetch(&fetch);
        assert_eq!(table.counts(ApiKey::Fetch as i16), vec![(1, 1)]);
    }

    #[test]
    fn errors_have_kafkas_names() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(9999), "9999");
    }
}
