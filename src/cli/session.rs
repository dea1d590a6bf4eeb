//! Talking to a cluster rather than a broker: bootstrap from `--brokers`, learn the
//! brokers from Metadata, and route each request to the broker that must answer it
//! (a partition's leader, a group's coordinator, the controller). Connections are opened
//! on first use and kept for the command's lifetime.

use std::collections::HashMap;
use std::time::Duration;

use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::{Request, StrBytes};

use super::error::CliError;
use super::wire::Connection;

/// COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR: ask again.
pub const COORDINATOR_MOVED: [i16; 3] = [14, 15, 16];
/// Tries of a group request before giving up while its coordinator is not ready.
const COORDINATOR_ATTEMPTS: u32 = 30;

/// Key of the bootstrap connection until the broker behind it is known by id.
const BOOTSTRAP: i32 = i32::MIN;

pub struct Session {
    bootstrap: Vec<String>,
    timeout: Duration,
    /// Open connections by broker id (`BOOTSTRAP` for the first one).
    connections: HashMap<i32, Connection>,
    /// `host:port` of each broker from the latest Metadata.
    brokers: HashMap<i32, String>,
    controller_id: i32,
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

impl Session {
    /// Connects to the first reachable bootstrap address and reads the cluster metadata.
    pub async fn connect(brokers: &str, timeout: Duration) -> Result<Session, CliError> {
        let bootstrap: Vec<String> =
            brokers.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
        if bootstrap.is_empty() {
            return Err(CliError::Invalid("--brokers names no broker".into()));
        }
        let mut last = None;
        let mut session = Session {
            bootstrap: bootstrap.clone(),
            timeout,
            connections: HashMap::new(),
            brokers: HashMap::new(),
            controller_id: -1,
        };
        for addr in &bootstrap {
            match Connection::open(addr, timeout).await {
                Ok(conn) => {
                    session.connections.insert(BOOTSTRAP, conn);
                    session.metadata(Some(&[])).await?;
                    return Ok(session);
                }
                Err(e) => last = Some(e),
            }
        }
        let last = last.unwrap_or_else(|| CliError::Invalid("no bootstrap address".into()));
        if bootstrap.len() == 1 {
            return Err(last);
        }
        Err(CliError::NoBrokerReachable { tried: session.bootstrap.join(","), last: Box::new(last) })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Metadata for `topics` (`None`: all topics; `Some(&[])`: brokers only); also
    /// refreshes the broker table and the controller id.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse, CliError> {
        let request = MetadataRequest::default().with_allow_auto_topic_creation(false).with_topics(
            topics
                .map(|ts| ts.iter().map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t)))).collect()),
        );
        let response = self.any().await?.call(&request).await?;
        self.brokers = response.brokers.iter().map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port))).collect();
        self.controller_id = response.controller_id.0;
        Ok(response)
    }

    /// Some connection: the bootstrap one, or any open one.
    pub async fn any(&mut self) -> Result<&mut Connection, CliError> {
        if !self.connections.contains_key(&BOOTSTRAP) && self.connections.is_empty() {
            let mut last = None;
            for addr in self.bootstrap.clone() {
                match Connection::open(&addr, self.timeout).await {
                    Ok(conn) => {
                        self.connections.insert(BOOTSTRAP, conn);
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            if let Some(e) = last {
                return Err(e);
            }
        }
        match self.connections.values_mut().next() {
            Some(conn) => Ok(conn),
            None => Err(CliError::Invalid("no connection".into())),
        }
    }

    /// The connection to broker `id`, opened if needed.
    pub async fn broker(&mut self, id: i32) -> Result<&mut Connection, CliError> {
        if !self.connections.contains_key(&id) {
            let addr = self.brokers.get(&id).ok_or(CliError::UnknownBroker(id))?.clone();
            // The bootstrap connection may already be this broker.
            let reuse = self.connections.get(&BOOTSTRAP).is_some_and(|c| c.addr == addr);
            let conn = match reuse.then(|| self.connections.remove(&BOOTSTRAP)).flatten() {
                Some(conn) => conn,
                None => Connection::open(&addr, self.timeout).await?,
            };
            self.connections.insert(id, conn);
        }
        self.connections.get_mut(&id).ok_or(CliError::UnknownBroker(id))
    }

    /// The controller's connection (topic administration), or any broker when the
    /// cluster names no controller.
    pub async fn controller(&mut self) -> Result<&mut Connection, CliError> {
        if self.controller_id >= 0 && self.brokers.contains_key(&self.controller_id) {
            let id = self.controller_id;
            return self.broker(id).await;
        }
        self.any().await
    }

    /// Closes every connection (the next request opens what it needs): after a request
    /// was abandoned mid-way its answer would still arrive on the old connection.
    pub fn close_connections(&mut self) {
        self.connections.clear();
    }

    /// Known brokers, by id.
    pub fn broker_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.brokers.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Sends `request` to the coordinator of `group`, again (after finding the coordinator
    /// anew) while the coordinator is loading, not available yet (Kafka creates
    /// `__consumer_offsets` on first use) or has moved, as `moved` reads the response.
    pub async fn call_coordinator<R: Request>(
        &mut self,
        group: &str,
        request: &R,
        moved: impl Fn(&R::Response) -> bool,
    ) -> Result<R::Response, CliError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= COORDINATOR_ATTEMPTS;
            let result = match self.coordinator(group).await {
                Ok(conn) => conn.call(request).await,
                Err(e) => Err(e),
            };
            match result {
                Err(e) if !last && e.kafka_code().is_some_and(|c| COORDINATOR_MOVED.contains(&c)) => {}
                Ok(response) if !last && moved(&response) => {}
                other => return other,
            }
            tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt.min(10)))).await;
        }
    }

    /// The coordinator of consumer group `group`.
    pub async fn coordinator(&mut self, group: &str) -> Result<&mut Connection, CliError> {
        let conn = self.any().await?;
        let version = conn.version::<FindCoordinatorRequest>()?;
        let key = StrBytes::from_string(group.to_string());
        let request = if version >= 4 {
            FindCoordinatorRequest::default().with_key_type(0).with_coordinator_keys(vec![key])
        } else {
            FindCoordinatorRequest::default().with_key_type(0).with_key(key)
        };
        let response: FindCoordinatorResponse = conn.call_at(&request, version).await?;
        let (node, code, message) = match response.coordinators.first() {
            Some(c) if version >= 4 => (c.node_id.0, c.error_code, c.error_message.as_ref().map(|m| m.to_string())),
            _ => (response.node_id.0, response.error_code, response.error_message.as_ref().map(|m| m.to_string())),
        };
        CliError::check(code, message.as_deref(), || format!("find the coordinator of group {group}"))?;
        if !self.brokers.contains_key(&node) {
            self.metadata(Some(&[])).await?;
        }
        self.broker(node).await
    }
}
