//! Topic creation and deletion on a cluster: proposed to the controller where this broker
//! is the controller, forwarded to it over the Kafka protocol otherwise (KIP-590's
//! forwarding, without the envelope). Either way the answer waits until this broker's own
//! registry shows the change, so the client's next Metadata here agrees with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest};
use kafka_protocol::protocol::{Request, StrBytes};

use openraft::async_runtime::watch::WatchReceiver;

use super::ClusterRuntime;
use crate::broker::ApiError;
use crate::broker::topics::Topic;
use crate::cli::error::CliError;
use crate::cli::wire::Connection;
use crate::cluster::controller::ControllerError;
use crate::cluster::metadata::{Applied, MetadataRecord};
use crate::cluster::placement::{self, PlacementError};

/// Where a new replicated topic's partitions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewTopic {
    /// Placed by the controller ([`placement::assign`]).
    Placed { partitions: i32, replication_factor: i16 },
    /// By hand (CreateTopics assignments): partition i's replicas, preferred leader first.
    Assigned(Vec<Vec<i32>>),
}

/// How long an admin change may take: a forward, the controller's commit, and this
/// broker applying it.
pub(super) const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// The longest pause between attempts while no controller takes an admin change.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Runs `f` to completion from a blocking thread (admin handlers run on tokio's blocking
/// pool).
pub(super) fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, ApiError> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|e| ApiError::with_message(ResponseError::UnknownServerError, e.to_string()))?;
    Ok(handle.block_on(f))
}

pub(super) fn timed_out(what: &str) -> ApiError {
    ApiError::with_message(ResponseError::RequestTimedOut, format!("{what} did not complete within {ADMIN_TIMEOUT:?}"))
}

pub(super) fn not_available(e: impl std::fmt::Display) -> ApiError {
    ApiError::with_message(ResponseError::NotController, e.to_string())
}

pub(super) fn placement_error(e: PlacementError) -> ApiError {
    let code = match e {
        PlacementError::NotEnoughBrokers { .. } | PlacementError::BadReplicationFactor(_) => {
            ResponseError::InvalidReplicationFactor
        }
        PlacementError::BadPartitionCount(_) => ResponseError::InvalidPartitions,
        PlacementError::MixedRacks | PlacementError::BadAssignment { .. } => ResponseError::InvalidReplicaAssignment,
    };
    ApiError::with_message(code, e.to_string())
}

/// What a proposal's failure tells the client.
pub(super) fn controller_error(e: ControllerError) -> ApiError {
    match e {
        ControllerError::NotController { .. } => not_available(e),
        e => ApiError::with_message(ResponseError::UnknownServerError, e.to_string()),
    }
}

/// A forward that failed. A controller's own answer keeps its code (NOT_CONTROLLER
/// from one that just lost its leadership is retried); a broken connection is final,
/// since the controller may have applied the change before it broke.
pub(super) fn forward_error(e: CliError) -> ApiError {
    match e {
        CliError::Kafka { code, message, .. } => {
            ApiError { code: ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError), message }
        }
        e => ApiError::with_message(ResponseError::RequestTimedOut, format!("forwarding to the controller: {e}")),
    }
}

/// The controller's answer for one topic.
pub(super) fn answer(error_code: i16, message: Option<StrBytes>) -> Result<(), ApiError> {
    match ResponseError::try_from_code(error_code) {
        None => Ok(()),
        Some(code) => Err(ApiError { code, message: message.map(|m| m.to_string()) }),
    }
}

impl ClusterRuntime {
    /// Sends `request` to the controller's Kafka listener.
    pub(super) async fn forward<R: Request>(&self, request: &R, what: &str) -> Result<R::Response, ApiError> {
        tokio::time::timeout(ADMIN_TIMEOUT, async {
            let mut conn = Connection::open(&self.controller_addr()?, ADMIN_TIMEOUT).await.map_err(forward_error)?;
            conn.call(request).await.map_err(forward_error)
        })
        .await
        .map_err(|_| timed_out(&format!("forwarding {what}")))?
    }

    pub(super) fn is_controller(&self) -> bool {
        self.controller.leader() == Some(self.node_id)
    }

    /// The controller's Kafka address, or NOT_CONTROLLER while none is known.
    pub(super) fn controller_addr(&self) -> Result<String, ApiError> {
        let id = self.controller_id().ok_or_else(|| not_available("no controller is elected yet"))?;
        let node =
            self.node(id).ok_or_else(|| not_available(format!("the controller (broker {id}) has no known address")))?;
        Ok(format!("{}:{}", node.kafka_host, node.kafka_port))
    }

    /// Waits until this broker's registry satisfies `done`.
    pub(super) async fn settled<T>(&self, mut done: impl FnMut() -> Option<T>) -> Option<T> {
        let mut reconciled = self.reconciled.subscribe();
        let deadline = tokio::time::Instant::now() + ADMIN_TIMEOUT;
        loop {
            if let Some(v) = done() {
                return Some(v);
            }
            if tokio::time::timeout_at(deadline, reconciled.changed()).await.map_or(true, |r| r.is_err()) {
                return done();
            }
        }
    }

    /// Runs `attempt` until it is answered by a controller: while an election runs (no
    /// controller known, or the one asked has just lost its leadership, so nothing was
    /// proposed) it is tried again as the controller changes, for up to [`ADMIN_TIMEOUT`],
    /// as Kafka's forwarding waits for a controller. Any other failure is final.
    pub(super) async fn with_controller<T, F, Fut>(&self, mut attempt: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let deadline = tokio::time::Instant::now() + ADMIN_TIMEOUT;
        let mut leaders = self.controller.raft().metrics();
        loop {
            match attempt().await {
                Err(e) if e.code == ResponseError::NotController && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = ?e.message, "no controller to take an admin change yet; waiting for one");
                    // Woken by the controller group's next change (an election's end), at
                    // the latest after a short pause.
                    let _ = tokio::time::timeout(RETRY_PAUSE, leaders.changed()).await;
                }
                other => return other,
            }
        }
    }

    /// Creates a replicated topic (the broker checked name, counts and configs).
    pub fn create_topic(
        &self,
        name: &str,
        placement: NewTopic,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Option<Arc<Topic>>, ApiError> {
        block_on(async {
            let proposed = self
                .with_controller(|| async {
                    if !self.is_controller() {
                        self.forward_create(name, &placement, &configs, validate_only).await?;
                        Ok(true)
                    } else {
                        let id = self.propose_create(name, &placement, configs.clone(), validate_only).await?;
                        Ok(id.is_some())
                    }
                })
                .await?;
            if !proposed {
                return Ok(None);
            }
            if validate_only {
                return Ok(None);
            }
            let broker = self.broker.upgrade().ok_or_else(|| not_available("the broker is stopping"))?;
            self.settled(|| broker.topics.get(name)).await.map(Some).ok_or_else(|| timed_out("topic creation"))
        })?
    }

    async fn propose_create(
        &self,
        name: &str,
        placement: &NewTopic,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Option<uuid::Uuid>, ApiError> {
        if self.image().topics.contains_key(name) {
            return Err(ApiError::with_message(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{name}' already exists."),
            ));
        }
        let assignments = match placement {
            NewTopic::Placed { partitions, replication_factor } => self.place(*partitions, *replication_factor, 0)?,
            NewTopic::Assigned(given) => {
                // Checked again here: a forwarded request was checked against the
                // forwarding broker's view of the cluster.
                let known = self.known_brokers();
                if let Some(b) = given.iter().flatten().find(|b| !known.contains(b)) {
                    return Err(ApiError::with_message(
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "The manual partition assignment includes broker {b}, but no such broker is registered."
                        ),
                    ));
                }
                given.clone()
            }
        };
        if validate_only {
            return Ok(None);
        }
        let id = uuid::Uuid::new_v4();
        let record = MetadataRecord::CreateTopic { name: name.to_string(), id, configs, assignments };
        self.propose_one(record, "topic creation").await?;
        Ok(Some(id))
    }

    /// Places `count` new partitions (from index `first`) of `replication_factor`
    /// replicas on the live brokers ([`placement::assign`], a random starting point).
    pub(super) fn place(&self, count: i32, replication_factor: i16, first: i32) -> Result<Vec<Vec<i32>>, ApiError> {
        let brokers: Vec<placement::Broker> = self
            .directory
            .live_brokers()
            .iter()
            .map(|b| placement::Broker::new(b.broker_id, b.rack.as_deref()))
            .collect();
        let seed = u64::from(uuid::Uuid::new_v4().as_u128() as u32);
        placement::assign(&brokers, count, replication_factor, first, seed).map_err(placement_error)
    }

    /// Proposes one record (this broker is the controller) and returns what applying it
    /// gave, or the Kafka error its rejection maps to.
    pub(super) async fn propose_one(&self, record: MetadataRecord, what: &str) -> Result<Applied, ApiError> {
        let verdicts = tokio::time::timeout(ADMIN_TIMEOUT, self.controller.propose(&[record]))
            .await
            .map_err(|_| timed_out(what))?
            .map_err(controller_error)?;
        match verdicts.into_iter().next() {
            Some(Ok(applied)) => Ok(applied),
            Some(Err(e)) => Err(ApiError::with_message(e.code(), e.to_string())),
            None => Err(ApiError::with_message(ResponseError::UnknownServerError, "the controller gave no verdict")),
        }
    }

    async fn forward_create(
        &self,
        name: &str,
        placement: &NewTopic,
        configs: &BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let (partitions, replication_factor, assignments) = match placement {
            NewTopic::Placed { partitions, replication_factor } => (*partitions, *replication_factor, Vec::new()),
            NewTopic::Assigned(given) => {
                let assignments = given
                    .iter()
                    .zip(0..)
                    .map(|(replicas, index)| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(index)
                            .with_broker_ids(replicas.iter().map(|b| BrokerId(*b)).collect())
                    })
                    .collect();
                (-1, -1, assignments)
            }
        };
        let topic = CreatableTopic::default()
            .with_name(crate::cli::session::topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_assignments(assignments)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.clone()))
                            .with_value(Some(StrBytes::from_string(v.clone())))
                    })
                    .collect(),
            );
        let request = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(ADMIN_TIMEOUT.as_millis() as i32)
            .with_validate_only(validate_only);
        let response = self.forward(&request, "topic creation").await?;
        let result =
            response.topics.into_iter().next().ok_or_else(|| not_available("empty answer from the controller"))?;
        answer(result.error_code, result.error_message)
    }

    /// Deletes a replicated topic.
    pub fn delete_topic(&self, topic: &Topic) -> Result<(), ApiError> {
        block_on(async {
            self.with_controller(|| async {
                if self.is_controller() {
                    let record = MetadataRecord::DeleteTopic { name: topic.name.clone(), id: topic.id };
                    self.propose_one(record, "topic deletion").await.map(|_| ())
                } else {
                    self.forward_delete(topic).await
                }
            })
            .await?;
            let broker = self.broker.upgrade().ok_or_else(|| not_available("the broker is stopping"))?;
            let gone = || broker.topics.get(&topic.name).is_none_or(|t| t.id != topic.id).then_some(());
            self.settled(gone).await.ok_or_else(|| timed_out("topic deletion"))
        })?
    }

    async fn forward_delete(&self, topic: &Topic) -> Result<(), ApiError> {
        let request = DeleteTopicsRequest::default()
            .with_topics(vec![
                DeleteTopicState::default().with_name(Some(crate::cli::session::topic_name(&topic.name))),
            ])
            .with_topic_names(vec![crate::cli::session::topic_name(&topic.name)])
            .with_timeout_ms(ADMIN_TIMEOUT.as_millis() as i32);
        let response = self.forward(&request, "topic deletion").await?;
        let result =
            response.responses.into_iter().next().ok_or_else(|| not_available("empty answer from the controller"))?;
        answer(result.error_code, result.error_message)
    }
}
