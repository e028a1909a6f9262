//! The client library: talks to a cluster through any of its sites.
//!
//! A call goes to the site that last answered, and on a retryable failure
//! (the site is down, has no leader yet, or is not the leader for an admin
//! call) moves on to the next known site, with exponential backoff and
//! jitter between rounds, until the call's deadline. Writes carry a request
//! id chosen once per call, so a retry after a lost answer is applied once.

/// One unary call through `call` (retries, leader hints, deadlines):
/// `message` is cloned into a fresh request for every attempt.
macro_rules! unary {
    // A stream lives on: only opening it has a deadline. Answers the stream
    // and the site it is on.
    ($client:ident, $stub:ident, $message:expr, $method:ident, stream) => {{
        let message = $message;
        $client
            .call_at(|channel| {
                let mut request = $client.request(message.clone());
                request.metadata_mut().remove("grpc-timeout");
                async move { Ok(Self::$stub(channel).$method(request).await?.into_inner()) }
            })
            .await
    }};
    ($client:ident, $stub:ident, $message:expr, $method:ident) => {{
        let message = $message;
        $client
            .call(|channel| {
                let request = $client.request(message.clone());
                async move { Ok(Self::$stub(channel).$method(request).await?.into_inner()) }
            })
            .await
    }};
}

mod channels;
mod credentials;
mod error;
mod follow;
mod hosts;
mod membership;
mod operations;
mod position;
mod relays;
mod resolve;
mod retry;
mod settings;
mod suspects;

pub use credentials::Credentials;
pub use error::ClientError;
pub use follow::Followed;
pub use follow::Follower;
pub use follow::WatchMessage;
pub use membership::CATCH_UP_POLL_INTERVAL;
pub use retry::RETRY_AFTER_MAX_MS;
pub use settings::ClientSettings;

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use switchboard_proto::v1 as pb;
use tonic::transport::Channel;
use tonic::transport::ClientTlsConfig;

use crate::directory::Directory;
use suspects::Suspects;

/// A fresh random request id.
pub fn new_request_id() -> Vec<u8> {
    rand::random::<u128>().max(1).to_be_bytes().to_vec()
}

/// A client of one cluster.
pub struct ClusterClient {
    endpoints: Mutex<Vec<String>>,
    preferred: AtomicUsize,
    /// Sites that just failed at the transport, tried after the others.
    suspects: Mutex<Suspects>,
    channels: Mutex<HashMap<String, Channel>>,
    settings: ClientSettings,
    tls: Option<ClientTlsConfig>,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// Node info, when the client keeps it: endpoints come from it.
    directory: Option<Arc<Directory>>,
}

impl ClusterClient {
    /// A client for the sites at `endpoints` (`host:port` of their API ports).
    pub fn new(
        endpoints: Vec<String>,
        settings: ClientSettings,
        credentials: Credentials,
    ) -> Result<Self, ClientError> {
        // No endpoints is allowed: a directory (`with_directory`) brings them.
        let authorization = credentials
            .token
            .map(|token| {
                format!("Bearer {token}").parse().map_err(|_| {
                    ClientError::Credentials("the token is not printable ASCII".into())
                })
            })
            .transpose()?;
        Ok(ClusterClient {
            endpoints: Mutex::new(endpoints),
            preferred: AtomicUsize::new(0),
            suspects: Mutex::new(Suspects::default()),
            channels: Mutex::new(HashMap::new()),
            settings,
            tls: credentials.tls,
            authorization,
            directory: None,
        })
    }

    /// Keeps node info in `directory`: sites are taken from it (and its
    /// seeds), every request says which version the client has, and newer
    /// documents in answers are checked and kept.
    pub fn with_directory(mut self, directory: Arc<Directory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The timing this client runs with.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The directory, if any.
    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.directory.as_ref()
    }

    pub(super) fn known_node_info(&self) -> Option<pb::NodeInfoVersion> {
        self.directory.as_ref().and_then(|d| d.known_version())
    }

    pub(super) fn offer(&self, signed: Option<&pb::SignedNodeInfo>) {
        if let Some(directory) = &self.directory {
            directory.offer_optional(signed);
        }
    }

    /// The known endpoints: the directory's (if any), then any learned.
    pub fn endpoints(&self) -> Vec<String> {
        let learned = self.endpoints.lock().clone();
        let Some(directory) = &self.directory else {
            return learned;
        };
        let mut endpoints = directory.endpoints();
        for endpoint in learned {
            if !endpoints.contains(&endpoint) {
                endpoints.push(endpoint);
            }
        }
        endpoints
    }

    pub(super) fn learn_endpoint(&self, endpoint: &str) {
        let mut endpoints = self.endpoints.lock();
        if !endpoints.iter().any(|e| e == endpoint) {
            endpoints.push(endpoint.to_owned());
        }
    }
}
