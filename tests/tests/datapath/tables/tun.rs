//! LVS-TUN forwarding (`-i`): the client's IP packet leaves byte for byte inside an outer IPv4
//! header (IP-in-IP) from the egress NIC's address to the real server, in a frame to the next
//! hop's MAC from the NIC's. A packet that would no longer fit the path MTU is answered with
//! ICMP "fragmentation needed" when it has DF set, and dropped when it has not (XDP cannot
//! fragment). Failure paths drop and count.
//!
//! The real server's `mtu` is the path MTU lbd found (the egress link's); 0 means unknown and
//! disables the check.

use std::net::Ipv4Addr;

use lb_common::{
    Iface, REAL_F_IN_USE, Stat, method,
    tcp_state::{ESTABLISHED, FIN_WAIT, SYN_RECV, UDP},
};

use crate::{
    fixture::{Expect, Fixture, Output, Send, Step, counters},
    harness::{Change, TEST_RUN_IFINDEX, Verdict},
    packet::{ACK, FIN, Frame, PSH, SYN, Tcp, Udp},
    wire::Mac,
    world::{
        A, B, C, CLIENT, D, DIRECTOR_IP, DIRECTOR_MAC, DNS, HTTP, OTHER_IFINDEX, OTHER_NIC_MAC,
        RealDef, ServiceDef, VIP, addr, dns, edit_real, flow_of, frag_needed, http, http_world,
        ip_len, service_with_table, sloppy_tcp, time_exceeded, tunnelled, via_dr, via_tun,
    },
};

/// The usual Ethernet path MTU, as lbd reads it from the egress link.
const MTU: u32 = 1500;
/// A router between the director and a real server in another network.
const GATEWAY_MAC: Mac = [0x02, 0x00, 0x5e, 0x99, 0x00, 0x01];
/// A real server two hops away (behind `GATEWAY_MAC`).
const FAR_REAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 50);
/// The second NIC's address (the outer source when the real server is reached through it).
const OTHER_NIC_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// The real server's entry turned into a TUN one with path MTU `mtu`.
fn tun(real: &RealDef, svc: &ServiceDef, mtu: u32) -> Change {
    edit_real(real, svc, |r| {
        r.method = method::TUNNEL;
        r.mtu = mtu;
    })
}

/// The HTTP world with A, B and C as TUN real servers on a `mtu` path, HTTP's table `table`.
fn tun_world(table: &[&RealDef], mtu: u32) -> Vec<Change> {
    let mut setup = http_world(table);
    setup.extend([&A, &B, &C].map(|r| tun(r, &HTTP, mtu)));
    setup
}

/// A TCP segment of the flow from `sport` carrying `len` bytes of payload: an IP packet of
/// 40 + `len` bytes.
fn segment(sport: u16, flags: u8, len: usize) -> Frame {
    let mut frame = http(sport, flags);
    frame.ipv4_mut().payload = Tcp::new(sport, HTTP.port, flags)
        .payload(&vec![0x5a; len])
        .into();
    frame
}

/// A packet tunnelled to `real` through the director's NIC (XDP_TX).
fn tunnelled_to(what: &str, frame: &Frame, real: &RealDef, new: bool, state: u8) -> Send {
    let conn = if new { Stat::ConnNew } else { Stat::ConnHit };
    let expected = via_tun(frame, real);
    // Without DF the outer ID is random (it may be fragmented on the way, so it must not
    // repeat soon); the outer checksum depends on it. Both are masked, the checksum still
    // verified.
    let output = if frame.ipv4().dont_fragment {
        Output::Exact(expected)
    } else {
        Output::Masked(expected, vec![18..20, 24..26])
    };
    Send::new(what, frame.bytes(), Verdict::TX, output)
        .counts(&[conn, Stat::TxTunnel])
        .expect([Expect::Conn {
            flow: flow_of(frame),
            real: real.id,
            service: HTTP.id,
            state,
        }])
}

/// A packet answered with ICMP "fragmentation needed" announcing `next_hop_mtu`.
fn answered_frag_needed(what: &str, frame: &Frame, next_hop_mtu: u16, new: bool) -> Send {
    let conn = if new { Stat::ConnNew } else { Stat::ConnHit };
    Send::new(
        what,
        frame.bytes(),
        Verdict::TX,
        Output::Exact(frag_needed(frame, next_hop_mtu)),
    )
    .counts(&[conn, Stat::IcmpFragNeeded])
}

/// One new flow to A, tunnelled, in a world of TUN servers with path MTU `mtu` (and
/// `sloppy_tcp`, so that a data segment may open the flow, as after a failover).
fn one_packet(name: &'static str, mtu: u32, frame: Frame, state: u8) -> Fixture {
    Fixture {
        name,
        setup: sloppy(tun_world(&[&A], mtu)),
        steps: vec![tunnelled_to("packet", &frame, &A, true, state).into()],
    }
}

/// `setup` with `sloppy_tcp`: the fixtures below open flows with large data segments.
fn sloppy(mut setup: Vec<Change>) -> Vec<Change> {
    setup.push(sloppy_tcp());
    setup
}

pub fn fixtures() -> Vec<Fixture> {
    vec![
        {
            let frame = http(41000, SYN);
            let bytes = ip_len(&frame);
            Fixture {
                name: "TCP SYN to VIP:80 goes to the real server in IP-in-IP (outer from the NIC's address)",
                setup: tun_world(&[&A], MTU),
                steps: vec![
                    tunnelled_to("SYN", &frame, &A, true, SYN_RECV)
                        .expect([
                            Expect::ConnCount(1),
                            // IPVS counts the client's packet, not the encapsulated one.
                            Expect::ServiceStats {
                                id: HTTP.id,
                                counters: counters(1, 1, bytes),
                            },
                            Expect::RealStats {
                                id: A.id,
                                counters: counters(1, 1, bytes),
                            },
                        ])
                        .into(),
                ],
            }
        },
        {
            let frame = dns(41001);
            let mut setup = vec![crate::world::director_iface(), tun(&D, &DNS, MTU)];
            setup.extend(service_with_table(&DNS, &[&D]));
            Fixture {
                name: "UDP query to VIP:53 goes to the real server in IP-in-IP",
                setup,
                steps: vec![
                    Send::new(
                        "query",
                        frame.bytes(),
                        Verdict::TX,
                        Output::Exact(via_tun(&frame, &D)),
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
        Fixture {
            name: "a TUN flow: handshake, data and close tunnelled to the same real server, input-only states",
            setup: tun_world(&[&B, &C], MTU),
            steps: vec![
                tunnelled_to("SYN", &http(41002, SYN), &B, true, SYN_RECV).into(),
                tunnelled_to("ACK", &http(41002, ACK), &B, false, ESTABLISHED)
                    .promotes()
                    .into(),
                tunnelled_to(
                    "data",
                    &segment(41002, PSH | ACK, 517),
                    &B,
                    false,
                    ESTABLISHED,
                )
                .into(),
                tunnelled_to("FIN", &http(41002, FIN | ACK), &B, false, FIN_WAIT).into(),
                tunnelled_to("another flow", &http(41003, SYN), &C, true, SYN_RECV).into(),
            ],
        },
        one_packet(
            "inner without DF: the outer header gets a fresh ID and leaves DF clear",
            MTU,
            {
                let mut frame = http(41004, SYN);
                frame.ipv4_mut().dont_fragment = false;
                frame.ipv4_mut().ident = 0xbeef;
                frame
            },
            SYN_RECV,
        ),
        {
            // The same ID in every outer header would pass the masked comparison packet by
            // packet; the runner fails a fixture whose masked bytes never change.
            let no_df = |port, flags| {
                let mut frame = http(port, flags);
                frame.ipv4_mut().dont_fragment = false;
                frame
            };
            Fixture {
                name: "inner without DF: every outer header gets an ID of its own",
                setup: sloppy(tun_world(&[&A], MTU)),
                steps: vec![
                    tunnelled_to("SYN", &no_df(41010, SYN), &A, true, SYN_RECV).into(),
                    tunnelled_to("ACK", &no_df(41010, ACK), &A, false, ESTABLISHED)
                        .promotes()
                        .into(),
                    tunnelled_to("data", &no_df(41010, PSH | ACK), &A, false, ESTABLISHED).into(),
                    tunnelled_to(
                        "more data",
                        &no_df(41010, PSH | ACK),
                        &A,
                        false,
                        ESTABLISHED,
                    )
                    .into(),
                ],
            }
        },
        one_packet(
            "inner with DF: outer DF set and ID 0, whatever the inner ID",
            MTU,
            {
                let mut frame = http(41005, SYN);
                frame.ipv4_mut().ident = 0xbeef;
                frame
            },
            SYN_RECV,
        ),
        one_packet(
            "inner TOS (DSCP EF, ECN ECT(0)) copied to the outer header",
            MTU,
            {
                let mut frame = http(41006, SYN);
                frame.ipv4_mut().tos = 0xba;
                frame
            },
            SYN_RECV,
        ),
        one_packet(
            "inner IP options carried byte for byte; the outer header stays 20 bytes",
            MTU,
            {
                let mut frame = http(41007, SYN);
                frame.ipv4_mut().options = vec![0x94, 0x04, 0x00, 0x00];
                frame
            },
            SYN_RECV,
        ),
        {
            let mut frame = http(41008, SYN);
            frame.ipv4_mut().ttl = 1;
            Fixture {
                name: "TTL 1: answered with ICMP time exceeded from the VIP, quoting the client's header, as IPVS does for every method (decrement_ttl); the connection was scheduled first",
                setup: tun_world(&[&A], MTU),
                steps: vec![
                    Send::new(
                        "SYN, TTL 1",
                        frame.bytes(),
                        Verdict::TX,
                        Output::Exact(time_exceeded(&frame)),
                    )
                    .counts(&[Stat::ConnNew, Stat::IcmpTimeExceeded])
                    .into(),
                ],
            }
        },
        one_packet(
            "TTL 2: tunnelled with TTL 1 inside and out",
            MTU,
            {
                let mut frame = http(41018, SYN);
                frame.ipv4_mut().ttl = 2;
                frame
            },
            SYN_RECV,
        ),
        one_packet(
            "padded minimum-size frame: the padding stays after the inner packet",
            MTU,
            http(41009, SYN).padded_to(60),
            SYN_RECV,
        ),
        one_packet(
            "inner exactly path MTU - 20 (1480 bytes): fits, tunnelled",
            MTU,
            segment(41010, PSH | ACK, 1440),
            ESTABLISHED,
        ),
        one_packet(
            "path MTU unknown (0): never answered with ICMP, a 3000-byte packet is tunnelled",
            0,
            segment(41011, PSH | ACK, 2960),
            ESTABLISHED,
        ),
        {
            let frame = segment(41012, PSH | ACK, 1441);
            let bytes = ip_len(&frame);
            Fixture {
                name: "inner 1481 bytes with DF on a 1500 path: ICMP frag-needed with MTU 1480, back to the client",
                setup: sloppy(tun_world(&[&A], MTU)),
                steps: vec![
                    answered_frag_needed("1481-byte segment", &frame, 1480, true)
                        .expect([
                            // The flow is scheduled and counted as IPVS does before its
                            // transmit function finds the packet too big.
                            Expect::Conn {
                                flow: flow_of(&frame),
                                real: A.id,
                                service: HTTP.id,
                                state: ESTABLISHED,
                            },
                            Expect::ServiceStats {
                                id: HTTP.id,
                                counters: counters(1, 1, bytes),
                            },
                        ])
                        .into(),
                ],
            }
        },
        {
            let syn = http(41013, SYN);
            let full = segment(41013, PSH | ACK, 1460);
            let smaller = segment(41013, PSH | ACK, 1440);
            Fixture {
                name: "a full-size 1500-byte segment of a TUN flow: frag-needed (MTU 1480), then the resized one is tunnelled",
                setup: tun_world(&[&A], MTU),
                steps: vec![
                    tunnelled_to("SYN", &syn, &A, true, SYN_RECV).into(),
                    answered_frag_needed("1500-byte segment", &full, 1480, false)
                        .promotes()
                        .expect([Expect::Conn {
                            flow: flow_of(&full),
                            real: A.id,
                            service: HTTP.id,
                            state: ESTABLISHED,
                        }])
                        .into(),
                    tunnelled_to("1480-byte segment", &smaller, &A, false, ESTABLISHED).into(),
                ],
            }
        },
        {
            // The ICMP goes back to whichever MAC the packet came from (a second router here).
            let mut frame = segment(41014, PSH | ACK, 1200);
            frame.src = [0x02, 0xee, 0x00, 0x00, 0x00, 0x02];
            frame.ipv4_mut().options = vec![0x01, 0x01, 0x01, 0x00, 0x94, 0x04, 0x00, 0x00];
            Fixture {
                name: "frag-needed quotes the whole IP header with options, to the MAC the packet came from",
                setup: sloppy(tun_world(&[&A], 1200)),
                steps: vec![answered_frag_needed("1248-byte segment", &frame, 1180, true).into()],
            }
        },
        {
            let mut frame = http(41015, 0);
            frame.ipv4_mut().payload = Udp::new(41015, 80, &[0x33; 1473]).into();
            let mut setup = tun_world(&[&A], MTU);
            let udp_http = ServiceDef {
                proto: lb_common::IPPROTO_UDP,
                id: 6,
                table_offset: 320,
                ..HTTP
            };
            setup.push(tun(&A, &udp_http, MTU));
            setup.extend(service_with_table(&udp_http, &[&A]));
            Fixture {
                name: "UDP too big with DF: frag-needed quotes the UDP header",
                setup,
                steps: vec![answered_frag_needed("1501-byte datagram", &frame, 1480, true).into()],
            }
        },
        {
            let mut frame = segment(41016, PSH | ACK, 1441);
            frame.ipv4_mut().dont_fragment = false;
            Fixture {
                name: "too big without DF: dropped (drop_too_big), XDP cannot fragment",
                setup: sloppy(tun_world(&[&A], MTU)),
                steps: vec![
                    Send::drop("1481-byte segment", frame.bytes(), Stat::DropTooBig)
                        .counts(&[Stat::ConnNew])
                        .into(),
                ],
            }
        },
        {
            let frame = http(41017, SYN);
            let mut setup = tun_world(&[&A], MTU);
            setup.push(edit_real(&A, &HTTP, |r| {
                r.method = method::TUNNEL;
                r.mtu = MTU;
                r.ifindex = OTHER_IFINDEX;
            }));
            setup.push(Change::Iface {
                ifindex: OTHER_IFINDEX,
                iface: Iface {
                    mac: OTHER_NIC_MAC,
                    addr: addr(OTHER_NIC_IP).ipv4(),
                    ..Iface::default()
                },
            });
            Fixture {
                name: "real server behind another NIC: XDP_REDIRECT, outer source and MAC that NIC's",
                setup,
                steps: vec![
                    Send::new(
                        "SYN",
                        frame.bytes(),
                        Verdict::REDIRECT,
                        Output::Exact(tunnelled(
                            &crate::world::hopped(&frame),
                            A.addr,
                            A.mac,
                            OTHER_NIC_MAC,
                            OTHER_NIC_IP,
                        )),
                    )
                    .counts(&[Stat::ConnNew, Stat::TxTunnel, Stat::Redirect])
                    .into(),
                ],
            }
        },
        {
            let frame = http(41018, SYN);
            let mut setup = tun_world(&[&C], MTU);
            setup.push(edit_real(&C, &HTTP, |r| {
                r.method = method::TUNNEL;
                r.mtu = MTU;
                r.addr = addr(FAR_REAL);
                r.mac = GATEWAY_MAC;
            }));
            Fixture {
                name: "real server behind a router: outer to the real server's address, frame to the router's MAC",
                setup,
                steps: vec![
                    Send::new(
                        "SYN",
                        frame.bytes(),
                        Verdict::TX,
                        Output::Exact(tunnelled(
                            &crate::world::hopped(&frame),
                            FAR_REAL,
                            GATEWAY_MAC,
                            DIRECTOR_MAC,
                            DIRECTOR_IP,
                        )),
                    )
                    .counts(&[Stat::ConnNew, Stat::TxTunnel])
                    .into(),
                ],
            }
        },
        {
            let mut setup = http_world(&[&A, &B]);
            setup.push(tun(&B, &HTTP, MTU));
            let first = http(41019, SYN);
            let second = http(41020, SYN);
            Fixture {
                name: "one service, mixed methods: A by DR, B by TUN",
                setup,
                steps: vec![
                    Send::new(
                        "flow 1 SYN",
                        first.bytes(),
                        Verdict::TX,
                        Output::Exact(via_dr(&first, &A)),
                    )
                    .counts(&[Stat::ConnNew, Stat::TxRoute])
                    .into(),
                    tunnelled_to("flow 2 SYN", &second, &B, true, SYN_RECV).into(),
                ],
            }
        },
        {
            let frame = http(41021, SYN);
            let mut setup = tun_world(&[&A], MTU);
            setup.push(edit_real(&A, &HTTP, |r| {
                r.method = method::TUNNEL;
                r.flags = REAL_F_IN_USE;
            }));
            Fixture {
                name: "next hop's MAC unresolved: dropped (drop_no_neigh), flow remembered",
                setup,
                steps: vec![
                    Send::drop("SYN", frame.bytes(), Stat::DropNoNeigh)
                        .counts(&[Stat::ConnNew])
                        .expect([Expect::Conn {
                            flow: flow_of(&frame),
                            real: A.id,
                            service: HTTP.id,
                            state: SYN_RECV,
                        }])
                        .into(),
                ],
            }
        },
        {
            let mut setup = tun_world(&[&A], MTU);
            setup.push(Change::Iface {
                ifindex: TEST_RUN_IFINDEX,
                iface: Iface {
                    mac: DIRECTOR_MAC,
                    ..Iface::default()
                },
            });
            Fixture {
                name: "egress NIC without an IPv4 address (no outer source): dropped (drop_no_iface)",
                setup,
                steps: vec![
                    Send::drop("SYN", http(41022, SYN).bytes(), Stat::DropNoIface)
                        .counts(&[Stat::ConnNew])
                        .into(),
                ],
            }
        },
        {
            let mut setup = tun_world(&[&A], MTU);
            setup.push(Change::RemoveIface(TEST_RUN_IFINDEX));
            Fixture {
                name: "egress NIC missing from IFACES: dropped (drop_no_iface)",
                setup,
                steps: vec![
                    Send::drop("SYN", http(41023, SYN).bytes(), Stat::DropNoIface)
                        .counts(&[Stat::ConnNew])
                        .into(),
                ],
            }
        },
        {
            let syn = http(41024, SYN);
            Fixture {
                name: "path MTU lowered between packets (lbd refreshed the route): the next big packet gets frag-needed",
                setup: tun_world(&[&A], MTU),
                steps: vec![
                    tunnelled_to("SYN", &syn, &A, true, SYN_RECV).into(),
                    tunnelled_to(
                        "1400-byte segment",
                        &segment(41024, PSH | ACK, 1360),
                        &A,
                        false,
                        ESTABLISHED,
                    )
                    .promotes()
                    .into(),
                    Step::Apply {
                        what: "A's path MTU becomes 1400",
                        changes: vec![tun(&A, &HTTP, 1400)],
                    },
                    answered_frag_needed(
                        "1400-byte segment again",
                        &segment(41024, PSH | ACK, 1360),
                        1380,
                        false,
                    )
                    .into(),
                ],
            }
        },
        {
            // Not a TUN packet for the balancer: IP-in-IP addressed to the VIP is passed.
            let inner = crate::packet::Ipv4::new(CLIENT, VIP, Tcp::new(41025, 80, SYN));
            let frame = Frame::new(
                DIRECTOR_MAC,
                crate::world::ROUTER_MAC,
                crate::packet::Ipv4::new(CLIENT, VIP, inner),
            );
            Fixture {
                name: "IP-in-IP arriving at the director is not balanced: passed (pass_not_service)",
                setup: tun_world(&[&A], MTU),
                steps: vec![Send::pass("IPIP", frame.bytes(), Stat::PassNotService).into()],
            }
        },
    ]
}
