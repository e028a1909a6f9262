//! `sbctl snapshot`.

use std::io::Write;

use switchboard_api::ClusterClient;

use super::CliError;
use crate::cli::SnapshotCommand;
use crate::operations;

/// `sbctl snapshot`.
pub(super) async fn snapshot_command(
    client: &ClusterClient,
    command: &SnapshotCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        SnapshotCommand::Save { file } => {
            operations::save_snapshot(client, out, json, file).await?;
        }
        SnapshotCommand::Restore {
            file,
            yes_replace_state,
        } => {
            operations::restore_snapshot(client, out, json, file, *yes_replace_state).await?;
        }
    }
    Ok(())
}
