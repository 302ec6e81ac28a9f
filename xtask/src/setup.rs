//! `cargo xtask setup`: installs what building, testing and the labs need, skipping whatever is
//! already present, so that it is quick once the machine is set up.
//!
//! 1. Debian packages (tools the tests, labs and benchmarks drive), through apt-get.
//! 2. The nightly toolchain's `rust-src` component (`-Z build-std=core` for the BPF target).
//! 3. bpf-linker, built from crates.io against the nightly toolchain's own libLLVM (no prebuilt
//!    binary or system LLVM of the right version is available).
//! 4. The kernel matrix's VMs: a Debian kernel per series of [`vm::KERNEL_MATRIX`] (the newest
//!    one apt offers, unless one is in /boot already) and virtme-ng from PyPI, which boots them
//!    (QEMU and busybox come with the Debian packages above).

use std::{
    collections::HashMap,
    fs,
    os::unix::fs::{PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    run::is_root,
    vm::{self, KernelSeries},
    workspace::{self, output, run_checked},
};

pub fn run() -> Result<()> {
    step!("setup: Debian packages");
    apt_packages()?;
    step!("setup: nightly rust-src component");
    rust_src()?;
    step!("setup: bpf-linker {BPF_LINKER_VERSION}");
    bpf_linker()?;
    step!("setup: kernels for the VM test phases");
    vm_kernels()?;
    step!("setup: virtme-ng {VIRTME_NG_VERSION} (vng, boots them)");
    virtme_ng()?;
    step!("setup: done");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Debian packages

struct AptPackage {
    /// The package apt-get installs.
    name: &'static str,
    /// Other packages that provide the same thing; any one installed counts as present.
    or: &'static [&'static str],
    /// What it is for, shown when it is missing.
    why: &'static str,
}

const fn pkg(name: &'static str, why: &'static str) -> AptPackage {
    AptPackage { name, or: &[], why }
}

const APT_PACKAGES: &[AptPackage] = &[
    pkg("iproute2", "ip, ss, tc: namespaces, veth, bridges"),
    pkg("iputils-ping", "ping"),
    pkg("tcpdump", "packet captures"),
    pkg("ethtool", "NIC offloads and queues"),
    pkg("bpftool", "inspecting loaded programs and maps"),
    pkg("nftables", "nft: side-by-side NAT/DR peer"),
    pkg("wrk", "HTTP load generator"),
    pkg("apache2-utils", "ab: HTTP load generator"),
    AptPackage {
        name: "nginx",
        or: &["nginx-light", "nginx-core", "nginx-full", "nginx-extras"],
        why: "real servers",
    },
    pkg("haproxy", "user-space load-balancer peer"),
    pkg("keepalived", "VRRP failover of the director"),
    pkg("bird2", "BGP: directors announcing VIPs to an ECMP router"),
    pkg("curl", "HTTP client"),
    pkg("iperf3", "throughput tests"),
    pkg("socat", "TCP/UDP test clients and servers"),
    pkg("netcat-openbsd", "nc"),
    pkg(
        "openssl",
        "openssl s_server: the TLS real server of the SSL_GET test",
    ),
    pkg("dnsmasq", "DNS server on a real server: the DNS_CHECK test"),
    pkg("python3", "helper scripts"),
    pkg("qemu-system-x86", "the VMs of the kernel matrix"),
    pkg("busybox-static", "virtme-ng's guest tools"),
    pkg("systemd", "systemd-analyze verify: the packaged units"),
    pkg("man-db", "man -l: the packaged man pages render"),
    pkg("groff-base", "groff: the man pages render without warnings"),
    pkg(
        "util-linux",
        "setpriv: the packaged lbd under its unit's capabilities",
    ),
];

/// Services that the packages above may start system-wide, by package and unit; the tests and
/// labs start their own instances per namespace instead.
const SERVICES: &[(&str, &str)] = &[
    ("nginx", "nginx"),
    ("haproxy", "haproxy"),
    ("keepalived", "keepalived"),
    ("bird2", "bird"),
    ("dnsmasq", "dnsmasq"),
];

fn apt_packages() -> Result<()> {
    let names: Vec<&str> = APT_PACKAGES
        .iter()
        .flat_map(|p| std::iter::once(p.name).chain(p.or.iter().copied()))
        .collect();
    let installed = dpkg_installed(&names)?;
    let mut missing = Vec::new();
    for p in APT_PACKAGES {
        match std::iter::once(p.name)
            .chain(p.or.iter().copied())
            .find(|n| installed.contains_key(*n))
        {
            Some(n) => println!("    {}: present ({n} {})", p.name, installed[n]),
            None => {
                println!("    {}: missing ({})", p.name, p.why);
                missing.push(p.name);
            }
        }
    }
    if !missing.is_empty() {
        if !is_root() {
            bail!(
                "installing {} needs root; run this as root",
                missing.join(" ")
            );
        }
        apt_get_update()?;
        step!("apt-get install {}", missing.join(" "));
        {
            let _guard = ServiceStartGuard::install()?;
            run_checked(
                apt_get()
                    .args(["install", "-y", "--no-install-recommends"])
                    .args(&missing),
            )?;
        }
        let installed = dpkg_installed(&missing)?;
        let still_missing: Vec<_> = missing
            .iter()
            .filter(|n| !installed.contains_key(**n))
            .collect();
        if !still_missing.is_empty() {
            bail!("apt-get did not install {still_missing:?}");
        }
    }
    for (_, service) in SERVICES {
        quiesce_service(service);
    }
    Ok(())
}

/// `apt-get update`, at most once per run.
fn apt_get_update() -> Result<()> {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.load(Ordering::SeqCst) {
        return Ok(());
    }
    step!("apt-get update");
    run_checked(apt_get().arg("update"))?;
    DONE.store(true, Ordering::SeqCst);
    Ok(())
}

fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

/// Installed packages among `names`, with their versions.
fn dpkg_installed(names: &[&str]) -> Result<HashMap<String, String>> {
    // dpkg-query exits 1 when some name is unknown but still reports the others.
    let out = Command::new("dpkg-query")
        .arg("-W")
        .arg("-f=${Package}\t${Status}\t${Version}\n")
        .args(names)
        .stderr(Stdio::null())
        .output()
        .context("running dpkg-query (setup needs a Debian-based system with apt)")?;
    Ok(parse_dpkg_status(&String::from_utf8_lossy(&out.stdout)))
}

fn parse_dpkg_status(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let (name, status, version) = (fields.next()?, fields.next()?, fields.next()?);
            (status == "install ok installed").then(|| (name.to_owned(), version.to_owned()))
        })
        .collect()
}

/// Keeps maintainer scripts from starting services during `apt-get install`, through the
/// standard invoke-rc.d policy hook; removed again when dropped. An existing hook is left alone.
struct ServiceStartGuard {
    remove_on_drop: Option<PathBuf>,
}

impl ServiceStartGuard {
    const PATH: &str = "/usr/sbin/policy-rc.d";
    const MARK: &str = "written by lb's cargo xtask setup";

    fn install() -> Result<Self> {
        let path = Path::new(Self::PATH);
        if path.exists() {
            // Ours, left behind by a killed run, goes after this install; another one stays.
            let ours = fs::read_to_string(path).is_ok_and(|text| text.contains(Self::MARK));
            return Ok(Self {
                remove_on_drop: ours.then(|| path.to_owned()),
            });
        }
        println!(
            "    (temporarily writing {} so packages do not start services)",
            Self::PATH
        );
        fs::write(
            path,
            format!(
                "#!/bin/sh\n# {}: no service starts during install\nexit 101\n",
                Self::MARK
            ),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))?;
        Ok(Self {
            remove_on_drop: Some(path.to_owned()),
        })
    }
}

impl Drop for ServiceStartGuard {
    fn drop(&mut self) {
        if let Some(path) = &self.remove_on_drop
            && let Err(e) = fs::remove_file(path)
        {
            eprintln!("warning: could not remove {}: {e}", path.display());
        }
    }
}

/// Makes sure the distribution's own instance of `service` neither runs nor starts at boot:
/// tests and labs run their own per namespace, and a system-wide one would clash with them.
/// Failures are tolerated: there may be no systemd, no init scripts, or no unit at all.
fn quiesce_service(service: &str) {
    let unit = Path::new("/lib/systemd/system").join(format!("{service}.service"));
    let init_script = Path::new("/etc/init.d").join(service);
    if !unit.exists() && !init_script.exists() {
        return;
    }
    let systemd_running = Path::new("/run/systemd/system").exists();
    // systemctl also edits the sysv rc links, and works without systemd running.
    let enabled = if has_program("systemctl") {
        quiet(Command::new("systemctl").args(["is-enabled", "--quiet", service]))
    } else {
        sysv_enabled(service)
    };
    if enabled {
        let disabled = if has_program("systemctl") {
            quiet(Command::new("systemctl").args(["disable", service]))
        } else {
            quiet(Command::new("update-rc.d").args([service, "disable"]))
        };
        if disabled {
            println!("    {service} service: was enabled at boot, disabled it");
        } else {
            eprintln!("warning: could not disable the {service} service at boot");
        }
    }
    let running = if systemd_running {
        quiet(Command::new("systemctl").args(["is-active", "--quiet", service]))
    } else {
        pidfile_alive(service)
    };
    if !running {
        println!("    {service} service: not running");
        return;
    }
    println!("    {service} service: running system-wide, stopping it (tests start their own)");
    let stopped = if systemd_running {
        quiet(Command::new("systemctl").args(["stop", service]))
    } else {
        quiet(Command::new("service").args([service, "stop"]))
    };
    if !stopped {
        eprintln!("warning: could not stop the {service} service; stop it by hand");
    }
}

/// Whether some runlevel starts `service` through a sysv `S??service` link.
fn sysv_enabled(service: &str) -> bool {
    "0123456S".chars().any(|level| {
        fs::read_dir(format!("/etc/rc{level}.d")).is_ok_and(|entries| {
            entries
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .any(|name| name.starts_with('S') && name.get(3..) == Some(service))
        })
    })
}

/// Whether the Debian default pid file of `service` names a live process of that name.
fn pidfile_alive(service: &str) -> bool {
    let Ok(pid) = fs::read_to_string(format!("/run/{service}.pid")) else {
        return false;
    };
    let Ok(pid) = pid.trim().parse::<u32>() else {
        return false;
    };
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == service)
}

/// Runs `cmd` with its output discarded; true when it succeeded.
fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn has_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

// ---------------------------------------------------------------------------------------------
// nightly rust-src

const NIGHTLY: &str = "nightly";

fn rust_src() -> Result<()> {
    let out = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        NIGHTLY,
        "--installed",
    ]))
    .context("the nightly toolchain is needed to build the eBPF object")?;
    let listed = String::from_utf8_lossy(&out.stdout);
    if listed
        .lines()
        .any(|line| line.trim() == "rust-src" || line.starts_with("rust-src-"))
    {
        println!("    rust-src: present");
        return Ok(());
    }
    println!("    rust-src: missing (needed for -Z build-std=core)");
    step!("rustup component add rust-src --toolchain {NIGHTLY}");
    run_checked(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        NIGHTLY,
    ]))
}

// ---------------------------------------------------------------------------------------------
// bpf-linker

const BPF_LINKER_VERSION: &str = "0.13.0";

fn bpf_linker() -> Result<()> {
    let series = BPF_LINKER_VERSION.rsplit_once('.').expect("x.y.z").0;
    let cargo_bin = cargo_home()?.join("bin");
    match tool_version(Path::new("bpf-linker")) {
        Some(v) if version_in_series(&v, series) => {
            println!("    bpf-linker: present ({v})");
            return Ok(());
        }
        Some(v) => println!("    bpf-linker: found {v}, want {series}.x: reinstalling"),
        None => match tool_version(&cargo_bin.join("bpf-linker")) {
            Some(v) if version_in_series(&v, series) => {
                println!("    bpf-linker: present ({v}) in {}", cargo_bin.display());
                println!(
                    "warning: {} is not on PATH; the eBPF build will not find bpf-linker",
                    cargo_bin.display()
                );
                return Ok(());
            }
            _ => println!("    bpf-linker: missing or not starting (its libLLVM may have moved)"),
        },
    }

    let llvm = NightlyLlvm::find()?;
    let prefix = home()?.join(".local/share/lb-toolchain/llvm");
    step!(
        "linking {} (LLVM {}) into {}",
        llvm.lib.display(),
        llvm.major,
        prefix.join("lib").display()
    );
    llvm.link_into(&prefix)?;

    let feature = format!("llvm-{}", llvm.major);
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args([
        "install",
        "bpf-linker",
        "--locked",
        "--force",
        "--version",
        BPF_LINKER_VERSION,
    ])
    .args(["--no-default-features", "--features", &feature])
    .env("LLVM_PREFIX", &prefix)
    // Build in a temporary directory, away from the workspace and its target directory.
    .env_remove("CARGO_TARGET_DIR")
    .current_dir(&prefix);
    step!(
        "LLVM_PREFIX={} {} (takes a few minutes)",
        prefix.display(),
        workspace::display(&cmd)
    );
    run_checked(&mut cmd).with_context(|| {
        format!(
            "building bpf-linker {BPF_LINKER_VERSION} against the nightly toolchain's LLVM {} \
             (does bpf-linker {BPF_LINKER_VERSION} have the `{feature}` feature?)",
            llvm.major
        )
    })?;

    let installed = cargo_bin.join("bpf-linker");
    match tool_version(&installed) {
        Some(v) if version_in_series(&v, series) => println!("    bpf-linker: installed ({v})"),
        other => bail!(
            "{} does not run after installing it (reports {other:?})",
            installed.display()
        ),
    }
    if tool_version(Path::new("bpf-linker")).is_none() {
        println!(
            "warning: {} is not on PATH; the eBPF build will not find bpf-linker",
            cargo_bin.display()
        );
    }
    Ok(())
}

/// The version a tool prints as the last word of `--version` (`bpf-linker 0.13.0`,
/// `virtme-ng 1.42`), if it starts: bpf-linker links libLLVM dynamically, vng is a Python
/// script, and either may be installed but broken.
pub fn tool_version(program: &Path) -> Option<String> {
    let out = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .map(str::to_owned)
}

fn version_in_series(version: &str, series: &str) -> bool {
    version
        .strip_prefix(series)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The nightly toolchain's shared libLLVM.
struct NightlyLlvm {
    /// `<sysroot>/lib/libLLVM.so.<ver>-rust-<rustc ver>`.
    lib: PathBuf,
    major: u32,
}

impl NightlyLlvm {
    fn find() -> Result<Self> {
        let sysroot = rustc_nightly(&["--print", "sysroot"])?;
        let lib_dir = Path::new(sysroot.trim()).join("lib");
        let names: Vec<String> = fs::read_dir(&lib_dir)
            .with_context(|| format!("listing {}", lib_dir.display()))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        let name = pick_libllvm(&names)
            .with_context(|| format!("no libLLVM.so.* in {}", lib_dir.display()))?;
        let major = llvm_major(&rustc_nightly(&["-vV"])?)
            .context("`rustc +nightly -vV` reports no LLVM version")?;
        if !name.starts_with(&format!("libLLVM.so.{major}.")) {
            bail!("{name} does not look like LLVM {major}, which `rustc +nightly -vV` reports");
        }
        Ok(Self {
            lib: lib_dir.join(name),
            major,
        })
    }

    /// Makes `prefix/lib` hold `libLLVM.so` and `<file name>`, both symlinks to the library:
    /// bpf-linker's build links `-lLLVM` from there and its binary keeps an rpath to it.
    fn link_into(&self, prefix: &Path) -> Result<()> {
        let lib_dir = prefix.join("lib");
        fs::create_dir_all(&lib_dir).with_context(|| format!("creating {}", lib_dir.display()))?;
        let file_name = self.lib.file_name().expect("a file");
        for link in [lib_dir.join("libLLVM.so"), lib_dir.join(file_name)] {
            if fs::read_link(&link).is_ok_and(|target| target == self.lib) {
                continue;
            }
            if link.symlink_metadata().is_ok() {
                fs::remove_file(&link).with_context(|| format!("removing {}", link.display()))?;
            }
            symlink(&self.lib, &link).with_context(|| format!("linking {}", link.display()))?;
            println!("    {} -> {}", link.display(), self.lib.display());
        }
        Ok(())
    }
}

fn rustc_nightly(args: &[&str]) -> Result<String> {
    let out = output(Command::new("rustc").arg(format!("+{NIGHTLY}")).args(args))
        .context("the nightly toolchain is needed (it should be preinstalled)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The shared library itself, not the `libLLVM-<major>-rust-*.so` linker script beside it.
fn pick_libllvm(names: &[String]) -> Option<&str> {
    names
        .iter()
        .map(String::as_str)
        .filter(|n| n.starts_with("libLLVM.so."))
        .min()
}

/// The major version in `rustc -vV`'s `LLVM version: 22.1.4` line.
fn llvm_major(version_info: &str) -> Option<u32> {
    version_info
        .lines()
        .find_map(|line| line.strip_prefix("LLVM version: "))?
        .split('.')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn home() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set")
}

fn cargo_home() -> Result<PathBuf> {
    match std::env::var_os("CARGO_HOME") {
        Some(dir) => Ok(dir.into()),
        None => Ok(home()?.join(".cargo")),
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel matrix: Debian kernels and virtme-ng

/// Installs, for each series of the matrix without a kernel in /boot, the newest kernel apt
/// offers. Not a fixed version: Debian drops a kernel's packages from its archive once a newer
/// update is out. Installing also builds an initramfs per kernel (about a minute each), which
/// vng does not use but the packages insist on.
fn vm_kernels() -> Result<()> {
    let releases = vm::boot_releases()?;
    let mut missing = Vec::new();
    for series in vm::KERNEL_MATRIX {
        match series.newest(releases.iter().map(String::as_str)) {
            Some(release) => println!("    Linux {}: present ({release})", series.name),
            None => {
                println!("    Linux {}: missing", series.name);
                missing.push(series);
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("installing kernels for the VM tests needs root; run this as root");
    }
    apt_get_update()?;
    let mut packages = Vec::new();
    for series in missing {
        let package = newest_kernel_package(series)?;
        println!("    Linux {}: installing {package}", series.name);
        packages.push(package);
    }
    step!(
        "apt-get install {} (a few minutes: initramfs)",
        packages.join(" ")
    );
    run_checked(
        apt_get()
            .args(["install", "-y", "--no-install-recommends"])
            .args(&packages),
    )?;
    let releases = vm::boot_releases()?;
    for series in vm::KERNEL_MATRIX {
        if series.newest(releases.iter().map(String::as_str)).is_none() {
            bail!(
                "no Linux {} kernel in /boot after installing it",
                series.name
            );
        }
    }
    Ok(())
}

/// The newest package of `series` that apt can install.
fn newest_kernel_package(series: &KernelSeries) -> Result<String> {
    let regex = series.package_regex();
    let out = output(Command::new("apt-cache").args(["search", "--names-only", &regex]))?;
    let mut releases: Vec<&str> = Vec::new();
    let listing = String::from_utf8_lossy(&out.stdout);
    for package in search_result_names(&listing) {
        releases.extend(series.release_of_package(package));
    }
    // Newest first; the first with an installation candidate wins.
    while let Some(release) = series.newest(releases.iter().copied()) {
        let package = KernelSeries::package(release);
        let policy = output(Command::new("apt-cache").args(["policy", &package]))?;
        if has_candidate(&String::from_utf8_lossy(&policy.stdout)) {
            return Ok(package);
        }
        releases.retain(|r| *r != release);
    }
    bail!(
        "apt offers no Linux {} kernel package (`apt-cache search --names-only '{regex}'`)",
        series.name
    )
}

/// The package names in `apt-cache search` output (`name - description`).
fn search_result_names(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter_map(|line| line.split_once(" - ").map(|(name, _)| name.trim()))
}

/// Whether `apt-cache policy` output shows a version to install (`Candidate: (none)` when the
/// package is known but no archive has it).
fn has_candidate(policy: &str) -> bool {
    policy
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .is_some_and(|candidate| {
            let candidate = candidate.trim();
            !candidate.is_empty() && candidate != "(none)"
        })
}

/// The virtme-ng release checked with lb's VM phases (how it hands back output and exit
/// status is what `vm.rs` relies on).
const VIRTME_NG_VERSION: &str = "1.42";

/// Installs virtme-ng with the pip of the `python3` on PATH (a pyenv one on CI machines, so
/// `--break-system-packages` only matters for Debian's own Python), unless `vng` starts.
fn virtme_ng() -> Result<()> {
    if let Some(vng) = vm::vng() {
        let version = tool_version(&vng).unwrap_or_default();
        println!("    vng: present ({version}, {})", vng.display());
        return Ok(());
    }
    println!("    vng: missing (boots the kernels of the VM test phases)");
    if !is_root() {
        bail!("installing virtme-ng needs root; run this as root");
    }
    if !quiet(Command::new("python3").args(["-m", "pip", "--version"])) {
        apt_get_update()?;
        step!("apt-get install python3-pip");
        run_checked(apt_get().args(["install", "-y", "--no-install-recommends", "python3-pip"]))?;
    }
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "pip",
        "install",
        "--break-system-packages",
        &format!("virtme-ng=={VIRTME_NG_VERSION}"),
    ]);
    step!("{}", workspace::display(&cmd));
    run_checked(&mut cmd)?;
    // A pyenv Python gets its shim for the new program from a rehash.
    if has_program("pyenv") {
        quiet(Command::new("pyenv").arg("rehash"));
    }
    match vm::vng() {
        Some(vng) => {
            println!("    vng: installed ({})", vng.display());
            Ok(())
        }
        None => bail!("`vng` does not start after installing virtme-ng"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_status_keeps_installed_packages_only() {
        let text = "curl\tinstall ok installed\t7.88.1-10+deb12u15\n\
                    nginx\tdeinstall ok config-files\t1.22.1-9\n\
                    wrk\tinstall ok half-configured\t4.1.0-3\n";
        let installed = parse_dpkg_status(text);
        assert_eq!(installed.len(), 1);
        assert_eq!(installed["curl"], "7.88.1-10+deb12u15");
    }

    #[test]
    fn libllvm_is_the_shared_object_not_the_linker_script() {
        let names = [
            "librustc_driver-b5a965480ee51f9a.so",
            "libLLVM-22-rust-1.97.0-nightly.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
            "rustlib",
        ]
        .map(String::from);
        assert_eq!(
            pick_libllvm(&names),
            Some("libLLVM.so.22.1-rust-1.97.0-nightly")
        );
        assert_eq!(pick_libllvm(&names[..2]), None);
    }

    #[test]
    fn llvm_major_comes_from_rustc_version_info() {
        let info = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nbinary: rustc\n\
                    release: 1.97.0-nightly\nLLVM version: 22.1.4\n";
        assert_eq!(llvm_major(info), Some(22));
        assert_eq!(llvm_major("rustc 1.0.0\n"), None);
    }

    #[test]
    fn versions_match_their_series() {
        assert!(version_in_series("0.13.0", "0.13"));
        assert!(version_in_series("0.13.12", "0.13"));
        assert!(!version_in_series("0.130.0", "0.13"));
        assert!(!version_in_series("0.12.9", "0.13"));
    }

    #[test]
    fn apt_search_results_name_packages() {
        let text = "linux-image-6.1.0-56-amd64-unsigned - Linux 6.1 for 64-bit PCs\n\
                    linux-image-6.1.0-57-amd64-unsigned - Linux 6.1 for 64-bit PCs\n\
                    linux-image-6.1.0-57-cloud-amd64-unsigned - Linux 6.1 for x86-64 cloud\n";
        let names: Vec<&str> = search_result_names(text).collect();
        assert_eq!(
            names,
            [
                "linux-image-6.1.0-56-amd64-unsigned",
                "linux-image-6.1.0-57-amd64-unsigned",
                "linux-image-6.1.0-57-cloud-amd64-unsigned"
            ]
        );
        let series = &vm::KERNEL_MATRIX[0];
        let releases: Vec<&str> = names
            .iter()
            .filter_map(|n| series.release_of_package(n))
            .collect();
        assert_eq!(series.newest(releases), Some("6.1.0-57-amd64"));
    }

    #[test]
    fn apt_policy_shows_whether_a_package_can_be_installed() {
        let available = "linux-image-6.1.0-57-amd64-unsigned:\n  Installed: (none)\n  \
                         Candidate: 6.1.192-3\n  Version table:\n     6.1.192-3 500\n";
        assert!(has_candidate(available));
        let gone = "linux-image-6.1.0-9-amd64-unsigned:\n  Installed: (none)\n  \
                    Candidate: (none)\n  Version table:\n";
        assert!(!has_candidate(gone));
        assert!(!has_candidate(""));
    }

    #[test]
    fn every_service_belongs_to_a_listed_package() {
        for (package, service) in SERVICES {
            assert!(
                APT_PACKAGES.iter().any(|p| p.name == *package),
                "{service}: {package}"
            );
        }
    }
}
