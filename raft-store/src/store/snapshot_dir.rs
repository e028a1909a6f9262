//! The directory of snapshot files: the current one, ones being built, and
//! ones being received from the leader.

use parking_lot::Mutex;
use std::fs;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;

use openraft::type_config::alias::SnapshotOf;

use crate::error::Error;
use crate::snapshot_file::SnapshotFile;
use crate::snapshot_file::create_dir_synced;
use crate::snapshot_file::read_meta;
use crate::snapshot_file::sync_dir;
use crate::snapshot_file::write_snapshot;
use crate::snapshot_meta::SnapshotMetaRecord;
use crate::store::state_machine::AppliedState;
use crate::types::SnapshotMeta;
use crate::types::TypeConfig;

const SNAPSHOT_EXTENSION: &str = "snap";
const INCOMING_PREFIX: &str = "incoming-";

/// The current snapshot: its file and meta.
#[derive(Clone, Debug)]
pub struct SnapshotRecord {
    /// The file.
    pub path: PathBuf,
    /// What it covers.
    pub meta: SnapshotMeta,
}

/// The snapshot directory. Cloning shares it.
#[derive(Clone)]
pub struct SnapshotDir {
    dir: PathBuf,
    current: Arc<Mutex<Option<SnapshotRecord>>>,
    sequence: Arc<AtomicU64>,
}

fn log_index(meta: &SnapshotMeta) -> u64 {
    meta.last_log_id.as_ref().map_or(0, |id| id.index)
}

impl SnapshotDir {
    /// Opens the directory, keeps the newest readable snapshot and removes
    /// the rest (older files, unfinished builds, partial receives).
    pub fn open(dir: &Path) -> Result<Self, Error> {
        // Synced: a snapshot renamed into a directory whose own entry was
        // lost with a crash is lost with it.
        create_dir_synced(dir)?;
        let mut best: Option<SnapshotRecord> = None;
        let entries =
            fs::read_dir(dir).map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
        for entry in entries {
            let path = entry.map_err(|e| Error::io("listing snapshots", e))?.path();
            let is_snapshot = path
                .extension()
                .is_some_and(|ext| ext == SNAPSHOT_EXTENSION);
            let meta = if is_snapshot {
                SnapshotFile::open(&path)
                    .and_then(|f| read_meta(&f))
                    .and_then(|record| SnapshotMeta::try_from(&record))
                    .ok()
            } else {
                None
            };
            match meta {
                Some(meta)
                    if best
                        .as_ref()
                        .is_none_or(|b| log_index(&b.meta) < log_index(&meta)) =>
                {
                    if let Some(previous) = best.replace(SnapshotRecord { path, meta }) {
                        remove_quietly(&previous.path);
                    }
                }
                _ => remove_quietly(&path),
            }
        }
        Ok(SnapshotDir {
            dir: dir.to_owned(),
            current: Arc::new(Mutex::new(best)),
            sequence: Arc::new(AtomicU64::new(0)),
        })
    }

    fn unique_name(&self, prefix: &str, index: u64, extension: &str) -> PathBuf {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.dir.join(format!(
            "{prefix}{index:020}-{nanos}-{sequence}.{extension}"
        ))
    }

    /// A fresh path where a snapshot received from the leader is staged.
    pub fn incoming_path(&self) -> PathBuf {
        self.unique_name(INCOMING_PREFIX, 0, "part")
    }

    /// The current snapshot's meta.
    pub fn current_meta(&self) -> Option<SnapshotMeta> {
        self.current.lock().as_ref().map(|r| r.meta.clone())
    }

    /// The current snapshot, opened.
    pub fn current(&self) -> Result<Option<SnapshotOf<TypeConfig, SnapshotFile>>, Error> {
        let record = self.current.lock().clone();
        record
            .map(|record| {
                Ok(SnapshotOf::<TypeConfig, SnapshotFile> {
                    meta: record.meta,
                    snapshot: SnapshotFile::open(&record.path)?,
                })
            })
            .transpose()
    }

    /// Writes a snapshot of `applied` and makes it current (if no newer one
    /// became current meanwhile). Blocking: run it off the async workers.
    pub fn build(
        &self,
        applied: &AppliedState,
    ) -> Result<SnapshotOf<TypeConfig, SnapshotFile>, Error> {
        let started = std::time::Instant::now();
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
        };
        let path = self.unique_name("snapshot-", applied.applied_index(), SNAPSHOT_EXTENSION);
        let rows = write_snapshot(
            &path,
            &SnapshotMetaRecord::from(&meta),
            applied.state.rows(),
        )?;
        let file = SnapshotFile::open(&path)?;
        metrics::histogram!("switchboard_snapshot_build_seconds")
            .record(started.elapsed().as_secs_f64());
        metrics::gauge!("switchboard_snapshot_bytes").set(file.len as f64);
        tracing::info!(
            rows,
            bytes = file.len,
            last_log_id = ?meta.last_log_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "built snapshot"
        );
        self.make_current(SnapshotRecord {
            path,
            meta: meta.clone(),
        });
        Ok(SnapshotOf::<TypeConfig, SnapshotFile> {
            meta,
            snapshot: file,
        })
    }

    /// Writes a backup of `applied` (the snapshot format) to a fresh file
    /// that never becomes current; the caller removes it when done (an open
    /// handle keeps it readable). Blocking: run it off the async workers.
    pub fn write_backup(&self, applied: &AppliedState) -> Result<SnapshotFile, Error> {
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
        };
        let path = self.unique_name("backup-", applied.applied_index(), "backup");
        write_snapshot(
            &path,
            &SnapshotMetaRecord::from(&meta),
            applied.state.rows(),
        )?;
        let file = SnapshotFile::open(&path)?;
        remove_quietly(&path);
        Ok(file)
    }

    /// Makes a received, installed snapshot current.
    pub fn adopt(&self, staged: &Path, meta: &SnapshotMeta) -> Result<(), Error> {
        let path = self.unique_name("snapshot-", log_index(meta), SNAPSHOT_EXTENSION);
        fs::rename(staged, &path)
            .map_err(|e| Error::io(format!("renaming {}", staged.display()), e))?;
        sync_dir(&self.dir)?;
        self.make_current(SnapshotRecord {
            path,
            meta: meta.clone(),
        });
        Ok(())
    }

    fn make_current(&self, record: SnapshotRecord) {
        let stale = {
            let mut current = self.current.lock();
            let newer = current
                .as_ref()
                .is_none_or(|c| log_index(&c.meta) <= log_index(&record.meta));
            if newer {
                current.replace(record).map(|previous| previous.path)
            } else {
                // An older build finished after a newer install: open handles keep it
                // readable for whoever holds it; the directory keeps the newer one.
                Some(record.path)
            }
        };
        // Outside the lock: a build's thread runs at nice 19, and the state
        // machine takes this lock to answer for the current snapshot.
        if let Some(path) = stale {
            remove_quietly(&path);
        }
    }
}

fn remove_quietly(path: &Path) {
    if let Err(error) = fs::remove_file(path) {
        tracing::warn!(path = %path.display(), %error, "could not remove an old snapshot file");
    }
}
