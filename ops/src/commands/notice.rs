//! `sbctl notice`.

use std::io::Write;

use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;

use super::CliError;
use super::emit;
use crate::cli::NoticeCommand;

/// What `sbctl notice` prints with `--json`.
#[derive(serde::Serialize)]
struct NoticeView {
    /// The notice now in force ("" when cleared).
    notice: String,
    /// The node-info version that carries it.
    era: u64,
    epoch: u64,
}

/// `sbctl notice`.
pub(super) async fn notice(
    client: &ClusterClient,
    command: &NoticeCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    let text = match command {
        NoticeCommand::Set { text } => text.clone(),
        NoticeCommand::Clear => String::new(),
    };
    let response = client.set_notice(&new_request_id(), &text).await?;
    let version = response.current.unwrap_or_default();
    let shown = NoticeView {
        notice: text.clone(),
        era: version.era,
        epoch: version.epoch,
    };
    emit(out, json, &shown, || {
        format!(
            "notice {}; node info is now at era {} epoch {}\n",
            if text.is_empty() { "cleared" } else { "set" },
            version.era,
            version.epoch
        )
    })?;
    Ok(())
}
