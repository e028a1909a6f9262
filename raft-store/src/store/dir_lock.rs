//! One process per data dir: a site holds an exclusive lock on
//! `<data_dir>/site.lock` for as long as its database is open, so a second
//! `serve` or a `recover` of a running site is refused as `InUse`, by kind,
//! instead of by reading RocksDB's error text.

use std::fs::File;
use std::fs::OpenOptions;
use std::fs::TryLockError;
use std::path::Path;

use crate::error::Error;

/// The lock file's name inside the data dir.
pub const LOCK_FILE: &str = "site.lock";

/// An exclusive lock on a data dir; released when dropped (or when the
/// process dies: the kernel drops `flock` locks with the file).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock, or `InUse` if another process holds it.
    pub fn acquire(data_dir: &Path) -> Result<Self, Error> {
        let path = data_dir.join(LOCK_FILE);
        // Not synced: the file carries no data, only the lock.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(DataDirLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(Error::InUse {
                dir: data_dir.display().to_string(),
            }),
            Err(TryLockError::Error(e)) => Err(Error::io(format!("locking {}", path.display()), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            DataDirLock::acquire(dir.path()),
            Err(Error::InUse { .. })
        ));
        drop(first);
        DataDirLock::acquire(dir.path()).expect("free again");
    }
}
