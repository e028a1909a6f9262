//! The one thread that writes to RocksDB, with group commit.
//!
//! Async code never blocks on the disk: it hands a write batch to this thread
//! and awaits a oneshot. The thread takes every job that is waiting (up to
//! `WRITE_GROUP_JOBS_MAX`), writes each batch to the memtable and the WAL
//! buffer, answers "written" (the data is readable from then on), then, if
//! any job in the group asked for durability, syncs the WAL once for the
//! whole group and answers "durable". One fsync covers many appends and
//! votes, and a slow disk delays only the callers that wait for it.
//!
//! Jobs are written in the order they were queued, and the first write or
//! fsync that fails fails every job after it, written or not: what is on
//! disk is always a prefix of what was queued. That lets a caller queue a
//! buffered batch that nothing reads back and not wait for it
//! ([`Writer::write_behind`]): if it is lost, everything queued after it
//! is refused too, and the next synced append reports the failure.

use std::sync::Arc;
use std::sync::OnceLock;
use std::thread;

use rocksdb::DB;
use rocksdb::WriteBatch;
use rocksdb::WriteOptions;
use tokio::sync::mpsc;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::store::DataDirLock;

/// Most jobs merged into one group: bounds the latency one group adds to its
/// first job and the number of callbacks one fsync releases.
pub const WRITE_GROUP_JOBS_MAX: usize = 256;

/// Jobs that may wait for the writer; a full queue makes callers wait
/// (backpressure) instead of growing memory.
pub const WRITE_QUEUE_JOBS_MAX: usize = 1024;

/// Whether a write must reach the disk before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Written to the memtable and the WAL buffer; once written it survives
    /// a process crash (the page cache keeps it) but not a power loss. A job
    /// queued with [`Writer::write_behind`] and not yet written is lost with
    /// the process.
    Buffered,
    /// The WAL is fsynced before the job is answered.
    Synced,
}

/// Called once the write is durable (or failed).
pub type DurableCallback = Box<dyn FnOnce(Result<(), std::io::Error>) + Send>;

struct WriteJob {
    batch: WriteBatch,
    durability: Durability,
    written: Option<oneshot::Sender<Result<(), Error>>>,
    durable: Option<DurableCallback>,
}

/// A handle to the writer thread. Cloning shares the thread.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<WriteJob>,
    stopped: Stopped,
    /// The writer thread's first failure, once there is one.
    failed: Arc<OnceLock<String>>,
}

/// Tells when the writer thread has ended and released the database, so the
/// data dir can be opened again (its lock is free).
#[derive(Clone, Default)]
pub struct Stopped {
    inner: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl Stopped {
    fn set(&self) {
        let (flag, condvar) = &*self.inner;
        *flag.lock().expect("stop flag is never poisoned") = true;
        condvar.notify_all();
    }

    /// Waits until the writer thread ended, at most `timeout`. Returns whether it did.
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        let (flag, condvar) = &*self.inner;
        let guard = flag.lock().expect("stop flag is never poisoned");
        let (guard, _) = condvar
            .wait_timeout_while(guard, timeout, |stopped| !*stopped)
            .expect("stop flag is never poisoned");
        *guard
    }
}

impl Writer {
    /// Starts the writer thread for `db`. It ends when every handle is dropped.
    pub fn start(db: Arc<DB>, lock: DataDirLock) -> Result<Self, Error> {
        let (jobs, receiver) = mpsc::channel(WRITE_QUEUE_JOBS_MAX);
        let stopped = Stopped::default();
        let signal = stopped.clone();
        let failed = Arc::new(OnceLock::new());
        let first_failure = FirstFailure(failed.clone());
        thread::Builder::new()
            .name("rocksdb-writer".into())
            .spawn(move || {
                run(db, receiver, first_failure);
                // `run` consumed the database handle: it is released by now,
                // and the data dir with it.
                drop(lock);
                signal.set();
            })
            .map_err(|e| Error::io("starting the storage writer thread", e))?;
        Ok(Writer {
            jobs,
            stopped,
            failed,
        })
    }

    /// The signal that the writer thread has ended.
    pub fn stopped(&self) -> Stopped {
        self.stopped.clone()
    }

    /// Writes a batch; returns once it is readable. `durable`, if given, is
    /// called later, from the writer thread, once the batch is on disk.
    pub async fn write(
        &self,
        batch: WriteBatch,
        durability: Durability,
        durable: Option<DurableCallback>,
    ) -> Result<(), Error> {
        let (written, receiver) = oneshot::channel();
        let job = WriteJob {
            batch,
            durability,
            written: Some(written),
            durable,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| Error::WriterStopped)?;
        receiver.await.map_err(|_| Error::WriterStopped)?
    }

    /// Queues a buffered batch and returns once the writer has room for it,
    /// without waiting for it to be written (a wake-up of the writer thread
    /// and one of the caller, ~0.1-0.8 ms each on a busy 2-core machine).
    /// For batches nothing reads back before a restart, whose loss in a
    /// crash the log repairs. Fails once the writer has failed (this batch
    /// would be refused), so a failure shows at the caller's next batch.
    pub async fn write_behind(&self, batch: WriteBatch) -> Result<(), Error> {
        if let Some(reason) = self.failed.get() {
            return Err(Error::WriteFailed {
                reason: reason.clone(),
            });
        }
        let job = WriteJob {
            batch,
            durability: Durability::Buffered,
            written: None,
            durable: None,
        };
        self.jobs.send(job).await.map_err(|_| Error::WriterStopped)
    }

    /// Returns once every batch queued before the call is written
    /// (readable), those queued with [`write_behind`](Self::write_behind)
    /// included: an empty job behind them, as the writer keeps the order.
    pub async fn all_queued_written(&self) -> Result<(), Error> {
        self.write(WriteBatch::default(), Durability::Buffered, None)
            .await
    }

    /// Writes a batch and returns once it is on disk.
    pub async fn write_synced(&self, batch: WriteBatch) -> Result<(), Error> {
        let (done, receiver) = oneshot::channel::<Result<(), std::io::Error>>();
        let callback: DurableCallback = Box::new(move |result| {
            let _ = done.send(result);
        });
        let job = WriteJob {
            batch,
            durability: Durability::Synced,
            written: None,
            durable: Some(callback),
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| Error::WriterStopped)?;
        receiver
            .await
            .map_err(|_| Error::WriterStopped)?
            .map_err(|e| Error::io("synced write", e))
    }
}

fn run(db: Arc<DB>, mut receiver: mpsc::Receiver<WriteJob>, mut failed: FirstFailure) {
    // Every write goes to the WAL; none syncs by itself: the group syncs once.
    let mut options = WriteOptions::default();
    options.set_sync(false);
    options.disable_wal(false);

    let mut group: Vec<WriteJob> = Vec::with_capacity(WRITE_GROUP_JOBS_MAX);
    let mut outcomes: Vec<Result<(), String>> = Vec::with_capacity(WRITE_GROUP_JOBS_MAX);
    while let Some(first) = receiver.blocking_recv() {
        group.push(first);
        while group.len() < WRITE_GROUP_JOBS_MAX {
            match receiver.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }

        let mut sync_needed = false;
        for job in &mut group {
            let batch = std::mem::take(&mut job.batch);
            let outcome = failed.attempt("write", || {
                db.write_opt(batch, &options).map_err(|e| e.to_string())
            });
            sync_needed |= outcome.is_ok() && job.durability == Durability::Synced;
            if let Some(written) = job.written.take() {
                let _ = written.send(
                    outcome
                        .clone()
                        .map_err(|reason| Error::WriteFailed { reason }),
                );
            }
            outcomes.push(outcome);
        }

        let sync_started = std::time::Instant::now();
        // A failed fsync fails what follows too: Linux may drop the pages
        // it did not write, and nothing after them may be kept.
        let synced = if sync_needed {
            failed.attempt("WAL sync", || db.flush_wal(true).map_err(|e| e.to_string()))
        } else {
            Ok(())
        };
        if sync_needed {
            metrics::histogram!("switchboard_storage_wal_sync_duration_seconds")
                .record(sync_started.elapsed().as_secs_f64());
            metrics::counter!("switchboard_storage_wal_syncs_total").increment(1);
            metrics::histogram!("switchboard_storage_group_jobs").record(group.len() as f64);
        }
        for (job, outcome) in group.drain(..).zip(outcomes.drain(..)) {
            if let Some(durable) = job.durable {
                let result = outcome.and(synced.clone()).map_err(std::io::Error::other);
                durable(result);
            }
        }
    }
}

/// The writer's first failure. Once there is one, every later attempt is
/// refused with it and not made, so what reaches the disk is a prefix of
/// what was queued. Shared with the [`Writer`] handles.
#[derive(Debug, Default)]
struct FirstFailure(Arc<OnceLock<String>>);

impl FirstFailure {
    /// Makes `attempt` (a `what`: "write", "WAL sync") unless an earlier
    /// one failed; records its failure.
    fn attempt(
        &mut self,
        what: &str,
        attempt: impl FnOnce() -> Result<(), String>,
    ) -> Result<(), String> {
        if let Some(first) = self.0.get() {
            return Err(first.clone());
        }
        attempt().inspect_err(|reason| {
            tracing::error!(%reason, "storage {what} failed; every later write is refused");
            metrics::counter!("switchboard_storage_write_failures_total").increment(1);
            let _ = self
                .0
                .set(format!("an earlier storage {what} failed: {reason}"));
        })
    }
}

#[cfg(test)]
mod tests {
    use super::FirstFailure;

    #[test]
    fn after_a_failure_nothing_later_is_attempted() {
        let mut failed = FirstFailure::default();
        assert_eq!(failed.attempt("write", || Ok(())), Ok(()));
        assert_eq!(
            failed.attempt("write", || Err("disk full".into())),
            Err("disk full".into())
        );
        let mut made = false;
        let later = failed.attempt("WAL sync", || {
            made = true;
            Ok(())
        });
        assert!(!made, "not attempted after a failure");
        assert!(failed.0.get().is_some(), "the handles see it too");
        assert_eq!(
            later,
            Err("an earlier storage write failed: disk full".into())
        );
    }
}
