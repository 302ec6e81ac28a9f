//! Running the daemon and the labs.

use std::{os::unix::process::CommandExt as _, process::Command};

use anyhow::{Result, bail};

use crate::workspace::{self, TESTS_PACKAGE, Workspace};

/// Builds user space and replaces this process with `lbd ARGS`, so that signals (Ctrl-C) reach
/// lbd directly and its exit status is the command's.
pub fn lbd(ws: &Workspace, release: bool, args: &[String]) -> Result<()> {
    ws.build_user_space(release)?;
    if !is_root() {
        bail!("lbd attaches XDP programs and needs root; run `cargo xtask run` as root");
    }
    let mut cmd = Command::new(ws.bin_dir(release).join("lbd"));
    cmd.args(args);
    step!("running {}", workspace::display(&cmd));
    // `exec` returns only when it could not start the program.
    let err = cmd.exec();
    bail!("starting `{}`: {err}", workspace::display(&cmd))
}

/// Builds user space and runs lb-tests' `lab` binary with `args` (`dr --keep`), in place of
/// this process so that Ctrl-C reaches the lab and lets it clean up.
pub fn lab(ws: &Workspace, args: &[String]) -> Result<()> {
    ws.build_user_space(false)?;
    let bin_dir = ws.bin_dir(false);
    let mut cmd = ws.cargo();
    cmd.args([
        "run",
        "--quiet",
        "--package",
        TESTS_PACKAGE,
        "--bin",
        "lab",
        "--",
    ])
    .args(args)
    .env("LB_BIN_DIR", &bin_dir);
    step!(
        "running {} (LB_BIN_DIR={})",
        workspace::display(&cmd),
        bin_dir.display()
    );
    let err = cmd.exec();
    bail!("starting `{}`: {err}", workspace::display(&cmd))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
