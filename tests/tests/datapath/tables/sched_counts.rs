//! IPVS parity of the schedulers that compare live connection counts (lc, wlc, sed, nq, fo,
//! ovf), of the thresholds (`-x`/`-y`) and of persistence (`-p`, `-M`). (lblc and lblcr, which
//! build on wlc, have their own table: `locality`.)
//!
//! Each fixture writes weights, thresholds and `REAL_CONNS` counts as lbd and its sweep would,
//! sends new connections, and expects the real server IPVS would pick. The expected picks are
//! worked out by hand from the kernel's schedulers (`net/netfilter/ipvs/ip_vs_*.c`), walking
//! the real servers in table order:
//!
//! - lc: least `active × 256 + inactive` (`ip_vs_dest_conn_overhead`); weight 0 skipped.
//! - wlc: least `(active × 256 + inactive) / weight`, compared as `a × w_b < b × w_a`.
//! - sed: least `(active + 1) / weight`; inactive connections do not count.
//! - nq: the first real server without active connections, else as sed.
//! - fo: the highest weight, whatever its counts.
//! - ovf: the highest weight among those whose active connections do not exceed their
//!   weight (`ip_vs_ovf.c` skips `activeconns > weight`).
//!
//! and in every one of them a tie goes to the first in the table (the comparisons are
//! strict), and a real server flagged overloaded is skipped. The flag is set at the upper
//! threshold (`active + inactive >= -x`) and cleared below the lower one: `-y`, or without it
//! where `total × 4 < upper × 3` (`ip_vs_unbind_dest`). rr skips overloaded servers too and
//! carries on after the one it picked (`ip_vs_rr.c` stores the hit as its position).
//!
//! Persistence (`ip_vs_sched_persist`): a live template for (service, client & netmask) names
//! the real server without asking the scheduler, as long as that real server is still in the
//! service (`ip_vs_check_template`: its weight and load do not matter); an expired one, or one
//! naming a removed real server, is replaced by the scheduler's choice.

use std::time::Duration;

use lb_common::{
    PersistKey, REAL_F_IN_USE, REAL_F_REMOVED, REAL_F_RESOLVED, RealConns, RealServer,
    SERVICE_F_PERSISTENT, Service, Stat, scheduler,
    tcp_state::{CLOSE, ESTABLISHED, FIN_WAIT, SYN_RECV, UDP},
};
use lb_user::{
    model::{SchedFlags, Scheduler},
    sched::{self, Candidate},
};

use crate::{
    fixture::{Expect, Fixture, Send, Step, overloaded_conns, real_conns},
    harness::Change,
    packet::{ACK, FIN, Frame, RST, SYN},
    world::{
        A, ALL_PORTS, ALL_PORTS_VIP, B, C, CLIENT, CLIENT_2, D, DNS, HTTP, RealDef, ServiceDef,
        VIP, add_real, addr, director_iface, dns, flow_of, http, known_flow, new_flow, real_server,
        service_key, tcp,
    },
};

/// A client on another /24 than [`CLIENT`] and [`CLIENT_2`].
const FAR_CLIENT: std::net::Ipv4Addr = std::net::Ipv4Addr::new(198, 51, 101, 7);

/// ipvsadm's persistence timeout in these fixtures (`-p 60`).
const PERSIST_TIMEOUT: u32 = 60;

/// A netmask as the service entry keeps it (network order in memory).
fn mask(octets: [u8; 4]) -> lb_common::Addr {
    lb_common::Addr::v4(u32::from_ne_bytes(octets))
}

const HOST_MASK: [u8; 4] = [255, 255, 255, 255];
const NET24_MASK: [u8; 4] = [255, 255, 255, 0];

pub(super) fn name(real: &RealDef) -> &'static str {
    match real.id {
        1 => "A",
        2 => "B",
        3 => "C",
        4 => "D",
        5 => "E",
        6 => "F",
        11..=19 => ["R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9"][real.id as usize - 11],
        _ => "?",
    }
}

/// A real server of the fixture's service as lbd configured it, with the live counts its
/// sweep last wrote.
#[derive(Clone, Copy)]
pub(super) struct Rs {
    def: &'static RealDef,
    weight: u32,
    active: i64,
    inactive: i64,
    upper: u32,
    lower: u32,
}

/// Real server `def` with `weight` and `active`/`inactive` connections.
pub(super) fn rs(def: &'static RealDef, weight: u32, active: i64, inactive: i64) -> Rs {
    Rs {
        def,
        weight,
        active,
        inactive,
        upper: 0,
        lower: 0,
    }
}

impl Rs {
    /// `-x upper -y lower` (lower 0: not given).
    pub(super) fn thresholds(self, upper: u32, lower: u32) -> Rs {
        Rs {
            upper,
            lower,
            ..self
        }
    }

    pub(super) fn changes(&self, svc: &ServiceDef) -> Vec<Change> {
        vec![
            Change::Real {
                id: self.def.id,
                real: RealServer {
                    weight: self.weight,
                    upper_threshold: self.upper,
                    lower_threshold: self.lower,
                    ..real_server(self.def, svc)
                },
            },
            Change::RealConns {
                id: self.def.id,
                conns: RealConns {
                    active: self.active,
                    inactive: self.inactive,
                    ..RealConns::default()
                },
            },
        ]
    }
}

/// How the service is persistent: `-p timeout -M netmask`.
#[derive(Clone, Copy)]
pub(super) struct Persistence {
    timeout: u32,
    netmask: [u8; 4],
}

const PERSIST_HOST: Persistence = Persistence {
    timeout: PERSIST_TIMEOUT,
    netmask: HOST_MASK,
};

/// The service entry of `svc` scheduled by `scheduler` over a `len`-slot table.
fn service_entry(
    svc: &ServiceDef,
    scheduler: u32,
    len: u32,
    persistence: Option<Persistence>,
) -> Change {
    let (flags, persist_timeout, persist_mask) = match persistence {
        Some(p) => (SERVICE_F_PERSISTENT, p.timeout, mask(p.netmask)),
        None => (0, 0, lb_common::Addr::ZERO),
    };
    Change::Service {
        key: service_key(svc),
        service: Service {
            id: svc.id,
            scheduler,
            flags,
            table_offset: svc.table_offset,
            table_len: len,
            persist_timeout,
            persist_mask,
        },
    }
}

/// The director with `reals` as the real servers of `svc`, listed in its table in that order
/// (as lbd lists the available real servers for the connection-count schedulers, and for rr).
pub(super) fn service_world(
    svc: &ServiceDef,
    scheduler: u32,
    persistence: Option<Persistence>,
    reals: &[Rs],
) -> Vec<Change> {
    let mut changes = vec![director_iface()];
    for r in reals {
        changes.extend(r.changes(svc));
    }
    changes.push(Change::Slots {
        offset: svc.table_offset,
        ids: reals.iter().map(|r| r.def.id).collect(),
    });
    changes.push(service_entry(
        svc,
        scheduler,
        reals.len() as u32,
        persistence,
    ));
    changes
}

/// [`service_world`] for HTTP, not persistent.
pub(super) fn world(scheduler: u32, reals: &[Rs]) -> Vec<Change> {
    service_world(&HTTP, scheduler, None, reals)
}

/// A SYN from the client's port `port`, expected to open a connection at `real`, whose live
/// counts are then `active`/`inactive` (overload flag clear).
pub(super) fn syn_to(port: u16, real: &RealDef, active: i64, inactive: i64) -> Step {
    new_flow(
        &format!("SYN :{port} goes to {}", name(real)),
        &http(port, SYN),
        real,
        &HTTP,
        SYN_RECV,
    )
    .expect([real_conns(real.id, active, inactive)])
    .into()
}

/// SYNs from successive ports from `first_port`, each expected at the real server given,
/// with its counts afterwards.
pub(super) fn syns_to(first_port: u16, picks: &[(&RealDef, i64, i64)]) -> Vec<Step> {
    picks
        .iter()
        .enumerate()
        .map(|(i, &(real, active, inactive))| syn_to(first_port + i as u16, real, active, inactive))
        .collect()
}

/// A SYN no real server can take: dropped as IPVS drops it, nothing remembered.
pub(super) fn syn_dropped(port: u16) -> Step {
    let frame = http(port, SYN);
    Send::drop(
        format!("SYN :{port} finds no real server"),
        frame.bytes(),
        Stat::DropNoReal,
    )
    .expect([Expect::NoConn(flow_of(&frame))])
    .into()
}

/// lbd's periodic sweep writing `real`'s exact counts (the overload flag is the data path's).
pub(super) fn sweep(what: &'static str, real: &RealDef, active: i64, inactive: i64) -> Step {
    Step::Apply {
        what,
        changes: vec![Change::SweptConns {
            id: real.id,
            active,
            inactive,
        }],
    }
}

fn persist_key(svc: &ServiceDef, client: std::net::Ipv4Addr, netmask: [u8; 4]) -> PersistKey {
    PersistKey {
        service: svc.id,
        client: addr(client).and(&mask(netmask)),
    }
}

/// A SYN from `src:port` to `svc`, sent to `real` by a persistence template.
fn persist_hit(what: &str, frame: &Frame, real: &RealDef, svc: &ServiceDef) -> Send {
    new_flow(what, frame, real, svc, SYN_RECV).counts(&[Stat::PersistHit])
}

pub fn fixtures() -> Vec<Fixture> {
    let mut fixtures = least_connection();
    fixtures.extend(weighted_least_connection());
    fixtures.extend(shortest_expected_delay());
    fixtures.extend(never_queue());
    fixtures.extend(weighted_failover());
    fixtures.extend(overflow());
    fixtures.extend(counts_follow_connections());
    fixtures.extend(thresholds());
    fixtures.extend(persistence());
    fixtures
}

fn least_connection() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "lc: one active connection outweighs 255 inactive ones (active*256 + inactive)",
            // Overheads 256, 257, 300.
            setup: world(
                scheduler::LC,
                &[rs(&A, 1, 1, 0), rs(&B, 1, 0, 257), rs(&C, 1, 0, 300)],
            ),
            // A 256 → A 512; B 257 → B 513; C 300 → C 556; A 512 is the least.
            steps: syns_to(1001, &[(&A, 2, 0), (&B, 1, 257), (&C, 1, 300), (&A, 3, 0)]),
        },
        Fixture {
            name: "lc: equal overheads go to the first in the table (table C, A, B)",
            setup: world(
                scheduler::LC,
                &[rs(&C, 1, 0, 5), rs(&A, 1, 0, 5), rs(&B, 1, 0, 5)],
            ),
            steps: syns_to(1101, &[(&C, 1, 5), (&A, 1, 5), (&B, 1, 5), (&C, 2, 5)]),
        },
        Fixture {
            name: "lc ignores weights: A (weight 10, 2 active = 512) loses to B (weight 1, 100 inactive)",
            setup: world(scheduler::LC, &[rs(&A, 10, 2, 0), rs(&B, 1, 0, 100)]),
            steps: syns_to(1201, &[(&B, 1, 100)]),
        },
        Fixture {
            name: "lc: a weight-0 real server still in the table takes nothing (quiesced)",
            setup: world(scheduler::LC, &[rs(&A, 0, 0, 0), rs(&B, 1, 5, 0)]),
            steps: {
                let mut steps = syns_to(1301, &[(&B, 6, 0), (&B, 7, 0)]);
                steps.push(Step::Expect(vec![real_conns(A.id, 0, 0)]));
                steps
            },
        },
    ]
}

fn weighted_least_connection() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "wlc: (active*256 + inactive) / weight, ties to the first (A w3, B w1)",
            setup: world(scheduler::WLC, &[rs(&A, 3, 2, 0), rs(&B, 1, 1, 0)]),
            // A 512/3 < B 256 → A; 768/3 = 256 ties → A; 1024/3 > 256 → B; 1024/3 < 512 → A;
            // 1280/3 < 512 → A; 1536/3 = 512 ties → A; 1792/3 > 512 → B.
            steps: syns_to(
                2001,
                &[
                    (&A, 3, 0),
                    (&A, 4, 0),
                    (&B, 2, 0),
                    (&A, 5, 0),
                    (&A, 6, 0),
                    (&A, 7, 0),
                    (&B, 3, 0),
                ],
            ),
        },
        Fixture {
            name: "wlc: inactive connections count (A 10 inactive, B 9)",
            setup: world(scheduler::WLC, &[rs(&A, 1, 0, 10), rs(&B, 1, 0, 9)]),
            // B 9 → B 265; A 10 → A 266; B 265 is the least.
            steps: syns_to(2101, &[(&B, 1, 9), (&A, 1, 10), (&B, 2, 9)]),
        },
        Fixture {
            name: "wlc weighs: A (weight 10, 2 active: 512/10) beats B (weight 1, 100 inactive)",
            setup: world(scheduler::WLC, &[rs(&A, 10, 2, 0), rs(&B, 1, 0, 100)]),
            steps: syns_to(2201, &[(&A, 3, 0)]),
        },
        Fixture {
            name: "wlc: B (256/2) and A (128/1) tie exactly: the first in the table (B) wins",
            setup: world(scheduler::WLC, &[rs(&B, 2, 1, 0), rs(&A, 1, 0, 128)]),
            steps: syns_to(2301, &[(&B, 2, 0)]),
        },
    ]
}

fn shortest_expected_delay() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "sed: (active + 1) / weight; inactive connections do not count",
            setup: world(scheduler::SED, &[rs(&A, 1, 0, 1000), rs(&B, 1, 0, 0)]),
            // 1 and 1 tie → A; A 2 > B 1 → B; 2 and 2 tie → A.
            steps: syns_to(3001, &[(&A, 1, 1000), (&B, 1, 0), (&A, 2, 1000)]),
        },
        Fixture {
            name: "sed: A (weight 3) keeps taking while its expected delay is not longer than B's",
            setup: world(scheduler::SED, &[rs(&A, 3, 2, 0), rs(&B, 1, 0, 0)]),
            // 3/3 ties 1/1 → A; 4/3 > 1 → B; 4/3 < 2 → A; 5/3 < 2 → A; 6/3 ties 2 → A;
            // 7/3 > 2 → B.
            steps: syns_to(
                3101,
                &[
                    (&A, 3, 0),
                    (&B, 1, 0),
                    (&A, 4, 0),
                    (&A, 5, 0),
                    (&A, 6, 0),
                    (&B, 2, 0),
                ],
            ),
        },
    ]
}

fn never_queue() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "nq: an idle real server first, then as sed (A w3 with 2 active, B w1 idle)",
            setup: world(scheduler::NQ, &[rs(&A, 3, 2, 0), rs(&B, 1, 0, 0)]),
            // B idle → B; then sed: 3/3 < 2 → A; 4/3 < 2 → A; 5/3 < 2 → A; 6/3 ties 2 → A;
            // 7/3 > 2 → B.
            steps: syns_to(
                4001,
                &[
                    (&B, 1, 0),
                    (&A, 3, 0),
                    (&A, 4, 0),
                    (&A, 5, 0),
                    (&A, 6, 0),
                    (&B, 2, 0),
                ],
            ),
        },
        Fixture {
            name: "nq: idle means no active connections; inactive ones do not make it busy",
            setup: world(scheduler::NQ, &[rs(&A, 5, 1, 0), rs(&B, 1, 0, 50)]),
            steps: syns_to(4101, &[(&B, 1, 50)]),
        },
        Fixture {
            name: "nq: the first idle real server in table order (table A, C, B)",
            setup: world(
                scheduler::NQ,
                &[rs(&A, 1, 1, 0), rs(&C, 1, 0, 0), rs(&B, 1, 0, 0)],
            ),
            // C idle → C; B idle → B; then 2/1 each, tie → A.
            steps: syns_to(4201, &[(&C, 1, 0), (&B, 1, 0), (&A, 2, 0)]),
        },
    ]
}

fn weighted_failover() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "fo: the highest weight takes everything, whatever its counts; ties to the first",
            setup: world(
                scheduler::FO,
                &[rs(&A, 1, 0, 0), rs(&B, 5, 100, 100), rs(&C, 5, 0, 0)],
            ),
            steps: syns_to(5001, &[(&B, 101, 100), (&B, 102, 100), (&B, 103, 100)]),
        },
        Fixture {
            name: "fo: the highest weight at its upper threshold: the next highest",
            setup: world(
                scheduler::FO,
                &[
                    rs(&A, 1, 0, 0),
                    rs(&B, 5, 10, 0).thresholds(10, 0),
                    rs(&C, 3, 0, 0),
                ],
            ),
            steps: {
                let mut steps = syns_to(5101, &[(&C, 1, 0), (&C, 2, 0)]);
                steps.push(Step::Expect(vec![overloaded_conns(B.id, 10, 0)]));
                steps
            },
        },
    ]
}

fn overflow() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "ovf: the highest weight while its active connections are within its weight",
            setup: world(scheduler::OVF, &[rs(&A, 2, 0, 0), rs(&B, 3, 1, 500)]),
            steps: {
                let mut steps = syns_to(6001, &[(&B, 2, 500)]);
                steps.push(sweep("lbd's sweep: B has 5 active", &B, 5, 500));
                steps.extend(syns_to(6002, &[(&A, 1, 0), (&A, 2, 0)]));
                steps
            },
        },
        Fixture {
            name: "ovf: as many active connections as its weight still takes one more (skipped only when active > weight)",
            setup: world(scheduler::OVF, &[rs(&A, 2, 0, 0), rs(&B, 3, 3, 0)]),
            // B: 3 active, weight 3: ip_vs_ovf.c skips only `activeconns > weight`.
            steps: syns_to(6101, &[(&B, 4, 0), (&A, 1, 0)]),
        },
        Fixture {
            name: "ovf: every real server over its weight: dropped (drop_no_real)",
            setup: world(scheduler::OVF, &[rs(&A, 1, 2, 0), rs(&B, 1, 5, 0)]),
            steps: vec![syn_dropped(6201)],
        },
    ]
}

fn counts_follow_connections() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "counts: SYN opens an active connection, FIN makes it inactive, a SYN on CLOSE replaces it",
            setup: world(scheduler::LC, &[rs(&A, 1, 2, 3), rs(&B, 1, 9, 9)]),
            steps: vec![
                syn_to(7001, &A, 3, 3),
                known_flow("ACK", &http(7001, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .expect([real_conns(A.id, 3, 3)])
                    .into(),
                known_flow("FIN", &http(7001, FIN | ACK), &A, &HTTP, FIN_WAIT)
                    .expect([real_conns(A.id, 2, 4)])
                    .into(),
                known_flow("RST", &http(7001, RST), &A, &HTTP, CLOSE)
                    .expect([real_conns(A.id, 2, 4)])
                    .into(),
                new_flow(
                    "SYN again on the CLOSE'd ports",
                    &http(7001, SYN),
                    &A,
                    &HTTP,
                    SYN_RECV,
                )
                .expect([
                    real_conns(A.id, 3, 3),
                    real_conns(B.id, 9, 9),
                    Expect::ConnCount(1),
                ])
                .into(),
            ],
        },
        Fixture {
            name: "counts: lc balances on the counts its own connections leave",
            setup: world(scheduler::LC, &[rs(&A, 1, 0, 0), rs(&B, 1, 0, 0)]),
            steps: {
                let mut steps = syns_to(7101, &[(&A, 1, 0), (&B, 1, 0), (&A, 2, 0)]);
                steps.push(
                    known_flow("ACK of A's first", &http(7101, ACK), &A, &HTTP, ESTABLISHED)
                        .promotes()
                        .expect([real_conns(A.id, 2, 0)])
                        .into(),
                );
                steps.push(
                    known_flow(
                        "FIN of A's first",
                        &http(7101, FIN | ACK),
                        &A,
                        &HTTP,
                        FIN_WAIT,
                    )
                    .expect([real_conns(A.id, 1, 1)])
                    .into(),
                );
                // A 257 against B 256.
                steps.extend(syns_to(7104, &[(&B, 2, 0), (&A, 2, 1)]));
                steps
            },
        },
        Fixture {
            name: "counts: sloppy_tcp: an ACK of an unknown connection starts ESTABLISHED, counted active",
            setup: {
                let mut setup = world(scheduler::WLC, &[rs(&A, 1, 0, 0)]);
                setup.push(crate::world::sloppy_tcp());
                setup
            },
            steps: vec![
                new_flow("ACK", &http(7201, ACK), &A, &HTTP, ESTABLISHED)
                    .expect([real_conns(A.id, 1, 0)])
                    .into(),
            ],
        },
        Fixture {
            name: "counts: a UDP flow is counted inactive",
            setup: service_world(&DNS, scheduler::LC, None, &[rs(&D, 1, 0, 0)]),
            steps: vec![
                new_flow("query", &dns(5353), &D, &DNS, UDP)
                    .expect([real_conns(D.id, 0, 1)])
                    .into(),
                known_flow("next query, same ports", &dns(5353), &D, &DNS, UDP)
                    .promotes()
                    .expect([real_conns(D.id, 0, 1)])
                    .into(),
                new_flow("query from another port", &dns(5354), &D, &DNS, UDP)
                    .expect([real_conns(D.id, 0, 2)])
                    .into(),
            ],
        },
    ]
}

/// The `sh` table lbd writes for HTTP over `reals` (weights as given), with or without
/// `sh-fallback`, and the real server of [`CLIENT`]'s bucket.
fn sh_table(reals: &[Rs], fallback: bool) -> (Vec<u32>, u32) {
    let candidates: Vec<Candidate> = reals
        .iter()
        .map(|r| Candidate {
            id: r.def.id,
            weight: r.weight,
            addr: r.def.addr.into(),
            port: HTTP.port,
        })
        .collect();
    let flags = SchedFlags {
        fallback,
        ..SchedFlags::default()
    };
    let table = sched::build(Scheduler::Sh, flags, &candidates);
    let bucket = lb_common::hash::sh_bucket(addr(CLIENT).fold(), 0, false);
    let id = table[bucket as usize % table.len()];
    (table, id)
}

/// HTTP scheduled by `sh` (with or without `sh-fallback`) over A and B, the real server of
/// [`CLIENT`]'s bucket at its upper threshold; returns the setup and that real server.
fn sh_overloaded_world(fallback: bool) -> (Vec<Change>, &'static RealDef, &'static RealDef) {
    let plain = [rs(&A, 1, 0, 0), rs(&B, 1, 0, 0)];
    let (table, id) = sh_table(&plain, fallback);
    let (busy, other): (&'static RealDef, &'static RealDef) =
        if id == A.id { (&A, &B) } else { (&B, &A) };
    let reals: Vec<Rs> = plain
        .iter()
        .map(|r| {
            if r.def.id == busy.id {
                rs(r.def, 1, 1, 0).thresholds(1, 0)
            } else {
                *r
            }
        })
        .collect();
    let mut setup = vec![director_iface()];
    for r in &reals {
        setup.extend(r.changes(&HTTP));
    }
    let len = table.len() as u32;
    setup.push(Change::Slots {
        offset: HTTP.table_offset,
        ids: table,
    });
    let mut entry = service_entry(&HTTP, scheduler::SH, len, None);
    if fallback && let Change::Service { service, .. } = &mut entry {
        // lbd sets this for `-b sh-fallback`.
        service.flags |= lb_common::SERVICE_F_HASH_FALLBACK;
    }
    setup.push(entry);
    (setup, busy, other)
}

fn thresholds() -> Vec<Fixture> {
    let (sh_setup, _, _) = sh_overloaded_world(false);
    let (sh_fallback_setup, sh_busy, sh_other) = sh_overloaded_world(true);
    vec![
        Fixture {
            name: "-x: a real server at its upper threshold is skipped and flagged (wlc would pick it)",
            setup: world(
                scheduler::WLC,
                &[rs(&A, 10, 2, 0).thresholds(2, 0), rs(&B, 1, 5, 0)],
            ),
            steps: {
                let mut steps = syns_to(8001, &[(&B, 6, 0)]);
                steps.push(Step::Expect(vec![overloaded_conns(A.id, 2, 0)]));
                steps
            },
        },
        Fixture {
            name: "-x counts active and inactive connections (1 + 2 at upper 3)",
            setup: world(
                scheduler::LC,
                &[rs(&A, 1, 1, 2).thresholds(3, 0), rs(&B, 1, 5, 0)],
            ),
            steps: {
                let mut steps = syns_to(8101, &[(&B, 6, 0)]);
                steps.push(Step::Expect(vec![overloaded_conns(A.id, 1, 2)]));
                steps
            },
        },
        Fixture {
            name: "-x with rr: the overloaded real server is passed over",
            setup: world(
                scheduler::RR,
                &[rs(&A, 1, 1, 0).thresholds(1, 0), rs(&B, 1, 0, 0)],
            ),
            steps: syns_to(8201, &[(&B, 1, 0), (&B, 2, 0), (&B, 3, 0)]),
        },
        Fixture {
            name: "-x with rr over A, B, C, A overloaded: B and C take turns (IPVS resumes after its pick)",
            setup: world(
                scheduler::RR,
                &[
                    rs(&A, 1, 1, 0).thresholds(1, 0),
                    rs(&B, 1, 0, 0),
                    rs(&C, 1, 0, 0),
                ],
            ),
            steps: syns_to(8301, &[(&B, 1, 0), (&C, 1, 0), (&B, 2, 0), (&C, 2, 0)]),
        },
        Fixture {
            name: "-x with sh: the client's bucket overloaded: dropped (no sh-fallback)",
            setup: sh_setup,
            steps: vec![syn_dropped(8401), syn_dropped(8402)],
        },
        Fixture {
            name: "-x with sh-fallback: the client's bucket overloaded: another real server",
            setup: sh_fallback_setup,
            steps: vec![
                new_flow("SYN", &http(8501, SYN), sh_other, &HTTP, SYN_RECV)
                    .expect([overloaded_conns(sh_busy.id, 1, 0)])
                    .into(),
            ],
        },
        Fixture {
            name: "-y: an overloaded real server takes connections again only below its lower threshold",
            setup: world(
                scheduler::LC,
                &[rs(&A, 1, 4, 0).thresholds(4, 2), rs(&B, 1, 9, 0)],
            ),
            steps: vec![
                syn_to(8601, &B, 10, 0),
                Step::Expect(vec![overloaded_conns(A.id, 4, 0)]),
                sweep("lbd's sweep: A has 3", &A, 3, 0),
                syn_to(8602, &B, 11, 0),
                sweep("lbd's sweep: A has 2 (= -y)", &A, 2, 0),
                syn_to(8603, &B, 12, 0),
                Step::Expect(vec![overloaded_conns(A.id, 2, 0)]),
                sweep("lbd's sweep: A has 1", &A, 1, 0),
                syn_to(8604, &A, 2, 0),
            ],
        },
        Fixture {
            name: "without -y the lower threshold is 3/4 of the upper (upper 8: back at 5)",
            setup: world(
                scheduler::LC,
                &[rs(&A, 1, 8, 0).thresholds(8, 0), rs(&B, 1, 20, 0)],
            ),
            steps: vec![
                syn_to(8701, &B, 21, 0),
                sweep("lbd's sweep: A has 6 (6*4 = 8*3)", &A, 6, 0),
                syn_to(8702, &B, 22, 0),
                sweep("lbd's sweep: A has 5", &A, 5, 0),
                syn_to(8703, &A, 6, 0),
            ],
        },
        Fixture {
            name: "without -y, upper 10: back at 7 connections (IPVS: total*4 < upper*3)",
            setup: world(
                scheduler::LC,
                &[rs(&A, 1, 10, 0).thresholds(10, 0), rs(&B, 1, 50, 0)],
            ),
            steps: vec![
                syn_to(8801, &B, 51, 0),
                sweep("lbd's sweep: A has 8 (32 >= 30)", &A, 8, 0),
                syn_to(8802, &B, 52, 0),
                sweep("lbd's sweep: A has 7 (28 < 30)", &A, 7, 0),
                syn_to(8803, &A, 8, 0),
            ],
        },
    ]
}

/// A persistent rr service with A in its table, B quiesced (weight 0, out of the table) and
/// a live template sending the client to B; the sysctls `settings`.
fn quiesced_template(key: PersistKey, settings: u32) -> Vec<Change> {
    let mut setup = service_world(&HTTP, scheduler::RR, Some(PERSIST_HOST), &[rs(&A, 1, 0, 0)]);
    setup.push(Change::Real {
        id: B.id,
        real: RealServer {
            weight: 0,
            ..real_server(&B, &HTTP)
        },
    });
    setup.push(Change::Persist {
        key,
        real: B.id,
        age: Duration::from_secs(1),
    });
    setup.push(Change::Settings(lb_common::Settings {
        flags: settings,
        ..lb_common::Settings::default()
    }));
    setup
}

fn persistence() -> Vec<Fixture> {
    let key = |client| persist_key(&HTTP, client, HOST_MASK);
    let rr_ab = |persistence| {
        service_world(
            &HTTP,
            scheduler::RR,
            Some(persistence),
            &[rs(&A, 1, 0, 0), rs(&B, 1, 0, 0)],
        )
    };
    vec![
        Fixture {
            name: "-p: a client's next connections go to its template's real server, not rr's next",
            setup: rr_ab(PERSIST_HOST),
            steps: vec![
                new_flow("client SYN :9001", &http(9001, SYN), &A, &HTTP, SYN_RECV)
                    .expect([Expect::Persist {
                        key: key(CLIENT),
                        real: A.id,
                    }])
                    .into(),
                persist_hit("client SYN :9002", &http(9002, SYN), &A, &HTTP)
                    .expect([
                        // The scheduler was not asked.
                        Expect::RrPosition {
                            service: HTTP.id,
                            position: 1,
                        },
                        real_conns(A.id, 2, 0),
                    ])
                    .into(),
                new_flow(
                    "client 2 SYN",
                    &tcp(CLIENT_2, VIP, 9001, 80, SYN),
                    &B,
                    &HTTP,
                    SYN_RECV,
                )
                .expect([Expect::Persist {
                    key: key(CLIENT_2),
                    real: B.id,
                }])
                .into(),
                persist_hit("client SYN :9003", &http(9003, SYN), &A, &HTTP).into(),
                persist_hit(
                    "client 2 SYN :9002",
                    &tcp(CLIENT_2, VIP, 9002, 80, SYN),
                    &B,
                    &HTTP,
                )
                .expect([real_conns(A.id, 3, 0), real_conns(B.id, 2, 0)])
                .into(),
            ],
        },
        Fixture {
            name: "-p: the template wins over the scheduler's choice (lc, its real server busier)",
            setup: {
                let mut setup = service_world(
                    &HTTP,
                    scheduler::LC,
                    Some(PERSIST_HOST),
                    &[rs(&A, 1, 0, 0), rs(&B, 1, 50, 0)],
                );
                setup.push(Change::Persist {
                    key: key(CLIENT),
                    real: B.id,
                    age: Duration::from_secs(10),
                });
                setup
            },
            steps: vec![
                persist_hit("SYN", &http(9101, SYN), &B, &HTTP)
                    .expect([
                        real_conns(B.id, 51, 0),
                        // Refreshed by the hit.
                        Expect::Persist {
                            key: key(CLIENT),
                            real: B.id,
                        },
                    ])
                    .into(),
                new_flow(
                    "another client: lc's choice",
                    &tcp(CLIENT_2, VIP, 9102, 80, SYN),
                    &A,
                    &HTTP,
                    SYN_RECV,
                )
                .into(),
            ],
        },
        Fixture {
            name: "-p -M 255.255.255.0: a client of the same /24 shares the template",
            setup: rr_ab(Persistence {
                timeout: PERSIST_TIMEOUT,
                netmask: NET24_MASK,
            }),
            steps: vec![
                new_flow("client SYN", &http(9201, SYN), &A, &HTTP, SYN_RECV)
                    .expect([Expect::Persist {
                        key: persist_key(&HTTP, CLIENT, NET24_MASK),
                        real: A.id,
                    }])
                    .into(),
                persist_hit(
                    "client 2 (same /24) SYN",
                    &tcp(CLIENT_2, VIP, 9202, 80, SYN),
                    &A,
                    &HTTP,
                )
                .into(),
                new_flow(
                    "client of another /24: rr's next",
                    &tcp(FAR_CLIENT, VIP, 9203, 80, SYN),
                    &B,
                    &HTTP,
                    SYN_RECV,
                )
                .expect([
                    Expect::Persist {
                        key: persist_key(&HTTP, FAR_CLIENT, NET24_MASK),
                        real: B.id,
                    },
                    Expect::NoPersist(key(CLIENT)),
                ])
                .into(),
            ],
        },
        Fixture {
            name: "-p: a template idle longer than the timeout is replaced by the scheduler's choice",
            setup: {
                let mut setup = rr_ab(PERSIST_HOST);
                setup.push(Change::Persist {
                    key: key(CLIENT),
                    real: B.id,
                    age: Duration::from_secs(u64::from(PERSIST_TIMEOUT) + 1),
                });
                setup
            },
            steps: vec![
                new_flow("SYN", &http(9301, SYN), &A, &HTTP, SYN_RECV)
                    .expect([Expect::Persist {
                        key: key(CLIENT),
                        real: A.id,
                    }])
                    .into(),
                persist_hit("next SYN", &http(9302, SYN), &A, &HTTP).into(),
            ],
        },
        Fixture {
            name: "-p: a template within its timeout is used and refreshed",
            setup: {
                let mut setup = rr_ab(PERSIST_HOST);
                setup.push(Change::Persist {
                    key: key(CLIENT),
                    real: B.id,
                    age: Duration::from_secs(u64::from(PERSIST_TIMEOUT) - 2),
                });
                setup
            },
            steps: vec![
                persist_hit("SYN", &http(9401, SYN), &B, &HTTP)
                    .expect([Expect::Persist {
                        key: key(CLIENT),
                        real: B.id,
                    }])
                    .into(),
            ],
        },
        Fixture {
            name: "-p: a SYN on the ports of a CLOSE'd connection continues it (IPVS never reschedules a connection its persistence template controls)",
            setup: rr_ab(PERSIST_HOST),
            steps: vec![
                new_flow("SYN", &http(9601, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(9601, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                known_flow("RST", &http(9601, RST | ACK), &A, &HTTP, CLOSE).into(),
                known_flow(
                    "SYN again, same ports",
                    &http(9601, SYN),
                    &A,
                    &HTTP,
                    SYN_RECV,
                )
                .into(),
            ],
        },
        Fixture {
            name: "-p: a template naming a real server of weight 0 is still used (expire_quiescent_template 0, IPVS's default)",
            setup: quiesced_template(key(CLIENT), 0),
            steps: vec![persist_hit("SYN", &http(9611, SYN), &B, &HTTP).into()],
        },
        Fixture {
            name: "-p, expire_quiescent_template: a template naming a real server of weight 0 is not used",
            setup: quiesced_template(key(CLIENT), lb_common::SETTINGS_F_EXPIRE_QUIESCENT_TEMPLATE),
            steps: vec![
                new_flow("SYN", &http(9621, SYN), &A, &HTTP, SYN_RECV)
                    .expect([Expect::Persist {
                        key: key(CLIENT),
                        real: A.id,
                    }])
                    .into(),
            ],
        },
        Fixture {
            name: "-p: a template naming a removed real server (-d) is not used",
            setup: {
                let mut setup =
                    service_world(&HTTP, scheduler::RR, Some(PERSIST_HOST), &[rs(&A, 1, 0, 0)]);
                setup.push(Change::Real {
                    id: B.id,
                    real: RealServer {
                        flags: REAL_F_IN_USE | REAL_F_RESOLVED | REAL_F_REMOVED,
                        ..real_server(&B, &HTTP)
                    },
                });
                setup.push(Change::Persist {
                    key: key(CLIENT),
                    real: B.id,
                    age: Duration::from_secs(1),
                });
                setup
            },
            steps: vec![
                new_flow("SYN", &http(9501, SYN), &A, &HTTP, SYN_RECV)
                    .expect([Expect::Persist {
                        key: key(CLIENT),
                        real: A.id,
                    }])
                    .into(),
            ],
        },
        Fixture {
            name: "-p: a template naming a real server deleted outright is not used",
            setup: {
                let mut setup =
                    service_world(&HTTP, scheduler::RR, Some(PERSIST_HOST), &[rs(&A, 1, 0, 0)]);
                setup.push(Change::Real {
                    id: B.id,
                    real: RealServer::default(),
                });
                setup.push(Change::Persist {
                    key: key(CLIENT),
                    real: B.id,
                    age: Duration::from_secs(1),
                });
                setup
            },
            steps: vec![
                new_flow("SYN", &http(9601, SYN), &A, &HTTP, SYN_RECV)
                    .expect([Expect::Persist {
                        key: key(CLIENT),
                        real: A.id,
                    }])
                    .into(),
            ],
        },
        Fixture {
            name: "-p: a template to a quiesced (weight 0) or overloaded real server is still used",
            setup: {
                let mut setup =
                    service_world(&HTTP, scheduler::RR, Some(PERSIST_HOST), &[rs(&A, 1, 0, 0)]);
                setup.extend(rs(&B, 0, 0, 0).changes(&HTTP));
                setup.extend(rs(&C, 1, 1, 0).thresholds(1, 0).changes(&HTTP));
                setup.push(Change::Persist {
                    key: key(CLIENT),
                    real: B.id,
                    age: Duration::from_secs(1),
                });
                setup.push(Change::Persist {
                    key: key(CLIENT_2),
                    real: C.id,
                    age: Duration::from_secs(1),
                });
                setup
            },
            steps: vec![
                persist_hit(
                    "client SYN (template: B, weight 0)",
                    &http(9701, SYN),
                    &B,
                    &HTTP,
                )
                .into(),
                persist_hit(
                    "client 2 SYN (template: C, at its upper threshold)",
                    &tcp(CLIENT_2, VIP, 9702, 80, SYN),
                    &C,
                    &HTTP,
                )
                .into(),
            ],
        },
        Fixture {
            name: "-p on a port-0 service: one real server for the client whatever the port",
            setup: {
                let mut setup = vec![
                    director_iface(),
                    add_real(&A, &ALL_PORTS),
                    add_real(&B, &ALL_PORTS),
                ];
                setup.push(Change::Slots {
                    offset: ALL_PORTS.table_offset,
                    ids: vec![A.id, B.id],
                });
                setup.push(service_entry(
                    &ALL_PORTS,
                    scheduler::RR,
                    2,
                    Some(PERSIST_HOST),
                ));
                setup
            },
            steps: {
                let to = |port: u16, dport: u16| tcp(CLIENT, ALL_PORTS_VIP, port, dport, SYN);
                vec![
                    new_flow("SYN to :80", &to(9801, 80), &A, &ALL_PORTS, SYN_RECV).into(),
                    persist_hit("SYN to :443", &to(9802, 443), &A, &ALL_PORTS).into(),
                    persist_hit("SYN to :22", &to(9803, 22), &A, &ALL_PORTS)
                        .expect([Expect::Persist {
                            key: persist_key(&ALL_PORTS, CLIENT, HOST_MASK),
                            real: A.id,
                        }])
                        .into(),
                ]
            },
        },
        Fixture {
            name: "without -p no template is kept and rr alternates",
            setup: world(scheduler::RR, &[rs(&A, 1, 0, 0), rs(&B, 1, 0, 0)]),
            steps: {
                let mut steps = syns_to(9901, &[(&A, 1, 0), (&B, 1, 0), (&A, 2, 0)]);
                steps.push(Step::Expect(vec![Expect::NoPersist(key(CLIENT))]));
                steps
            },
        },
    ]
}
