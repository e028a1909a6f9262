//! `sbctl audit`.

use std::io::Write;

use switchboard_api::ClusterClient;

use super::CliError;
use crate::operations;

/// `sbctl audit`.
pub(super) async fn audit(
    client: &ClusterClient,
    limit: &u32,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    operations::audit(client, out, json, *limit).await?;
    Ok(())
}
