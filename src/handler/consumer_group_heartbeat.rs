//! ConsumerGroupHeartbeat (KIP-848): the new consumer protocol's single request for
//! joining, reconciling assignments and leaving.

use std::sync::Arc;

use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ResponseKind};

use crate::broker::Broker;
use crate::group::consumer::ClientInfo;
use crate::handler::{Client, GroupReply};

pub fn start(b: &Arc<Broker>, r: ConsumerGroupHeartbeatRequest, v: i16, client: &Client) -> GroupReply {
    let info = ClientInfo { client_id: &client.client_id, client_host: &client.host };
    let completion = b.groups.consumer_heartbeat(b, &r, v, &info);
    Box::pin(async move {
        let response = completion
            .finish(|e| kafka_protocol::messages::ConsumerGroupHeartbeatResponse::default().with_error_code(e.code()))
            .await;
        ResponseKind::ConsumerGroupHeartbeat(response)
    })
}
