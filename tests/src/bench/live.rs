//! Section 5: packets per second through a veth pair, with BPF_PROG_TEST_RUN's live-frames
//! mode as the generator (PLATFORM.md: xdp-tools do not start on this kernel).
//!
//! The program under test runs on frames "arriving" on `gen0`; what it sends back out
//! (XDP_TX) really leaves `gen0` for its peer `sink0`, whose native XDP program drops and
//! counts it (a veth delivers native XDP_TX frames only to a peer with a native program). On
//! one core the whole path runs in the calling thread: the rate is frames sent / wall time,
//! and the frames counted at the sink show that they were really sent.

use std::os::fd::AsFd as _;

use anyhow::{Context as _, Result, ensure};
use lb_common::{Stat, method, scheduler};

use super::{
    Options,
    asm::{self, XDP_DROP, XDP_TX},
    bpf::{self, F_TEST_XDP_LIVE_FRAMES, TestRun},
    datapath::{self, CLIENT, DIRECTOR_IP, DIRECTOR_MAC, DR_REALS, Lb, PROGRAM, ROUTER_MAC, VIP},
    frames::{self, ACK, SYN},
    packet_cost::last_cpu,
    stats::Summary,
};

/// One program's rate over the rounds.
pub struct Rate {
    pub label: String,
    /// Million frames per second sent, per round.
    pub mpps: Vec<f64>,
    /// Frames counted at the sink over frames sent, over all rounds.
    pub delivered: f64,
    pub error: Option<String>,
}

impl Rate {
    pub fn summary(&self) -> Option<Summary> {
        Summary::of(&self.mpps)
    }
}

pub struct Live {
    pub rates: Vec<Rate>,
    pub frames_per_round: u32,
    pub rounds: usize,
}

pub fn run(opts: &Options) -> Result<Live> {
    let frames = if opts.quick { 200_000 } else { 5_000_000 };
    let rounds = if opts.quick { 3 } else { 5 };
    datapath::in_fresh_netns(move || run_in_netns(frames, rounds))
}

fn sink_count(name: &str) -> Result<u64> {
    let text = datapath::sh(&format!("ethtool -S {name}"))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("rx_queue_0_xdp_packets:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no rx_queue_0_xdp_packets in ethtool -S")
}

fn run_in_netns(frames_per_round: u32, rounds: usize) -> Result<Live> {
    if let Some(cpu) = last_cpu() {
        let _ = bpf::pin_thread_to(cpu);
    }
    datapath::sh(&format!(
        "ip link add gen0 address {} type veth peer name sink0",
        datapath::fmt_mac(&DIRECTOR_MAC)
    ))?;
    datapath::sh("ip link set gen0 up")?;
    datapath::sh("ip link set sink0 up")?;
    datapath::sh(&format!("ip addr add {DIRECTOR_IP}/24 dev gen0"))?;
    let gen0 = datapath::ifindex("gen0")?;
    let sink0 = datapath::ifindex("sink0")?;
    let drop_prog = bpf::load_xdp("bench_sink", &asm::verdict_only(XDP_DROP))?;
    let _sink_link = bpf::attach_xdp_native(drop_prog.as_fd(), sink0)
        .context("attaching the sink's XDP program")?;
    let floor = bpf::load_xdp("bench_floor", &asm::mac_swap_tx())?;

    let mut lb = Lb::load(&[])?;
    lb.set_iface(gen0, DIRECTOR_MAC, DIRECTOR_IP)?;
    for (i, ip) in DR_REALS.iter().enumerate() {
        lb.set_real(
            1 + i as u32,
            1,
            method::ROUTE,
            *ip,
            datapath::DR_REAL_MAC,
            0,
        )?;
    }
    lb.set_service(1, VIP, 80, scheduler::RR, 0, &[1, 2])?;
    let lb_fd = lb.prog_fd(PROGRAM)?;
    let frame = |sport: u16, flags: u8| {
        frames::tcp_frame(DIRECTOR_MAC, ROUTER_MAC, CLIENT, VIP, sport, 80, flags, b"")
    };
    // The established connection's first packet, as an ordinary (not live) run.
    let opened = TestRun {
        prog: lb_fd,
        data: &frame(40002, SYN),
        ingress_ifindex: gen0,
        repeat: 1,
        flags: 0,
        batch_size: 0,
    }
    .run()?;
    ensure!(
        opened.verdict == XDP_TX,
        "opening the connection: verdict {}",
        opened.verdict
    );

    let new_frame = frame(40001, SYN);
    let new_flows = datapath::Wrapped::new_flows(lb_fd, &new_frame)?;
    // DR takes one off the TTL, and live frames are recycled as the program left them.
    let established_frame = frame(40002, ACK);
    let established = datapath::Wrapped::restoring(lb_fd, &established_frame)?;
    let cases = [
        (
            "floor: swap MACs, XDP_TX",
            floor.as_fd(),
            frame(40000, ACK),
            None,
        ),
        (
            "lb DR: established connection (behind the restore wrapper)",
            established.fd(),
            established_frame.clone(),
            Some(Stat::ConnHit),
        ),
        (
            "lb DR: new connection (behind the new-flow wrapper)",
            new_flows.fd(),
            new_frame.clone(),
            Some(Stat::ConnNew),
        ),
    ];
    let mut rates: Vec<Rate> = cases
        .iter()
        .map(|(label, ..)| Rate {
            label: (*label).to_owned(),
            mpps: Vec::new(),
            delivered: 0.0,
            error: None,
        })
        .collect();
    let mut sent = vec![0u64; cases.len()];
    let mut counted = vec![0u64; cases.len()];
    for _ in 0..rounds {
        if super::interrupted() {
            break;
        }
        for (i, (_, prog, data, stat)) in cases.iter().enumerate() {
            if rates[i].error.is_some() {
                continue;
            }
            let result = (|| -> Result<f64> {
                let before = sink_count("sink0")?;
                let stats_before = lb.dp_stats()?;
                let r = TestRun {
                    prog: *prog,
                    data,
                    ingress_ifindex: gen0,
                    repeat: frames_per_round,
                    flags: F_TEST_XDP_LIVE_FRAMES,
                    batch_size: 0,
                }
                .run()?;
                // Frames still in flight are counted by the sink's NAPI poll shortly after.
                std::thread::sleep(std::time::Duration::from_millis(20));
                let after = sink_count("sink0")?;
                if let Some(stat) = stat {
                    let grew = lb.dp_stats()?[*stat as usize] - stats_before[*stat as usize];
                    ensure!(
                        grew == u64::from(frames_per_round),
                        "counter {} grew by {grew}, not {frames_per_round}",
                        stat.name()
                    );
                }
                sent[i] += u64::from(frames_per_round);
                counted[i] += after - before;
                Ok(f64::from(frames_per_round) / r.wall.as_secs_f64() / 1e6)
            })();
            match result {
                Ok(mpps) => rates[i].mpps.push(mpps),
                Err(e) => rates[i].error = Some(format!("{e:#}")),
            }
        }
    }
    for (i, rate) in rates.iter_mut().enumerate() {
        if sent[i] > 0 {
            rate.delivered = counted[i] as f64 / sent[i] as f64;
        }
    }
    Ok(Live {
        rates,
        frames_per_round,
        rounds,
    })
}
