//! Scheduling new connections: the data path walks the table user space wrote (round robin
//! position per service); an empty table or an empty slot means no real server can take the
//! connection, and the packet is dropped as IPVS drops it.

use lb_common::{RealServer, Stat, tcp_state::SYN_RECV};

use crate::{
    fixture::{Expect, Fixture, Send, Step, counters},
    harness::Change,
    packet::SYN,
    world::{
        A, B, C, CLIENT, HTTP, HTTPS, RealDef, VIP, add_real, http, http_world, new_flow, service,
        service_with_table, tcp,
    },
};

/// New SYNs from successive client ports, each expected at the next real server of `order`.
fn syns_to(first_port: u16, order: &[&RealDef]) -> Vec<Step> {
    order
        .iter()
        .enumerate()
        .map(|(i, real)| {
            let port = first_port + i as u16;
            new_flow(
                &format!("SYN from :{port}"),
                &http(port, SYN),
                real,
                &HTTP,
                SYN_RECV,
            )
            .into()
        })
        .collect()
}

pub fn fixtures() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "round robin over a 2-slot table [A, B] alternates",
            setup: http_world(&[&A, &B]),
            steps: {
                let mut steps = syns_to(1001, &[&A, &B, &A, &B, &A]);
                steps.push(Step::Expect(vec![
                    Expect::RrPosition {
                        service: HTTP.id,
                        position: 5,
                    },
                    Expect::RealStats {
                        id: A.id,
                        counters: counters(3, 3, 3 * 40),
                    },
                    Expect::RealStats {
                        id: B.id,
                        counters: counters(2, 2, 2 * 40),
                    },
                    Expect::ConnCount(5),
                ]));
                steps
            },
        },
        Fixture {
            name: "a 4-slot table [A, A, A, B] gives A three connections for each of B's",
            setup: http_world(&[&A, &A, &A, &B]),
            steps: {
                let mut steps = syns_to(2001, &[&A, &A, &A, &B, &A, &A, &A, &B]);
                steps.push(Step::Expect(vec![
                    Expect::RealStats {
                        id: A.id,
                        counters: counters(6, 6, 6 * 40),
                    },
                    Expect::RealStats {
                        id: B.id,
                        counters: counters(2, 2, 2 * 40),
                    },
                    Expect::ServiceStats {
                        id: HTTP.id,
                        counters: counters(8, 8, 8 * 40),
                    },
                ]));
                steps
            },
        },
        Fixture {
            name: "two services keep their own tables and round-robin positions",
            setup: {
                let mut setup = http_world(&[&A, &B]);
                setup.extend(service_with_table(&HTTPS, &[&C, &B]));
                setup
            },
            steps: {
                let https = |port: u16| tcp(CLIENT, VIP, port, 443, SYN);
                vec![
                    new_flow("HTTP #1", &http(3001, SYN), &A, &HTTP, SYN_RECV).into(),
                    new_flow("HTTPS #1", &https(3001), &C, &HTTPS, SYN_RECV).into(),
                    new_flow("HTTPS #2", &https(3002), &B, &HTTPS, SYN_RECV).into(),
                    new_flow("HTTP #2", &http(3002, SYN), &B, &HTTP, SYN_RECV).into(),
                    new_flow("HTTPS #3", &https(3003), &C, &HTTPS, SYN_RECV).into(),
                    new_flow("HTTP #3", &http(3003, SYN), &A, &HTTP, SYN_RECV).into(),
                    Step::Expect(vec![
                        Expect::RrPosition {
                            service: HTTP.id,
                            position: 3,
                        },
                        Expect::RrPosition {
                            service: HTTPS.id,
                            position: 3,
                        },
                        Expect::ServiceStats {
                            id: HTTPS.id,
                            counters: counters(3, 3, 120),
                        },
                        Expect::RealStats {
                            id: B.id,
                            counters: counters(2, 2, 80),
                        },
                    ]),
                ]
            },
        },
        Fixture {
            name: "empty table (table_len 0): new connection dropped (drop_no_real), not remembered",
            setup: http_world(&[]),
            steps: vec![
                Send::drop("SYN", http(4001, SYN).bytes(), Stat::DropNoReal)
                    .expect([
                        Expect::ConnCount(0),
                        Expect::ServiceStats {
                            id: HTTP.id,
                            counters: counters(0, 0, 0),
                        },
                    ])
                    .into(),
            ],
        },
        Fixture {
            name: "a slot holding id 0 (no real server): dropped (drop_no_real)",
            setup: {
                let mut setup = http_world(&[&A]);
                setup.push(Change::Slots {
                    offset: HTTP.table_offset,
                    ids: vec![0],
                });
                setup
            },
            steps: vec![
                Send::drop("SYN", http(4002, SYN).bytes(), Stat::DropNoReal)
                    .expect([Expect::ConnCount(0)])
                    .into(),
            ],
        },
        Fixture {
            name: "a slot naming an unconfigured real server: dropped (drop_no_real)",
            setup: {
                let mut setup = http_world(&[&C]);
                setup.push(Change::Real {
                    id: C.id,
                    real: RealServer::default(),
                });
                setup
            },
            steps: vec![
                Send::drop("SYN", http(4003, SYN).bytes(), Stat::DropNoReal)
                    .expect([Expect::ConnCount(0)])
                    .into(),
            ],
        },
        Fixture {
            name: "a table grown from [A] to [A, B, C] is walked from the current position",
            setup: http_world(&[&A]),
            steps: {
                let mut steps = syns_to(5001, &[&A, &A]);
                steps.push(Step::Apply {
                    what: "table becomes [A, B, C]",
                    changes: vec![
                        add_real(&C, &HTTP),
                        Change::Slots {
                            offset: HTTP.table_offset,
                            ids: vec![A.id, B.id, C.id],
                        },
                        service(&HTTP, 3),
                    ],
                });
                // Position 2 → slot 2 (C), then A, B.
                steps.extend(syns_to(5003, &[&C, &A, &B]));
                steps
            },
        },
    ]
}
