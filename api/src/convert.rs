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
use switchboard_raft_store::ids::validate_site_name;
use switchboard_raft_store::state::RelayRecord;
use switchboard_raft_store::state::RelayState;
use switchboard_raft_store::state::RouteView;

use crate::error::ApiError;

/// A relay state as the API shows it.
pub fn relay_state(state: RelayState) -> pb::RelayState {
    match state {
        RelayState::Active => pb::RelayState::Active,
        RelayState::Draining => pb::RelayState::Draining,
        RelayState::Drained => pb::RelayState::Drained,
        RelayState::Maintenance => pb::RelayState::Maintenance,
        RelayState::Down => pb::RelayState::Down,
    }
}

/// A relay record as the API shows it.
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

/// A route as the API shows it.
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

/// A host id from a request, checked.
pub fn host_id(value: &str) -> Result<HostId, ApiError> {
    Ok(HostId::new(value)?)
}

/// A relay id from a request, checked.
pub fn relay_id(value: &str) -> Result<RelayId, ApiError> {
    Ok(RelayId::new(value)?)
}

/// A relay registration from a request, every field checked.
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

/// A maintenance target: `relay:ID` or `site:ID`.
pub fn maintenance_target(
    text: &str,
) -> Result<switchboard_raft_store::state::MaintenanceTarget, ApiError> {
    use switchboard_raft_store::state::MaintenanceTarget;
    match text.split_once(':') {
        Some(("relay", id)) => Ok(MaintenanceTarget::Relay(relay_id(id)?)),
        Some(("site", id)) => id
            .parse()
            .map(MaintenanceTarget::Site)
            .map_err(|_| ApiError::InvalidArgument(format!("{id:?} is not a site id"))),
        _ => Err(ApiError::InvalidArgument(format!(
            "target {text:?} is not relay:ID or site:ID"
        ))),
    }
}

/// A site's endpoints from the admin API, checked.
pub fn site_node(site: &pb::SiteEndpoints) -> Result<(u64, SiteNode), ApiError> {
    if site.site_id == 0 {
        return Err(ApiError::InvalidArgument(
            "site_id must be at least 1".into(),
        ));
    }
    validate_site_name(&site.name)?;
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

/// Where a site is reached, as node info and status show it.
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![".{0,80}", "[a-z0-9-]{1,70}", "[a-z0-9.-]{1,40}:[0-9]{1,6}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

        /// Whatever a caller sends, conversion answers with a command that
        /// validates, or with INVALID_ARGUMENT; it never panics.
        #[test]
        fn relay_registrations_convert_or_refuse(
            relay_id in text(),
            endpoint in text(),
            region in text(),
            capacity in any::<u32>(),
            labels in prop::collection::btree_map(text(), text(), 0..20),
        ) {
            let request = pb::RegisterRelayRequest {
                request_id: Vec::new(),
                relay_id,
                endpoint,
                region,
                labels: labels.into_iter().collect(),
                capacity,
                incarnation: 1,
            };
            match registration(&request) {
                Ok(registration) => {
                    prop_assert!(switchboard_raft_store::Command::RegisterRelay(registration).validate().is_ok());
                }
                Err(error) => prop_assert!(matches!(error, ApiError::InvalidArgument(_)), "{error:?}"),
            }
        }

        #[test]
        fn site_endpoints_convert_or_refuse(id in any::<u64>(), name in text(), raft in text(), api in text(), http in text()) {
            let site = pb::SiteEndpoints { site_id: id, name, raft_addr: raft, api_addr: api, http_addr: http, labels: Default::default() };
            if let Err(error) = site_node(&site) {
                prop_assert!(matches!(error, ApiError::InvalidArgument(_)), "{error:?}");
            }
        }

        /// Arbitrary bytes decoded as requests and converted: no panic.
        #[test]
        fn garbage_requests_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(request) = pb::RegisterRelayRequest::decode(bytes.as_slice()) {
                let _ = registration(&request);
            }
            if let Ok(request) = pb::AttachRequest::decode(bytes.as_slice()) {
                let _ = host_id(&request.host_id);
                let _ = switchboard_raft_store::ids::RequestId::from_bytes(&request.request_id);
            }
            if let Ok(request) = pb::AddLearnerRequest::decode(bytes.as_slice())
                && let Some(site) = request.site
            {
                let _ = site_node(&site);
            }
        }
    }
}
