//! `sbctl maintenance`.

use std::io::Write;

use switchboard_api::ClusterClient;

use super::CliError;
use crate::cli::MaintenanceCommand;
use crate::operations;

/// `sbctl maintenance`.
pub(super) async fn maintenance_command(
    client: &ClusterClient,
    command: &MaintenanceCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        MaintenanceCommand::Schedule {
            target,
            start,
            end,
            reason,
        } => {
            operations::schedule_maintenance(client, out, json, target, start, end, reason).await?;
        }
        MaintenanceCommand::List => {
            operations::list_or_cancel_maintenance(client, out, json, None).await?;
        }
        MaintenanceCommand::Cancel { window_id } => {
            operations::list_or_cancel_maintenance(client, out, json, Some(*window_id)).await?;
        }
    }
    Ok(())
}
