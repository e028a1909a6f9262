//! Unit and property tests of the pure state machine.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::command::Actor;
use crate::command::ActorKind;
use crate::command::MaintenancePhase;
use crate::command::RelayAdminTarget;
use crate::command::RelayRegistration;
use crate::error::Error;
use crate::ids::RequestId;

fn relay_id(name: &str) -> RelayId {
    RelayId::new(name).unwrap()
}

fn host_id(name: &str) -> HostId {
    HostId::new(name).unwrap()
}

fn registration(name: &str, region: &str, capacity: u32, incarnation: u64) -> Command {
    Command::RegisterRelay(RelayRegistration {
        relay_id: relay_id(name),
        endpoint: format!("{name}.example:443"),
        region: region.into(),
        labels: Default::default(),
        capacity,
        incarnation,
    })
}

fn attach(host: &str) -> Command {
    Command::AttachHost {
        host_id: host_id(host),
        preferred_region: String::new(),
    }
}

/// A state plus a log index and a clock, to apply commands one after another.
struct Harness {
    state: State,
    index: u64,
    now_ms: u64,
    changes: ChangeSet,
    /// The rows as a store would hold them, written only from change sets.
    mirror: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Harness {
    fn new() -> Self {
        // A store starts empty; an empty state's only row is its meta row, which
        // loading an empty store also yields, so the mirror starts with it.
        let state = State::new();
        let mirror = state.rows().collect();
        Harness {
            state,
            index: 0,
            now_ms: 1_000,
            changes: ChangeSet::default(),
            mirror,
        }
    }

    fn apply_with(&mut self, request_id: RequestId, command: Command) -> Reply {
        self.index += 1;
        self.now_ms += 10;
        let proposal = Proposal {
            request_id,
            actor: Actor::new(ActorKind::Admin, "test"),
            issued_at_ms: self.now_ms,
            command,
        };
        let reply = self.state.apply(self.index, &proposal, &mut self.changes);
        crate::request::assert_answer_shape(&proposal.command, &reply);
        self.flush();
        reply
    }

    fn apply(&mut self, command: Command) -> Reply {
        self.apply_with(RequestId::NONE, command)
    }

    fn flush(&mut self) {
        if self.changes.replaced() {
            // A restore: the store rewrites every row.
            self.mirror = self.state.rows().collect();
            self.changes.clear();
            return;
        }
        for key in self.changes.keys() {
            match self.state.row_value(key) {
                Some(value) => self.mirror.insert(key.encode(), value),
                None => self.mirror.remove(&key.encode()),
            };
        }
        self.changes.clear();
    }

    fn route_relay(&self, host: &str) -> Option<String> {
        self.state
            .route(&host_id(host))
            .map(|r| r.relay_id.to_string())
    }
}

#[test]
fn attach_places_on_the_least_loaded_relay_and_keeps_a_good_route() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 2, 1));
    h.apply(registration("b", "", 4, 1));
    let first = h.apply(attach("h1"));
    let Outcome::Route(route) = first.outcome else {
        panic!("{first:?}")
    };
    assert_eq!(
        route.relay_id.as_str(),
        "a",
        "tie at zero load goes to the smallest id"
    );
    assert_eq!(route.generation, 1);
    assert_eq!(h.route_relay("h2"), None);
    h.apply(attach("h2"));
    assert_eq!(
        h.route_relay("h2").as_deref(),
        Some("b"),
        "1/2 is more than 0/4"
    );

    let again = h.apply(attach("h1"));
    let Outcome::Route(same) = again.outcome else {
        panic!()
    };
    assert_eq!(
        same.generation, 1,
        "attaching an attached host changes nothing"
    );
}

#[test]
fn full_relays_refuse_with_resource_exhausted_and_change_nothing() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 1, 1));
    h.apply(attach("h1"));
    let before: Vec<_> = h.state.rows().collect();
    let reply = h.apply(attach("h2"));
    let Outcome::Refused(refusal) = reply.outcome else {
        panic!("{reply:?}")
    };
    assert_eq!(refusal.code, RefusalCode::ResourceExhausted);
    let after: Vec<_> = h
        .state
        .rows()
        .filter(|(k, _)| k != &RowKey::Meta.encode())
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(k, _)| k != &RowKey::Meta.encode())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn relay_down_replaces_hosts_with_higher_generations() {
    let mut h = Harness::new();
    h.apply(registration("a", "eu", 10, 1));
    h.apply(registration("b", "eu", 10, 1));
    h.apply(registration("c", "us", 10, 1));
    for i in 0..6 {
        h.apply(Command::AttachHost {
            host_id: host_id(&format!("h{i}")),
            preferred_region: "eu".into(),
        });
    }
    let on_a: Vec<(HostId, u64)> = h
        .state
        .routes()
        .hosts_on(&relay_id("a"))
        .map(|host| (host.clone(), h.state.route(host).unwrap().generation))
        .collect();
    assert_eq!(on_a.len(), 3);
    let reply = h.apply(Command::RelayDown {
        relay_id: relay_id("a"),
        incarnation: 1,
    });
    let Outcome::RelayMoved {
        hosts_moved,
        hosts_unplaced,
        relay,
    } = reply.outcome
    else {
        panic!("{reply:?}")
    };
    assert_eq!((hosts_moved, hosts_unplaced), (3, 0));
    assert_eq!(relay.state(), RelayState::Down);
    for (host, old_generation) in on_a {
        let route = h.state.route(&host).unwrap();
        assert_eq!(
            route.relay_id.as_str(),
            "b",
            "the preferred region still wins"
        );
        assert!(route.generation > old_generation);
    }
    assert_eq!(h.state.relay(&relay_id("a")).unwrap().route_count, 0);
    h.state.check_invariants().unwrap();
}

/// A relay down moves one bounded batch; the rest follows in `DrainBatch`es,
/// which a live, active relay refuses.
#[test]
fn a_relay_down_moves_its_hosts_in_bounded_batches() {
    let hosts = RELAY_DOWN_BATCH_HOSTS * 2 + 500;
    let mut h = Harness::new();
    h.apply(registration("a", "", hosts, 1));
    for i in 0..hosts {
        h.apply(attach(&format!("h{i:05}")));
    }
    h.apply(registration("b", "", hosts, 1));
    let batch = |h: &mut Harness| {
        h.apply(Command::DrainBatch {
            relay_id: relay_id("a"),
            hosts_max: RELAY_DOWN_BATCH_HOSTS,
        })
    };
    assert_eq!(
        refused_code(&batch(&mut h)),
        Some(RefusalCode::FailedPrecondition),
        "nothing moves hosts off a live, active relay"
    );
    let down = h.apply(Command::RelayDown {
        relay_id: relay_id("a"),
        incarnation: 1,
    });
    let moved = |reply: Reply| match reply.outcome {
        Outcome::RelayMoved {
            hosts_moved, relay, ..
        } => (hosts_moved, relay.route_count),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        moved(down),
        (RELAY_DOWN_BATCH_HOSTS, hosts - RELAY_DOWN_BATCH_HOSTS)
    );
    assert_eq!(moved(batch(&mut h)), (RELAY_DOWN_BATCH_HOSTS, 500));
    assert_eq!(moved(batch(&mut h)), (500, 0));
    assert_eq!(moved(batch(&mut h)), (0, 0));
    assert_eq!(h.state.relay(&relay_id("b")).unwrap().route_count, hosts);
    h.state.check_invariants().unwrap();
}

#[test]
fn a_stale_relay_down_is_fenced_by_incarnation() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    h.apply(registration("a", "", 10, 2));
    let reply = h.apply(Command::RelayDown {
        relay_id: relay_id("a"),
        incarnation: 1,
    });
    assert!(matches!(
        reply.outcome,
        Outcome::Refused(Refusal {
            code: RefusalCode::FailedPrecondition,
            ..
        })
    ));
    assert_eq!(
        h.state.relay(&relay_id("a")).unwrap().state(),
        RelayState::Active
    );
    let older = h.apply(registration("a", "", 10, 1));
    assert!(
        matches!(older.outcome, Outcome::Refused(_)),
        "an older incarnation cannot take over"
    );
}

#[test]
fn drain_moves_batches_then_the_relay_is_drained() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    for i in 0..5 {
        h.apply(attach(&format!("h{i}")));
    }
    h.apply(registration("b", "", 10, 1));
    let refused = h.apply(Command::DrainBatch {
        relay_id: relay_id("a"),
        hosts_max: 2,
    });
    assert!(
        matches!(refused.outcome, Outcome::Refused(_)),
        "only a draining relay drains"
    );
    h.apply(Command::SetRelayState {
        relay_id: relay_id("a"),
        target: RelayAdminTarget::Draining,
    });
    let maintenance = h.apply(Command::SetRelayState {
        relay_id: relay_id("a"),
        target: RelayAdminTarget::Maintenance,
    });
    assert!(
        matches!(maintenance.outcome, Outcome::Refused(_)),
        "maintenance waits for the drain"
    );
    for expected_left in [3, 1, 0] {
        h.apply(Command::DrainBatch {
            relay_id: relay_id("a"),
            hosts_max: 2,
        });
        assert_eq!(
            h.state.relay(&relay_id("a")).unwrap().route_count,
            expected_left
        );
        for i in 0..5 {
            assert!(
                h.route_relay(&format!("h{i}")).is_some(),
                "no host is without a route during a drain"
            );
        }
    }
    assert_eq!(
        h.state.relay(&relay_id("a")).unwrap().state(),
        RelayState::Drained
    );
    let reply = h.apply(Command::SetRelayState {
        relay_id: relay_id("a"),
        target: RelayAdminTarget::Maintenance,
    });
    assert!(matches!(reply.outcome, Outcome::Relay(ref r) if r.state() == RelayState::Maintenance));
    h.apply(Command::SetRelayState {
        relay_id: relay_id("a"),
        target: RelayAdminTarget::Active,
    });
    assert_eq!(
        h.state.relay(&relay_id("a")).unwrap().state(),
        RelayState::Active
    );
}

#[test]
fn a_retried_request_returns_its_first_answer_and_changes_nothing() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    let id = RequestId(77);
    let first = h.apply_with(id, attach("h1"));
    h.apply(Command::DetachHost {
        host_id: host_id("h1"),
    });
    let retry = h.apply_with(id, attach("h1"));
    assert_eq!(retry, first, "same answer, same log index");
    assert_eq!(
        h.route_relay("h1"),
        None,
        "the retry did not attach the host again"
    );

    let reused = h.apply_with(id, attach("h2"));
    assert!(matches!(
        reused.outcome,
        Outcome::Refused(Refusal {
            code: RefusalCode::InvalidArgument,
            ..
        })
    ));
}

#[test]
fn remembered_answers_expire_by_state_time() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    h.apply_with(RequestId(1), attach("h1"));
    assert!(h.state.requests().get(RequestId(1)).is_some());
    h.now_ms += REQUEST_RETENTION_MS + 1;
    h.apply(attach("h2"));
    assert!(h.state.requests().get(RequestId(1)).is_none());
    assert_eq!(h.mirror, h.state.rows().collect::<BTreeMap<_, _>>());
}

#[test]
fn time_in_the_state_never_runs_backwards() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    let clock = h.state.clock_ms();
    h.now_ms -= 500;
    h.apply(attach("h1"));
    assert_eq!(h.state.clock_ms(), clock);
    assert_eq!(h.state.route(&host_id("h1")).unwrap().since_ms, clock);
}

#[test]
fn invalid_commands_are_refused_inside_apply_too() {
    let mut h = Harness::new();
    let bad = Command::RegisterRelay(RelayRegistration {
        relay_id: relay_id("a"),
        endpoint: "no-port".into(),
        region: String::new(),
        labels: Default::default(),
        capacity: 1,
        incarnation: 1,
    });
    let reply = h.apply(bad);
    assert!(matches!(
        reply.outcome,
        Outcome::Refused(Refusal {
            code: RefusalCode::InvalidArgument,
            ..
        })
    ));
    assert!(h.state.relay(&relay_id("a")).is_none());
}

#[test]
fn rows_round_trip_and_reject_a_corrupt_count() {
    let mut h = Harness::new();
    h.apply(registration("a", "eu", 10, 1));
    h.apply(attach("h1"));
    let rows: Vec<_> = h.state.rows().collect();
    let loaded = State::from_rows(rows.clone()).unwrap();
    assert_eq!(loaded.rows().collect::<Vec<_>>(), rows);

    let mut relay = h.state.relay(&relay_id("a")).unwrap().clone();
    relay.route_count = 5;
    let mut corrupt = rows.clone();
    let relay_row = corrupt
        .iter()
        .position(|(key, _)| *key == RowKey::Relay(relay_id("a")).encode())
        .unwrap();
    corrupt[relay_row].1 = encode_value(&relay);
    assert!(matches!(
        State::from_rows(corrupt),
        Err(Error::Corrupt { .. })
    ));
}

// ----- property tests -----

const RELAYS: [&str; 4] = ["r0", "r1", "r2", "r3"];
const REGIONS: [&str; 3] = ["", "eu", "us"];
const HOSTS: usize = 24;

#[derive(Clone, Debug)]
enum Op {
    Register {
        relay: usize,
        region: usize,
        incarnation_bump: bool,
    },
    SetState {
        relay: usize,
        target: u8,
    },
    Down {
        relay: usize,
        stale: bool,
    },
    Up {
        relay: usize,
    },
    Remove {
        relay: usize,
    },
    Attach {
        host: usize,
        region: usize,
    },
    Detach {
        host: usize,
    },
    Drain {
        relay: usize,
        hosts_max: u32,
    },
    /// Re-send the n-th earlier request with its request id.
    Retry {
        back: usize,
    },
    /// The leader's clock jumps back (a new leader with a slower clock).
    ClockBack {
        ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..RELAYS.len(), 0..REGIONS.len(), any::<bool>())
            .prop_map(|(relay, region, incarnation_bump)| Op::Register { relay, region, incarnation_bump }),
        1 => (0..RELAYS.len(), 0u8..3).prop_map(|(relay, target)| Op::SetState { relay, target }),
        1 => (0..RELAYS.len(), any::<bool>()).prop_map(|(relay, stale)| Op::Down { relay, stale }),
        1 => (0..RELAYS.len()).prop_map(|relay| Op::Up { relay }),
        1 => (0..RELAYS.len()).prop_map(|relay| Op::Remove { relay }),
        6 => (0..HOSTS, 0..REGIONS.len()).prop_map(|(host, region)| Op::Attach { host, region }),
        2 => (0..HOSTS).prop_map(|host| Op::Detach { host }),
        1 => (0..RELAYS.len(), 1u32..4).prop_map(|(relay, hosts_max)| Op::Drain { relay, hosts_max }),
        1 => (1usize..20).prop_map(|back| Op::Retry { back }),
        1 => (1u64..5_000).prop_map(|ms| Op::ClockBack { ms }),
    ]
}

/// Capacity is fixed per relay so that it never shrinks under its routes.
fn capacity_of(relay: usize) -> u32 {
    3 + 2 * relay as u32
}

/// Turns ops into proposals, deterministically, so the same ops can be
/// applied to several states.
fn proposals(ops: &[Op]) -> Vec<Proposal> {
    let mut incarnations = [1u64; RELAYS.len()];
    let mut out: Vec<Proposal> = Vec::new();
    let mut now = 10_000u64;
    for (n, op) in ops.iter().enumerate() {
        now += 7;
        let command = match op {
            Op::Register {
                relay,
                region,
                incarnation_bump,
            } => {
                if *incarnation_bump {
                    incarnations[*relay] += 1;
                }
                registration(
                    RELAYS[*relay],
                    REGIONS[*region],
                    capacity_of(*relay),
                    incarnations[*relay],
                )
            }
            Op::SetState { relay, target } => Command::SetRelayState {
                relay_id: relay_id(RELAYS[*relay]),
                target: [
                    RelayAdminTarget::Active,
                    RelayAdminTarget::Draining,
                    RelayAdminTarget::Maintenance,
                ][*target as usize],
            },
            Op::Down { relay, stale } => Command::RelayDown {
                relay_id: relay_id(RELAYS[*relay]),
                incarnation: incarnations[*relay] - u64::from(*stale),
            },
            Op::Up { relay } => Command::RelayUp {
                relay_id: relay_id(RELAYS[*relay]),
                incarnation: incarnations[*relay],
            },
            Op::Remove { relay } => Command::RemoveRelay {
                relay_id: relay_id(RELAYS[*relay]),
            },
            Op::Attach { host, region } => Command::AttachHost {
                host_id: host_id(&format!("h{host}")),
                preferred_region: REGIONS[*region].into(),
            },
            Op::Detach { host } => Command::DetachHost {
                host_id: host_id(&format!("h{host}")),
            },
            Op::Drain { relay, hosts_max } => Command::DrainBatch {
                relay_id: relay_id(RELAYS[*relay]),
                hosts_max: *hosts_max,
            },
            Op::Retry { back } => {
                if let Some(earlier) = out.len().checked_sub(*back).map(|i| out[i].clone()) {
                    out.push(Proposal {
                        issued_at_ms: now,
                        ..earlier
                    });
                }
                continue;
            }
            Op::ClockBack { ms } => {
                now = now.saturating_sub(*ms);
                continue;
            }
        };
        out.push(Proposal {
            request_id: RequestId(n as u128 + 1),
            actor: Actor::new(ActorKind::Admin, "prop"),
            issued_at_ms: now,
            command,
        });
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Invariants after every step: one relay per host (by construction of
    /// the table, checked through the reverse index), generations strictly
    /// rising per host, relay load equal to its route count, placement within
    /// capacity and only on active relays.
    #[test]
    fn invariants_hold_after_every_command(ops in prop::collection::vec(op(), 1..200)) {
        let mut h = Harness::new();
        let mut last_generation: BTreeMap<HostId, u64> = BTreeMap::new();
        let mut last_relay: BTreeMap<HostId, RelayId> = BTreeMap::new();
        for proposal in proposals(&ops) {
            h.index += 1;
            let reply = h.state.apply(h.index, &proposal, &mut h.changes);
            crate::request::assert_answer_shape(&proposal.command, &reply);
            h.flush();
            prop_assert_eq!(h.state.check_invariants(), Ok(()));

            let hosts_in_index: usize = h.state.relays().map(|r| h.state.routes().count_on(&r.relay_id)).sum();
            prop_assert_eq!(hosts_in_index, h.state.routes().len(), "each host is on exactly one relay");

            for relay in h.state.relays() {
                prop_assert!(relay.route_count <= relay.capacity, "relay {} over capacity", relay.relay_id);
            }
            if let (Command::AttachHost { .. }, Outcome::Route(route)) = (&proposal.command, &reply.outcome)
                && reply.log_index == h.index
            {
                let relay = h.state.relay(&route.relay_id).unwrap();
                prop_assert!(relay.live && relay.admin_state == AdminState::Active, "attached to a relay that is not active");
            }
            for (host, route) in h.state.routes().iter() {
                let previous = last_generation.get(host).copied().unwrap_or(0);
                prop_assert!(route.generation >= previous, "generation of {} went back", host);
                if last_relay.get(host) != Some(&route.relay_id) {
                    prop_assert!(route.generation > previous, "host {} moved without a new generation", host);
                }
                last_generation.insert(host.clone(), route.generation);
                last_relay.insert(host.clone(), route.relay_id.clone());
            }
            // A detached host that comes back must get a higher generation than it ever had.
            last_relay.retain(|host, _| h.state.routes().get(host).is_some());
        }
        prop_assert_eq!(&h.mirror, &h.state.rows().collect::<BTreeMap<_, _>>(), "change sets cover every changed row");
    }

    /// The same log gives the same state, byte for byte, and the rows load back.
    #[test]
    fn apply_is_deterministic(ops in prop::collection::vec(op(), 1..150)) {
        let log = proposals(&ops);
        let run = || {
            let mut state = State::new();
            let mut changes = ChangeSet::default();
            let replies: Vec<Reply> = log.iter().enumerate().map(|(i, p)| state.apply(i as u64 + 1, p, &mut changes)).collect();
            (state.rows().collect::<Vec<_>>(), replies)
        };
        let (rows_a, replies_a) = run();
        let (rows_b, replies_b) = run();
        prop_assert_eq!(&rows_a, &rows_b);
        prop_assert_eq!(replies_a, replies_b);
        let reloaded = State::from_rows(rows_a.clone()).expect("rows load back");
        prop_assert_eq!(reloaded.rows().collect::<Vec<_>>(), rows_a);
    }
}

#[test]
fn a_removed_relay_registers_again_only_through_an_operator() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    h.apply(Command::RemoveRelay {
        relay_id: relay_id("a"),
    });
    assert!(h.state.is_removed_relay(&relay_id("a")));
    h.index += 1;
    let by_itself = Proposal {
        request_id: RequestId::NONE,
        actor: Actor::new(ActorKind::Relay, "a"),
        issued_at_ms: h.now_ms,
        command: registration("a", "", 10, 2),
    };
    let reply = h.state.apply(h.index, &by_itself, &mut h.changes);
    h.flush();
    assert!(matches!(
        reply.outcome,
        Outcome::Refused(Refusal {
            code: RefusalCode::PermissionDenied,
            ..
        })
    ));
    assert!(h.state.relay(&relay_id("a")).is_none());
    h.apply(registration("a", "", 10, 2));
    assert!(
        !h.state.is_removed_relay(&relay_id("a")),
        "an operator's registration lifts the removal"
    );
    assert_eq!(h.mirror, h.state.rows().collect::<BTreeMap<_, _>>());
}

#[test]
fn a_relay_that_flaps_is_held_out_of_placement() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    h.apply(registration("b", "", 10, 1));
    for _ in 0..FLAP_DOWNS_MAX {
        h.apply(Command::RelayDown {
            relay_id: relay_id("a"),
            incarnation: 1,
        });
        h.apply(Command::RelayUp {
            relay_id: relay_id("a"),
            incarnation: 1,
        });
    }
    let a = h.state.relay(&relay_id("a")).unwrap();
    assert!(a.live);
    assert!(
        a.held_out_until_ms > h.state.clock_ms(),
        "three losses in the window hold it out"
    );
    for i in 0..4 {
        h.apply(attach(&format!("h{i}")));
        assert_eq!(h.route_relay(&format!("h{i}")).as_deref(), Some("b"));
    }
    h.now_ms += FLAP_HOLD_MS + 1;
    h.apply(attach("late"));
    assert_eq!(
        h.route_relay("late").as_deref(),
        Some("a"),
        "after the hold it takes hosts again"
    );
}

#[test]
fn a_relay_coming_back_with_a_stale_incarnation_is_refused() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 2));
    h.apply(Command::RelayDown {
        relay_id: relay_id("a"),
        incarnation: 2,
    });
    let reply = h.apply(Command::RelayUp {
        relay_id: relay_id("a"),
        incarnation: 1,
    });
    assert!(matches!(reply.outcome, Outcome::Refused(_)));
    assert!(!h.state.relay(&relay_id("a")).unwrap().live);
}

#[test]
fn node_info_epochs_move_with_membership_and_admin_state_but_not_liveness() {
    let mut h = Harness::new();
    let epoch = |h: &Harness| h.state.node_info().epoch;
    h.apply(registration("a", "", 10, 1));
    let after_register = epoch(&h);
    assert!(after_register > 0);
    h.apply(registration("a", "", 20, 2));
    assert_eq!(
        epoch(&h),
        after_register,
        "capacity and incarnation are not in node info"
    );
    h.apply(attach("h1"));
    h.apply(Command::RelayDown {
        relay_id: relay_id("a"),
        incarnation: 2,
    });
    h.apply(Command::RelayUp {
        relay_id: relay_id("a"),
        incarnation: 2,
    });
    assert_eq!(
        epoch(&h),
        after_register,
        "liveness and load never move the epoch"
    );
    h.apply(Command::SetRelayState {
        relay_id: relay_id("a"),
        target: RelayAdminTarget::Draining,
    });
    assert_eq!(epoch(&h), after_register + 1, "admin state does");
    h.apply(Command::SetNotice {
        text: "maintenance at 02:00".into(),
    });
    assert_eq!(epoch(&h), after_register + 2);
    h.apply(Command::SetNotice {
        text: "maintenance at 02:00".into(),
    });
    assert_eq!(
        epoch(&h),
        after_register + 2,
        "the same notice again changes nothing"
    );
    h.state.apply_membership(
        vec![(1, "s1".into(), "s1.test:1".into(), true)],
        &mut h.changes,
    );
    h.flush();
    assert_eq!(epoch(&h), after_register + 3, "membership does");
    assert_eq!(h.mirror, h.state.rows().collect::<BTreeMap<_, _>>());
}

#[test]
fn signing_keys_follow_each_other_by_endorsement() {
    use crate::command::NewSigningKey;
    let mut h = Harness::new();
    let key = |id: u64, endorsed_by: Option<u64>| NewSigningKey {
        cluster_id: "c1".into(),
        key_id: id,
        public_key: vec![id as u8; 32],
        sealed_private_key: vec![1; 40],
        endorsement: endorsed_by.map(|by| Endorsement {
            by_key_id: by,
            signature: vec![2; 64],
        }),
    };
    h.apply(Command::AddSigningKey(key(1, None)));
    assert_eq!(h.state.node_info().current_key().unwrap().key_id, 1);
    assert_eq!(h.state.node_info().cluster_id, "c1");
    let unendorsed = h.apply(Command::AddSigningKey(key(2, None)));
    assert!(matches!(unendorsed.outcome, Outcome::Refused(_)));
    let wrong = h.apply(Command::AddSigningKey(key(2, Some(7))));
    assert!(matches!(wrong.outcome, Outcome::Refused(_)));
    h.apply(Command::AddSigningKey(key(2, Some(1))));
    assert_eq!(h.state.node_info().current_key().unwrap().key_id, 2);
    for id in 3..20 {
        h.apply(Command::AddSigningKey(key(id, Some(id - 1))));
    }
    assert_eq!(h.state.node_info().keys.len(), SIGNING_KEYS_KEPT_MAX);
}

fn refused_code(reply: &Reply) -> Option<RefusalCode> {
    match &reply.outcome {
        Outcome::Refused(refusal) => Some(refusal.code),
        _ => None,
    }
}

#[test]
fn a_drain_keeps_its_pace_in_the_state_until_undrained() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    h.apply(attach("h1"));
    h.apply(registration("b", "", 10, 1));
    let reply = h.apply(Command::StartDrain {
        relay_id: relay_id("a"),
        hosts_per_second: 250,
        deadline_ms: 99_000,
        force: false,
    });
    let Outcome::Relay(relay) = reply.outcome else {
        panic!("{reply:?}")
    };
    assert_eq!(relay.state(), RelayState::Draining);
    let plan = relay.drain.expect("a draining relay has a plan");
    assert_eq!(plan.hosts_per_second, 250);
    assert_eq!(plan.deadline_ms, Some(99_000));
    assert_eq!(plan.started_ms, h.now_ms);

    let empty = h.apply(Command::StartDrain {
        relay_id: relay_id("b"),
        hosts_per_second: 10,
        deadline_ms: 0,
        force: false,
    });
    assert!(
        matches!(empty.outcome, Outcome::Relay(ref r) if r.state() == RelayState::Drained && r.drain.is_none()),
        "a relay without routes is drained at once: {empty:?}"
    );
    let too_fast = h.apply(Command::StartDrain {
        relay_id: relay_id("a"),
        hosts_per_second: 0,
        deadline_ms: 0,
        force: false,
    });
    assert_eq!(refused_code(&too_fast), Some(RefusalCode::InvalidArgument));

    h.apply(Command::SetRelayState {
        relay_id: relay_id("a"),
        target: RelayAdminTarget::Active,
    });
    assert!(h.state.relay(&relay_id("a")).unwrap().drain.is_none());
    assert_eq!(
        h.route_relay("h1").as_deref(),
        Some("a"),
        "an undrained relay keeps what it still held"
    );
}

#[test]
fn maintenance_windows_refuse_overlaps_and_move_only_forwards() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    let window = |start_ms, end_ms| Command::ScheduleMaintenance {
        target: MaintenanceTarget::Relay(relay_id("a")),
        start_ms,
        end_ms,
        reason: "firmware".into(),
    };
    let epoch_before = h.state.node_info().epoch;
    let first = h.apply(window(10_000, 20_000));
    let Outcome::Window(first) = first.outcome else {
        panic!("{first:?}")
    };
    assert_eq!((first.id, first.status), (1, WindowStatus::Scheduled));
    assert_eq!(first.created_by, "admin:test");
    assert!(
        h.state.node_info().epoch > epoch_before,
        "node info lists windows"
    );

    let overlap = h.apply(window(15_000, 25_000));
    assert_eq!(
        refused_code(&overlap),
        Some(RefusalCode::FailedPrecondition)
    );
    let past = h.apply(window(100, 200));
    assert_eq!(refused_code(&past), Some(RefusalCode::InvalidArgument));
    let backwards = h.apply(window(30_000, 30_000));
    assert_eq!(refused_code(&backwards), Some(RefusalCode::InvalidArgument));
    let unknown = h.apply(Command::ScheduleMaintenance {
        target: MaintenanceTarget::Site(9),
        start_ms: 10_000,
        end_ms: 20_000,
        reason: String::new(),
    });
    assert_eq!(refused_code(&unknown), Some(RefusalCode::NotFound));

    let phase = |window_id, phase| Command::MaintenancePhase { window_id, phase };
    let early_end = h.apply(phase(1, MaintenancePhase::Ended));
    assert_eq!(
        refused_code(&early_end),
        Some(RefusalCode::FailedPrecondition)
    );
    h.apply(phase(1, MaintenancePhase::Started));
    assert_eq!(
        h.state.windows().next().unwrap().status,
        WindowStatus::Active
    );
    // Cancelling an active window ends it now; the leader then undrains.
    let cancelled = h.apply(Command::CancelMaintenance { window_id: 1 });
    assert!(matches!(cancelled.outcome, Outcome::Window(ref w) if w.end_ms == h.now_ms));
    h.apply(phase(1, MaintenancePhase::Ended));
    assert_eq!(h.state.windows().next().unwrap().status, WindowStatus::Done);
    let again = h.apply(Command::CancelMaintenance { window_id: 1 });
    assert_eq!(refused_code(&again), Some(RefusalCode::FailedPrecondition));

    let second = h.apply(window(40_000, 50_000));
    assert!(matches!(second.outcome, Outcome::Window(ref w) if w.id == 2));
    h.apply(Command::CancelMaintenance { window_id: 2 });
    assert_eq!(
        h.state.windows().last().unwrap().status,
        WindowStatus::Cancelled
    );
    let document = crate::node_info::NodeInfoDocument::from_state(&h.state);
    assert!(
        document.is_none_or(|d| d.maintenance.is_empty()),
        "finished windows leave node info"
    );
}

#[test]
fn a_site_drain_is_node_info_news() {
    let mut h = Harness::new();
    h.state.apply_membership(
        vec![
            (1, "one".into(), "a:1".into(), true),
            (2, "two".into(), "b:1".into(), true),
        ],
        &mut h.changes,
    );
    h.flush();
    let before = h.state.node_info().epoch;
    h.apply(Command::SetSiteDraining {
        site_id: 2,
        draining: true,
    });
    assert!(h.state.sites().any(|(id, site)| *id == 2 && site.draining));
    assert_eq!(h.state.node_info().epoch, before + 1);
    h.apply(Command::SetSiteDraining {
        site_id: 2,
        draining: true,
    });
    assert_eq!(
        h.state.node_info().epoch,
        before + 1,
        "no change, no new epoch"
    );
    // A drained site stays drained across membership changes.
    h.state.apply_membership(
        vec![
            (1, "one".into(), "a:1".into(), true),
            (2, "two".into(), "b:2".into(), true),
        ],
        &mut h.changes,
    );
    assert!(h.state.sites().any(|(id, site)| *id == 2 && site.draining));
    let unknown = h.apply(Command::SetSiteDraining {
        site_id: 7,
        draining: true,
    });
    assert_eq!(refused_code(&unknown), Some(RefusalCode::NotFound));
}

#[test]
fn the_audit_log_keeps_who_did_what_and_is_bounded() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    h.apply(attach("h1"));
    let records: Vec<&AuditRecord> = h.state.audit().collect();
    assert_eq!(
        records.len(),
        1,
        "attaches are not admin actions: {records:?}"
    );
    assert_eq!(records[0].actor, "admin:test");
    assert_eq!(records[0].action, "register relay a");
    assert_eq!(records[0].result, "ok");
    let refused = h.apply(Command::RemoveRelay {
        relay_id: relay_id("a"),
    });
    assert!(refused_code(&refused).is_some());
    let last = h.state.audit().next_back().unwrap();
    assert!(last.result.starts_with("refused"), "{last:?}");

    for i in 0..AUDIT_RECORDS_MAX + 5 {
        h.apply(Command::RecordAudit {
            action: format!("action {i}"),
            result: "ok".into(),
        });
    }
    assert_eq!(h.state.audit().count(), AUDIT_RECORDS_MAX);
    assert_eq!(
        h.state.audit().next_back().unwrap().action,
        format!("action {}", AUDIT_RECORDS_MAX + 4)
    );
    assert_eq!(
        h.state.audit().next().unwrap().action,
        "action 5",
        "the oldest went first"
    );
    assert_eq!(
        State::from_rows(h.mirror.iter()).unwrap().audit().count(),
        AUDIT_RECORDS_MAX,
        "trimmed records leave the store too"
    );
}

/// A backup of `h` as rows, as `snapshot save` writes them.
fn backup_rows(h: &Harness) -> Vec<(Vec<u8>, Vec<u8>)> {
    h.state.rows().collect()
}

#[test]
fn a_restore_replaces_the_state_keeps_the_membership_and_raises_the_era() {
    use crate::command::NewSigningKey;
    let key = |cluster: &str, id: u64| NewSigningKey {
        cluster_id: cluster.into(),
        key_id: id,
        public_key: vec![id as u8; 32],
        sealed_private_key: vec![1; 40],
        endorsement: None,
    };
    let mut lost = Harness::new();
    lost.apply(Command::AddSigningKey(key("lost", 1)));
    lost.apply(registration("a", "", 100, 1));
    for i in 0..50 {
        lost.apply(attach(&format!("h{i}")));
    }
    let backup = backup_rows(&lost);

    let mut h = Harness::new();
    h.state
        .apply_membership(vec![(5, "new".into(), "n:1".into(), true)], &mut h.changes);
    h.flush();
    h.apply(Command::AddSigningKey(key("rebuilt", 1)));
    h.apply(registration("z", "", 10, 1));
    let early = h.apply(Command::RestoreRows {
        rows: backup[..1].to_vec(),
    });
    assert_eq!(refused_code(&early), Some(RefusalCode::FailedPrecondition));

    h.apply(Command::RestoreBegin {
        backup_era: 0,
        rows_expected: backup.len() as u64,
    });
    for chunk in backup.chunks(7) {
        let reply = h.apply(Command::RestoreRows {
            rows: chunk.to_vec(),
        });
        assert!(
            matches!(reply.outcome, Outcome::Restore { .. }),
            "{reply:?}"
        );
    }
    assert_eq!(
        h.state.relay(&relay_id("z")).map(|r| r.route_count),
        Some(0),
        "staged rows change nothing yet"
    );
    assert!(h.route_relay("h0").is_none());
    let replayed = h.apply(Command::RestoreRows {
        rows: backup[..3].to_vec(),
    });
    assert!(
        matches!(replayed.outcome, Outcome::Restore { rows_received, .. } if rows_received == backup.len() as u64)
    );

    let reply = h.apply(Command::RestoreCommit {
        keep_backup_keys: false,
    });
    let Outcome::Restored { era, routes } = reply.outcome else {
        panic!("{reply:?}")
    };
    assert_eq!((era, routes), (1, 50));
    for i in 0..50 {
        assert_eq!(h.route_relay(&format!("h{i}")).as_deref(), Some("a"));
        assert_eq!(
            h.state
                .route(&host_id(&format!("h{i}")))
                .unwrap()
                .generation,
            lost.state
                .route(&host_id(&format!("h{i}")))
                .unwrap()
                .generation
        );
    }
    assert!(
        h.state.relay(&relay_id("z")).is_none(),
        "the backup's relays only"
    );
    assert_eq!(
        h.state.sites().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![5],
        "this cluster's sites"
    );
    assert_eq!(h.state.node_info().cluster_id, "rebuilt");
    assert_eq!(h.state.node_info().keys[0].public_key, vec![1; 32]);
    assert!(h.state.restore().is_none());
    assert_eq!(
        h.state.audit().next_back().unwrap().action,
        "commit the restore, signing with this cluster's keys"
    );
    assert_eq!(
        State::from_rows(h.mirror.iter())
            .unwrap()
            .rows()
            .collect::<Vec<_>>(),
        h.state.rows().collect::<Vec<_>>()
    );

    // A second restore of the same backup raises the era again, and may keep its keys.
    h.apply(Command::RestoreBegin {
        backup_era: 0,
        rows_expected: backup.len() as u64,
    });
    let incomplete = h.apply(Command::RestoreCommit {
        keep_backup_keys: true,
    });
    assert_eq!(
        refused_code(&incomplete),
        Some(RefusalCode::FailedPrecondition)
    );
    h.apply(Command::RestoreRows {
        rows: backup.clone(),
    });
    let reply = h.apply(Command::RestoreCommit {
        keep_backup_keys: true,
    });
    assert!(
        matches!(reply.outcome, Outcome::Restored { era: 2, .. }),
        "{reply:?}"
    );
    assert_eq!(h.state.node_info().cluster_id, "rebuilt");
    assert_eq!(h.state.node_info().keys.len(), 1);
}

#[test]
fn a_restore_refuses_foreign_rows_and_only_operators_restore() {
    let mut h = Harness::new();
    h.apply(Command::RestoreBegin {
        backup_era: 0,
        rows_expected: 2,
    });
    let garbage = h.apply(Command::RestoreRows {
        rows: vec![(vec![0xEE, 1], vec![1])],
    });
    assert_eq!(refused_code(&garbage), Some(RefusalCode::InvalidArgument));
    let too_many = h.apply(Command::RestoreRows {
        rows: vec![
            (RowKey::Meta.encode(), vec![]),
            (RowKey::NodeInfo.encode(), vec![]),
            (RowKey::Relay(relay_id("x")).encode(), vec![]),
        ],
    });
    assert_eq!(refused_code(&too_many), Some(RefusalCode::InvalidArgument));
    let undecodable = h.apply(Command::RestoreRows {
        rows: vec![
            (RowKey::Meta.encode(), vec![0xFF]),
            (RowKey::NodeInfo.encode(), vec![0xFF]),
        ],
    });
    assert_eq!(
        refused_code(&undecodable),
        Some(RefusalCode::InvalidArgument),
        "rows that do not decode are refused as they arrive"
    );
    assert_eq!(h.state.restore().map(|r| r.rows_received), Some(0));
    // Rows that decode but make no sound state are refused at commit.
    let ghost_route = RouteRecord {
        relay_id: relay_id("ghost"),
        generation: 1,
        since_ms: 0,
        preferred_region: String::new(),
    };
    let meta = State::new().row_value(&RowKey::Meta).unwrap();
    h.apply(Command::RestoreRows {
        rows: vec![
            (RowKey::Meta.encode(), meta),
            (
                RowKey::Route(host_id("h")).encode(),
                encode_value(&ghost_route),
            ),
        ],
    });
    let unsound = h.apply(Command::RestoreCommit {
        keep_backup_keys: false,
    });
    assert_eq!(
        refused_code(&unsound),
        Some(RefusalCode::InvalidArgument),
        "a route to an unknown relay is refused at commit"
    );
    assert!(
        h.state.restore().is_some(),
        "a refused commit changes nothing"
    );
    h.apply(Command::RestoreAbort);
    assert!(h.state.restore().is_none());
    assert_eq!(
        State::from_rows(h.mirror.iter())
            .unwrap()
            .restore()
            .map(|r| r.rows_received),
        None
    );

    h.index += 1;
    let proposal = Proposal {
        request_id: RequestId::NONE,
        actor: Actor::new(ActorKind::Relay, "r1"),
        issued_at_ms: h.now_ms,
        command: Command::RestoreBegin {
            backup_era: 0,
            rows_expected: 1,
        },
    };
    let reply = h.state.apply(h.index, &proposal, &mut h.changes);
    assert_eq!(refused_code(&reply), Some(RefusalCode::PermissionDenied));
}

#[test]
fn a_drain_without_room_elsewhere_is_refused_unless_forced() {
    let mut h = Harness::new();
    h.apply(registration("a", "", 10, 1));
    for i in 0..6 {
        h.apply(attach(&format!("h{i}")));
    }
    h.apply(registration("b", "", 4, 1));
    let drain = |force| Command::StartDrain {
        relay_id: relay_id("a"),
        hosts_per_second: 100,
        deadline_ms: 0,
        force,
    };
    let refused = h.apply(drain(false));
    assert_eq!(
        refused_code(&refused),
        Some(RefusalCode::FailedPrecondition)
    );
    let Outcome::Refused(refusal) = &refused.outcome else {
        unreachable!()
    };
    assert!(
        refusal.message.contains("room for 4"),
        "{}",
        refusal.message
    );
    assert_eq!(
        h.state.relay(&relay_id("a")).unwrap().state(),
        RelayState::Active,
        "nothing changed"
    );

    h.apply(drain(true));
    let moved = h.apply(Command::DrainBatch {
        relay_id: relay_id("a"),
        hosts_max: 6,
    });
    assert!(
        matches!(
            moved.outcome,
            Outcome::RelayMoved {
                hosts_moved: 4,
                hosts_unplaced: 2,
                ..
            }
        ),
        "{moved:?}"
    );
    for i in 0..6 {
        assert!(
            h.route_relay(&format!("h{i}")).is_some(),
            "a host without room keeps its route"
        );
    }
}

#[test]
fn tombstones_of_removed_relays_are_bounded_and_the_oldest_go_first() {
    let mut h = Harness::new();
    let extra = 2;
    for n in 0..super::relays::REMOVED_RELAYS_MAX + extra {
        let name = format!("r{n}");
        let registered = h.apply(registration(&name, "", 10, 1));
        assert!(!matches!(registered.outcome, Outcome::Refused(_)));
        let removed = h.apply(Command::RemoveRelay {
            relay_id: relay_id(&name),
        });
        assert!(
            !matches!(removed.outcome, Outcome::Refused(_)),
            "{removed:?}"
        );
    }
    assert_eq!(
        h.state.removed_relays.len(),
        super::relays::REMOVED_RELAYS_MAX
    );
    for n in 0..extra {
        assert!(!h.state.is_removed_relay(&relay_id(&format!("r{n}"))));
    }
    assert!(h.state.is_removed_relay(&relay_id(&format!("r{extra}"))));
    assert_eq!(h.mirror, h.state.rows().collect::<BTreeMap<_, _>>());
}
