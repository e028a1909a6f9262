//! One host's route as a sequential object, for the checker.
//!
//! Clients attach, detach and resolve (linearizable reads, and local reads
//! placed in time by the staleness they declared). The cluster may
//! also move a host on its own (a relay down, a drain), which no client
//! invokes: the model allows such a move before any operation, as long as
//! it gives a new relay-and-generation with a higher generation, because a
//! move always re-places. What it does not allow is what would break the
//! promise: a read that sees no route after an attach was acknowledged (a
//! lost write), a route after a detach was acknowledged, a generation older
//! than one already seen (a stale read), or an attach that hands out a
//! generation that is not new.

use super::wgl::Model;

/// A route as an answer carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// The relay, as a small number (the workload names relays).
    pub relay: u32,
    /// The route's generation.
    pub generation: u64,
}

/// One client operation on the host and what it answered; `None` answers
/// are indeterminate (the client timed out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteOperation {
    /// Attach; the route given.
    Attach(Option<Route>),
    /// Detach; the generation of the route removed (`Some(None)`: the host
    /// had none).
    Detach(Option<Option<u64>>),
    /// A linearizable resolve; the route seen (`None`: not attached).
    /// Timed-out reads change nothing and are left out of the history.
    Resolve(Option<Route>),
    /// A local resolve: the route seen, and the staleness the site declared
    /// (its event's invocation is moved back by as much, so it may take
    /// effect that early and no earlier).
    ResolveLocal {
        /// The route seen.
        seen: Option<Route>,
        /// The staleness declared.
        staleness_ms: u64,
    },
}

/// What the host's route may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteState {
    /// Not attached.
    Detached,
    /// This route.
    Known(Route),
    /// Attached by an attach whose answer was lost: some route with a
    /// generation above `above`.
    Unknown {
        /// The highest generation seen before it.
        above: u64,
    },
}

/// The state and the highest generation the host has been seen with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostRoute {
    /// Where the route is.
    pub route: RouteState,
    /// Generations only rise: the highest one seen so far.
    pub floor: u64,
}

/// The sequential specification of one host's route.
pub struct RouteModel;

impl Model for RouteModel {
    type State = HostRoute;
    type Operation = RouteOperation;

    fn init(&self) -> HostRoute {
        HostRoute {
            route: RouteState::Detached,
            floor: 0,
        }
    }

    fn step(&self, state: &HostRoute, operation: &RouteOperation) -> Option<HostRoute> {
        match operation {
            RouteOperation::Attach(Some(route)) => attach(state, *route),
            RouteOperation::Attach(None) => Some(HostRoute {
                route: match state.route {
                    RouteState::Detached => RouteState::Unknown { above: state.floor },
                    other => other,
                },
                floor: state.floor,
            }),
            RouteOperation::Detach(Some(removed)) => detach(state, *removed),
            RouteOperation::Detach(None) => Some(HostRoute {
                route: RouteState::Detached,
                floor: state.floor,
            }),
            RouteOperation::Resolve(seen) => resolve(state, *seen),
            RouteOperation::ResolveLocal { seen, .. } => resolve(state, *seen),
        }
    }
}

/// Whether the host's route may have become `route` by a move of the
/// cluster's own (or is it already).
fn reachable(state: &HostRoute, route: Route) -> bool {
    match state.route {
        RouteState::Detached => false,
        RouteState::Known(current) => current == route || route.generation > current.generation,
        RouteState::Unknown { above } => route.generation > above,
    }
}

fn attach(state: &HostRoute, route: Route) -> Option<HostRoute> {
    let keeps = reachable(state, route);
    let new_placement = route.generation > state.floor;
    (keeps || new_placement).then_some(HostRoute {
        route: RouteState::Known(route),
        floor: state.floor.max(route.generation),
    })
}

fn detach(state: &HostRoute, removed: Option<u64>) -> Option<HostRoute> {
    let possible = match (state.route, removed) {
        (RouteState::Detached, None) => true,
        (RouteState::Known(current), Some(generation)) => generation >= current.generation,
        (RouteState::Unknown { above }, Some(generation)) => generation > above,
        _ => false,
    };
    possible.then_some(HostRoute {
        route: RouteState::Detached,
        floor: state.floor.max(removed.unwrap_or(0)),
    })
}

fn resolve(state: &HostRoute, seen: Option<Route>) -> Option<HostRoute> {
    match seen {
        None => (state.route == RouteState::Detached).then_some(*state),
        Some(route) => reachable(state, route).then_some(HostRoute {
            route: RouteState::Known(route),
            floor: state.floor.max(route.generation),
        }),
    }
}
