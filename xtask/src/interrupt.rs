//! Ctrl-C while a child runs: the terminal sends SIGINT to the whole foreground group, so the
//! child (cargo, apt-get, a test binary) gets it anyway. xtask itself only notes it, so that it
//! outlives the child: it keeps reading the child's output (a test binary cleaning up its
//! namespaces must not hit a closed pipe), removes what it set up, then stops.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn note_sigint(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Replaces SIGINT's default action (end the process) with noting it. A handler, unlike
/// SIG_IGN, is reset by exec, so children and `exec`ed programs still get the default action.
pub fn defer_sigint() {
    // SAFETY: the sigaction struct is fully initialised (zeroed, then an empty mask and a
    // handler that only stores to an atomic, which is async-signal-safe).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = note_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Fails once Ctrl-C was pressed, so no further step starts.
pub fn check() -> Result<()> {
    if interrupted() {
        bail!("interrupted");
    }
    Ok(())
}
