//! LVS-DR forwarding: a balanced packet leaves with the real server's MAC as destination and the
//! director's as source; every IP and TCP/UDP byte is untouched. Failure paths drop and count.

use std::net::Ipv4Addr;

use lb_common::{
    IPPROTO_TCP, Iface, REAL_F_IN_USE, Stat,
    tcp_state::{ESTABLISHED, SYN_RECV, UDP},
};

use crate::{
    fixture::{Expect, Fixture, Output, Send, Step, counters},
    harness::{Change, TEST_RUN_IFINDEX, Verdict},
    packet::{ACK, PSH, SYN, Tcp},
    world::{
        A, ALL_PORTS, ALL_PORTS_VIP, B, C, CLIENT, D, DIRECTOR_IP, DIRECTOR_MAC, DNS, HTTP,
        OTHER_IFINDEX, OTHER_NIC_MAC, ROUTER_MAC, ServiceDef, VIP, addr, dns, dns_world, edit_real,
        flow_of, http, http_world, ip_len, new_flow, service_with_table, tcp,
    },
};

/// A port-0 service on the VIP itself, next to the port-80 one.
const VIP_ALL_PORTS: ServiceDef = ServiceDef {
    id: 5,
    vip: VIP,
    port: 0,
    proto: IPPROTO_TCP,
    table_offset: 256,
};

/// A single SYN to HTTP, scheduled to A (the only real server) by DR, and the counters it bumps.
fn one_syn(name: &'static str, setup: Vec<Change>, frame: crate::packet::Frame) -> Fixture {
    let bytes = ip_len(&frame);
    Fixture {
        name,
        setup,
        steps: vec![
            new_flow(name, &frame, &A, &HTTP, SYN_RECV)
                .expect([
                    Expect::ConnCount(1),
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
}

pub fn fixtures() -> Vec<Fixture> {
    vec![
        one_syn(
            "TCP SYN to VIP:80 goes to the real server by DR",
            http_world(&[&A]),
            http(40000, SYN),
        ),
        {
            let mut frame = http(40030, SYN);
            frame.ipv4_mut().ttl = 1;
            let mut two = http(40031, SYN);
            two.ipv4_mut().ttl = 2;
            Fixture {
                name: "TTL: one less on the way to the real server (IPVS's decrement_ttl, for DR too); TTL 1 is answered with ICMP time exceeded from the VIP",
                setup: http_world(&[&A]),
                steps: vec![
                    Send::new(
                        "SYN, TTL 1",
                        frame.bytes(),
                        Verdict::TX,
                        Output::Exact(crate::world::time_exceeded(&frame)),
                    )
                    .counts(&[Stat::ConnNew, Stat::IcmpTimeExceeded])
                    .into(),
                    new_flow("SYN, TTL 2 (leaves with 1)", &two, &A, &HTTP, SYN_RECV).into(),
                ],
            }
        },
        {
            // The error's checksum covers the quoted header as it is: with options, and with a
            // bad checksum of its own (the kernel would have dropped such a packet; lb does not
            // check on the way in, so its answer must still add up).
            let mut frame = http(40032, SYN);
            frame.ipv4_mut().ttl = 1;
            frame.ipv4_mut().options = vec![1, 1, 1, 1, 1, 1, 1, 0];
            frame.ipv4_mut().header_checksum = Some(0x1234);
            Fixture {
                name: "TTL 1 with IP options and a bad header checksum: the time exceeded error sums the quote as it is",
                setup: http_world(&[&A]),
                steps: vec![
                    Send::new(
                        "SYN, TTL 1, 8 bytes of options, header checksum 0x1234",
                        frame.bytes(),
                        Verdict::TX,
                        Output::Exact(crate::world::time_exceeded(&frame)),
                    )
                    .counts(&[Stat::ConnNew, Stat::IcmpTimeExceeded])
                    .into(),
                ],
            }
        },
        {
            // RFC 1122 3.2.2: no ICMP error to a source that names no single host.
            let sources = [
                Ipv4Addr::new(0, 0, 0, 7),
                Ipv4Addr::new(127, 0, 0, 1),
                Ipv4Addr::new(224, 0, 0, 5),
                Ipv4Addr::new(240, 1, 2, 3),
                Ipv4Addr::new(255, 255, 255, 255),
            ];
            Fixture {
                name: "TTL 1 from a source that is no single host (0/8, loopback, multicast, class E, broadcast): dropped, no ICMP error",
                setup: http_world(&[&A]),
                steps: sources
                    .iter()
                    .map(|&src| {
                        let mut frame = tcp(src, VIP, 40040, HTTP.port, SYN);
                        frame.ipv4_mut().ttl = 1;
                        Send::drop(
                            format!("SYN from {src}, TTL 1"),
                            frame.bytes(),
                            Stat::DropTtlExpired,
                        )
                        .counts(&[Stat::ConnNew])
                        .into()
                    })
                    .collect(),
            }
        },
        {
            let frame = dns(5353);
            let bytes = ip_len(&frame);
            Fixture {
                name: "UDP query to VIP:53 goes to the real server by DR",
                setup: dns_world(),
                steps: vec![
                    new_flow("query", &frame, &D, &DNS, UDP)
                        .expect([
                            Expect::ServiceStats {
                                id: DNS.id,
                                counters: counters(1, 1, bytes),
                            },
                            Expect::RealStats {
                                id: D.id,
                                counters: counters(1, 1, bytes),
                            },
                        ])
                        .into(),
                ],
            }
        },
        one_syn(
            "SYN with an IP option (ihl 6, router alert)",
            http_world(&[&A]),
            {
                let mut frame = http(40001, SYN);
                frame.ipv4_mut().options = vec![0x94, 0x04, 0x00, 0x00];
                frame
            },
        ),
        one_syn(
            "SYN with the longest IP header (ihl 15: NOPs, then end)",
            http_world(&[&A]),
            {
                let mut frame = http(40002, SYN);
                let mut options = vec![0x01; 39];
                options.push(0x00);
                frame.ipv4_mut().options = options;
                frame
            },
        ),
        one_syn(
            "SYN with TCP options (MSS, SACK-permitted, timestamps, wscale)",
            http_world(&[&A]),
            {
                let mut frame = http(40003, SYN);
                let tcp = Tcp::new(40003, 80, SYN).options(&[
                    0x02, 0x04, 0x05, 0xb4, // MSS 1460
                    0x04, 0x02, // SACK permitted
                    0x08, 0x0a, 0, 0, 0x12, 0x34, 0, 0, 0, 0,    // timestamps
                    0x01, // NOP
                    0x03, 0x03, 0x07, // window scale 7
                ]);
                frame.ipv4_mut().payload = tcp.into();
                frame
            },
        ),
        one_syn(
            "SYN in a padded minimum-size frame (padding kept, not counted)",
            http_world(&[&A]),
            http(40004, SYN).padded_to(60),
        ),
        one_syn(
            "SYN without DF (unfragmented, flags 0)",
            http_world(&[&A]),
            {
                let mut frame = http(40005, SYN);
                frame.ipv4_mut().dont_fragment = false;
                frame
            },
        ),
        {
            let mut tcp = Tcp::new(40006, 80, PSH | ACK).payload(&[0x47; 1400]);
            tcp.options = vec![0x01, 0x01, 0x08, 0x0a, 0, 0, 0x12, 0x35, 0, 0, 0x56, 0x78];
            let mut frame = http(40006, PSH | ACK);
            frame.ipv4_mut().payload = tcp.into();
            Fixture {
                name: "sloppy_tcp: full-size data segment of an unknown flow: scheduled, ESTABLISHED",
                setup: {
                    let mut setup = http_world(&[&A]);
                    setup.push(crate::world::sloppy_tcp());
                    setup
                },
                steps: vec![new_flow("data", &frame, &A, &HTTP, ESTABLISHED).into()],
            }
        },
        {
            let frame = tcp(CLIENT, ALL_PORTS_VIP, 40007, 8443, SYN);
            let mut setup = http_world(&[&A]);
            setup.extend(service_with_table(&ALL_PORTS, &[&B]));
            Fixture {
                name: "a port-0 service takes every port of its VIP",
                setup,
                steps: vec![new_flow("SYN to :8443", &frame, &B, &ALL_PORTS, SYN_RECV).into()],
            }
        },
        {
            let mut setup = http_world(&[&A]);
            setup.extend(service_with_table(&VIP_ALL_PORTS, &[&C]));
            Fixture {
                name: "the exact-port service wins over a port-0 service on the same VIP",
                setup,
                steps: vec![
                    new_flow("SYN to :80", &http(40008, SYN), &A, &HTTP, SYN_RECV).into(),
                    new_flow(
                        "SYN to :8080",
                        &tcp(CLIENT, VIP, 40008, 8080, SYN),
                        &C,
                        &VIP_ALL_PORTS,
                        SYN_RECV,
                    )
                    .into(),
                ],
            }
        },
        {
            let frame = http(40009, SYN);
            let mut setup = http_world(&[&A]);
            setup.push(edit_real(&A, &HTTP, |r| r.ifindex = OTHER_IFINDEX));
            setup.push(Change::Iface {
                ifindex: OTHER_IFINDEX,
                iface: lb_common::Iface {
                    mac: OTHER_NIC_MAC,
                    ..Default::default()
                },
            });
            Fixture {
                name: "real server behind another NIC: XDP_REDIRECT, source MAC of that NIC",
                setup,
                steps: vec![
                    Send::new(
                        "SYN",
                        frame.bytes(),
                        Verdict::REDIRECT,
                        Output::Exact(
                            crate::world::hopped(&frame)
                                .with_macs(A.mac, OTHER_NIC_MAC)
                                .bytes(),
                        ),
                    )
                    .counts(&[Stat::ConnNew, Stat::TxRoute, Stat::Redirect])
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
            let syn = http(40020, SYN);
            let ack = http(40020, ACK);
            let other_host = [0x02, 0xd2, 0x00, 0x00, 0x00, 0x09];
            Fixture {
                name: "frames for another host's MAC (flooded by a switch, or a promiscuous NIC) are the kernel's to drop: passed (pass_other_host), new or known flow",
                setup: http_world(&[&A]),
                steps: vec![
                    Send::pass(
                        "SYN to another MAC",
                        syn.clone().with_macs(other_host, ROUTER_MAC).bytes(),
                        Stat::PassOtherHost,
                    )
                    .expect([Expect::ConnCount(0)])
                    .into(),
                    new_flow("SYN to the director's MAC", &syn, &A, &HTTP, SYN_RECV).into(),
                    Send::pass(
                        "ACK of the flow, to another MAC",
                        ack.clone().with_macs(other_host, ROUTER_MAC).bytes(),
                        Stat::PassOtherHost,
                    )
                    .into(),
                    // The entry keeps the ingress NIC's description from packet to packet:
                    // a change by lbd must reach the next packet.
                    Step::Apply {
                        what: "the director's NIC takes the other MAC",
                        changes: vec![Change::Iface {
                            ifindex: TEST_RUN_IFINDEX,
                            iface: Iface {
                                mac: other_host,
                                addr: addr(DIRECTOR_IP).ipv4(),
                                ..Iface::default()
                            },
                        }],
                    },
                    Send::pass(
                        "ACK of the flow, to the old MAC",
                        ack.bytes(),
                        Stat::PassOtherHost,
                    )
                    .into(),
                ],
            }
        },
        {
            let broadcast = http(40021, SYN).with_macs([0xff; 6], ROUTER_MAC);
            let multicast = http(40022, SYN).with_macs([0x01, 0x00, 0x5e, 0, 0, 1], ROUTER_MAC);
            Fixture {
                name: "broadcast and multicast frames to the VIP are the stack's, as IPVS balances only PACKET_HOST: passed (pass_broadcast), no connection",
                setup: http_world(&[&A]),
                steps: vec![
                    Send::pass(
                        "SYN to ff:ff:ff:ff:ff:ff",
                        broadcast.bytes(),
                        Stat::PassBroadcast,
                    )
                    .expect([Expect::ConnCount(0)])
                    .into(),
                    Send::pass(
                        "SYN to 01:00:5e:00:00:01",
                        multicast.bytes(),
                        Stat::PassBroadcast,
                    )
                    .expect([Expect::ConnCount(0)])
                    .into(),
                ],
            }
        },
        {
            let mut setup = http_world(&[&A]);
            setup.push(edit_real(&A, &HTTP, |r| r.ifindex = 9));
            Fixture {
                name: "real server behind a NIC lbd has not set up: dropped (drop_no_iface)",
                setup,
                steps: vec![
                    Send::drop("SYN", http(40010, SYN).bytes(), Stat::DropNoIface)
                        .counts(&[Stat::ConnNew])
                        .into(),
                ],
            }
        },
        {
            let setup: Vec<Change> = http_world(&[&A])
                .into_iter()
                .filter(|c| !matches!(c, Change::Iface { .. }))
                .collect();
            Fixture {
                name: "ingress NIC missing from IFACES: dropped (drop_no_iface)",
                setup,
                steps: vec![
                    Send::drop("SYN", http(40011, SYN).bytes(), Stat::DropNoIface)
                        .counts(&[Stat::ConnNew])
                        .into(),
                ],
            }
        },
        {
            let syn = http(40015, SYN);
            let ack = http(40015, ACK);
            Fixture {
                name: "NIC gone from IFACES after a flow started: its packets dropped (drop_no_iface)",
                setup: http_world(&[&A]),
                steps: vec![
                    new_flow("SYN", &syn, &A, &HTTP, SYN_RECV).into(),
                    Step::Apply {
                        what: "IFACES[1] deleted",
                        changes: vec![Change::RemoveIface(TEST_RUN_IFINDEX)],
                    },
                    Send::drop("ACK", ack.bytes(), Stat::DropNoIface)
                        .promotes()
                        .counts(&[Stat::ConnHit])
                        .expect([Expect::Conn {
                            flow: flow_of(&ack),
                            real: A.id,
                            service: HTTP.id,
                            state: ESTABLISHED,
                        }])
                        .into(),
                ],
            }
        },
        {
            let frame = http(40012, SYN);
            let mut setup = http_world(&[&A]);
            setup.push(edit_real(&A, &HTTP, |r| r.flags = REAL_F_IN_USE));
            Fixture {
                name: "real server's MAC unresolved: dropped (drop_no_neigh), flow remembered",
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
            let mut setup = http_world(&[&A]);
            setup.push(edit_real(&A, &HTTP, |r| r.method = 9));
            Fixture {
                name: "unknown forwarding method: dropped (drop_unsupported)",
                setup,
                steps: vec![
                    Send::drop("SYN", http(40013, SYN).bytes(), Stat::DropUnsupported)
                        .counts(&[Stat::ConnNew])
                        .into(),
                ],
            }
        },
        {
            // The source MAC is the director's own even when the client's frame came from
            // elsewhere: bridges must not learn the client's MAC on the director's port.
            let frame = http(40014, SYN).with_macs(DIRECTOR_MAC, [0x02, 0x42, 0, 0, 0, 0x99]);
            Fixture {
                name: "whatever the incoming source MAC, DR sends from the director's MAC",
                setup: http_world(&[&B]),
                steps: vec![new_flow("SYN", &frame, &B, &HTTP, SYN_RECV).into()],
            }
        },
    ]
}
