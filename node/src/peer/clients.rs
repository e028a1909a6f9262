//! Pooled gRPC channels to other sites' raft ports.
//!
//! One lazily connected HTTP/2 channel per peer, shared by Raft
//! replication, forwarded writes and read-index calls. With TLS, a site
//! presents its own certificate and checks that the peer's names the site
//! it meant to reach (`<id>.site.<cluster>.switchboard`). Every request also
//! carries the cluster id and the target site, so a message that reaches the
//! wrong cluster or a reused address is refused there.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use switchboard_proto::v1::raft_peer_client::RaftPeerClient;
use switchboard_raft_store::ids::SiteId;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use switchboard_api::Role;
use switchboard_api::cluster_domain;
use switchboard_api::identity_name;
use switchboard_api::limits;
use switchboard_api::tls::TlsMaterial;

/// Metadata key: the cluster a peer request belongs to.
pub const CLUSTER_HEADER: &str = "x-switchboard-cluster";
/// Metadata key: the site a peer request is meant for.
pub const TARGET_SITE_HEADER: &str = "x-switchboard-target-site";

/// Channels to peers, by site and address.
#[derive(Clone)]
pub struct PeerClients {
    cluster_id: Arc<str>,
    tls: Option<Arc<ArcSwapOption<TlsMaterial>>>,
    channels: Arc<Mutex<HashMap<(SiteId, String), Channel>>>,
}

impl PeerClients {
    /// Plaintext channels (the `insecure` setting).
    pub fn insecure(cluster_id: &str) -> Self {
        PeerClients {
            cluster_id: cluster_id.into(),
            tls: None,
            channels: Default::default(),
        }
    }

    /// Mutual-TLS channels presenting `material`'s certificate.
    pub fn tls(cluster_id: &str, material: TlsMaterial) -> Self {
        PeerClients {
            cluster_id: cluster_id.into(),
            tls: Some(Arc::new(ArcSwapOption::from_pointee(material))),
            channels: Default::default(),
        }
    }

    /// Uses new TLS material for every connection made from now on.
    pub fn reload_tls(&self, material: TlsMaterial) {
        if let Some(tls) = &self.tls {
            tls.store(Some(Arc::new(material)));
            self.channels.lock().clear();
        }
    }

    /// The channel to site `target` at `addr`, created on first use.
    pub fn channel(&self, target: SiteId, addr: &str) -> Result<Channel, tonic::transport::Error> {
        let mut channels = self.channels.lock();
        let key = (target, addr.to_owned());
        if let Some(channel) = channels.get(&key) {
            return Ok(channel.clone());
        }
        let material = self.tls.as_ref().and_then(|tls| tls.load_full());
        let scheme = if material.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(limits::PEER_CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(limits::PEER_KEEPALIVE_INTERVAL)
            .keep_alive_timeout(limits::PEER_KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        if let Some(material) = material {
            let name = identity_name(
                Role::Site,
                &target.to_string(),
                &cluster_domain(&self.cluster_id),
            );
            endpoint = endpoint.tls_config(material.client_config(&name))?;
        }
        let channel = endpoint.connect_lazy();
        channels.insert(key, channel.clone());
        Ok(channel)
    }

    /// A raft-peer client for site `target` at `addr`.
    pub fn raft_client(
        &self,
        target: SiteId,
        addr: &str,
    ) -> Result<RaftPeerClient<Channel>, tonic::transport::Error> {
        Ok(RaftPeerClient::new(self.channel(target, addr)?)
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
        if let Some(timeout) = timeout {
            request.set_timeout(timeout);
        }
        request
    }
}
