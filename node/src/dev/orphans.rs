//! Children that do not outlive their launcher. Each site and the
//! simulator run in their own process group (so a Ctrl-C at the terminal
//! reaches the launcher alone, which then stops them in order); if the
//! launcher itself dies, even by SIGKILL, the kernel sends each child
//! SIGTERM, and a site hands its leadership over and stops cleanly.
//!
//! Linux sends the signal when the *thread* that spawned the child exits:
//! the launcher spawns from the runtime's long-lived threads (the main
//! thread under `switchboard dev`, a test's own thread in the tests), never
//! from a blocking-pool thread that may retire.

use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::sys::signal::Signal;

/// Makes `command`'s child get SIGTERM when this process dies.
pub fn stop_with_parent(command: &mut Command) -> &mut Command {
    let parent = nix::unistd::getpid();
    // SAFETY: between fork and exec the closure makes two system calls and
    // builds an io::Error from an errno, without allocating or locking.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Some(Signal::SIGTERM))?;
            // The parent died before the call above: nobody would signal.
            if nix::unistd::getppid() != parent {
                return Err(nix::errno::Errno::ESRCH.into());
            }
            Ok(())
        })
    }
}
