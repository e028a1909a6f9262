//! The host service: attach, detach and a host's route watch.

use switchboard_proto::v1 as pb;

use super::ClientError;
use super::ClusterClient;

impl ClusterClient {
    /// Attaches a host; `request_id` makes retries safe (use `new_request_id`).
    pub async fn attach(
        &self,
        request_id: &[u8],
        host_id: &str,
        preferred_region: &str,
    ) -> Result<pb::AttachResponse, ClientError> {
        let message = pb::AttachRequest {
            request_id: request_id.to_vec(),
            host_id: host_id.to_owned(),
            preferred_region: preferred_region.to_owned(),
            known_node_info: self.known_node_info(),
        };
        let response = self
            .call(|channel| {
                let request = self.request(message.clone());
                async move {
                    Ok(Self::host_client(channel)
                        .attach(request)
                        .await?
                        .into_inner())
                }
            })
            .await?;
        self.offer(response.node_info.as_ref());
        Ok(response)
    }

    /// Detaches a host.
    pub async fn detach(
        &self,
        request_id: &[u8],
        host_id: &str,
    ) -> Result<pb::DetachResponse, ClientError> {
        let message = pb::DetachRequest {
            request_id: request_id.to_vec(),
            host_id: host_id.to_owned(),
        };
        unary!(self, host_client, message, detach)
    }

    /// Opens a watch on the first site that takes it. The stream ends when
    /// its site fails; [`ClusterClient::follow_route`] gives one that moves.
    pub async fn watch_route(
        &self,
        host_id: &str,
        after_index: u64,
    ) -> Result<tonic::Streaming<pb::RouteEvent>, ClientError> {
        self.open_watch_route(host_id, after_index)
            .await
            .map(|(stream, _)| stream)
    }

    /// As `watch_route`, also naming the site the stream is on.
    pub(super) async fn open_watch_route(
        &self,
        host_id: &str,
        after_index: u64,
    ) -> Result<(tonic::Streaming<pb::RouteEvent>, String), ClientError> {
        let message = pb::WatchRouteRequest {
            host_id: host_id.to_owned(),
            after_index,
            known_node_info: self.known_node_info(),
        };
        unary!(self, host_client, message.clone(), watch_route, stream)
    }
}
