//! What the leader proposes to carry out maintenance windows, as a pure
//! function of the state, the time and the voters' health.
//!
//! At a window's start its target is drained (a relay at the default pace,
//! a site out of client service) and the window is marked started; at its
//! end the target is put back and the window marked done. Each step checks
//! the target's current state, so a new leader that finds a window half
//! carried out proposes only what is missing.

use std::collections::BTreeSet;

use crate::command::Command;
use crate::command::MaintenancePhase;
use crate::command::RelayAdminTarget;
use crate::safety::Step;
use crate::safety::check_step;
use crate::state::AdminState;
use crate::state::MaintenanceTarget;
use crate::state::MaintenanceWindow;
use crate::state::State;
use crate::state::WindowStatus;

/// What to do about the windows now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenancePlan {
    /// Commands to propose, in order.
    pub commands: Vec<Command>,
    /// Windows due to start that wait because starting them is unsafe now
    /// (window id, why).
    pub deferred: Vec<(u64, String)>,
}

/// The leader's view of the voters, for the safety rule.
#[derive(Clone, Debug, Default)]
pub struct VoterHealth {
    /// Every voter.
    pub voters: BTreeSet<u64>,
    /// The voters the leader saw within twice its lease.
    pub healthy: BTreeSet<u64>,
}

/// The steps due at `now_ms` for every open window, in window-id order.
pub fn plan(
    state: &State,
    now_ms: u64,
    drain_hosts_per_second: u32,
    health: &VoterHealth,
) -> MaintenancePlan {
    let mut plan = MaintenancePlan::default();
    for window in state.windows() {
        match window.status {
            WindowStatus::Scheduled if window.start_ms <= now_ms => {
                if window.end_ms <= now_ms {
                    // The whole window passed while no leader could act:
                    // record it, and leave the target as it is.
                    plan.commands.push(phase(window, MaintenancePhase::Started));
                    plan.commands.push(phase(window, MaintenancePhase::Ended));
                    continue;
                }
                match start(state, window, drain_hosts_per_second, health) {
                    Ok(commands) => {
                        plan.commands.extend(commands);
                        plan.commands.push(phase(window, MaintenancePhase::Started));
                    }
                    Err(reason) => plan.deferred.push((window.id, reason)),
                }
            }
            WindowStatus::Active if window.end_ms <= now_ms => {
                plan.commands.extend(end(state, window));
                plan.commands.push(phase(window, MaintenancePhase::Ended));
            }
            _ => {}
        }
    }
    plan
}

fn phase(window: &MaintenanceWindow, phase: MaintenancePhase) -> Command {
    Command::MaintenancePhase {
        window_id: window.id,
        phase,
    }
}

fn start(
    state: &State,
    window: &MaintenanceWindow,
    drain_hosts_per_second: u32,
    health: &VoterHealth,
) -> Result<Vec<Command>, String> {
    match &window.target {
        MaintenanceTarget::Relay(relay_id) => Ok(state
            .relay(relay_id)
            .filter(|relay| relay.admin_state == AdminState::Active)
            .map(|_| Command::StartDrain {
                relay_id: relay_id.clone(),
                hosts_per_second: drain_hosts_per_second,
                deadline_ms: 0,
                // The window was decided ahead: drain what has room.
                force: true,
            })
            .into_iter()
            .collect()),
        MaintenanceTarget::Site(site_id) => {
            let draining = state
                .sites()
                .find(|(id, _)| *id == site_id)
                .map(|(_, site)| site.draining);
            match draining {
                Some(false) => {
                    check_step(&health.voters, &health.healthy, Step::DrainSite(*site_id))?;
                    Ok(vec![Command::SetSiteDraining {
                        site_id: *site_id,
                        draining: true,
                    }])
                }
                // Drained already, or no longer a member: nothing to drain.
                Some(true) | None => Ok(Vec::new()),
            }
        }
    }
}

fn end(state: &State, window: &MaintenanceWindow) -> Vec<Command> {
    match &window.target {
        MaintenanceTarget::Relay(relay_id) => state
            .relay(relay_id)
            .filter(|relay| relay.admin_state != AdminState::Active)
            .map(|_| Command::SetRelayState {
                relay_id: relay_id.clone(),
                target: RelayAdminTarget::Active,
            })
            .into_iter()
            .collect(),
        MaintenanceTarget::Site(site_id) => state
            .sites()
            .find(|(id, site)| *id == site_id && site.draining)
            .map(|_| Command::SetSiteDraining {
                site_id: *site_id,
                draining: false,
            })
            .into_iter()
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Actor;
    use crate::command::ActorKind;
    use crate::command::Proposal;
    use crate::command::RelayRegistration;
    use crate::ids::RelayId;
    use crate::ids::RequestId;
    use crate::state::ChangeSet;

    struct Cluster {
        state: State,
        index: u64,
    }

    impl Cluster {
        /// Three voting sites, relays r1 and r2, host h1 on r1.
        fn new() -> Self {
            let mut cluster = Cluster {
                state: State::new(),
                index: 0,
            };
            let mut changes = ChangeSet::default();
            cluster.state.apply_membership(
                (1..=3)
                    .map(|id| (id, format!("site-{id}"), format!("10.0.0.{id}:7000"), true))
                    .collect(),
                &mut changes,
            );
            for name in ["r1", "r2"] {
                cluster.apply(
                    1_000,
                    Command::RegisterRelay(RelayRegistration {
                        relay_id: RelayId::new(name).unwrap(),
                        endpoint: format!("{name}.example:443"),
                        region: String::new(),
                        labels: Default::default(),
                        capacity: 10,
                        incarnation: 1,
                    }),
                );
            }
            cluster
        }

        fn apply(&mut self, now_ms: u64, command: Command) {
            self.index += 1;
            let proposal = Proposal {
                request_id: RequestId::NONE,
                actor: Actor::new(ActorKind::Admin, "test"),
                issued_at_ms: now_ms,
                command,
            };
            let reply = self
                .state
                .apply(self.index, &proposal, &mut ChangeSet::default());
            assert!(
                !matches!(reply.outcome, crate::reply::Outcome::Refused(_)),
                "{reply:?}"
            );
        }

        fn schedule(&mut self, target: MaintenanceTarget, start_ms: u64, end_ms: u64) {
            self.apply(
                1_000,
                Command::ScheduleMaintenance {
                    target,
                    start_ms,
                    end_ms,
                    reason: "work".into(),
                },
            );
        }

        /// Applies the plan at `now_ms`, as the leader would.
        fn carry_out(&mut self, now_ms: u64, health: &VoterHealth) -> MaintenancePlan {
            let planned = plan(&self.state, now_ms, 50, health);
            for command in planned.commands.clone() {
                self.apply(now_ms, command);
            }
            planned
        }
    }

    fn all_healthy() -> VoterHealth {
        VoterHealth {
            voters: BTreeSet::from([1, 2, 3]),
            healthy: BTreeSet::from([1, 2, 3]),
        }
    }

    fn relay(name: &str) -> RelayId {
        RelayId::new(name).unwrap()
    }

    #[test]
    fn a_relay_window_drains_at_its_start_and_undrains_at_its_end() {
        let mut cluster = Cluster::new();
        cluster.schedule(MaintenanceTarget::Relay(relay("r1")), 5_000, 9_000);
        assert_eq!(
            cluster.carry_out(4_999, &all_healthy()),
            MaintenancePlan::default()
        );

        let started = cluster.carry_out(5_000, &all_healthy());
        assert_eq!(
            started.commands,
            vec![
                Command::StartDrain {
                    relay_id: relay("r1"),
                    hosts_per_second: 50,
                    deadline_ms: 0,
                    force: true,
                },
                Command::MaintenancePhase {
                    window_id: 1,
                    phase: MaintenancePhase::Started
                },
            ]
        );
        // r1 holds no route, so it is drained at once.
        assert_eq!(
            cluster.state.relay(&relay("r1")).unwrap().admin_state,
            AdminState::Drained
        );
        assert_eq!(
            cluster.carry_out(8_000, &all_healthy()),
            MaintenancePlan::default()
        );

        let ended = cluster.carry_out(9_000, &all_healthy());
        assert_eq!(
            ended.commands,
            vec![
                Command::SetRelayState {
                    relay_id: relay("r1"),
                    target: RelayAdminTarget::Active
                },
                Command::MaintenancePhase {
                    window_id: 1,
                    phase: MaintenancePhase::Ended
                },
            ]
        );
        assert_eq!(
            cluster.state.relay(&relay("r1")).unwrap().admin_state,
            AdminState::Active
        );
        assert_eq!(
            cluster.state.windows().next().unwrap().status,
            WindowStatus::Done
        );
        assert_eq!(
            cluster.carry_out(20_000, &all_healthy()),
            MaintenancePlan::default()
        );
    }

    #[test]
    fn a_new_leader_proposes_only_what_is_missing() {
        let mut cluster = Cluster::new();
        cluster.schedule(MaintenanceTarget::Site(2), 5_000, 9_000);
        // The old leader drained the site, then died before marking the start.
        cluster.apply(
            5_000,
            Command::SetSiteDraining {
                site_id: 2,
                draining: true,
            },
        );
        let planned = cluster.carry_out(5_100, &all_healthy());
        assert_eq!(
            planned.commands,
            vec![Command::MaintenancePhase {
                window_id: 1,
                phase: MaintenancePhase::Started
            }]
        );
    }

    #[test]
    fn a_site_window_waits_while_draining_it_would_cost_quorum() {
        let mut cluster = Cluster::new();
        cluster.schedule(MaintenanceTarget::Site(2), 5_000, 9_000);
        let one_down = VoterHealth {
            voters: BTreeSet::from([1, 2, 3]),
            healthy: BTreeSet::from([1, 2]),
        };
        let planned = cluster.carry_out(5_000, &one_down);
        assert!(planned.commands.is_empty());
        assert_eq!(planned.deferred.len(), 1);
        assert_eq!(planned.deferred[0].0, 1);

        let planned = cluster.carry_out(6_000, &all_healthy());
        assert_eq!(
            planned.commands[0],
            Command::SetSiteDraining {
                site_id: 2,
                draining: true
            }
        );
        let ended = cluster.carry_out(9_000, &all_healthy());
        assert_eq!(
            ended.commands[0],
            Command::SetSiteDraining {
                site_id: 2,
                draining: false
            }
        );
        assert!(cluster.state.sites().all(|(_, site)| !site.draining));
    }

    #[test]
    fn a_window_that_passed_unseen_is_recorded_and_leaves_its_target_alone() {
        let mut cluster = Cluster::new();
        cluster.schedule(MaintenanceTarget::Relay(relay("r2")), 5_000, 9_000);
        let planned = cluster.carry_out(10_000, &all_healthy());
        assert_eq!(planned.commands.len(), 2, "{planned:?}");
        assert_eq!(
            cluster.state.relay(&relay("r2")).unwrap().admin_state,
            AdminState::Active
        );
        assert_eq!(
            cluster.state.windows().next().unwrap().status,
            WindowStatus::Done
        );
    }
}
