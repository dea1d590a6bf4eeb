//! Retention of replicated partitions (`retention.ms`, `retention.bytes`).
//!
//! Every `log.retention.check.interval.ms` each broker checks the partitions it leads: the
//! leader decides from its own segments below the high watermark and moves the log start
//! of every replica with a log-start entry ([`RaftReplica::enforce_retention`]); the
//! segments below it go when raft purges them, on every replica alike. Followers decide
//! nothing, so the replicas never disagree on what is retained.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use kafka_protocol::ResponseError;

use super::ClusterRuntime;
use crate::broker::partition::PartitionError;
use crate::broker::raft_replica::RaftReplica;
use crate::broker::replica::{Leader, Replica};

/// Longest wait for one partition's log-start entry to commit.
const PER_PARTITION: Duration = Duration::from_secs(10);

/// Runs until the runtime stops: a pass every `every`.
pub(super) async fn enforce(rt: Weak<ClusterRuntime>, mut stop: watch::Receiver<bool>, every: Duration) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let Some(runtime) = rt.upgrade() else { return };
        let led: Vec<Arc<RaftReplica>> = match runtime.topics.lock() {
            Ok(topics) => topics
                .values()
                .flat_map(|t| t.hosted.values())
                .filter(|r| r.leader() == Leader::ThisBroker)
                .cloned()
                .collect(),
            Err(_poisoned) => return,
        };
        drop(runtime);
        for replica in led {
            let now = crate::broker::now_ms();
            // Bounded: a partition without a quorum must not hold up the others.
            let enforced = tokio::time::timeout(PER_PARTITION, replica.enforce_retention(now)).await;
            let enforced = enforced.unwrap_or(Err(PartitionError::Rejected(ResponseError::RequestTimedOut)));
            match enforced {
                Ok(Some(log_start)) => tracing::info!(
                    topic = Replica::topic(&*replica),
                    partition = replica.index(),
                    log_start,
                    "retention moved the log start"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!(
                    topic = Replica::topic(&*replica),
                    partition = replica.index(),
                    error = %e,
                    "retention failed"
                ),
            }
        }
    }
}
