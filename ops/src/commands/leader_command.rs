//! `sbctl leader`.

use std::io::Write;

use serde::Serialize;
use switchboard_api::ClusterClient;

use super::CliError;
use super::emit;
use crate::cli::LeaderCommand;

/// `sbctl leader`.
pub(super) async fn leader_command(
    client: &ClusterClient,
    command: &LeaderCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        LeaderCommand::Transfer { to, force } => {
            let response = client.transfer_leader(to.unwrap_or(0), *force).await?;
            #[derive(Serialize)]
            struct Transferred {
                new_leader_id: u64,
            }
            let view = Transferred {
                new_leader_id: response.new_leader_id,
            };
            emit(out, json, &view, || {
                format!("site {} now leads\n", view.new_leader_id)
            })?;
        }
    }
    Ok(())
}
