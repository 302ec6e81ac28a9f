//! `cargo xtask bench`: lb-tests' `bench` binary against release builds of lbd and lbadm.

use std::{os::unix::process::CommandExt as _, path::PathBuf};

use anyhow::{Result, bail};

use crate::{
    run::is_root,
    workspace::{self, TESTS_PACKAGE, Workspace},
};

/// Where the report goes unless `--out` says otherwise: the committed `docs/bench.md` for a
/// full run; a quick run's rough figures stay in the target directory.
pub fn default_out(ws: &Workspace, quick: bool) -> PathBuf {
    if quick {
        ws.target_dir.join("bench").join("bench.md")
    } else {
        ws.root.join("docs").join("bench.md")
    }
}

/// Builds release binaries and replaces this process with the benchmarks (so that Ctrl-C
/// reaches them and they clean up).
pub fn run(ws: &Workspace, quick: bool, out: Option<PathBuf>, args: &[String]) -> Result<()> {
    if !is_root() {
        bail!(
            "the benchmarks load XDP programs and build network namespaces; run `cargo xtask \
             bench` as root"
        );
    }
    // Speed is measured on what users run: optimised lbd and lbadm.
    ws.build_user_space(true)?;
    let bin_dir = ws.bin_dir(true);
    let out = out.unwrap_or_else(|| default_out(ws, quick));
    let mut cmd = ws.cargo();
    cmd.args([
        "run",
        "--release",
        "--quiet",
        "--package",
        TESTS_PACKAGE,
        "--bin",
        "bench",
        "--",
    ]);
    if quick {
        cmd.arg("--quick");
    }
    cmd.arg("--out")
        .arg(&out)
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
