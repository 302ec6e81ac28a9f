//! `cargo xtask bench`: how close lb is to what XDP allows, and how it compares with what
//! users would pick instead, measured side by side in one run on one machine and written to
//! `docs/bench.md` with plots.
//!
//! Sections, each on its own so that one failing prints its error in the report instead of
//! ending the run:
//!
//! 1. [`packet_cost`]: ns per packet of every lb path next to the cheapest XDP programs
//!    (BPF_PROG_TEST_RUN).
//! 2. [`http_load`]: HTTP through lb (DR, TUN, NAT), nftables, HAProxy and directly, with wrk
//!    and ab, in the network-namespace testbed.
//! 3. [`scaling`]: per-packet cost as services, real servers and connections grow, and the
//!    memory of every map.
//! 4. [`control`]: restoring 10,000 services with `lbadm -R`; how soon new connections follow
//!    a weight change.
//! 5. [`live`]: packets per second through a veth pair with XDP live frames.
//! 6. [`flood`]: a SYN flood of several times the half-open table against 1,000 established
//!    connections: what survives, and the cost per flood SYN.
//!
//! Speed is measured and written down here, never asserted: `--quick` (the CI smoke test)
//! checks that every benchmark runs and produces numbers.

pub mod asm;
pub mod bpf;
pub mod control;
pub mod datapath;
pub mod flood;
pub mod frames;
pub mod http_load;
pub mod live;
pub mod machine;
pub mod merge;
pub mod packet_cost;
pub mod report;
pub mod scaling;
pub mod stats;
pub mod svg;

use std::{
    panic::AssertUnwindSafe,
    path::PathBuf,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// A short version of everything: checks that each benchmark runs and gives numbers.
    pub quick: bool,
    /// Where the report goes; the plots go next to it.
    pub out: PathBuf,
    /// Only the sections whose names are listed (all when empty).
    pub only: Vec<String>,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the run was asked to stop (Ctrl-C): sections stop between measurements, clean up
/// and the report says so.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

pub fn set_interrupted() {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// How a section ended: its results, or why there are none.
pub enum Outcome<T> {
    Done(T),
    Failed(String),
    Skipped(String),
}

/// A section's outcome and how long it took.
pub struct Section<T> {
    pub outcome: Outcome<T>,
    pub took: Duration,
}

impl<T> Section<T> {
    pub fn done(&self) -> Option<&T> {
        match &self.outcome {
            Outcome::Done(t) => Some(t),
            _ => None,
        }
    }
}

/// Runs one section, turning an error or a panic (the testbed panics on failure, after
/// cleaning up) into a failed outcome.
pub fn section<T>(name: &str, opts: &Options, f: impl FnOnce() -> anyhow::Result<T>) -> Section<T> {
    let start = Instant::now();
    if !opts.only.is_empty() && !opts.only.iter().any(|o| o == name) {
        return Section {
            outcome: Outcome::Skipped("not selected with --only".into()),
            took: Duration::ZERO,
        };
    }
    if interrupted() {
        return Section {
            outcome: Outcome::Skipped("interrupted".into()),
            took: Duration::ZERO,
        };
    }
    eprintln!("==> bench: {name}");
    let outcome = match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(t)) => Outcome::Done(t),
        Ok(Err(e)) => Outcome::Failed(format!("{e:#}")),
        Err(panic) => {
            let text = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panicked".into());
            Outcome::Failed(text)
        }
    };
    let took = start.elapsed();
    match &outcome {
        Outcome::Done(_) => eprintln!("    {name}: done in {:.0?}", took),
        Outcome::Failed(e) => eprintln!("    {name}: FAILED after {:.0?}: {e}", took),
        Outcome::Skipped(why) => eprintln!("    {name}: skipped: {why}"),
    }
    Section { outcome, took }
}

/// Everything one run found.
pub struct Results {
    pub machine: machine::Machine,
    pub opts: Options,
    pub packet_cost: Section<packet_cost::PacketCost>,
    pub http: Section<http_load::Http>,
    pub scaling: Section<scaling::Scaling>,
    pub control: Section<control::Control>,
    pub live: Section<live::Live>,
    pub flood: Section<flood::Flood>,
    pub took: Duration,
    /// /proc/loadavg's first three figures before and after: other work on the machine.
    pub load_before: String,
    pub load_after: String,
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs every section in priority order.
pub fn run(opts: &Options) -> Results {
    let start = Instant::now();
    let load_before = load_average();
    let machine = machine::Machine::describe();
    let packet_cost = section("packet-cost", opts, || packet_cost::run(opts));
    let http = section("http", opts, || http_load::run(opts));
    let scaling = section("scaling", opts, || scaling::run(opts));
    let control = section("control", opts, || control::run(opts));
    let live = section("live", opts, || live::run(opts));
    let flood = section("flood", opts, || flood::run(opts));
    Results {
        machine,
        opts: opts.clone(),
        packet_cost,
        http,
        scaling,
        control,
        live,
        flood,
        took: start.elapsed(),
        load_before,
        load_after: load_average(),
    }
}
