//! `cargo xtask test`: every test of the default members, with lb-tests (data-path fixtures and
//! end-to-end tests in network namespaces) run one test at a time.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::{Command, ExitStatus, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    interrupt,
    workspace::{self, TESTS_PACKAGE, Workspace},
};

pub fn run(ws: &Workspace, harness_args: &[String]) -> Result<()> {
    ws.build_user_space(false)?;
    let bin_dir = ws.bin_dir(false);

    let others: Vec<&str> = ws
        .default_members
        .iter()
        .map(String::as_str)
        .filter(|name| *name != TESTS_PACKAGE)
        .collect();
    let has_tests_package = ws.default_members.iter().any(|name| name == TESTS_PACKAGE);

    let mut phases = Vec::new();
    if !others.is_empty() {
        let mut cmd = cargo_test(ws, &others);
        cmd.arg("--").args(harness_args);
        phases.push((format!("unit and doc tests ({})", others.join(", ")), cmd));
    }
    if has_tests_package {
        let mut cmd = cargo_test(ws, &[TESTS_PACKAGE]);
        // Root-needing fixture and end-to-end tests share the kernel: one at a time.
        cmd.args(["--", "--test-threads=1"]).args(harness_args);
        cmd.env("LB_BIN_DIR", &bin_dir);
        phases.push((
            format!("{TESTS_PACKAGE}: fixtures and end-to-end, one at a time"),
            cmd,
        ));
    }

    let mut results = Vec::new();
    for (label, mut cmd) in phases {
        if interrupt::interrupted() {
            break;
        }
        step!("{label}: {}", workspace::display(&cmd));
        let result = run_counting(&mut cmd)?;
        results.push((label, result));
    }

    step!("summary");
    let mut total = Counts::default();
    let mut failed_phases = 0;
    for (label, PhaseResult { status, counts }) in &results {
        total.add(counts);
        let verdict = if status.success() {
            "ok".to_owned()
        } else {
            failed_phases += 1;
            if status.code().is_none() && interrupt::interrupted() {
                "interrupted".to_owned()
            } else if counts.failed == 0 {
                format!("FAILED ({status}; the build or the runner failed, see above)")
            } else {
                "FAILED".to_owned()
            }
        };
        println!(
            "    {label}: {verdict}: {} passed, {} failed, {} ignored",
            counts.passed, counts.failed, counts.ignored
        );
    }
    println!("    binaries under test: {}", bin_dir.display());
    // One plain closing line that any CI log reader can count.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        total.passed, total.failed, total.ignored
    );
    interrupt::check()?;
    if failed_phases > 0 {
        bail!("{failed_phases} of {} test runs failed", results.len());
    }
    Ok(())
}

fn cargo_test(ws: &Workspace, packages: &[&str]) -> Command {
    let mut cmd = ws.cargo();
    // --no-fail-fast: run every test binary so the summary is complete.
    cmd.args(["test", "--no-fail-fast"]);
    for package in packages {
        cmd.args(["--package", package]);
    }
    cmd
}

struct PhaseResult {
    status: ExitStatus,
    counts: Counts,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Counts {
    fn add(&mut self, other: &Self) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
    }
}

/// Runs `cmd`, echoing its stdout line by line and adding up libtest's `test result:` lines.
fn run_counting(cmd: &mut Command) -> Result<PhaseResult> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{}`", workspace::display(cmd)))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut counts = Counts::default();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading test output")?;
        writeln!(out, "{line}")?;
        if let Some(c) = parse_test_result(&line) {
            counts.add(&c);
        }
    }
    drop(out);
    let status = child.wait().context("waiting for cargo test")?;
    Ok(PhaseResult { status, counts })
}

/// Reads libtest's closing line, e.g.
/// `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
fn parse_test_result(line: &str) -> Option<Counts> {
    let rest = line.trim_start().strip_prefix("test result: ")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let mut counts = Counts::default();
    for pair in words.windows(2) {
        let Ok(n) = pair[0].parse::<u64>() else {
            continue;
        };
        match pair[1].trim_end_matches([';', '.', ',']) {
            "passed" => counts.passed = n,
            "failed" => counts.failed = n,
            "ignored" => counts.ignored = n,
            _ => {}
        }
    }
    Some(counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_result_lines_are_counted() {
        let ok = "test result: ok. 12 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; \
                  finished in 0.03s";
        assert_eq!(
            parse_test_result(ok),
            Some(Counts {
                passed: 12,
                failed: 0,
                ignored: 2
            })
        );
        let failed = "test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; \
                      0 filtered out; finished in 1.20s";
        assert_eq!(
            parse_test_result(failed),
            Some(Counts {
                passed: 3,
                failed: 1,
                ignored: 0
            })
        );
    }

    #[test]
    fn other_lines_are_not_counted() {
        assert_eq!(parse_test_result("running 3 tests"), None);
        assert_eq!(parse_test_result("test parse::ok ... ok"), None);
    }
}
