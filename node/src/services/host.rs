//! The host service: attach, detach.

use std::sync::Arc;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::host_service_server::HostService;
use switchboard_raft_store::Request as WriteRequest;
use switchboard_raft_store::ids::validate_region;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::services::request_id;
use crate::services::watch::WatchStream;
use crate::services::watch::watch_host;
use crate::site::Site;
use switchboard_api::ApiError;
use switchboard_api::convert;

pub struct HostApi {
    site: Arc<Site>,
}

impl HostApi {
    pub fn new(site: Arc<Site>) -> Self {
        HostApi { site }
    }
}

#[tonic::async_trait]
impl HostService for HostApi {
    type WatchRouteStream = WatchStream<pb::RouteEvent>;

    async fn watch_route(
        &self,
        request: Request<pb::WatchRouteRequest>,
    ) -> Result<Response<Self::WatchRouteStream>, Status> {
        self.site.refuse_if_draining()?;
        let message = request.get_ref();
        let host_id = convert::host_id(&message.host_id)?;
        let principal = self.site.auth.host(&request, &host_id)?;
        let stream = watch_host(
            self.site.clone(),
            &principal,
            host_id,
            message.after_index,
            message.known_node_info,
        )?;
        Ok(Response::new(stream))
    }

    async fn attach(
        &self,
        request: Request<pb::AttachRequest>,
    ) -> Result<Response<pb::AttachResponse>, Status> {
        self.site.refuse_if_draining()?;
        let message = request.get_ref();
        let host_id = convert::host_id(&message.host_id)?;
        let actor = self.site.auth.host(&request, &host_id)?.actor();
        let known = message.known_node_info;
        validate_region(&message.preferred_region).map_err(ApiError::from)?;
        let request = WriteRequest::attach_host(host_id, message.preferred_region.clone());
        let applied = self
            .site
            .write(request_id(&message.request_id)?, actor, request)
            .await?;
        Ok(Response::new(pb::AttachResponse {
            route: Some(convert::route(&applied.answer)),
            applied_index: applied.log_index,
            node_info: self.site.node_info_if_newer(known.as_ref()),
        }))
    }

    async fn detach(
        &self,
        request: Request<pb::DetachRequest>,
    ) -> Result<Response<pb::DetachResponse>, Status> {
        self.site.refuse_if_draining()?;
        let message = request.get_ref();
        let host_id = convert::host_id(&message.host_id)?;
        let actor = self.site.auth.host(&request, &host_id)?.actor();
        let applied = self
            .site
            .write(
                request_id(&message.request_id)?,
                actor,
                WriteRequest::detach_host(host_id),
            )
            .await?;
        Ok(Response::new(pb::DetachResponse {
            was_attached: applied.answer.was_attached,
            last_generation: applied.answer.last_generation,
            applied_index: applied.log_index,
        }))
    }
}
