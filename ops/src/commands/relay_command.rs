//! `sbctl relay`.

use std::io::Write;

use serde::Serialize;
use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;

use super::CliError;
use super::RelayView;
use super::emit;
use super::relay_view;
use super::relays_table;
use crate::cli::RelayCommand;
use crate::operations;

/// `sbctl relay`.
pub(super) async fn relay_command(
    client: &ClusterClient,
    command: &RelayCommand,
    out: &mut dyn Write,
    json: bool,
) -> Result<(), CliError> {
    match command {
        RelayCommand::Register {
            relay_id,
            endpoint,
            capacity,
            region,
            labels,
            incarnation,
        } => {
            let request = pb::RegisterRelayRequest {
                request_id: new_request_id(),
                relay_id: relay_id.clone(),
                endpoint: endpoint.clone(),
                region: region.clone(),
                labels: labels.iter().cloned().collect(),
                capacity: *capacity,
                incarnation: *incarnation,
            };
            let response = client.register_relay(request).await?;
            let relays: Vec<RelayView> = response.relay.iter().map(relay_view).collect();
            emit(out, json, &relays, || relays_table(&relays))?;
        }
        RelayCommand::Remove { relay_id } => {
            let response = client.remove_relay(&new_request_id(), relay_id).await?;
            #[derive(Serialize)]
            struct Removed<'a> {
                relay_id: &'a str,
                applied_index: u64,
            }
            let view = Removed {
                relay_id,
                applied_index: response.applied_index,
            };
            emit(out, json, &view, || format!("removed relay {relay_id}\n"))?;
        }
        RelayCommand::Drain {
            relay_id,
            rate,
            deadline,
            wait,
            force,
        } => {
            let request = operations::DrainRequest {
                relay_id,
                rate: *rate,
                deadline: deadline.as_deref(),
                wait: *wait,
                force: *force,
            };
            operations::drain_relay(client, out, json, request).await?;
        }
        RelayCommand::Undrain { relay_id } => {
            let response = client.undrain_relay(relay_id).await?;
            let relays: Vec<RelayView> = response.relay.iter().map(relay_view).collect();
            emit(out, json, &relays, || relays_table(&relays))?;
        }
        RelayCommand::List => {
            let response = client.list_relays().await?;
            let relays: Vec<RelayView> = response.relays.iter().map(relay_view).collect();
            emit(out, json, &relays, || relays_table(&relays))?;
        }
    }
    Ok(())
}
