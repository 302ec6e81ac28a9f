//! Section 3: per-packet cost as the tables grow, each size in an object loaded afresh and
//! measured next to the floor program in the same load, and the connection table's memory.
//!
//! - services: 1, 100, 10,000 virtual services (the service lookup of new connections and
//!   misses; established connections never look at it);
//! - real servers per service: 2, 100, 1,000, for `wrr` (a precomputed table: one slot read)
//!   and `wlc` (compares the live connection counts of every real server, up to
//!   `lb_common::MAX_SCAN`);
//! - connections: 1k, 100k, 1M entries in the connection table (its size set to hold them,
//!   filled from user space).

use std::{
    net::Ipv4Addr,
    os::fd::{AsFd as _, BorrowedFd},
};

use anyhow::{Context as _, Result};
use lb_common::{Conn, Stat, maps, method, scheduler, tcp_state};

use super::{
    Options,
    asm::{self, XDP_PASS, XDP_TX},
    bpf,
    datapath::{
        self, CLIENT, Case, DIRECTOR_IP, DIRECTOR_MAC, Lb, Measured, Net, PROGRAM, ROUTER_MAC, VIP,
        Wrapped,
    },
    frames::{self, ACK, SYN},
    packet_cost::last_cpu,
};

/// One measured point: `series` at size `x`, with the floor measured in the same load.
pub struct Point {
    pub x: u64,
    pub series: String,
    pub measured: Measured,
    pub floor: Measured,
}

/// One experiment: a table growing, several series.
pub struct Experiment {
    pub title: String,
    pub x_label: String,
    pub points: Vec<Point>,
    /// Problems with single sizes (the others still count).
    pub errors: Vec<String>,
}

/// The connection table's memory at each size.
pub struct ConnMemory {
    pub entries: u64,
    pub max_entries: u32,
    pub memlock: u64,
    /// How long filling it from user space took.
    pub fill_secs: f64,
}

pub struct Scaling {
    pub services: Experiment,
    pub reals: Experiment,
    pub conns: Experiment,
    pub conn_memory: Vec<ConnMemory>,
}

struct Sizes {
    services: Vec<u64>,
    reals: Vec<u64>,
    conns: Vec<u64>,
    /// Time one measurement should take (the repeat count is calibrated to it).
    target_ns: f64,
    rounds: usize,
}

pub fn run(opts: &Options) -> Result<Scaling> {
    let sizes = if opts.quick {
        Sizes {
            services: vec![1, 100, 10_000],
            reals: vec![2, 100, 1000],
            conns: vec![1000, 100_000],
            target_ns: 10e6,
            rounds: 5,
        }
    } else {
        Sizes {
            services: vec![1, 100, 10_000],
            reals: vec![2, 100, 1000],
            conns: vec![1000, 100_000, 1_000_000],
            target_ns: 80e6,
            rounds: 7,
        }
    };
    datapath::in_fresh_netns(move || run_in_netns(&sizes))
}

fn run_in_netns(sizes: &Sizes) -> Result<Scaling> {
    let net = Net::build()?;
    if let Some(cpu) = last_cpu() {
        let _ = bpf::pin_thread_to(cpu);
    }
    let floor = bpf::load_xdp("bench_floor", &asm::mac_swap_tx())?;
    let mut services = Experiment {
        title: "per-packet cost as services grow".into(),
        x_label: "virtual services".into(),
        points: vec![],
        errors: vec![],
    };
    for &n in &sizes.services {
        if super::interrupted() {
            break;
        }
        if let Err(e) = services_point(&net, &floor, n, sizes, &mut services.points) {
            services.errors.push(format!("{n} services: {e:#}"));
        }
    }
    let mut reals = Experiment {
        title: "new connections as real servers per service grow".into(),
        x_label: "real servers in the service".into(),
        points: vec![],
        errors: vec![],
    };
    for &n in &sizes.reals {
        if super::interrupted() {
            break;
        }
        if let Err(e) = reals_point(&net, &floor, n, sizes, &mut reals.points) {
            reals.errors.push(format!("{n} real servers: {e:#}"));
        }
    }
    let mut conns = Experiment {
        title: "per-packet cost as the connection table fills".into(),
        x_label: "connections in the table".into(),
        points: vec![],
        errors: vec![],
    };
    let mut conn_memory = Vec::new();
    for &n in &sizes.conns {
        if super::interrupted() {
            break;
        }
        match conns_point(&net, &floor, n, sizes, &mut conns.points) {
            Ok(mem) => conn_memory.push(mem),
            Err(e) => conns.errors.push(format!("{n} connections: {e:#}")),
        }
    }
    Ok(Scaling {
        services,
        reals,
        conns,
        conn_memory,
    })
}

fn client(dst: Ipv4Addr, sport: u16, flags: u8) -> Vec<u8> {
    frames::tcp_frame(DIRECTOR_MAC, ROUTER_MAC, CLIENT, dst, sport, 80, flags, b"")
}

/// Opens connection `sport` → `dst`:80 with a SYN, as a client would.
fn open(lb: &Lb, net: &Net, dst: Ipv4Addr, sport: u16) -> Result<()> {
    let case = lb_case(
        lb,
        net,
        "open",
        client(dst, sport, SYN),
        XDP_TX,
        vec![Stat::ConnNew],
    )?;
    datapath::run_case(&case, Some(lb), 1).context("opening a connection")?;
    Ok(())
}

/// A new connection every run: `frame` (a SYN) behind the new-flow wrapper, which `flows`
/// keeps alive for as long as the case is measured.
fn lb_new_case<'a>(flows: &'a Wrapped, net: &Net, label: &str, frame: Vec<u8>) -> Result<Case<'a>> {
    wrapped_case(
        flows,
        net,
        label,
        frame,
        XDP_TX,
        vec![Stat::Rx, Stat::ConnNew, Stat::TxRoute],
    )
}

/// `frame` through lb behind `wrapped` (which puts the frame back before every run: DR takes
/// one off the TTL).
fn wrapped_case<'a>(
    wrapped: &'a Wrapped,
    net: &Net,
    label: &str,
    frame: Vec<u8>,
    verdict: u32,
    counts: Vec<Stat>,
) -> Result<Case<'a>> {
    case(wrapped.fd(), net, label, frame, verdict, counts)
}

fn lb_case<'a>(
    lb: &'a Lb,
    net: &Net,
    label: &str,
    frame: Vec<u8>,
    verdict: u32,
    counts: Vec<Stat>,
) -> Result<Case<'a>> {
    case(lb.prog_fd(PROGRAM)?, net, label, frame, verdict, counts)
}

/// One measured path: `frame` through `prog`, compared with the floor.
fn case<'a>(
    prog: BorrowedFd<'a>,
    net: &Net,
    label: &str,
    frame: Vec<u8>,
    verdict: u32,
    counts: Vec<Stat>,
) -> Result<Case<'a>> {
    Ok(Case {
        key: label.to_owned(),
        label: label.to_owned(),
        prog,
        frame,
        ingress: net.ext,
        verdict,
        counts,
        baseline: Some("floor".into()),
    })
}

/// Measures `cases` (series name, case) next to the floor, each with a calibrated repeat, and
/// adds a point per series.
fn measure_point(
    lb: &Lb,
    net: &Net,
    floor: &std::os::fd::OwnedFd,
    x: u64,
    series: Vec<(String, Case<'_>)>,
    sizes: &Sizes,
    points: &mut Vec<Point>,
) -> Result<()> {
    let mut cases = vec![Case {
        key: "floor".into(),
        label: "floor".into(),
        prog: floor.as_fd(),
        frame: client(VIP, 40000, ACK),
        ingress: net.ext,
        verdict: XDP_TX,
        counts: vec![],
        baseline: None,
    }];
    let names: Vec<String> = series.iter().map(|(n, _)| n.clone()).collect();
    cases.extend(series.into_iter().map(|(_, c)| c));
    let mut repeats = Vec::new();
    for c in &cases {
        repeats.push(
            datapath::calibrate(c, Some(lb), sizes.target_ns, 2_000_000)
                .with_context(|| format!("checking {}", c.label))?,
        );
    }
    let mut measured = datapath::measure(
        &cases,
        &repeats,
        Some(lb),
        sizes.rounds,
        &super::interrupted,
    );
    let floor_m = measured.remove(0);
    for (name, m) in names.into_iter().zip(measured) {
        if let Some(e) = &m.error {
            anyhow::bail!("{name}: {e}");
        }
        points.push(Point {
            x,
            series: name,
            measured: m,
            floor: floor_m.clone(),
        });
    }
    Ok(())
}

/// `n` services, each a VIP of its own on port 80; the last one is measured.
fn services_point(
    net: &Net,
    floor: &std::os::fd::OwnedFd,
    n: u64,
    sizes: &Sizes,
    points: &mut Vec<Point>,
) -> Result<()> {
    let mut lb = Lb::load(&[])?;
    lb.set_iface(net.ext, DIRECTOR_MAC, DIRECTOR_IP)?;
    for i in [1u32, 2] {
        lb.set_real(
            i,
            1,
            method::ROUTE,
            Ipv4Addr::new(203, 0, 113, 20 + i as u8),
            datapath::DR_REAL_MAC,
            0,
        )?;
    }
    let vip = |i: u64| Ipv4Addr::new(10, 200, (i >> 8) as u8, i as u8);
    for i in 0..n {
        // Every service shares one table: only the service lookup grows.
        lb.set_service(i as u32 + 1, vip(i), 80, scheduler::RR, 0, &[1, 2])?;
    }
    let last = vip(n - 1);
    open(&lb, net, last, 40002)?;
    let new_frame = client(last, 40001, SYN);
    let new_flows = Wrapped::new_flows(lb.prog_fd(PROGRAM)?, &new_frame)?;
    let established_frame = client(last, 40002, ACK);
    let established = Wrapped::restoring(lb.prog_fd(PROGRAM)?, &established_frame)?;
    let other = Ipv4Addr::new(10, 201, 0, 1);
    use Stat::*;
    let series = vec![
        (
            "miss (not a service)".to_owned(),
            lb_case(
                &lb,
                net,
                "miss",
                client(other, 40000, ACK),
                XDP_PASS,
                vec![Rx, PassNotService],
            )?,
        ),
        (
            "DR new connection".to_owned(),
            lb_new_case(&new_flows, net, "new", new_frame)?,
        ),
        (
            "DR established".to_owned(),
            wrapped_case(
                &established,
                net,
                "established",
                established_frame,
                XDP_TX,
                vec![Rx, ConnHit, TxRoute],
            )?,
        ),
    ];
    measure_point(&lb, net, floor, n, series, sizes, points)
}

/// One service scheduled by `wrr` and one by `wlc`, each with `n` real servers of weight 1.
fn reals_point(
    net: &Net,
    floor: &std::os::fd::OwnedFd,
    n: u64,
    sizes: &Sizes,
    points: &mut Vec<Point>,
) -> Result<()> {
    let mut lb = Lb::load(&[])?;
    lb.set_iface(net.ext, DIRECTOR_MAC, DIRECTOR_IP)?;
    let n = n as u32;
    let vip_wlc = Ipv4Addr::new(203, 0, 113, 11);
    for (service, sched, first, vip) in [
        (1u32, scheduler::WRR, 1u32, VIP),
        (2, scheduler::WLC, n + 1, vip_wlc),
    ] {
        let ids: Vec<u32> = (first..first + n).collect();
        for id in &ids {
            let ip = Ipv4Addr::new(10, 50 + service as u8, (id >> 8) as u8, *id as u8);
            lb.set_real(*id, service, method::ROUTE, ip, datapath::DR_REAL_MAC, 0)?;
        }
        // IPVS's wrr sequence for equal weights is the real servers in order; wlc's table
        // lists the real servers it compares.
        lb.set_service(service, vip, 80, sched, first - 1, &ids)?;
    }
    let wrr_frame = client(VIP, 40001, SYN);
    let wlc_frame = client(vip_wlc, 40001, SYN);
    let wrr_flows = Wrapped::new_flows(lb.prog_fd(PROGRAM)?, &wrr_frame)?;
    let wlc_flows = Wrapped::new_flows(lb.prog_fd(PROGRAM)?, &wlc_frame)?;
    let series = vec![
        (
            "wrr new connection".to_owned(),
            lb_new_case(&wrr_flows, net, "wrr", wrr_frame)?,
        ),
        (
            "wlc new connection".to_owned(),
            lb_new_case(&wlc_flows, net, "wlc", wlc_frame)?,
        ),
    ];
    measure_point(&lb, net, floor, u64::from(n), series, sizes, points)
}

/// A connection table sized for `n` entries (plus a quarter, so that nothing is evicted),
/// filled with `n` established connections from user space.
fn conns_point(
    net: &Net,
    floor: &std::os::fd::OwnedFd,
    n: u64,
    sizes: &Sizes,
    points: &mut Vec<Point>,
) -> Result<ConnMemory> {
    let max_entries = (n + n / 4) as u32;
    let mut lb = Lb::load(&[(maps::CONNS, max_entries)])?;
    lb.set_iface(net.ext, DIRECTOR_MAC, DIRECTOR_IP)?;
    for i in [1u32, 2] {
        lb.set_real(
            i,
            1,
            method::ROUTE,
            Ipv4Addr::new(203, 0, 113, 20 + i as u8),
            datapath::DR_REAL_MAC,
            0,
        )?;
    }
    lb.set_service(1, VIP, 80, scheduler::RR, 0, &[1, 2])?;
    let fill = std::time::Instant::now();
    let conn = Conn {
        real: 1,
        service: 1,
        vaddr: datapath::addr(VIP),
        vport: 80u16.to_be(),
        state: tcp_state::ESTABLISHED,
        // Used now: an entry idle past its timeout is over for the data path.
        last_seen_ns: coarse_now_ns(),
        ..Conn::default()
    };
    // Clients 100.64.0.0/10, ports from 1024: distinct flows, as many clients would make.
    let client_of = |i: u64| {
        (
            Ipv4Addr::from(0x6440_0000u32 + (i / 60_000) as u32),
            1024 + (i % 60_000) as u16,
        )
    };
    for i in 0..n {
        let (ip, port) = client_of(i);
        lb.conns
            .insert(datapath::flow_key(ip, VIP, port, 80), conn, 0)
            .with_context(|| format!("inserting connection {i}"))?;
        if i % 100_000 == 0 && super::interrupted() {
            anyhow::bail!("interrupted");
        }
    }
    let fill_secs = fill.elapsed().as_secs_f64();
    // The measured connection is one from the middle of the fill.
    let (mid_ip, mid_port) = client_of(n / 2);
    let mid_frame = frames::tcp_frame(
        DIRECTOR_MAC,
        ROUTER_MAC,
        mid_ip,
        VIP,
        mid_port,
        80,
        ACK,
        b"",
    );
    let memory = lb.maps_memory()?;
    let memlock = memory
        .iter()
        .find(|m| m.name == maps::CONNS)
        .map_or(0, |m| m.memlock);
    use Stat::*;
    let established = Wrapped::restoring(lb.prog_fd(PROGRAM)?, &mid_frame)?;
    let series = vec![(
        "DR established".to_owned(),
        wrapped_case(
            &established,
            net,
            "established",
            mid_frame,
            XDP_TX,
            vec![Rx, ConnHit, TxRoute],
        )?,
    )];
    // (No new connections here: each would add an entry to the table being measured.)
    measure_point(&lb, net, floor, n, series, sizes, points)?;
    Ok(ConnMemory {
        entries: n,
        max_entries,
        memlock,
        fill_secs,
    })
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds, the clock the data path stamps entries with.
fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
