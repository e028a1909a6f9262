//! The relay service: register, list.

use std::sync::Arc;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::relay_service_server::RelayService;
use switchboard_raft_store::Command;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::reply::Outcome;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::convert;
use crate::error::ApiError;
use crate::limits::RELAYS_PER_LIST_MAX;
use crate::services::request_id;
use crate::site::Site;

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
    async fn register(
        &self,
        request: Request<pb::RegisterRelayRequest>,
    ) -> Result<Response<pb::RegisterRelayResponse>, Status> {
        let message = request.get_ref();
        let relay_id = convert::relay_id(&message.relay_id)?;
        let principal = self.site.auth.relay(&request, &relay_id)?;
        self.site.refuse_removed_relay(&principal)?;
        let registration = convert::registration(message)?;
        let proposal = Proposal::new(
            request_id(&message.request_id)?,
            principal.actor(),
            Command::RegisterRelay(registration),
        );
        let reply = self.site.propose(proposal).await?;
        match reply.outcome {
            Outcome::Relay(record) => Ok(Response::new(pb::RegisterRelayResponse {
                relay: Some(convert::relay(&record)),
                applied_index: reply.log_index,
            })),
            other => Err(ApiError::Internal(format!("unexpected outcome {other:?}")).into()),
        }
    }

    async fn list(
        &self,
        request: Request<pb::ListRelaysRequest>,
    ) -> Result<Response<pb::ListRelaysResponse>, Status> {
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
