//! Fragments of balanced datagrams. The first fragment carries the ports: it is balanced like
//! any packet, and what all of its datagram's fragments share (addresses, IP ID, protocol) is
//! remembered with its flow. A later fragment has no ports: it goes where its first fragment
//! went (DR: the same MAC; NAT: only its address rewritten, the first fragment's L4 checksum
//! covering the whole datagram), and is the kernel's when its first fragment was not seen or
//! its connection is gone. (Large UDP datagrams through IPVS reach the real server; before
//! this, lb passed every fragment to the director's kernel.)

use std::net::Ipv4Addr;

use lb_common::{
    Stat,
    tcp_state::{SYN_RECV, UDP},
};

use crate::{
    fixture::{Expect, Fixture, Output, Send, Step},
    harness::{Change, Verdict},
    packet::{Frame, Ipv4, L4, SYN},
    tables::nat::{DNS_RPORT, dns_nat_world, leaving, reply, side, to_real},
    world::{
        A, CLIENT, D, DIRECTOR_MAC, DNS, HTTP, NatNet, ROUTER_MAC, VIP, dns, dns_world, flow_of,
        http, http_world, new_flow, via_dr, with_source,
    },
};

/// `frame` as the first fragment (offset 0, more to come) of datagram `id`.
fn first(frame: Frame, id: u16) -> Frame {
    let mut frame = frame;
    let ip = frame.ipv4_mut();
    ip.ident = id;
    *ip = ip.clone().fragment(true, 0);
    frame
}

/// A later fragment of datagram `id` from `src` to `dst`: `len` payload bytes at
/// `offset_units` × 8, the last one unless `more`.
fn later(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    id: u16,
    offset_units: u16,
    more: bool,
    len: usize,
) -> Frame {
    let mut ip = Ipv4::new(
        src,
        dst,
        L4::Raw {
            proto,
            bytes: (0..len).map(|i| (i * 7) as u8).collect(),
        },
    )
    .fragment(more, offset_units);
    ip.ident = id;
    Frame::new(DIRECTOR_MAC, ROUTER_MAC, ip)
}

/// A later fragment sent on by DR to `real`, found by its first fragment's flow.
fn follows_dr(what: &str, frame: &Frame, real: &crate::world::RealDef) -> Send {
    Send::new(
        what,
        frame.bytes(),
        Verdict::TX,
        Output::Exact(via_dr(frame, real)),
    )
    .counts(&[Stat::ConnHit, Stat::TxRoute, Stat::Fragment])
}

pub fn fixtures() -> Vec<Fixture> {
    vec![
        {
            let id = 0x5151;
            let mut last = later(CLIENT, VIP, 17, id, 3, false, 64);
            last.ipv4_mut().ttl = 1;
            Fixture {
                name: "DR: a later fragment whose TTL runs out is dropped without an ICMP error (RFC 1812 4.3.2.7: errors only about the first fragment)",
                setup: dns_world(),
                steps: vec![
                    new_flow("first fragment", &first(dns(5402), id), &D, &DNS, UDP).into(),
                    Send::drop("later fragment, TTL 1", last.bytes(), Stat::DropTtlExpired)
                        .counts(&[Stat::ConnHit, Stat::Fragment])
                        .into(),
                ],
            }
        },
        {
            let id = 0x4242;
            Fixture {
                name: "DR: a UDP datagram in three fragments: the first is scheduled, the later ones follow it to the same real server (fragment)",
                setup: dns_world(),
                steps: vec![
                    new_flow("first fragment", &first(dns(5400), id), &D, &DNS, UDP).into(),
                    follows_dr(
                        "middle fragment",
                        &later(CLIENT, VIP, 17, id, 3, true, 64),
                        &D,
                    )
                    .into(),
                    follows_dr(
                        "last fragment",
                        &later(CLIENT, VIP, 17, id, 11, false, 9),
                        &D,
                    )
                    .into(),
                ],
            }
        },
        {
            let id = 0x0101;
            Fixture {
                name: "DR: a fragmented TCP SYN: the first fragment opens the connection, the later one follows it",
                setup: http_world(&[&A]),
                steps: vec![
                    new_flow(
                        "first fragment",
                        &first(http(5401, SYN), id),
                        &A,
                        &HTTP,
                        SYN_RECV,
                    )
                    .into(),
                    follows_dr(
                        "last fragment",
                        &later(CLIENT, VIP, 6, id, 5, false, 12),
                        &A,
                    )
                    .into(),
                ],
            }
        },
        {
            let id = 0x0202;
            Fixture {
                name: "a later fragment of another datagram (other IP ID, or other protocol) is the kernel's (pass_fragment)",
                setup: dns_world(),
                steps: vec![
                    new_flow("first fragment", &first(dns(5402), id), &D, &DNS, UDP).into(),
                    Send::pass(
                        "later fragment, other ID",
                        later(CLIENT, VIP, 17, id + 1, 3, false, 20).bytes(),
                        Stat::PassFragment,
                    )
                    .into(),
                    Send::pass(
                        "later fragment, TCP",
                        later(CLIENT, VIP, 6, id, 3, false, 20).bytes(),
                        Stat::PassFragment,
                    )
                    .into(),
                ],
            }
        },
        {
            let id = 0x0303;
            let query = first(dns(5403), id);
            Fixture {
                name: "a later fragment whose connection has gone opens none (pass_fragment), even for UDP",
                setup: dns_world(),
                steps: vec![
                    new_flow("first fragment", &query, &D, &DNS, UDP).into(),
                    Step::Apply {
                        what: "the connection expired",
                        changes: vec![Change::RemoveConn(flow_of(&query))],
                    },
                    Send::pass(
                        "later fragment",
                        later(CLIENT, VIP, 17, id, 3, false, 20).bytes(),
                        Stat::PassFragment,
                    )
                    .counts(&[Stat::Fragment])
                    .expect([Expect::ConnCount(0)])
                    .into(),
                ],
            }
        },
    ]
}

/// NAT: the client's fragments to the real server, the real server's back to the client.
pub fn nat_fixtures(net: &NatNet) -> Vec<Fixture> {
    let id = 0x5151;
    let query = first(dns(5410), id);
    let (egress, nic_mac) = side(net, &D);
    let later_in = later(CLIENT, VIP, 17, id, 3, false, 40);
    let later_out = {
        let mut out = later_in.clone().with_macs(D.mac, nic_mac);
        out.ipv4_mut().dst = D.addr;
        out.ipv4_mut().ttl -= 1;
        out
    };
    let reply_id = 0x6161;
    let answer = {
        let mut f = reply(net, &D, lb_common_udp(DNS_RPORT, 5410));
        f.ipv4_mut().ident = reply_id;
        *f.ipv4_mut() = f.ipv4().clone().fragment(true, 0);
        f
    };
    let answer_out = {
        let mut out = with_source(&answer, VIP, DNS.port).with_macs(ROUTER_MAC, DIRECTOR_MAC);
        out.ipv4_mut().ttl -= 1;
        out
    };
    let later_answer = {
        let mut f = later(D.addr, CLIENT, 17, reply_id, 4, false, 30);
        f.dst = nic_mac;
        f.src = D.mac;
        f
    };
    let later_answer_out = {
        let mut out = later_answer.clone().with_macs(ROUTER_MAC, DIRECTOR_MAC);
        out.ipv4_mut().src = VIP;
        out.ipv4_mut().ttl -= 1;
        out
    };
    let mut to_d = vec![Stat::ConnHit, Stat::TxNat, Stat::Fragment];
    let to_d_verdict = leaving(net.ext, egress, &mut to_d);
    let mut back = vec![Stat::ConnHit, Stat::TxNatReply];
    let back_verdict = leaving(egress, net.ext, &mut back);
    let mut back_later = vec![Stat::ConnHit, Stat::TxNatReply, Stat::Fragment];
    leaving(egress, net.ext, &mut back_later);
    let answered_early = Fixture {
        name: "NAT: a later fragment of an answer is no second datagram: it does not move the flow to the connection table (its first fragment came before the connection)",
        setup: dns_nat_world(net),
        steps: vec![
            Send::pass(
                "answer, first fragment, before any query (remembered, no connection)",
                answer.bytes(),
                Stat::PassNotService,
            )
            .on(egress)
            .into(),
            to_real(
                "query, first fragment",
                net,
                &query,
                &D,
                &DNS,
                DNS_RPORT,
                true,
                UDP,
            )
            .into(),
            Send::new(
                "answer, later fragment",
                later_answer.bytes(),
                back_verdict,
                Output::Exact(later_answer_out.bytes()),
            )
            .on(egress)
            .counts(&back_later)
            .expect([Expect::HalfOpen(flow_of(&query), true)])
            .into(),
        ],
    };
    vec![
        answered_early,
        Fixture {
            name: "NAT: a UDP datagram in fragments both ways: first fragments readdressed with ports and checksums, later ones only readdressed, replies back from the VIP",
            setup: dns_nat_world(net),
            steps: vec![
                to_real(
                    "first fragment",
                    net,
                    &query,
                    &D,
                    &DNS,
                    DNS_RPORT,
                    true,
                    UDP,
                )
                .into(),
                Send::new(
                    "later fragment",
                    later_in.bytes(),
                    to_d_verdict,
                    Output::Exact(later_out.bytes()),
                )
                .on(net.ext)
                .counts(&to_d)
                .into(),
                Send::new(
                    "answer, first fragment",
                    answer.bytes(),
                    back_verdict,
                    Output::Exact(answer_out.bytes()),
                )
                .on(egress)
                .counts(&back)
                .promotes()
                .into(),
                Send::new(
                    "answer, later fragment",
                    later_answer.bytes(),
                    back_verdict,
                    Output::Exact(later_answer_out.bytes()),
                )
                .on(egress)
                .counts(&back_later)
                .into(),
            ],
        },
    ]
}

/// The real server's DNS answer header: from `sport` to the client's `dport`.
fn lb_common_udp(sport: u16, dport: u16) -> crate::packet::Udp {
    crate::packet::Udp::new(
        sport,
        dport,
        b"\x12\x34\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00",
    )
}
