//! `cargo xtask test`: every test of the default members, with lb-tests (data-path fixtures and
//! end-to-end tests in network namespaces) run one test at a time, on the host's kernel; then
//! the data-path fixtures again in a VM per kernel of the matrix ([`vm::KERNEL_MATRIX`]), and
//! the interoperation scripts (`tests/vm/`) in a VM of its newest kernel.

use std::{
    io::{BufRead as _, BufReader, Read, Write as _},
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    dist, interrupt, vm,
    workspace::{self, TESTS_PACKAGE, Workspace},
};

/// Which phases `cargo xtask test` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phases {
    /// Every test on the host's kernel.
    pub host: bool,
    /// The data-path fixtures in a VM per kernel of the matrix (those `LB_VM_KERNELS` selects).
    pub vm: bool,
}

pub fn run(ws: &Workspace, harness_args: &[String], phases: Phases) -> Result<()> {
    ws.build_user_space(false)?;
    let bin_dir = ws.bin_dir(false);
    // The package as `cargo xtask dist` builds it, from the binaries under test (a release
    // build here would cost minutes); lb-tests' `package` tests take it from LB_DEB.
    let deb = if phases.host {
        Some(dist::build(ws, &bin_dir, &ws.target_dir.join("dist/test"))?)
    } else {
        None
    };
    // Checked before the long host phases, so that a typo does not cost their run.
    let kernels = if phases.vm {
        vm::selected_series(std::env::var("LB_VM_KERNELS").ok().as_deref())?
    } else {
        Vec::new()
    };

    let mut results = Vec::new();
    if phases.host {
        host_phases(ws, &bin_dir, deb.as_deref(), harness_args, &mut results)?;
    }
    if !kernels.is_empty() && !interrupt::interrupted() {
        vm_phases(ws, &bin_dir, harness_args, &kernels, &mut results)?;
        if !interrupt::interrupted() && runs_interop(harness_args) {
            interop_phase(ws, &bin_dir, &kernels, &mut results);
        }
    } else if phases.vm && kernels.is_empty() {
        step!("data-path fixtures in VMs: skipped (LB_VM_KERNELS=none)");
    }

    step!("summary");
    let mut total = Counts::default();
    let mut failed_phases = 0;
    for result in &results {
        let counts = &result.counts;
        total.add(counts);
        let verdict = match &result.failure {
            None => "ok",
            Some(failure) => {
                failed_phases += 1;
                failure
            }
        };
        println!(
            "    {}: {verdict}: {} passed, {} failed, {} ignored ({})",
            result.label,
            counts.passed,
            counts.failed,
            counts.ignored,
            minutes_and_seconds(result.elapsed)
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

/// The unit and doc tests of the default members, then lb-tests one test at a time, on the
/// host's kernel.
fn host_phases(
    ws: &Workspace,
    bin_dir: &Path,
    deb: Option<&Path>,
    harness_args: &[String],
    results: &mut Vec<PhaseResult>,
) -> Result<()> {
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
        cmd.env("LB_BIN_DIR", bin_dir);
        if let Some(deb) = deb {
            cmd.env("LB_DEB", deb);
        }
        phases.push((
            format!("{TESTS_PACKAGE}: fixtures and end-to-end, one at a time"),
            cmd,
        ));
    }

    for (label, mut cmd) in phases {
        if interrupt::interrupted() {
            break;
        }
        step!("{label}: {}", workspace::display(&cmd));
        let start = Instant::now();
        let (status, counts) = run_counting(&mut cmd)?;
        results.push(PhaseResult {
            label,
            counts,
            failure: cargo_failure(status, &counts),
            elapsed: start.elapsed(),
        });
    }
    Ok(())
}

/// Why a `cargo test` phase failed, if it did.
fn cargo_failure(status: ExitStatus, counts: &Counts) -> Option<String> {
    if status.success() {
        None
    } else if status.code().is_none() && interrupt::interrupted() {
        Some("interrupted".to_owned())
    } else if counts.failed == 0 {
        Some(format!(
            "FAILED ({status}; the build or the runner failed, see above)"
        ))
    } else {
        Some("FAILED".to_owned())
    }
}

// ---------------------------------------------------------------------------------------------
// The kernel matrix

/// The data-path fixture binary of lb-tests (`tests/tests/datapath.rs`), which the VMs run.
const DATAPATH_TEST: &str = "datapath";

/// Longest a VM may take, boot included, before it is ended and its phase fails. The whole
/// fixture binary took under 4 minutes per kernel (at 0dc31d4, boot included): every fixture
/// loads the object again, and the verifier is slow under emulation, but the data path's
/// programs are small. The limit leaves room for slower machines; if the VMs come close to
/// it, run a documented subset rather than raise it (CI's budget is 90 minutes in all).
const VM_TIME_LIMIT: Duration = Duration::from_secs(20 * 60);

/// One phase per kernel of the matrix: the data-path fixtures, built for the host phase, run
/// in a VM booted with that kernel.
fn vm_phases(
    ws: &Workspace,
    bin_dir: &Path,
    harness_args: &[String],
    kernels: &[&'static vm::KernelSeries],
    results: &mut Vec<PhaseResult>,
) -> Result<()> {
    step!("data-path fixtures in VMs: finding the `{DATAPATH_TEST}` test binary");
    let start = Instant::now();
    let args = vm_harness_args(harness_args);
    let prepared = datapath_binary(ws).and_then(|binary| Ok((binary, vm::require_vng()?)));
    let (binary, vng) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            eprintln!("error: {e:#}");
            results.push(PhaseResult {
                label: "datapath fixtures in VMs".to_owned(),
                counts: Counts::default(),
                failure: Some(format!("FAILED (not started: {e:#})")),
                elapsed: start.elapsed(),
            });
            return Ok(());
        }
    };
    let dir = ws.root.join("tests");
    let mut env = vm::passed_env();
    env.retain(|(name, _)| name != "LB_BIN_DIR");
    env.push(("LB_BIN_DIR".to_owned(), bin_dir.into()));
    let cmd = vm::GuestCommand {
        dir: &dir,
        env,
        program: &binary,
        args: args.iter().map(Into::into).collect(),
    };

    let filtered = has_filter(harness_args);
    for series in kernels {
        if interrupt::interrupted() {
            break;
        }
        let start = Instant::now();
        let mut label = format!("datapath fixtures on Linux {} (VM)", series.name);
        let outcome = vm::Kernel::find(series).and_then(|kernel| {
            let kernel = kernel.with_context(|| {
                format!(
                    "no Linux {} kernel in /boot (`cargo xtask setup` installs one)",
                    series.name
                )
            })?;
            label = format!("datapath fixtures on {} (VM)", kernel.release);
            step!(
                "{label}: booting {}, then {} {}",
                kernel.image.display(),
                binary.display(),
                args.join(" ")
            );
            let mut guest = vm::Guest::start(&vng, &kernel, &cmd, VM_TIME_LIMIT)?;
            let output = echo_and_count(guest.stdout().expect("stdout is piped"))?;
            let exit = guest.wait()?;
            step!(
                "{label}: took {} ({})",
                minutes_and_seconds(start.elapsed()),
                exit.status
            );
            Ok((exit, output))
        });
        let (counts, failure) = match outcome {
            Ok((exit, output)) => (output.counts, vm_failure(&exit, &output, filtered)),
            Err(e) => {
                eprintln!("error: {e:#}");
                (Counts::default(), Some(format!("FAILED ({e:#})")))
            }
        };
        results.push(PhaseResult {
            label,
            counts,
            failure,
            elapsed: start.elapsed(),
        });
    }
    Ok(())
}

/// The interoperation scripts (`tests/vm/`): lb's tunnels decapsulated by the kernel's own
/// devices (ipip/fou/gre, ip6tnl/fou -6/ip6gre), and lb's connection synchronisation with the
/// kernel's sync daemon, which the host's kernel lacks. Each prints `NAME: ok` last; each is
/// one test in the counts.
const INTEROP_SCRIPTS: &[&str] = &["tun-interop", "tun6-interop", "sync-interop"];

/// Whether the user's filter (if any) selects the interoperation scripts.
fn runs_interop(harness_args: &[String]) -> bool {
    let filters = filters(harness_args);
    filters.is_empty()
        || filters
            .iter()
            .any(|f| INTEROP_SCRIPTS.iter().any(|name| name.contains(f)))
}

/// The interoperation scripts in one VM of the newest kernel of the matrix (booting one more
/// VM costs less than a minute; the scripts a minute or two under emulation).
fn interop_phase(
    ws: &Workspace,
    bin_dir: &Path,
    kernels: &[&'static vm::KernelSeries],
    results: &mut Vec<PhaseResult>,
) {
    let start = Instant::now();
    let series = kernels.last().expect("at least one kernel");
    let mut label = format!("interoperation on Linux {} (VM)", series.name);
    let script = INTEROP_SCRIPTS
        .iter()
        .map(|name| format!("tests/vm/{name}.sh"))
        .collect::<Vec<_>>()
        .join(" && ");
    let mut env = vm::passed_env();
    env.push(("LB_BIN".to_owned(), bin_dir.into()));
    // sync-interop drives the kernel's sync daemon with Debian's ipvsadm, unpacked as for
    // `cargo xtask ipvsadm-golden` (nothing installed on the host); without it that script
    // fails saying so.
    match crate::golden::ipvsadm(ws) {
        Ok((ipvsadm, libs)) => {
            env.push(("IPVSADM".to_owned(), ipvsadm.into()));
            env.push(("LD_LIBRARY_PATH".to_owned(), libs.into()));
        }
        Err(e) => eprintln!("warning: no ipvsadm for sync-interop: {e:#}"),
    }
    let program = Path::new("/bin/sh");
    let cmd = vm::GuestCommand {
        dir: &ws.root,
        env,
        program,
        args: vec!["-c".into(), script.clone().into()],
    };
    let outcome = vm::require_vng().and_then(|vng| {
        let kernel = vm::Kernel::find(series)?.with_context(|| {
            format!(
                "no Linux {} kernel in /boot (`cargo xtask setup` installs one)",
                series.name
            )
        })?;
        label = format!("interoperation on {} (VM)", kernel.release);
        let mut attempt = 1;
        loop {
            step!("{label}: booting {}, then {script}", kernel.image.display());
            let mut guest = vm::Guest::start(&vng, &kernel, &cmd, VM_TIME_LIMIT)?;
            let output = echo_and_count_oks(guest.stdout().expect("stdout is piped"))?;
            let exit = guest.wait()?;
            step!(
                "{label}: took {} ({})",
                minutes_and_seconds(start.elapsed()),
                exit.status
            );
            // A guest that ends in failure before the first script printed a line never ran
            // them (seen once: vng exiting 255 after 15 s, silent): boot it once more.
            if !exit.status.success() && output.lines == 0 && attempt < BOOT_ATTEMPTS {
                step!("{label}: the VM ended before any script printed a line: booting again");
                attempt += 1;
                continue;
            }
            return Ok((exit, output.passed));
        }
    });
    let (counts, failure) = match outcome {
        Ok((exit, passed)) => {
            let failed = INTEROP_SCRIPTS.len() as u64 - passed;
            let failure = if exit.timed_out {
                Some("FAILED (timed out)".to_owned())
            } else if !exit.status.success() || failed > 0 {
                Some(format!(
                    "FAILED ({}; {failed} script(s) did not end in ok)",
                    exit.status
                ))
            } else {
                None
            };
            let counts = Counts {
                passed,
                failed,
                ignored: 0,
            };
            (counts, failure)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            (Counts::default(), Some(format!("FAILED ({e:#})")))
        }
    };
    results.push(PhaseResult {
        label,
        counts,
        failure,
        elapsed: start.elapsed(),
    });
}

/// How many times the interoperation VM is booted when it ends before its scripts said
/// anything.
const BOOT_ATTEMPTS: u32 = 2;

/// What the interoperation scripts printed: how many lines, and how many closing `NAME: ok`.
struct ScriptOutput {
    lines: u64,
    passed: u64,
}

/// Echoes `stdout` line by line, counting the lines and the interoperation scripts' closing
/// `NAME: ok`.
fn echo_and_count_oks(stdout: impl Read) -> Result<ScriptOutput> {
    let (mut lines, mut passed) = (0, 0);
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the scripts' output")?;
        lines += 1;
        writeln!(out, "{line}")?;
        if INTEROP_SCRIPTS
            .iter()
            .any(|name| line.trim() == format!("{name}: ok"))
        {
            passed += 1;
        }
    }
    Ok(ScriptOutput { lines, passed })
}

/// The data-path test binary, as the host phase built it: the same cargo, profile and
/// features, so this only builds it when the host phase did not run (`--vm-only`).
fn datapath_binary(ws: &Workspace) -> Result<PathBuf> {
    let mut cmd = ws.cargo();
    cmd.args([
        "test",
        "--package",
        TESTS_PACKAGE,
        "--test",
        DATAPATH_TEST,
        "--no-run",
        "--message-format=json-render-diagnostics",
    ])
    .stderr(Stdio::inherit());
    let out = workspace::output(&mut cmd)?;
    test_executable(&String::from_utf8_lossy(&out.stdout), DATAPATH_TEST).with_context(|| {
        format!(
            "`{}` reported no executable for test target {DATAPATH_TEST}",
            workspace::display(&cmd)
        )
    })
}

/// The executable of test target `name` among cargo's JSON messages.
fn test_executable(messages: &str, name: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|k| k == "test"))
        })
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
}

/// The harness arguments in a VM: one test at a time, as on the host, unless the user says
/// otherwise (libtest refuses the option twice), then the user's.
fn vm_harness_args(harness_args: &[String]) -> Vec<String> {
    let mut args = Vec::new();
    if !harness_args.iter().any(|a| a.starts_with("--test-threads")) {
        args.push("--test-threads=1".to_owned());
    }
    args.extend(harness_args.iter().cloned());
    args
}

/// Whether libtest arguments hold a test name filter: a word that is neither an option nor
/// the value of one.
fn has_filter(harness_args: &[String]) -> bool {
    !filters(harness_args).is_empty()
}

/// The user's test name filters among the harness arguments (those not options or their
/// values).
fn filters(harness_args: &[String]) -> Vec<&str> {
    /// libtest's options that take their value as the next argument.
    const TAKE_VALUE: &[&str] = &[
        "--skip",
        "--test-threads",
        "--format",
        "--logfile",
        "--color",
        "--shuffle-seed",
        "-Z",
    ];
    let mut value_next = false;
    let mut out = Vec::new();
    for arg in harness_args {
        if value_next {
            value_next = false;
        } else if arg.starts_with('-') {
            value_next = TAKE_VALUE.contains(&arg.as_str());
        } else {
            out.push(arg.as_str());
        }
    }
    out
}

/// Why a VM phase failed, if it did. Beyond the exit status: a VM that did not boot, or a
/// binary that never reported, must not pass as "0 tests"; nor may a run in which no test ran,
/// unless the user's filter chose none.
fn vm_failure(exit: &vm::GuestExit, output: &TestOutput, user_filter: bool) -> Option<String> {
    if exit.timed_out {
        return Some(format!(
            "FAILED (ended after {} min)",
            VM_TIME_LIMIT.as_secs() / 60
        ));
    }
    if exit.status.code().is_none() && interrupt::interrupted() {
        return Some("interrupted".to_owned());
    }
    if output.reports == 0 {
        return Some(format!(
            "FAILED ({}; no test ran: the VM did not boot or the binary did not start, see above)",
            exit.status
        ));
    }
    if !exit.status.success() {
        return Some(if output.counts.failed == 0 {
            format!("FAILED ({}; see above)", exit.status)
        } else {
            "FAILED".to_owned()
        });
    }
    if output.counts.passed + output.counts.failed == 0 && !user_filter {
        return Some("FAILED (no test ran)".to_owned());
    }
    None
}

fn minutes_and_seconds(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {:02} s", s / 60, s % 60)
    }
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

/// How one phase (a `cargo test` run, or one VM) went.
struct PhaseResult {
    label: String,
    counts: Counts,
    /// Why it failed, as the summary shows it; `None` when it passed.
    failure: Option<String>,
    elapsed: Duration,
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
fn run_counting(cmd: &mut Command) -> Result<(ExitStatus, Counts)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{}`", workspace::display(cmd)))?;
    let output = echo_and_count(child.stdout.take().expect("stdout is piped"))?;
    let status = child.wait().context("waiting for cargo test")?;
    Ok((status, output.counts))
}

/// What a test run's stdout said.
#[derive(Debug, Default)]
struct TestOutput {
    counts: Counts,
    /// How many `test result:` lines (one per test binary that ran to its end).
    reports: u64,
}

/// Echoes `stdout` line by line, adding up libtest's `test result:` lines.
fn echo_and_count(stdout: impl Read) -> Result<TestOutput> {
    let mut output = TestOutput::default();
    let mut out = std::io::stdout().lock();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading test output")?;
        writeln!(out, "{line}")?;
        if let Some(c) = parse_test_result(&line) {
            output.counts.add(&c);
            output.reports += 1;
        }
    }
    Ok(output)
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
    fn the_datapath_executable_comes_from_cargos_messages() {
        let messages = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"lab"},"executable":"/t/debug/lab"}
{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"lb_tests"},"executable":null}
{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"datapath"},"executable":"/t/debug/datapath"}
{"reason":"compiler-artifact","target":{"kind":["test"],"name":"datapath"},"executable":"/t/debug/deps/datapath-0123"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(
            test_executable(messages, "datapath"),
            Some(PathBuf::from("/t/debug/deps/datapath-0123"))
        );
        assert_eq!(test_executable(messages, "nat"), None);
    }

    #[test]
    fn vms_run_one_test_at_a_time_with_the_users_arguments() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(vm_harness_args(&[]), ["--test-threads=1"]);
        assert_eq!(
            vm_harness_args(&args(&["nat", "--nocapture"])),
            ["--test-threads=1", "nat", "--nocapture"]
        );
        assert_eq!(
            vm_harness_args(&args(&["--test-threads=2"])),
            ["--test-threads=2"]
        );
    }

    #[test]
    fn filters_are_told_from_options_and_their_values() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(!has_filter(&[]));
        assert!(has_filter(&args(&["nat"])));
        assert!(has_filter(&args(&["--nocapture", "nat"])));
        assert!(!has_filter(&args(&["--nocapture"])));
        assert!(!has_filter(&args(&[
            "--skip",
            "nat",
            "--test-threads",
            "2"
        ])));
        assert!(has_filter(&args(&["--skip=nat", "dr"])));
        assert!(has_filter(&args(&["--exact", "nat"])));
        // The interoperation scripts count as tests named after them.
        assert!(runs_interop(&args(&["--nocapture"])));
        assert!(runs_interop(&args(&["interop"])));
        assert!(runs_interop(&args(&["tun6"])));
        assert!(!runs_interop(&args(&["nat", "--skip", "interop"])));
    }

    #[test]
    fn a_vm_phase_fails_unless_tests_ran_and_passed() {
        use std::os::unix::process::ExitStatusExt as _;
        let exit = |code: i32| vm::GuestExit {
            status: ExitStatus::from_raw(code << 8),
            timed_out: false,
        };
        let output = |passed, failed, reports| TestOutput {
            counts: Counts {
                passed,
                failed,
                ignored: 0,
            },
            reports,
        };
        assert_eq!(vm_failure(&exit(0), &output(9, 0, 1), false), None);
        // No VM, no test binary: no report at all, whatever vng's exit status.
        assert!(vm_failure(&exit(0), &output(0, 0, 0), false).is_some());
        assert!(vm_failure(&exit(1), &output(0, 0, 0), true).is_some());
        // Everything filtered out: a failure unless the user's filter did it.
        assert!(vm_failure(&exit(0), &output(0, 0, 1), false).is_some());
        assert_eq!(vm_failure(&exit(0), &output(0, 0, 1), true), None);
        assert_eq!(
            vm_failure(&exit(101), &output(3, 2, 1), false).as_deref(),
            Some("FAILED")
        );
        let timed_out = vm::GuestExit {
            timed_out: true,
            ..exit(0)
        };
        assert!(vm_failure(&timed_out, &output(9, 0, 1), false).is_some());
    }

    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(minutes_and_seconds(Duration::from_secs(42)), "42 s");
        assert_eq!(minutes_and_seconds(Duration::from_secs(605)), "10 min 05 s");
    }

    #[test]
    fn other_lines_are_not_counted() {
        assert_eq!(parse_test_result("running 3 tests"), None);
        assert_eq!(parse_test_result("test parse::ok ... ok"), None);
    }
}
