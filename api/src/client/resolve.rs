//! The client service: resolve a host to its relay, refresh node info.

use switchboard_proto::v1 as pb;

use super::ClientError;
use super::ClusterClient;

impl ClusterClient {
    /// Resolves a host to its relay. A local read is refused (UNAVAILABLE)
    /// when the answering site is staler than `max_stale_ms`; 0 names no
    /// bound of the caller's and takes the site's `local_read_stale_ms_max`
    /// (10 s by default, one relay lease), so there is no unbounded read.
    pub async fn resolve(
        &self,
        host_id: &str,
        consistency: pb::Consistency,
        max_stale_ms: u64,
    ) -> Result<pb::ResolveResponse, ClientError> {
        self.resolve_with(host_id, consistency, max_stale_ms, false)
            .await
    }

    /// Resolves a host; `lease_read` lets a linearizable read use the
    /// leader's lease instead of a quorum round.
    pub async fn resolve_with(
        &self,
        host_id: &str,
        consistency: pb::Consistency,
        max_stale_ms: u64,
        lease_read: bool,
    ) -> Result<pb::ResolveResponse, ClientError> {
        let message = pb::ResolveRequest {
            host_id: host_id.to_owned(),
            consistency: consistency as i32,
            max_stale_ms,
            known_node_info: self.known_node_info(),
            lease_read,
        };
        let response = self
            .call(|channel| {
                let request = self.request(message.clone());
                async move {
                    Ok(Self::client_service(channel)
                        .resolve(request)
                        .await?
                        .into_inner())
                }
            })
            .await?;
        self.offer(response.node_info.as_ref());
        Ok(response)
    }

    /// Fetches node info (if newer than the directory's) into the directory.
    pub async fn refresh_node_info(&self) -> Result<pb::NodeInfoResponse, ClientError> {
        let message = pb::NodeInfoRequest {
            known_node_info: self.known_node_info(),
        };
        let response = self
            .call(|channel| {
                let request = self.request(message);
                async move {
                    Ok(Self::client_service(channel)
                        .node_info(request)
                        .await?
                        .into_inner())
                }
            })
            .await?;
        self.offer(response.node_info.as_ref());
        Ok(response)
    }
}
