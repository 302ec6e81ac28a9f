//! LVS-TUN with GUE and GRE (`-i --tun-type gue --tun-port N`, `--tun-type gre`), as IPVS's
//! `ipvs_gue_encap` / `ipvs_gre_encap` build them: the client's packet, one hop on, behind an
//! outer IPv4 header (TOS, DF and TTL from the client's, ID 0 with DF) and
//! - GUE: UDP from a port hashed from the client's flow (32768-60999) to the tunnel port, then
//!   GUE version 0 with no options carrying protocol 4; the UDP checksum 0 without
//!   `--tun-csum`/`--tun-remcsum`, else computed over the pseudo header and the whole
//!   datagram;
//! - GRE: protocol 47, flags 0 and protocol 0x0800, or with `--tun-csum` the C bit and the
//!   checksum over the GRE header and the client's packet.
//!
//! The expected outer headers and checksums are built from the bytes in the test
//! (`world::tunnelled_as`). Payload lengths are chosen so that the data path's sum walks every
//! piece size and every tail length (0-3 bytes). A packet too big for the path MTU with the
//! tunnel's headers is answered with "fragmentation needed" announcing the MTU less them.

use lb_common::{
    Stat, method,
    tcp_state::{ESTABLISHED, SYN_RECV, UDP},
    tunnel,
};

use crate::{
    fixture::{Expect, Fixture, Output, Send},
    harness::{Change, Verdict},
    packet::{ACK, Frame, PSH, SYN, Tcp},
    world::{
        A, B, D, DNS, Encap, HTTP, RealDef, ServiceDef, dns, edit_real, flow_of, frag_needed, http,
        http_world, service_with_table, sloppy_tcp, via_tun_as,
    },
};

const MTU: u32 = 1500;
const GUE_PORT: u16 = 6080;

/// The real server's entry turned into a TUN one with encapsulation `encap`, path MTU `mtu`.
fn tun_as(real: &RealDef, svc: &ServiceDef, encap: Encap, mtu: u32) -> Change {
    edit_real(real, svc, |r| {
        r.method = method::TUNNEL;
        r.mtu = mtu;
        match encap {
            Encap::Ipip => {}
            Encap::Gue { port, csum } => {
                r.tun_type = tunnel::GUE;
                r.tun_port = port.to_be();
                r.tun_flags = if csum { tunnel::F_CSUM } else { 0 };
            }
            Encap::Gre { csum } => {
                r.tun_type = tunnel::GRE;
                r.tun_flags = if csum { tunnel::F_CSUM } else { 0 };
            }
        }
    })
}

/// The HTTP world with A as a TUN real server of `encap`, `sloppy_tcp` on (data segments open
/// flows).
fn world(encap: Encap, mtu: u32) -> Vec<Change> {
    let mut setup = http_world(&[&A]);
    setup.push(tun_as(&A, &HTTP, encap, mtu));
    setup.push(sloppy_tcp());
    setup
}

/// A TCP segment of the flow from `sport` with `len` bytes of payload (an IP packet of 40 +
/// `len` bytes).
fn segment(sport: u16, len: usize) -> Frame {
    let mut frame = http(sport, PSH | ACK);
    frame.ipv4_mut().payload = Tcp::new(sport, HTTP.port, PSH | ACK)
        .payload(&(0..len).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>())
        .into();
    frame
}

fn sent(what: &str, frame: &Frame, real: &RealDef, encap: Encap, new: bool, state: u8) -> Send {
    let conn = if new { Stat::ConnNew } else { Stat::ConnHit };
    Send::new(
        what,
        frame.bytes(),
        Verdict::TX,
        Output::Exact(via_tun_as(frame, real, encap)),
    )
    .counts(&[conn, Stat::TxTunnel])
    .expect([Expect::Conn {
        flow: flow_of(frame),
        real: real.id,
        service: HTTP.id,
        state,
    }])
}

fn one(name: &'static str, encap: Encap, frame: Frame, state: u8) -> Fixture {
    Fixture {
        name,
        setup: world(encap, MTU),
        steps: vec![sent("packet", &frame, &A, encap, true, state).into()],
    }
}

fn frag_needed_fixture(name: &'static str, encap: Encap, frame: Frame, mtu: u16) -> Fixture {
    Fixture {
        name,
        setup: world(encap, MTU),
        steps: vec![
            Send::new(
                "too big",
                frame.bytes(),
                Verdict::TX,
                Output::Exact(frag_needed(&frame, mtu)),
            )
            .counts(&[Stat::ConnNew, Stat::IcmpFragNeeded])
            .into(),
        ],
    }
}

const GUE: Encap = Encap::Gue {
    port: GUE_PORT,
    csum: false,
};
const GUE_CSUM: Encap = Encap::Gue {
    port: GUE_PORT,
    csum: true,
};
const GRE: Encap = Encap::Gre { csum: false };
const GRE_CSUM: Encap = Encap::Gre { csum: true };

pub fn fixtures() -> Vec<Fixture> {
    let mut fixtures = vec![
        one(
            "GUE: a SYN in UDP to the tunnel port, GUE header, no UDP checksum",
            GUE,
            http(43000, SYN),
            SYN_RECV,
        ),
        one(
            "GRE: a SYN behind GRE (flags 0, protocol 0x0800)",
            GRE,
            http(43001, SYN),
            SYN_RECV,
        ),
        one(
            "GUE with checksum: a SYN (60-byte inner, pieces 16+16+16+4+4+4)",
            GUE_CSUM,
            http(43002, SYN),
            SYN_RECV,
        ),
        one(
            "GRE with checksum: a SYN",
            GRE_CSUM,
            http(43003, SYN),
            SYN_RECV,
        ),
        {
            let frame = dns(43004);
            let mut setup = vec![
                crate::world::director_iface(),
                tun_as(&D, &DNS, GUE_CSUM, MTU),
            ];
            setup.extend(service_with_table(&DNS, &[&D]));
            Fixture {
                name: "GUE with checksum: a UDP query (the inner UDP checksum untouched)",
                setup,
                steps: vec![
                    Send::new(
                        "query",
                        frame.bytes(),
                        Verdict::TX,
                        Output::Exact(via_tun_as(&frame, &D, GUE_CSUM)),
                    )
                    .counts(&[Stat::ConnNew, Stat::TxTunnel])
                    .expect([Expect::Conn {
                        flow: flow_of(&frame),
                        real: D.id,
                        service: DNS.id,
                        state: UDP,
                    }])
                    .into(),
                ],
            }
        },
        {
            // The outer header takes the inner one's TOS and, without DF, a random ID: masked
            // (its checksum is still verified).
            let mut frame = segment(43005, 100);
            frame.ipv4_mut().dont_fragment = false;
            frame.ipv4_mut().tos = 0xb8;
            let expected = via_tun_as(&frame, &A, GUE_CSUM);
            Fixture {
                name: "GUE with checksum, inner without DF: outer without DF, a fresh ID, TOS copied",
                setup: world(GUE_CSUM, MTU),
                steps: vec![
                    Send::new(
                        "segment",
                        frame.bytes(),
                        Verdict::TX,
                        Output::Masked(expected, vec![18..20, 24..26]),
                    )
                    .counts(&[Stat::ConnNew, Stat::TxTunnel])
                    .into(),
                ],
            }
        },
        one(
            "GUE: padded minimum-size frame: the padding stays after the inner packet",
            GUE_CSUM,
            http(43006, SYN).padded_to(60),
            SYN_RECV,
        ),
        one(
            "GUE: inner exactly path MTU - 32 (1468 bytes): fits, tunnelled",
            GUE_CSUM,
            segment(43007, 1428),
            ESTABLISHED,
        ),
        frag_needed_fixture(
            "GUE: inner 1469 bytes with DF on a 1500 path: frag-needed with MTU 1468",
            GUE,
            segment(43008, 1429),
            1468,
        ),
        one(
            "GRE: inner exactly path MTU - 24 (1476 bytes): fits, tunnelled",
            GRE,
            segment(43009, 1436),
            ESTABLISHED,
        ),
        frag_needed_fixture(
            "GRE: inner 1477 bytes with DF on a 1500 path: frag-needed with MTU 1476",
            GRE,
            segment(43010, 1437),
            1476,
        ),
        one(
            "GRE with checksum: inner exactly path MTU - 28 (1472 bytes): fits, checksummed",
            GRE_CSUM,
            segment(43011, 1432),
            ESTABLISHED,
        ),
        frag_needed_fixture(
            "GRE with checksum: inner 1473 bytes with DF on a 1500 path: frag-needed with MTU 1472",
            GRE_CSUM,
            segment(43012, 1433),
            1472,
        ),
        {
            let frame = segment(43013, 2960);
            Fixture {
                name: "GUE, 3000-byte inner on a path of unknown MTU: checksummed over 11 pieces of 256 and the rest",
                setup: world(GUE_CSUM, 0),
                steps: vec![sent("packet", &frame, &A, GUE_CSUM, true, ESTABLISHED).into()],
            }
        },
    ];
    // Every tail length of the checksum walk (inner lengths 557..=560: 256 + 256 + 16 + 16 +
    // 4 + 4 + 4 and 1, 2, 3 or 0 bytes), for GUE's and GRE's checksums.
    for (i, len) in (517..=520).enumerate() {
        let sport = 43100 + i as u16;
        fixtures.push(Fixture {
            name: "GUE and GRE with checksum: inner lengths with every tail of the sum",
            setup: {
                let mut setup = world(GUE_CSUM, MTU);
                setup.push(tun_as(&B, &HTTP, GRE_CSUM, MTU));
                setup.extend(service_with_table(&HTTP, &[&A, &B]));
                setup
            },
            steps: vec![
                sent(
                    "to A (GUE)",
                    &segment(sport, len),
                    &A,
                    GUE_CSUM,
                    true,
                    ESTABLISHED,
                )
                .into(),
                sent(
                    "to B (GRE)",
                    &segment(sport + 50, len),
                    &B,
                    GRE_CSUM,
                    true,
                    ESTABLISHED,
                )
                .into(),
            ],
        });
    }
    fixtures
}

/// The UDP source ports of `flows` new flows from one client to a GUE real server, as the
/// data path sends them (host order).
pub fn gue_source_ports(flows: u16) -> Vec<u16> {
    let mut director = crate::harness::Director::load();
    for change in world(GUE, MTU) {
        director.apply(&change);
    }
    (0..flows)
        .map(|i| {
            let (verdict, out) = director
                .run(&http(44000 + i, SYN).bytes())
                .expect("BPF_PROG_TEST_RUN");
            assert_eq!(verdict, Verdict::TX, "flow {i}");
            // Ethernet 14 + outer IPv4 20: the UDP source port.
            u16::from_be_bytes([out[34], out[35]])
        })
        .collect()
}
