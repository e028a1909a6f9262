//! A filesystem that loses what was not synced, for power-loss tests.
//!
//! `kill -9` keeps the page cache: every write a killed process made is
//! still there for the next one, so it proves nothing about fsync. This is
//! a small FUSE passthrough (what Jepsen's LazyFS does, for file data): a
//! site's data dir is mounted on it, writes reach the backing directory at
//! once, and each file keeps an undo record of what it changed since its
//! last fsync or fdatasync. [`LossyFs::lose_unsynced`], called once the
//! site is killed, undoes them all: the files are as a power cut would
//! leave them. Directory entries are lost too: a name created, renamed or
//! removed since its directory's last fsync is put back as it was (see
//! `entries`), as POSIX allows and XFS or btrfs may do; ext4, which commits
//! all metadata on any fsync, would hide a missing directory sync.

mod entries;
mod fs;
mod undo;

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use fs::Inner;
use fs::LossyFilesystem;

/// A mounted lossy filesystem; unmounted on drop.
pub struct LossyFs {
    inner: Arc<Mutex<Inner>>,
    root: std::path::PathBuf,
    _session: fuser::BackgroundSession,
}

/// What a power cut took.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Files that had unsynced writes.
    pub files: usize,
    /// Bytes put back from before those writes (appended bytes dropped
    /// are not counted).
    pub restored_bytes: u64,
    /// Directory changes (create, rename, remove) undone.
    pub entries: usize,
}

/// Why a lossy filesystem could not be mounted.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot mount a FUSE filesystem at {mountpoint}: {source} (needs /dev/fuse and root or fusermount3)"
)]
pub struct MountError {
    mountpoint: String,
    source: std::io::Error,
}

impl LossyFs {
    /// Mounts a lossy view of `backing` (an existing directory) at
    /// `mountpoint` (an existing, empty directory). Files removed while
    /// their removal is not durable are kept beside `backing`, in
    /// `<backing>.kept`.
    pub fn mount(backing: &Path, mountpoint: &Path) -> Result<LossyFs, MountError> {
        let mount_error = |source| MountError {
            mountpoint: mountpoint.display().to_string(),
            source,
        };
        let mut kept_dir = backing.as_os_str().to_owned();
        kept_dir.push(".kept");
        std::fs::create_dir_all(&kept_dir).map_err(mount_error)?;
        let inner = Arc::new(Mutex::new(Inner::new(kept_dir.into())));
        let filesystem = LossyFilesystem {
            root: backing.to_owned(),
            inner: inner.clone(),
        };
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            fuser::MountOption::FSName("switchboard-lossy".into()),
            fuser::MountOption::DefaultPermissions,
        ];
        let session = fuser::spawn_mount(filesystem, mountpoint, &config).map_err(mount_error)?;
        Ok(LossyFs {
            inner,
            root: backing.to_owned(),
            _session: session,
        })
    }

    /// Undoes every write not yet synced, then every directory change not
    /// yet synced. Call only while nothing has the files open for writing
    /// (the site is killed). A file whose removal is undone comes back with
    /// its content as it was removed, synced or not.
    pub fn lose_unsynced(&self) -> std::io::Result<Lost> {
        let mut inner = self.inner.lock();
        let records: Vec<_> = inner.unsynced.drain().collect();
        let mut lost = Lost::default();
        for (inode, undo) in records {
            let Some(path) = inner.path_of(inode) else {
                continue;
            };
            let file = match std::fs::File::options()
                .write(true)
                .open(self.root.join(path))
            {
                Ok(file) => file,
                // Unlinked since: nothing left to lose.
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            undo.restore(&file)?;
            lost.files += 1;
            lost.restored_bytes += undo.saved_bytes();
        }
        lost.entries = inner.undo_entries(&self.root)?;
        Ok(lost)
    }

    /// Fsyncs and fdatasyncs seen so far.
    pub fn syncs(&self) -> u64 {
        self.inner.lock().syncs
    }

    /// Directory fsyncs seen so far.
    pub fn dir_syncs(&self) -> u64 {
        self.inner.lock().dir_syncs
    }
}
