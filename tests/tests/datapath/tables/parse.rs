//! Packets lb does not balance: handed to the kernel (XDP_PASS) byte for byte untouched, counted
//! under their reason, and leaving no trace in the connection table or the service counters.

use std::net::Ipv4Addr;

use lb_common::Stat;

use crate::{
    fixture::{Expect, Fixture, Send, counters},
    harness::Change,
    packet::{ACK, Arp, Frame, Icmp, Ipv4, Ipv6, L3, L4, SYN, Tcp, Udp, cut},
    world::{
        A, CLIENT, DIRECTOR_IP, DIRECTOR_MAC, DNS, HTTP, OTHER_VIP, ROUTER_MAC, VIP, dns,
        dns_world, http, http_world, tcp, udp,
    },
};

const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const ETH: usize = 14;
const IP: usize = 20;

/// One packet, passed untouched for `reason`, with nothing scheduled.
fn untouched(name: &'static str, setup: Vec<Change>, input: Vec<u8>, reason: Stat) -> Fixture {
    Fixture {
        name,
        setup,
        steps: vec![
            Send::pass(name, input, reason)
                .expect([
                    Expect::ConnCount(0),
                    Expect::ServiceStats {
                        id: HTTP.id,
                        counters: counters(0, 0, 0),
                    },
                    Expect::ServiceStats {
                        id: DNS.id,
                        counters: counters(0, 0, 0),
                    },
                    Expect::RrPosition {
                        service: HTTP.id,
                        position: 0,
                    },
                ])
                .into(),
        ],
    }
}

fn world() -> Vec<Change> {
    let mut changes = http_world(&[&A]);
    changes.extend(dns_world());
    changes
}

fn syn() -> Vec<u8> {
    http(40000, SYN).bytes()
}

pub fn fixtures() -> Vec<Fixture> {
    vec![
        // ---- not IP ----
        untouched(
            "ARP request for the VIP",
            world(),
            Frame::new(
                [0xff; 6],
                ROUTER_MAC,
                Arp::request(ROUTER_MAC, ROUTER_IP, VIP),
            )
            .padded_to(60)
            .bytes(),
            Stat::PassNotIp,
        ),
        untouched(
            "IPv6 TCP SYN to port 80 of an address with no service (IPv6: table ipv6)",
            world(),
            Frame::new(
                DIRECTOR_MAC,
                ROUTER_MAC,
                Ipv6::new(
                    "2001:db8::7".parse().unwrap(),
                    "2001:db8::10".parse().unwrap(),
                    Tcp::new(40000, 80, SYN),
                ),
            )
            .bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "802.1Q-tagged IPv4 SYN to VIP:80 (lb sees untagged traffic only)",
            world(),
            {
                let mut frame = http(40000, SYN);
                frame.body = L3::Vlan {
                    tci: 100,
                    inner: Box::new(frame.body.clone()),
                };
                frame.bytes()
            },
            Stat::PassNotIp,
        ),
        untouched(
            "LLDP (EtherType 0x88cc)",
            world(),
            Frame::new(
                [0x01, 0x80, 0xc2, 0, 0, 0x0e],
                ROUTER_MAC,
                L3::Raw {
                    ethertype: 0x88cc,
                    bytes: vec![0x02, 0x07, 0x04, 0, 0, 0, 0, 0, 1],
                },
            )
            .padded_to(60)
            .bytes(),
            Stat::PassNotIp,
        ),
        // ---- truncated or malformed headers ----
        untouched(
            "Ethernet header only (14 bytes, EtherType IPv4)",
            world(),
            cut(syn(), ETH),
            Stat::PassMalformed,
        ),
        untouched(
            "IPv4 header cut at 19 bytes",
            world(),
            cut(syn(), ETH + 19),
            Stat::PassMalformed,
        ),
        untouched(
            "IPv4 EtherType carrying a version-6 header",
            world(),
            {
                let mut frame = http(40000, SYN);
                frame.ipv4_mut().version = 6;
                frame.bytes()
            },
            Stat::PassMalformed,
        ),
        untouched(
            "IPv4 ihl 4 (below the 20-byte minimum)",
            world(),
            {
                let mut frame = http(40000, SYN);
                frame.ipv4_mut().ihl = Some(4);
                frame.bytes()
            },
            Stat::PassMalformed,
        ),
        untouched(
            "IPv4 ihl 15 but the frame ends inside the claimed options",
            world(),
            {
                let mut frame = http(40000, SYN);
                frame.ipv4_mut().ihl = Some(15);
                frame.bytes()
            },
            Stat::PassMalformed,
        ),
        untouched(
            "TCP header cut to 10 bytes (ports present, flags missing)",
            world(),
            cut(syn(), ETH + IP + 10),
            Stat::PassMalformed,
        ),
        untouched(
            "TCP header cut to 3 bytes (destination port incomplete)",
            world(),
            cut(syn(), ETH + IP + 3),
            Stat::PassMalformed,
        ),
        untouched(
            "TCP header cut to 19 bytes",
            world(),
            cut(syn(), ETH + IP + 19),
            Stat::PassMalformed,
        ),
        untouched(
            "UDP header cut to 6 bytes (to the DNS service)",
            world(),
            cut(dns(5353).bytes(), ETH + IP + 6),
            Stat::PassMalformed,
        ),
        // The total length delimits the datagram (RFC 791): what follows is the link's padding,
        // however much it looks like a header.
        untouched(
            "IPv4 total length 20 (no TCP header) with a TCP SYN's bytes after it as padding",
            world(),
            {
                let mut frame = http(40000, SYN);
                frame.ipv4_mut().total_len = Some(20);
                frame.bytes()
            },
            Stat::PassMalformed,
        ),
        untouched(
            "UDP header cut by the IPv4 total length to 7 bytes, the rest padding",
            world(),
            {
                let mut frame = dns(5353);
                frame.ipv4_mut().total_len = Some(27);
                frame.bytes()
            },
            Stat::PassMalformed,
        ),
        untouched(
            "IPv4 total length shorter than its header (IHL 6, total length 20)",
            world(),
            {
                let mut frame = http(40000, SYN);
                let ip = frame.ipv4_mut();
                *ip = ip.clone().options(&[1, 1, 1, 1]);
                ip.total_len = Some(20);
                frame.bytes()
            },
            Stat::PassMalformed,
        ),
        // ---- fragments ----
        // (First fragments are balanced: see `frags`.)
        untouched(
            "later fragment (offset 185 × 8, last) to the VIP, its first fragment never seen",
            world(),
            Frame::new(
                DIRECTOR_MAC,
                ROUTER_MAC,
                Ipv4::new(
                    CLIENT,
                    VIP,
                    L4::Raw {
                        proto: 6,
                        bytes: vec![0x5a; 64],
                    },
                )
                .fragment(false, 185),
            )
            .bytes(),
            Stat::PassFragment,
        ),
        untouched(
            "later fragment (offset 1, MF) of a UDP datagram to VIP:53, its first fragment never seen",
            world(),
            Frame::new(
                DIRECTOR_MAC,
                ROUTER_MAC,
                Ipv4::new(
                    CLIENT,
                    VIP,
                    L4::Raw {
                        proto: 17,
                        bytes: vec![0xa5; 32],
                    },
                )
                .fragment(true, 1),
            )
            .bytes(),
            Stat::PassFragment,
        ),
        // ---- not a service ----
        untouched(
            "ICMP echo request to the VIP",
            world(),
            Frame::new(
                DIRECTOR_MAC,
                ROUTER_MAC,
                Ipv4::new(CLIENT, VIP, Icmp::echo_request(0x77, 1, b"abcdefgh")),
            )
            .bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "GRE (protocol 47) to the VIP",
            world(),
            Frame::new(
                DIRECTOR_MAC,
                ROUTER_MAC,
                Ipv4::new(
                    CLIENT,
                    VIP,
                    L4::Raw {
                        proto: 47,
                        bytes: vec![0, 0, 0x08, 0],
                    },
                ),
            )
            .bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "TCP SYN to port 80 of an address with no service",
            world(),
            tcp(CLIENT, OTHER_VIP, 40000, 80, SYN).bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "TCP SYN to another address and another port",
            world(),
            tcp(CLIENT, OTHER_VIP, 40000, 8080, SYN).bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "TCP SYN to a port of the VIP with no service (443)",
            world(),
            tcp(CLIENT, VIP, 40000, 443, SYN).bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "TCP ACK to a port of the VIP with no service (mid-flow, 22)",
            world(),
            tcp(CLIENT, VIP, 40000, 22, ACK).bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "UDP to VIP:80, where only TCP 80 is a service",
            world(),
            udp(CLIENT, VIP, 40000, 80, b"not http").bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "TCP to VIP:53, where only UDP 53 is a service",
            world(),
            tcp(CLIENT, VIP, 40000, 53, SYN).bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "SSH to the director's own address",
            world(),
            tcp(CLIENT, DIRECTOR_IP, 40000, 22, SYN).bytes(),
            Stat::PassNotService,
        ),
        untouched(
            "UDP to VIP:53 before any service exists",
            vec![crate::world::director_iface()],
            Frame::new(
                DIRECTOR_MAC,
                ROUTER_MAC,
                Ipv4::new(CLIENT, VIP, Udp::new(1, 53, b"q")),
            )
            .bytes(),
            Stat::PassNotService,
        ),
    ]
}
