//! `sbctl host`.

use std::io::Write;

use serde::Serialize;
use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;

use super::CliError;
use super::emit;
use super::emit_token;
use super::route_table;
use super::route_view;
use crate::cli::HostCommand;

/// `sbctl host`.
pub(super) async fn host_command(
    client: &ClusterClient,
    command: &HostCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        HostCommand::Enroll { host_id, ttl_days } => {
            let response = client
                .issue_token(
                    pb::TokenRole::Host,
                    host_id,
                    ttl_days.saturating_mul(86_400),
                )
                .await?;
            emit_token(out, json, host_id, &response)?;
        }
        HostCommand::Attach { host_id, region } => {
            let response = client.attach(&new_request_id(), host_id, region).await?;
            let route = response
                .route
                .as_ref()
                .map(|r| route_view(r, response.applied_index));
            let route =
                route.ok_or_else(|| CliError::Usage("the site answered without a route".into()))?;
            emit(out, json, &route, || route_table(&route))?;
        }
        HostCommand::Detach { host_id } => {
            let response = client.detach(&new_request_id(), host_id).await?;
            #[derive(Serialize)]
            struct Detached {
                host_id: String,
                was_attached: bool,
                last_generation: u64,
                applied_index: u64,
            }
            let view = Detached {
                host_id: host_id.clone(),
                was_attached: response.was_attached,
                last_generation: response.last_generation,
                applied_index: response.applied_index,
            };
            emit(out, json, &view, || {
                if view.was_attached {
                    format!(
                        "detached {} (was generation {})\n",
                        view.host_id, view.last_generation
                    )
                } else {
                    format!("{} had no route\n", view.host_id)
                }
            })?;
        }
    }
    Ok(())
}
