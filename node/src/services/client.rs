//! The client service: resolve a host to the relay that carries it.

use std::sync::Arc;

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::client_service_server::ClientService;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::services::watch::WatchStream;
use crate::services::watch::watch_host;
use crate::site::Site;
use crate::site::unix_ms;
use switchboard_api::ApiError;
use switchboard_api::convert;

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
    type WatchStream = WatchStream<pb::RouteEvent>;

    async fn node_info(
        &self,
        request: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        self.site.refuse_if_draining()?;
        self.site.auth.reader(&request)?;
        let applied = self.site.reader.load();
        let (era, epoch) = applied.state.node_info().version();
        if applied.state.node_info().current_key().is_none() {
            return Err(ApiError::Unavailable(
                "the cluster has no node-info signing key yet".into(),
            )
            .into());
        }
        Ok(Response::new(pb::NodeInfoResponse {
            node_info: self
                .site
                .node_info_if_newer(request.get_ref().known_node_info.as_ref()),
            current: Some(pb::NodeInfoVersion { era, epoch }),
        }))
    }

    async fn watch(
        &self,
        request: Request<pb::WatchRouteRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.site.refuse_if_draining()?;
        let principal = self.site.auth.reader(&request)?;
        self.site.refuse_removed_relay(&principal)?;
        let message = request.get_ref();
        let host_id = convert::host_id(&message.host_id)?;
        let stream = watch_host(
            self.site.clone(),
            &principal,
            host_id,
            message.after_index,
            message.known_node_info,
        )?;
        Ok(Response::new(stream))
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        let consistency = consistency_label(request.get_ref().consistency);
        let answer = self.resolve_route(request).await;
        let outcome = match &answer {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        metrics::counter!(
            "switchboard_resolves_total",
            "consistency" => consistency,
            "outcome" => crate::request_metrics::code_name(outcome),
        )
        .increment(1);
        answer
    }
}

/// The `consistency` label of a resolve: one of a fixed few.
fn consistency_label(consistency: i32) -> &'static str {
    match pb::Consistency::try_from(consistency) {
        Ok(pb::Consistency::Unspecified | pb::Consistency::Local) => "local",
        Ok(pb::Consistency::Linearizable) => "linearizable",
        Err(_) => "invalid",
    }
}

impl ClientApi {
    /// Resolves a host's route at the consistency asked for, with a ticket.
    async fn resolve_route(
        &self,
        request: Request<pb::ResolveRequest>,
    ) -> Result<Response<pb::ResolveResponse>, Status> {
        self.site.refuse_if_draining()?;
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
            pb::Consistency::Linearizable => {
                (self.site.read_linearizable(message.lease_read).await?, 0)
            }
        };
        let route = applied
            .state
            .route(&host_id)
            .ok_or_else(|| ApiError::NotFound(format!("host {host_id} has no route")))?;
        let ticket_ttl_ms = self.site.settings.ticket_ttl.as_millis() as u64;
        let ticket = self
            .site
            .signer
            .ticket(&applied.state, &route, unix_ms(), ticket_ttl_ms);
        Ok(Response::new(pb::ResolveResponse {
            route: Some(convert::route(&route)),
            applied_index: applied.applied_index(),
            staleness_ms,
            served_by_site: self.site.id,
            ticket,
            node_info: self
                .site
                .signer
                .node_info_if_newer(&applied.state, message.known_node_info.as_ref()),
        }))
    }
}
