//! Section 1: what one packet costs in lb's XDP program, path by path, next to the cheapest
//! programs XDP allows, all in the same run.
//!
//! Baselines: a 2-instruction XDP_PASS and "the floor", a minimal load balancer that swaps
//! the MAC addresses and sends the frame back (XDP_TX). Paths that change the packet in a way
//! that is not the same every time (TUN, NAT, decap) run behind the restore wrapper (see
//! [`super::asm`]) and are compared with the wrapper in front of the floor.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use anyhow::{Context as _, Result, bail};
use lb_common::Stat;

use super::{
    Options,
    asm::{self, XDP_PASS, XDP_TX},
    bpf,
    datapath::{
        self, CLIENT, Case, DECAP_PROGRAM, DIRECTOR_IP, DIRECTOR_MAC, INT_MAC, Lb, MapMemory,
        Measured, NAT_REALS, Net, OTHER_VIP, PROGRAM, ROUTER_MAC, TUN_REALS, VIP,
    },
    frames::{self, ACK, SYN},
};

const XDP_REDIRECT: u32 = 4;

/// What section 1 found.
pub struct PacketCost {
    pub measured: Vec<Measured>,
    /// Every map of lb's object at lbd's default sizes.
    pub memory: Vec<MapMemory>,
    pub repeat: u32,
    pub rounds: usize,
    /// Every loaded program: its size and the verifier's work on it.
    pub programs: Vec<ProgramSize>,
    pub cpu: Option<usize>,
}

/// One XDP program of lb's object as this kernel loaded it.
pub struct ProgramSize {
    pub name: String,
    /// BPF instructions after the verifier's rewrites.
    pub insns: Option<u32>,
    /// Instructions the verifier processed (the kernel's `verified_insns`): the figure the
    /// verifier's limit of 1,000,000 applies to.
    pub verified: u32,
}

impl PacketCost {
    pub fn get(&self, key: &str) -> Option<&Measured> {
        self.measured.iter().find(|m| m.key == key)
    }
}

/// One path to measure before its program descriptor is known.
struct Spec {
    key: &'static str,
    label: &'static str,
    target: Target,
    frame: Vec<u8>,
    ingress: u32,
    verdict: u32,
    counts: Vec<Stat>,
    /// Run behind the restore wrapper, or behind the one that makes every run a new flow.
    wrapped: Wrap,
}

/// What runs in front of a measured program.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wrap {
    None,
    /// The restore wrapper.
    Restore,
    /// The restore wrapper that also writes a new source address every run: each run is a new
    /// connection, and the connection table fills as it would under load.
    NewFlows,
}

#[derive(Clone, Copy)]
enum Target {
    Pass,
    Floor,
    Lb,
    Decap,
}

pub fn run(opts: &Options) -> Result<PacketCost> {
    let repeat = if opts.quick { 100_000 } else { 1_000_000 };
    let rounds = if opts.quick { 5 } else { 11 };
    datapath::in_fresh_netns(move || measure_all(repeat, rounds))
}

fn measure_all(repeat: u32, rounds: usize) -> Result<PacketCost> {
    let net = Net::build()?;
    let cpu = last_cpu();
    let pinned = cpu.filter(|c| bpf::pin_thread_to(*c).is_ok());
    let mut lb = Lb::load(&[])?;
    lb.standard_world(&net)?;
    let memory = lb.maps_memory()?;
    let pass = bpf::load_xdp("bench_pass", &asm::verdict_only(XDP_PASS))?;
    let floor = bpf::load_xdp("bench_floor", &asm::mac_swap_tx())?;
    let lb_fd = lb.prog_fd(PROGRAM)?;
    let decap_fd = lb.prog_fd(DECAP_PROGRAM)?;
    let fd_of = |t: Target| -> BorrowedFd<'_> {
        match t {
            Target::Pass => pass.as_fd(),
            Target::Floor => floor.as_fd(),
            Target::Lb => lb_fd,
            Target::Decap => decap_fd,
        }
    };

    let client = |port: u16, sport: u16, flags: u8| {
        frames::tcp_frame(
            DIRECTOR_MAC,
            ROUTER_MAC,
            CLIENT,
            VIP,
            sport,
            port,
            flags,
            b"",
        )
    };
    let client6 = |port: u16, sport: u16, flags: u8| {
        frames::tcp6_frame(
            DIRECTOR_MAC,
            ROUTER_MAC,
            datapath::CLIENT6,
            datapath::VIP6,
            sport,
            port,
            flags,
            b"",
        )
    };
    // Connections that the established-flow cases continue: their handshake goes through the
    // program once, as a client's SYN and ACK would (the ACK moves the connection from the
    // half-open table to the connection table). By DR (port 80), TUN (81) and NAT (82), over
    // IPv4 and IPv6.
    let open = |frame: &dyn Fn(u16, u16, u8) -> Vec<u8>, vip: &str, sport: u16, port: u16| {
        let verdict = if port == 82 { XDP_REDIRECT } else { XDP_TX };
        for flags in [SYN, ACK] {
            let r = bpf::TestRun {
                prog: lb_fd,
                data: &frame(port, sport, flags),
                ingress_ifindex: net.ext,
                repeat: 1,
                flags: 0,
                batch_size: 0,
            }
            .run()?;
            if r.verdict != verdict {
                bail!(
                    "opening connection {sport} → {vip}:{port} (flags {flags:#x}): verdict {}",
                    r.verdict
                );
            }
        }
        Ok(())
    };
    for (port, sport) in [(80, 40002), (81, 40003), (82, 40005)] {
        open(&client, "VIP", sport, port)?;
    }
    for (port, sport) in [(80, 40012), (81, 40013), (82, 40015)] {
        open(&client6, "[VIP6]", sport, port)?;
    }
    // The NAT real server that connection went to answers the client.
    let nat_flow = datapath::flow_key(CLIENT, VIP, 40005, 82);
    let nat_conn = lb
        .conns
        .get(&nat_flow, 0)
        .context("the NAT connection is not in the table")?;
    let rs = nat_conn
        .real
        .checked_sub(5)
        .map(|i| i as usize)
        .filter(|i| *i < NAT_REALS.len())
        .with_context(|| format!("the NAT connection went to real server {}", nat_conn.real))?;
    let reply = frames::tcp_frame(
        INT_MAC,
        datapath::real_mac(0x20 + rs as u8),
        NAT_REALS[rs],
        CLIENT,
        80,
        40005,
        ACK,
        b"",
    );
    let tunnelled = frames::ipip(
        datapath::real_mac(0x30),
        ROUTER_MAC,
        DIRECTOR_IP,
        TUN_REALS[0],
        &client(80, 40007, ACK),
    );
    let other = frames::tcp_frame(
        DIRECTOR_MAC,
        ROUTER_MAC,
        CLIENT,
        OTHER_VIP,
        40000,
        80,
        ACK,
        b"",
    );

    use Stat::*;
    let specs = vec![
        spec(
            "pass",
            "XDP_PASS, nothing else (2 instructions)",
            Target::Pass,
            client(80, 40000, ACK),
            net.ext,
            XDP_PASS,
            vec![],
            Wrap::None,
        ),
        spec(
            "floor",
            "**floor**: swap MACs, XDP_TX (17 instructions)",
            Target::Floor,
            client(80, 40000, ACK),
            net.ext,
            XDP_TX,
            vec![],
            Wrap::None,
        ),
        spec(
            "miss",
            "lb: not a service (miss → XDP_PASS)",
            Target::Lb,
            other,
            net.ext,
            XDP_PASS,
            vec![Rx, PassNotService],
            Wrap::None,
        ),
        spec(
            "dr-new",
            "lb DR: new connection",
            Target::Lb,
            client(80, 40001, SYN),
            net.ext,
            XDP_TX,
            vec![Rx, ConnNew, TxRoute],
            Wrap::NewFlows,
        ),
        spec(
            "dr6-new",
            "lb DR over IPv6: new connection",
            Target::Lb,
            client6(80, 40011, SYN),
            net.ext,
            XDP_TX,
            vec![Rx, ConnNew, TxRoute],
            Wrap::NewFlows,
        ),
        spec(
            "dr6-est",
            "lb DR over IPv6: established connection",
            Target::Lb,
            client6(80, 40012, ACK),
            net.ext,
            XDP_TX,
            vec![Rx, ConnHit, TxRoute],
            Wrap::Restore,
        ),
        spec(
            "dr-est",
            "lb DR: established connection",
            Target::Lb,
            client(80, 40002, ACK),
            net.ext,
            XDP_TX,
            vec![Rx, ConnHit, TxRoute],
            Wrap::Restore,
        ),
        spec(
            "tun-new",
            "lb TUN: new connection",
            Target::Lb,
            client(81, 40004, SYN),
            net.ext,
            XDP_TX,
            vec![Rx, ConnNew, TxTunnel],
            Wrap::NewFlows,
        ),
        spec(
            "tun-est",
            "lb TUN: established connection",
            Target::Lb,
            client(81, 40003, ACK),
            net.ext,
            XDP_TX,
            vec![Rx, ConnHit, TxTunnel],
            Wrap::Restore,
        ),
        spec(
            "tun6-new",
            "lb TUN over IPv6 (IPv6 in IPv6): new connection",
            Target::Lb,
            client6(81, 40014, SYN),
            net.ext,
            XDP_TX,
            vec![Rx, ConnNew, TxTunnel],
            Wrap::NewFlows,
        ),
        spec(
            "tun6-est",
            "lb TUN over IPv6 (IPv6 in IPv6): established connection",
            Target::Lb,
            client6(81, 40013, ACK),
            net.ext,
            XDP_TX,
            vec![Rx, ConnHit, TxTunnel],
            Wrap::Restore,
        ),
        spec(
            "nat-new",
            "lb NAT: new connection",
            Target::Lb,
            client(82, 40006, SYN),
            net.ext,
            XDP_REDIRECT,
            vec![Rx, ConnNew, TxNat, Redirect],
            Wrap::NewFlows,
        ),
        spec(
            "nat-est",
            "lb NAT: established connection",
            Target::Lb,
            client(82, 40005, ACK),
            net.ext,
            XDP_REDIRECT,
            vec![Rx, ConnHit, TxNat, Redirect],
            Wrap::Restore,
        ),
        spec(
            "nat6-new",
            "lb NAT over IPv6: new connection",
            Target::Lb,
            client6(82, 40016, SYN),
            net.ext,
            XDP_REDIRECT,
            vec![Rx, ConnNew, TxNat, Redirect],
            Wrap::NewFlows,
        ),
        spec(
            "nat6-est",
            "lb NAT over IPv6: established connection",
            Target::Lb,
            client6(82, 40015, ACK),
            net.ext,
            XDP_REDIRECT,
            vec![Rx, ConnHit, TxNat, Redirect],
            Wrap::Restore,
        ),
        spec(
            "nat-reply",
            "lb NAT: real server's reply",
            Target::Lb,
            reply,
            net.int,
            XDP_REDIRECT,
            vec![Rx, ConnHit, TxNatReply, Redirect],
            Wrap::Restore,
        ),
        spec(
            "decap",
            "lb_decap: strip IP-in-IP (real server side)",
            Target::Decap,
            tunnelled,
            net.ext,
            XDP_PASS,
            vec![Decap],
            Wrap::Restore,
        ),
    ];

    // The restore wrappers, and the wrapper in front of the floor for each frame length.
    let mut lengths: Vec<(Wrap, usize)> = specs
        .iter()
        .filter(|s| s.wrapped != Wrap::None)
        .map(|s| (s.wrapped, s.frame.len()))
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    // The new-flow wrappers share one counter: every run of any of them is a new source.
    let counter = bpf::counter_array().context("the new-flow wrapper's counter")?;
    let mut wrappers: Vec<(OwnedFd, OwnedFd)> = Vec::new();
    let mut wrap = |target: BorrowedFd<'_>, frame: &[u8], how: Wrap| -> Result<usize> {
        let array = bpf::prog_array()?;
        use std::os::fd::AsRawFd as _;
        let vary = (how == Wrap::NewFlows).then(|| asm::Vary {
            counter_map_fd: counter.as_raw_fd(),
            offset: datapath::SOURCE_ADDRESS,
        });
        let wrapper = bpf::load_xdp(
            "bench_restore",
            &asm::restore_vary_then_tail_call(frame, array.as_raw_fd(), vary),
        )?;
        bpf::set_tail_call(array.as_fd(), target)
            .context("putting the program in the tail-call slot")?;
        wrappers.push((wrapper, array));
        Ok(wrappers.len() - 1)
    };
    let mut wrapper_of_spec = Vec::new();
    for s in &specs {
        wrapper_of_spec.push(match s.wrapped {
            Wrap::None => None,
            how => Some(wrap(fd_of(s.target), &s.frame, how)?),
        });
    }
    let mut floor_wrappers = Vec::new();
    for (how, len) in &lengths {
        let frame = client(80, 40000, ACK);
        let mut padded = frame.clone();
        padded.resize(*len, 0);
        floor_wrappers.push((*how, *len, wrap(floor.as_fd(), &padded, *how)?, padded));
    }
    let wrapped_floor_key = |how: Wrap, len: usize| match how {
        Wrap::NewFlows => format!("floor-wn{len}"),
        _ => format!("floor-w{len}"),
    };

    let mut cases: Vec<Case<'_>> = Vec::new();
    for (s, w) in specs.iter().zip(&wrapper_of_spec) {
        let prog = match w {
            Some(i) => wrappers[*i].0.as_fd(),
            None => fd_of(s.target),
        };
        cases.push(Case {
            key: s.key.to_owned(),
            label: s.label.to_owned(),
            prog,
            frame: s.frame.clone(),
            ingress: s.ingress,
            verdict: s.verdict,
            counts: s.counts.clone(),
            baseline: Some(match s.wrapped {
                Wrap::None => "floor".to_owned(),
                how => wrapped_floor_key(how, s.frame.len()),
            }),
        });
    }
    for (how, len, i, frame) in &floor_wrappers {
        cases.push(Case {
            key: wrapped_floor_key(*how, *len),
            label: match how {
                Wrap::NewFlows => {
                    format!("floor behind the new-flow wrapper ({len}-byte frame)")
                }
                _ => format!("floor behind the restore wrapper ({len}-byte frame)"),
            },
            prog: wrappers[*i].0.as_fd(),
            frame: frame.clone(),
            ingress: net.ext,
            verdict: XDP_TX,
            counts: vec![],
            baseline: None,
        });
    }
    for c in cases.iter_mut() {
        if c.key == "floor" || c.key == "pass" {
            c.baseline = None;
        }
    }
    // Every case must take its path before anything is timed.
    for c in &cases {
        datapath::run_case(c, Some(&lb), 10).with_context(|| format!("checking {}", c.label))?;
    }
    let repeats = vec![repeat; cases.len()];
    let measured = datapath::measure(&cases, &repeats, Some(&lb), rounds, &super::interrupted);
    let programs = lb
        .verified_instructions()?
        .into_iter()
        .map(|(name, verified)| ProgramSize {
            insns: lb
                .program(&name)
                .ok()
                .and_then(|p| p.info().ok())
                .and_then(|i| i.size_translated())
                .map(|bytes| bytes / 8),
            name,
            verified,
        })
        .collect();
    Ok(PacketCost {
        measured,
        memory,
        repeat,
        rounds,
        programs,
        cpu: pinned,
    })
}

#[expect(clippy::too_many_arguments, reason = "a table row")]
fn spec(
    key: &'static str,
    label: &'static str,
    target: Target,
    frame: Vec<u8>,
    ingress: u32,
    verdict: u32,
    counts: Vec<Stat>,
    wrapped: Wrap,
) -> Spec {
    Spec {
        key,
        label,
        target,
        frame,
        ingress,
        verdict,
        counts,
        wrapped,
    }
}

/// The highest-numbered CPU this process may run on (the first one is busiest with
/// everything else).
pub fn last_cpu() -> Option<usize> {
    // SAFETY: sched_getaffinity fills the set we pass for this thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|c| libc::CPU_ISSET(*c, &set))
    }
}
