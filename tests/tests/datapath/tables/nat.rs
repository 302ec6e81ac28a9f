//! LVS-NAT forwarding (`-m`): the client's packet is readdressed to the real server (address and,
//! with port mapping, port: VIP:80 → RIP:8080) and the real server's reply back to the virtual
//! service, IP and TCP/UDP checksums fixed (a UDP checksum of 0 stays 0). The first packet of a
//! flow makes two connection entries: the client's, and the reply's keyed by the reply's own
//! 5-tuple. TCP state follows IPVS's input and output tables; replies count as out_pkts.
//!
//! Next hops are the kernel's FIB answer for the ingress interface, so these fixtures run in
//! [`NatNet`], a network namespace with real interfaces: client packets arrive on `ext0`, replies
//! of the inside real servers (A–D, F) on `int0` and go out of `ext0` (XDP_REDIRECT), those of
//! the one-arm real server E arrive and leave on `ext0` (XDP_TX).

use std::time::Duration;

use lb_common::{
    CONN_F_REPLY, Conn, Counters, FlowKey, REAL_F_IN_USE, Settings, Stat, method,
    tcp_state::{CLOSE_WAIT, ESTABLISHED, FIN_WAIT, SYN_RECV, TIME_WAIT, UDP},
};

use crate::{
    checksum,
    fixture::{Expect, Fixture, Output, Send, Step},
    harness::{Change, Verdict},
    packet::{ACK, FIN, Frame, Ipv4, L4, PSH, SYN, Tcp, Udp},
    wire::Mac,
    world::{
        A, ALL_PORTS, ALL_PORTS_VIP, B, CLIENT, D, DIRECTOR_MAC, DNS, E, F, HTTP, NatNet,
        OTHER_NIC_MAC, ROUTER_MAC, RealDef, ServiceDef, VIP, addr, dns, edit_real, flow_of, http,
        ip_len, service_with_table, tcp, with_destination, with_source,
    },
};

/// The real servers' port for HTTP (port mapping VIP:80 → RIP:8080).
pub const HTTP_RPORT: u16 = 8080;
/// The real server's port for DNS (VIP:53 → RIP:5353).
pub const DNS_RPORT: u16 = 5353;

/// The real server's entry turned into a NAT one listening on `port`.
pub fn masq(real: &RealDef, svc: &ServiceDef, port: u16) -> Change {
    edit_real(real, svc, |r| {
        r.method = method::MASQ;
        r.port = port.to_be();
        if real.id == F.id {
            // lbd could not resolve it either; NAT does not look at the entry's MAC anyway.
            r.flags = REAL_F_IN_USE;
        }
    })
}

/// HTTP on the VIP with NAT real servers A, B (inside), E (one-arm) and F (no neighbour), all
/// on port 8080; its table is `table`.
pub fn nat_world(net: &NatNet, table: &[&RealDef]) -> Vec<Change> {
    let mut setup = net.nics();
    setup.extend([&A, &B, &E, &F].map(|r| masq(r, &HTTP, HTTP_RPORT)));
    setup.extend(service_with_table(&HTTP, table));
    setup
}

/// DNS on the VIP with D as its NAT real server on port 5353.
pub fn dns_nat_world(net: &NatNet) -> Vec<Change> {
    let mut setup = net.nics();
    setup.push(masq(&D, &DNS, DNS_RPORT));
    setup.extend(service_with_table(&DNS, &[&D]));
    setup
}

/// The director's interface towards `real`, and that interface's MAC.
pub fn side(net: &NatNet, real: &RealDef) -> (u32, Mac) {
    if real.id == E.id {
        (net.ext, DIRECTOR_MAC)
    } else {
        (net.int, OTHER_NIC_MAC)
    }
}

/// The client-direction connection entry of a flow of `svc` on `real`.
pub fn client_entry(real: &RealDef, svc: &ServiceDef, state: u8) -> Conn {
    Conn {
        real: real.id,
        service: svc.id,
        vaddr: addr(svc.vip),
        vport: svc.port.to_be(),
        state,
        ..Conn::default()
    }
}

/// The reply-direction entry: the same, flagged, with the state the connection started in.
pub fn reply_entry(real: &RealDef, svc: &ServiceDef, state: u8) -> Conn {
    Conn {
        flags: CONN_F_REPLY,
        ..client_entry(real, svc, state)
    }
}

/// The verdict and counters of a frame leaving through `egress` when it came in on `ingress`.
pub fn leaving(ingress: u32, egress: u32, counts: &mut Vec<Stat>) -> Verdict {
    if ingress == egress {
        Verdict::TX
    } else {
        counts.push(Stat::Redirect);
        Verdict::REDIRECT
    }
}

/// A client's packet (arriving on ext0) readdressed to `real` on `rport` and sent to it; the
/// client entry of its flow afterwards in `state`.
#[expect(clippy::too_many_arguments, reason = "one step, spelled out")]
pub fn to_real(
    what: &str,
    net: &NatNet,
    frame: &Frame,
    real: &RealDef,
    svc: &ServiceDef,
    rport: u16,
    new: bool,
    state: u8,
) -> Send {
    let (egress, nic_mac) = side(net, real);
    let mut out = with_destination(frame, real.addr, rport).with_macs(real.mac, nic_mac);
    // Forwarded, as the kernel would: one hop less.
    out.ipv4_mut().ttl -= 1;
    let mut counts = vec![if new { Stat::ConnNew } else { Stat::ConnHit }, Stat::TxNat];
    let verdict = leaving(net.ext, egress, &mut counts);
    Send::new(what, frame.bytes(), verdict, Output::Exact(out.bytes()))
        .on(net.ext)
        .counts(&counts)
        .expect([Expect::ConnEntry {
            flow: flow_of(frame),
            conn: client_entry(real, svc, state),
        }])
}

/// A reply of `real`, as it sends it to its gateway (the director's NIC on its side).
pub fn reply(net: &NatNet, real: &RealDef, segment: impl Into<L4>) -> Frame {
    let (_, nic_mac) = side(net, real);
    Frame::new(nic_mac, real.mac, Ipv4::new(real.addr, CLIENT, segment))
}

/// `reply` readdressed back to the virtual service and sent to the client through the router;
/// the client entry `client_flow` afterwards in `state`.
fn to_client(
    what: &str,
    net: &NatNet,
    reply: &Frame,
    real: &RealDef,
    svc: &ServiceDef,
    client_flow: FlowKey,
    state: u8,
) -> Send {
    let (ingress, _) = side(net, real);
    let mut out = with_source(reply, svc.vip, svc.port).with_macs(ROUTER_MAC, DIRECTOR_MAC);
    out.ipv4_mut().ttl -= 1;
    let mut counts = vec![Stat::ConnHit, Stat::TxNatReply];
    let verdict = leaving(ingress, net.ext, &mut counts);
    Send::new(what, reply.bytes(), verdict, Output::Exact(out.bytes()))
        .on(ingress)
        .counts(&counts)
        .expect([Expect::ConnEntry {
            flow: client_flow,
            conn: client_entry(real, svc, state),
        }])
}

/// A TCP segment with `len` bytes of payload.
fn tcp_data(sport: u16, dport: u16, flags: u8, len: usize) -> Tcp {
    Tcp::new(sport, dport, flags).payload(&(0..len).map(|i| i as u8).collect::<Vec<_>>())
}

/// A client segment of the flow from `sport` with `len` bytes of payload.
fn client_data(sport: u16, flags: u8, len: usize) -> Frame {
    let mut frame = http(sport, flags);
    frame.ipv4_mut().payload = tcp_data(sport, HTTP.port, flags, len).into();
    frame
}

/// `ip` with the last two bytes of its TCP/UDP payload chosen so that its TCP/UDP checksum
/// computes to 0 (which UDP sends as 0xffff, RFC 768). Those two bytes must be zero on entry.
pub fn zeroing_checksum(mut ip: Ipv4) -> Ipv4 {
    let header_len = ip.header_len();
    let (payload, check) = match &mut ip.payload {
        L4::Tcp(t) => (&mut t.payload, &mut t.checksum),
        L4::Udp(u) => (&mut u.payload, &mut u.checksum),
        other => panic!("not TCP/UDP: {other:?}"),
    };
    let end = payload.len();
    assert_eq!(payload[end - 2..], [0, 0]);
    *check = Some(0);
    let bytes = ip.bytes();
    let l4 = &bytes[header_len..];
    let pseudo = checksum::pseudo_v4(ip.src, ip.dst, ip.payload.proto(), l4.len() as u16);
    let word = !checksum::fold(checksum::sum(pseudo, l4));
    let (payload, check) = match &mut ip.payload {
        L4::Tcp(t) => (&mut t.payload, &mut t.checksum),
        L4::Udp(u) => (&mut u.payload, &mut u.checksum),
        _ => unreachable!(),
    };
    payload[end - 2..].copy_from_slice(&word.to_be_bytes());
    *check = None;
    ip
}

/// `len` bytes of `fill` ending in two zero bytes (for [`zeroing_checksum`] to fill in).
fn zero_tailed(fill: u8, len: usize) -> Vec<u8> {
    let mut payload = vec![fill; len];
    payload[len - 2..].fill(0);
    payload
}

/// The TCP/UDP checksum field of an IPv4 frame.
fn l4_checksum(frame: &[u8]) -> u16 {
    let ip = &frame[14..];
    let at = usize::from(ip[0] & 0x0f) * 4 + if ip[9] == 6 { 16 } else { 6 };
    u16::from_be_bytes([ip[at], ip[at + 1]])
}

pub fn fixtures(net: &NatNet) -> Vec<Fixture> {
    vec![
        {
            let mut syn = http(43050, SYN);
            syn.ipv4_mut().ttl = 1;
            let ok = http(43051, SYN);
            let mut answer = reply(net, &A, Tcp::new(HTTP_RPORT, 43051, SYN | ACK));
            answer.ipv4_mut().ttl = 1;
            Fixture {
                name: "TTL 1: a client's packet is answered with ICMP time exceeded from the VIP (IPVS's decrement_ttl); a reply with TTL 1 is left to the kernel's forwarding, which answers it (pass_ttl_expired)",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    Send::new(
                        "SYN, TTL 1",
                        syn.bytes(),
                        Verdict::TX,
                        Output::Exact(crate::world::time_exceeded(&syn)),
                    )
                    .on(net.ext)
                    .counts(&[Stat::ConnNew, Stat::IcmpTimeExceeded])
                    .into(),
                    to_real("SYN", net, &ok, &A, &HTTP, HTTP_RPORT, true, SYN_RECV).into(),
                    Send::pass("SYN-ACK, TTL 1", answer.bytes(), Stat::PassTtlExpired)
                        .on(net.int)
                        .counts(&[Stat::ConnHit])
                        .into(),
                ],
            }
        },
        {
            let syn = http(43000, SYN);
            let answer = reply(net, &A, Tcp::new(HTTP_RPORT, 43000, SYN | ACK));
            let bytes = ip_len(&syn);
            let in_out = Counters {
                conns: 1,
                in_pkts: 1,
                in_bytes: bytes,
                ..Counters::default()
            };
            Fixture {
                name: "SYN to VIP:80 goes to A:8080 behind the inside NIC: readdressed, XDP_REDIRECT, client and reply entries",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real("SYN", net, &syn, &A, &HTTP, HTTP_RPORT, true, SYN_RECV)
                        .expect([
                            Expect::ConnEntry {
                                flow: flow_of(&answer),
                                conn: reply_entry(&A, &HTTP, SYN_RECV),
                            },
                            Expect::ConnCount(2),
                            Expect::ServiceStats {
                                id: HTTP.id,
                                counters: in_out,
                            },
                            Expect::RealStats {
                                id: A.id,
                                counters: in_out,
                            },
                        ])
                        .into(),
                ],
            }
        },
        {
            let port = 43001;
            let flow = flow_of(&http(port, SYN));
            let c_syn = http(port, SYN);
            let r_synack = reply(net, &A, Tcp::new(HTTP_RPORT, port, SYN | ACK));
            let c_ack = http(port, ACK);
            let c_data = client_data(port, PSH | ACK, 333);
            let r_data = reply(net, &A, tcp_data(HTTP_RPORT, port, PSH | ACK, 1001));
            let r_fin = reply(net, &A, Tcp::new(HTTP_RPORT, port, FIN | ACK));
            let c_fin = http(port, FIN | ACK);
            let r_ack = reply(net, &A, Tcp::new(HTTP_RPORT, port, ACK));
            let inbound = [&c_syn, &c_ack, &c_data, &c_fin];
            let outbound = [&r_synack, &r_data, &r_fin, &r_ack];
            let totals = Counters {
                conns: 1,
                in_pkts: 4,
                out_pkts: 4,
                in_bytes: inbound.iter().map(|f| ip_len(f)).sum(),
                out_bytes: outbound.iter().map(|f| ip_len(f)).sum(),
            };
            Fixture {
                name: "a NAT connection: handshake, odd-length data both ways, close; IPVS input/output states; in and out counters",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real("SYN", net, &c_syn, &A, &HTTP, HTTP_RPORT, true, SYN_RECV).into(),
                    to_client("SYN-ACK", net, &r_synack, &A, &HTTP, flow, SYN_RECV).into(),
                    to_real(
                        "ACK",
                        net,
                        &c_ack,
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        false,
                        ESTABLISHED,
                    )
                    .promotes()
                    .into(),
                    to_real(
                        "333-byte request",
                        net,
                        &c_data,
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        false,
                        ESTABLISHED,
                    )
                    .into(),
                    to_client(
                        "1001-byte response",
                        net,
                        &r_data,
                        &A,
                        &HTTP,
                        flow,
                        ESTABLISHED,
                    )
                    .into(),
                    to_client("server FIN", net, &r_fin, &A, &HTTP, flow, FIN_WAIT).into(),
                    to_real(
                        "client FIN",
                        net,
                        &c_fin,
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        false,
                        TIME_WAIT,
                    )
                    .into(),
                    to_client("last ACK", net, &r_ack, &A, &HTTP, flow, TIME_WAIT).into(),
                    Step::Expect(vec![
                        Expect::ConnCount(2),
                        Expect::ServiceStats {
                            id: HTTP.id,
                            counters: totals,
                        },
                        Expect::RealStats {
                            id: A.id,
                            counters: totals,
                        },
                    ]),
                ],
            }
        },
        {
            let query = dns(43002);
            let answer = reply(
                net,
                &D,
                Udp::new(
                    DNS_RPORT,
                    43002,
                    b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00",
                ),
            );
            Fixture {
                name: "UDP: query to VIP:53 goes to D:5353, the answer comes back from VIP:53",
                setup: dns_nat_world(net),
                steps: vec![
                    to_real("query", net, &query, &D, &DNS, DNS_RPORT, true, UDP)
                        .expect([Expect::ConnEntry {
                            flow: flow_of(&answer),
                            conn: reply_entry(&D, &DNS, UDP),
                        }])
                        .into(),
                    to_client("answer", net, &answer, &D, &DNS, flow_of(&query), UDP)
                        .promotes()
                        .into(),
                ],
            }
        },
        {
            let mut query = dns(43003);
            let L4::Udp(udp) = &mut query.ipv4_mut().payload else {
                unreachable!()
            };
            udp.checksum = Some(0);
            let mut datagram = Udp::new(DNS_RPORT, 43003, b"\x12\x34\x81\x80");
            datagram.checksum = Some(0);
            let answer = reply(net, &D, datagram);
            Fixture {
                name: "UDP without a checksum (0) keeps none, both ways",
                setup: dns_nat_world(net),
                steps: vec![
                    to_real("query", net, &query, &D, &DNS, DNS_RPORT, true, UDP).into(),
                    to_client("answer", net, &answer, &D, &DNS, flow_of(&query), UDP)
                        .promotes()
                        .into(),
                ],
            }
        },
        {
            // Crafted so that the readdressed datagram's checksum computes to 0.
            let payload = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00";
            let after = zeroing_checksum(Ipv4::new(
                CLIENT,
                D.addr,
                Udp::new(43004, DNS_RPORT, payload),
            ));
            let query = Frame::new(
                DIRECTOR_MAC,
                ROUTER_MAC,
                Ipv4 {
                    dst: VIP,
                    payload: match after.payload {
                        L4::Udp(u) => Udp {
                            dport: DNS.port,
                            ..u
                        }
                        .into(),
                        _ => unreachable!(),
                    },
                    ..after
                },
            );
            let readdressed = with_destination(&query, D.addr, DNS_RPORT).bytes();
            assert_eq!(l4_checksum(&readdressed), 0xffff, "crafting went wrong");
            Fixture {
                name: "UDP whose checksum computes to 0 after NAT is sent as 0xffff, not 0 (\"none\")",
                setup: dns_nat_world(net),
                steps: vec![to_real("query", net, &query, &D, &DNS, DNS_RPORT, true, UDP).into()],
            }
        },
        {
            // The client's datagram checksums to 0 (sent as 0xffff): the update starts from
            // the other representation of zero and must still match a full computation.
            let query = Frame::new(
                DIRECTOR_MAC,
                ROUTER_MAC,
                zeroing_checksum(Ipv4::new(
                    CLIENT,
                    VIP,
                    Udp::new(43014, DNS.port, b"\x55\x66\x01\x00\x00\x00"),
                )),
            );
            assert_eq!(l4_checksum(&query.bytes()), 0xffff, "crafting went wrong");
            Fixture {
                name: "UDP sent with checksum 0xffff (computed 0) is readdressed with the right checksum",
                setup: dns_nat_world(net),
                steps: vec![to_real("query", net, &query, &D, &DNS, DNS_RPORT, true, UDP).into()],
            }
        },
        {
            let port = 43015;
            // A request whose TCP checksum is 0x0000 before NAT, and one whose checksum
            // becomes 0x0000 after it (one's complement has two zeros; TCP sends 0x0000).
            let before = Frame::new(
                DIRECTOR_MAC,
                ROUTER_MAC,
                zeroing_checksum(Ipv4::new(
                    CLIENT,
                    VIP,
                    Tcp::new(port, HTTP.port, PSH | ACK).payload(&zero_tailed(0x42, 40)),
                )),
            );
            assert_eq!(l4_checksum(&before.bytes()), 0, "crafting went wrong");
            let after_nat = zeroing_checksum(Ipv4::new(
                CLIENT,
                A.addr,
                Tcp::new(port, HTTP_RPORT, PSH | ACK).payload(&zero_tailed(0x24, 32)),
            ));
            let after = with_destination(
                &Frame::new(DIRECTOR_MAC, ROUTER_MAC, after_nat),
                VIP,
                HTTP.port,
            );
            assert_eq!(
                l4_checksum(&with_destination(&after, A.addr, HTTP_RPORT).bytes()),
                0,
                "crafting went wrong"
            );
            Fixture {
                name: "TCP checksum 0x0000 before NAT, and one that becomes 0x0000 after it",
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
                    to_real(
                        "checksum 0 before",
                        net,
                        &before,
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        false,
                        ESTABLISHED,
                    )
                    .promotes()
                    .into(),
                    to_real(
                        "checksum 0 after",
                        net,
                        &after,
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        false,
                        ESTABLISHED,
                    )
                    .into(),
                ],
            }
        },
        {
            let port = 43005;
            let syn = http(port, SYN);
            let synack = reply(net, &E, Tcp::new(HTTP_RPORT, port, SYN | ACK));
            Fixture {
                name: "one-arm NAT: E on the clients' LAN, both directions XDP_TX from the NIC's MAC",
                setup: nat_world(net, &[&E]),
                steps: vec![
                    to_real("SYN", net, &syn, &E, &HTTP, HTTP_RPORT, true, SYN_RECV).into(),
                    to_client("SYN-ACK", net, &synack, &E, &HTTP, flow_of(&syn), SYN_RECV).into(),
                ],
            }
        },
        {
            let port = 43006;
            let syn = http(port, SYN);
            let synack = reply(net, &B, Tcp::new(HTTP.port, port, SYN | ACK));
            let mut setup = nat_world(net, &[&B]);
            setup.push(masq(&B, &HTTP, HTTP.port));
            Fixture {
                name: "no port mapping (real port = virtual port): only the addresses change",
                setup,
                steps: vec![
                    to_real("SYN", net, &syn, &B, &HTTP, HTTP.port, true, SYN_RECV).into(),
                    to_client("SYN-ACK", net, &synack, &B, &HTTP, flow_of(&syn), SYN_RECV).into(),
                ],
            }
        },
        {
            let port = 43007;
            let mut syn = client_data(port, SYN, 0);
            syn.ipv4_mut().options = vec![0x94, 0x04, 0x00, 0x00, 0x01, 0x01, 0x01, 0x00];
            syn.ipv4_mut().payload = Tcp::new(port, HTTP.port, SYN)
                .options(&[0x02, 0x04, 0x05, 0xb4, 0x01, 0x03, 0x03, 0x07])
                .into();
            let mut synack = reply(
                net,
                &A,
                Tcp::new(HTTP_RPORT, port, SYN | ACK).options(&[0x02, 0x04, 0x05, 0xb4]),
            );
            synack.ipv4_mut().options = vec![0x94, 0x04, 0x00, 0x00];
            Fixture {
                name: "IP and TCP options both ways: ports found after the IP options, options untouched",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real("SYN", net, &syn, &A, &HTTP, HTTP_RPORT, true, SYN_RECV).into(),
                    to_client("SYN-ACK", net, &synack, &A, &HTTP, flow_of(&syn), SYN_RECV).into(),
                ],
            }
        },
        {
            let port = 43008;
            let syn = http(port, SYN);
            let answer = reply(net, &F, Tcp::new(HTTP_RPORT, port, SYN | ACK));
            Fixture {
                name: "real server without a neighbour entry: the FIB has no next hop, dropped (drop_fib); entries made",
                setup: nat_world(net, &[&F]),
                steps: vec![
                    Send::drop("SYN", syn.bytes(), Stat::DropFib)
                        .on(net.ext)
                        .counts(&[Stat::ConnNew])
                        .expect([
                            Expect::ConnEntry {
                                flow: flow_of(&syn),
                                conn: client_entry(&F, &HTTP, SYN_RECV),
                            },
                            Expect::ConnEntry {
                                flow: flow_of(&answer),
                                conn: reply_entry(&F, &HTTP, SYN_RECV),
                            },
                        ])
                        .into(),
                ],
            }
        },
        {
            let port = 43020;
            let syn = http(port, SYN);
            let mut setup = nat_world(net, &[&A]);
            setup.push(Change::RemoveIface(net.int));
            Fixture {
                name: "the FIB's next hop is behind a NIC lbd was not given (not in TX_PORTS): dropped (drop_no_iface), not redirected",
                setup,
                steps: vec![
                    Send::drop("SYN", syn.bytes(), Stat::DropNoIface)
                        .on(net.ext)
                        .counts(&[Stat::ConnNew, Stat::TxNat])
                        .expect([Expect::ConnEntry {
                            flow: flow_of(&syn),
                            conn: client_entry(&A, &HTTP, SYN_RECV),
                        }])
                        .into(),
                ],
            }
        },
        {
            // A's own connection out to the client's address, not one lb made.
            let own = reply(net, &A, Tcp::new(HTTP_RPORT, 43009, SYN | ACK));
            Fixture {
                name: "a real server's packet that belongs to no connection is passed (pass_not_service)",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    Send::pass("SYN-ACK", own.bytes(), Stat::PassNotService)
                        .on(net.int)
                        .into(),
                ],
            }
        },
        {
            let port = 43010;
            let syn = http(port, SYN);
            let wrong_port = reply(net, &A, Tcp::new(HTTP.port, port, SYN | ACK));
            Fixture {
                name: "a reply from the unmapped port (A:80, not A:8080) matches no entry: passed",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real("SYN", net, &syn, &A, &HTTP, HTTP_RPORT, true, SYN_RECV).into(),
                    Send::pass("SYN-ACK from :80", wrong_port.bytes(), Stat::PassNotService)
                        .on(net.int)
                        .expect([Expect::ConnEntry {
                            flow: flow_of(&syn),
                            conn: client_entry(&A, &HTTP, SYN_RECV),
                        }])
                        .into(),
                ],
            }
        },
        {
            let port = 43011;
            let syn = http(port, SYN);
            let synack = reply(net, &A, Tcp::new(HTTP_RPORT, port, SYN | ACK));
            Fixture {
                name: "a reply whose client entry is gone (LRU eviction) is still translated back",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real("SYN", net, &syn, &A, &HTTP, HTTP_RPORT, true, SYN_RECV).into(),
                    Step::Apply {
                        what: "client entry evicted",
                        changes: vec![Change::RemoveConn(flow_of(&syn))],
                    },
                    Send::new(
                        "SYN-ACK",
                        synack.bytes(),
                        Verdict::REDIRECT,
                        Output::Exact({
                            let mut out = with_source(&synack, VIP, HTTP.port)
                                .with_macs(ROUTER_MAC, DIRECTOR_MAC);
                            out.ipv4_mut().ttl -= 1;
                            out.bytes()
                        }),
                    )
                    .on(net.int)
                    .counts(&[Stat::ConnHit, Stat::TxNatReply, Stat::Redirect])
                    .expect([Expect::NoConn(flow_of(&syn)), Expect::ConnCount(1)])
                    .into(),
                ],
            }
        },
        {
            let port = 43060;
            let ack = http(port, ACK);
            let answer = reply(net, &A, Tcp::new(HTTP_RPORT, port, ACK));
            Fixture {
                name: "a real server's packet of a connection idle past its timeout (--set 5) is passed (the connection is over, as in IPVS) and both its entries go",
                setup: {
                    let mut setup = nat_world(net, &[&A]);
                    setup.extend([
                        Change::Settings(Settings {
                            tcp_timeout: 5,
                            ..Settings::default()
                        }),
                        Change::Conn {
                            flow: flow_of(&ack),
                            conn: client_entry(&A, &HTTP, ESTABLISHED),
                            idle: Duration::from_secs(6),
                        },
                        Change::Conn {
                            flow: flow_of(&answer),
                            conn: reply_entry(&A, &HTTP, ESTABLISHED),
                            idle: Duration::ZERO,
                        },
                    ]);
                    setup
                },
                steps: vec![
                    Send::pass("ACK from A", answer.bytes(), Stat::PassNotService)
                        .on(net.int)
                        .expect([
                            Expect::NoConn(flow_of(&ack)),
                            Expect::NoConn(flow_of(&answer)),
                        ])
                        .into(),
                ],
            }
        },
        {
            let port = 43013;
            let syn = http(port, SYN);
            let ack = http(port, ACK);
            let fin = http(port, FIN | ACK);
            let synack = reply(net, &A, Tcp::new(HTTP_RPORT, port, SYN | ACK));
            let r_fin = reply(net, &A, Tcp::new(HTTP_RPORT, port, FIN | ACK));
            let reply_flow = flow_of(&synack);
            Fixture {
                name: "a reply entry removed apart from the client's is put back by the client's next packet (reply_restored), so the real server's answer is still translated, never leaked",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real("SYN", net, &syn, &A, &HTTP, HTTP_RPORT, true, SYN_RECV).into(),
                    to_real("ACK", net, &ack, &A, &HTTP, HTTP_RPORT, false, ESTABLISHED)
                        .promotes()
                        .expect([
                            Expect::HalfOpen(flow_of(&syn), false),
                            Expect::HalfOpen(reply_flow, false),
                        ])
                        .into(),
                    Step::Apply {
                        what: "reply entry removed",
                        changes: vec![Change::RemoveConn(reply_flow)],
                    },
                    to_real("FIN", net, &fin, &A, &HTTP, HTTP_RPORT, false, CLOSE_WAIT)
                        .counts(&[Stat::ReplyRestored])
                        .expect([
                            Expect::ConnEntry {
                                flow: reply_flow,
                                conn: reply_entry(&A, &HTTP, CLOSE_WAIT),
                            },
                            Expect::HalfOpen(reply_flow, false),
                        ])
                        .into(),
                    to_client(
                        "server FIN",
                        net,
                        &r_fin,
                        &A,
                        &HTTP,
                        flow_of(&syn),
                        TIME_WAIT,
                    )
                    .into(),
                ],
            }
        },
        {
            let port = 43014;
            let syn = http(port, SYN);
            let ack = http(port, ACK);
            let synack = reply(net, &A, Tcp::new(HTTP_RPORT, port, SYN | ACK));
            let reply_flow = flow_of(&synack);
            Fixture {
                name: "a half-open connection's reply entry evicted by the LRU is put back by the client's next packet, which also moves both entries to the connection table",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real("SYN", net, &syn, &A, &HTTP, HTTP_RPORT, true, SYN_RECV)
                        .expect([
                            Expect::HalfOpen(flow_of(&syn), true),
                            Expect::HalfOpen(reply_flow, true),
                        ])
                        .into(),
                    Step::Apply {
                        what: "reply entry evicted",
                        changes: vec![Change::RemoveConn(reply_flow)],
                    },
                    to_real("ACK", net, &ack, &A, &HTTP, HTTP_RPORT, false, ESTABLISHED)
                        .promotes()
                        .expect([
                            Expect::ConnEntry {
                                flow: reply_flow,
                                conn: reply_entry(&A, &HTTP, ESTABLISHED),
                            },
                            Expect::HalfOpen(flow_of(&syn), false),
                            Expect::HalfOpen(reply_flow, false),
                            Expect::ConnCount(2),
                        ])
                        .into(),
                    to_client(
                        "SYN-ACK",
                        net,
                        &synack,
                        &A,
                        &HTTP,
                        flow_of(&syn),
                        ESTABLISHED,
                    )
                    .into(),
                ],
            }
        },
        {
            // Two clients, the same source port, one real server: four entries, no crosstalk.
            let mut other = http(43012, SYN);
            other.ipv4_mut().src = crate::world::CLIENT_2;
            let syn = http(43012, SYN);
            let synack_2 = {
                let mut f = reply(net, &A, Tcp::new(HTTP_RPORT, 43012, SYN | ACK));
                f.ipv4_mut().dst = crate::world::CLIENT_2;
                f
            };
            Fixture {
                name: "two clients on the same source port to one real server: separate entries, replies to the right client",
                setup: nat_world(net, &[&A]),
                steps: vec![
                    to_real(
                        "client 1 SYN",
                        net,
                        &syn,
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        true,
                        SYN_RECV,
                    )
                    .into(),
                    to_real(
                        "client 2 SYN",
                        net,
                        &other,
                        &A,
                        &HTTP,
                        HTTP_RPORT,
                        true,
                        SYN_RECV,
                    )
                    .expect([Expect::ConnCount(4)])
                    .into(),
                    to_client(
                        "SYN-ACK to client 2",
                        net,
                        &synack_2,
                        &A,
                        &HTTP,
                        flow_of(&other),
                        SYN_RECV,
                    )
                    .into(),
                ],
            }
        },
        {
            // `-t VIP:0` with a real server on port 0: the connection uses the port the client
            // asked for, on the real server too (IPVS: `dest->port ? dest->port : vport`).
            let (cport, vport) = (43016, 8443);
            let conn_view = ServiceDef {
                port: vport,
                ..ALL_PORTS
            };
            let syn = tcp(CLIENT, ALL_PORTS_VIP, cport, vport, SYN);
            let synack = reply(net, &A, Tcp::new(vport, cport, SYN | ACK));
            let mut setup = net.nics();
            setup.push(masq(&A, &ALL_PORTS, 0));
            setup.extend(service_with_table(&ALL_PORTS, &[&A]));
            Fixture {
                name: "port-0 service (-t VIP:0, real on port 0): a SYN to :8443 goes to A:8443, the SYN-ACK comes back from VIP:8443",
                setup,
                steps: vec![
                    to_real("SYN", net, &syn, &A, &conn_view, vport, true, SYN_RECV)
                        .expect([Expect::ConnEntry {
                            flow: flow_of(&synack),
                            conn: reply_entry(&A, &conn_view, SYN_RECV),
                        }])
                        .into(),
                    to_client(
                        "SYN-ACK",
                        net,
                        &synack,
                        &A,
                        &conn_view,
                        flow_of(&syn),
                        SYN_RECV,
                    )
                    .into(),
                ],
            }
        },
    ]
}

/// NAT on a director whose interfaces do not forward: `bpf_fib_lookup` answers only for
/// forwarding interfaces (LVS-NAT directors turn `ip_forward` on), so the packet is dropped
/// and counted rather than sent somewhere wrong.
pub fn without_forwarding(net: &NatNet) -> Vec<Fixture> {
    let syn = http(43100, SYN);
    vec![Fixture {
        name: "forwarding off: the FIB refuses, the SYN is dropped (drop_fib)",
        setup: nat_world(net, &[&A]),
        steps: vec![
            Send::drop("SYN", syn.bytes(), Stat::DropFib)
                .on(net.ext)
                .counts(&[Stat::ConnNew])
                .expect([Expect::ConnEntry {
                    flow: flow_of(&syn),
                    conn: client_entry(&A, &HTTP, SYN_RECV),
                }])
                .into(),
        ],
    }]
}
