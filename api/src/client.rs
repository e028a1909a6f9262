//! The client library: talks to a cluster through any of its sites.
//!
//! A call goes to the site that last answered, and on a retryable failure
//! (the site is down, has no leader yet, or is not the leader for an admin
//! call) moves on to the next known site, with exponential backoff and
//! jitter between rounds, until the call's deadline. Writes carry a request
//! id chosen once per call, so a retry after a lost answer is applied once.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::admin_service_client::AdminServiceClient;
use switchboard_proto::v1::client_service_client::ClientServiceClient;
use switchboard_proto::v1::host_service_client::HostServiceClient;
use switchboard_proto::v1::relay_service_client::RelayServiceClient;
use tonic::Code;
use tonic::Status;
use tonic::transport::Channel;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Endpoint;

use crate::directory::Directory;
use crate::headers::LEADER_HINT_HEADER;
use crate::limits;

/// How often `wait_caught_up` asks the leader for progress.
pub const CATCH_UP_POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Timing of the client library.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// Deadline of one RPC to one site.
    pub attempt_timeout: Duration,
    /// Deadline of a whole call, across sites and retries.
    pub call_deadline: Duration,
    /// First pause after every known site failed; doubles up to `backoff_max`.
    pub backoff_initial: Duration,
    /// Longest pause between rounds of retries.
    pub backoff_max: Duration,
    /// Time to open a connection to a site.
    pub connect_timeout: Duration,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            attempt_timeout: Duration::from_secs(6),
            call_deadline: Duration::from_secs(15),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A site answered with a final error (bad input, not found, no room...).
    #[error("{endpoint}: {code:?}: {message}")]
    Refused {
        /// The site that answered.
        endpoint: String,
        /// Its gRPC code.
        code: Code,
        /// Its message.
        message: String,
    },
    /// No site gave a final answer before the deadline.
    #[error(
        "no site answered within {deadline_ms} ms after {attempts} attempts; last error: {last}"
    )]
    Unreachable {
        /// The call's deadline.
        deadline_ms: u128,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure, as text.
        last: String,
        /// The last failure's gRPC code, when a site answered.
        last_code: Option<Code>,
    },
    /// An endpoint is not a valid address.
    #[error("invalid endpoint {0:?}")]
    InvalidEndpoint(String),
    /// No endpoint was given.
    #[error("no site endpoints given")]
    NoEndpoints,
    /// Certificate, key or token that cannot be used.
    #[error("{0}")]
    Credentials(String),
}

impl ClientError {
    /// The gRPC code of a final refusal, or of the last retryable error
    /// when no site gave a final answer.
    pub fn code(&self) -> Option<Code> {
        match self {
            ClientError::Refused { code, .. } => Some(*code),
            ClientError::Unreachable { last_code, .. } => *last_code,
            _ => None,
        }
    }
}

/// Whether another site, or the same one later, may answer differently.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Cancelled
            | Code::Aborted
    )
}

/// The wait a RESOURCE_EXHAUSTED answer asks for, if it names one.
fn retry_after(status: &Status) -> Option<Duration> {
    if status.code() != Code::ResourceExhausted {
        return None;
    }
    let millis: u64 = status
        .metadata()
        .get(crate::headers::RETRY_AFTER_HEADER)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(millis.min(RETRY_AFTER_MAX_MS)))
}

/// Longest wait a site may ask for before a retry.
pub const RETRY_AFTER_MAX_MS: u64 = 10_000;

/// A fresh random request id.
pub fn new_request_id() -> Vec<u8> {
    rand::random::<u128>().max(1).to_be_bytes().to_vec()
}

/// How a client proves who it is.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// TLS to the sites (the CA to trust, and a client certificate if any).
    pub tls: Option<ClientTlsConfig>,
    /// A bearer token (hosts, and clients without a certificate).
    pub token: Option<String>,
}

impl Credentials {
    /// No TLS, no token: for sites run with the `insecure` setting.
    pub fn insecure() -> Self {
        Credentials::default()
    }

    /// TLS from files: trust `ca`, present `cert`/`key` if given, and check
    /// that the server is a site of `cluster_id`.
    pub fn from_files(
        cluster_id: &str,
        ca: &std::path::Path,
        identity: Option<(&std::path::Path, &std::path::Path)>,
        token: Option<String>,
    ) -> Result<Self, ClientError> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| ClientError::Credentials(format!("reading {}: {e}", path.display())))
        };
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?))
            .domain_name(crate::pki::sites_name(&crate::pki::cluster_domain(
                cluster_id,
            )));
        if let Some((cert, key)) = identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        Ok(Credentials {
            tls: Some(tls),
            token,
        })
    }
}

/// A client of one cluster.
pub struct ClusterClient {
    endpoints: Mutex<Vec<String>>,
    preferred: AtomicUsize,
    channels: Mutex<HashMap<String, Channel>>,
    settings: ClientSettings,
    tls: Option<ClientTlsConfig>,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    /// Node info, when the client keeps it: endpoints come from it.
    directory: Option<Arc<Directory>>,
}

/// One unary call through `call` (retries, leader hints, deadlines):
/// `message` is cloned into a fresh request for every attempt.
macro_rules! unary {
    // A stream lives on: only opening it has a deadline.
    ($client:ident, $stub:ident, $message:expr, $method:ident, stream) => {{
        let message = $message;
        $client
            .call(|channel| {
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

    /// The directory, if any.
    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.directory.as_ref()
    }

    fn known_node_info(&self) -> Option<pb::NodeInfoVersion> {
        self.directory.as_ref().and_then(|d| d.known_version())
    }

    fn offer(&self, signed: Option<&pb::SignedNodeInfo>) {
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

    fn channel(&self, endpoint: &str) -> Result<Channel, ClientError> {
        let mut channels = self.channels.lock();
        if let Some(channel) = channels.get(endpoint) {
            return Ok(channel.clone());
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut builder = Endpoint::from_shared(format!("{scheme}://{endpoint}"))
            .map_err(|_| ClientError::InvalidEndpoint(endpoint.to_owned()))?
            .connect_timeout(self.settings.connect_timeout)
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

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.settings.attempt_timeout);
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        request
    }

    /// Runs `call` against sites until one gives a final answer.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let started = Instant::now();
        let deadline = started + self.settings.call_deadline;
        let mut backoff = self.settings.backoff_initial;
        let mut attempts = 0u32;
        let mut last = String::from("no attempt made");
        let mut last_code = None;
        let mut hinted: Option<String> = None;
        loop {
            let endpoints = self.endpoints();
            if endpoints.is_empty() {
                return Err(ClientError::NoEndpoints);
            }
            let first = self.preferred.load(Ordering::Relaxed) % endpoints.len();
            let mut order: Vec<String> = (0..endpoints.len())
                .map(|i| endpoints[(first + i) % endpoints.len()].clone())
                .collect();
            if let Some(leader) = hinted.take() {
                order.retain(|e| e != &leader);
                order.insert(0, leader);
            }
            for endpoint in order {
                if Instant::now() >= deadline {
                    break;
                }
                attempts += 1;
                let channel = self.channel(&endpoint)?;
                match call(channel).await {
                    Ok(value) => {
                        if let Some(index) = endpoints.iter().position(|e| e == &endpoint) {
                            self.preferred.store(index, Ordering::Relaxed);
                        }
                        return Ok(value);
                    }
                    Err(status) if retry_after(&status).is_some() => {
                        // Rate limited: the site says when to come back.
                        let wait = retry_after(&status).expect("checked above");
                        last = format!("{endpoint}: {:?}: {}", status.code(), status.message());
                        last_code = Some(status.code());
                        tokio::time::sleep(
                            wait.min(deadline.saturating_duration_since(Instant::now())),
                        )
                        .await;
                    }
                    Err(status) if retryable(&status) => {
                        last = format!("{endpoint}: {:?}: {}", status.code(), status.message());
                        last_code = Some(status.code());
                        let hint = status
                            .metadata()
                            .get(LEADER_HINT_HEADER)
                            .or_else(|| status.metadata().get(crate::headers::REDIRECT_HEADER));
                        if let Some(leader) = hint.and_then(|v| v.to_str().ok()) {
                            hinted = Some(leader.to_owned());
                            self.learn_endpoint(leader);
                            break;
                        }
                    }
                    Err(status) => {
                        return Err(ClientError::Refused {
                            endpoint,
                            code: status.code(),
                            message: status.message().to_owned(),
                        });
                    }
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(ClientError::Unreachable {
                    deadline_ms: self.settings.call_deadline.as_millis(),
                    attempts,
                    last,
                    last_code,
                });
            }
            if hinted.is_none() {
                let jitter = rand::random_range(0.5..1.0);
                tokio::time::sleep(backoff.mul_f64(jitter).min(remaining)).await;
                backoff = (backoff * 2).min(self.settings.backoff_max);
            }
        }
    }

    fn learn_endpoint(&self, endpoint: &str) {
        let mut endpoints = self.endpoints.lock();
        if !endpoints.iter().any(|e| e == endpoint) {
            endpoints.push(endpoint.to_owned());
        }
    }

    fn host_client(channel: Channel) -> HostServiceClient<Channel> {
        HostServiceClient::new(channel).max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
    }

    fn relay_client(channel: Channel) -> RelayServiceClient<Channel> {
        RelayServiceClient::new(channel).max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
    }

    fn admin_client(channel: Channel) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(channel).max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
    }

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

    /// Resolves a host to its relay.
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

    fn client_service(channel: Channel) -> ClientServiceClient<Channel> {
        ClientServiceClient::new(channel).max_decoding_message_size(limits::API_MESSAGE_BYTES_MAX)
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

    /// Opens a watch of a host's route on the first site that takes it.
    pub async fn watch_route(
        &self,
        host_id: &str,
        after_index: u64,
    ) -> Result<tonic::Streaming<pb::RouteEvent>, ClientError> {
        let message = pb::WatchRouteRequest {
            host_id: host_id.to_owned(),
            after_index,
            known_node_info: self.known_node_info(),
        };
        unary!(self, host_client, message.clone(), watch_route, stream)
    }

    /// Opens a watch of the hosts on a relay.
    pub async fn watch_relay_routes(
        &self,
        relay_id: &str,
        after_index: u64,
    ) -> Result<tonic::Streaming<pb::RelayRoutesEvent>, ClientError> {
        let message = pb::WatchRoutesRequest {
            relay_id: relay_id.to_owned(),
            after_index,
            known_node_info: self.known_node_info(),
        };
        unary!(self, relay_client, message.clone(), watch_routes, stream)
    }

    /// Asks one site for its own status, without retrying elsewhere.
    pub async fn status_of(&self, endpoint: &str) -> Result<pb::StatusResponse, ClientError> {
        let channel = self.channel(endpoint)?;
        let mut request = self.request(pb::StatusRequest {});
        request.set_timeout(self.settings.connect_timeout.max(Duration::from_secs(2)));
        Self::admin_client(channel)
            .status(request)
            .await
            .map(|r| r.into_inner())
            .map_err(|status| ClientError::Refused {
                endpoint: endpoint.to_owned(),
                code: status.code(),
                message: status.message().to_owned(),
            })
    }

    /// Asks every known site for its status, all at once.
    pub async fn status_all(&self) -> Vec<(String, Result<pb::StatusResponse, ClientError>)> {
        let endpoints = self.endpoints();
        let calls = endpoints
            .iter()
            .map(|endpoint| async move { (endpoint.clone(), self.status_of(endpoint).await) });
        futures::future::join_all(calls).await
    }

    /// Initializes a new cluster through one site.
    pub async fn initialize(
        &self,
        endpoint: &str,
        voters: Vec<pb::SiteEndpoints>,
    ) -> Result<(), ClientError> {
        let channel = self.channel(endpoint)?;
        Self::admin_client(channel)
            .initialize_cluster(self.request(pb::InitializeClusterRequest { voters }))
            .await
            .map(|_| ())
            .map_err(|status| ClientError::Refused {
                endpoint: endpoint.to_owned(),
                code: status.code(),
                message: status.message().to_owned(),
            })
    }

    /// Adds a site as a learner; returns at once (see `wait_caught_up`).
    pub async fn add_learner(
        &self,
        site: pb::SiteEndpoints,
    ) -> Result<pb::MembershipResponse, ClientError> {
        let message = pb::AddLearnerRequest { site: Some(site) };
        unary!(self, admin_client, message, add_learner)
    }

    /// Waits until the leader has replicated to `site_id` everything it had
    /// when the wait began, calling `progress(matched, target)` on each poll
    /// (about every 200 ms). Returns the time it took.
    pub async fn wait_caught_up(
        &self,
        site_id: u64,
        deadline: Duration,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Duration, ClientError> {
        let started = Instant::now();
        let mut target = None;
        loop {
            let statuses = self.status_all().await;
            let leader = statuses
                .iter()
                .filter_map(|(_, s)| s.as_ref().ok())
                .find(|s| s.role == "leader");
            if let Some(leader) = leader {
                let target = *target.get_or_insert(leader.last_log_index);
                let matched = leader
                    .members
                    .iter()
                    .find(|m| m.site_id == site_id)
                    .and_then(|m| m.matched_index);
                if let Some(matched) = matched {
                    progress(matched, target);
                    if matched >= target {
                        return Ok(started.elapsed());
                    }
                }
            }
            if started.elapsed() >= deadline {
                return Err(ClientError::Unreachable {
                    deadline_ms: deadline.as_millis(),
                    attempts: 0,
                    last: format!("site {site_id} did not catch up"),
                    last_code: Some(Code::DeadlineExceeded),
                });
            }
            tokio::time::sleep(CATCH_UP_POLL_INTERVAL).await;
        }
    }

    /// Issues a bearer token for a host or a client.
    pub async fn issue_token(
        &self,
        role: pb::TokenRole,
        subject: &str,
        ttl_secs: u64,
    ) -> Result<pb::IssueTokenResponse, ClientError> {
        let message = pb::IssueTokenRequest {
            role: role as i32,
            subject: subject.to_owned(),
            ttl_secs,
        };
        unary!(self, admin_client, message, issue_token)
    }

    /// Sets (or with empty text clears) the service notice.
    pub async fn set_notice(
        &self,
        request_id: &[u8],
        text: &str,
    ) -> Result<pb::NodeInfoResponse, ClientError> {
        let message = pb::SetNoticeRequest {
            request_id: request_id.to_vec(),
            text: text.to_owned(),
        };
        unary!(self, admin_client, message, set_notice)
    }

    /// Makes a new node-info signing key, endorsed by the current one.
    pub async fn rotate_signing_key(
        &self,
        request_id: &[u8],
    ) -> Result<pb::NodeInfoResponse, ClientError> {
        let message = pb::RotateSigningKeyRequest {
            request_id: request_id.to_vec(),
        };
        unary!(self, admin_client, message, rotate_signing_key)
    }

    /// Removes a relay that holds no route.
    pub async fn remove_relay(
        &self,
        request_id: &[u8],
        relay_id: &str,
    ) -> Result<pb::RemoveRelayResponse, ClientError> {
        let message = pb::RemoveRelayRequest {
            request_id: request_id.to_vec(),
            relay_id: relay_id.to_owned(),
        };
        unary!(self, admin_client, message, remove_relay)
    }

    /// Makes a learner a voter (`force` skips the safety rule).
    pub async fn promote_voter(
        &self,
        site_id: u64,
        force: bool,
    ) -> Result<pb::MembershipResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::PromoteVoterRequest { site_id, force },
            promote_voter
        )
    }

    /// Removes a site from the cluster.
    pub async fn remove_member(
        &self,
        site_id: u64,
        force: bool,
    ) -> Result<pb::MembershipResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::RemoveMemberRequest { site_id, force },
            remove_member
        )
    }

    /// Hands leadership to `to_site_id` (0: the most caught-up other voter).
    pub async fn transfer_leader(
        &self,
        to_site_id: u64,
        force: bool,
    ) -> Result<pb::TransferLeaderResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::TransferLeaderRequest { to_site_id, force },
            transfer_leader
        )
    }

    /// Drains a relay at `hosts_per_second`, everything left going at once
    /// after `deadline_unix_ms` (0: no deadline).
    pub async fn drain_relay(
        &self,
        relay_id: &str,
        hosts_per_second: u32,
        deadline_unix_ms: u64,
        force: bool,
    ) -> Result<pb::RelayResponse, ClientError> {
        let message = pb::DrainRelayRequest {
            request_id: new_request_id(),
            relay_id: relay_id.to_owned(),
            hosts_per_second,
            deadline_unix_ms,
            force,
        };
        unary!(self, admin_client, message, drain_relay)
    }

    /// Puts a relay back into placement.
    pub async fn undrain_relay(&self, relay_id: &str) -> Result<pb::RelayResponse, ClientError> {
        let message = pb::UndrainRelayRequest {
            request_id: new_request_id(),
            relay_id: relay_id.to_owned(),
        };
        unary!(self, admin_client, message, undrain_relay)
    }

    /// Takes a site out of client service.
    pub async fn drain_site(
        &self,
        site_id: u64,
        force: bool,
    ) -> Result<pb::SiteDrainResponse, ClientError> {
        let message = pb::DrainSiteRequest {
            request_id: new_request_id(),
            site_id,
            force,
        };
        unary!(self, admin_client, message, drain_site)
    }

    /// Puts a site back into client service.
    pub async fn undrain_site(&self, site_id: u64) -> Result<pb::SiteDrainResponse, ClientError> {
        let message = pb::UndrainSiteRequest {
            request_id: new_request_id(),
            site_id,
        };
        unary!(self, admin_client, message, undrain_site)
    }

    /// Schedules a maintenance window of `target` (`relay:ID` or `site:ID`).
    pub async fn schedule_maintenance(
        &self,
        target: &str,
        start_unix_ms: u64,
        end_unix_ms: u64,
        reason: &str,
    ) -> Result<pb::MaintenanceWindow, ClientError> {
        let message = pb::ScheduleMaintenanceRequest {
            request_id: new_request_id(),
            target: target.to_owned(),
            start_unix_ms,
            end_unix_ms,
            reason: reason.to_owned(),
        };
        unary!(self, admin_client, message, schedule_maintenance)
    }

    /// Lists maintenance windows.
    pub async fn list_maintenance(&self) -> Result<pb::ListMaintenanceResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::ListMaintenanceRequest {},
            list_maintenance
        )
    }

    /// Cancels a maintenance window.
    pub async fn cancel_maintenance(
        &self,
        window_id: u64,
    ) -> Result<pb::MaintenanceWindow, ClientError> {
        let message = pb::CancelMaintenanceRequest {
            request_id: new_request_id(),
            window_id,
        };
        unary!(self, admin_client, message, cancel_maintenance)
    }

    /// The audit log, newest first (0: all kept).
    pub async fn list_audit(&self, limit: u32) -> Result<pb::ListAuditResponse, ClientError> {
        unary!(
            self,
            admin_client,
            pb::ListAuditRequest { limit },
            list_audit
        )
    }

    /// Opens a backup stream (the state in the snapshot format).
    pub async fn save_snapshot(&self) -> Result<tonic::Streaming<pb::BackupChunk>, ClientError> {
        unary!(
            self,
            admin_client,
            pb::SaveSnapshotRequest {},
            save_snapshot,
            stream
        )
    }

    /// One step of a restore.
    pub async fn restore_step(
        &self,
        request_id: &[u8],
        step: pb::restore_request::Step,
    ) -> Result<pb::RestoreResponse, ClientError> {
        let message = pb::RestoreRequest {
            request_id: request_id.to_vec(),
            step: Some(step),
        };
        unary!(self, admin_client, message, restore)
    }
}
