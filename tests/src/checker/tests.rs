//! The checker on hand-made histories: it must accept the linearizable ones
//! and reject the others, and accept every history a sequential execution
//! produces, however its operations overlap.

use proptest::prelude::*;

use super::*;

fn route(relay: u32, generation: u64) -> Route {
    Route { relay, generation }
}

fn op(operation: RouteOperation, invoked_at: u64, returned_at: u64) -> Event<RouteOperation> {
    Event {
        operation,
        invoked_at,
        returned_at: Some(returned_at),
    }
}

fn timed_out(operation: RouteOperation, invoked_at: u64) -> Event<RouteOperation> {
    Event {
        operation,
        invoked_at,
        returned_at: None,
    }
}

fn verdict(history: &[Event<RouteOperation>]) -> Verdict {
    check(&RouteModel, history)
}

fn rejected(history: &[Event<RouteOperation>]) -> bool {
    matches!(verdict(history), Verdict::NotLinearizable { .. })
}

use RouteOperation::Attach;
use RouteOperation::Detach;
use RouteOperation::Resolve;

#[test]
fn a_sequential_history_that_follows_the_model_is_accepted() {
    let history = [
        op(Attach(Some(route(1, 1))), 0, 10),
        op(Resolve(Some(route(1, 1))), 20, 30),
        op(Detach(Some(Some(1))), 40, 50),
        op(Resolve(None), 60, 70),
        op(Attach(Some(route(2, 2))), 80, 90),
    ];
    assert_eq!(verdict(&history), Verdict::Linearizable);
    assert_eq!(verdict(&[]), Verdict::Linearizable);
}

#[test]
fn a_lost_write_is_rejected() {
    // The attach was acknowledged; a later linearizable read finds nothing.
    assert!(rejected(&[
        op(Attach(Some(route(1, 1))), 0, 10),
        op(Resolve(None), 20, 30),
    ]));
}

#[test]
fn a_stale_read_is_rejected() {
    // Generation 5 was seen; a read that starts later sees generation 3.
    assert!(rejected(&[
        op(Attach(Some(route(1, 3))), 0, 10),
        op(Resolve(Some(route(2, 5))), 20, 30),
        op(Resolve(Some(route(1, 3))), 40, 50),
    ]));
}

#[test]
fn a_route_after_an_acknowledged_detach_is_rejected() {
    assert!(rejected(&[
        op(Attach(Some(route(1, 1))), 0, 10),
        op(Detach(Some(Some(1))), 20, 30),
        op(Resolve(Some(route(1, 1))), 40, 50),
    ]));
}

#[test]
fn an_attach_that_hands_out_an_old_generation_is_rejected() {
    assert!(rejected(&[
        op(Attach(Some(route(1, 4))), 0, 10),
        op(Detach(Some(Some(4))), 20, 30),
        op(Attach(Some(route(2, 4))), 40, 50),
    ]));
}

#[test]
fn reads_concurrent_with_an_attach_may_see_before_or_after_but_not_go_back() {
    // The attach spans both reads: before-then-after is a legal order...
    assert_eq!(
        verdict(&[
            op(Attach(Some(route(1, 1))), 0, 100),
            op(Resolve(None), 10, 20),
            op(Resolve(Some(route(1, 1))), 30, 40),
        ]),
        Verdict::Linearizable
    );
    // ...after-then-before is not: once seen, the route cannot vanish.
    assert!(rejected(&[
        op(Attach(Some(route(1, 1))), 0, 100),
        op(Resolve(Some(route(1, 1))), 10, 20),
        op(Resolve(None), 30, 40),
    ]));
}

#[test]
fn overlapping_reads_may_be_ordered_either_way() {
    assert_eq!(
        verdict(&[
            op(Attach(Some(route(1, 1))), 0, 10),
            op(Resolve(Some(route(2, 2))), 20, 60),
            op(Resolve(Some(route(1, 1))), 30, 50),
        ]),
        Verdict::Linearizable,
        "the read of generation 1 may come first: they overlap"
    );
}

#[test]
fn a_move_by_the_cluster_between_reads_is_allowed_only_upwards() {
    assert_eq!(
        verdict(&[
            op(Attach(Some(route(1, 1))), 0, 10),
            op(Resolve(Some(route(3, 7))), 20, 30),
        ]),
        Verdict::Linearizable,
        "relay 1 went down and the host moved to relay 3 at generation 7"
    );
    assert!(rejected(&[
        op(Attach(Some(route(1, 7))), 0, 10),
        op(Resolve(Some(route(3, 7))), 20, 30),
    ]));
}

#[test]
fn a_timed_out_attach_may_or_may_not_have_happened() {
    assert_eq!(
        verdict(&[timed_out(Attach(None), 0), op(Resolve(None), 20, 30),]),
        Verdict::Linearizable,
        "not yet, or never"
    );
    assert_eq!(
        verdict(&[
            timed_out(Attach(None), 0),
            op(Resolve(None), 20, 30),
            op(Resolve(Some(route(1, 1))), 40, 50),
        ]),
        Verdict::Linearizable,
        "it took effect between the reads"
    );
    assert!(
        rejected(&[
            timed_out(Attach(None), 0),
            op(Resolve(Some(route(1, 1))), 20, 30),
            op(Resolve(None), 40, 50),
        ]),
        "once it is seen to have happened, it cannot be undone"
    );
}

#[test]
fn the_split_per_host_names_only_the_hosts_that_fail() {
    let history = vec![
        ("a".to_owned(), op(Attach(Some(route(1, 1))), 0, 10)),
        ("b".to_owned(), op(Attach(Some(route(1, 2))), 0, 10)),
        ("a".to_owned(), op(Resolve(Some(route(1, 1))), 20, 30)),
        ("b".to_owned(), op(Resolve(None), 20, 30)),
    ];
    let failures = check_per_host(history);
    assert_eq!(failures.keys().collect::<Vec<_>>(), ["b"]);
}

/// A register, the textbook case, to check the search itself.
struct Register;

#[derive(Clone, Debug)]
enum RegisterOp {
    Write(u8),
    Read(u8),
}

impl Model for Register {
    type State = u8;
    type Operation = RegisterOp;

    fn init(&self) -> u8 {
        0
    }

    fn step(&self, state: &u8, operation: &RegisterOp) -> Option<u8> {
        match operation {
            RegisterOp::Write(value) => Some(*value),
            RegisterOp::Read(value) => (value == state).then_some(*state),
        }
    }
}

fn register(operation: RegisterOp, invoked_at: u64, returned_at: u64) -> Event<RegisterOp> {
    Event {
        operation,
        invoked_at,
        returned_at: Some(returned_at),
    }
}

#[test]
fn the_search_backtracks_through_concurrent_writes() {
    use RegisterOp::*;
    // Two concurrent writes; reads see 1 then 2: order w1, r1, w2, r2.
    let fine = [
        register(Write(1), 0, 100),
        register(Write(2), 0, 100),
        register(Read(1), 10, 20),
        register(Read(2), 30, 40),
    ];
    assert_eq!(check(&Register, &fine), Verdict::Linearizable);
    // Reads see 1, 2, 1: no order of two writes gives that.
    let broken = [
        register(Write(1), 0, 100),
        register(Write(2), 0, 100),
        register(Read(1), 10, 20),
        register(Read(2), 30, 40),
        register(Read(1), 50, 60),
    ];
    assert!(matches!(
        check(&Register, &broken),
        Verdict::NotLinearizable { .. }
    ));
}

/// A random sequential execution of the route model, with each operation's
/// interval then stretched at random around its moment: every such history
/// is linearizable by construction, and the checker must say so.
fn sequential_history(seed_ops: &[(u8, u64, u64)]) -> Vec<Event<RouteOperation>> {
    let mut history = Vec::new();
    let mut current: Option<Route> = None;
    let mut last_generation = 0u64;
    for (n, (kind, before, after)) in seed_ops.iter().enumerate() {
        let moment = 1_000 * (n as u64 + 1);
        let operation = match kind % 4 {
            0 => {
                let given = current.unwrap_or_else(|| {
                    last_generation += 1;
                    route(1, last_generation)
                });
                current = Some(given);
                Attach(Some(given))
            }
            1 => {
                let removed = current.take().map(|r| r.generation);
                Detach(Some(removed))
            }
            2 => Resolve(current),
            _ => {
                // The cluster moves the host; only a later read shows it.
                if let Some(moved) = current.as_mut() {
                    last_generation += 1;
                    *moved = route(moved.relay + 1, last_generation);
                }
                Resolve(current)
            }
        };
        history.push(op(
            operation,
            moment.saturating_sub(before % 1_500),
            moment + after % 1_500,
        ));
    }
    history
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn every_stretched_sequential_history_is_accepted(
        ops in prop::collection::vec((any::<u8>(), any::<u64>(), any::<u64>()), 0..14)
    ) {
        let history = sequential_history(&ops);
        prop_assert_eq!(verdict(&history), Verdict::Linearizable);
    }
}
