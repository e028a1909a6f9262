//! The admin service: status, cluster initialization, membership and
//! leader transfer.
//!
//! Membership and leadership changes run on the leader. A follower answers
//! UNAVAILABLE with the leader's API address in the `x-switchboard-leader`
//! metadata, and the client library retries there with the caller's own
//! credentials.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::sync::Arc;

use openraft::ChangeMembers;
use openraft::async_runtime::watch::WatchReceiver;
use openraft::errors::ClientWriteError;
use openraft::errors::InitializeError;
use openraft::errors::RaftError;
use switchboard_proto::v1 as pb;
use switchboard_proto::v1::admin_service_server::AdminService;
use switchboard_raft_store::SiteNode;
use tonic::Request;
use tonic::Response;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::services::auth::Principal;
use crate::services::request_id;
use crate::site::Site;
use crate::site::TRANSFER_LEADER_DEADLINE;
use crate::site::most_caught_up_voter;
use crate::site::role_name;
use crate::site::transfer_leadership;
use switchboard_api::ApiError;
use switchboard_api::convert;
use switchboard_api::headers::LEADER_HINT_HEADER;
use switchboard_api::token::TOKEN_TTL_MAX_SECS;
use switchboard_api::token::TokenRole;
use switchboard_raft_store::Command;
use switchboard_raft_store::Outcome;
use switchboard_raft_store::Proposal;
use switchboard_raft_store::safety::Step;
use switchboard_raft_store::safety::check_step;
use switchboard_raft_store::state::WindowStatus;
use switchboard_raft_store::store::read_chunk;
use tokio_stream::wrappers::ReceiverStream;

pub struct AdminApi {
    site: Arc<Site>,
}

impl AdminApi {
    pub fn new(site: Arc<Site>) -> Self {
        AdminApi { site }
    }

    /// Refuses a leader-only call on a follower, naming the leader.
    fn require_leader(&self) -> Result<(), Status> {
        match self.site.leader() {
            Some((leader, _)) if leader == self.site.id => Ok(()),
            Some((leader, node)) => {
                let mut status = Status::unavailable(format!(
                    "site {} is not the leader; site {leader} at {} is",
                    self.site.id, node.api_addr
                ));
                if let Ok(value) = MetadataValue::try_from(node.api_addr.as_str()) {
                    status.metadata_mut().insert(LEADER_HINT_HEADER, value);
                }
                Err(status)
            }
            None => Err(Status::unavailable(
                "no leader known (election in progress?)",
            )),
        }
    }

    fn members(&self) -> Vec<pb::Member> {
        self.site
            .members()
            .into_iter()
            .map(|member| pb::Member {
                site_id: member.site_id,
                name: member.node.name,
                raft_addr: member.node.raft_addr,
                api_addr: member.node.api_addr,
                http_addr: member.node.http_addr,
                voter: member.voter,
                labels: member.node.labels.into_iter().collect(),
                matched_index: member.matched_index,
                draining: member.draining,
                healthy: member.healthy,
            })
            .collect()
    }

    /// Refuses an unsafe step (see `safety`) unless forced.
    fn check_safety(&self, step: Step, force: bool) -> Result<(), Status> {
        if force {
            return Ok(());
        }
        let (voters, healthy) = self.site.voter_health();
        check_step(&voters, &healthy, step).map_err(Status::failed_precondition)
    }

    /// Records an admin action that is not a command (best effort: the
    /// action happened whether or not its record does).
    async fn audit<T, E: std::fmt::Display>(
        &self,
        principal: &Principal,
        action: String,
        result: &Result<T, E>,
    ) {
        let result = match result {
            Ok(_) => "ok".to_owned(),
            Err(error) => format!("failed: {error}").chars().take(200).collect(),
        };
        let command = Command::RecordAudit { action, result };
        let proposal = Proposal::new(
            switchboard_raft_store::ids::RequestId::NONE,
            principal.actor(),
            command,
        );
        if let Err(error) = self.site.propose(proposal).await {
            tracing::warn!(%error, "could not record an admin action in the audit log");
        }
    }

    fn node_info_response(&self, reply: &switchboard_raft_store::Reply) -> pb::NodeInfoResponse {
        let (era, epoch) = match reply.outcome {
            switchboard_raft_store::Outcome::NodeInfo { era, epoch } => (era, epoch),
            _ => self.site.reader.load().state.node_info().version(),
        };
        pb::NodeInfoResponse {
            node_info: None,
            current: Some(pb::NodeInfoVersion { era, epoch }),
        }
    }

    /// Changes the membership, records it in the audit log, and answers
    /// with the members as they are now.
    async fn change_membership(
        &self,
        principal: &Principal,
        action: String,
        change: ChangeMembers<u64, switchboard_raft_store::SiteNode>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let result = self
            .site
            .raft
            .change_membership(change, false)
            .await
            .map_err(membership_error);
        self.audit(principal, action, &result).await;
        Ok(Response::new(
            self.membership_response(result?.log_id.index),
        ))
    }

    fn membership_response(&self, log_index: u64) -> pb::MembershipResponse {
        pb::MembershipResponse {
            members: self.members(),
            log_index,
        }
    }
}

fn membership_error(
    error: RaftError<
        switchboard_raft_store::TypeConfig,
        ClientWriteError<switchboard_raft_store::TypeConfig>,
    >,
) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(_)) => {
            Status::unavailable(error.to_string())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Status::failed_precondition(e.to_string())
        }
        RaftError::APIError(e) => Status::failed_precondition(e.to_string()),
        RaftError::Fatal(e) => Status::unavailable(format!("site stopping: {e}")),
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        self.site.auth.admin(&request)?;
        let applied = self.site.reader.load();
        let response = {
            let metrics = self.site.raft.metrics();
            let metrics = metrics.borrow_watched();
            pb::StatusResponse {
                cluster_id: self.site.cluster_id.clone(),
                site_id: self.site.id,
                name: self.site.name.clone(),
                role: role_name(metrics.state).into(),
                leader_id: metrics.current_leader.unwrap_or(0),
                term: metrics.current_term,
                last_log_index: metrics.last_log_index.unwrap_or(0),
                commit_index: metrics.local_committed.as_ref().map_or(0, |id| id.index),
                applied_index: metrics.last_applied.as_ref().map_or(0, |id| id.index),
                snapshot_index: metrics.snapshot.as_ref().map_or(0, |id| id.index),
                purged_index: metrics.purged.as_ref().map_or(0, |id| id.index),
                members: Vec::new(),
                staleness_ms: 0,
                maintenance: Vec::new(),
                node_info_era: 0,
                node_info_epoch: 0,
                notice: String::new(),
                relay_count: applied.state.relays().count() as u64,
                route_count: applied.state.routes().len() as u64,
                version: env!("CARGO_PKG_VERSION").into(),
            }
        };
        let staleness_ms = self.site.staleness_ms().unwrap_or(u64::MAX);
        let node_info = applied.state.node_info();
        Ok(Response::new(pb::StatusResponse {
            members: self.members(),
            staleness_ms,
            // Open windows only; `ListMaintenance` shows the finished ones.
            maintenance: applied
                .state
                .windows()
                .filter(|w| matches!(w.status, WindowStatus::Scheduled | WindowStatus::Active))
                .map(window)
                .collect(),
            node_info_era: node_info.era,
            node_info_epoch: node_info.epoch,
            notice: node_info.notice.clone(),
            ..response
        }))
    }

    async fn initialize_cluster(
        &self,
        request: Request<pb::InitializeClusterRequest>,
    ) -> Result<Response<pb::InitializeClusterResponse>, Status> {
        self.site.auth.admin(&request)?;
        let voters = &request.get_ref().voters;
        if voters.is_empty() {
            return Err(ApiError::InvalidArgument("at least one voter is needed".into()).into());
        }
        let mut members: BTreeMap<u64, SiteNode> = BTreeMap::new();
        for site in voters {
            let (id, node) = convert::site_node(site)?;
            if members.insert(id, node).is_some() {
                return Err(ApiError::InvalidArgument(format!("site {id} is listed twice")).into());
            }
        }
        if !members.contains_key(&self.site.id) {
            return Err(ApiError::InvalidArgument(format!(
                "this site ({}) is not among the voters",
                self.site.id
            ))
            .into());
        }
        match self.site.raft.initialize(members).await {
            Ok(()) => Ok(Response::new(pb::InitializeClusterResponse {})),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => Err(
                Status::failed_precondition(format!("cluster already initialized: {e}")),
            ),
            Err(e) => Err(Status::failed_precondition(e.to_string())),
        }
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.site.auth.admin(&request)?;
        self.require_leader()?;
        let message = request.get_ref();
        let site = message
            .site
            .as_ref()
            .ok_or_else(|| ApiError::InvalidArgument("site is required".into()))?;
        let (id, node) = convert::site_node(site)?;
        let known = {
            let metrics = self.site.raft.metrics();
            let metrics = metrics.borrow_watched();
            metrics
                .membership_config
                .membership()
                .get_node(&id)
                .cloned()
        };
        if let Some(existing) = known
            && existing != node
        {
            return Err(ApiError::FailedPrecondition(format!(
                "site {id} is already a member with other endpoints"
            ))
            .into());
        }
        // Not blocking: catching up can take minutes; callers watch progress in Status.
        let response = self
            .site
            .raft
            .add_learner(id, node, false)
            .await
            .map_err(membership_error)?;
        Ok(Response::new(
            self.membership_response(response.log_id.index),
        ))
    }

    async fn promote_voter(
        &self,
        request: Request<pb::PromoteVoterRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let message = request.get_ref();
        let id = message.site_id;
        self.check_safety(Step::PromoteLearner(id), message.force)?;
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        self.change_membership(&principal, format!("promote site {id} to voter"), change)
            .await
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let id = request.get_ref().site_id;
        let force = request.get_ref().force;
        let (is_voter, is_member) = {
            let metrics = self.site.raft.metrics();
            let metrics = metrics.borrow_watched();
            let membership = metrics.membership_config.membership();
            (
                membership.voter_ids().any(|v| v == id),
                membership.get_node(&id).is_some(),
            )
        };
        if !is_member {
            return Err(ApiError::NotFound(format!("site {id} is not a member")).into());
        }
        let change = if is_voter {
            self.check_safety(Step::RemoveVoter(id), force)?;
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        };
        self.change_membership(&principal, format!("remove site {id}"), change)
            .await
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let requested = request.get_ref().to_site_id;
        let force = request.get_ref().force;
        let target = if requested != 0 {
            requested
        } else {
            most_caught_up_voter(&self.site).ok_or_else(|| {
                ApiError::FailedPrecondition("no other voter to hand leadership to".into())
            })?
        };
        self.check_safety(Step::TransferLeader(target), force)?;
        let result = transfer_leadership(&self.site, target, TRANSFER_LEADER_DEADLINE).await;
        let recorded = result
            .as_ref()
            .map(|_| ())
            .map_err(|e| Status::from(ApiError::Internal(e.to_string())));
        self.audit(
            &principal,
            format!("hand leadership to site {target}"),
            &recorded,
        )
        .await;
        result?;
        Ok(Response::new(pb::TransferLeaderResponse {
            new_leader_id: target,
        }))
    }

    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let role = match pb::TokenRole::try_from(message.role) {
            Ok(pb::TokenRole::Host) => {
                convert::host_id(&message.subject)?;
                TokenRole::Host
            }
            Ok(pb::TokenRole::Client) => {
                switchboard_raft_store::ids::RelayId::new(message.subject.clone()).map_err(
                    |_| {
                        ApiError::InvalidArgument(
                            "a client name is one DNS label (a-z, 0-9, '-')".into(),
                        )
                    },
                )?;
                TokenRole::Client
            }
            _ => {
                return Err(ApiError::InvalidArgument("role must be host or client".into()).into());
            }
        };
        if message.ttl_secs == 0 || message.ttl_secs > TOKEN_TTL_MAX_SECS {
            return Err(ApiError::InvalidArgument(format!(
                "ttl_secs must be 1 to {TOKEN_TTL_MAX_SECS}"
            ))
            .into());
        }
        let (token, expires_at_ms) =
            self.site
                .auth
                .issue_token(role, &message.subject, message.ttl_secs)?;
        Ok(Response::new(pb::IssueTokenResponse {
            token,
            expires_at_unix_ms: expires_at_ms,
        }))
    }

    async fn remove_relay(
        &self,
        request: Request<pb::RemoveRelayRequest>,
    ) -> Result<Response<pb::RemoveRelayResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::RemoveRelay {
            relay_id: convert::relay_id(&message.relay_id)?,
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        let reply = self.site.propose(proposal).await?;
        Ok(Response::new(pb::RemoveRelayResponse {
            applied_index: reply.log_index,
        }))
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let reply = self.site.propose_signing_key(principal.actor()).await?;
        Ok(Response::new(self.node_info_response(&reply)))
    }

    async fn set_notice(
        &self,
        request: Request<pb::SetNoticeRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::SetNotice {
            text: message.text.clone(),
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        let reply = self.site.propose(proposal).await?;
        Ok(Response::new(self.node_info_response(&reply)))
    }

    async fn drain_relay(
        &self,
        request: Request<pb::DrainRelayRequest>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::StartDrain {
            relay_id: convert::relay_id(&message.relay_id)?,
            hosts_per_second: message.hosts_per_second,
            deadline_ms: message.deadline_unix_ms,
            force: message.force,
        };
        self.relay_command(principal, &message.request_id, command)
            .await
    }

    async fn undrain_relay(
        &self,
        request: Request<pb::UndrainRelayRequest>,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::SetRelayState {
            relay_id: convert::relay_id(&message.relay_id)?,
            target: switchboard_raft_store::command::RelayAdminTarget::Active,
        };
        self.relay_command(principal, &message.request_id, command)
            .await
    }

    async fn drain_site(
        &self,
        request: Request<pb::DrainSiteRequest>,
    ) -> Result<Response<pb::SiteDrainResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        self.require_leader()?;
        let message = request.get_ref();
        let site_id = message.site_id;
        if !self.site.members().iter().any(|m| m.site_id == site_id) {
            return Err(ApiError::NotFound(format!("site {site_id} is not a member")).into());
        }
        self.check_safety(Step::DrainSite(site_id), message.force)?;
        let command = Command::SetSiteDraining {
            site_id,
            draining: true,
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        self.site.propose(proposal).await?;
        // A drained site does not lead.
        if site_id == self.site.id {
            let target = most_caught_up_voter(&self.site).ok_or_else(|| {
                ApiError::FailedPrecondition("no other voter to hand leadership to".into())
            })?;
            transfer_leadership(&self.site, target, TRANSFER_LEADER_DEADLINE).await?;
        }
        Ok(Response::new(pb::SiteDrainResponse {
            site_id,
            draining: true,
            leader_id: self.site.leader().map_or(0, |(id, _)| id),
        }))
    }

    async fn undrain_site(
        &self,
        request: Request<pb::UndrainSiteRequest>,
    ) -> Result<Response<pb::SiteDrainResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::SetSiteDraining {
            site_id: message.site_id,
            draining: false,
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        self.site.propose(proposal).await?;
        Ok(Response::new(pb::SiteDrainResponse {
            site_id: message.site_id,
            draining: false,
            leader_id: self.site.leader().map_or(0, |(id, _)| id),
        }))
    }

    async fn schedule_maintenance(
        &self,
        request: Request<pb::ScheduleMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceWindow>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let target = convert::maintenance_target(&message.target)?;
        let command = Command::ScheduleMaintenance {
            target,
            start_ms: message.start_unix_ms,
            end_ms: message.end_unix_ms,
            reason: message.reason.clone(),
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        match self.site.propose(proposal).await?.outcome {
            Outcome::Window(created) => Ok(Response::new(window(&created))),
            other => Err(ApiError::Internal(format!("unexpected outcome {other:?}")).into()),
        }
    }

    async fn list_maintenance(
        &self,
        request: Request<pb::ListMaintenanceRequest>,
    ) -> Result<Response<pb::ListMaintenanceResponse>, Status> {
        self.site.auth.admin(&request)?;
        let applied = self.site.reader.load();
        Ok(Response::new(pb::ListMaintenanceResponse {
            windows: applied.state.windows().map(window).collect(),
        }))
    }

    async fn cancel_maintenance(
        &self,
        request: Request<pb::CancelMaintenanceRequest>,
    ) -> Result<Response<pb::MaintenanceWindow>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = Command::CancelMaintenance {
            window_id: message.window_id,
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        match self.site.propose(proposal).await?.outcome {
            Outcome::Window(cancelled) => Ok(Response::new(window(&cancelled))),
            other => Err(ApiError::Internal(format!("unexpected outcome {other:?}")).into()),
        }
    }

    type SaveSnapshotStream = ReceiverStream<Result<pb::BackupChunk, Status>>;

    async fn save_snapshot(
        &self,
        request: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<Self::SaveSnapshotStream>, Status> {
        self.site.auth.admin(&request)?;
        // A linearizable read first: the backup holds every acknowledged write.
        let applied = self.site.read_linearizable(false).await?;
        let snapshots = self.site.snapshots.clone();
        let file = tokio::task::spawn_blocking(move || snapshots.write_backup(&applied))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(ApiError::from)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let file = std::sync::Arc::new(file);
            let total = file.len;
            let mut offset = 0u64;
            loop {
                let reader = file.clone();
                let chunk = tokio::task::spawn_blocking(move || {
                    read_chunk(
                        &reader,
                        offset,
                        switchboard_api::limits::SNAPSHOT_CHUNK_BYTES,
                    )
                })
                .await;
                let data = match chunk {
                    Ok(Ok(data)) => data,
                    Ok(Err(error)) => {
                        let _ = sender.send(Err(Status::internal(error.to_string()))).await;
                        return;
                    }
                    Err(error) => {
                        let _ = sender.send(Err(Status::internal(error.to_string()))).await;
                        return;
                    }
                };
                let next = offset + data.len() as u64;
                let last = next >= total;
                if sender
                    .send(Ok(pb::BackupChunk {
                        offset,
                        data,
                        total_bytes: total,
                        last,
                    }))
                    .await
                    .is_err()
                    || last
                {
                    return;
                }
                offset = next;
            }
        });
        Ok(Response::new(ReceiverStream::new(receiver)))
    }

    async fn restore(
        &self,
        request: Request<pb::RestoreRequest>,
    ) -> Result<Response<pb::RestoreResponse>, Status> {
        let principal = self.site.auth.admin(&request)?;
        let message = request.get_ref();
        let command = match &message.step {
            Some(pb::restore_request::Step::Begin(begin)) => Command::RestoreBegin {
                backup_era: begin.backup_era,
                rows_expected: begin.rows_expected,
            },
            Some(pb::restore_request::Step::Rows(rows)) => Command::RestoreRows {
                rows: rows
                    .rows
                    .iter()
                    .map(|row| (row.key.clone(), row.value.clone()))
                    .collect(),
            },
            Some(pb::restore_request::Step::Commit(true)) => {
                // Keep the backup's signing keys if this cluster can sign with
                // them (it was rebuilt with the lost cluster's state key).
                // Read through the leader: every staged row is applied here.
                let applied = self.site.read_linearizable(false).await?;
                let staged = applied.state.staged_node_info();
                let keep_backup_keys = staged
                    .as_ref()
                    .and_then(|meta| meta.current_key())
                    .is_some_and(|key| self.site.signer.can_open(key));
                Command::RestoreCommit { keep_backup_keys }
            }
            Some(pb::restore_request::Step::Abort(true)) => Command::RestoreAbort,
            _ => {
                return Err(ApiError::InvalidArgument(
                    "a restore step is begin, rows, commit or abort".into(),
                )
                .into());
            }
        };
        let proposal = Proposal::new(request_id(&message.request_id)?, principal.actor(), command);
        let reply = self.site.propose(proposal).await?;
        let response = match reply.outcome {
            Outcome::Restore {
                rows_received,
                rows_expected,
            } => pb::RestoreResponse {
                rows_received,
                rows_expected,
                era: 0,
                routes: 0,
            },
            Outcome::Restored { era, routes } => pb::RestoreResponse {
                rows_received: 0,
                rows_expected: 0,
                era,
                routes,
            },
            _ => pb::RestoreResponse::default(),
        };
        Ok(Response::new(response))
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        self.site.auth.admin(&request)?;
        let applied = self.site.reader.load();
        let limit = match request.get_ref().limit {
            0 => usize::MAX,
            limit => limit as usize,
        };
        let records = applied
            .state
            .audit()
            .rev()
            .take(limit)
            .map(|record| pb::AuditRecord {
                seq: record.seq,
                at_unix_ms: record.at_ms,
                log_index: record.log_index,
                actor: record.actor.clone(),
                action: record.action.clone(),
                result: record.result.clone(),
            })
            .collect();
        Ok(Response::new(pb::ListAuditResponse { records }))
    }
}

impl AdminApi {
    async fn relay_command(
        &self,
        principal: Principal,
        request_id_bytes: &[u8],
        command: Command,
    ) -> Result<Response<pb::RelayResponse>, Status> {
        let proposal = Proposal::new(request_id(request_id_bytes)?, principal.actor(), command);
        let reply = self.site.propose(proposal).await?;
        match reply.outcome {
            Outcome::Relay(record) => Ok(Response::new(pb::RelayResponse {
                relay: Some(convert::relay(&record)),
                applied_index: reply.log_index,
            })),
            other => Err(ApiError::Internal(format!("unexpected outcome {other:?}")).into()),
        }
    }
}

/// A maintenance window in the API.
pub fn window(window: &switchboard_raft_store::state::MaintenanceWindow) -> pb::MaintenanceWindow {
    pb::MaintenanceWindow {
        id: window.id,
        target: window.target.to_string(),
        start_unix_ms: window.start_ms,
        end_unix_ms: window.end_ms,
        reason: window.reason.clone(),
        status: window.status.as_str().to_owned(),
        created_by: window.created_by.clone(),
    }
}
