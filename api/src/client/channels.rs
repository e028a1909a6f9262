//! Channels to sites (one per endpoint, opened lazily and kept), the
//! metadata every request carries, and the service stubs with their
//! message-size limits.

use switchboard_proto::v1::admin_service_client::AdminServiceClient;
use switchboard_proto::v1::client_service_client::ClientServiceClient;
use switchboard_proto::v1::host_service_client::HostServiceClient;
use switchboard_proto::v1::relay_service_client::RelayServiceClient;
use tonic::transport::Channel;
use tonic::transport::Endpoint;

use super::ClientError;
use super::ClusterClient;
use crate::limits;

impl ClusterClient {
    pub(super) fn channel(&self, endpoint: &str) -> Result<Channel, ClientError> {
        let mut channels = self.channels.lock();
        if let Some(channel) = channels.get(endpoint) {
            return Ok(channel.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut builder = Endpoint::from_shared(format!("{scheme}://{endpoint}"))
            .map_err(|_| ClientError::InvalidEndpoint(endpoint.to_owned()))?
            .connect_timeout(self.settings.connect_timeout)
            .http2_keep_alive_interval(self.settings.keepalive_interval)
            .keep_alive_timeout(self.settings.keepalive_timeout)
            .keep_alive_while_idle(true)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            builder = builder
                .tls_config(tls.clone())
                .map_err(|_| ClientError::InvalidEndpoint(endpoint.to_owned()))?;
        }
        let channel = builder.connect_lazy();
        channels.insert(endpoint.to_owned(), channel.clone());
        Ok(channel)
    }

    pub(super) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.settings.attempt_timeout);
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        request
    }

    pub(super) fn host_client(channel: Channel) -> HostServiceClient<Channel> {
        HostServiceClient::new(channel).max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
    }

    pub(super) fn relay_client(channel: Channel) -> RelayServiceClient<Channel> {
        RelayServiceClient::new(channel).max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
    }

    pub(super) fn admin_client(channel: Channel) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(channel).max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
    }

    pub(super) fn client_service(channel: Channel) -> ClientServiceClient<Channel> {
        ClientServiceClient::new(channel).max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
    }
}
