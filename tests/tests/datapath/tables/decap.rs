//! The real-server side of TUN (`lb_decap`, for kernels without the `ipip`, `fou` or `gre`
//! modules): an IP-in-IP, GUE (to a port given with `--gue-port`) or GRE frame as the director
//! sends it (outer header of 20 bytes, not a fragment) is passed to the stack as the client's
//! packet, the tunnel's headers gone and the Ethernet header kept (same MACs, type IPv4);
//! everything else is passed untouched. Only decapsulations count.

use std::net::Ipv6Addr;

use lb_common::Stat;

use crate::{
    fixture::{Fixture, Output, Send},
    harness::{Change, Verdict},
    packet::{Arp, Frame, Icmp, Ipv4, Ipv6, L3, L4, SYN, Tcp, Udp, cut},
    world::{A, CLIENT, DIRECTOR_IP, DIRECTOR_MAC, Encap, VIP, hopped, http, via_tun, via_tun_as},
};

const GUE_6080: Encap = Encap::Gue {
    port: 6080,
    csum: false,
};

/// A GRE frame from the director to A with the GRE header `header`, carrying a client's SYN.
fn gre_raw(header: &[u8], sport: u16) -> Vec<u8> {
    Frame::new(
        A.mac,
        DIRECTOR_MAC,
        Ipv4::new(
            DIRECTOR_IP,
            A.addr,
            L4::Raw {
                proto: 47,
                bytes: [header, &client_syn(sport).bytes()].concat(),
            },
        ),
    )
    .bytes()
}

/// What the director sends to A with `encap` comes out as the client's packet (one hop on)
/// under the same Ethernet header, `lbd decap --gue-port 6080 --gue-port 6079` being on.
fn stripped_from(name: &'static str, frame: Frame, encap: Encap) -> Fixture {
    let expected = hopped(&frame).with_macs(A.mac, DIRECTOR_MAC).bytes();
    Fixture {
        name,
        setup: vec![Change::DecapGuePort(6080), Change::DecapGuePort(6079)],
        steps: vec![
            Send::new(
                "tunnelled",
                via_tun_as(&frame, &A, encap),
                Verdict::PASS,
                Output::Exact(expected),
            )
            .counts(&[Stat::Decap])
            .into(),
        ],
    }
}

/// The client's SYN as the real server must see it: to the VIP, from the client.
fn client_syn(sport: u16) -> Ipv4 {
    http(sport, SYN).ipv4().clone()
}

/// `inner` tunnelled from the director to A, in a frame from the director's MAC to A's.
fn ipip(inner: Ipv4) -> Frame {
    let mut outer = Ipv4::new(DIRECTOR_IP, A.addr, inner);
    outer.ident = 0;
    Frame::new(A.mac, DIRECTOR_MAC, outer)
}

/// The inner packet of an IP-in-IP frame, under the same Ethernet header.
fn decapsulated(frame: &Frame) -> Vec<u8> {
    let L4::Ipip(inner) = &frame.ipv4().payload else {
        panic!("not IP-in-IP: {frame:?}")
    };
    Frame::new(frame.dst, frame.src, (**inner).clone())
        .padded_to(frame.min_len.saturating_sub(20))
        .bytes()
}

/// A fixture of one frame that is decapsulated.
fn stripped(name: &'static str, frame: Frame) -> Fixture {
    Fixture {
        name,
        setup: Vec::new(),
        steps: vec![
            Send::new(
                "frame",
                frame.bytes(),
                Verdict::PASS,
                Output::Exact(decapsulated(&frame)),
            )
            .counts(&[Stat::Decap])
            .into(),
        ],
    }
}

/// A fixture of one frame that is passed untouched and not counted.
fn untouched(name: &'static str, input: Vec<u8>) -> Fixture {
    Fixture {
        name,
        setup: Vec::new(),
        steps: vec![Send::new("frame", input, Verdict::PASS, Output::Unchanged).into()],
    }
}

pub fn fixtures() -> Vec<Fixture> {
    vec![
        stripped_from(
            "GUE to port 6080: the client's SYN",
            http(42020, SYN),
            GUE_6080,
        ),
        stripped_from(
            "GUE with a UDP checksum, to the second port: the client's 1000-byte segment",
            {
                let mut frame = http(42021, 0x18);
                frame.ipv4_mut().payload = Tcp::new(42021, 80, 0x18).payload(&[0x42; 960]).into();
                frame
            },
            Encap::Gue {
                port: 6079,
                csum: true,
            },
        ),
        stripped_from(
            "GRE: the client's SYN",
            http(42022, SYN),
            Encap::Gre { csum: false },
        ),
        stripped_from(
            "GRE with a checksum: the client's padded SYN",
            http(42023, SYN).padded_to(60),
            Encap::Gre { csum: true },
        ),
        {
            // The director's own output (the TUN table pins it) goes in; the client's frame,
            // as DR would have delivered it (one hop on), comes out.
            let syn = http(42000, SYN);
            let expected = hopped(&syn).with_macs(A.mac, DIRECTOR_MAC).bytes();
            Fixture {
                name: "what TUN sends to A comes out as the client's SYN under the same Ethernet header",
                setup: Vec::new(),
                steps: vec![
                    Send::new(
                        "tunnelled SYN",
                        via_tun(&syn, &A),
                        Verdict::PASS,
                        Output::Exact(expected),
                    )
                    .counts(&[Stat::Decap])
                    .into(),
                ],
            }
        },
        {
            let syn = http(42001, SYN).padded_to(60);
            let expected = hopped(&syn).with_macs(A.mac, DIRECTOR_MAC).bytes();
            Fixture {
                name: "a tunnelled padded frame: the padding stays after the inner packet",
                setup: Vec::new(),
                steps: vec![
                    Send::new(
                        "tunnelled padded SYN",
                        via_tun(&syn, &A),
                        Verdict::PASS,
                        Output::Exact(expected),
                    )
                    .counts(&[Stat::Decap])
                    .into(),
                ],
            }
        },
        stripped("UDP inside; outer without DF, with an ID", {
            let mut frame = ipip(Ipv4::new(CLIENT, VIP, Udp::new(5353, 53, b"\x12\x34query")));
            frame.ipv4_mut().dont_fragment = false;
            frame.ipv4_mut().ident = 0x4242;
            frame
        }),
        stripped(
            "inner with IP options: carried byte for byte",
            ipip(client_syn(42002).options(&[0x94, 0x04, 0x00, 0x00])),
        ),
        stripped("inner of 1480 bytes (a full 1500-byte tunnel)", {
            let inner = Ipv4::new(
                CLIENT,
                VIP,
                Tcp::new(42003, 80, 0x18).payload(&[0x77; 1440]),
            );
            ipip(inner)
        }),
        stripped(
            "any inner protocol: ICMP echo inside",
            ipip(Ipv4::new(CLIENT, VIP, Icmp::echo_request(7, 1, b"ping"))),
        ),
        stripped(
            "inner fragment: decapsulated (the inner is the stack's business)",
            {
                ipip(
                    Ipv4::new(
                        CLIENT,
                        VIP,
                        L4::Raw {
                            proto: 17,
                            bytes: vec![0x11; 64],
                        },
                    )
                    .fragment(true, 0),
                )
            },
        ),
        untouched("outer is a first fragment (MF): untouched", {
            let mut frame = ipip(client_syn(42004));
            let outer = frame.ipv4_mut();
            outer.dont_fragment = false;
            outer.more_fragments = true;
            frame.bytes()
        }),
        untouched("outer is a later fragment (offset 185): untouched", {
            let mut frame = ipip(client_syn(42005));
            let outer = frame.ipv4_mut();
            outer.dont_fragment = false;
            outer.frag_offset = 185;
            frame.bytes()
        }),
        untouched("outer with IP options (ihl 6): untouched", {
            let mut frame = ipip(client_syn(42006));
            frame.ipv4_mut().options = vec![0x94, 0x04, 0x00, 0x00];
            frame.bytes()
        }),
        untouched(
            "outer version 6 in an IPv4 EtherType (vihl 0x65): untouched",
            {
                let mut frame = ipip(client_syn(42007));
                frame.ipv4_mut().version = 6;
                frame.bytes()
            },
        ),
        untouched(
            "IP-in-IP whose inner is shorter than an IPv4 header (19 bytes): untouched",
            cut(ipip(client_syn(42008)).bytes(), 14 + 20 + 19),
        ),
        untouched(
            "plain TCP to the real server: untouched",
            Frame::new(
                A.mac,
                DIRECTOR_MAC,
                Ipv4::new(CLIENT, A.addr, Tcp::new(42009, 80, SYN)),
            )
            .bytes(),
        ),
        untouched(
            "protocol 94 (KA9Q's IPIP, network-types' IpProto::Ipip): untouched",
            Frame::new(
                A.mac,
                DIRECTOR_MAC,
                Ipv4::new(
                    DIRECTOR_IP,
                    A.addr,
                    L4::Raw {
                        proto: 94,
                        bytes: client_syn(42010).bytes(),
                    },
                ),
            )
            .bytes(),
        ),
        untouched(
            "GRE with a key (K bit): untouched",
            gre_raw(&[0x20, 0x00, 0x08, 0x00, 0, 0, 0, 7], 42011),
        ),
        untouched(
            "GRE saying IPv6 (0x86dd) in front of an IPv4 packet: untouched",
            gre_raw(&[0x00, 0x00, 0x86, 0xdd], 42012),
        ),
        untouched(
            "GRE carrying another protocol (0x6558, Ethernet): untouched",
            gre_raw(&[0x00, 0x00, 0x65, 0x58], 42014),
        ),
        untouched(
            "GUE to a port not given with --gue-port: untouched",
            via_tun_as(&http(42013, SYN), &A, GUE_6080),
        ),
        untouched(
            "IP-in-IP behind an 802.1Q tag: untouched",
            Frame {
                dst: A.mac,
                src: DIRECTOR_MAC,
                body: L3::Vlan {
                    tci: 100,
                    inner: Box::new(ipip(client_syn(42012)).body),
                },
                min_len: 0,
            }
            .bytes(),
        ),
        untouched(
            "IPv6: untouched",
            Frame::new(
                A.mac,
                DIRECTOR_MAC,
                Ipv6::new(
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
                    Tcp::new(42013, 80, SYN),
                ),
            )
            .bytes(),
        ),
        untouched(
            "ARP: untouched",
            Frame::new(
                [0xff; 6],
                DIRECTOR_MAC,
                Arp::request(DIRECTOR_MAC, DIRECTOR_IP, A.addr),
            )
            .padded_to(60)
            .bytes(),
        ),
        untouched(
            "IPv4 header cut short (Ethernet + 19 bytes): untouched",
            cut(ipip(client_syn(42014)).bytes(), 14 + 19),
        ),
        untouched(
            "bare Ethernet header: untouched",
            cut(ipip(client_syn(42015)).bytes(), 14),
        ),
    ]
}
