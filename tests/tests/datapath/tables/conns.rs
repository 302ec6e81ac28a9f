//! The connection table: a flow stays with the real server its first packet went to, whatever
//! happens to the scheduling table, weights or the real-server list (as in IPVS), and its TCP
//! state follows IPVS's input-only table. A SYN on a finished connection starts a new one.

use std::time::Duration;

use lb_common::{
    REAL_F_REMOVED, RealConns, RealServer, SETTINGS_F_CONN_REUSE_FIN_WAIT,
    SETTINGS_F_CONN_REUSE_OFF, SETTINGS_F_EXPIRE_NODEST_CONN, Settings, Stat,
    tcp_state::{CLOSE, ESTABLISHED, FIN_WAIT, SYN_RECV, TIME_WAIT, UDP},
};

use crate::{
    fixture::{Expect, Fixture, Send, Step, counters},
    harness::Change,
    packet::{ACK, FIN, PSH, RST, SYN, Tcp},
    world::{
        A, B, C, CLIENT_2, D, DNS, HTTP, VIP, add_real, conn_entry, dns, dns_world, edit_real,
        flow_of, http, http_world, idle_conn_entry, known_flow, new_flow, service_key,
        service_with_table, sloppy_tcp, tcp,
    },
};

fn apply(what: &'static str, changes: Vec<Change>) -> Step {
    Step::Apply { what, changes }
}

/// `setup` with `net.ipv4.vs.sloppy_tcp = 1`.
fn with_sloppy_tcp(mut setup: Vec<Change>) -> Vec<Change> {
    setup.push(sloppy_tcp());
    setup
}

/// `setup` with the sysctls `flags` (`SETTINGS_F_*`).
fn with_settings(mut setup: Vec<Change>, flags: u32) -> Vec<Change> {
    setup.push(Change::Settings(Settings {
        flags,
        ..Settings::default()
    }));
    setup
}

/// `real` deleted with `-d` (marked removed, out of the table), as lbd writes it.
fn removed(real: &crate::world::RealDef) -> Vec<Change> {
    let mut changes = vec![edit_real(real, &HTTP, |r| r.flags |= REAL_F_REMOVED)];
    changes.extend(service_with_table(
        &HTTP,
        &[if real.id == A.id { &B } else { &A }],
    ));
    changes
}

/// A data segment of the flow from `sport`.
fn data(sport: u16, len: usize) -> crate::packet::Frame {
    let mut frame = http(sport, PSH | ACK);
    frame.ipv4_mut().payload = Tcp::new(sport, 80, PSH | ACK)
        .payload(&vec![0x61; len])
        .into();
    frame
}

pub fn fixtures() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "an established flow sticks to its real server after the table changes",
            setup: http_world(&[&A]),
            steps: vec![
                new_flow("SYN", &http(1001, SYN), &A, &HTTP, SYN_RECV).into(),
                apply("table becomes [B]", service_with_table(&HTTP, &[&B])),
                known_flow("ACK", &http(1001, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                known_flow("data", &data(1001, 100), &A, &HTTP, ESTABLISHED).into(),
                new_flow("another client port", &http(1002, SYN), &B, &HTTP, SYN_RECV).into(),
            ],
        },
        Fixture {
            name: "a flow whose real server was deleted (-d: REAL_F_REMOVED, out of the table): its packets are dropped (drop_no_dest) and its entry kept, as IPVS drops packets to a destination no longer available",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("SYN", &http(2001, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(2001, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                apply("A removed", removed(&A)),
                Send::drop("data", data(2001, 10).bytes(), Stat::DropNoDest)
                    .expect([Expect::Conn {
                        flow: flow_of(&http(2001, ACK)),
                        real: A.id,
                        service: HTTP.id,
                        state: ESTABLISHED,
                    }])
                    .into(),
                // Unlike IPVS without expire_nodest_conn: a client reusing its port is not
                // stalled until the old connection expires.
                new_flow("a SYN on its ports", &http(2001, SYN), &B, &HTTP, SYN_RECV).into(),
                new_flow("new flow", &http(2002, SYN), &B, &HTTP, SYN_RECV).into(),
                new_flow("another new flow", &http(2003, SYN), &B, &HTTP, SYN_RECV).into(),
            ],
        },
        Fixture {
            name: "expire_nodest_conn: a packet of a flow whose real server was deleted expires the entry; a data segment is then the kernel's, a SYN is scheduled afresh",
            setup: with_settings(http_world(&[&A, &B]), SETTINGS_F_EXPIRE_NODEST_CONN),
            steps: vec![
                new_flow("SYN", &http(2011, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(2011, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                apply("A removed", removed(&A)),
                Send::pass("data", data(2011, 10).bytes(), Stat::PassNotSyn)
                    .expect([Expect::ConnCount(0)])
                    .into(),
                new_flow(
                    "SYN again, same ports",
                    &http(2011, SYN),
                    &B,
                    &HTTP,
                    SYN_RECV,
                )
                .into(),
            ],
        },
        Fixture {
            name: "expire_nodest_conn: a SYN on the ports of an ESTABLISHED flow to a real server of weight 0 is scheduled afresh (without it, it stays)",
            setup: with_settings(http_world(&[&A, &B]), SETTINGS_F_EXPIRE_NODEST_CONN),
            steps: vec![
                new_flow("SYN", &http(2021, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(2021, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                apply("A weight 0", {
                    let mut changes = vec![edit_real(&A, &HTTP, |r| r.weight = 0)];
                    changes.extend(service_with_table(&HTTP, &[&B]));
                    changes
                }),
                known_flow("data", &data(2021, 10), &A, &HTTP, ESTABLISHED).into(),
                new_flow(
                    "SYN again, same ports",
                    &http(2021, SYN),
                    &B,
                    &HTTP,
                    SYN_RECV,
                )
                .into(),
            ],
        },
        Fixture {
            name: "weight set to 0: out of the table, its flows continue, new flows go elsewhere",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("flow 1 SYN", &http(3001, SYN), &A, &HTTP, SYN_RECV).into(),
                new_flow("flow 2 SYN", &http(3002, SYN), &B, &HTTP, SYN_RECV).into(),
                apply("A weight 0", {
                    let mut changes = vec![edit_real(&A, &HTTP, |r| r.weight = 0)];
                    changes.extend(service_with_table(&HTTP, &[&B]));
                    changes
                }),
                known_flow("flow 1 ACK", &http(3001, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                new_flow("flow 3 SYN", &http(3003, SYN), &B, &HTTP, SYN_RECV).into(),
                new_flow("flow 4 SYN", &http(3004, SYN), &B, &HTTP, SYN_RECV).into(),
                known_flow("flow 2 ACK", &http(3002, ACK), &B, &HTTP, ESTABLISHED)
                    .promotes()
                    .expect([
                        Expect::RealStats {
                            id: A.id,
                            counters: counters(1, 2, 80),
                        },
                        Expect::RealStats {
                            id: B.id,
                            counters: counters(3, 4, 160),
                        },
                    ])
                    .into(),
            ],
        },
        Fixture {
            name: "TCP states: SYN → SYN_RECV, ACK → ESTABLISHED, FIN → FIN_WAIT, RST → CLOSE",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("SYN", &http(4001, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(4001, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                known_flow("data", &data(4001, 500), &A, &HTTP, ESTABLISHED).into(),
                known_flow("FIN", &http(4001, FIN | ACK), &A, &HTTP, FIN_WAIT).into(),
                known_flow("last ACK", &http(4001, ACK), &A, &HTTP, FIN_WAIT).into(),
                known_flow("RST", &http(4001, RST), &A, &HTTP, CLOSE)
                    .expect([
                        Expect::ConnCount(1),
                        Expect::ServiceStats {
                            id: HTTP.id,
                            counters: counters(1, 6, 5 * 40 + 540),
                        },
                    ])
                    .into(),
            ],
        },
        Fixture {
            name: "a SYN on a CLOSE'd entry is a new connection, scheduled afresh",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("SYN", &http(5001, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(5001, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                known_flow("RST", &http(5001, RST | ACK), &A, &HTTP, CLOSE).into(),
                new_flow(
                    "SYN again, same ports",
                    &http(5001, SYN),
                    &B,
                    &HTTP,
                    SYN_RECV,
                )
                .expect([
                    Expect::ConnCount(1),
                    Expect::ServiceStats {
                        id: HTTP.id,
                        counters: counters(2, 4, 160),
                    },
                    Expect::RealStats {
                        id: B.id,
                        counters: counters(1, 1, 40),
                    },
                ])
                .into(),
            ],
        },
        Fixture {
            name: "a SYN on a TIME_WAIT entry is a new connection, scheduled afresh",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("SYN", &http(6001, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("FIN", &http(6001, FIN | ACK), &A, &HTTP, TIME_WAIT).into(),
                new_flow(
                    "SYN again, same ports",
                    &http(6001, SYN),
                    &B,
                    &HTTP,
                    SYN_RECV,
                )
                .into(),
            ],
        },
        Fixture {
            name: "conn_reuse_mode 1 (IPVS's default): a SYN on a FIN_WAIT entry of a DR flow stays with its real server",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("SYN", &http(6101, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(6101, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                known_flow("FIN", &http(6101, FIN | ACK), &A, &HTTP, FIN_WAIT).into(),
                known_flow(
                    "SYN again, same ports",
                    &http(6101, SYN),
                    &A,
                    &HTTP,
                    SYN_RECV,
                )
                .into(),
            ],
        },
        Fixture {
            name: "conn_reuse_mode 2: a SYN on a FIN_WAIT entry of a DR flow is a new connection, scheduled afresh",
            setup: with_settings(http_world(&[&A, &B]), SETTINGS_F_CONN_REUSE_FIN_WAIT),
            steps: vec![
                new_flow("SYN", &http(6111, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(6111, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                known_flow("FIN", &http(6111, FIN | ACK), &A, &HTTP, FIN_WAIT).into(),
                new_flow(
                    "SYN again, same ports",
                    &http(6111, SYN),
                    &B,
                    &HTTP,
                    SYN_RECV,
                )
                .into(),
            ],
        },
        Fixture {
            name: "conn_reuse_mode 0: a SYN on a CLOSE entry continues it",
            setup: with_settings(http_world(&[&A, &B]), SETTINGS_F_CONN_REUSE_OFF),
            steps: vec![
                new_flow("SYN", &http(6121, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(6121, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                known_flow("RST", &http(6121, RST | ACK), &A, &HTTP, CLOSE).into(),
                known_flow(
                    "SYN again, same ports",
                    &http(6121, SYN),
                    &A,
                    &HTTP,
                    SYN_RECV,
                )
                .into(),
            ],
        },
        Fixture {
            name: "a SYN on an ESTABLISHED entry stays with its real server",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("SYN", &http(7001, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(7001, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                known_flow("SYN again", &http(7001, SYN), &A, &HTTP, ESTABLISHED).into(),
                Step::Expect(vec![Expect::RrPosition {
                    service: HTTP.id,
                    position: 1,
                }]),
            ],
        },
        Fixture {
            name: "a retransmitted SYN stays with its real server",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("SYN", &http(7101, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("SYN retransmitted", &http(7101, SYN), &A, &HTTP, SYN_RECV).into(),
            ],
        },
        Fixture {
            name: "the same ports from another client are another flow",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("client 1 SYN", &http(7201, SYN), &A, &HTTP, SYN_RECV).into(),
                new_flow(
                    "client 2 SYN",
                    &tcp(CLIENT_2, VIP, 7201, 80, SYN),
                    &B,
                    &HTTP,
                    SYN_RECV,
                )
                .into(),
                known_flow("client 1 ACK", &http(7201, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .expect([Expect::ConnCount(2)])
                    .into(),
            ],
        },
        Fixture {
            name: "a flow whose entry expired (deleted by user space): its next segment is the kernel's (pass_not_syn), as in IPVS without sloppy_tcp",
            setup: http_world(&[&A, &B]),
            steps: vec![
                new_flow("SYN", &http(7301, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(7301, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                apply(
                    "entry expired",
                    vec![Change::RemoveConn(flow_of(&http(7301, ACK)))],
                ),
                Send::pass(
                    "data after expiry",
                    data(7301, 20).bytes(),
                    Stat::PassNotSyn,
                )
                .expect([Expect::ConnCount(0)])
                .into(),
            ],
        },
        Fixture {
            name: "sloppy_tcp: a flow whose entry expired is scheduled afresh by its next segment",
            setup: with_sloppy_tcp(http_world(&[&A, &B])),
            steps: vec![
                new_flow("SYN", &http(7311, SYN), &A, &HTTP, SYN_RECV).into(),
                known_flow("ACK", &http(7311, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                apply(
                    "entry expired",
                    vec![Change::RemoveConn(flow_of(&http(7311, ACK)))],
                ),
                new_flow("data after expiry", &data(7311, 20), &B, &HTTP, ESTABLISHED).into(),
            ],
        },
        Fixture {
            name: "segments of unknown connections other than a SYN are the kernel's (pass_not_syn), no connection: ACK, FIN, RST, SYN+RST, no flags (IPVS schedules only th->syn && !th->rst)",
            setup: http_world(&[&B]),
            steps: [
                ("ACK", ACK),
                ("FIN+ACK", FIN | ACK),
                ("RST", RST),
                ("SYN+RST", SYN | RST),
                ("no flags", 0),
                ("PSH+ACK", PSH | ACK),
            ]
            .into_iter()
            .map(|(what, flags)| {
                Send::pass(what, http(8001, flags).bytes(), Stat::PassNotSyn)
                    .expect([Expect::ConnCount(0)])
                    .into()
            })
            .collect(),
        },
        Fixture {
            name: "a SYN+ACK of an unknown connection is scheduled (IPVS schedules any SYN without RST: active FTP)",
            setup: http_world(&[&B]),
            steps: vec![new_flow("SYN+ACK", &http(8011, SYN | ACK), &B, &HTTP, SYN_RECV).into()],
        },
        Fixture {
            name: "sloppy_tcp: an ACK of an unknown connection is scheduled and starts ESTABLISHED",
            setup: with_sloppy_tcp(http_world(&[&B])),
            steps: vec![new_flow("ACK", &http(8021, ACK), &B, &HTTP, ESTABLISHED).into()],
        },
        Fixture {
            name: "sloppy_tcp: a RST of an unknown connection is still the kernel's (pass_not_syn)",
            setup: with_sloppy_tcp(http_world(&[&B])),
            steps: vec![
                Send::pass("RST", http(8031, RST).bytes(), Stat::PassNotSyn)
                    .expect([Expect::ConnCount(0)])
                    .into(),
                Send::pass("RST+ACK", http(8031, RST | ACK).bytes(), Stat::PassNotSyn).into(),
            ],
        },
        Fixture {
            name: "a UDP flow sticks to its real server after the table changes",
            setup: dns_world(),
            steps: vec![
                new_flow("query", &dns(5353), &D, &DNS, UDP).into(),
                apply("DNS table becomes [C]", {
                    let mut changes = vec![add_real(&C, &DNS)];
                    changes.extend(service_with_table(&DNS, &[&C]));
                    changes
                }),
                known_flow("next query, same ports", &dns(5353), &D, &DNS, UDP)
                    .promotes()
                    .into(),
                new_flow("query from another port", &dns(5354), &C, &DNS, UDP).into(),
            ],
        },
        Fixture {
            name: "an entry already in the table (synced from a peer director) decides the real",
            setup: {
                let mut setup = http_world(&[&A]);
                setup.push(conn_entry(
                    flow_of(&http(9001, ACK)),
                    &B,
                    &HTTP,
                    ESTABLISHED,
                ));
                setup
            },
            steps: vec![
                known_flow("ACK", &http(9001, ACK), &B, &HTTP, ESTABLISHED)
                    .expect([
                        Expect::ServiceStats {
                            id: HTTP.id,
                            counters: counters(0, 1, 40),
                        },
                        Expect::RealStats {
                            id: B.id,
                            counters: counters(0, 1, 40),
                        },
                    ])
                    .into(),
            ],
        },
        Fixture {
            name: "sloppy_tcp: an entry whose real server was deleted outright is scheduled afresh",
            setup: with_sloppy_tcp(http_world(&[&A])),
            steps: vec![
                new_flow("SYN", &http(10001, SYN), &A, &HTTP, SYN_RECV).into(),
                apply("A deleted, table [B]", {
                    let mut changes = vec![Change::Real {
                        id: A.id,
                        real: RealServer::default(),
                    }];
                    changes.extend(service_with_table(&HTTP, &[&B]));
                    changes
                }),
                new_flow("ACK", &http(10001, ACK), &B, &HTTP, ESTABLISHED)
                    .expect([Expect::ConnCount(1)])
                    .into(),
            ],
        },
        Fixture {
            name: "established flows keep flowing while their service is deleted (ipvsadm -C; -R)",
            setup: http_world(&[&A]),
            steps: vec![
                new_flow("SYN", &http(11001, SYN), &A, &HTTP, SYN_RECV).into(),
                apply(
                    "service deleted",
                    vec![Change::RemoveService(service_key(&HTTP))],
                ),
                known_flow("ACK", &http(11001, ACK), &A, &HTTP, ESTABLISHED)
                    .promotes()
                    .into(),
                Send::pass("new flow", http(11002, SYN).bytes(), Stat::PassNotService)
                    .expect([Expect::NoConn(flow_of(&http(11002, SYN)))])
                    .into(),
            ],
        },
        flood_fixture(),
        full_table_fixture(),
    ]
    .into_iter()
    .chain(timeout_fixtures())
    .collect()
}

/// A connection idle past its state's timeout is over, as IPVS's timer ends it: the data
/// path no longer follows or changes it (lbd's sweep removes what is left a little later).
/// Idle times stay short (`--set` timeouts of seconds, or IPVS's fixed 10 s for CLOSE): the
/// kernel's clock in a VM just booted has not run for IPVS's 900 s.
fn timeout_fixtures() -> Vec<Fixture> {
    let secs = Duration::from_secs;
    let b_active = |n: i64| Change::RealConns {
        id: B.id,
        conns: RealConns {
            active: n,
            ..RealConns::default()
        },
    };
    let set = |tcp: u32, tcp_fin: u32, udp: u32| {
        Change::Settings(Settings {
            tcp_timeout: tcp,
            tcp_fin_timeout: tcp_fin,
            udp_timeout: udp,
            ..Settings::default()
        })
    };
    vec![
        Fixture {
            name: "a connection idle past its timeout (--set 5: established 5 s) is over: its ACK goes to the kernel (pass_not_syn), a SYN on its ports is scheduled afresh, and both leave their real server's counts",
            setup: {
                let mut setup = http_world(&[&A]);
                setup.extend([
                    set(5, 0, 0),
                    idle_conn_entry(flow_of(&http(9201, ACK)), &B, &HTTP, ESTABLISHED, secs(6)),
                    idle_conn_entry(flow_of(&http(9202, ACK)), &B, &HTTP, ESTABLISHED, secs(6)),
                    b_active(2),
                ]);
                setup
            },
            steps: vec![
                Send::pass("ACK, 6 s idle", http(9201, ACK).bytes(), Stat::PassNotSyn)
                    .expect([
                        Expect::NoConn(flow_of(&http(9201, ACK))),
                        Expect::RealConnsByTable {
                            id: B.id,
                            active: 1,
                            half_open_active: 0,
                        },
                    ])
                    .into(),
                new_flow("SYN, 6 s idle", &http(9202, SYN), &A, &HTTP, SYN_RECV)
                    .expect([Expect::RealConnsByTable {
                        id: B.id,
                        active: 0,
                        half_open_active: 0,
                    }])
                    .into(),
            ],
        },
        Fixture {
            name: "the timeouts of `--set` are the data path's: established 10 s, FIN_WAIT 5 s",
            setup: {
                let mut setup = http_world(&[&A]);
                setup.extend([
                    set(10, 5, 0),
                    idle_conn_entry(flow_of(&http(9301, ACK)), &B, &HTTP, ESTABLISHED, secs(9)),
                    idle_conn_entry(flow_of(&http(9302, ACK)), &B, &HTTP, ESTABLISHED, secs(11)),
                    idle_conn_entry(flow_of(&http(9303, ACK)), &B, &HTTP, FIN_WAIT, secs(6)),
                    b_active(2),
                ]);
                setup
            },
            steps: vec![
                known_flow("ACK, 9 s idle", &http(9301, ACK), &B, &HTTP, ESTABLISHED).into(),
                Send::pass("ACK, 11 s idle", http(9302, ACK).bytes(), Stat::PassNotSyn)
                    .expect([Expect::NoConn(flow_of(&http(9302, ACK)))])
                    .into(),
                Send::pass(
                    "ACK, FIN_WAIT 6 s idle",
                    http(9303, ACK).bytes(),
                    Stat::PassNotSyn,
                )
                .expect([
                    Expect::NoConn(flow_of(&http(9303, ACK))),
                    Expect::RealConnsByTable {
                        id: B.id,
                        active: 1,
                        half_open_active: 0,
                    },
                ])
                .into(),
            ],
        },
        Fixture {
            name: "IPVS's fixed timeouts without --set: CLOSE is over after 10 s",
            setup: {
                let mut setup = http_world(&[&A]);
                setup.extend([
                    idle_conn_entry(flow_of(&http(9351, ACK)), &B, &HTTP, CLOSE, secs(9)),
                    idle_conn_entry(flow_of(&http(9352, ACK)), &B, &HTTP, CLOSE, secs(11)),
                ]);
                setup
            },
            steps: vec![
                known_flow("ACK, CLOSE 9 s idle", &http(9351, ACK), &B, &HTTP, CLOSE).into(),
                Send::pass(
                    "ACK, CLOSE 11 s idle",
                    http(9352, ACK).bytes(),
                    Stat::PassNotSyn,
                )
                .expect([Expect::NoConn(flow_of(&http(9352, ACK)))])
                .into(),
            ],
        },
        Fixture {
            name: "a UDP flow idle past its timeout (--set udp 5) is over: its next datagram is scheduled afresh",
            setup: {
                let mut setup = dns_world();
                setup.extend([
                    set(0, 0, 5),
                    add_real(&C, &DNS),
                    idle_conn_entry(flow_of(&dns(5401)), &C, &DNS, UDP, secs(4)),
                    idle_conn_entry(flow_of(&dns(5402)), &C, &DNS, UDP, secs(6)),
                ]);
                setup
            },
            steps: vec![
                known_flow("query, 4 s idle", &dns(5401), &C, &DNS, UDP).into(),
                new_flow("query, 6 s idle", &dns(5402), &D, &DNS, UDP).into(),
            ],
        },
    ]
}

/// The harness's table sizes (`harness::MAP_SIZES`).
const HALF_OPEN_SIZE: u32 = 1024;
const CONNS_SIZE: u32 = 1024;

/// A SYN from spoofed client number `n` (sources 10.64.0.0 up, ports from 1024).
fn spoofed_syn(n: u32) -> crate::packet::Frame {
    let mut frame = http(1024 + (n % 60_000) as u16, SYN);
    frame.ipv4_mut().src = std::net::Ipv4Addr::from(0x0a40_0000 + n);
    frame
}

/// IPVS keeps established connections through a SYN flood; lb makes it a guarantee: opening
/// packets only ever evict their own kind from the half-open table.
fn flood_fixture() -> Fixture {
    const ESTABLISHED_FLOWS: u16 = 50;
    let flood = 4 * HALF_OPEN_SIZE;
    let port = |i: u16| 12000 + i;
    let mut steps: Vec<Step> = Vec::new();
    for i in 0..ESTABLISHED_FLOWS {
        steps.push(new_flow("SYN", &http(port(i), SYN), &A, &HTTP, SYN_RECV).into());
        steps.push(
            known_flow("ACK", &http(port(i), ACK), &A, &HTTP, ESTABLISHED)
                .promotes()
                .expect([Expect::HalfOpen(flow_of(&http(port(i), ACK)), false)])
                .into(),
        );
    }
    for n in 0..flood {
        steps.push(new_flow("spoofed SYN", &spoofed_syn(n), &A, &HTTP, SYN_RECV).into());
    }
    for i in 0..ESTABLISHED_FLOWS {
        steps.push(
            known_flow(
                "data after the flood",
                &data(port(i), 100),
                &A,
                &HTTP,
                ESTABLISHED,
            )
            .into(),
        );
    }
    // The connection table's counts are exact; the half-open table's running count has every
    // SYN in it, the evicted ones too, until lbd's sweep counts the table afresh.
    steps.push(Step::Expect(vec![Expect::RealConnsByTable {
        id: A.id,
        active: i64::from(ESTABLISHED_FLOWS),
        half_open_active: i64::from(flood),
    }]));
    // The last spoofed SYNs are still half-open (the first ones were evicted).
    steps.push(Step::Expect(vec![
        Expect::HalfOpen(flow_of(&spoofed_syn(flood - 1)), true),
        Expect::NoConn(flow_of(&spoofed_syn(0))),
    ]));
    Fixture {
        name: "a SYN flood of 4x the half-open table from spoofed sources: 50 established connections all keep flowing, none evicted, their counts exact",
        setup: http_world(&[&A]),
        steps,
    }
}

/// A full connection table refuses nobody: a connection that cannot move there stays in the
/// half-open table and keeps working.
fn full_table_fixture() -> Fixture {
    let mut steps: Vec<Step> = Vec::new();
    let client = |n: u32, flags: u8| {
        let mut frame = http(2000, flags);
        frame.ipv4_mut().src = std::net::Ipv4Addr::from(0x0a50_0000 + n);
        frame
    };
    for n in 0..CONNS_SIZE {
        steps.push(new_flow("SYN", &client(n, SYN), &A, &HTTP, SYN_RECV).into());
        steps.push(
            known_flow("ACK", &client(n, ACK), &A, &HTTP, ESTABLISHED)
                .promotes()
                .into(),
        );
    }
    steps.push(
        new_flow(
            "one more SYN",
            &client(CONNS_SIZE, SYN),
            &A,
            &HTTP,
            SYN_RECV,
        )
        .into(),
    );
    steps.push(
        known_flow(
            "its ACK: the connection table is full",
            &client(CONNS_SIZE, ACK),
            &A,
            &HTTP,
            ESTABLISHED,
        )
        .counts(&[Stat::ConnTableFull])
        .expect([Expect::HalfOpen(flow_of(&client(CONNS_SIZE, ACK)), true)])
        .into(),
    );
    steps.push(
        known_flow(
            "its data still flows",
            &client(CONNS_SIZE, PSH | ACK),
            &A,
            &HTTP,
            ESTABLISHED,
        )
        .counts(&[Stat::ConnTableFull])
        .into(),
    );
    steps.push(Step::Expect(vec![Expect::RealConnsByTable {
        id: A.id,
        active: i64::from(CONNS_SIZE),
        half_open_active: 1,
    }]));
    Fixture {
        name: "a full connection table: the next connection stays in the half-open table (conn_table_full) and keeps flowing",
        setup: http_world(&[&A]),
        steps,
    }
}
