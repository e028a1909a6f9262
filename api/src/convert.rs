//! Conversions between proto messages and the domain.
//!
//! Input conversions validate: what comes out of them is fit to propose.

use std::collections::BTreeMap;

use switchboard_proto::v1 as pb;
use switchboard_raft_store::SiteNode;
use switchboard_raft_store::command::RelayRegistration;
use switchboard_raft_store::ids::HostId;
use switchboard_raft_store::ids::RelayId;
use switchboard_raft_store::ids::validate_endpoint;
use switchboard_raft_store::ids::validate_labels;
use switchboard_raft_store::state::RelayRecord;
use switchboard_raft_store::state::RelayState;
use switchboard_raft_store::state::RouteView;

use crate::error::ApiError;

/// Longest site name, in bytes.
pub const SITE_NAME_BYTES_MAX: usize = 63;

pub fn relay_state(state: RelayState) -> pb::RelayState {
    match state {
        RelayState::Active => pb::RelayState::Active,
        RelayState::Draining => pb::RelayState::Draining,
        RelayState::Drained => pb::RelayState::Drained,
        RelayState::Maintenance => pb::RelayState::Maintenance,
        RelayState::Down => pb::RelayState::Down,
    }
}

pub fn relay(record: &RelayRecord) -> pb::Relay {
    pb::Relay {
        relay_id: record.relay_id.to_string(),
        endpoint: record.endpoint.clone(),
        region: record.region.clone(),
        labels: record.labels.clone().into_iter().collect(),
        capacity: record.capacity,
        state: relay_state(record.state()) as i32,
        incarnation: record.incarnation,
        route_count: record.route_count,
        state_since_unix_ms: record.state_since_ms,
    }
}

pub fn route(view: &RouteView) -> pb::Route {
    pb::Route {
        host_id: view.host_id.to_string(),
        relay_id: view.relay_id.to_string(),
        relay_endpoint: view.relay_endpoint.clone(),
        generation: view.generation,
        since_unix_ms: view.since_ms,
        preferred_region: view.preferred_region.clone(),
    }
}

pub fn host_id(value: &str) -> Result<HostId, ApiError> {
    Ok(HostId::new(value)?)
}

pub fn relay_id(value: &str) -> Result<RelayId, ApiError> {
    Ok(RelayId::new(value)?)
}

pub fn registration(request: &pb::RegisterRelayRequest) -> Result<RelayRegistration, ApiError> {
    let labels: BTreeMap<String, String> = request.labels.clone().into_iter().collect();
    let registration = RelayRegistration {
        relay_id: relay_id(&request.relay_id)?,
        endpoint: request.endpoint.clone(),
        region: request.region.clone(),
        labels,
        capacity: request.capacity,
        incarnation: request.incarnation,
    };
    switchboard_raft_store::Command::RegisterRelay(registration.clone()).validate()?;
    Ok(registration)
}

/// A site's endpoints from the admin API, checked.
pub fn site_node(site: &pb::SiteEndpoints) -> Result<(u64, SiteNode), ApiError> {
    if site.site_id == 0 {
        return Err(ApiError::InvalidArgument(
            "site_id must be at least 1".into(),
        ));
    }
    if site.name.is_empty() || site.name.len() > SITE_NAME_BYTES_MAX {
        return Err(ApiError::InvalidArgument(format!(
            "site name must be 1 to {SITE_NAME_BYTES_MAX} bytes"
        )));
    }
    validate_endpoint("raft_addr", &site.raft_addr)?;
    validate_endpoint("api_addr", &site.api_addr)?;
    validate_endpoint("http_addr", &site.http_addr)?;
    let labels: BTreeMap<String, String> = site.labels.clone().into_iter().collect();
    validate_labels(&labels)?;
    Ok((
        site.site_id,
        SiteNode {
            name: site.name.clone(),
            raft_addr: site.raft_addr.clone(),
            api_addr: site.api_addr.clone(),
            http_addr: site.http_addr.clone(),
            labels,
        },
    ))
}

pub fn site_endpoints(site_id: u64, node: &SiteNode) -> pb::SiteEndpoints {
    pb::SiteEndpoints {
        site_id,
        name: node.name.clone(),
        raft_addr: node.raft_addr.clone(),
        api_addr: node.api_addr.clone(),
        http_addr: node.http_addr.clone(),
        labels: node.labels.clone().into_iter().collect(),
    }
}
