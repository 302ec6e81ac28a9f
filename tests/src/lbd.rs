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

/// The UDP port the testbed's real servers take GUE on (`lbd decap --gue-port`), the port
/// ipvsadm's man page uses.
pub const GUE_PORT: u16 = 6080;

/// Starts `lbd decap --iface IFACE --gue-port 6080` in `ns` (a real server of an LVS-TUN
/// service on a kernel without the ipip, fou and gre modules), its output appended to `log`.
/// It has no socket to ask whether it is ready: wait for [`xdp_attached`].
pub fn start_decap(ns: &Netns, iface: &str, mode: XdpMode, log: &Path) -> Daemon {
    let lbd = tools::binary("lbd").display().to_string();
    let port = GUE_PORT.to_string();
    let argv = ns.argv(&[
        &lbd,
        "decap",
        "--iface",
        iface,
        "--gue-port",
        &port,
        "--xdp-mode",
        mode.as_arg(),
    ]);
    Daemon::spawn_with_env(
        &format!("lbd decap in {}", ns.name()),
        argv,
        &[("NO_COLOR", "1")],
        log,
        log,
    )
}

/// Whether an XDP program (native or generic) is attached to `iface` in `ns`.
pub fn xdp_attached(ns: &Netns, iface: &str) -> bool {
    xdp_prog_id(ns, iface).is_some()
}

/// The id of the XDP program attached to `iface` in `ns`: `ip link` prints `prog/xdp id N`
/// (details) for native and generic attachment alike.
fn xdp_prog_id(ns: &Netns, iface: &str) -> Option<u32> {
    let ran = ns.try_run(&["ip", "-details", "link", "show", "dev", iface], None);
    let mut words = ran.stdout.split_whitespace();
    words.find(|w| *w == "prog/xdp")?;
    if words.next()? != "id" {
        return None;
    }
    words.next()?.parse().ok()
}

/// The `DP_STATS` event counters (summed over CPUs, indexed as `lb_common::Stat`) of the
/// XDP program attached to `iface` in `ns`, read with bpftool. Map names are global, and
/// every lbd and `lbd decap` has its own `DP_STATS`: the map is found through the program.
pub fn data_path_counters(ns: &Netns, iface: &str) -> Result<Vec<u64>, String> {
    let prog = xdp_prog_id(ns, iface).ok_or_else(|| format!("no XDP program on {iface}"))?;
    let run = |argv: &[&str]| -> Result<String, String> {
        let ran = ns.try_run(argv, None);
        if ran.success() {
            Ok(ran.stdout)
        } else {
            Err(ran.to_string())
        }
    };
    let info = run(&["bpftool", "prog", "show", "id", &prog.to_string()])?;
    let map_ids = info
        .split_whitespace()
        .skip_while(|w| *w != "map_ids")
        .nth(1)
        .ok_or_else(|| format!("no map_ids in bpftool's description of program {prog}:\n{info}"))?;
    for id in map_ids.split(',') {
        let id = id.trim();
        let show = run(&["bpftool", "map", "show", "id", id])?;
        if show.split_whitespace().any(|w| w == "DP_STATS") {
            let dump = run(&["bpftool", "map", "dump", "id", id])?;
            let counters = parse_percpu_dump(&dump)
                .ok_or_else(|| format!("cannot read bpftool's dump of map {id}:\n{dump}"))?;
            // A counter missing from the dump must not read as 0 (see [`stat`]).
            return if counters.len() == lb_common::Stat::COUNT as usize {
                Ok(counters)
            } else {
                Err(format!(
                    "map {id} has {} counters, lb_common::Stat {}: an lbd built from other \
                     sources?\n{dump}",
                    counters.len(),
                    lb_common::Stat::COUNT
                ))
            };
        }
    }
    Err(format!(
        "program {prog} on {iface} has no DP_STATS map (maps {map_ids})"
    ))
}

/// Counter `stat` of a list read with [`data_path_counters`]; panics, rather than reading 0,
/// when the list does not have it.
#[track_caller]
pub fn stat(counters: &[u64], stat: lb_common::Stat) -> u64 {
    *counters.get(stat as usize).unwrap_or_else(|| {
        panic!(
            "no {} counter among {} data-path counters",
            stat.name(),
            counters.len()
        )
    })
}

/// Data-path counters as read by [`data_path_counters`], the non-zero ones by their
/// `lb_common::Stat` names: `rx=12 tx_nat=5`. Indexes lb-common does not know (a newer data
/// path) show as `#N=...`.
pub fn name_counters(counters: &[u64]) -> String {
    let names = lb_common::Stat::ALL;
    let named: Vec<String> = counters
        .iter()
        .enumerate()
        .filter(|(_, n)| **n != 0)
        .map(|(i, n)| match names.iter().find(|s| **s as usize == i) {
            Some(stat) => format!("{}={n}", stat.name()),
            None => format!("#{i}={n}"),
        })
        .collect();
    if named.is_empty() {
        "(all zero)".to_owned()
    } else {
        named.join(" ")
    }
}

/// Sums `bpftool map dump` output of a per-CPU array of u64 over CPUs, by key. Without BTF
/// for the map, bpftool prints raw little-endian bytes:
/// ```text
/// key:
/// 03 00 00 00
/// value (CPU 00): 07 00 00 00 00 00 00 00
/// value (CPU 01): 01 00 00 00 00 00 00 00
/// ```
fn parse_percpu_dump(text: &str) -> Option<Vec<u64>> {
    fn le(hex: &str) -> Option<u64> {
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).ok())
            .collect::<Option<_>>()?;
        if bytes.is_empty() || bytes.len() > 8 {
            return None;
        }
        Some(
            bytes
                .iter()
                .rev()
                .fold(0u64, |n, &b| (n << 8) | u64::from(b)),
        )
    }
    let mut sums: Vec<u64> = Vec::new();
    let mut key: Option<usize> = None;
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line == "key:" {
            let k = usize::try_from(le(lines.next()?)?).ok()?;
            if sums.len() <= k {
                sums.resize(k + 1, 0);
            }
            key = Some(k);
        } else if let Some(rest) = line.strip_prefix("value (CPU ") {
            let (_, bytes) = rest.split_once("):")?;
            sums[key?] += le(bytes)?;
        }
    }
    (!sums.is_empty()).then_some(sums)
}

impl Lbd {
    /// Starts lbd in `ns` on `ifaces` and waits until `lbadm -Ln` gets an answer. Its output
    /// is appended to `files.log` (restarts add to the same log).
    #[track_caller]
    pub fn start(ns: &Netns, ifaces: &[&str], mode: XdpMode, files: &LbdFiles) -> Lbd {
        Self::start_with(ns, ifaces, mode, files, &[])
    }

    /// [`Lbd::start`] with `extra` arguments after the usual ones (`--config FILE`, ...).
    #[track_caller]
    pub fn start_with(
        ns: &Netns,
        ifaces: &[&str],
        mode: XdpMode,
        files: &LbdFiles,
        extra: &[&str],
    ) -> Lbd {
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
        args.extend_from_slice(extra);
        // NO_COLOR: plain text in the log that failure messages quote.
        let mut daemon = Daemon::spawn_with_env(
            &format!("lbd in {}", ns.name()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percpu_dump_sums_over_cpus() {
        let text = "key:
00 00 00 00
value (CPU 00): 0a 00 00 00 00 00 00 00
value (CPU 01): 05 00 00 00 00 00 00 00
key:
02 00 00 00
value (CPU 00): 00 00 00 00 00 00 00 00
value (CPU 01): 07 01 00 00 00 00 00 00
Found 2 elements
";
        assert_eq!(parse_percpu_dump(text), Some(vec![15, 0, 263]));
        let rx = lb_common::Stat::Rx as usize;
        let mut counters = vec![0; lb_common::Stat::COUNT as usize + 1];
        counters[rx] = 15;
        counters[lb_common::Stat::COUNT as usize] = 2;
        assert_eq!(
            name_counters(&counters),
            format!("rx=15 #{}=2", lb_common::Stat::COUNT)
        );
        assert_eq!(name_counters(&[0, 0]), "(all zero)");
        assert_eq!(parse_percpu_dump("Found 0 elements"), None);
    }
}
