//! What the broker counts while it works, kept in atomics so the request and produce
//! paths pay one relaxed add per value; [`collect`] turns it (and what is read from the
//! broker's state at scrape time: partitions, consumer-group lag, process figures) into
//! the Prometheus text the admin HTTP server serves at `/metrics`.
//!
//! Per-topic traffic is counted on each [`crate::broker::partition::Partition`] (no map
//! lookup, no allocation per batch) and summed per topic when scraped, so a deleted
//! topic's series disappear with it.

pub mod collect;
pub mod errors;
mod histogram;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use kafka_protocol::messages::ApiKey;

pub use histogram::AtomicHistogram;

/// Upper bounds (seconds) of the request-latency buckets: 0.5 ms to 10 s (long-polls
/// wait up to the client's `fetch.max.wait.ms`, 500 ms by default).
pub const REQUEST_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds (seconds) of the fsync-latency buckets: 100 µs to 2.5 s.
pub const FSYNC_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Durations of the group-commit flusher's `fdatasync` calls (process-wide: the
/// flusher's threads record here, see `log::flusher`).
pub static FSYNC_SECONDS: AtomicHistogram = AtomicHistogram::new(FSYNC_BUCKETS);

/// API keys are small numbers (Kafka 4 uses 0..=92); one slot each.
const API_KEY_SLOTS: usize = 128;

/// One API key's request count and latency.
#[derive(Debug)]
pub struct ApiStats {
    pub requests: AtomicU64,
    pub latency: AtomicHistogram,
}

/// Broker-wide counters: requests per API key, open connections.
#[derive(Debug)]
pub struct BrokerMetrics {
    api: Box<[ApiStats]>,
    connections: AtomicU64,
    connections_created: AtomicU64,
}

impl Default for BrokerMetrics {
    fn default() -> Self {
        let api = (0..API_KEY_SLOTS)
            .map(|_| ApiStats { requests: AtomicU64::new(0), latency: AtomicHistogram::new(REQUEST_BUCKETS) })
            .collect();
        BrokerMetrics { api, connections: AtomicU64::new(0), connections_created: AtomicU64::new(0) }
    }
}

impl BrokerMetrics {
    /// Counts a request of `key` now; its latency is recorded when the returned timer
    /// is finished.
    pub fn request_started(&self, key: ApiKey) -> RequestTimer {
        let slot = usize::try_from(key as i16).ok().filter(|&i| i < self.api.len());
        if let Some(i) = slot {
            self.api[i].requests.fetch_add(1, Ordering::Relaxed);
        }
        RequestTimer { slot, started: Instant::now() }
    }

    /// The stats of one API key.
    pub fn api(&self, key: ApiKey) -> Option<&ApiStats> {
        usize::try_from(key as i16).ok().and_then(|i| self.api.get(i))
    }

    /// Counts an open connection until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard<'_> {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.connections_created.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(&self.connections)
    }

    pub fn open_connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    pub fn connections_created(&self) -> u64 {
        self.connections_created.load(Ordering::Relaxed)
    }
}

/// A request being served (see [`BrokerMetrics::request_started`]); owns no borrow,
/// so it can move into the task that finishes the request.
pub struct RequestTimer {
    slot: Option<usize>,
    started: Instant,
}

impl RequestTimer {
    /// Records the time since the request started.
    pub fn finish(self, metrics: &BrokerMetrics) {
        if let Some(s) = self.slot.and_then(|i| metrics.api.get(i)) {
            s.latency.observe(self.started.elapsed());
        }
    }
}

/// An open connection (see [`BrokerMetrics::connection_opened`]).
pub struct ConnectionGuard<'a>(&'a AtomicU64);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts `bytes` of records of `topic`-`partition` put in a fetch response: once per
/// partition per response, looked up by name (no allocation) so it holds whatever type
/// the fetch path reaches partitions through.
pub fn record_fetched(broker: &crate::broker::Broker, topic: &str, partition: i32, bytes: usize) {
    if let Some(p) = broker.topic(topic).and_then(|t| t.replica(partition))
        && let Some(traffic) = p.traffic()
    {
        traffic.fetched(bytes);
    }
}

/// One partition's traffic: what producers (and the group coordinator) appended and
/// what fetches sent. Summed per topic at scrape time.
#[derive(Debug, Default)]
pub struct PartitionTraffic {
    bytes_in: AtomicU64,
    messages_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl PartitionTraffic {
    /// Counts an append of `bytes` holding `messages` records.
    pub fn appended(&self, bytes: usize, messages: u64) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
        self.messages_in.fetch_add(messages, Ordering::Relaxed);
    }

    /// Counts `bytes` of records put in a fetch response.
    pub fn fetched(&self, bytes: usize) {
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// [bytes in, messages in, bytes out].
    pub fn totals(&self) -> [u64; 3] {
        [
            self.bytes_in.load(Ordering::Relaxed),
            self.messages_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_per_key_and_timed_when_finished() {
        let m = BrokerMetrics::default();
        let t = m.request_started(ApiKey::Produce);
        let _ = m.request_started(ApiKey::Fetch);
        assert_eq!(m.api(ApiKey::Produce).unwrap().requests.load(Ordering::Relaxed), 1);
        assert_eq!(m.api(ApiKey::Produce).unwrap().latency.snapshot().count, 0);
        t.finish(&m);
        assert_eq!(m.api(ApiKey::Produce).unwrap().latency.snapshot().count, 1);
        // The Fetch timer was dropped unfinished: counted, not timed.
        assert_eq!(m.api(ApiKey::Fetch).unwrap().requests.load(Ordering::Relaxed), 1);
        assert_eq!(m.api(ApiKey::Fetch).unwrap().latency.snapshot().count, 0);
    }

    #[test]
    fn connections_are_counted_while_open() {
        let m = BrokerMetrics::default();
        let a = m.connection_opened();
        let b = m.connection_opened();
        assert_eq!(m.open_connections(), 2);
        drop(a);
        assert_eq!(m.open_connections(), 1);
        drop(b);
        assert_eq!((m.open_connections(), m.connections_created()), (0, 2));
    }
}
