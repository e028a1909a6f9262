//! Pooled gRPC channels to other sites' raft ports.
//!
//! One lazily connected HTTP/2 channel per address, shared by Raft
//! replication, forwarded writes and read-index calls. Every request carries
//! the cluster id and the site it is meant for, so a message that reaches
//! the wrong cluster or a reused address is refused there.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use switchboard_proto::v1::raft_peer_client::RaftPeerClient;
use switchboard_raft_store::ids::SiteId;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Endpoint;

use crate::limits;

/// Metadata key: the cluster a peer request belongs to.
pub const CLUSTER_HEADER: &str = "x-switchboard-cluster";
/// Metadata key: the site a peer request is meant for.
pub const TARGET_SITE_HEADER: &str = "x-switchboard-target-site";
/// Metadata key: the site that sent a peer request.
pub const SOURCE_SITE_HEADER: &str = "x-switchboard-source-site";

/// Channels to peers, by address.
#[derive(Clone)]
pub struct PeerClients {
    cluster_id: Arc<str>,
    self_id: SiteId,
    tls: Option<ClientTlsConfig>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl PeerClients {
    /// A pool for site `self_id` of `cluster_id`; `tls` for mutual TLS.
    pub fn new(cluster_id: &str, self_id: SiteId, tls: Option<ClientTlsConfig>) -> Self {
        PeerClients {
            cluster_id: cluster_id.into(),
            self_id,
            tls,
            channels: Default::default(),
        }
    }

    /// The channel to `addr`, created on first use.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self
            .channels
            .lock()
            .expect("channel pool lock is never poisoned");
        if let Some(channel) = channels.get(addr) {
            return Ok(channel.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(limits::PEER_CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(limits::PEER_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(limits::PEER_KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        if let Some(tls) = &self.tls {
            endpoint = endpoint.tls_config(tls.clone())?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// A raft-peer client for the site `target` at `addr`.
    pub fn raft_client(
        &self,
        addr: &str,
    ) -> Result<RaftPeerClient<Channel>, tonic::transport::Error> {
        Ok(RaftPeerClient::new(self.channel(addr)?)
            .max_decoding_message_size(limits::RAFT_MESSAGE_BYTES_MAX)
            .max_encoding_message_size(limits::RAFT_MESSAGE_BYTES_MAX))
    }

    /// Wraps a message for site `target`, with a timeout.
    pub fn request<T>(
        &self,
        target: SiteId,
        message: T,
        timeout: Option<Duration>,
    ) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        let metadata = request.metadata_mut();
        if let Ok(value) = MetadataValue::try_from(&*self.cluster_id) {
            metadata.insert(CLUSTER_HEADER, value);
        }
        metadata.insert(TARGET_SITE_HEADER, MetadataValue::from(target));
        metadata.insert(SOURCE_SITE_HEADER, MetadataValue::from(self.self_id));
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        request
    }
}
