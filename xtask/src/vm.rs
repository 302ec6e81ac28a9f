//! The kernel matrix: running a command in a VM booted with another kernel than the host's.
//!
//! The data path must load on every kernel lb supports, and verifiers differ between releases
//! (and even between builds of one release), so the data-path fixtures also run on Debian 12's
//! 6.1 and 6.12 LTS kernels. virtme-ng (`vng`) boots such a kernel from /boot under QEMU over
//! the host's own file system, read-only, so the guest runs the host's freshly built test
//! binary as it is. Facts this relies on (checked with virtme-ng 1.42 and QEMU 7.2):
//!
//! - software emulation only (`--disable-kvm`): /dev/kvm exists on CI machines but nested
//!   guests crash there. A boot takes 30–70 s, and everything in the guest is several times
//!   slower than on the host, the verifier too;
//! - the guest is root, has the host's binaries and the kernel's modules from /lib/modules
//!   (veth, for instance, is a module in Debian's kernels), and `ip netns add` and
//!   BPF_PROG_TEST_RUN work;
//! - /tmp, /etc, /var are in-memory overlays and /run is a tmpfs, so the guest can write there
//!   (and Unix sockets work) without touching the host; nothing the fixtures write needs to
//!   come back, so no host directory is shared writable (`--rwdir`);
//! - bpffs is not mounted;
//! - vng exits with the guest command's exit status, and the guest's stdout and stderr come
//!   back separately. QEMU *reopens* vng's stdout and stderr through `/proc/self/fd/{1,2}`, with
//!   its own file offset and `O_TRUNC`: given a log file, it would overwrite that file from its
//!   start. So both always go to pipes that xtask copies on ([`Guest::start`]).

use std::{
    ffi::OsString,
    io::{Read as _, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, ExitStatus, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{interrupt, workspace};

/// One kernel series of the matrix.
pub struct KernelSeries {
    /// How the series is called, e.g. in `LB_VM_KERNELS`.
    pub name: &'static str,
    /// `uname -r` of the series' Debian kernels, with `{}` for the number that grows with each
    /// update (the ABI number for 6.1, the stable release for 6.12). Only the generic `amd64`
    /// flavour: `cloud` lacks drivers and `rt` is another scheduler.
    release: &'static str,
}

/// Debian 12's two LTS kernels: the oldest one lb supports, and a newer one. The host's own
/// kernel is the third column of the matrix.
pub const KERNEL_MATRIX: &[KernelSeries] = &[
    KernelSeries {
        name: "6.1",
        release: "6.1.0-{}-amd64",
    },
    KernelSeries {
        name: "6.12",
        release: "6.12.{}+deb12-amd64",
    },
];

impl KernelSeries {
    /// The update number of `release` if it belongs to this series.
    fn update_number(&self, release: &str) -> Option<u32> {
        let (prefix, suffix) = self.release.split_once("{}").expect("a {} in the pattern");
        let number = release.strip_prefix(prefix)?.strip_suffix(suffix)?;
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        number.parse().ok()
    }

    /// The newest of `releases` that belongs to this series.
    pub fn newest<'a>(&self, releases: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
        releases
            .into_iter()
            .filter_map(|r| Some((self.update_number(r)?, r)))
            .max()
            .map(|(_, r)| r)
    }

    /// The Debian package holding `release`'s kernel image. The unsigned one: the signed one
    /// installs the same image but pulls in the Secure Boot chain.
    pub fn package(release: &str) -> String {
        format!("linux-image-{release}-unsigned")
    }

    /// The release a package of this series installs, if `package` is one.
    pub fn release_of_package<'a>(&self, package: &'a str) -> Option<&'a str> {
        let release = package
            .strip_prefix("linux-image-")?
            .strip_suffix("-unsigned")?;
        self.update_number(release).map(|_| release)
    }

    /// An extended regular expression for `apt-cache search --names-only` that finds this
    /// series' packages (and few others).
    pub fn package_regex(&self) -> String {
        let (prefix, suffix) = self.release.split_once("{}").expect("a {} in the pattern");
        let escape = |s: &str| s.replace('.', r"\.").replace('+', r"\+");
        format!(
            "^linux-image-{}[0-9]+{}-unsigned$",
            escape(prefix),
            escape(suffix)
        )
    }
}

/// Where Debian's kernel packages put the images.
const BOOT: &str = "/boot";

/// Releases with a kernel image in /boot (`vmlinuz-<release>`).
pub fn boot_releases() -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(BOOT) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {BOOT}")),
    };
    let names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    Ok(releases_in_listing(&names))
}

fn releases_in_listing(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter_map(|n| n.strip_prefix("vmlinuz-"))
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A kernel to boot.
pub struct Kernel {
    /// `uname -r` in the guest.
    pub release: String,
    pub image: PathBuf,
}

impl Kernel {
    /// The newest kernel of `series` in /boot, if any (`cargo xtask setup` installs one).
    pub fn find(series: &'static KernelSeries) -> Result<Option<Self>> {
        let releases = boot_releases()?;
        Ok(series
            .newest(releases.iter().map(String::as_str))
            .map(|release| Self {
                release: release.to_owned(),
                image: Path::new(BOOT).join(format!("vmlinuz-{release}")),
            }))
    }
}

/// The series `LB_VM_KERNELS` selects: unset, empty or `all` for every one, `none` for none
/// (a quick local run), else a comma-separated list of series names (`6.12`).
pub fn selected_series(setting: Option<&str>) -> Result<Vec<&'static KernelSeries>> {
    let setting = setting.map(str::trim).unwrap_or("");
    match setting {
        "" | "all" => return Ok(KERNEL_MATRIX.iter().collect()),
        "none" => return Ok(Vec::new()),
        _ => {}
    }
    setting
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            KERNEL_MATRIX
                .iter()
                .find(|s| s.name == name)
                .with_context(|| {
                    let names: Vec<&str> = KERNEL_MATRIX.iter().map(|s| s.name).collect();
                    format!(
                        "LB_VM_KERNELS names kernel series {name:?}; known: {}, or all, none",
                        names.join(", ")
                    )
                })
        })
        .collect()
}

/// The virtme-ng front end: `vng` on PATH, else in the scripts directory of the `python3` on
/// PATH (where pip puts it, and which a pyenv set-up may not have on PATH yet). Only one that
/// starts counts: a pyenv shim exists for every version once any version has the program.
pub fn vng() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("vng")];
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .stderr(Stdio::null())
        .output()
        && out.status.success()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !dir.is_empty() {
            candidates.push(Path::new(&dir).join("vng"));
        }
    }
    candidates
        .into_iter()
        .find(|c| crate::setup::tool_version(c).is_some())
}

/// vng, or an error saying how to get it.
pub fn require_vng() -> Result<PathBuf> {
    match vng() {
        Some(vng) => Ok(vng),
        None => bail!("virtme-ng's `vng` is not installed (`cargo xtask setup` installs it)"),
    }
}

/// What the guest runs: `program ARGS` in `dir`, with `env`.
pub struct GuestCommand<'a> {
    pub dir: &'a Path,
    pub env: Vec<(String, OsString)>,
    pub program: &'a Path,
    pub args: Vec<OsString>,
}

/// Guest memory: the fixtures need little, but the emulated guest has no swap.
const MEMORY: &str = "2G";
/// Two CPUs: per-CPU maps are then really per CPU. QEMU emulates each on a host thread.
const CPUS: &str = "2";

/// The shell script the guest runs (vng hands its command to `sh -c`).
fn guest_script(release: &str, cmd: &GuestCommand) -> String {
    let mut exec = String::from("exec env");
    for (name, value) in &cmd.env {
        let mut pair = OsString::from(format!("{name}="));
        pair.push(value);
        exec.push(' ');
        exec.push_str(&shell_quote(&pair.to_string_lossy()));
    }
    exec.push(' ');
    exec.push_str(&shell_quote(&cmd.program.to_string_lossy()));
    for arg in &cmd.args {
        exec.push(' ');
        exec.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    let release = shell_quote(release);
    [
        "set -e".to_owned(),
        // The phase is labelled with this release: make sure it is the one running.
        format!(
            "if [ \"$(uname -r)\" != {release} ]; then \
             echo \"vm: booted $(uname -r), not \"{release} >&2; exit 1; fi"
        ),
        "mount -t bpf bpf /sys/fs/bpf".to_owned(),
        // vng's /run is a tmpfs already (Unix sockets cannot live on the 9p root).
        "grep -q '^[^ ]* /run tmpfs ' /proc/mounts || mount -t tmpfs tmpfs /run".to_owned(),
        format!("cd {}", shell_quote(&cmd.dir.to_string_lossy())),
        exec,
    ]
    .join("\n")
}

/// `s` as one word for `sh`.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=+:,@%".contains(&b))
    {
        return s.to_owned();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Host environment variables the guest gets (vng passes none through): the tests' own
/// settings (`LB_*`) and Rust's (`RUST_BACKTRACE`, `RUST_LOG`, `RUST_TEST_*`).
pub fn passed_env() -> Vec<(String, OsString)> {
    let mut env: Vec<(String, OsString)> = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
        .filter(|(name, _)| passes_to_guest(name))
        .collect();
    env.sort();
    env
}

fn passes_to_guest(name: &str) -> bool {
    (name.starts_with("LB_") || name.starts_with("RUST_")) && name != "LB_VM_KERNELS"
}

/// A running VM.
pub struct Guest {
    child: Child,
    stdout: Option<ChildStdout>,
    stderr_copier: Option<JoinHandle<()>>,
    done: Arc<AtomicBool>,
    timed_out: Arc<AtomicBool>,
    watchdog: Option<JoinHandle<()>>,
}

/// How a guest ended.
pub struct GuestExit {
    pub status: ExitStatus,
    /// Ended by the watchdog after the time limit.
    pub timed_out: bool,
}

impl Guest {
    /// Boots `kernel` and runs `cmd` in it; the caller reads [`Guest::stdout`] and then waits.
    ///
    /// vng runs in a process group of its own, so that the whole tree (vng, virtme-run, QEMU)
    /// can be ended together; that group is not the terminal's, so Ctrl-C does not reach it,
    /// and a watchdog thread ends it instead, on Ctrl-C or after `limit`. stdin is /dev/null
    /// (else QEMU takes the terminal), stdout and stderr are pipes (see the module's notes).
    pub fn start(vng: &Path, kernel: &Kernel, cmd: &GuestCommand, limit: Duration) -> Result<Self> {
        let mut vng_cmd = Command::new(vng);
        vng_cmd
            .arg("--run")
            .arg(&kernel.image)
            .args(["--disable-kvm", "--memory", MEMORY, "--cpus", CPUS, "--"])
            .arg(guest_script(&kernel.release, cmd))
            .current_dir(cmd.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = vng_cmd
            .spawn()
            .with_context(|| format!("starting `{}`", workspace::display(&vng_cmd)))?;
        let stdout = child.stdout.take();
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_copier = std::thread::spawn(move || {
            let mut buf = [0; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                // Through std's stderr lock, so that writes do not interleave with xtask's own.
                let _ = std::io::stderr().lock().write_all(&buf[..n]);
            }
        });
        let done = Arc::new(AtomicBool::new(false));
        let timed_out = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (done, timed_out) = (done.clone(), timed_out.clone());
            let group = child.id() as libc::pid_t;
            std::thread::spawn(move || watch(group, limit, &done, &timed_out))
        };
        Ok(Self {
            child,
            stdout,
            stderr_copier: Some(stderr_copier),
            done,
            timed_out,
            watchdog: Some(watchdog),
        })
    }

    /// The guest command's stdout, once.
    pub fn stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    pub fn wait(mut self) -> Result<GuestExit> {
        let status = self.child.wait().context("waiting for vng")?;
        self.done.store(true, Ordering::SeqCst);
        if let Some(copier) = self.stderr_copier.take() {
            let _ = copier.join();
        }
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        Ok(GuestExit {
            status,
            timed_out: self.timed_out.load(Ordering::SeqCst),
        })
    }
}

/// Ends process group `group` (SIGTERM, then SIGKILL if it lingers) on Ctrl-C or once `limit`
/// has passed, unless `done` is set first.
fn watch(group: libc::pid_t, limit: Duration, done: &AtomicBool, timed_out: &AtomicBool) {
    let start = Instant::now();
    let tick = Duration::from_millis(200);
    while !done.load(Ordering::SeqCst) {
        let late = start.elapsed() > limit;
        if late || interrupt::interrupted() {
            if late {
                timed_out.store(true, Ordering::SeqCst);
                eprintln!(
                    "vm: still running after {} min: ending it",
                    limit.as_secs() / 60
                );
            }
            // SAFETY: kill has no memory-safety preconditions; a negative pid names the group
            // vng leads, which lives until `done` (vng is reaped only after that is checked).
            unsafe { libc::kill(-group, libc::SIGTERM) };
            let grace = Instant::now();
            while !done.load(Ordering::SeqCst) {
                if grace.elapsed() > Duration::from_secs(10) {
                    // SAFETY: as above.
                    unsafe { libc::kill(-group, libc::SIGKILL) };
                    return;
                }
                std::thread::sleep(tick);
            }
            return;
        }
        std::thread::sleep(tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str) -> &'static KernelSeries {
        KERNEL_MATRIX.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn releases_come_from_the_boot_listing() {
        let names = [
            "System.map-6.1.0-57-amd64",
            "config-6.12.118+deb12-amd64",
            "initrd.img-6.1.0-57-amd64",
            "vmlinuz-6.1.0-57-amd64",
            "vmlinuz-6.12.118+deb12-amd64",
            "vmlinuz-",
            "vmlinuz",
        ]
        .map(String::from);
        assert_eq!(
            releases_in_listing(&names),
            ["6.1.0-57-amd64", "6.12.118+deb12-amd64"]
        );
    }

    #[test]
    fn each_series_picks_its_newest_generic_kernel() {
        let releases = [
            "6.1.0-9-amd64",
            "6.1.0-57-amd64",
            "6.1.0-50-amd64",
            "6.1.0-58-cloud-amd64",
            "6.1.0-59-rt-amd64",
            "6.12.9+deb12-amd64",
            "6.12.118+deb12-amd64",
            "6.12.120+deb12-cloud-amd64",
            "6.12.121+deb13-amd64",
            "6.18.44-fc-v1252",
        ];
        assert_eq!(series("6.1").newest(releases), Some("6.1.0-57-amd64"));
        assert_eq!(
            series("6.12").newest(releases),
            Some("6.12.118+deb12-amd64")
        );
        assert_eq!(series("6.1").newest(["6.12.118+deb12-amd64"]), None);
        assert_eq!(series("6.12").newest(["6.1.0-57-amd64"]), None);
    }

    #[test]
    fn packages_map_to_releases() {
        let s = series("6.12");
        assert_eq!(
            KernelSeries::package("6.12.118+deb12-amd64"),
            "linux-image-6.12.118+deb12-amd64-unsigned"
        );
        assert_eq!(
            s.release_of_package("linux-image-6.12.118+deb12-amd64-unsigned"),
            Some("6.12.118+deb12-amd64")
        );
        assert_eq!(
            s.release_of_package("linux-image-6.12.118+deb12-cloud-amd64-unsigned"),
            None
        );
        assert_eq!(
            s.release_of_package("linux-image-6.12.118+deb12-amd64"),
            None
        );
        assert_eq!(
            series("6.1").release_of_package("linux-image-6.1.0-57-amd64-unsigned"),
            Some("6.1.0-57-amd64")
        );
    }

    #[test]
    fn package_regexes_escape_dots_and_pluses() {
        assert_eq!(
            series("6.1").package_regex(),
            r"^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$"
        );
        assert_eq!(
            series("6.12").package_regex(),
            r"^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$"
        );
    }

    #[test]
    fn lb_vm_kernels_selects_series() {
        let names = |setting| {
            selected_series(setting)
                .unwrap()
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["6.1", "6.12"]);
        assert_eq!(names(Some("all")), ["6.1", "6.12"]);
        assert_eq!(names(Some("")), ["6.1", "6.12"]);
        assert!(names(Some("none")).is_empty());
        assert_eq!(names(Some("6.12")), ["6.12"]);
        assert_eq!(names(Some(" 6.12, 6.1 ")), ["6.12", "6.1"]);
        assert!(selected_series(Some("5.10")).is_err());
    }

    #[test]
    fn words_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("--test-threads=1"), "--test-threads=1");
        assert_eq!(shell_quote("/w/target/debug"), "/w/target/debug");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
    }

    #[test]
    fn the_guest_script_checks_the_kernel_then_runs_the_command() {
        let cmd = GuestCommand {
            dir: Path::new("/w/tests"),
            env: vec![("LB_BIN_DIR".into(), "/w/target/debug".into())],
            program: Path::new("/w/target/debug/deps/datapath-0123"),
            args: vec!["--test-threads=1".into(), "nat only".into()],
        };
        let script = guest_script("6.12.118+deb12-amd64", &cmd);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines[0], "set -e");
        assert!(lines[1].contains(r#"[ "$(uname -r)" != 6.12.118+deb12-amd64 ]"#));
        assert!(lines.contains(&"mount -t bpf bpf /sys/fs/bpf"));
        assert_eq!(
            lines.last().unwrap(),
            &"exec env LB_BIN_DIR=/w/target/debug /w/target/debug/deps/datapath-0123 \
              --test-threads=1 'nat only'"
        );
        assert!(lines.contains(&"cd /w/tests"));
    }

    #[test]
    fn only_test_settings_pass_to_the_guest() {
        assert!(passes_to_guest("LB_BIN_DIR"));
        assert!(passes_to_guest("RUST_BACKTRACE"));
        assert!(!passes_to_guest("LB_VM_KERNELS"));
        assert!(!passes_to_guest("RUSTUP_TOOLCHAIN"));
        assert!(!passes_to_guest("PATH"));
    }
}
