//! The client service: resolve a host to the relay that carries it.

use std::sync::Arc;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::client_service_server::ClientService;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::convert;
use crate::error::ApiError;
use crate::site::Site;

pub struct ClientApi {
    site: Arc<Site>,
}

impl ClientApi {
    pub fn new(site: Arc<Site>) -> Self {
        ClientApi { site }
    }
}

#[tonic::async_trait]
impl ClientService for ClientApi {
    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let principal = self.site.auth.reader(&request)?;
        self.site.refuse_removed_relay(&principal)?;
        let message = request.get_ref();
        let host_id = convert::host_id(&message.host_id)?;
        let consistency = pb::Consistency::try_from(message.consistency).map_err(|_| {
            ApiError::InvalidArgument(format!("unknown consistency {}", message.consistency))
        })?;
        let (applied, staleness_ms) = match consistency {
            pb::Consistency::Unspecified | pb::Consistency::Local => {
                self.site.read_local(message.max_stale_ms)?
            }
            pb::Consistency::Linearizable => (self.site.read_linearizable(false).await?, 0),
        };
        let route = applied
            .state
            .route(&host_id)
            .ok_or_else(|| ApiError::NotFound(format!("host {host_id} has no route")))?;
        Ok(Response::new(pb::ResolveResponse {
            route: Some(convert::route(&route)),
            applied_index: applied.applied_index(),
            staleness_ms,
            served_by_site: self.site.id,
        }))
    }
}
