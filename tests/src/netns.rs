//! Named network namespaces (`ip netns`) that delete themselves, and every process left in
//! them, when dropped.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::Path,
    time::{Duration, Instant},
};

use crate::cmd::{self, Ran};

/// A named network namespace, created with `ip netns add` and deleted on drop after killing
/// every process still in it (`ip netns pids`).
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up. Panics if it already exists.
    #[track_caller]
    pub fn create(name: &str) -> Netns {
        assert!(
            !Path::new("/run/netns").join(name).exists(),
            "network namespace {name} already exists"
        );
        cmd::run(&["ip", "netns", "add", name]);
        let ns = Netns {
            name: name.to_owned(),
        };
        ns.run(&["ip", "link", "set", "dev", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `argv` prefixed with `ip netns exec NAME`. `ip` execs the program after entering the
    /// namespace, so a spawned child's pid is the program's own.
    pub fn argv(&self, argv: &[&str]) -> Vec<String> {
        let mut full = vec![
            "ip".to_owned(),
            "netns".to_owned(),
            "exec".to_owned(),
            self.name.clone(),
        ];
        full.extend(argv.iter().map(|s| (*s).to_owned()));
        full
    }

    /// Runs `argv` in the namespace to completion, without judging the outcome.
    pub fn try_run(&self, argv: &[&str], stdin: Option<&str>) -> Ran {
        cmd::try_run_owned(self.argv(argv), stdin)
    }

    /// Runs `argv` in the namespace and returns its stdout; panics with the command and its
    /// stderr if it fails.
    #[track_caller]
    pub fn run(&self, argv: &[&str]) -> String {
        self.try_run(argv, None).assert_success().to_owned()
    }

    /// Sets a sysctl inside the namespace (`net.*` keys are per namespace).
    #[track_caller]
    pub fn sysctl(&self, key: &str, value: &str) {
        self.run(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// The pids of the processes in the namespace.
    pub fn pids(&self) -> Vec<i32> {
        pids_of(&self.name)
    }

    /// Runs `f` on a thread of its own that has entered the namespace, and returns what it
    /// returns. Sockets `f` creates belong to the namespace for good, so the caller can go on
    /// using them from any thread: that is how tests talk to the VIP from the client without a
    /// helper program.
    #[track_caller]
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = Path::new("/run/netns").join(&self.name);
        let file = File::open(&path)
            .unwrap_or_else(|e| panic!("opening {} to enter it: {e}", path.display()));
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // SAFETY: setns(2) on a descriptor we own; it moves only this thread,
                    // which exists for `f` alone and ends with it.
                    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                    assert!(
                        rc == 0,
                        "entering network namespace {}: {}",
                        self.name,
                        std::io::Error::last_os_error()
                    );
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = delete(&self.name) {
            eprintln!("lb-tests: cleaning up network namespace {}: {e}", self.name);
        }
    }
}

fn pids_of(name: &str) -> Vec<i32> {
    let ran = cmd::try_run(&["ip", "netns", "pids", name], None);
    ran.stdout
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// Kills (SIGKILL) whatever runs in namespace `name`, waits for it to be gone, then deletes
/// the namespace. Never panics: it runs from `Drop`, possibly while unwinding.
pub fn delete(name: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = pids_of(name);
        if pids.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "processes {pids:?} survive SIGKILL; namespace left in place"
            ));
        }
        for pid in pids {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid was just listed as
            // a member of our test namespace.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let ran = cmd::try_run(&["ip", "netns", "del", name], None);
    if ran.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip netns del {name}` failed: {}",
            ran.stderr.trim()
        ))
    }
}

/// The names of all named network namespaces.
pub fn list() -> Vec<String> {
    // `ip netns list` prints `name` or `name (id: N)`, one per line.
    let ran = cmd::try_run(&["ip", "netns", "list"], None);
    ran.stdout
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}
