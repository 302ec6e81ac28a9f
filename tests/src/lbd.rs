//! The programs under test: `lbd` in the director's namespace and `lbadm` talking to it.

use std::{
    path::{Path, PathBuf},
    process::ExitStatus,
    time::{Duration, Instant},
};

use crate::{
    cmd::{Daemon, Ran},
    netns::Netns,
    tools,
};

/// How long lbd may take from start to answering `lbadm -Ln` (it loads and verifies the
/// eBPF program; debug builds are slow).
pub const LBD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long lbd may take to shut down after SIGTERM.
pub const LBD_STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// How lbd attaches its XDP program (`lbd --xdp-mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpMode {
    /// Let the kernel choose (native on veth).
    Auto,
    /// Driver mode. On a veth, frames sent back with XDP_TX are delivered only because the
    /// testbed attaches an XDP_PASS program to the veth's peer.
    Native,
    /// Generic mode: works on any interface without help from the peer.
    #[default]
    Skb,
}

impl XdpMode {
    pub fn as_arg(self) -> &'static str {
        match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Skb => "skb",
        }
    }

    /// Whether the kernel will attach in driver mode, so the veth peer needs a program.
    pub fn is_native(self) -> bool {
        matches!(self, XdpMode::Auto | XdpMode::Native)
    }
}

impl std::str::FromStr for XdpMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(XdpMode::Auto),
            "native" => Ok(XdpMode::Native),
            "skb" => Ok(XdpMode::Skb),
            other => Err(format!("unknown XDP mode {other:?} (auto, native or skb)")),
        }
    }
}

/// Where one lbd keeps its control socket, state file and log.
#[derive(Clone, Debug)]
pub struct LbdFiles {
    pub socket: PathBuf,
    pub state: PathBuf,
    pub log: PathBuf,
}

impl LbdFiles {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            socket: dir.join("lbd.sock"),
            state: dir.join("state.json"),
            log: dir.join("lbd.log"),
        }
    }
}

/// A running lbd.
pub struct Lbd {
    pub daemon: Daemon,
}

/// Runs `lbadm --socket SOCKET ARGS` in `ns`, feeding `stdin`, without judging the outcome.
pub fn lbadm(ns: &Netns, socket: &Path, args: &[&str], stdin: Option<&str>) -> Ran {
    let lbadm = tools::binary("lbadm").display().to_string();
    let socket = socket.display().to_string();
    let mut argv = vec![lbadm.as_str(), "--socket", socket.as_str()];
    argv.extend_from_slice(args);
    ns.try_run(&argv, stdin)
}

impl Lbd {
    /// Starts lbd in `ns` on `ifaces` and waits until `lbadm -Ln` gets an answer. Its output
    /// is appended to `files.log` (restarts add to the same log).
    #[track_caller]
    pub fn start(ns: &Netns, ifaces: &[&str], mode: XdpMode, files: &LbdFiles) -> Lbd {
        let lbd = tools::binary("lbd").display().to_string();
        let socket = files.socket.display().to_string();
        let state = files.state.display().to_string();
        let mut args = vec![lbd.as_str()];
        for iface in ifaces {
            args.extend_from_slice(&["--iface", iface]);
        }
        args.extend_from_slice(&[
            "--xdp-mode",
            mode.as_arg(),
            "--socket",
            &socket,
            "--state",
            &state,
        ]);
        // NO_COLOR: plain text in the log that failure messages quote.
        let mut daemon = Daemon::spawn_with_env(
            "lbd",
            ns.argv(&args),
            &[("NO_COLOR", "1")],
            &files.log,
            &files.log,
        );
        let deadline = Instant::now() + LBD_START_TIMEOUT;
        loop {
            daemon.assert_running();
            let state = if files.socket.exists() {
                let ran = lbadm(ns, &files.socket, &["-Ln"], None);
                if ran.success() {
                    break;
                }
                format!("`lbadm -Ln` failed:\n{ran}")
            } else {
                format!("{} does not exist yet", files.socket.display())
            };
            if Instant::now() >= deadline {
                panic!(
                    "lbd did not answer `lbadm -Ln` within {LBD_START_TIMEOUT:?}; last: {state}\n{}",
                    daemon.report()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Lbd { daemon }
    }

    /// Sends SIGTERM and waits for lbd to exit; returns its exit status.
    #[track_caller]
    pub fn stop(mut self) -> ExitStatus {
        self.daemon.stop(libc::SIGTERM, LBD_STOP_TIMEOUT)
    }
}

impl Drop for Lbd {
    fn drop(&mut self) {
        // A clean shutdown detaches XDP and removes the socket; SIGKILL (Daemon's drop) only
        // if it does not come.
        if self.daemon.is_running() {
            self.daemon.signal(libc::SIGTERM);
            let deadline = Instant::now() + LBD_STOP_TIMEOUT;
            while self.daemon.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
