//! The history checker of the fault tests (issue 9): operations recorded by
//! clients, split per host id, each part checked for linearizability
//! against the model of one host's route.
//!
//! Written rather than taken from a crate: stateright's
//! `LinearizabilityTester` wants every operation fed in order to a tester
//! that owns the model, with no way to say an operation timed out (it has
//! no indeterminate return), and it drags in its model checker and explorer.
//! porcupine, the reference this follows, is Go. The search here is
//! porcupine's (Wing and Gong with Lowe's cache), about 150 lines, and is
//! tested below on histories that are and are not linearizable.

mod route_model;
mod wgl;

pub use route_model::HostRoute;
pub use route_model::Route;
pub use route_model::RouteModel;
pub use route_model::RouteOperation;
pub use route_model::RouteState;
pub use wgl::Event;
pub use wgl::Model;
pub use wgl::SEARCH_STEPS_MAX;
pub use wgl::Verdict;
pub use wgl::check;

use std::collections::BTreeMap;

/// Checks a whole history: per host (operations on different hosts commute,
/// so the history is linearizable if and only if each host's part is).
/// Returns the verdict of every host that is not `Linearizable`.
pub fn check_per_host(
    history: impl IntoIterator<Item = (String, Event<RouteOperation>)>,
) -> BTreeMap<String, Verdict> {
    let mut parts: BTreeMap<String, Vec<Event<RouteOperation>>> = BTreeMap::new();
    for (host, event) in history {
        parts.entry(host).or_default().push(event);
    }
    parts
        .into_iter()
        .map(|(host, events)| (host, check(&RouteModel, &events)))
        .filter(|(_, verdict)| *verdict != Verdict::Linearizable)
        .collect()
}

#[cfg(test)]
mod tests;
