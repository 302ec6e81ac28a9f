//! `cargo xtask`: the project's one entry point for setting up a machine, building, running
//! `lbd`, running the tests and starting the labs.
//!
//! Every command that builds or runs something first does `setup`, which installs what is
//! missing (Debian packages, the nightly `rust-src` component, bpf-linker) and is quick once
//! everything is there.

/// Prints a step heading: `==> what is happening`.
macro_rules! step {
    ($($arg:tt)*) => {
        println!("==> {}", format_args!($($arg)*))
    };
}

mod bench;
mod dist;
mod fuzz;
mod golden;
mod interrupt;
mod ipvs_golden;
mod run;
mod setup;
mod test;
mod vm;
mod workspace;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

use crate::workspace::Workspace;

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "lb's project tasks",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and testing need (apt packages, nightly rust-src, bpf-linker);
    /// skips whatever is already present.
    Setup,
    /// Build the eBPF object and user space (lbd, lbadm) and the rest of the default members.
    Build {
        /// Build with the release profile.
        #[arg(long)]
        release: bool,
    },
    /// Set up, build, then run `lbd` with the given arguments (as root), e.g.
    /// `cargo xtask run -- --iface eth0`.
    Run {
        /// Build and run the release binary.
        #[arg(long)]
        release: bool,
        /// Arguments for lbd.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "LBD_ARGS"
        )]
        args: Vec<String>,
    },
    /// Set up, build, then run every test: unit and doc tests of the default members, then
    /// lb-tests' data-path fixtures and end-to-end tests one at a time, then the data-path
    /// fixtures in a VM per kernel of the matrix (Debian 12's 6.1 and 6.12; `LB_VM_KERNELS`
    /// picks some: `6.12`, `none`).
    Test {
        /// Skip the VM phases (a quick local run); the same as `LB_VM_KERNELS=none`.
        #[arg(long, conflicts_with = "vm_only")]
        no_vm: bool,
        /// Only the VM phases.
        #[arg(long)]
        vm_only: bool,
        /// Extra arguments for the test harness (e.g. a test name filter).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "TEST_ARGS"
        )]
        args: Vec<String>,
    },
    /// Set up, build release binaries, then run the benchmarks (lb-tests' `bench` binary):
    /// per-packet cost next to the cheapest XDP programs, HTTP through lb, nftables and
    /// HAProxy, scaling, control plane. Writes `docs/bench.md` and its plots.
    Bench {
        /// A short version of everything (the CI smoke test); its report goes to
        /// `target/bench/bench.md` unless `--out` is given.
        #[arg(long)]
        quick: bool,
        /// Where to write the report (default `docs/bench.md`).
        #[arg(long, value_name = "PATH")]
        out: Option<PathBuf>,
        /// More arguments for the bench binary, e.g. `-- --only packet-cost`.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "BENCH_ARGS"
        )]
        args: Vec<String>,
    },
    /// Set up, then run the data-path fuzz test at length: random and mutated frames through
    /// the XDP program (BPF_PROG_TEST_RUN), each verdict and frame out checked against the
    /// reference model (`lb_common::model`), the tables checked as it goes. A failure prints
    /// its seed and frame; `--seed` replays it.
    Fuzz {
        /// How many frames.
        #[arg(long, default_value_t = 1_000_000)]
        frames: u64,
        /// The generator's seed (default: from the clock; printed).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Set up, build release binaries, then the Debian package `target/dist/lb_VERSION_ARCH.deb`:
    /// lbd, lbadm, systemd units, /etc/default/lbd, man pages, bash and zsh completions.
    Dist,
    /// Record what the real ipvsadm prints for the sequences in `tests/golden/ipvsadm/*.cmds`
    /// (Debian's ipvsadm against IPVS in a VM of Debian 12's 6.12 kernel) into `*.golden`,
    /// which lb-tests' `ipvsadm_golden` compares lbadm's output with.
    IpvsadmGolden,
    /// Record which real server the kernel's IPVS gives each of a set of TCP flows, for the
    /// hashing and sequence schedulers (`tests/golden/ipvs-sched/record.py`, run in a VM of
    /// Debian 12's 6.12 kernel) into `tests/golden/ipvs-sched/CASE.txt`, which the data-path
    /// fixture `ipvs_scheduling_parity` compares lb's choices with. Names limit it to those cases.
    IpvsGolden {
        /// Only these cases (default: all).
        cases: Vec<String>,
    },
    /// Set up, build, then run lb-tests' `lab` binary: `dr`, `tun` or `nat` builds that LVS
    /// set-up in network namespaces with lbd as the director, `ecmp` three directors running
    /// lbd and BIRD behind a BGP router (`--keep` stays up until Ctrl-C).
    Lab {
        /// The lab and its options, passed to the lab binary as they are (`dr --keep`).
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "KIND [ARGS]"
        )]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    interrupt::defer_sigint();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // 128 + SIGINT, as a shell reports a command ended by Ctrl-C.
        Err(_) if interrupt::interrupted() => {
            eprintln!("error: interrupted");
            ExitCode::from(130)
        }
        Err(e) => {
            // The cause chain on one line; a backtrace of xtask itself would not help.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Setup => setup::run(),
        Command::Build { release } => {
            setup::run()?;
            let ws = Workspace::load()?;
            ws.build_all(release)
        }
        Command::Run { release, args } => {
            setup::run()?;
            run::lbd(&Workspace::load()?, release, &args)
        }
        Command::Test {
            no_vm,
            vm_only,
            args,
        } => {
            setup::run()?;
            let phases = test::Phases {
                host: !vm_only,
                vm: !no_vm,
            };
            test::run(&Workspace::load()?, &args, phases)
        }
        Command::Bench { quick, out, args } => {
            setup::run()?;
            bench::run(&Workspace::load()?, quick, out, &args)
        }
        Command::Fuzz { frames, seed } => {
            setup::run()?;
            fuzz::run(&Workspace::load()?, frames, seed)
        }
        Command::Lab { args } => {
            setup::run()?;
            run::lab(&Workspace::load()?, &args)
        }
        Command::Dist => {
            setup::run()?;
            dist::run(&Workspace::load()?).map(drop)
        }
        Command::IpvsadmGolden => {
            setup::run()?;
            golden::run(&Workspace::load()?)
        }
        Command::IpvsGolden { cases } => {
            setup::run()?;
            ipvs_golden::run(&Workspace::load()?, &cases)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    #[test]
    fn run_passes_lbd_arguments_through() {
        let Command::Run { release, args } = parse(&["run", "--", "--iface", "eth0", "-v"]) else {
            panic!("not run");
        };
        assert!(!release);
        assert_eq!(args, ["--iface", "eth0", "-v"]);

        let Command::Run { release, args } = parse(&["run", "--release", "--", "--iface", "x"])
        else {
            panic!("not run");
        };
        assert!(release);
        assert_eq!(args, ["--iface", "x"]);

        let Command::Run { args, .. } = parse(&["run", "--iface", "eth0"]) else {
            panic!("not run");
        };
        assert_eq!(args, ["--iface", "eth0"]);
    }

    #[test]
    fn lab_passes_its_kind_and_options_through() {
        let Command::Lab { args } = parse(&["lab", "dr", "--keep"]) else {
            panic!("not lab");
        };
        assert_eq!(args, ["dr", "--keep"]);
        let Command::Lab { args } = parse(&["lab", "--", "tun", "--keep"]) else {
            panic!("not lab");
        };
        assert_eq!(args, ["tun", "--keep"]);
        assert!(Cli::try_parse_from(["xtask", "lab"]).is_err());
    }

    #[test]
    fn bench_takes_quick_out_and_passes_the_rest_through() {
        let Command::Bench { quick, out, args } = parse(&["bench"]) else {
            panic!("not bench");
        };
        assert!(!quick && out.is_none() && args.is_empty());
        let Command::Bench { quick, out, args } = parse(&[
            "bench",
            "--quick",
            "--out",
            "/tmp/b.md",
            "--",
            "--only",
            "http",
        ]) else {
            panic!("not bench");
        };
        assert!(quick);
        assert_eq!(out, Some(PathBuf::from("/tmp/b.md")));
        assert_eq!(args, ["--only", "http"]);
    }

    #[test]
    fn test_takes_vm_flags_and_passes_the_rest_through() {
        let Command::Test {
            no_vm,
            vm_only,
            args,
        } = parse(&["test", "--", "nat", "--nocapture"])
        else {
            panic!("not test");
        };
        assert!(!no_vm && !vm_only);
        assert_eq!(args, ["nat", "--nocapture"]);
        let Command::Test { no_vm, args, .. } = parse(&["test", "--no-vm", "nat"]) else {
            panic!("not test");
        };
        assert!(no_vm);
        assert_eq!(args, ["nat"]);
        let Command::Test { vm_only, .. } = parse(&["test", "--vm-only"]) else {
            panic!("not test");
        };
        assert!(vm_only);
        assert!(Cli::try_parse_from(["xtask", "test", "--no-vm", "--vm-only"]).is_err());
    }

    #[test]
    fn fuzz_takes_frames_and_seed() {
        let Command::Fuzz { frames, seed } = parse(&["fuzz"]) else {
            panic!("not fuzz");
        };
        assert_eq!((frames, seed), (1_000_000, None));
        let Command::Fuzz { frames, seed } = parse(&["fuzz", "--frames", "5000", "--seed", "42"])
        else {
            panic!("not fuzz");
        };
        assert_eq!((frames, seed), (5000, Some(42)));
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
