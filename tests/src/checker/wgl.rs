//! A linearizability checker: Wing and Gong's search with Lowe's cache, as
//! porcupine implements it.
//!
//! A history is a list of operations, each with the time it was invoked and
//! the time it returned (`None`: it timed out, so it may have taken effect
//! at any time after its invocation, or never). The search walks the
//! operations in time order, tries to linearize each call before the first
//! return that follows it, and backtracks when a return comes up whose call
//! could not be placed. A set of (linearized operations, model state) pairs
//! already explored cuts repeated work. The search is exponential in the
//! worst case, so histories are checked per partition (per host id: the
//! P-compositionality split) and each has a step budget.

use std::collections::HashSet;
use std::hash::Hash;

/// A sequential specification: what one operation may return from a state.
pub trait Model {
    /// The state of the object (one host's route, a register, ...).
    type State: Clone + Eq + Hash;
    /// An operation and what it returned (`None` output: unknown, timed out).
    type Operation;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `operation` from `state`, if the operation's output
    /// is possible there; `None` if it is not.
    fn step(&self, state: &Self::State, operation: &Self::Operation) -> Option<Self::State>;
}

/// One operation as a client saw it.
#[derive(Clone, Debug)]
pub struct Event<O> {
    /// What was asked and answered.
    pub operation: O,
    /// When it was invoked (any monotonic unit, e.g. microseconds).
    pub invoked_at: u64,
    /// When it returned; `None` when the client gave up (indeterminate).
    pub returned_at: Option<u64>,
}

/// Most search steps spent on one partition before giving up: the search is
/// exponential in concurrency, and a checker that never ends checks nothing.
pub const SEARCH_STEPS_MAX: u64 = 10_000_000;

/// The checker's verdict on one partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations, within their real-time bounds, is a
    /// legal sequential history.
    Linearizable,
    /// None is. `longest` is how many operations the deepest attempt placed.
    NotLinearizable { longest: usize },
    /// The search ran out of `SEARCH_STEPS_MAX` steps.
    Unknown,
}

/// The end of the live list.
const END: usize = usize::MAX;

#[derive(Clone, Copy, Debug)]
struct Entry {
    operation: usize,
    is_call: bool,
    time: u64,
}

/// Checks one partition's history against `model`.
pub fn check<M: Model>(model: &M, history: &[Event<M::Operation>]) -> Verdict {
    let entries = sorted_entries(history);
    // The live entries as a doubly linked list over `entries`' indexes, in
    // time order, behind a head sentinel at `entries.len()`.
    let count = entries.len();
    let head = count;
    let mut next = vec![END; count + 1];
    let mut prev = vec![END; count + 1];
    for i in 0..count {
        prev[i] = if i == 0 { head } else { i - 1 };
        next[i] = if i + 1 < count { i + 1 } else { END };
    }
    if count > 0 {
        next[head] = 0;
    }
    let call_of: Vec<usize> = call_positions(&entries, history.len());
    let return_of: Vec<usize> = return_positions(&entries, history.len());

    let mut linearized = vec![false; history.len()];
    let mut placed = 0usize;
    let mut longest = 0usize;
    let mut state = model.init();
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut seen: HashSet<(Vec<bool>, M::State)> = HashSet::new();
    let mut cursor = next[head];
    let mut steps = 0u64;
    while next[head] != END {
        steps += 1;
        if steps > SEARCH_STEPS_MAX {
            return Verdict::Unknown;
        }
        let entry = entries[cursor];
        if entry.is_call {
            let operation = entry.operation;
            let stepped = model.step(&state, &history[operation].operation);
            let fresh = stepped.as_ref().is_some_and(|after| {
                linearized[operation] = true;
                let fresh = seen.insert((linearized.clone(), after.clone()));
                linearized[operation] = false;
                fresh
            });
            if let (Some(after), true) = (stepped, fresh) {
                stack.push((operation, state));
                state = after;
                linearized[operation] = true;
                placed += 1;
                longest = longest.max(placed);
                unlink(&mut next, &mut prev, call_of[operation]);
                unlink(&mut next, &mut prev, return_of[operation]);
                cursor = next[head];
            } else {
                cursor = next[cursor];
            }
        } else {
            // A return whose call is not placed: undo the last placement.
            let Some((operation, before)) = stack.pop() else {
                return Verdict::NotLinearizable { longest };
            };
            state = before;
            linearized[operation] = false;
            placed -= 1;
            relink(&mut next, &mut prev, return_of[operation]);
            relink(&mut next, &mut prev, call_of[operation]);
            cursor = next[call_of[operation]];
        }
        assert!(
            cursor != END || next[head] == END,
            "a live list always ends with a return"
        );
    }
    Verdict::Linearizable
}

/// Calls and returns in time order; at equal times calls first, so that
/// operations that touch are taken as concurrent. Indeterminate operations
/// return after everything else.
fn sorted_entries<O>(history: &[Event<O>]) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::with_capacity(history.len() * 2);
    for (operation, event) in history.iter().enumerate() {
        assert!(
            event.returned_at.is_none_or(|at| at >= event.invoked_at),
            "operation {operation} returned before it was invoked"
        );
        entries.push(Entry {
            operation,
            is_call: true,
            time: event.invoked_at,
        });
        entries.push(Entry {
            operation,
            is_call: false,
            time: event.returned_at.unwrap_or(u64::MAX),
        });
    }
    entries.sort_by_key(|e| (e.time, !e.is_call, e.operation));
    entries
}

fn call_positions(entries: &[Entry], operations: usize) -> Vec<usize> {
    let mut positions = vec![0; operations];
    for (position, entry) in entries.iter().enumerate() {
        if entry.is_call {
            positions[entry.operation] = position;
        }
    }
    positions
}

fn return_positions(entries: &[Entry], operations: usize) -> Vec<usize> {
    let mut positions = vec![0; operations];
    for (position, entry) in entries.iter().enumerate() {
        if !entry.is_call {
            positions[entry.operation] = position;
        }
    }
    positions
}

fn unlink(next: &mut [usize], prev: &mut [usize], at: usize) {
    let (before, after) = (prev[at], next[at]);
    next[before] = after;
    if after != END {
        prev[after] = before;
    }
}

/// Puts `at` back where `unlink` took it from; undone in reverse order.
fn relink(next: &mut [usize], prev: &mut [usize], at: usize) {
    let (before, after) = (prev[at], next[at]);
    next[before] = at;
    if after != END {
        prev[after] = at;
    }
}
