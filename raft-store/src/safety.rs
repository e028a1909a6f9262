//! The safety rule for admin steps, as a pure function.
//!
//! Refuse (unless forced) any removal, drain or leader transfer after which
//! the loss of its target would leave fewer healthy voters than a quorum.
//! With three healthy sites, draining one is allowed; with one already down,
//! draining a second is refused.

use std::collections::BTreeSet;

/// An admin step on a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Remove a voter from the membership.
    RemoveVoter(u64),
    /// Take a site out of client service (it keeps voting, but may be stopped).
    DrainSite(u64),
    /// Hand leadership to a site.
    TransferLeader(u64),
    /// Make a learner a voter.
    PromoteLearner(u64),
}

/// A majority of `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Checks a step against the voters and which of them are healthy.
/// Returns why it is unsafe, if it is.
pub fn check_step(
    voters: &BTreeSet<u64>,
    healthy: &BTreeSet<u64>,
    step: Step,
) -> Result<(), String> {
    let healthy_voters: BTreeSet<u64> = voters.intersection(healthy).copied().collect();
    let (after, lost, what) = match step {
        Step::RemoveVoter(target) => {
            let mut after = voters.clone();
            after.remove(&target);
            (after, Some(target), format!("removing site {target}"))
        }
        Step::DrainSite(target) => (
            voters.clone(),
            Some(target),
            format!("draining site {target}"),
        ),
        Step::TransferLeader(target) => (
            voters.clone(),
            Some(target),
            format!("handing leadership to site {target}"),
        ),
        Step::PromoteLearner(target) => {
            let mut after = voters.clone();
            after.insert(target);
            (after, None, format!("promoting site {target}"))
        }
    };
    let mut remaining: BTreeSet<u64> = healthy_voters.intersection(&after).copied().collect();
    if let Step::PromoteLearner(target) = step
        && healthy.contains(&target)
    {
        remaining.insert(target);
    }
    if let Some(lost) = lost {
        remaining.remove(&lost);
    }
    let needed = quorum(after.len());
    if after.is_empty() {
        return Err(format!("{what} would leave no voter"));
    }
    if remaining.len() < needed {
        let down: Vec<u64> = voters.difference(&healthy_voters).copied().collect();
        return Err(format!(
            "{what} would leave {} healthy voter(s) if it is lost, fewer than a quorum of {needed} (of {} voters; down now: {down:?}); use --force to do it anyway",
            remaining.len(),
            after.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<u64> {
        ids.iter().copied().collect()
    }

    #[test]
    fn golden_cases() {
        let three = set(&[1, 2, 3]);
        // Three healthy: draining, transferring to or removing one is allowed.
        assert!(check_step(&three, &three, Step::DrainSite(2)).is_ok());
        assert!(check_step(&three, &three, Step::TransferLeader(2)).is_ok());
        assert!(check_step(&three, &three, Step::RemoveVoter(2)).is_ok());
        // One down: draining or removing a second healthy one is refused...
        let two_up = set(&[1, 2]);
        assert!(check_step(&three, &two_up, Step::DrainSite(2)).is_err());
        assert!(check_step(&three, &two_up, Step::RemoveVoter(2)).is_err());
        assert!(check_step(&three, &two_up, Step::TransferLeader(2)).is_err());
        // ...but removing the one that is down is fine.
        assert!(check_step(&three, &two_up, Step::RemoveVoter(3)).is_ok());
        // Five voters, one down: one more may go.
        let five = set(&[1, 2, 3, 4, 5]);
        assert!(check_step(&five, &set(&[1, 2, 3, 4]), Step::DrainSite(1)).is_ok());
        assert!(check_step(&five, &set(&[1, 2, 3]), Step::DrainSite(1)).is_err());
        // Promoting a dead learner into three voters makes four with a quorum of three.
        assert!(check_step(&three, &set(&[1, 2]), Step::PromoteLearner(4)).is_err());
        assert!(check_step(&three, &set(&[1, 2, 3, 4]), Step::PromoteLearner(4)).is_ok());
        // Never remove the last voter.
        assert!(check_step(&set(&[1]), &set(&[1]), Step::RemoveVoter(1)).is_err());
    }

    proptest! {
        /// Whatever the step, an allowed step leaves a healthy quorum even
        /// when its target is lost afterwards.
        #[test]
        fn allowed_steps_keep_a_healthy_quorum(
            voters in prop::collection::btree_set(1u64..8, 1..7),
            healthy in prop::collection::btree_set(1u64..8, 0..7),
            target in 1u64..8,
            kind in 0u8..3,
        ) {
            let step = match kind { 0 => Step::RemoveVoter(target), 1 => Step::DrainSite(target), _ => Step::TransferLeader(target) };
            if check_step(&voters, &healthy, step).is_ok() {
                let mut after = voters.clone();
                if let Step::RemoveVoter(t) = step { after.remove(&t); }
                let alive = after.iter().filter(|v| healthy.contains(v) && **v != target).count();
                prop_assert!(alive >= quorum(after.len()));
            }
        }
    }
}
