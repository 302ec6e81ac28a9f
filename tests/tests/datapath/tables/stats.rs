//! IPVS's traffic counters: per service and per real server, Conns / InPkts / InBytes, where a
//! packet's bytes are its IPv4 total length (no Ethernet header, no padding). DR sees no
//! replies, so the Out counters stay zero. (Every fixture also checks DP_STATS per packet.)

use lb_common::tcp_state::{ESTABLISHED, SYN_RECV, UDP};

use crate::{
    fixture::{Expect, Fixture, Step, counters},
    packet::{ACK, PSH, SYN, Tcp},
    world::{A, B, D, DNS, HTTP, dns, dns_world, http, http_world, ip_len, known_flow, new_flow},
};

pub fn fixtures() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "service and real-server counters: conns, packets, IPv4 bytes",
            setup: http_world(&[&A, &B]),
            steps: {
                let mut data = http(1001, PSH | ACK);
                data.ipv4_mut().payload =
                    Tcp::new(1001, 80, PSH | ACK).payload(&[0x62; 100]).into();
                assert_eq!(ip_len(&data), 140);
                vec![
                    new_flow("flow 1 SYN", &http(1001, SYN), &A, &HTTP, SYN_RECV).into(),
                    known_flow("flow 1 ACK", &http(1001, ACK), &A, &HTTP, ESTABLISHED)
                        .promotes()
                        .into(),
                    known_flow("flow 1 data", &data, &A, &HTTP, ESTABLISHED)
                        .expect([
                            Expect::ServiceStats {
                                id: HTTP.id,
                                counters: counters(1, 3, 220),
                            },
                            Expect::RealStats {
                                id: A.id,
                                counters: counters(1, 3, 220),
                            },
                            Expect::RealStats {
                                id: B.id,
                                counters: counters(0, 0, 0),
                            },
                        ])
                        .into(),
                    new_flow("flow 2 SYN", &http(1002, SYN), &B, &HTTP, SYN_RECV).into(),
                    Step::Expect(vec![
                        Expect::ServiceStats {
                            id: HTTP.id,
                            counters: counters(2, 4, 260),
                        },
                        Expect::RealStats {
                            id: A.id,
                            counters: counters(1, 3, 220),
                        },
                        Expect::RealStats {
                            id: B.id,
                            counters: counters(1, 1, 40),
                        },
                        Expect::ServiceStats {
                            id: DNS.id,
                            counters: counters(0, 0, 0),
                        },
                    ]),
                ]
            },
        },
        Fixture {
            name: "UDP counters: one connection per 5-tuple, every datagram counted",
            setup: dns_world(),
            steps: {
                let bytes = ip_len(&dns(5353));
                vec![
                    new_flow("query 1", &dns(5353), &D, &DNS, UDP).into(),
                    known_flow("query 2", &dns(5353), &D, &DNS, UDP)
                        .promotes()
                        .into(),
                    known_flow("query 3", &dns(5353), &D, &DNS, UDP)
                        .expect([
                            Expect::ServiceStats {
                                id: DNS.id,
                                counters: counters(1, 3, 3 * bytes),
                            },
                            Expect::RealStats {
                                id: D.id,
                                counters: counters(1, 3, 3 * bytes),
                            },
                        ])
                        .into(),
                ]
            },
        },
        Fixture {
            name: "bytes are the IPv4 total length: options counted, Ethernet padding not",
            setup: http_world(&[&A]),
            steps: {
                let mut with_options = http(2001, SYN);
                with_options.ipv4_mut().options = vec![0x94, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00];
                vec![
                    new_flow(
                        "padded SYN",
                        &http(2002, SYN).padded_to(60),
                        &A,
                        &HTTP,
                        SYN_RECV,
                    )
                    .into(),
                    new_flow(
                        "SYN with 8 option bytes",
                        &with_options,
                        &A,
                        &HTTP,
                        SYN_RECV,
                    )
                    .expect([Expect::ServiceStats {
                        id: HTTP.id,
                        counters: counters(2, 2, 40 + 48),
                    }])
                    .into(),
                ]
            },
        },
    ]
}
