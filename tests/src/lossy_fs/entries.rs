//! Directory entries changed since their directories' last fsync, kept so
//! that a power cut can undo them.
//!
//! POSIX makes a new name durable only once its directory is synced: a
//! file created (or renamed into place) and fsynced itself may still be
//! gone after a power cut if nobody fsynced the directory. ext4 happens to
//! commit all pending metadata on any fsync, so tests on it never see that;
//! this journal holds the stricter line. Each change waits on the
//! directories it touched (the parent of a new or removed name, both
//! parents of a rename); an fsyncdir of one settles its part, and a change
//! settled everywhere is durable and forgotten. A power cut undoes the
//! unsettled ones, newest first.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;

/// A name in a directory, the directory known by its inode (stable when
/// the directory itself is renamed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub dir: u64,
    pub name: OsString,
}

/// One change of directory entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A file or directory appeared.
    Created(Name),
    /// An entry moved; `replaced` holds a hard link to the file it
    /// replaced at `to`, if any.
    Renamed {
        from: Name,
        to: Name,
        replaced: Option<PathBuf>,
    },
    /// An entry went; `kept` holds a hard link to the removed file (`None`
    /// for an empty directory, which is simply made again).
    Removed { name: Name, kept: Option<PathBuf> },
}

impl Change {
    fn dirs(&self) -> BTreeSet<u64> {
        match self {
            Change::Created(name) | Change::Removed { name, .. } => BTreeSet::from([name.dir]),
            Change::Renamed { from, to, .. } => BTreeSet::from([from.dir, to.dir]),
        }
    }

    /// The hard links this change keeps for an undo.
    pub fn links(&self) -> impl Iterator<Item = &PathBuf> {
        match self {
            Change::Created(_) => None,
            Change::Renamed { replaced, .. } => replaced.as_ref(),
            Change::Removed { kept, .. } => kept.as_ref(),
        }
        .into_iter()
    }
}

/// Unsettled changes, at most this many: a site that never syncs its
/// directories would otherwise grow the journal without end. Far above
/// what a test run makes between directory syncs.
const PENDING_CHANGES_MAX: usize = 1 << 20;

/// The journal of unsettled changes.
#[derive(Debug, Default)]
pub struct Entries {
    /// Oldest first, each with the directories it still waits on.
    pending: Vec<(Change, BTreeSet<u64>)>,
    next_link: u64,
}

impl Entries {
    /// Records a change made just now.
    pub fn record(&mut self, change: Change) {
        assert!(
            self.pending.len() < PENDING_CHANGES_MAX,
            "{PENDING_CHANGES_MAX} directory changes and no directory synced"
        );
        let dirs = change.dirs();
        self.pending.push((change, dirs));
    }

    /// A fresh name for a hard link that keeps a file for an undo.
    pub fn link_name(&mut self) -> String {
        self.next_link += 1;
        format!("kept-{}", self.next_link)
    }

    /// `dir` was synced: every change made so far is settled there.
    /// Returns the changes now durable (their links may go).
    pub fn synced(&mut self, dir: u64) -> Vec<Change> {
        let mut durable = Vec::new();
        self.pending.retain_mut(|(change, waiting)| {
            waiting.remove(&dir);
            if waiting.is_empty() {
                durable.push(change.clone());
                false
            } else {
                true
            }
        });
        durable
    }

    /// Takes every unsettled change, newest first: the order to undo them.
    pub fn take_unsettled(&mut self) -> Vec<Change> {
        let mut changes: Vec<Change> = self.pending.drain(..).map(|(change, _)| change).collect();
        changes.reverse();
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(dir: u64, name: &str) -> Name {
        Name {
            dir,
            name: name.into(),
        }
    }

    #[test]
    fn a_change_is_durable_once_every_directory_it_touched_is_synced() {
        let mut entries = Entries::default();
        entries.record(Change::Created(name(1, "a")));
        let rename = Change::Renamed {
            from: name(1, "a"),
            to: name(2, "b"),
            replaced: None,
        };
        entries.record(rename.clone());
        entries.record(Change::Created(name(3, "c")));
        assert_eq!(
            entries.synced(1),
            vec![Change::Created(name(1, "a"))],
            "the rename waits on its target directory too"
        );
        assert_eq!(entries.synced(2), vec![rename]);
        assert_eq!(
            entries.take_unsettled(),
            vec![Change::Created(name(3, "c"))]
        );
        assert!(entries.take_unsettled().is_empty());
    }

    #[test]
    fn unsettled_changes_come_back_newest_first() {
        let mut entries = Entries::default();
        entries.record(Change::Created(name(1, "a")));
        entries.record(Change::Created(name(1, "b")));
        assert_eq!(
            entries.take_unsettled(),
            vec![Change::Created(name(1, "b")), Change::Created(name(1, "a"))]
        );
    }
}
