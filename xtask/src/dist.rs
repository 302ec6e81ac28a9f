//! `cargo xtask dist`: the Debian package `target/dist/lb_VERSION_ARCH.deb` with `lbd` and
//! `lbadm`, their systemd units, `/etc/default/lbd`, man pages and shell completions.
//!
//! The package tree is staged here and built with `dpkg-deb --build` rather than cargo-deb:
//! cargo-deb would have to be compiled on every fresh machine (a few minutes, for one
//! command), and most of the package is not cargo's output anyway (units, maintainer
//! scripts, and man pages and completions that `lb-gen-docs` generates from the built CLI);
//! dpkg-deb comes with dpkg on every Debian system. The eBPF object is inside `lbd` (lb-user's
//! build script embeds it), so the binaries are all there is to build.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::workspace::{Workspace, output, run_checked};

/// The package's name (`apt install ./target/dist/lb_*.deb`).
pub const PACKAGE: &str = "lb";
/// The package's version: the workspace's.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Where files of the repository's `packaging/` go in the package, and their modes.
const PACKAGED: &[(&str, &str, u32)] = &[
    ("lbd.service", "usr/lib/systemd/system/lbd.service", 0o644),
    (
        "lbd-decap@.service",
        "usr/lib/systemd/system/lbd-decap@.service",
        0o644,
    ),
    ("default/lbd", "etc/default/lbd", 0o644),
    ("postinst", "DEBIAN/postinst", 0o755),
    ("prerm", "DEBIAN/prerm", 0o755),
    ("postrm", "DEBIAN/postrm", 0o755),
];

/// Files an operator edits: dpkg keeps their changes on upgrade.
const CONFFILES: &[&str] = &["/etc/default/lbd"];

/// Builds the release binaries and the package; returns the package's path.
pub fn run(ws: &Workspace) -> Result<PathBuf> {
    ws.build_user_space(true)?;
    let deb = build(ws, &ws.bin_dir(true), &ws.target_dir.join("dist"))?;
    step!("package: {}", deb.display());
    Ok(deb)
}

/// Stages and builds the package from the binaries in `bin_dir` (lbd, lbadm, lb-gen-docs)
/// into `out_dir`; returns the `.deb`'s path.
pub fn build(ws: &Workspace, bin_dir: &Path, out_dir: &Path) -> Result<PathBuf> {
    let arch = architecture()?;
    let stage = out_dir.join(format!("{PACKAGE}_{VERSION}_{arch}"));
    step!("staging the Debian package in {}", stage.display());
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    let sbin = stage.join("usr/sbin");
    fs::create_dir_all(&sbin)?;
    let mut libc_needed = None;
    for name in ["lbd", "lbadm"] {
        let from = bin_dir.join(name);
        let bytes = fs::read(&from)
            .with_context(|| format!("reading {} (is it built?)", from.display()))?;
        libc_needed = libc_needed.max(glibc_requirement(&bytes));
        install(&from, &sbin.join(name), 0o755)?;
    }
    let packaging = ws.root.join("packaging");
    for (from, to, mode) in PACKAGED {
        install(&packaging.join(from), &stage.join(to), *mode)?;
    }
    // Man pages and completions from the CLI as built.
    let generator = bin_dir.join("lb-gen-docs");
    output(Command::new(&generator).arg(&stage))?;
    compress_man_pages(&stage.join("usr/share/man"))?;
    let doc = stage.join("usr/share/doc").join(PACKAGE);
    fs::create_dir_all(&doc)?;
    fs::write(doc.join("copyright"), copyright())?;

    let debian = stage.join("DEBIAN");
    fs::write(
        debian.join("conffiles"),
        CONFFILES
            .iter()
            .map(|f| format!("{f}\n"))
            .collect::<String>(),
    )?;
    let depends = match libc_needed {
        Some((major, minor)) => format!("libc6 (>= {major}.{minor}), libgcc-s1"),
        None => "libc6, libgcc-s1".to_owned(),
    };
    fs::write(
        debian.join("control"),
        control(&arch, &depends, installed_size_kib(&stage)?),
    )?;

    fs::create_dir_all(out_dir)?;
    let deb = out_dir.join(format!("{PACKAGE}_{VERSION}_{arch}.deb"));
    run_checked(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    Ok(deb)
}

fn control(arch: &str, depends: &str, installed_size: u64) -> String {
    format!(
        "Package: {PACKAGE}
Version: {VERSION}
Architecture: {arch}
Maintainer: lb developers <lb@localhost>
Installed-Size: {installed_size}
Depends: {depends}
Section: net
Priority: optional
Description: layer-4 load balancer in XDP, driven like LVS/IPVS
 lb replaces LVS/IPVS: lbd attaches an XDP program to the director's interfaces
 and forwards packets for virtual services to real servers (direct routing,
 IP-in-IP tunnelling, NAT), with IPVS's schedulers. lbadm takes ipvsadm's
 command line, and lbd reads keepalived.conf's virtual servers and health
 checks.
 .
 Needs Linux 6.1 or newer with BPF, XDP and BTF. Set the interfaces in
 /etc/default/lbd, then: systemctl enable --now lbd.
"
    )
}

fn copyright() -> String {
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
     Upstream-Name: lb\n\n\
     Files: *\n\
     License: MIT or Apache-2.0\n"
        .to_owned()
}

/// The Debian architecture of this machine (`amd64`), which the binaries are built for.
fn architecture() -> Result<String> {
    let out = output(Command::new("dpkg").arg("--print-architecture"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn install(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Compresses every man page as Debian wants them (`gzip -9n`: no name or time stamp, so the
/// package is reproducible).
fn compress_man_pages(man: &Path) -> Result<()> {
    for section in fs::read_dir(man)? {
        for page in fs::read_dir(section?.path())? {
            let page = page?.path();
            run_checked(Command::new("gzip").args(["-9nf"]).arg(&page))?;
        }
    }
    Ok(())
}

/// `Installed-Size`: the staged files' sizes in KiB, without the control files.
fn installed_size_kib(stage: &Path) -> Result<u64> {
    fn walk(dir: &Path, total: &mut u64) -> Result<()> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                if entry.file_name() != "DEBIAN" {
                    walk(&entry.path(), total)?;
                }
            } else {
                *total += meta.len().div_ceil(1024);
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(stage, &mut total)?;
    Ok(total)
}

/// The newest glibc symbol version an executable asks for (`GLIBC_2.34` → `(2, 34)`): the
/// `libc6` version the package depends on, as dpkg-shlibdeps would work it out.
pub fn glibc_requirement(binary: &[u8]) -> Option<(u32, u32)> {
    const TAG: &[u8] = b"GLIBC_";
    let mut newest = None;
    let mut rest = binary;
    while let Some(at) = rest.windows(TAG.len()).position(|w| w == TAG) {
        rest = &rest[at + TAG.len()..];
        let digits = rest
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count();
        let version = std::str::from_utf8(&rest[..digits]).unwrap_or_default();
        let mut parts = version.split('.').map(str::parse::<u32>);
        if let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) {
            newest = newest.max(Some((major, minor)));
        }
    }
    newest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_glibc_version_is_required() {
        let binary = b"\0GLIBC_2.2.5\0memcpy\0GLIBC_2.34\0GLIBC_2.3\0GLIBC_PRIVATE\0GLIBC_";
        assert_eq!(glibc_requirement(binary), Some((2, 34)));
        assert_eq!(glibc_requirement(b"static, no glibc"), None);
    }

    #[test]
    fn control_has_the_fields_dpkg_needs() {
        let text = control("amd64", "libc6 (>= 2.34), libgcc-s1", 12345);
        for field in [
            "Package: lb\n",
            "Architecture: amd64\n",
            "Depends: libc6 (>= 2.34), libgcc-s1\n",
            "Installed-Size: 12345\n",
        ] {
            assert!(text.contains(field), "{field} missing:\n{text}");
        }
        assert!(text.contains(&format!("Version: {VERSION}\n")));
        // Description continuation lines start with a space; an empty one is " .".
        let description: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Description:"))
            .skip(1)
            .collect();
        assert!(!description.is_empty());
        assert!(description.iter().all(|l| l.starts_with(' ')), "{text}");
    }

    #[test]
    fn every_packaged_file_is_in_the_repository() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for (from, _, _) in PACKAGED {
            assert!(root.join("packaging").join(from).is_file(), "{from}");
        }
    }
}
