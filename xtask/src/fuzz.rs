//! `cargo xtask fuzz`: the data-path fuzz test (`fuzz_against_the_model` in lb-tests'
//! `datapath` fixtures) with many frames: random and mutated frames through the real XDP
//! program, each checked against the reference model in `lb_common::model`.

use std::{os::unix::process::CommandExt as _, time::SystemTime};

use anyhow::{Result, bail};

use crate::{
    run::is_root,
    workspace::{self, TESTS_PACKAGE, Workspace},
};

/// The test that runs the fuzzing, and the variables it reads.
const TEST: &str = "fuzz_against_the_model";

/// Builds the test and replaces this process with it, `frames` frames from `seed` (a fresh
/// seed from the clock if none, printed so that a failure can be replayed).
pub fn run(ws: &Workspace, frames: u64, seed: Option<u64>) -> Result<()> {
    if !is_root() {
        bail!(
            "the fuzz test loads the XDP program and builds a network namespace; run `cargo xtask fuzz` as root"
        );
    }
    let seed = seed.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let mut cmd = ws.cargo();
    cmd.args([
        "test",
        "--quiet",
        "--package",
        TESTS_PACKAGE,
        "--test",
        "datapath",
        "--",
        "--exact",
        TEST,
        "--nocapture",
    ])
    .env("LB_FUZZ_FRAMES", frames.to_string())
    .env("LB_FUZZ_SEED", seed.to_string());
    step!(
        "fuzzing the data path: {frames} frames, seed {seed} (LB_FUZZ_FRAMES={frames} \
         LB_FUZZ_SEED={seed} {})",
        workspace::display(&cmd)
    );
    let err = cmd.exec();
    bail!("starting `{}`: {err}", workspace::display(&cmd))
}
