//! `lab`: the seeds' LVS set-ups, rebuilt in network namespaces on this machine with lbd as
//! the director, configured with lbadm command by command as the seeds configure ipvsadm.
//!
//! ```text
//! cargo run -p lb-tests --bin lab -- dr            # seed 000's LVS/DR, then clean up
//! cargo run -p lb-tests --bin lab -- dr --keep     # ... and stay up until Ctrl-C
//! cargo run -p lb-tests --bin lab -- clean         # remove what a killed lab left behind
//! ```
//!
//! Needs root, and lbd/lbadm built (`cargo xtask lab dr` does both).

use std::{net::Ipv4Addr, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use lb_tests::{SERVICE_PORT, Testbed, XdpMode, cmd, testbed, tools};

#[derive(Parser)]
#[command(
    name = "lab",
    about = "Seed set-ups of LVS in network namespaces, with lbd as the director"
)]
struct Cli {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(Subcommand)]
enum Kind {
    /// LVS/DR (seed 000): the director rewrites MAC addresses, real servers answer directly.
    Dr(LabArgs),
    /// LVS/TUN (seeds 000, 003): IP-in-IP to the real servers. Not yet available.
    Tun(LabArgs),
    /// LVS/NAT (seed 001): a two-legged director rewriting addresses. Not yet available.
    Nat(LabArgs),
    /// Remove the namespaces and files of a lab that was killed before cleaning up.
    Clean {
        /// The prefix the lab was started with.
        #[arg(long, default_value = "lab")]
        prefix: String,
    },
}

#[derive(Args, Clone, Debug)]
struct LabArgs {
    /// Stay up after the demonstration, until Ctrl-C, to explore the namespaces.
    #[arg(long)]
    keep: bool,
    /// How lbd attaches XDP to the director's eth0 (auto, native or skb).
    #[arg(long, default_value = "skb")]
    xdp_mode: XdpMode,
    /// The /24 the hosts are numbered in, as seed 000's 192.168.1.0/24: client .10,
    /// director .11, real servers .12, .13, ..., VIP .99. The topology is isolated in its own
    /// namespaces, so any range works.
    #[arg(long, default_value = "10.0.1.0")]
    subnet: Ipv4Addr,
    /// Namespace names: <prefix>-client, <prefix>-director, <prefix>-rs1, ...
    #[arg(long, default_value = "lab")]
    prefix: String,
    /// Number of real servers.
    #[arg(long, default_value_t = 2)]
    real_servers: usize,
    /// Print every command that builds the topology.
    #[arg(short, long)]
    verbose: bool,
}

fn main() -> ExitCode {
    // Ctrl-C (and SIGTERM) must not kill us halfway: block them in every thread (none exist
    // yet) and look for them between steps, so the testbed is always dropped and cleans up.
    // Children start with an empty mask (std resets it) in their own process groups.
    let signals = Signals::block();
    let cli = Cli::parse();
    match cli.kind {
        Kind::Dr(args) => dr(&args, &signals),
        Kind::Tun(_) => not_yet("tun", "LVS/TUN (ipvsadm -i)"),
        Kind::Nat(_) => not_yet("nat", "LVS/NAT (ipvsadm -m)"),
        Kind::Clean { prefix } => {
            let removed = testbed::remove_leftovers(&prefix);
            if removed.is_empty() {
                println!("nothing to clean for prefix {prefix:?}");
            } else {
                println!("removed namespaces: {}", removed.join(", "));
            }
            ExitCode::SUCCESS
        }
    }
}

fn not_yet(kind: &str, what: &str) -> ExitCode {
    eprintln!("lab {kind}: the {what} lab is not yet available; `lab dr` is.");
    ExitCode::from(2)
}

fn step(text: &str) {
    println!("\n==> {text}");
}

/// Prints `# lbadm ARGS` as seed 000 prints `# ipvsadm ARGS`, runs it, prints its output.
fn lbadm(tb: &Testbed, line: &str) {
    println!("# lbadm {line}");
    let args: Vec<&str> = line.split_whitespace().collect();
    print!("{}", tb.lbadm(&args));
}

fn dr(args: &LabArgs, signals: &Signals) -> ExitCode {
    cmd::set_echo(args.verbose);
    step("building seed 000's LVS/DR topology in network namespaces");
    let mut tb = Testbed::builder()
        .prefix(&args.prefix)
        .subnet(args.subnet)
        .real_servers(args.real_servers)
        .xdp_mode(args.xdp_mode)
        .build();
    print!("{}", tb.describe());
    if signals.pending() {
        return interrupted(tb);
    }

    step(&format!(
        "starting lbd in {} on eth0 (--xdp-mode {})",
        tb.director.ns.name(),
        args.xdp_mode.as_arg()
    ));
    tb.start_lbd();
    println!(
        "lbd is up: socket {}, state {}, log {}",
        tb.lbd_files().socket.display(),
        tb.lbd_files().state.display(),
        tb.lbd_files().log.display()
    );
    if signals.pending() {
        return interrupted(tb);
    }

    step("configuring the director as seed 000 does, with lbadm in place of ipvsadm");
    let vip = tb.vip_port(SERVICE_PORT);
    lbadm(&tb, "-C");
    lbadm(&tb, &format!("-A -t {vip} -s rr"));
    for i in 1..=args.real_servers {
        lbadm(&tb, &format!("-a -t {vip} -r {} -g", tb.rip(i)));
    }
    lbadm(&tb, "-Ln");
    if signals.pending() {
        return interrupted(tb);
    }

    step(&format!(
        "from the client ({}): curl the VIP 6 times, round-robin over the real servers",
        tb.client.ip
    ));
    let url = format!("http://{}/", tb.vip());
    for _ in 0..6 {
        println!("# curl {url}");
        let ran = tb.curl_once(&url);
        if ran.success() {
            print!("{}", ran.stdout);
        } else {
            println!(
                "(failed: {}) {}",
                cmd::describe_status(ran.status),
                ran.stderr.trim()
            );
        }
    }
    lbadm(&tb, "-Ln");

    if args.keep && !signals.pending() {
        step("the lab stays up; press Ctrl-C to stop it and clean up");
        let bin = tools::bin_dir();
        println!("Enter a machine with:");
        println!("  ip netns exec {} bash", tb.client.ns.name());
        println!("      then e.g.: curl {url}");
        println!(
            "  ip netns exec {} env LBD_SOCKET={} PATH={}:$PATH bash",
            tb.director.ns.name(),
            tb.lbd_files().socket.display(),
            bin.display()
        );
        println!("      then e.g.: lbadm -Ln; lbadm -Sn; tcpdump -ni eth0 port 80");
        for rs in &tb.real_servers {
            println!("  ip netns exec {} bash", rs.ns.name());
        }
        println!("lbd's log: {}", tb.lbd_files().log.display());
        signals.wait();
    }

    step("cleaning up");
    drop(tb);
    println!("done");
    ExitCode::SUCCESS
}

fn interrupted(tb: Testbed) -> ExitCode {
    step("interrupted; cleaning up");
    drop(tb);
    ExitCode::from(130)
}

/// SIGINT and SIGTERM, blocked so that they are taken only when we ask.
struct Signals {
    set: libc::sigset_t,
}

impl Signals {
    fn block() -> Self {
        // SAFETY: sigset_t is plain data that sigemptyset initialises; the pointers are to
        // live locals.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Self { set }
        }
    }

    /// Whether SIGINT or SIGTERM has arrived (and waits, blocked).
    fn pending(&self) -> bool {
        // SAFETY: as in `block`.
        unsafe {
            let mut pending: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut pending);
            libc::sigismember(&pending, libc::SIGINT) == 1
                || libc::sigismember(&pending, libc::SIGTERM) == 1
        }
    }

    /// Waits for SIGINT or SIGTERM.
    fn wait(&self) {
        let mut signal = 0;
        // SAFETY: `set` was initialised in `block`; `signal` is a live local.
        unsafe {
            libc::sigwait(&self.set, &mut signal);
        }
    }
}
