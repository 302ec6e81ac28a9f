//! The Debian package (`cargo xtask dist`; `cargo xtask test` builds it from the binaries under
//! test and passes its path in `LB_DEB`): its contents and metadata, its systemd units
//! (`systemd-analyze verify`), its man pages (rendered without warnings), its completions, and
//! the packaged lbd started from the package's layout in a network namespace, under its unit's
//! capability bounding set, telling a stand-in for systemd when it is ready, reloading and
//! stopping.

use std::{
    io::Read as _,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    time::Duration,
};

use lb_tests::{
    cmd::{self, Daemon},
    netns::Netns,
    testbed::TempDir,
    tools,
};

/// The package under test: `$LB_DEB`, else the one `cargo xtask test` builds.
fn deb() -> PathBuf {
    let path = match std::env::var_os("LB_DEB") {
        Some(path) => PathBuf::from(path),
        None => {
            let dist = tools::bin_dir().parent().unwrap().join("dist/test");
            std::fs::read_dir(&dist)
                .ok()
                .and_then(|entries| {
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .find(|p| p.extension().is_some_and(|x| x == "deb"))
                })
                .unwrap_or_else(|| dist.join("lb_VERSION_ARCH.deb"))
        }
    };
    assert!(
        path.is_file(),
        "{} not found: `cargo xtask test` builds it (or `cargo xtask dist`, then set LB_DEB)",
        path.display()
    );
    path
}

/// The package extracted (`dpkg-deb -x`) into a fresh directory.
fn extracted(name: &str) -> TempDir {
    let dir = TempDir::create(&format!("pkg-{}-{name}", std::process::id()));
    let root = dir.path().display().to_string();
    cmd::run(&["dpkg-deb", "-x", &deb().display().to_string(), &root]);
    dir
}

fn dpkg_deb(option: &str) -> String {
    cmd::run(&["dpkg-deb", option, &deb().display().to_string()])
}

/// `dpkg-deb -c`'s listing as (mode, path) pairs, paths without the leading `.`.
fn listing() -> Vec<(String, String)> {
    dpkg_deb("-c")
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let path = words[5].trim_start_matches('.').to_owned();
            assert_eq!(words[1], "root/root", "{line}");
            (words[0].to_owned(), path)
        })
        .collect()
}

#[test]
fn package_holds_the_programs_units_config_man_pages_and_completions() {
    let listing = listing();
    let mode_of = |path: &str| -> &str {
        listing
            .iter()
            .find(|(_, p)| p == path)
            .map(|(m, _)| m.as_str())
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing:#?}"))
    };
    let programs = ["/usr/sbin/lbd", "/usr/sbin/lbadm"];
    for program in programs {
        assert_eq!(mode_of(program), "-rwxr-xr-x", "{program}");
    }
    let others = [
        "/usr/lib/systemd/system/lbd.service",
        "/usr/lib/systemd/system/lbd-decap@.service",
        "/etc/default/lbd",
        "/usr/share/man/man8/lbd.8.gz",
        "/usr/share/man/man8/lbd-decap.8.gz",
        "/usr/share/man/man8/lbd-reload.8.gz",
        "/usr/share/man/man8/lbd-drain.8.gz",
        "/usr/share/man/man8/lbd-undrain.8.gz",
        "/usr/share/man/man8/lbd-status.8.gz",
        "/usr/share/man/man8/lbadm.8.gz",
        "/usr/share/bash-completion/completions/lbd",
        "/usr/share/bash-completion/completions/lbadm",
        "/usr/share/zsh/vendor-completions/_lbd",
        "/usr/share/zsh/vendor-completions/_lbadm",
        "/usr/share/doc/lb/copyright",
    ];
    for file in others {
        assert_eq!(mode_of(file), "-rw-r--r--", "{file}");
    }
    // Nothing the build machine left behind (the doc generator, stray files).
    let files: Vec<&str> = listing
        .iter()
        .filter(|(m, _)| !m.starts_with('d'))
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(files.len(), programs.len() + others.len(), "{files:#?}");

    let info = dpkg_deb("-I");
    for field in [
        "Package: lb\n",
        "Section: net\n",
        "Architecture: ",
        "Installed-Size: ",
    ] {
        assert!(info.contains(field), "no {field:?} in dpkg-deb -I:\n{info}");
    }
    let depends = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .unwrap_or_else(|| panic!("no Depends:\n{info}"));
    assert!(depends.starts_with("libc6 (>= 2."), "{depends}");
    // Every shared library lbd loads comes from a package it depends on.
    let lbd = extracted("ldd");
    let needed = cmd::run(&[
        "readelf",
        "-d",
        &lbd.path().join("usr/sbin/lbd").display().to_string(),
    ]);
    for line in needed.lines().filter(|l| l.contains("(NEEDED)")) {
        let lib = line.rsplit('[').next().unwrap().trim_end_matches(']');
        let covered = match lib {
            "libgcc_s.so.1" => depends.contains("libgcc-s1"),
            l if l.starts_with("libc.so")
                || l.starts_with("libm.so")
                || l.starts_with("ld-linux") =>
            {
                depends.contains("libc6")
            }
            _ => false,
        };
        assert!(
            covered,
            "lbd needs {lib}, which Depends ({depends}) does not bring"
        );
    }
    // The operator's settings survive upgrades.
    let control = extracted_control();
    let control = control.path().join("DEBIAN");
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert_eq!(conffiles, "/etc/default/lbd\n");
    for script in ["postinst", "prerm", "postrm"] {
        let path = control.join(script);
        let ran = cmd::try_run(&["sh", "-n", &path.display().to_string()], None);
        assert!(ran.success(), "{script} is not valid sh:\n{ran}");
        // systemctl only where systemd runs.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("[ -d /run/systemd/system ]"),
            "{script}:\n{text}"
        );
    }
}

/// The control files (`dpkg-deb -e`), in `DEBIAN/` of a fresh directory.
fn extracted_control() -> TempDir {
    let dir = TempDir::create(&format!("pkg-{}-control", std::process::id()));
    let target = dir.path().join("DEBIAN").display().to_string();
    cmd::run(&["dpkg-deb", "-e", &deb().display().to_string(), &target]);
    dir
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let root = extracted("units");
    // The units the package's units are ordered against (sysinit.target, ...) are the
    // system's: add them to the extracted tree without replacing the package's.
    let units = root.path().join("usr/lib/systemd/system");
    cmd::run(&[
        "cp",
        "-rn",
        "/usr/lib/systemd/system/.",
        &units.display().to_string(),
    ]);
    for unit in ["lbd.service", "lbd-decap@eth0.service"] {
        // --root: the units and the binaries they name come from the package.
        let ran = cmd::try_run(
            &[
                "systemd-analyze",
                "verify",
                "--man=no",
                &format!("--root={}", root.path().display()),
                unit,
            ],
            None,
        );
        assert!(ran.success(), "{unit}:\n{ran}");
        assert!(
            ran.stderr.trim().is_empty(),
            "systemd-analyze warned about {unit}:\n{ran}"
        );
    }
}

#[test]
fn man_pages_render_without_warnings() {
    let root = extracted("man");
    let dir = root.path().join("usr/share/man/man8");
    for page in [
        "lbd",
        "lbd-decap",
        "lbd-reload",
        "lbd-drain",
        "lbd-undrain",
        "lbd-status",
        "lbadm",
    ] {
        let path = dir.join(format!("{page}.8.gz"));
        let mut roff = String::new();
        flate(&path).read_to_string(&mut roff).unwrap();
        let source = root.path().join(format!("{page}.8"));
        std::fs::write(&source, &roff).unwrap();
        let source = source.display().to_string();
        // -ww: every warning; -z: only the diagnostics.
        let ran = cmd::try_run(&["groff", "-man", "-Tutf8", "-ww", "-z", &source], None);
        assert!(
            ran.success() && ran.stderr.trim().is_empty(),
            "{page}(8):\n{ran}"
        );
        let shown = cmd::try_run(
            &["man", "-l", "-P", "cat", &path.display().to_string()],
            None,
        );
        assert!(shown.success(), "man -l {page}:\n{shown}");
        let text = shown.stdout;
        for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"] {
            assert!(
                text.lines().any(|l| l == heading),
                "{page}(8) has no {heading}:\n{text}"
            );
        }
        // NAME reads `page - what it is` (justified: any run of spaces).
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains(&format!("NAME {page} - ")), "{text}");
    }
}

/// A reader of the gzip file `path` (with `gzip -dc`: lb-tests has no gzip crate).
fn flate(path: &Path) -> impl std::io::Read {
    let out = cmd::run(&["gzip", "-dc", &path.display().to_string()]);
    std::io::Cursor::new(out.into_bytes())
}

#[test]
fn bash_completions_load_and_complete_options() {
    let root = extracted("bash");
    let dir = root.path().join("usr/share/bash-completion/completions");
    for (program, word, expect) in [
        ("lbd", "--log", "--log-format"),
        ("lbadm", "--add-s", "--add-service"),
    ] {
        let script = format!(
            "source {}; COMP_WORDS=({program} {word}); COMP_CWORD=1; COMP_LINE='{program} {word}'; \
             COMP_POINT=${{#COMP_LINE}}; $(complete -p {program} | sed 's/.*-F \\([^ ]*\\) .*/\\1/') \
             {program} {word} {program}; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            dir.join(program).display()
        );
        let ran = cmd::try_run(&["bash", "-c", &script], None);
        assert!(
            ran.success() && ran.stdout.lines().any(|l| l.trim() == expect),
            "completing `{program} {word}`:\n{ran}"
        );
    }
}

/// The capabilities `CapabilityBoundingSet=` in `unit` gives, as setpriv spells them.
fn bounding_set(unit: &str) -> String {
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit bounds lbd's capabilities")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    format!("-all,{}", caps.join(","))
}

/// The notifications a stand-in for systemd received, one datagram at a time.
fn next_notification(socket: &UnixDatagram, what: &str) -> String {
    let mut buf = [0u8; 4096];
    match socket.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no notification from lbd ({what}): {e}"),
    }
}

#[test]
fn packaged_lbd_starts_in_a_namespace_with_its_units_capabilities() {
    tools::require_environment();
    let root = extracted("run");
    let lbd = root.path().join("usr/sbin/lbd").display().to_string();
    let lbadm = root.path().join("usr/sbin/lbadm").display().to_string();
    let version = cmd::run(&[&lbd, "--version"]);
    assert_eq!(version.trim(), format!("lbd {}", env!("CARGO_PKG_VERSION")));
    assert!(cmd::run(&[&lbd, "--help"]).contains("--log-format"));
    assert!(cmd::run(&[&lbadm, "-v"]).starts_with("lbadm v"));

    let ns = Netns::create(&format!("lbt-{}-pkg", std::process::id()));
    ns.run(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    ns.run(&["ip", "link", "set", "eth0", "up"]);
    ns.run(&["ip", "link", "set", "eth1", "up"]);

    let dir = root.path();
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(lb_tests::lbd::LBD_START_TIMEOUT))
        .unwrap();
    let config = dir.join("keepalived.conf");
    std::fs::write(&config, "# no virtual servers yet\n").unwrap();
    let socket = dir.join("lbd.sock").display().to_string();
    let unit = std::fs::read_to_string(dir.join("usr/lib/systemd/system/lbd.service")).unwrap();
    let caps = bounding_set(&unit);
    // A BPF file system mounted beforehand, as systemd mounts /sys/fs/bpf: `ip netns exec`
    // remounts /sys, and mounting one (lbd does where none is) would need CAP_SYS_ADMIN,
    // which the unit does not give.
    let bpffs = BpfFs::mount(&dir.join("bpf"));
    let pins = bpffs.0.join("lb").display().to_string();
    let log = dir.join("lbd.log");
    let state = dir.join("state.json").display().to_string();
    let config_arg = config.display().to_string();
    let start = |on_exit: &str| {
        let argv = ns.argv(&[
            "setpriv",
            "--bounding-set",
            &caps,
            "--",
            &lbd,
            "--iface",
            "eth0",
            "--xdp-mode",
            "skb",
            "--socket",
            &socket,
            "--state",
            &state,
            "--bpffs",
            &pins,
            "--config",
            &config_arg,
            "--on-exit",
            on_exit,
            "--log-format",
            "json",
        ]);
        // No NO_COLOR: the log is a file, so it must be plain anyway.
        let mut daemon = Daemon::spawn_with_env(
            "packaged lbd",
            argv,
            &[("NOTIFY_SOCKET", &notify_path.display().to_string())],
            &log,
            &log,
        );
        let ready = next_notification(&notify, "start");
        assert!(
            ready.lines().any(|l| l == "READY=1"),
            "{ready:?}\n{}",
            daemon.report()
        );
        daemon.assert_running();
        daemon
    };
    let stop = |mut daemon: Daemon| {
        let status = daemon.stop(libc::SIGTERM, Duration::from_secs(15));
        let stopping = next_notification(&notify, "shutdown");
        assert_eq!(stopping, "STOPPING=1\n");
        assert!(status.success(), "{status:?}\n{}", daemon.report());
    };

    // First lbd: leaves its data path running for the next (a restart or an upgrade).
    let first = start("keep");
    // Ready means served: lbadm gets an answer at once.
    ns.run(&[
        &lbadm,
        "--socket",
        &socket,
        "-A",
        "-t",
        "10.0.0.1:80",
        "-s",
        "rr",
    ]);
    stop(first);

    // The next takes the pinned data path over, with the same capabilities.
    let daemon = start("detach");
    let listed = ns.run(&[&lbadm, "--socket", &socket, "-Ln"]);
    assert!(listed.contains("TCP  10.0.0.1:80 rr"), "{listed}");

    // `lbd reload` (the unit's ExecReload): RELOADING=1, then READY=1 again.
    ns.run(&[&lbd, "reload", "--socket", &socket]);
    let reloading = next_notification(&notify, "reload");
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1")
            && reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let ready = next_notification(&notify, "after the reload");
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    stop(daemon);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains('\x1b'), "colour in a log file:\n{text}");
    let messages: Vec<String> = text
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{text}"));
            event["message"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert!(messages.iter().any(|m| m == "lbd ready"), "{text}");
    assert!(
        messages.iter().any(|m| m == "configuration reloaded"),
        "{text}"
    );
}

/// A BPF file system mounted at a directory, unmounted on drop.
struct BpfFs(PathBuf);

impl BpfFs {
    fn mount(at: &Path) -> BpfFs {
        std::fs::create_dir_all(at).unwrap();
        let at_arg = at.display().to_string();
        cmd::run(&["mount", "-t", "bpf", "bpf", &at_arg]);
        BpfFs(at.to_owned())
    }
}

impl Drop for BpfFs {
    fn drop(&mut self) {
        let _ = cmd::try_run(&["umount", &self.0.display().to_string()], None);
    }
}
