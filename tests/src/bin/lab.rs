//! `lab`: the seeds' LVS set-ups, rebuilt in network namespaces on this machine with lbd as
//! the director, configured with lbadm command by command as the seeds configure ipvsadm.
//!
//! ```text
//! cargo run -p lb-tests --bin lab -- dr            # seed 000's LVS/DR, then clean up
//! cargo run -p lb-tests --bin lab -- tun           # seed 003's LVS/TUN, three real servers
//! cargo run -p lb-tests --bin lab -- nat           # seed 001's LVS/NAT, two-NIC director
//! cargo run -p lb-tests --bin lab -- nat --one-arm # LVS/NAT with a one-NIC director
//! cargo run -p lb-tests --bin lab -- dr --keep     # ... and stay up until Ctrl-C
//! cargo run -p lb-tests --bin lab -- dr --ipv6     # any of them over IPv6 (dual stack)
//! cargo run -p lb-tests --bin lab -- ecmp          # three directors behind an ECMP router
//! cargo run -p lb-tests --bin lab -- clean         # remove what a killed lab left behind
//! ```
//!
//! Needs root, and lbd/lbadm built (`cargo xtask lab dr` does both).

use std::{net::Ipv4Addr, process::ExitCode};

use clap::{Args, Parser, Subcommand};
use lb_tests::{
    SERVICE_PORT, Testbed, Topology, XdpMode, cmd,
    ecmp::{EcmpLab, EcmpOptions},
    testbed, tools,
};

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
    /// LVS/TUN (seeds 000, 003): IP-in-IP to three real servers running `lbd decap`, which
    /// answer the client directly.
    Tun(LabArgs),
    /// LVS/NAT (seed 001): a two-NIC director rewriting addresses both ways; weights 3:1,
    /// `-E -s wrr`, a short `ab` and `-l -n --stats`.
    Nat {
        #[command(flatten)]
        args: LabArgs,
        /// A one-NIC director on the real servers' LAN, with the client behind a router,
        /// instead of seed 001's two NICs.
        #[arg(long)]
        one_arm: bool,
    },
    /// Scale-out: a router running BIRD spreads flows by ECMP over three directors, each
    /// running lbd (DR, mh, sloppy_tcp=1) and BIRD, which announces the VIP over BGP with BFD
    /// (`lbd --bird-vips`); a drain, and a director stopped, shown on the router's route.
    Ecmp(EcmpArgs),
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
    /// How lbd attaches XDP to the director's interfaces (auto, native or skb).
    #[arg(long, default_value = "skb")]
    xdp_mode: XdpMode,
    /// The /24 the hosts are numbered in, as seed 000's 192.168.1.0/24: client .10,
    /// director .11, real servers .12, .13, ..., VIP .99. NAT puts the real servers in the
    /// next /24. The topology is isolated in its own namespaces, so any range works.
    #[arg(long, default_value = "10.0.1.0")]
    subnet: Ipv4Addr,
    /// Namespace names: <prefix>-client, <prefix>-director, <prefix>-rs1, ...
    #[arg(long, default_value = "lab")]
    prefix: String,
    /// Number of real servers (default: 3 for tun, as in seed 003; else 2).
    #[arg(long)]
    real_servers: Option<usize>,
    /// Print every command that builds the topology.
    #[arg(short, long)]
    verbose: bool,
    /// Dual stack, the lab's service over IPv6: every host also gets the IPv6 twin of its
    /// address (`10.0.1.11` → `fd00::a00:10b`), and lbadm and curl use the IPv6 VIP and real
    /// servers (`-t [VIP6]:80 -r [RIP6]:80`).
    #[arg(long)]
    ipv6: bool,
}

#[derive(Args, Clone, Debug)]
struct EcmpArgs {
    /// Stay up after the demonstration, until Ctrl-C, to explore the namespaces.
    #[arg(long)]
    keep: bool,
    /// The first of three /24s: the client's network (client .10, router .1); the next one
    /// holds the router (.1), directors (.11, .12, ...) and real servers (.21, ...); the VIP
    /// is .99 of the third.
    #[arg(long, default_value = "10.0.1.0")]
    subnet: Ipv4Addr,
    /// Namespace names: <prefix>-client, <prefix>-router, <prefix>-d1, ...
    #[arg(long, default_value = "lab")]
    prefix: String,
    /// Number of directors.
    #[arg(long, default_value_t = 3)]
    directors: usize,
    /// The service's scheduler; with another than `mh`, add `--sync`.
    #[arg(long, default_value = "mh", value_parser = ["mh", "wlc", "rr", "wrr", "lc", "sh"])]
    scheduler: String,
    /// Each director runs a sync master and a sync backup (`lbadm --start-daemon`).
    #[arg(long)]
    sync: bool,
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
        Kind::Dr(args) => lab(Topology::Dr, &args, &signals),
        Kind::Tun(args) => lab(Topology::Tun, &args, &signals),
        Kind::Nat { args, one_arm } => {
            let topology = if one_arm {
                Topology::NatOneArm
            } else {
                Topology::Nat
            };
            lab(topology, &args, &signals)
        }
        Kind::Ecmp(args) => ecmp(&args, &signals),
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

fn step(text: &str) {
    println!("\n==> {text}");
}

/// Prints `# lbadm ARGS` as the seeds print `# ipvsadm ARGS`, runs it, prints its output.
fn lbadm(tb: &Testbed, line: &str) {
    println!("# lbadm {line}");
    let args: Vec<&str> = line.split_whitespace().collect();
    print!("{}", tb.lbadm(&args));
}

/// `curl URL` from the client `n` times, printing each answer.
/// Which family the lab's service is of, and its addresses as lbadm and curl take them.
#[derive(Clone, Copy)]
struct Family {
    ipv6: bool,
}

impl Family {
    /// `VIP:port`, or `[VIP6]:port`.
    fn vip(self, tb: &Testbed, port: u16) -> String {
        if self.ipv6 {
            tb.vip6_port(port)
        } else {
            tb.vip_port(port)
        }
    }

    /// The client's address.
    fn client(self, tb: &Testbed) -> String {
        if self.ipv6 {
            tb.client6().to_string()
        } else {
            tb.client.ip.to_string()
        }
    }

    /// Real server `i`'s address, bracketed for IPv6 as lbadm takes it before `:port`.
    fn rip(self, tb: &Testbed, i: usize) -> String {
        if self.ipv6 {
            format!("[{}]", tb.rip6(i))
        } else {
            tb.rip(i).to_string()
        }
    }
}

/// Over IPv6, waits (up to 10 s) until lbd has the real servers' MACs: the director solicits
/// them once its link-local address has passed duplicate address detection, about a second
/// after its link came up, and a real server not yet resolved takes no connections.
fn wait_resolved(tb: &Testbed, family: Family, real_servers: usize) {
    if !family.ipv6 {
        return;
    }
    println!("(waiting for lbd to resolve the real servers over NDP)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    for i in 1..=real_servers {
        let rip = tb.rip6(i).to_string();
        while !tb
            .lbd_log()
            .lines()
            .any(|l| l.contains("real server resolved") && l.contains(&rip))
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

fn curls(tb: &Testbed, family: Family, n: usize) {
    let url = format!("http://{}/", family.vip(tb, SERVICE_PORT));
    for _ in 0..n {
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
}

/// What each lab calls its seed and its set-up.
fn title(topology: Topology) -> &'static str {
    match topology {
        Topology::Dr => "seed 000's LVS/DR",
        Topology::Tun => "seed 003's LVS/TUN",
        Topology::Nat => "seed 001's LVS/NAT (two-NIC director)",
        Topology::NatOneArm => "LVS/NAT with a one-NIC director",
    }
}

fn lab(topology: Topology, args: &LabArgs, signals: &Signals) -> ExitCode {
    cmd::set_echo(args.verbose);
    let real_servers = args.real_servers.unwrap_or(match topology {
        Topology::Tun => 3,
        _ => 2,
    });
    step(&format!(
        "building {} topology in network namespaces",
        title(topology)
    ));
    let mut builder = Testbed::builder()
        .topology(topology)
        .prefix(&args.prefix)
        .subnet(args.subnet)
        .real_servers(real_servers)
        .xdp_mode(args.xdp_mode);
    if args.ipv6 {
        builder = builder.ipv6();
    }
    let mut tb = builder.build();
    let family = Family { ipv6: args.ipv6 };
    print!("{}", tb.describe());
    if signals.pending() {
        return interrupted(tb);
    }

    step(&format!(
        "starting lbd in {} on {} (--xdp-mode {})",
        tb.director.ns.name(),
        tb.director_ifaces().join(" and "),
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

    match topology {
        Topology::Dr => dr(&tb, real_servers, family),
        Topology::Tun => tun(&tb, real_servers, family),
        Topology::Nat | Topology::NatOneArm => nat(&tb, real_servers, family),
    }

    if args.keep && !signals.pending() {
        step("the lab stays up; press Ctrl-C to stop it and clean up");
        let bin = tools::bin_dir();
        let url = format!("http://{}/", family.vip(&tb, SERVICE_PORT));
        println!("Enter a machine with:");
        println!("  ip netns exec {} bash", tb.client.ns.name());
        println!("      then e.g.: curl {url}");
        println!(
            "  ip netns exec {} env LBD_SOCKET={} PATH={}:$PATH bash",
            tb.director.ns.name(),
            tb.lbd_files().socket.display(),
            bin.display()
        );
        println!(
            "      then e.g.: lbadm -Ln; lbadm -Sn; lbadm -Ln --stats; tcpdump -ni {} port 80",
            tb.director.iface()
        );
        if let Some(router) = &tb.router {
            println!("  ip netns exec {} bash", router.ns.name());
        }
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

/// Seed 000's LVS/DR commands, then curl alternating.
fn dr(tb: &Testbed, real_servers: usize, family: Family) {
    step("configuring the director as seed 000 does, with lbadm in place of ipvsadm");
    let vip = family.vip(tb, SERVICE_PORT);
    lbadm(tb, "-C");
    lbadm(tb, &format!("-A -t {vip} -s rr"));
    for i in 1..=real_servers {
        // Seed 000 gives no port; an IPv6 address in brackets needs one.
        let rip = if family.ipv6 {
            format!("{}:80", family.rip(tb, i))
        } else {
            family.rip(tb, i)
        };
        lbadm(tb, &format!("-a -t {vip} -r {rip} -g"));
    }
    lbadm(tb, "-Ln");
    wait_resolved(tb, family, real_servers);

    step(&format!(
        "from the client ({}): curl the VIP 6 times, round-robin over the real servers",
        family.client(tb)
    ));
    curls(tb, family, 6);
    lbadm(tb, "-Ln");
}

/// Seed 003's LVS/TUN commands, then curl going round the real servers, whose answers go
/// to the client directly.
fn tun(tb: &Testbed, real_servers: usize, family: Family) {
    println!(
        "(each real server: VIP on lo, arp_ignore=1, arp_announce=2, rp_filter=0, and \
         `lbd decap --iface eth0` in place of seed 003's tunl0: no ipip module here)"
    );
    step("configuring the director as seed 003 does, with lbadm in place of ipvsadm");
    let vip = family.vip(tb, SERVICE_PORT);
    lbadm(tb, "-C");
    lbadm(tb, &format!("-A -t {vip} -s rr"));
    for i in 1..=real_servers {
        lbadm(tb, &format!("-a -t {vip} -r {}:80 -i", family.rip(tb, i)));
    }
    lbadm(tb, "-Ln");
    wait_resolved(tb, family, real_servers);

    let n = 2 * real_servers;
    step(&format!(
        "from the client ({}): curl the VIP {n} times, round-robin over the real servers; \
         each answers the client directly, not through the director",
        family.client(tb)
    ));
    curls(tb, family, n);
    lbadm(tb, "-Ln --stats");
    println!("(OutPkts stays 0: in TUN the replies never pass the director)");
}

/// Seed 001's LVS/NAT commands: rr with weights 3:1, `-E -s wrr`, `-Z`, a short `ab`, and
/// `-l -n --stats`.
fn nat(tb: &Testbed, real_servers: usize, family: Family) {
    let gateway = if tb.topology() == Topology::Nat {
        format!(
            "the director's {} {}",
            tb.director.legs[1].iface, tb.director.legs[1].ip
        )
    } else {
        format!("the director {}", tb.director.ip)
    };
    println!(
        "(each real server: its own address only, default route via {gateway}, as seed \
         001's `route add default gw 172.16.20.150`; ip_forward=1 on the director)"
    );
    step("configuring the director as seed 001 does, with lbadm in place of ipvsadm");
    let vip = family.vip(tb, SERVICE_PORT);
    lbadm(tb, "-C");
    lbadm(tb, &format!("-A -t {vip} -s rr"));
    for i in 1..=real_servers {
        let weight = if i == 1 { 3 } else { 1 };
        lbadm(
            tb,
            &format!("-a -t {vip} -r {}:80 -m -w {weight}", family.rip(tb, i)),
        );
    }
    lbadm(tb, "-l -n");

    step(&format!(
        "from the client ({}): curl the VIP 4 times; rr ignores the weights",
        family.client(tb)
    ));
    curls(tb, family, 4);

    step("switching to wrr: weights 3:1 now count");
    lbadm(tb, &format!("-E -t {vip} -s wrr"));
    lbadm(tb, "-l -n");
    curls(tb, family, 8);

    step("clearing the counters, then a short ab from the client");
    lbadm(tb, &format!("-Z -t {vip}"));
    lbadm(tb, "-l -n --stats");
    let url = format!("http://{vip}/index.html");
    println!("# ab -n 1000 -c 10 {url}");
    let ran = tb
        .client
        .ns
        .try_run(&["ab", "-n", "1000", "-c", "10", &url], None);
    for line in ran.stdout.lines() {
        let shown = [
            "Complete requests:",
            "Failed requests:",
            "Requests per second:",
            "Time taken for tests:",
        ];
        if shown.iter().any(|s| line.starts_with(s)) {
            println!("{line}");
        }
    }
    if !ran.success() {
        println!(
            "(ab failed: {}) {}",
            cmd::describe_status(ran.status),
            ran.stderr.trim()
        );
    }
    lbadm(tb, "-l -n --stats");
    println!("(Conns split 3:1 by wrr; OutPkts/OutBytes are the replies NAT'd back)");
}

/// Prints a command's output as the lab runs it.
fn shown(what: &str, ran: &cmd::Ran) {
    println!("# {what}");
    print!("{}", ran.stdout);
    if !ran.success() {
        println!(
            "(failed: {}) {}",
            cmd::describe_status(ran.status),
            ran.stderr.trim()
        );
    }
}

fn ecmp(args: &EcmpArgs, signals: &Signals) -> ExitCode {
    cmd::set_echo(args.verbose);
    step(&format!(
        "building {} directors behind an ECMP router in network namespaces (BIRD, BGP, BFD)",
        args.directors
    ));
    let lab = EcmpLab::start(&EcmpOptions {
        prefix: Some(args.prefix.clone()),
        subnet: Some(args.subnet),
        directors: args.directors,
        running: args.directors,
        scheduler: args.scheduler.clone(),
        sync: args.sync,
        ..EcmpOptions::default()
    });
    print!("{}", lab.describe());
    if signals.pending() {
        return ecmp_interrupted(lab);
    }
    step("the router: a BGP session (with BFD) to every director, one multipath route for the VIP");
    shown(
        "birdc show protocols (router)",
        &lab.router_birdc(&["show", "protocols"]),
    );
    shown(
        "birdc show bfd sessions (router)",
        &lab.router_birdc(&["show", "bfd", "sessions"]),
    );
    shown(
        &format!("ip route show {} (router)", lab.vip()),
        &lab.router
            .ns
            .try_run(&["ip", "route", "show", &lab.vip().to_string()], None),
    );
    step("what each director announces, and why (`lbd status`)");
    for i in 0..args.directors {
        shown(
            &format!("lbd status ({})", lab.directors[i].name()),
            &lab.lbd_command(i, "status"),
        );
    }
    step("from the client: curl the VIP 6 times; ECMP picks a director per flow, mh a real server");
    ecmp_curls(&lab, 6);
    step("`lbd drain` on d1: its BIRD withdraws the VIP, the router takes d1 out of the route");
    shown("lbd drain (d1)", &lab.lbd_command(0, "drain"));
    lab.wait_next_hops(args.directors - 1);
    shown(
        &format!("ip route show {} (router)", lab.vip()),
        &lab.router
            .ns
            .try_run(&["ip", "route", "show", &lab.vip().to_string()], None),
    );
    ecmp_curls(&lab, 3);
    shown("lbd undrain (d1)", &lab.lbd_command(0, "undrain"));
    lab.wait_next_hops(args.directors);
    shown(
        &format!("ip route show {} (router)", lab.vip()),
        &lab.router
            .ns
            .try_run(&["ip", "route", "show", &lab.vip().to_string()], None),
    );

    if args.keep && !signals.pending() {
        step("the lab stays up; press Ctrl-C to stop it and clean up");
        let bin = tools::bin_dir();
        println!("Enter a machine with:");
        println!(
            "  ip netns exec {} bash        then e.g.: curl {}",
            lab.client.ns.name(),
            lab.url()
        );
        println!(
            "  ip netns exec {} bash        then e.g.: birdc -s {} show route; ip route",
            lab.router.ns.name(),
            lab.router_bird_socket().display()
        );
        for d in &lab.directors {
            println!(
                "  ip netns exec {} env LBD_SOCKET={} PATH={}:$PATH bash",
                d.host.ns.name(),
                d.files.socket.display(),
                bin.display()
            );
            println!(
                "      then e.g.: lbadm -Ln; lbd status --socket {sock}; lbd drain --socket {sock}; birdc -s {} show route",
                d.bird_socket().display(),
                sock = d.files.socket.display()
            );
        }
        signals.wait();
    }
    step("cleaning up");
    drop(lab);
    println!("done");
    ExitCode::SUCCESS
}

fn ecmp_curls(lab: &EcmpLab, n: usize) {
    for _ in 0..n {
        println!("# curl {}", lab.url());
        let tally = lab.curl_url(&lab.url(), 1);
        match tally.replies.first() {
            Some(r) if r.status == 200 => println!("{}", r.body),
            _ => println!("(failed) {}", tally.ran.stderr.trim()),
        }
    }
}

fn ecmp_interrupted(lab: EcmpLab) -> ExitCode {
    step("interrupted; cleaning up");
    drop(lab);
    ExitCode::from(130)
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
