//! Work that must not take CPU from the write path.
//!
//! A snapshot build at a million routes encodes every row for seconds. On
//! a small machine it takes a core from the log appends, applies and reads
//! that share it. It runs on a thread of its own at nice 19, which gets
//! about 1.5 % of a core that normal threads want and all of an idle one.
//! Measured (`catch-up --routes 1000000`, a build every 10,000 entries, 2
//! cores): attaches/s 2,906 -> 3,447, attach p99 58.0 -> 46.5 ms, p99 of
//! the attaches across a build over those clear of one +24.4 -> +9.2 ms,
//! a build 1.5 -> 4.2 s. `SCHED_IDLE` did better for writes (3,840/s) but
//! raised a follower's resolve p99 from 0.55 to 3.3 ms: a thread that
//! gets no CPU at all while it holds a lock others need (the allocator's)
//! stalls them. The cost either way: the log is purged later.

use tokio::sync::oneshot;

/// Runs `work` on a new thread named `name`, at the lowest CPU priority
/// the system allows it; returns its result, or an error if the thread
/// could not start or panicked.
pub(crate) async fn run_idle<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let (done, result) = oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            lower_this_thread();
            let _ = done.send(work());
        })?;
    result
        .await
        .map_err(|_| std::io::Error::other("the background thread panicked"))
}

/// Lowers the calling thread to nice 19. An unprivileged thread may always
/// lower its own priority; if the call still fails, the work runs at
/// normal priority, as before, and the failure is logged.
#[cfg(target_os = "linux")]
fn lower_this_thread() {
    // SAFETY: plain system call on the calling thread (who 0; on Linux the
    // nice value is per thread); no memory is passed.
    let lowered = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
    if lowered != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "could not lower a background thread to nice 19; it runs at normal priority"
        );
    }
}

/// Elsewhere `setpriority(PRIO_PROCESS, 0)` lowers the whole process:
/// the work runs at normal priority.
#[cfg(not(target_os = "linux"))]
fn lower_this_thread() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::run_idle;

    #[tokio::test]
    async fn the_work_runs_at_nice_19_and_returns_its_result() {
        // SAFETY: reads the calling thread's nice value; no memory passed.
        let before = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let (nice, sum) = run_idle("idle-test", || {
            // SAFETY: reads the calling thread's nice value; no memory passed.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            (nice, (1..=10u64).sum::<u64>())
        })
        .await
        .expect("ran");
        assert_eq!(nice, 19);
        assert_eq!(sum, 55);
        // SAFETY: as above, for this (test) thread.
        let here = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        assert_eq!(here, before, "only the work's own thread is lowered");
    }

    #[tokio::test]
    async fn a_panic_is_an_error() {
        let result = run_idle("idle-test", || -> u8 { panic!("boom") }).await;
        assert!(result.is_err());
    }
}
