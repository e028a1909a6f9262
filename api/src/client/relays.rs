//! The relay service: register, list, heartbeat and a relay's route watch.

use switchboard_proto::v1 as pb;

use super::ClientError;
use super::ClusterClient;

impl ClusterClient {
    /// Registers (or re-registers) a relay.
    pub async fn register_relay(
        &self,
        message: pb::RegisterRelayRequest,
    ) -> Result<pb::RegisterRelayResponse, ClientError> {
        unary!(self, relay_client, message, register)
    }

    /// Lists relays as one site knows them.
    pub async fn list_relays(&self) -> Result<pb::ListRelaysResponse, ClientError> {
        unary!(self, relay_client, pb::ListRelaysRequest {}, list)
    }

    /// Sends a relay heartbeat.
    pub async fn heartbeat(
        &self,
        relay_id: &str,
        incarnation: u64,
        active_sessions: u32,
    ) -> Result<pb::HeartbeatResponse, ClientError> {
        let message = pb::HeartbeatRequest {
            relay_id: relay_id.to_owned(),
            incarnation,
            active_sessions,
            known_node_info: self.known_node_info(),
        };
        let response = self
            .call(|channel| {
                let request = self.request(message.clone());
                async move {
                    Ok(Self::relay_client(channel)
                        .heartbeat(request)
                        .await?
                        .into_inner())
                }
            })
            .await?;
        self.offer(response.node_info.as_ref());
        Ok(response)
    }

    /// Opens a watch on the first site that takes it. The stream ends when
    /// its site fails; [`ClusterClient::follow_relay_routes`] gives one that moves.
    pub async fn watch_relay_routes(
        &self,
        relay_id: &str,
        after_index: u64,
    ) -> Result<tonic::Streaming<pb::RelayRoutesEvent>, ClientError> {
        self.open_watch_relay_routes(relay_id, after_index)
            .await
            .map(|(stream, _)| stream)
    }

    /// As `watch_relay_routes`, also naming the site the stream is on.
    pub(super) async fn open_watch_relay_routes(
        &self,
        relay_id: &str,
        after_index: u64,
    ) -> Result<(tonic::Streaming<pb::RelayRoutesEvent>, String), ClientError> {
        let message = pb::WatchRoutesRequest {
            relay_id: relay_id.to_owned(),
            after_index,
            known_node_info: self.known_node_info(),
        };
        unary!(self, relay_client, message.clone(), watch_routes, stream)
    }
}
