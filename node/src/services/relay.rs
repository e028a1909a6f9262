//! The relay service: register, list.

use std::sync::Arc;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::relay_service_server::RelayService;
use switchboard_raft_store::Request as WriteRequest;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::services::request_id;
use crate::services::watch::WatchStream;
use crate::services::watch::watch_relay;
use crate::site::Site;
use switchboard_api::ApiError;
use switchboard_api::convert;
use switchboard_api::limits::RELAYS_PER_LIST_MAX;

pub struct RelayApi {
    site: Arc<Site>,
}

impl RelayApi {
    pub fn new(site: Arc<Site>) -> Self {
        RelayApi { site }
    }
}

#[tonic::async_trait]
impl RelayService for RelayApi {
    type WatchRoutesStream = WatchStream<pb::RelayRoutesEvent>;

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        self.site.refuse_if_draining()?;
        let message = request.get_ref();
        let relay_id = convert::relay_id(&message.relay_id)?;
        let principal = self.site.auth.relay(&request, &relay_id)?;
        self.site.refuse_removed_relay(&principal)?;
        {
            let applied = self.site.reader.load();
            let relay = applied.state.relay(&relay_id).ok_or_else(|| {
                ApiError::NotFound(format!(
                    "relay {relay_id} is not registered; register before heartbeating"
                ))
            })?;
            if relay.incarnation != message.incarnation {
                return Err(ApiError::FailedPrecondition(format!(
                    "relay {relay_id} is registered with incarnation {}, not {}; register again",
                    relay.incarnation, message.incarnation
                ))
                .into());
            }
        }
        let heartbeat = pb::RelayHeartbeat {
            relay_id: relay_id.to_string(),
            incarnation: message.incarnation,
            active_sessions: message.active_sessions,
            held_ms: 0,
        };
        let lease_ttl_ms = if self.site.is_leader() {
            self.site
                .record_heartbeats(std::slice::from_ref(&heartbeat))?
        } else {
            let answer = self
                .site
                .heartbeats
                .submit(heartbeat, self.site.clock.now())
                .ok_or_else(|| {
                    ApiError::ResourceExhausted("too many heartbeats waiting for the leader".into())
                })?;
            let wait = self.site.settings.heartbeat_forward_interval * 2
                + self.site.settings.write_deadline;
            match tokio::time::timeout(wait, answer).await {
                Ok(Ok(Ok(ttl))) => ttl,
                Ok(Ok(Err(reason))) => {
                    return Err(
                        ApiError::Unavailable(format!("heartbeat not recorded: {reason}")).into(),
                    );
                }
                _ => {
                    return Err(ApiError::Unavailable(
                        "the leader did not record the heartbeat in time".into(),
                    )
                    .into());
                }
            }
        };
        Ok(Response::new(pb::HeartbeatResponse {
            lease_ttl_ms,
            heartbeat_interval_ms: (lease_ttl_ms / 4).max(1),
            leader_id: self.site.leader().map_or(0, |(id, _)| id),
            node_info: self
                .site
                .node_info_if_newer(message.known_node_info.as_ref()),
        }))
    }

    async fn watch_routes(
        &self,
        request: Request<pb::WatchRoutesRequest>,
    ) -> Result<Response<Self::WatchRoutesStream>, Status> {
        self.site.refuse_if_draining()?;
        let message = request.get_ref();
        let relay_id = convert::relay_id(&message.relay_id)?;
        let principal = self.site.auth.relay(&request, &relay_id)?;
        self.site.refuse_removed_relay(&principal)?;
        let stream = watch_relay(
            self.site.clone(),
            &principal,
            relay_id,
            message.after_index,
            message.known_node_info,
        )?;
        Ok(Response::new(stream))
    }

    async fn register(
        &self,
        request: Request<pb::RegisterRelayRequest>,
    ) -> Result<Response<pb::RegisterRelayResponse>, Status> {
        self.site.refuse_if_draining()?;
        let message = request.get_ref();
        let relay_id = convert::relay_id(&message.relay_id)?;
        let principal = self.site.auth.relay(&request, &relay_id)?;
        self.site.refuse_removed_relay(&principal)?;
        let registration = convert::registration(message)?;
        let applied = self
            .site
            .write(
                request_id(&message.request_id)?,
                principal.actor(),
                WriteRequest::register_relay(registration),
            )
            .await?;
        Ok(Response::new(pb::RegisterRelayResponse {
            relay: Some(convert::relay(&applied.answer.relay)),
            applied_index: applied.log_index,
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListRelaysRequest>,
    ) -> Result<Response<pb::ListRelaysResponse>, Status> {
        self.site.refuse_if_draining()?;
        let principal = self.site.auth.reader(&request)?;
        self.site.refuse_removed_relay(&principal)?;
        let (applied, _) = self.site.read_local(0)?;
        let relays = applied
            .state
            .relays()
            .take(RELAYS_PER_LIST_MAX)
            .map(convert::relay)
            .collect();
        Ok(Response::new(pb::ListRelaysResponse {
            relays,
            applied_index: applied.applied_index(),
        }))
    }
}
