//! ICMP errors about balanced connections, handled as IPVS handles them (`ip_vs_in_icmp`,
//! `ip_vs_out_icmp`): an error that quotes a packet of a known connection goes where the
//! connection goes.
//!
//! - DR and TUN: an error from the client's side about a reply (quoting VIP:vport → client)
//!   goes on to the connection's real server, byte for byte: new MACs (DR) or inside IP-in-IP
//!   (TUN). Its next-hop MTU and every quoted byte arrive as sent.
//! - NAT, client side: readdressed to the real server, one hop less, the quote rewritten to
//!   RIP:rport → client.
//! - NAT, real-server side: an error from the real server or a router on its side, quoting
//!   client → RIP:rport, reaches the client from the VIP, quoting client → VIP:vport.
//!
//! Expected outputs are built with the packet builder from the translated packets, so the outer
//! header checksum, the quoted header checksum, the quoted UDP checksum (when the quote holds
//! the whole datagram) and the ICMP checksum over the whole message are all full computations
//! in the suite, not the program's incremental updates; `wire::checksum_problems` checks every
//! forwarded frame's checksums again, quotes included. The quoted TCP checksum is left as the
//! sender computed it (IPVS does the same: RFC 792 guarantees only 8 quoted bytes).
//!
//! Errors about unknown connections, malformed or truncated quotes, and ICMP that is not an
//! error (echo, redirect) are passed to the kernel untouched.
//!
//! DR and TUN run in the default fixture world ([`fixtures`]); NAT asks the kernel's FIB for
//! next hops and runs in [`NatNet`] ([`nat_fixtures`]).

use std::{net::Ipv4Addr, time::Duration};

use lb_common::{
    Conn, Counters, Stat, method,
    tcp_state::{ESTABLISHED, SYN_RECV, UDP},
};

use crate::{
    fixture::{Expect, Fixture, Output, Send, Step, counters},
    harness::{Change, Verdict},
    packet::{ACK, Frame, Icmp, Ipv4, L4, PSH, SYN, Tcp, Udp},
    tables::nat::{
        DNS_RPORT, HTTP_RPORT, client_entry, dns_nat_world, leaving, masq, nat_world, reply,
        reply_entry, side, to_real, zeroing_checksum,
    },
    wire::Mac,
    world::{
        A, ALL_PORTS, ALL_PORTS_VIP, B, CLIENT, CLIENT_2, D, DIRECTOR_MAC, DNS, Encap, F, HTTP,
        NatNet, OTHER_NIC_MAC, ROUTER_MAC, RealDef, ServiceDef, VIP, addr, dns, dns_world,
        edit_real, flow_of, http, http_world, ip_len, new_flow, service_with_table, tcp, via_dr,
        via_tun, via_tun_as,
    },
};

/// A router on the clients' side of the director (beyond the director's own router).
const CLIENT_PATH_ROUTER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
/// A router between the director and the NAT real servers, and its MAC.
const INSIDE_ROUTER: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 254);
const INSIDE_ROUTER_MAC: Mac = [0x02, 0x00, 0x5e, 0x10, 0x00, 0xfe];
/// Next-hop MTUs the errors announce: unusual values, so a lost or moved field shows.
const MTU: u16 = 1400;
const OTHER_MTU: u16 = 1280;
/// ICMP types and codes (RFC 792).
const DEST_UNREACH: u8 = 3;
const HOST_UNREACH: u8 = 1;
const PORT_UNREACH: u8 = 3;
const REDIRECT: u8 = 5;
const TIME_EXCEEDED: u8 = 11;
const ECHO_REPLY: u8 = 0;

// ---- packets ----------------------------------------------------------------------------------

/// A full-size TCP segment from `src:sport` to `dst:dport`: the kind of packet that meets a
/// smaller MTU on the way.
fn segment(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16) -> Ipv4 {
    let payload: Vec<u8> = (0..1460).map(|i| (i * 7) as u8).collect();
    Ipv4::new(
        src,
        dst,
        Tcp::new(sport, dport, PSH | ACK).payload(&payload),
    )
}

/// A reply of HTTP to the client's port `cport` as it left the director (DR and TUN real
/// servers send it themselves, from the VIP).
fn http_reply(cport: u16) -> Ipv4 {
    segment(VIP, HTTP.port, CLIENT, cport)
}

/// The same packet with another source address and port (what a NAT quote becomes on the
/// real server's side).
fn from(ip: &Ipv4, src: Ipv4Addr, sport: u16) -> Ipv4 {
    let mut ip = ip.clone();
    ip.src = src;
    match &mut ip.payload {
        L4::Tcp(t) => t.sport = sport,
        L4::Udp(u) => u.sport = sport,
        other => panic!("not TCP/UDP: {other:?}"),
    }
    ip
}

/// The same packet with another destination address and port.
fn to(ip: &Ipv4, dst: Ipv4Addr, dport: u16) -> Ipv4 {
    let mut ip = ip.clone();
    ip.dst = dst;
    match &mut ip.payload {
        L4::Tcp(t) => t.dport = dport,
        L4::Udp(u) => u.dport = dport,
        other => panic!("not TCP/UDP: {other:?}"),
    }
    ip
}

/// `ip` with its TCP checksum pinned to the one `sent` carries: a translated quote keeps the
/// sender's TCP checksum.
fn tcp_checksum_of(mut ip: Ipv4, sent: &Ipv4) -> Ipv4 {
    let bytes = sent.bytes();
    let at = sent.header_len() + 16;
    let L4::Tcp(t) = &mut ip.payload else {
        panic!("not TCP")
    };
    t.checksum = Some(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
    ip
}

/// What an ICMP error quotes of `ip`: its header and the first 8 bytes of its payload
/// (RFC 792), and `extra` bytes more (RFC 1812 routers and Linux quote up to 576 bytes in all).
fn quote(ip: &Ipv4, extra: usize) -> Vec<u8> {
    let bytes = ip.bytes();
    bytes[..(ip.header_len() + 8 + extra).min(bytes.len())].to_vec()
}

fn icmp(ty: u8, code: u8, rest: [u8; 4], quoted: Vec<u8>) -> Icmp {
    Icmp {
        ty,
        code,
        rest,
        payload: quoted,
    }
}

/// Destination unreachable, fragmentation needed (3/4) with next-hop MTU `mtu` (RFC 1191).
fn frag_needed(mtu: u16, quoted: Vec<u8>) -> Icmp {
    Icmp::frag_needed(mtu, &quoted)
}

/// An ICMP packet from `src` to `dst` as the director's router hands it over. ICMP errors
/// leave DF clear, as Linux sends them.
fn icmp_packet(src: Ipv4Addr, dst: Ipv4Addr, message: impl Into<L4>) -> Ipv4 {
    let mut ip = Ipv4::new(src, dst, message);
    ip.dont_fragment = false;
    ip.ident = 0x4d2e;
    ip.ttl = 60;
    ip
}

/// An ICMP error arriving from the clients' side.
fn from_client_side(src: Ipv4Addr, dst: Ipv4Addr, message: Icmp) -> Frame {
    Frame::new(DIRECTOR_MAC, ROUTER_MAC, icmp_packet(src, dst, message))
}

/// `error` forwarded one hop by NAT: outer addresses `src` → `dst`, TTL one less, the quote
/// replaced by `quoted`, in a frame from `smac` to `dmac`. Every checksum is the builder's.
fn translated(
    error: &Frame,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    quoted: Vec<u8>,
    dmac: Mac,
    smac: Mac,
) -> Frame {
    let mut out = error.clone().with_macs(dmac, smac);
    let ip = out.ipv4_mut();
    ip.src = src;
    ip.dst = dst;
    ip.ttl -= 1;
    let L4::Icmp(message) = &mut ip.payload else {
        panic!("not ICMP")
    };
    message.payload = quoted;
    out
}

/// [`Counters`] with only the in-direction figures.
fn inbound(conns: u64, packets: &[u64]) -> Counters {
    counters(conns, packets.len() as u64, packets.iter().sum())
}

// ---- steps ------------------------------------------------------------------------------------

/// An error relayed to `real` by DR: only the MACs change.
fn relayed_dr(what: &str, error: &Frame, real: &RealDef) -> Send {
    Send::new(
        what,
        error.bytes(),
        Verdict::TX,
        Output::Exact(via_dr(error, real)),
    )
    .counts(&[Stat::IcmpRelayed, Stat::TxRoute])
}

/// An error relayed to `real` in IP-in-IP; without DF its outer ID is random (masked, with the
/// outer checksum, which is still verified).
fn relayed_tun(what: &str, error: &Frame, real: &RealDef) -> Send {
    let expected = via_tun(error, real);
    let output = if error.ipv4().dont_fragment {
        Output::Exact(expected)
    } else {
        Output::Masked(expected, vec![18..20, 24..26])
    };
    Send::new(what, error.bytes(), Verdict::TX, output).counts(&[Stat::IcmpRelayed, Stat::TxTunnel])
}

/// A NAT client-side error (arriving on ext0) sent on to `real` as `expected`.
fn nat_to_real(what: &str, net: &NatNet, error: &Frame, expected: Frame, real: &RealDef) -> Send {
    let (egress, _) = side(net, real);
    let mut counts = vec![Stat::IcmpRelayed];
    let verdict = leaving(net.ext, egress, &mut counts);
    Send::new(
        what,
        error.bytes(),
        verdict,
        Output::Exact(expected.bytes()),
    )
    .on(net.ext)
    .counts(&counts)
}

/// A NAT real-server-side error (arriving from `real`'s side) sent on to the client as
/// `expected`.
fn nat_to_client(what: &str, net: &NatNet, error: &Frame, expected: Frame, real: &RealDef) -> Send {
    let (ingress, _) = side(net, real);
    let mut counts = vec![Stat::IcmpRelayed];
    let verdict = leaving(ingress, net.ext, &mut counts);
    Send::new(
        what,
        error.bytes(),
        verdict,
        Output::Exact(expected.bytes()),
    )
    .on(ingress)
    .counts(&counts)
}

/// The HTTP world with A as a TUN real server on a 1500-byte path, HTTP's table [A].
fn tun_world() -> Vec<Change> {
    let mut setup = http_world(&[&A]);
    setup.push(edit_real(&A, &HTTP, |e| {
        e.method = method::TUNNEL;
        e.mtu = 1500;
    }));
    setup
}

/// DR and TUN, and what is passed whatever the forwarding method.
pub fn fixtures() -> Vec<Fixture> {
    let mut fixtures = vec![
        {
            let port = 45010;
            let mut error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                frag_needed(MTU, quote(&http_reply(port), 0)),
            );
            error.ipv4_mut().ttl = 1;
            Fixture {
                name: "DR: an error whose TTL runs out at the director is dropped (drop_ttl_expired): no ICMP error about an ICMP error",
                setup: http_world(&[&A]),
                steps: vec![
                    new_flow("SYN", &http(port, SYN), &A, &HTTP, SYN_RECV).into(),
                    Send::drop("frag-needed, TTL 1", error.bytes(), Stat::DropTtlExpired).into(),
                ],
            }
        },
        {
            let port = 45000;
            let syn = http(port, SYN);
            let error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                frag_needed(MTU, quote(&http_reply(port), 0)),
            );
            Fixture {
                name: "DR: frag-needed (MTU 1400) from a router on the client's path, quoting a reply VIP:80 → client, goes to the connection's real server; only the MACs and the TTL change",
                setup: http_world(&[&A]),
                steps: vec![
                    new_flow("SYN", &syn, &A, &HTTP, SYN_RECV).into(),
                    Step::Apply {
                        what: "table becomes [B]",
                        changes: service_with_table(&HTTP, &[&B]),
                    },
                    relayed_dr("frag-needed", &error, &A)
                        .expect([
                            // The error changes nothing about the connection.
                            Expect::Conn {
                                flow: flow_of(&syn),
                                real: A.id,
                                service: HTTP.id,
                                state: SYN_RECV,
                            },
                            Expect::ConnCount(1),
                            // Counted in, as ip_vs_in_icmp does (ip_vs_in_stats).
                            Expect::ServiceStats {
                                id: HTTP.id,
                                counters: inbound(1, &[ip_len(&syn), ip_len(&error)]),
                            },
                            Expect::RealStats {
                                id: A.id,
                                counters: inbound(1, &[ip_len(&syn), ip_len(&error)]),
                            },
                        ])
                        .into(),
                ],
            }
        },
        {
            let port = 45001;
            // 40 bytes beyond RFC 792's 8: the whole TCP header and 28 payload bytes.
            let error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                icmp(
                    DEST_UNREACH,
                    HOST_UNREACH,
                    [0; 4],
                    quote(&http_reply(port), 40),
                ),
            );
            Fixture {
                name: "DR: host unreachable with a long quote (TCP header and payload bytes): every quoted byte reaches the real server",
                setup: http_world(&[&A]),
                steps: vec![
                    new_flow("SYN", &http(port, SYN), &A, &HTTP, SYN_RECV).into(),
                    relayed_dr("host unreachable", &error, &A).into(),
                ],
            }
        },
        {
            let port = 45002;
            let mut reply = http_reply(port);
            reply.options = vec![0x94, 0x04, 0x00, 0x00];
            let mut error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                icmp(TIME_EXCEEDED, 0, [0; 4], quote(&reply, 0)),
            );
            error.ipv4_mut().options = vec![0x01, 0x01, 0x01, 0x00];
            Fixture {
                name: "DR: time exceeded with IP options in the error and in the quote: ports found after them, relayed untouched",
                setup: http_world(&[&A]),
                steps: vec![
                    new_flow("SYN", &http(port, SYN), &A, &HTTP, SYN_RECV).into(),
                    relayed_dr("time exceeded", &error, &A).into(),
                ],
            }
        },
        {
            let query = dns(45003);
            let answer = Ipv4::new(VIP, CLIENT, Udp::new(DNS.port, 45003, b"\x12\x34\x81\x80"));
            let error = from_client_side(
                CLIENT,
                VIP,
                icmp(DEST_UNREACH, PORT_UNREACH, [0; 4], quote(&answer, 100)),
            );
            Fixture {
                name: "DR, UDP: the client's port unreachable about a DNS answer goes to the DNS real server",
                setup: dns_world(),
                steps: vec![
                    new_flow("query", &query, &D, &DNS, UDP).into(),
                    relayed_dr("port unreachable", &error, &D).into(),
                ],
            }
        },
        {
            let port = 45004;
            let mut error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                frag_needed(MTU, quote(&http_reply(port), 0)),
            );
            error.ipv4_mut().dont_fragment = true;
            error.ipv4_mut().tos = 0xc0;
            Fixture {
                name: "TUN: frag-needed quoting a reply goes to the real server in IP-in-IP; outer header exact (DF copied, ID 0, TOS copied, from the NIC's address)",
                setup: tun_world(),
                steps: vec![
                    Send::new(
                        "SYN",
                        http(port, SYN).bytes(),
                        Verdict::TX,
                        Output::Exact(via_tun(&http(port, SYN), &A)),
                    )
                    .counts(&[Stat::ConnNew, Stat::TxTunnel])
                    .into(),
                    relayed_tun("frag-needed", &error, &A).into(),
                ],
            }
        },
        {
            // GUE with its UDP checksum and GRE with its checksum: the error's own flow picks
            // the UDP source port (its addresses, no ports), and the sums cover the error.
            let port = 45040;
            let mut error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                frag_needed(MTU, quote(&http_reply(port), 0)),
            );
            error.ipv4_mut().dont_fragment = true;
            let gue = Encap::Gue {
                port: 6080,
                csum: true,
            };
            let gre = Encap::Gre { csum: true };
            let mut setup = http_world(&[&A]);
            setup.push(edit_real(&A, &HTTP, |e| {
                e.method = method::TUNNEL;
                e.mtu = 1500;
                e.tun_type = lb_common::tunnel::GUE;
                e.tun_port = 6080u16.to_be();
                e.tun_flags = lb_common::tunnel::F_CSUM;
            }));
            let to_gre = edit_real(&A, &HTTP, |e| {
                e.method = method::TUNNEL;
                e.mtu = 1500;
                e.tun_type = lb_common::tunnel::GRE;
                e.tun_flags = lb_common::tunnel::F_CSUM;
            });
            Fixture {
                name: "TUN with GUE, then GRE: frag-needed quoting a reply goes to the real server in the real server's tunnel, checksums over the error",
                setup,
                steps: vec![
                    Send::new(
                        "SYN",
                        http(port, SYN).bytes(),
                        Verdict::TX,
                        Output::Exact(via_tun_as(&http(port, SYN), &A, gue)),
                    )
                    .counts(&[Stat::ConnNew, Stat::TxTunnel])
                    .into(),
                    Send::new(
                        "frag-needed (GUE)",
                        error.bytes(),
                        Verdict::TX,
                        Output::Exact(via_tun_as(&error, &A, gue)),
                    )
                    .counts(&[Stat::IcmpRelayed, Stat::TxTunnel])
                    .into(),
                    Step::Apply {
                        what: "A's tunnel becomes GRE with checksum (-e)",
                        changes: vec![to_gre],
                    },
                    Send::new(
                        "frag-needed (GRE)",
                        error.bytes(),
                        Verdict::TX,
                        Output::Exact(via_tun_as(&error, &A, gre)),
                    )
                    .counts(&[Stat::IcmpRelayed, Stat::TxTunnel])
                    .into(),
                ],
            }
        },
        {
            let port = 45005;
            let error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                frag_needed(OTHER_MTU, quote(&http_reply(port), 20)),
            );
            Fixture {
                name: "TUN: an error without DF is tunnelled with a fresh outer ID and DF clear; MTU 1280 and the quote arrive as sent",
                setup: {
                    let mut setup = tun_world();
                    setup.push(Change::Conn {
                        idle: Duration::ZERO,
                        flow: flow_of(&http(port, ACK)),
                        conn: Conn {
                            real: A.id,
                            service: HTTP.id,
                            vaddr: addr(VIP),
                            vport: HTTP.port.to_be(),
                            state: ESTABLISHED,
                            ..Conn::default()
                        },
                    });
                    setup
                },
                steps: vec![relayed_tun("frag-needed", &error, &A).into()],
            }
        },
        {
            let port = 45006;
            let mut error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                frag_needed(OTHER_MTU, quote(&http_reply(port), 0)),
            );
            error.ipv4_mut().dont_fragment = true;
            Fixture {
                name: "TUN: an error too big for the tunnel (DF set) is dropped (drop_too_big), never answered with frag-needed: no ICMP error about an ICMP error (RFC 1122)",
                setup: {
                    let mut setup = tun_world();
                    // 76 bytes in IP-in-IP: more than this path carries.
                    setup.push(edit_real(&A, &HTTP, |e| {
                        e.method = method::TUNNEL;
                        e.mtu = 70;
                    }));
                    setup.push(Change::Conn {
                        idle: Duration::ZERO,
                        flow: flow_of(&http(port, ACK)),
                        conn: Conn {
                            real: A.id,
                            service: HTTP.id,
                            vaddr: addr(VIP),
                            vport: HTTP.port.to_be(),
                            state: ESTABLISHED,
                            ..Conn::default()
                        },
                    });
                    setup
                },
                steps: vec![Send::drop("frag-needed", error.bytes(), Stat::DropTooBig).into()],
            }
        },
    ];
    fixtures.extend(passed());
    fixtures
}

/// Errors the director does not relay: passed to the kernel byte for byte, counted by reason.
/// Each has a known connection whose reply a misread quote would match.
fn passed() -> Vec<Fixture> {
    let port = 45100;
    let reply = http_reply(port);
    let known = || {
        let mut setup = http_world(&[&A]);
        setup.push(Change::Conn {
            idle: Duration::ZERO,
            flow: flow_of(&http(port, ACK)),
            conn: Conn {
                real: A.id,
                service: HTTP.id,
                vaddr: addr(VIP),
                vport: HTTP.port.to_be(),
                state: ESTABLISHED,
                ..Conn::default()
            },
        });
        setup
    };
    let error_quoting =
        |quoted: Vec<u8>| from_client_side(CLIENT_PATH_ROUTER, VIP, frag_needed(MTU, quoted));
    let untouched = |what: &str, frame: Frame, reason: Stat| -> Step {
        Send::pass(what, frame.bytes(), reason)
            .expect([Expect::ConnCount(1)])
            .into()
    };
    let icmp_to_vip = |ip: Ipv4| Frame::new(DIRECTOR_MAC, ROUTER_MAC, ip);
    vec![
        Fixture {
            name: "errors about connections the director does not know are passed (pass_not_service)",
            setup: known(),
            steps: vec![
                untouched(
                    "another client port",
                    error_quoting(quote(&http_reply(port + 1), 0)),
                    Stat::PassNotService,
                ),
                untouched(
                    "another client, the same ports",
                    error_quoting(quote(&segment(VIP, HTTP.port, CLIENT_2, port), 0)),
                    Stat::PassNotService,
                ),
                untouched(
                    "another virtual port",
                    error_quoting(quote(&segment(VIP, 443, CLIENT, port), 0)),
                    Stat::PassNotService,
                ),
                untouched(
                    "UDP, same addresses and ports",
                    error_quoting(quote(
                        &Ipv4::new(VIP, CLIENT, Udp::new(HTTP.port, port, b"12345678")),
                        0,
                    )),
                    Stat::PassNotService,
                ),
                untouched(
                    "quoting the client's own packet (client → VIP:80), not a reply",
                    error_quoting(quote(&segment(CLIENT, port, VIP, HTTP.port), 0)),
                    Stat::PassNotService,
                ),
            ],
        },
        Fixture {
            name: "an error whose connection's real server was deleted is passed (pass_not_service)",
            setup: {
                let mut setup = known();
                setup.push(Change::Real {
                    id: A.id,
                    real: Default::default(),
                });
                setup
            },
            steps: vec![untouched(
                "frag-needed",
                error_quoting(quote(&reply, 0)),
                Stat::PassNotService,
            )],
        },
        Fixture {
            name: "ICMP that is not an error is never relayed, even with a known reply's bytes in it: echo request, echo reply, redirect (pass_not_service)",
            setup: known(),
            steps: vec![
                untouched(
                    "echo request",
                    icmp_to_vip(icmp_packet(
                        CLIENT,
                        VIP,
                        Icmp::echo_request(0x77, 1, &quote(&reply, 0)),
                    )),
                    Stat::PassNotService,
                ),
                untouched(
                    "echo reply",
                    icmp_to_vip(icmp_packet(
                        CLIENT,
                        VIP,
                        icmp(ECHO_REPLY, 0, [0, 0x77, 0, 1], quote(&reply, 0)),
                    )),
                    Stat::PassNotService,
                ),
                untouched(
                    "redirect",
                    icmp_to_vip(icmp_packet(
                        CLIENT_PATH_ROUTER,
                        VIP,
                        icmp(REDIRECT, 1, [192, 0, 2, 1], quote(&reply, 0)),
                    )),
                    Stat::PassNotService,
                ),
                untouched(
                    "an error about an echo request (not TCP/UDP)",
                    error_quoting(quote(
                        &Ipv4::new(VIP, CLIENT, Icmp::echo_request(0x77, 1, &[0; 8])),
                        0,
                    )),
                    Stat::PassNotService,
                ),
            ],
        },
        Fixture {
            name: "malformed and truncated errors are passed untouched (pass_malformed)",
            setup: known(),
            steps: vec![
                untouched(
                    "quote ends after the ports (4 of RFC 792's 8 bytes)",
                    error_quoting(quote(&reply, 0)[..24].to_vec()),
                    Stat::PassMalformed,
                ),
                untouched(
                    "quote ends inside the quoted IP header",
                    error_quoting(quote(&reply, 0)[..12].to_vec()),
                    Stat::PassMalformed,
                ),
                untouched(
                    "no quote at all",
                    error_quoting(Vec::new()),
                    Stat::PassMalformed,
                ),
                untouched(
                    "quoted header length 16 bytes (IHL 4)",
                    error_quoting({
                        let mut bad = reply.clone();
                        bad.ihl = Some(4);
                        quote(&bad, 0)
                    }),
                    Stat::PassMalformed,
                ),
                untouched(
                    "quoted version 6",
                    error_quoting({
                        let mut bad = reply.clone();
                        bad.version = 6;
                        quote(&bad, 0)
                    }),
                    Stat::PassMalformed,
                ),
                untouched(
                    "quoted IHL 15 claims 40 bytes of options the quote does not hold",
                    error_quoting({
                        let mut bad = reply.clone();
                        bad.ihl = Some(15);
                        quote(&bad, 0)
                    }),
                    Stat::PassMalformed,
                ),
                untouched(
                    "ICMP message of one byte",
                    icmp_to_vip(icmp_packet(
                        CLIENT_PATH_ROUTER,
                        VIP,
                        L4::Raw {
                            proto: 1,
                            bytes: vec![DEST_UNREACH],
                        },
                    )),
                    Stat::PassMalformed,
                ),
                untouched(
                    "IP total length claims more than the frame holds",
                    {
                        let mut frame = error_quoting(quote(&reply, 0));
                        let len = frame.ipv4().bytes().len() as u16;
                        frame.ipv4_mut().total_len = Some(len + 8);
                        frame
                    },
                    Stat::PassMalformed,
                ),
            ],
        },
        {
            // A later fragment of a reply: its first bytes are payload, made to look like the
            // known connection's ports.
            let mut bytes = vec![0u8; 64];
            bytes[..2].copy_from_slice(&HTTP.port.to_be_bytes());
            bytes[2..4].copy_from_slice(&port.to_be_bytes());
            let fragment = Ipv4::new(VIP, CLIENT, L4::Raw { proto: 6, bytes }).fragment(false, 185);
            Fixture {
                name: "an error quoting a later fragment (no ports in it) is passed (pass_fragment), as IPVS does",
                setup: known(),
                steps: vec![untouched(
                    "frag-needed quoting offset 1480",
                    error_quoting(quote(&fragment, 0)),
                    Stat::PassFragment,
                )],
            }
        },
    ]
}

/// NAT: errors translated both ways. Run in [`NatNet`].
pub fn nat_fixtures(net: &NatNet) -> Vec<Fixture> {
    vec![
        {
            let port = 46000;
            let syn = http(port, SYN);
            // The reply as the director sent it on to the client (one hop less).
            let mut reply = http_reply(port);
            reply.ttl = 63;
            let error =
                from_client_side(CLIENT_PATH_ROUTER, VIP, frag_needed(MTU, quote(&reply, 0)));
            let at_real = from(&reply, A.addr, HTTP_RPORT);
            let expected = translated(
                &error,
                CLIENT_PATH_ROUTER,
                A.addr,
                quote(&at_real, 0),
                A.mac,
                OTHER_NIC_MAC,
            );
            let totals = inbound(1, &[ip_len(&syn), ip_len(&error)]);
            Fixture {
                name: "NAT, client side: frag-needed (MTU 1400) quoting VIP:80 → client reaches A, quoting A:8080 → client; one hop less; outer, quoted and ICMP checksums recomputed",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real("SYN", net, &syn, &A, &HTTP, HTTP_RPORT, true, SYN_RECV).into(),
                    nat_to_real("frag-needed", net, &error, expected, &A)
                        .expect([
                            Expect::ConnEntry {
                                flow: flow_of(&syn),
                                conn: client_entry(&A, &HTTP, SYN_RECV),
                            },
                            Expect::ConnCount(2),
                            Expect::ServiceStats {
                                id: HTTP.id,
                                counters: totals,
                            },
                            Expect::RealStats {
                                id: A.id,
                                counters: totals,
                            },
                        ])
                        .into(),
                ],
            }
        },
        {
            let port = 46001;
            let mut reply = http_reply(port);
            reply.ttl = 63;
            // 48 bytes beyond the 8: the TCP header whole, and 28 payload bytes.
            let error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                icmp(DEST_UNREACH, HOST_UNREACH, [0; 4], quote(&reply, 48)),
            );
            let at_real = tcp_checksum_of(from(&reply, A.addr, HTTP_RPORT), &reply);
            let expected = translated(
                &error,
                CLIENT_PATH_ROUTER,
                A.addr,
                quote(&at_real, 48),
                A.mac,
                OTHER_NIC_MAC,
            );
            Fixture {
                name: "NAT, client side, long quote: addresses and port rewritten, payload bytes and the quoted TCP checksum left as sent (as IPVS)",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real(
                        "SYN",
                        net,
                        &http(port, SYN),
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        true,
                        SYN_RECV,
                    )
                    .into(),
                    nat_to_real("host unreachable", net, &error, expected, &A).into(),
                ],
            }
        },
        {
            let port = 46002;
            let mut reply = http_reply(port);
            reply.ttl = 63;
            reply.options = vec![0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00];
            let mut error = from_client_side(
                CLIENT_PATH_ROUTER,
                VIP,
                icmp(TIME_EXCEEDED, 0, [0; 4], quote(&reply, 0)),
            );
            error.ipv4_mut().options = vec![0x01, 0x01, 0x01, 0x00];
            let expected = translated(
                &error,
                CLIENT_PATH_ROUTER,
                A.addr,
                quote(&from(&reply, A.addr, HTTP_RPORT), 0),
                A.mac,
                OTHER_NIC_MAC,
            );
            Fixture {
                name: "NAT, client side, IP options in the error and in the quote: the quoted port is found after them",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real(
                        "SYN",
                        net,
                        &http(port, SYN),
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        true,
                        SYN_RECV,
                    )
                    .into(),
                    nat_to_real("time exceeded", net, &error, expected, &A).into(),
                ],
            }
        },
        {
            let query = dns(46003);
            let mut datagram = Udp::new(DNS.port, 46003, b"\x12\x34\x81\x80\x00\x01");
            datagram.checksum = Some(0);
            let mut answer = Ipv4::new(VIP, CLIENT, datagram);
            answer.ttl = 63;
            let error = from_client_side(
                CLIENT,
                VIP,
                icmp(DEST_UNREACH, PORT_UNREACH, [0; 4], quote(&answer, 100)),
            );
            let expected = translated(
                &error,
                CLIENT,
                D.addr,
                quote(&from(&answer, D.addr, DNS_RPORT), 100),
                D.mac,
                OTHER_NIC_MAC,
            );
            Fixture {
                name: "NAT, client side, UDP without a checksum (0): the quoted checksum stays 0",
                setup: dns_nat_world(net),
                steps: vec![
                    to_real("query", net, &query, &D, &DNS, DNS_RPORT, true, UDP).into(),
                    nat_to_real("port unreachable", net, &error, expected, &D).into(),
                ],
            }
        },
        {
            let query = dns(46004);
            let mut answer = Ipv4::new(
                VIP,
                CLIENT,
                Udp::new(DNS.port, 46004, b"\x12\x34\x81\x80\x00\x01\x00\x01"),
            );
            answer.ttl = 63;
            let error = from_client_side(
                CLIENT,
                VIP,
                icmp(DEST_UNREACH, PORT_UNREACH, [0; 4], quote(&answer, 100)),
            );
            // The whole datagram is quoted, so its checksum is computed in full for D's side.
            let expected = translated(
                &error,
                CLIENT,
                D.addr,
                quote(&from(&answer, D.addr, DNS_RPORT), 100),
                D.mac,
                OTHER_NIC_MAC,
            );
            Fixture {
                name: "NAT, client side, UDP with a checksum: the quoted checksum is right for D:5353 → client",
                setup: dns_nat_world(net),
                steps: vec![
                    to_real("query", net, &query, &D, &DNS, DNS_RPORT, true, UDP).into(),
                    nat_to_real("port unreachable", net, &error, expected, &D).into(),
                ],
            }
        },
        {
            // Crafted so that the quoted datagram's checksum computes to 0 on D's side, where
            // UDP must send it as 0xffff (0 means "none").
            let at_real = zeroing_checksum(Ipv4::new(
                D.addr,
                CLIENT,
                Udp::new(DNS_RPORT, 46005, b"\x12\x34\x81\x80\x00\x00"),
            ));
            let mut answer = from(&at_real, VIP, DNS.port);
            if let L4::Udp(u) = &mut answer.payload {
                u.checksum = None;
            }
            answer.ttl = 63;
            let mut at_real = at_real;
            at_real.ttl = 63;
            let quoted = quote(&at_real, 100);
            let udp_check = at_real.header_len() + 6;
            assert_eq!(
                quoted[udp_check..udp_check + 2],
                [0xff, 0xff],
                "crafting went wrong"
            );
            let error = from_client_side(
                CLIENT,
                VIP,
                icmp(DEST_UNREACH, PORT_UNREACH, [0; 4], quote(&answer, 100)),
            );
            let expected = translated(&error, CLIENT, D.addr, quoted, D.mac, OTHER_NIC_MAC);
            Fixture {
                name: "NAT, client side, UDP whose quoted checksum computes to 0 after translation: 0xffff, not 0 (\"none\")",
                setup: dns_nat_world(net),
                steps: vec![
                    to_real("query", net, &dns(46005), &D, &DNS, DNS_RPORT, true, UDP).into(),
                    nat_to_real("port unreachable", net, &error, expected, &D).into(),
                ],
            }
        },
        {
            let port = 46006;
            let query = dns(port);
            // The query as D received it, and D's port unreachable about it.
            let mut at_real = to(query.ipv4(), D.addr, DNS_RPORT);
            at_real.ttl = 63;
            let error = Frame::new(
                OTHER_NIC_MAC,
                D.mac,
                icmp_packet(
                    D.addr,
                    CLIENT,
                    icmp(DEST_UNREACH, PORT_UNREACH, [0; 4], quote(&at_real, 100)),
                ),
            );
            let mut as_sent = query.ipv4().clone();
            as_sent.ttl = 63;
            let expected = translated(
                &error,
                VIP,
                CLIENT,
                quote(&as_sent, 100),
                ROUTER_MAC,
                DIRECTOR_MAC,
            );
            let totals = Counters {
                conns: 1,
                in_pkts: 1,
                in_bytes: ip_len(&query),
                out_pkts: 1,
                out_bytes: ip_len(&error),
            };
            Fixture {
                name: "NAT, real-server side: D's port unreachable about client → D:5353 reaches the client from the VIP, quoting client → VIP:53 (UDP checksum right); counted out",
                setup: dns_nat_world(net),
                steps: vec![
                    to_real("query", net, &query, &D, &DNS, DNS_RPORT, true, UDP).into(),
                    nat_to_client("port unreachable", net, &error, expected, &D)
                        .expect([
                            Expect::ConnEntry {
                                flow: flow_of(&query),
                                conn: client_entry(&D, &DNS, UDP),
                            },
                            Expect::ServiceStats {
                                id: DNS.id,
                                counters: totals,
                            },
                            Expect::RealStats {
                                id: D.id,
                                counters: totals,
                            },
                        ])
                        .into(),
                ],
            }
        },
        {
            let port = 46007;
            let syn = http(port, SYN);
            // A full-size segment to A:8080, too big for a link behind a router on A's side.
            let mut at_real = segment(CLIENT, port, A.addr, HTTP_RPORT);
            at_real.ttl = 63;
            let error = Frame::new(
                OTHER_NIC_MAC,
                INSIDE_ROUTER_MAC,
                icmp_packet(
                    INSIDE_ROUTER,
                    CLIENT,
                    frag_needed(OTHER_MTU, quote(&at_real, 0)),
                ),
            );
            let as_sent = to(&at_real, VIP, HTTP.port);
            let expected = translated(
                &error,
                VIP,
                CLIENT,
                quote(&as_sent, 0),
                ROUTER_MAC,
                DIRECTOR_MAC,
            );
            Fixture {
                name: "NAT, real-server side: frag-needed (MTU 1280) from a router on A's side reaches the client from the VIP (as IPVS), quoting client → VIP:80",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real("SYN", net, &syn, &A, &HTTP, HTTP_RPORT, true, SYN_RECV).into(),
                    nat_to_client("frag-needed", net, &error, expected, &A).into(),
                ],
            }
        },
        {
            let port = 46008;
            let mut reply = http_reply(port);
            reply.ttl = 63;
            let mut error =
                from_client_side(CLIENT_PATH_ROUTER, VIP, frag_needed(MTU, quote(&reply, 0)));
            error.ipv4_mut().ttl = 1;
            Fixture {
                name: "NAT: an error whose TTL runs out at the director is dropped (drop_ttl_expired): no ICMP error about an ICMP error",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real(
                        "SYN",
                        net,
                        &http(port, SYN),
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        true,
                        SYN_RECV,
                    )
                    .into(),
                    Send::drop("frag-needed, TTL 1", error.bytes(), Stat::DropTtlExpired)
                        .on(net.ext)
                        .into(),
                ],
            }
        },
        {
            let mut at_real = segment(CLIENT, 46009, A.addr, HTTP_RPORT);
            at_real.ttl = 63;
            let error = Frame::new(
                OTHER_NIC_MAC,
                INSIDE_ROUTER_MAC,
                icmp_packet(
                    INSIDE_ROUTER,
                    CLIENT,
                    frag_needed(OTHER_MTU, quote(&at_real, 0)),
                ),
            );
            Fixture {
                name: "NAT, real-server side: an error about a flow the director does not know is passed (pass_not_service)",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    Send::pass("frag-needed", error.bytes(), Stat::PassNotService)
                        .on(net.int)
                        .into(),
                ],
            }
        },
        {
            let port = 46010;
            let syn = http(port, SYN);
            let mut reply = http_reply(port);
            reply.ttl = 63;
            let error =
                from_client_side(CLIENT_PATH_ROUTER, VIP, frag_needed(MTU, quote(&reply, 0)));
            Fixture {
                name: "NAT: an error for a connection to F (no neighbour entry) is dropped (drop_fib)",
                setup: nat_world(net, &[&F]),
                steps: vec![
                    Send::drop("SYN", syn.bytes(), Stat::DropFib)
                        .on(net.ext)
                        .counts(&[Stat::ConnNew])
                        .into(),
                    Send::drop("frag-needed", error.bytes(), Stat::DropFib)
                        .on(net.ext)
                        .into(),
                ],
            }
        },
        port_zero(net),
    ]
}

/// A NAT port-0 service (`-t VIP:0`, real server on port 0): a connection uses the port the
/// client asked for on both sides, and so do errors about it. The connection is the one the
/// data path makes for a SYN to :8443 (client and reply entries).
fn port_zero(net: &NatNet) -> Fixture {
    let cport = 46100;
    let vport = 8443;
    // The service as this connection sees it: its virtual port is the one the client used.
    let conn_view = ServiceDef {
        port: vport,
        ..ALL_PORTS
    };
    let syn = tcp(CLIENT, ALL_PORTS_VIP, cport, vport, SYN);
    let mut setup = net.nics();
    setup.push(masq(&A, &ALL_PORTS, 0));
    setup.extend(service_with_table(&ALL_PORTS, &[&A]));
    setup.extend([
        Change::Conn {
            idle: Duration::ZERO,
            flow: flow_of(&syn),
            conn: client_entry(&A, &conn_view, ESTABLISHED),
        },
        Change::Conn {
            idle: Duration::ZERO,
            flow: flow_of(&reply(net, &A, Tcp::new(vport, cport, ACK))),
            conn: reply_entry(&A, &conn_view, ESTABLISHED),
        },
    ]);

    let mut to_client_seg = segment(ALL_PORTS_VIP, vport, CLIENT, cport);
    to_client_seg.ttl = 63;
    let client_error = from_client_side(
        CLIENT_PATH_ROUTER,
        ALL_PORTS_VIP,
        frag_needed(MTU, quote(&to_client_seg, 0)),
    );
    let client_expected = translated(
        &client_error,
        CLIENT_PATH_ROUTER,
        A.addr,
        quote(&from(&to_client_seg, A.addr, vport), 0),
        A.mac,
        OTHER_NIC_MAC,
    );

    let mut to_real_seg = segment(CLIENT, cport, A.addr, vport);
    to_real_seg.ttl = 63;
    let real_error = Frame::new(
        OTHER_NIC_MAC,
        INSIDE_ROUTER_MAC,
        icmp_packet(
            INSIDE_ROUTER,
            CLIENT,
            frag_needed(OTHER_MTU, quote(&to_real_seg, 0)),
        ),
    );
    let real_expected = translated(
        &real_error,
        ALL_PORTS_VIP,
        CLIENT,
        quote(&to(&to_real_seg, ALL_PORTS_VIP, vport), 0),
        ROUTER_MAC,
        DIRECTOR_MAC,
    );
    Fixture {
        name: "NAT port-0 service (-t VIP:0, real on port 0): errors about a connection to :8443 keep port 8443 both ways",
        setup,
        steps: vec![
            nat_to_real(
                "client side: quoting VIP:8443 → client",
                net,
                &client_error,
                client_expected,
                &A,
            )
            .into(),
            nat_to_client(
                "real-server side: quoting client → A:8443",
                net,
                &real_error,
                real_expected,
                &A,
            )
            .into(),
        ],
    }
}
