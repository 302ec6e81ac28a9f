//! `bench`: lb's benchmarks (see `lb_tests::bench`), written to `docs/bench.md` with plots.
//! Run it through `cargo xtask bench`, which sets up the machine and builds release binaries
//! first; it needs root.
//!
//! ```text
//! cargo xtask bench                           # everything, into docs/bench.md
//! cargo xtask bench --quick                   # a short version of everything (CI smoke test)
//! cargo xtask bench -- --only packet-cost     # one section (the others are kept)
//! ```
//!
//! It exits non-zero when a benchmark could not run or produced no numbers (the report is
//! written anyway and lists the problems); never because something was slow.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use lb_tests::bench;

#[derive(Parser)]
#[command(
    name = "bench",
    about = "lb's benchmarks: per-packet cost, HTTP against nftables and HAProxy, scaling, \
             control plane, packet rate"
)]
struct Cli {
    /// A short version of everything: checks that each benchmark runs and gives numbers.
    #[arg(long)]
    quick: bool,
    /// Where to write the report (the plots go next to it).
    #[arg(long, default_value = "docs/bench.md")]
    out: PathBuf,
    /// Run only this section (packet-cost, http, scaling, control, live, flood); repeatable. The
    /// report at --out keeps its other sections, from the run that measured them.
    #[arg(long, value_name = "SECTION", value_parser = ["packet-cost", "http", "scaling", "control", "live", "flood"])]
    only: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "error: the benchmarks load XDP programs and build network namespaces: run them as \
             root (`cargo xtask bench`)"
        );
        return ExitCode::FAILURE;
    }
    catch_interrupts();
    let opts = bench::Options {
        quick: cli.quick,
        out: cli.out,
        only: cli.only,
    };
    let results = bench::run(&opts);
    let problems = match bench::report::write(&results) {
        Ok(problems) => problems,
        Err(e) => {
            eprintln!("error: writing the report: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "==> bench: {} in {:.0?}",
        if opts.quick { "quick run" } else { "full run" },
        results.took
    );
    if bench::interrupted() {
        eprintln!("error: interrupted; the report holds what was measured");
        return ExitCode::from(130);
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "error: {} problem(s), listed at the end of the report:",
            problems.len()
        );
        for p in &problems {
            eprintln!("  - {p}");
        }
        ExitCode::FAILURE
    }
}

/// Ctrl-C (or SIGTERM) asks the run to stop between measurements, so that testbeds are torn
/// down and the report is written; a second one ends the process at once. The signals are
/// blocked before any thread exists (threads inherit the mask) and taken by one thread.
fn catch_interrupts() {
    // SAFETY: sigset operations on a local set; pthread_sigmask on the calling (only) thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || {
        loop {
            let mut signal = 0;
            // SAFETY: sigwait on a set of blocked signals, writing into a local.
            if unsafe { libc::sigwait(&set, &mut signal) } != 0 {
                return;
            }
            if bench::interrupted() {
                eprintln!("bench: interrupted again; stopping now");
                std::process::exit(130);
            }
            eprintln!("bench: interrupted; finishing the current measurement and cleaning up");
            bench::set_interrupted();
        }
    });
}
