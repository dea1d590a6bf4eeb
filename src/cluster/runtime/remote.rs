//! A partition of a replicated topic with no replica on this broker: it names the leader
//! other brokers observed (gossip's leadership hints) and refuses everything else with
//! NOT_LEADER_OR_FOLLOWER, so clients go to the leader.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::sync::watch;

use crate::broker::partition::PartitionError;
use crate::broker::producer_state::ProducerLimits;
use crate::broker::replica::{AppendFuture, Leader, Offsets, PlannedRead, Progress, Replica, TimestampQuery};
use crate::broker::topic_config::EffectiveTopicConfig;
use crate::cluster::directory::BrokerDirectory;
use crate::cluster::gossip::hints::{LeadershipHint, PartitionKey};
use crate::log::batch::BatchHeader;

pub struct RemoteReplica {
    topic: String,
    index: i32,
    key: PartitionKey,
    config: EffectiveTopicConfig,
    directory: Arc<BrokerDirectory>,
    /// Never changes: nothing is stored here.
    progress: watch::Sender<Progress>,
}

fn not_here() -> PartitionError {
    PartitionError::Rejected(ResponseError::NotLeaderOrFollower)
}

impl RemoteReplica {
    pub fn new(
        topic: &str,
        topic_id: uuid::Uuid,
        index: i32,
        config: EffectiveTopicConfig,
        directory: Arc<BrokerDirectory>,
    ) -> RemoteReplica {
        RemoteReplica {
            topic: topic.to_string(),
            index,
            key: PartitionKey { topic_id, partition: index },
            config,
            directory,
            progress: watch::channel(Progress::new(-1)).0,
        }
    }

    fn hint(&self) -> Option<LeadershipHint> {
        self.directory.discovery().and_then(|d| d.leader_hint(&self.key))
    }
}

impl Replica for RemoteReplica {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn index(&self) -> i32 {
        self.index
    }

    fn config(&self) -> Result<EffectiveTopicConfig, PartitionError> {
        Ok(self.config.clone())
    }

    fn leader(&self) -> Leader {
        match self.hint() {
            Some(h) if h.leader >= 0 => Leader::Broker(h.leader),
            _ => Leader::Unknown,
        }
    }

    fn leader_epoch(&self) -> i32 {
        self.hint().map_or(-1, |h| h.leader_epoch)
    }

    fn check_leader_epoch(&self, _requested: i32) -> Result<(), ResponseError> {
        Err(ResponseError::NotLeaderOrFollower)
    }

    fn offsets(&self) -> Result<Offsets, PartitionError> {
        Err(not_here())
    }

    fn high_watermark(&self) -> i64 {
        -1
    }

    fn watch_progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    fn append<'a>(&'a self, _: Bytes, _: &'a [BatchHeader], _: i64, _: ProducerLimits<'a>) -> AppendFuture<'a> {
        Box::pin(async { Err(not_here()) })
    }

    fn plan_read_isolated(
        &self,
        _: i64,
        _: usize,
        _: bool,
        _: crate::broker::replica::Isolation,
    ) -> Result<PlannedRead, PartitionError> {
        Err(not_here())
    }

    fn find_by_timestamp(&self, _: TimestampQuery) -> Result<Option<(i64, i64)>, PartitionError> {
        Err(not_here())
    }

    fn end_offset_for_epoch(&self, _: i32) -> Result<Option<(i32, i64)>, PartitionError> {
        Err(not_here())
    }

    fn delete_records(&self, _: i64, _: std::time::Duration) -> Result<i64, PartitionError> {
        Err(not_here())
    }

    fn size_bytes(&self) -> Result<u64, PartitionError> {
        Ok(0)
    }

    fn aborted_transactions(&self, _: i64, _: i64) -> Result<Vec<crate::log::txn::AbortedTxn>, PartitionError> {
        Err(not_here())
    }
}
