//! Consumer-group lag for `/metrics`, computed when scraped from the committed offsets
//! held in memory and each partition's high watermark: no background work, and a cap
//! on the series one scrape reports.

use std::collections::HashMap;
use std::sync::Arc;

use super::GroupCoordinator;
use crate::broker::Broker;
use crate::broker::topics::Topic;

/// One group's lag on one topic: the sum over the partitions it committed offsets for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    pub group: String,
    pub topic: String,
    pub lag: i64,
}

/// The lag series of one scrape and how many were left out past the cap.
#[derive(Debug, Default)]
pub struct LagReport {
    pub series: Vec<GroupLag>,
    pub dropped: usize,
}

impl GroupCoordinator {
    /// Lag of every group on every topic it committed offsets for, at most `max_series`
    /// of them (groups in no particular order). A partition's lag is its high watermark
    /// minus the committed offset, never negative; offsets of deleted topics or
    /// partitions are skipped.
    pub fn lag(&self, broker: &Broker, max_series: usize) -> LagReport {
        let mut report = LagReport::default();
        let Ok(state) = self.lock() else { return report };
        // One registry lookup per topic per scrape.
        let mut topics: HashMap<&str, Option<Arc<Topic>>> = HashMap::new();
        for (group, entry) in &state.groups {
            // Offsets are keyed (topic, partition): each topic's partitions are adjacent.
            let mut current: Option<(&str, i64)> = None;
            let flush = |done: Option<(&str, i64)>, report: &mut LagReport| {
                if let Some((topic, lag)) = done {
                    if report.series.len() < max_series {
                        report.series.push(GroupLag { group: group.clone(), topic: topic.to_string(), lag });
                    } else {
                        report.dropped += 1;
                    }
                }
            };
            for ((topic, partition), value) in &entry.offsets {
                let Some(t) = topics.entry(topic.as_str()).or_insert_with(|| broker.topic(topic)) else { continue };
                let Some(p) = t.replica(*partition) else { continue };
                if value.offset < 0 {
                    continue;
                }
                let lag = (p.high_watermark() - value.offset).max(0);
                match &mut current {
                    Some((name, sum)) if *name == topic.as_str() => *sum += lag,
                    _ => flush(current.replace((topic.as_str(), lag)), &mut report),
                }
            }
            flush(current, &mut report);
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::group::records::OffsetValue;
    use crate::metrics::collect::tests::{batch, broker, produce};

    fn commit(broker: &Broker, group: &str, topic: &str, partition: i32, offset: i64) {
        let mut state = broker.groups.lock().unwrap();
        let value = OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 0,
            expire_timestamp: -1,
        };
        state.entry(group, 0).offsets.insert((topic.to_string(), partition), value);
    }

    #[tokio::test]
    async fn lag_is_summed_per_group_and_topic_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        broker.create_topic("a", 2, 1, BTreeMap::new(), false).unwrap();
        broker.create_topic("b", 1, 1, BTreeMap::new(), false).unwrap();
        produce(&broker, "a", 0, batch(5, 1)).await;
        produce(&broker, "a", 1, batch(3, 1)).await;
        produce(&broker, "b", 0, batch(4, 1)).await;
        commit(&broker, "g1", "a", 0, 2); // lag 3
        commit(&broker, "g1", "a", 1, 3); // lag 0
        commit(&broker, "g1", "b", 0, 1); // lag 3
        commit(&broker, "g2", "a", 0, 9); // past the high watermark: 0
        commit(&broker, "g2", "gone", 0, 1); // deleted topic: skipped
        let mut series = broker.groups.lag(&broker, 100).series;
        series.sort_by(|x, y| (&x.group, &x.topic).cmp(&(&y.group, &y.topic)));
        let expect = |g: &str, t: &str, lag| GroupLag { group: g.into(), topic: t.into(), lag };
        assert_eq!(series, vec![expect("g1", "a", 3), expect("g1", "b", 3), expect("g2", "a", 0)]);
        let capped = broker.groups.lag(&broker, 2);
        assert_eq!((capped.series.len(), capped.dropped), (2, 1));
    }
}
