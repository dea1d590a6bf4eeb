//! The admin HTTP server, on its own port (`--admin-listen`, default `0.0.0.0:9644`):
//!
//! - `/livez`: 200 while the process serves HTTP at all.
//! - `/readyz`: 200 once the Kafka listener is bound and the data directory is open
//!   (partition logs recovered, topic metadata and consumer groups loaded), 503 with the
//!   reason before that and while the broker drains after SIGTERM.
//! - `/metrics`: Prometheus text format (see [`crate::metrics`]).
//! - `/readyz` also waits for `--bootstrap-expect` brokers in the gossip view, and is never
//!   ready on a broker refused for claiming a node id another broker holds.
//! - `/v1/cluster`: status JSON (node id, listeners, topic and partition counts, version,
//!   the live brokers and the gossip membership).
//!
//! HTTP/1.1 through hyper; started before the data directory opens so probes get an
//! answer during a long recovery, stopped after the Kafka listener has drained.

pub mod healthcheck;

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::broker::Broker;
use crate::cluster::directory::BrokerDirectory;

/// Admin connections served at once; more are closed on accept (probes and scrapers
/// need a handful).
const MAX_CONNECTIONS: usize = 64;

/// A client must send its request headers within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept (e.g. out of file descriptors) before the next.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// What the admin endpoints report on, filled in as the broker starts.
#[derive(Default)]
pub struct AdminState {
    kafka_listener: OnceLock<SocketAddr>,
    admin_listener: OnceLock<SocketAddr>,
    broker: OnceLock<Arc<Broker>>,
}

/// The answer of `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    NotReady(Cow<'static, str>),
}

impl AdminState {
    /// Records the Kafka listener's bound address.
    pub fn kafka_listener_bound(&self, addr: SocketAddr) {
        let _ = self.kafka_listener.set(addr);
    }

    /// Records the broker once its data directory is open.
    pub fn broker_opened(&self, broker: Arc<Broker>) {
        let _ = self.broker.set(broker);
    }

    pub fn readiness(&self) -> Readiness {
        if self.kafka_listener.get().is_none() {
            return Readiness::NotReady("starting: the Kafka listener is not bound yet".into());
        }
        match self.broker.get() {
            None => Readiness::NotReady(
                "starting: opening the data directory (recovering partition logs, loading topics and consumer groups)"
                    .into(),
            ),
            Some(b) if b.is_shutting_down() => {
                Readiness::NotReady("draining: shutting down, no longer accepting Kafka connections".into())
            }
            Some(b) => match b.cluster.not_ready_reason() {
                Some(reason) => Readiness::NotReady(reason.into()),
                None => Readiness::Ready,
            },
        }
    }

    /// The `/v1/cluster` document.
    pub fn cluster_status(&self) -> serde_json::Value {
        let state = match self.readiness() {
            Readiness::Ready => "ready".to_string(),
            Readiness::NotReady(reason) => reason.split(':').next().unwrap_or("starting").to_string(),
        };
        let addr = |a: &OnceLock<SocketAddr>| a.get().map(ToString::to_string);
        let mut status = serde_json::json!({
            "state": state,
            "version": env!("CARGO_PKG_VERSION"),
            "listeners": {
                "kafka": addr(&self.kafka_listener),
                "admin": addr(&self.admin_listener),
            },
        });
        if let Some(b) = self.broker.get() {
            let topics = b.topics.all();
            let internal = topics.iter().filter(|t| crate::broker::topics::is_internal(&t.name)).count();
            let partitions: i64 = topics.iter().map(|t| i64::from(t.partition_count())).sum();
            status["node_id"] = b.node_id.into();
            status["cluster_id"] = b.cluster_id.clone().into();
            status["listeners"]["advertised"] = format!("{}:{}", b.host, b.port).into();
            status["topics"] = (topics.len() - internal).into();
            status["internal_topics"] = internal.into();
            status["partitions"] = partitions.into();
            let leading = topics
                .iter()
                .flat_map(|t| t.replicas())
                .filter(|r| r.leader() == crate::broker::replica::Leader::ThisBroker)
                .count();
            status["leader_partitions"] = leading.into();
            status["brokers"] = cluster_brokers(&b.cluster);
            // The controller group's leader in a cluster (-1 while none is elected).
            status["controller_id"] = b.controller_id().into();
            status["gossip"] = gossip_status(&b.cluster);
        }
        status
    }
}

/// The live brokers as Metadata lists them.
fn cluster_brokers(cluster: &BrokerDirectory) -> serde_json::Value {
    let brokers: Vec<serde_json::Value> = cluster
        .live_brokers()
        .into_iter()
        .map(|b| {
            serde_json::json!({
                "node_id": b.broker_id,
                "host": b.kafka.host,
                "port": b.kafka.port,
                "rack": b.rack,
                "raft": b.raft.to_string(),
                "listeners": std::iter::once((b.listener.clone(), b.kafka.to_string().into()))
                    .chain(b.other_listeners.iter().map(|(name, hp)| (name.clone(), hp.to_string().into())))
                    .collect::<serde_json::Map<String, serde_json::Value>>(),
            })
        })
        .collect();
    brokers.into()
}

/// Gossip membership (every broker heard of, with its state), `--bootstrap-expect` and
/// node id conflicts; `null` without gossip.
fn gossip_status(cluster: &BrokerDirectory) -> serde_json::Value {
    let Some(discovery) = cluster.discovery() else { return serde_json::Value::Null };
    let view = discovery.view().borrow().clone();
    let members: Vec<serde_json::Value> = view
        .members()
        .map(|m| {
            serde_json::json!({
                "node_id": m.identity.broker_id,
                "gossip": m.gossip_addr.to_string(),
                "state": format!("{:?}", m.state).to_lowercase(),
            })
        })
        .collect();
    serde_json::json!({
        "address": discovery.gossip_addr().to_string(),
        "members": members,
        "bootstrap_expect": cluster.bootstrap_expect(),
        "bootstrap_members": cluster.bootstrap_members().map(|m| m.iter().map(|b| b.broker_id).collect::<Vec<_>>()),
        "id_conflict": cluster.id_conflict().map(|c| c.to_string()),
    })
}

/// Serves the admin endpoints on `listener` until `shutdown` resolves.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: impl Future<Output = ()>) {
    if let Ok(addr) = listener.local_addr() {
        let _ = state.admin_listener.set(addr);
    }
    tokio::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        debug!(%peer, "admin connection refused: too many open");
                        continue;
                    }
                    let state = state.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let state = state.clone();
                            async move { Ok::<_, Infallible>(route(&state, &req).await) }
                        });
                        let served = hyper::server::conn::http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_READ_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(e) = served {
                            debug!(%peer, error = %e, "admin connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "admin accept failed; retrying");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    connections.shutdown().await;
}

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn route(state: &Arc<AdminState>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, TEXT, "only GET and HEAD\n");
    }
    match req.uri().path() {
        "/livez" => respond(StatusCode::OK, TEXT, "ok\n"),
        "/readyz" => match state.readiness() {
            Readiness::Ready => respond(StatusCode::OK, TEXT, "ready\n"),
            Readiness::NotReady(reason) => respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{reason}\n")),
        },
        "/metrics" => {
            let Some(broker) = state.broker.get().cloned() else {
                return respond(StatusCode::SERVICE_UNAVAILABLE, TEXT, "starting: no metrics yet\n");
            };
            // Takes the group coordinator's lock and reads /proc: off the async workers.
            match tokio::task::spawn_blocking(move || crate::metrics::collect::render(&broker)).await {
                Ok(Ok(page)) => respond(StatusCode::OK, crate::metrics::collect::CONTENT_TYPE, page),
                Ok(Err(e)) => {
                    warn!(error = %e, "encoding metrics failed");
                    respond(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("encoding metrics failed: {e}\n"))
                }
                Err(e) => respond(StatusCode::INTERNAL_SERVER_ERROR, TEXT, format!("metrics task failed: {e}\n")),
            }
        }
        "/v1/cluster" => {
            let status = state.cluster_status();
            let code = if state.broker.get().is_some() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            respond(code, "application/json", format!("{status}\n"))
        }
        _ => respond(StatusCode::NOT_FOUND, TEXT, "not found: try /livez, /readyz, /metrics or /v1/cluster\n"),
    }
}

#[cfg(test)]
mod tests;
