//! `sbctl route`.

use std::io::Write;

use switchboard_api::ClusterClient;
use switchboard_proto::v1 as pb;

use super::CliError;
use super::emit;
use super::route_table;
use super::route_view;
use crate::cli::RouteCommand;

/// `sbctl route`.
pub(super) async fn route_command(
    client: &ClusterClient,
    command: &RouteCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        RouteCommand::Get {
            host_id,
            linearizable,
            max_stale_ms,
        } => {
            let consistency = if *linearizable {
                pb::Consistency::Linearizable
            } else {
                pb::Consistency::Local
            };
            let response = client.resolve(host_id, consistency, *max_stale_ms).await?;
            let route = response
                .route
                .as_ref()
                .ok_or_else(|| CliError::Usage("the site answered without a route".into()))?;
            let mut view = route_view(route, response.applied_index);
            view.staleness_ms = Some(response.staleness_ms).filter(|s| *s != u64::MAX);
            view.served_by_site = Some(response.served_by_site);
            emit(out, json, &view, || route_table(&view))?;
        }
    }
    Ok(())
}
