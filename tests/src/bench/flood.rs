//! A SYN flood against established connections, through the real program
//! (BPF_PROG_TEST_RUN) at lbd's default table sizes: 1,000 connections are opened (SYN, then
//! the handshake's ACK), then SYNs from a new spoofed source each, several times the
//! half-open table's size, arrive in rounds; between rounds the busy half of the connections
//! sends a segment and the other half stays idle. At the end every connection must still be
//! in the connection table with its real server, and the connection table's live counts
//! must be exactly the 1,000. What is measured: the time per flood SYN, and what survived.

use std::{net::Ipv4Addr, os::fd::BorrowedFd};

use anyhow::{Context as _, Result, ensure};
use lb_common::{DEFAULT_CONN_TABLE_SIZE, half_open_table_size, stage::ENTRY as PROGRAM};

use super::{
    Options, bpf,
    datapath::{self, CLIENT, DIRECTOR_MAC, Lb, Net, ROUTER_MAC, VIP, Wrapped},
    frames::{self, ACK, SYN},
};

const XDP_TX: u32 = 3;

/// What the flood left.
pub struct Flood {
    pub conn_table: u32,
    pub half_open_table: u32,
    pub established: u32,
    pub rounds: Vec<Round>,
}

/// One round of the flood, and the state after it.
pub struct Round {
    /// Flood SYNs so far, in multiples of the half-open table.
    pub times_table: f64,
    pub syns: u64,
    /// CPU time per flood SYN in this round (the new-flow wrapper included).
    pub ns_per_syn: f64,
    /// Established connections still in the connection table with their real server.
    pub kept: u32,
    /// ... in the table with another real server, or gone.
    pub moved: u32,
    pub lost: u32,
    /// The connection table's live active count (exact: 1,000 expected) and the half-open
    /// share's running count (every flood SYN; lbd's sweep recounts it every second).
    pub table_active: i64,
    pub half_open_running: i64,
    /// Entries in the half-open table (at most its size).
    pub half_open_entries: u64,
}

pub fn run(opts: &Options) -> Result<Flood> {
    let rounds = if opts.quick { 2 } else { 8 };
    datapath::in_fresh_netns(move || flood(rounds))
}

/// Established client `i`: its own address, port 40000.
fn client(i: u32, flags: u8) -> Vec<u8> {
    let src = Ipv4Addr::from(u32::from(CLIENT) + i);
    frames::tcp_frame(DIRECTOR_MAC, ROUTER_MAC, src, VIP, 40000, 80, flags, b"")
}

fn run_once(prog: BorrowedFd<'_>, net: &Net, frame: &[u8]) -> Result<u32> {
    Ok(bpf::TestRun {
        prog,
        data: frame,
        ingress_ifindex: net.ext,
        repeat: 1,
        flags: 0,
        batch_size: 0,
    }
    .run()?
    .verdict)
}

fn flood(rounds: u32) -> Result<Flood> {
    const ESTABLISHED: u32 = 1000;
    let net = Net::build()?;
    let mut lb = Lb::load(&[])?;
    lb.standard_world(&net)?;
    // lbd's default sizes, as loaded.
    let conn_table = DEFAULT_CONN_TABLE_SIZE;
    let half_open_table = half_open_table_size(conn_table);
    let prog = lb.prog_fd(PROGRAM)?;

    let flow = |i: u32| datapath::flow_key(Ipv4Addr::from(u32::from(CLIENT) + i), VIP, 40000, 80);
    let mut real_of = Vec::new();
    for i in 0..ESTABLISHED {
        for flags in [SYN, ACK] {
            let verdict = run_once(prog, &net, &client(i, flags))?;
            ensure!(
                verdict == XDP_TX,
                "opening connection {i}: verdict {verdict}"
            );
        }
        let conn = lb
            .conns
            .get(&flow(i), 0)
            .with_context(|| format!("connection {i} not in the connection table"))?;
        real_of.push(conn.real);
    }
    let reals: Vec<u32> = {
        let mut r = real_of.clone();
        r.sort_unstable();
        r.dedup();
        r
    };
    let active = |lb: &Lb| -> Result<(i64, i64)> {
        let mut sum = (0, 0);
        for id in &reals {
            let c = lb.real_conns.get(id, 0)?;
            sum.0 += c.active;
            sum.1 += c.half_open_active;
        }
        Ok(sum)
    };
    let (before, _) = active(&lb)?;
    ensure!(
        before == i64::from(ESTABLISHED),
        "{before} active before the flood"
    );

    // SYNs from spoofed clients, a new source address each (the new-flow wrapper counts).
    let syn = frames::tcp_frame(
        DIRECTOR_MAC,
        ROUTER_MAC,
        Ipv4Addr::new(100, 64, 0, 0),
        VIP,
        1024,
        80,
        SYN,
        b"",
    );
    let wrapped = Wrapped::new_flows(prog, &syn)?;
    let per_round = half_open_table;
    let mut out = Vec::new();
    for round in 1..=rounds {
        let r = bpf::TestRun {
            prog: wrapped.fd(),
            data: &syn,
            ingress_ifindex: net.ext,
            repeat: per_round,
            flags: 0,
            batch_size: 0,
        }
        .run()?;
        ensure!(r.verdict == XDP_TX, "flood SYN: verdict {}", r.verdict);
        // The busy half sends a segment; the other half stays idle through the flood.
        for i in (0..ESTABLISHED).step_by(2) {
            let verdict = run_once(prog, &net, &client(i, ACK))?;
            ensure!(
                verdict == XDP_TX,
                "connection {i} after round {round}: verdict {verdict}"
            );
        }
        let (mut kept, mut moved, mut lost) = (0, 0, 0);
        for i in 0..ESTABLISHED {
            match lb.conns.get(&flow(i), 0) {
                Ok(c) if c.real == real_of[i as usize] => kept += 1,
                Ok(_) => moved += 1,
                Err(_) => lost += 1,
            }
        }
        let (table_active, half_open_running) = active(&lb)?;
        out.push(Round {
            times_table: f64::from(round),
            syns: u64::from(round) * u64::from(per_round),
            ns_per_syn: r.thread_cpu.as_nanos() as f64 / f64::from(per_round),
            kept,
            moved,
            lost,
            table_active,
            half_open_running,
            half_open_entries: lb.half_open.keys().count() as u64,
        });
        if super::interrupted() {
            break;
        }
    }
    Ok(Flood {
        conn_table,
        half_open_table,
        established: ESTABLISHED,
        rounds: out,
    })
}
