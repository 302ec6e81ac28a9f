//! IPVS parity of lblc and lblcr (`ip_vs_lblc.c`, `ip_vs_lblcr.c`): the locality table, keyed
//! by service and destination address, on top of wlc.
//!
//! The expected picks are worked out by hand from the kernel's code, with the live counts each
//! fixture writes (as in `sched_counts`):
//!
//! - wlc: least `(active × 256 + inactive) / weight`, ties to the first in the table.
//! - IPVS's "overloaded" for these schedulers: `active > weight` while some real server of the
//!   service has `active × 2 < weight`.
//! - lblc: the remembered real server if it is available (lb: in the service, not removed,
//!   weight > 0, under its `-x` threshold) and not overloaded; else wlc's choice, remembered.
//! - lblcr: the least loaded available member, newest first on ties (IPVS adds members at the
//!   head of its list); if there is none or it is overloaded, wlc's choice joins the set. A set
//!   of more than one member unchanged for 24 hours (`lblcr_expiration`) first drops its most
//!   loaded member with a weight, newest first on ties; the member chosen before that stands.
//! - an entry unused for 24 hours (`lblc_expiration`, `lblcr_expiration`) is gone.
//!
//! In lb the destination address of a packet to a service is that service's VIP, so the
//! destinations here are told apart by service and by an entry seeded for another address.

use std::{net::Ipv4Addr, time::Duration};

use lb_common::{
    LOCALITY_EXPIRATION_NS, LocalityKey, REAL_F_IN_USE, REAL_F_REMOVED, REAL_F_RESOLVED,
    RealServer, scheduler, tcp_state::SYN_RECV,
};

use super::sched_counts::{Rs, rs, service_world, sweep, syn_dropped, syn_to, syns_to, world};
use crate::{
    fixture::{Expect, Fixture, Step, overloaded_conns, real_conns},
    harness::Change,
    packet::SYN,
    world::{
        A, B, C, CLIENT, D, HTTP, HTTPS, OTHER_VIP, RealDef, ServiceDef, VIP, addr, new_flow,
        real_server, tcp,
    },
};

/// IPVS's `lblc_expiration` / `lblcr_expiration` default.
const DAY: Duration = Duration::from_nanos(LOCALITY_EXPIRATION_NS);
const MINUTE: Duration = Duration::from_secs(60);
const RECENTLY: Duration = Duration::from_secs(10);

/// Nine more real servers for a full lblcr set (ids 11 to 19).
const R: [RealDef; 9] = {
    let mut reals = [const {
        RealDef {
            id: 0,
            addr: Ipv4Addr::UNSPECIFIED,
            mac: [0; 6],
        }
    }; 9];
    let mut i = 0;
    while i < 9 {
        reals[i] = RealDef {
            id: 11 + i as u32,
            addr: Ipv4Addr::new(10, 1, 0, 31 + i as u8),
            mac: [0x02, 0x00, 0x5e, 0x10, 0x01, i as u8],
        };
        i += 1;
    }
    reals
};

fn key_for(svc: &ServiceDef, daddr: Ipv4Addr) -> LocalityKey {
    LocalityKey {
        service: svc.id,
        daddr: addr(daddr),
    }
}

/// The entry of connections to `svc`'s VIP.
fn key(svc: &ServiceDef) -> LocalityKey {
    key_for(svc, svc.vip)
}

/// A locality entry for `svc`'s VIP naming `reals`, last used `used` and changed `modified` ago.
fn entry(svc: &ServiceDef, reals: &[&RealDef], used: Duration, modified: Duration) -> Change {
    Change::Locality {
        key: key(svc),
        reals: reals.iter().map(|r| r.id).collect(),
        used,
        modified,
    }
}

/// The entry for `svc`'s VIP names `reals` (oldest first), changed just now or not.
fn expect_set(svc: &ServiceDef, reals: &[&RealDef], modified_now: bool) -> Expect {
    Expect::Locality {
        key: key(svc),
        reals: reals.iter().map(|r| r.id).collect(),
        modified_now,
    }
}

fn check(expect: impl IntoIterator<Item = Expect>) -> Step {
    Step::Expect(expect.into_iter().collect())
}

/// `world` with an entry for HTTP's VIP naming `reals`, used just now, changed `modified` ago.
fn world_with_entry(
    scheduler: u32,
    reals: &[Rs],
    remembered: &[&RealDef],
    modified: Duration,
) -> Vec<Change> {
    let mut setup = world(scheduler, reals);
    setup.push(entry(&HTTP, remembered, Duration::ZERO, modified));
    setup
}

/// Real server `def` of HTTP, removed with `-d` (its id still HTTP's while connections last).
fn removed(def: &RealDef) -> Change {
    Change::Real {
        id: def.id,
        real: RealServer {
            flags: REAL_F_IN_USE | REAL_F_RESOLVED | REAL_F_REMOVED,
            ..real_server(def, &HTTP)
        },
    }
}

pub fn fixtures() -> Vec<Fixture> {
    let mut fixtures = lblc();
    fixtures.extend(lblc_validation());
    fixtures.extend(lblcr());
    fixtures.extend(lblcr_shrink_and_bounds());
    fixtures
}

fn lblc() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "lblc: a destination stays on its real server until it is overloaded, then moves",
            // wlc would alternate. A (w2) keeps the VIP while its active connections do not
            // exceed 2; at 3 it is overloaded (B 0 × 2 < 2) and wlc picks B, which keeps it
            // from then on: at 3 and more active, no real server is under half its weight.
            setup: world(scheduler::LBLC, &[rs(&A, 2, 0, 0), rs(&B, 2, 0, 0)]),
            steps: {
                let mut steps = syns_to(20001, &[(&A, 1, 0)]);
                steps.push(check([expect_set(&HTTP, &[&A], true)]));
                steps.extend(syns_to(20002, &[(&A, 2, 0), (&A, 3, 0), (&B, 1, 0)]));
                steps.push(check([expect_set(&HTTP, &[&B], true)]));
                steps.extend(syns_to(
                    20005,
                    &[(&B, 2, 0), (&B, 3, 0), (&B, 4, 0), (&B, 5, 0)],
                ));
                steps
            },
        },
        Fixture {
            name: "lblc: over its weight, a real server keeps its destination until another is under half its own",
            // A (w1) has 5 active, B (w2) 1: wlc would pick B (1280 > 256/2), but B is not
            // under half its weight (1 × 2 = 2), so A is not overloaded in IPVS's sense.
            setup: world_with_entry(
                scheduler::LBLC,
                &[rs(&A, 1, 5, 0), rs(&B, 2, 1, 0)],
                &[&A],
                RECENTLY,
            ),
            steps: vec![
                syn_to(20101, &A, 6, 0),
                check([expect_set(&HTTP, &[&A], false)]),
                sweep("lbd's sweep: B's connection closed", &B, 0, 0),
                syn_to(20102, &B, 1, 0),
                check([expect_set(&HTTP, &[&B], true)]),
            ],
        },
        Fixture {
            name: "lblc: each service and each destination address has its own entry",
            setup: {
                let mut setup = world(scheduler::LBLC, &[rs(&A, 2, 0, 0), rs(&B, 2, 0, 0)]);
                setup.extend(service_world(
                    &HTTPS,
                    scheduler::LBLC,
                    None,
                    &[rs(&C, 1, 0, 0), rs(&D, 1, 0, 0)],
                ));
                // HTTP's entry for another address: not the VIP's.
                setup.push(Change::Locality {
                    key: key_for(&HTTP, OTHER_VIP),
                    reals: vec![B.id],
                    used: Duration::ZERO,
                    modified: RECENTLY,
                });
                setup
            },
            steps: vec![
                syn_to(20201, &A, 1, 0),
                new_flow(
                    "HTTPS SYN: its own entry (wlc: C)",
                    &tcp(CLIENT, VIP, 20202, HTTPS.port, SYN),
                    &C,
                    &HTTPS,
                    SYN_RECV,
                )
                .into(),
                syn_to(20203, &A, 2, 0),
                check([
                    expect_set(&HTTP, &[&A], true),
                    expect_set(&HTTPS, &[&C], true),
                    Expect::Locality {
                        key: key_for(&HTTP, OTHER_VIP),
                        reals: vec![B.id],
                        modified_now: false,
                    },
                ]),
            ],
        },
        Fixture {
            name: "lblc: no real server can take the connection: dropped, nothing remembered",
            setup: world(scheduler::LBLC, &[rs(&A, 1, 1, 0).thresholds(1, 0)]),
            steps: vec![syn_dropped(20251), check([Expect::NoLocality(key(&HTTP))])],
        },
        Fixture {
            name: "lblc: an entry unused for lblc_expiration (24 h) is forgotten",
            setup: {
                let mut setup = world(scheduler::LBLC, &[rs(&A, 1, 0, 0), rs(&B, 1, 0, 0)]);
                setup.push(entry(&HTTP, &[&B], DAY + Duration::from_secs(1), DAY));
                setup
            },
            steps: vec![
                syn_to(20301, &A, 1, 0),
                check([expect_set(&HTTP, &[&A], true)]),
            ],
        },
        Fixture {
            name: "lblc: an entry used within lblc_expiration is kept, and refreshed",
            setup: {
                let mut setup = world(scheduler::LBLC, &[rs(&A, 1, 0, 0), rs(&B, 1, 0, 0)]);
                setup.push(entry(&HTTP, &[&B], DAY - MINUTE, DAY - MINUTE));
                setup
            },
            steps: vec![
                syn_to(20401, &B, 1, 0),
                check([expect_set(&HTTP, &[&B], false)]),
            ],
        },
    ]
}

/// A remembered real server is used only while it is an available real server of the service.
fn lblc_validation() -> Vec<Fixture> {
    let moved_to_a = |port| {
        vec![
            syn_to(port, &A, 1, 0),
            check([expect_set(&HTTP, &[&A], true)]),
        ]
    };
    vec![
        Fixture {
            name: "lblc: a remembered real server that was removed (-d) is not used",
            setup: {
                let mut setup =
                    world_with_entry(scheduler::LBLC, &[rs(&A, 1, 0, 0)], &[&B], RECENTLY);
                setup.push(removed(&B));
                setup
            },
            steps: moved_to_a(21001),
        },
        Fixture {
            name: "lblc: a remembered real server with weight 0 (quiesced) is not used",
            setup: world_with_entry(
                scheduler::LBLC,
                &[rs(&A, 1, 0, 0), rs(&B, 0, 0, 0)],
                &[&B],
                RECENTLY,
            ),
            steps: moved_to_a(21101),
        },
        Fixture {
            name: "lblc: a remembered real server at its upper threshold (-x) is not used",
            setup: world_with_entry(
                scheduler::LBLC,
                &[rs(&A, 1, 0, 0), rs(&B, 1, 1, 0).thresholds(1, 0)],
                &[&B],
                RECENTLY,
            ),
            steps: {
                let mut steps = moved_to_a(21201);
                steps.push(check([overloaded_conns(B.id, 1, 0)]));
                steps
            },
        },
        Fixture {
            name: "lblc: a remembered id that now names another service's real server is not used",
            setup: {
                let mut setup =
                    world_with_entry(scheduler::LBLC, &[rs(&A, 1, 0, 0)], &[&C], RECENTLY);
                setup.extend(rs(&C, 1, 0, 0).changes(&HTTPS));
                setup
            },
            steps: {
                let mut steps = moved_to_a(21301);
                steps.push(check([real_conns(C.id, 0, 0)]));
                steps
            },
        },
    ]
}

fn lblcr() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "lblcr: the set grows when its least loaded member is overloaded; the least loaded member takes each connection",
            // A (w2) alone until it has 3 active (B 0 × 2 < 2): B joins. Then the least
            // loaded member: B 256 < A 768 → B; 512 → B; 768 ties 768 → B, the newest (not
            // overloaded: nobody under half); B 1024 > A 768 → A.
            setup: world(scheduler::LBLCR, &[rs(&A, 2, 0, 0), rs(&B, 2, 0, 0)]),
            steps: {
                let mut steps = syns_to(22001, &[(&A, 1, 0), (&A, 2, 0), (&A, 3, 0)]);
                steps.push(check([expect_set(&HTTP, &[&A], true)]));
                steps.push(syn_to(22004, &B, 1, 0));
                steps.push(check([expect_set(&HTTP, &[&A, &B], true)]));
                steps.extend(syns_to(
                    22005,
                    &[(&B, 2, 0), (&B, 3, 0), (&B, 4, 0), (&A, 4, 0)],
                ));
                steps.push(check([expect_set(&HTTP, &[&A, &B], true)]));
                steps
            },
        },
        Fixture {
            name: "lblcr: equally loaded members: the newest takes the connection",
            // Set A, B, C (C newest); A 768/4, B and C 256/4 → C; then B 256 < C 512 → B;
            // then B and C tie at 512 → C.
            setup: world_with_entry(
                scheduler::LBLCR,
                &[rs(&A, 4, 3, 0), rs(&B, 4, 1, 0), rs(&C, 4, 1, 0)],
                &[&A, &B, &C],
                RECENTLY,
            ),
            steps: {
                let mut steps = syns_to(22101, &[(&C, 2, 0), (&B, 2, 0), (&C, 3, 0)]);
                steps.push(check([expect_set(&HTTP, &[&A, &B, &C], false)]));
                steps
            },
        },
        Fixture {
            name: "lblcr: over its weight, the least loaded member keeps the connection while no real server is under half its weight",
            // Set A; A (w1) 3 active, B (w2) 1: not overloaded in IPVS's sense, the set stays.
            setup: world_with_entry(
                scheduler::LBLCR,
                &[rs(&A, 1, 3, 0), rs(&B, 2, 1, 0)],
                &[&A],
                RECENTLY,
            ),
            steps: vec![
                syn_to(22201, &A, 4, 0),
                check([expect_set(&HTTP, &[&A], false)]),
            ],
        },
        Fixture {
            name: "lblcr: removed, quiesced and -x members are passed over; with none left, wlc's choice joins the set",
            // Set B (removed), C (weight 0), D (at -x 1): none can take it; wlc over the table
            // A, C, D skips C and D: A joins. B stays a member (IPVS keeps removed ones).
            setup: {
                let mut setup = world_with_entry(
                    scheduler::LBLCR,
                    &[
                        rs(&A, 1, 0, 0),
                        rs(&C, 0, 0, 0),
                        rs(&D, 1, 1, 0).thresholds(1, 0),
                    ],
                    &[&B, &C, &D],
                    RECENTLY,
                );
                setup.push(removed(&B));
                setup
            },
            steps: vec![
                syn_to(22301, &A, 1, 0),
                check([
                    expect_set(&HTTP, &[&B, &C, &D, &A], true),
                    overloaded_conns(D.id, 1, 0),
                ]),
            ],
        },
        Fixture {
            name: "lblcr: a member whose id now names another service's real server is dropped from the set",
            // C is HTTPS's now (the id was reused): dropped, never used; B takes it.
            setup: {
                let mut setup = world_with_entry(
                    scheduler::LBLCR,
                    &[rs(&A, 1, 0, 0), rs(&B, 1, 0, 0)],
                    &[&B, &C],
                    RECENTLY,
                );
                setup.extend(rs(&C, 1, 0, 0).changes(&HTTPS));
                setup
            },
            steps: vec![
                syn_to(22401, &B, 1, 0),
                check([expect_set(&HTTP, &[&B], false), real_conns(C.id, 0, 0)]),
            ],
        },
        Fixture {
            name: "lblcr: an entry unused for lblcr_expiration (24 h) is forgotten: a new set of wlc's choice",
            setup: {
                let mut setup = world(scheduler::LBLCR, &[rs(&A, 1, 0, 0), rs(&B, 1, 0, 0)]);
                setup.push(entry(&HTTP, &[&B], DAY + Duration::from_secs(1), DAY));
                setup
            },
            steps: vec![
                syn_to(22501, &A, 1, 0),
                check([expect_set(&HTTP, &[&A], true)]),
            ],
        },
    ]
}

fn lblcr_shrink_and_bounds() -> Vec<Fixture> {
    let full_set: Vec<Rs> = R
        .iter()
        .enumerate()
        .map(|(i, r)| match i {
            2 => rs(r, 1, 5, 0),
            8 => rs(r, 1, 0, 0),
            _ => rs(r, 1, 2, 0),
        })
        .collect();
    vec![
        Fixture {
            name: "lblcr: a set unchanged for lblcr_expiration (24 h) drops its most loaded member",
            // Set A, B; A (w2) 512/2, B 0: B is the least loaded and takes it; A, the most
            // loaded, is dropped.
            setup: world_with_entry(
                scheduler::LBLCR,
                &[rs(&A, 2, 2, 0), rs(&B, 2, 0, 0)],
                &[&A, &B],
                DAY + Duration::from_secs(1),
            ),
            steps: vec![
                syn_to(23001, &B, 1, 0),
                check([expect_set(&HTTP, &[&B], true)]),
            ],
        },
        Fixture {
            name: "lblcr: the member dropped can be the one chosen (IPVS chooses before it shrinks)",
            // Set A, B, both idle: the least loaded is B (newest of equals), and so is the most
            // loaded. B takes the connection and leaves the set; A takes the next.
            setup: world_with_entry(
                scheduler::LBLCR,
                &[rs(&A, 1, 0, 0), rs(&B, 1, 0, 0)],
                &[&A, &B],
                DAY + Duration::from_secs(1),
            ),
            steps: vec![
                syn_to(23101, &B, 1, 0),
                check([expect_set(&HTTP, &[&A], true)]),
                syn_to(23102, &A, 1, 0),
                check([expect_set(&HTTP, &[&A], true)]),
            ],
        },
        Fixture {
            name: "lblcr: a set changed within lblcr_expiration keeps all its members",
            setup: world_with_entry(
                scheduler::LBLCR,
                &[rs(&A, 2, 2, 0), rs(&B, 2, 0, 0)],
                &[&A, &B],
                DAY - MINUTE,
            ),
            steps: vec![
                syn_to(23201, &B, 1, 0),
                check([expect_set(&HTTP, &[&A, &B], false)]),
            ],
        },
        Fixture {
            name: "lblcr: a full set (8 members) makes room for a new member by dropping its most loaded",
            // R1..R8 (w1) have 2 active each, R3 5; R9 none. The least loaded member, R8 (the
            // newest of equals), is overloaded (2 > 1 while R9 0 × 2 < 1): wlc picks R9, which
            // takes R3's place.
            setup: {
                let mut setup = world(scheduler::LBLCR, &full_set);
                let members: Vec<&RealDef> = R[..8].iter().collect();
                setup.push(entry(&HTTP, &members, Duration::ZERO, RECENTLY));
                setup
            },
            steps: vec![
                syn_to(23301, &R[8], 1, 0),
                check([expect_set(
                    &HTTP,
                    &[&R[0], &R[1], &R[3], &R[4], &R[5], &R[6], &R[7], &R[8]],
                    true,
                )]),
            ],
        },
    ]
}
