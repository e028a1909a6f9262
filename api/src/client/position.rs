//! Where a followed watch is: the index it resumes after, and what it
//! already delivered of the index it may be part-way through.
//!
//! One log entry can make several changes a watch carries, all at the same
//! index: a drain batch moves many hosts on and off one relay. A site
//! replays only the changes after the index a watch resumes from, so a
//! watch that broke in the middle of an index and resumed after it would
//! never hear the rest of it. So the watch resumes from the last index it
//! saw *completely* — the one before the last change it delivered, or the
//! one before a progress heartbeat's — and on the replay of the part-seen
//! index skips the changes it already delivered: none is lost, none comes
//! twice.
//!
//! Pure: the follower feeds it what the stream says.

use std::collections::HashSet;

/// Most changes of one index remembered for skipping on a replay. One log
/// entry moves at most 10,000 hosts (a drain batch), two changes each on a
/// relay's watch; past this a replay may deliver a change twice, which a
/// relay's route table takes as the same change.
pub const INDEX_CHANGES_REMEMBERED_MAX: usize = 32_768;

/// What to do with a change the stream sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// New to the caller.
    Deliver,
    /// Already delivered (a replay after a reopen, or older than the
    /// position).
    Skip,
}

/// The index a watch has seen all of, and the one it may have seen part of.
#[derive(Debug, Default)]
pub struct Position {
    complete: u64,
    partial: Option<Partial>,
    /// Receiving the full current state after an open from index 0.
    initial: bool,
}

#[derive(Debug)]
struct Partial {
    index: u64,
    delivered: HashSet<String>,
    /// The stream was reopened: changes at `index` may come again.
    replaying: bool,
}

impl Position {
    /// The index to reopen the watch after; 0 for the full current state.
    pub fn resume_after(&self) -> u64 {
        self.complete
    }

    /// A stream opened from `resume_after`. True when it starts from the
    /// full state (the caller must drop what it holds).
    pub fn opened(&mut self) -> bool {
        if self.complete == 0 {
            self.partial = None;
            self.initial = true;
            return true;
        }
        if let Some(partial) = &mut self.partial {
            partial.replaying = true;
        }
        false
    }

    /// The stream ended or was left. Part of the full state is no state
    /// at all: that starts again from index 0.
    pub fn broke(&mut self) {
        if self.initial {
            self.reset();
        }
    }

    /// The site no longer holds the history after our index: start again
    /// from the full state.
    pub fn reset(&mut self) {
        *self = Position::default();
    }

    /// A change at `index`, told apart from other changes of the same
    /// index by `key`; `ends_initial` marks the last message of the full
    /// state.
    pub fn on_change(&mut self, index: u64, key: String, ends_initial: bool) -> Verdict {
        if self.initial {
            if ends_initial {
                self.initial = false;
                self.complete = index;
            }
            return Verdict::Deliver;
        }
        if index <= self.complete {
            return Verdict::Skip;
        }
        match &mut self.partial {
            Some(partial) if partial.index == index => {
                if partial.replaying && partial.delivered.contains(&key) {
                    return Verdict::Skip;
                }
                if partial.delivered.len() < INDEX_CHANGES_REMEMBERED_MAX {
                    partial.delivered.insert(key);
                }
                Verdict::Deliver
            }
            Some(partial) if partial.index > index => Verdict::Skip,
            _ => {
                self.complete = index - 1;
                self.partial = Some(Partial {
                    index,
                    delivered: HashSet::from([key]),
                    replaying: false,
                });
                Verdict::Deliver
            }
        }
    }

    /// A progress heartbeat at `index`: the site has sent everything
    /// before it (it may be part-way through `index` itself).
    pub fn on_progress(&mut self, index: u64) {
        if self.initial || index == 0 {
            return;
        }
        let done = index - 1;
        if done <= self.complete {
            return;
        }
        self.complete = done;
        if self.partial.as_ref().is_some_and(|p| p.index <= done) {
            self.partial = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(host: &str) -> String {
        host.to_owned()
    }

    /// A watch opened from 0 that has taken the full state at index 10.
    fn synced_at_10() -> Position {
        let mut position = Position::default();
        assert!(position.opened());
        assert_eq!(position.on_change(10, key("a"), false), Verdict::Deliver);
        assert_eq!(
            position.on_change(10, String::new(), true),
            Verdict::Deliver
        );
        assert_eq!(position.resume_after(), 10);
        position
    }

    #[test]
    fn a_break_in_the_middle_of_an_index_replays_the_rest_of_it_once() {
        let mut position = synced_at_10();
        // Index 12 moves three hosts; the stream breaks after two.
        assert_eq!(position.on_change(12, key("x"), false), Verdict::Deliver);
        assert_eq!(position.on_change(12, key("y"), false), Verdict::Deliver);
        position.broke();
        assert_eq!(position.resume_after(), 11, "index 12 is not complete");
        assert!(!position.opened());
        // The new site replays index 12 in full: x and y are skipped, z is new.
        assert_eq!(position.on_change(12, key("x"), false), Verdict::Skip);
        assert_eq!(position.on_change(12, key("y"), false), Verdict::Skip);
        assert_eq!(position.on_change(12, key("z"), false), Verdict::Deliver);
        assert_eq!(position.on_change(13, key("x"), false), Verdict::Deliver);
        assert_eq!(position.resume_after(), 12);
    }

    #[test]
    fn a_progress_heartbeat_completes_only_the_indexes_before_its_own() {
        let mut position = synced_at_10();
        assert_eq!(position.on_change(12, key("x"), false), Verdict::Deliver);
        // A heartbeat sent between two changes of index 12.
        position.on_progress(12);
        assert_eq!(position.resume_after(), 11);
        position.on_progress(13);
        assert_eq!(position.resume_after(), 12);
        // Index 12 is complete: a change at it is old news.
        assert_eq!(position.on_change(12, key("y"), false), Verdict::Skip);
    }

    #[test]
    fn a_break_during_the_full_state_starts_it_again() {
        let mut position = Position::default();
        assert!(position.opened());
        assert_eq!(position.on_change(10, key("a"), false), Verdict::Deliver);
        position.broke();
        assert_eq!(position.resume_after(), 0);
        assert!(position.opened(), "the caller drops what it holds");
    }

    #[test]
    fn changes_already_covered_are_skipped() {
        let mut position = synced_at_10();
        assert_eq!(position.on_change(9, key("old"), false), Verdict::Skip);
        assert_eq!(position.on_change(10, key("old"), false), Verdict::Skip);
        position.on_progress(20);
        assert_eq!(position.on_change(19, key("old"), false), Verdict::Skip);
        assert_eq!(position.on_change(20, key("new"), false), Verdict::Deliver);
    }

    #[test]
    fn changes_of_a_part_seen_index_that_come_live_are_delivered() {
        let mut position = synced_at_10();
        assert_eq!(position.on_change(12, key("x"), false), Verdict::Deliver);
        // Not replaying: a second change with the same key at the same index
        // is a new change (a host moved off and back in one entry).
        assert_eq!(position.on_change(12, key("x"), false), Verdict::Deliver);
    }

    #[test]
    fn a_reset_starts_from_the_full_state() {
        let mut position = synced_at_10();
        position.reset();
        assert_eq!(position.resume_after(), 0);
        assert!(position.opened());
    }
}
