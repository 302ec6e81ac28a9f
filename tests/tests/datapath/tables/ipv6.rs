//! IPv6: parsing (extension headers, fragments, what is not ours), and DR and NAT of IPv6
//! services, byte for byte. Expected frames are built by the test's own packet builder (its
//! checksums computed from scratch over the IPv6 pseudo-header), never by the program's code.
//!
//! ```text
//!  client 2001:db8:51::7 ── router ──▶ director (VIP6 2001:db8:10::10)
//!                                         │ DR: dst MAC rewritten, hop limit one less
//!                                         ▼
//!                    real servers A6 2001:db8:1::11, B6 ::12 (HTTP), D6 ::14 (DNS)
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use lb_common::{
    AF_INET6, Addr, FlowKey, IPPROTO_TCP, IPPROTO_UDP, REAL_F_IN_USE, REAL_F_RESOLVED, RealServer,
    Service, ServiceKey, Stat, method,
    tcp_state::{ESTABLISHED, SYN_RECV, UDP},
    tunnel,
};

use crate::{
    checksum,
    fixture::{Expect, Fixture, Output, Send, counters},
    harness::{Change, Verdict},
    packet::{ACK, Frame, Ipv4, Ipv6, L3, L4, SYN, Tcp, Udp},
    wire::Mac,
    world::{self, DIRECTOR_MAC, Encap, ROUTER_MAC, director_iface},
};

const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 7);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x10);
/// An IPv6 address whose first 32 bits are the IPv4 VIP's (203.0.113.10) and the rest zero:
/// the same words as the IPv4 VIP in the maps' form, told apart only by the family.
const VIP_LOOKALIKE: Ipv6Addr = Ipv6Addr::new(0xcb00, 0x710a, 0, 0, 0, 0, 0, 0);

struct Real6 {
    id: u32,
    addr: Ipv6Addr,
    mac: Mac,
}

const A6: Real6 = Real6 {
    id: 21,
    addr: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11),
    mac: [0x02, 0x00, 0x5e, 0x10, 0x06, 0x0a],
};
const B6: Real6 = Real6 {
    id: 22,
    addr: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x12),
    mac: [0x02, 0x00, 0x5e, 0x10, 0x06, 0x0b],
};
const D6: Real6 = Real6 {
    id: 24,
    addr: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x14),
    mac: [0x02, 0x00, 0x5e, 0x10, 0x06, 0x0d],
};

struct Service6 {
    id: u32,
    port: u16,
    proto: u8,
    table_offset: u32,
}

const HTTP6: Service6 = Service6 {
    id: 10,
    port: 80,
    proto: IPPROTO_TCP,
    table_offset: 512,
};
const DNS6: Service6 = Service6 {
    id: 11,
    port: 53,
    proto: IPPROTO_UDP,
    table_offset: 576,
};

fn key6(svc: &Service6) -> ServiceKey {
    ServiceKey {
        addr: Addr::from(VIP6),
        port: svc.port.to_be(),
        proto: svc.proto,
        family: AF_INET6,
    }
}

fn real6(real: &Real6, svc: &Service6) -> Change {
    Change::Real {
        id: real.id,
        real: RealServer {
            addr: Addr::from(real.addr),
            port: svc.port.to_be(),
            method: method::ROUTE,
            flags: REAL_F_IN_USE | REAL_F_RESOLVED,
            mac: real.mac,
            family: AF_INET6,
            weight: 1,
            service: svc.id,
            ..RealServer::default()
        },
    }
}

fn service6(svc: &Service6, reals: &[&Real6]) -> Vec<Change> {
    let mut changes: Vec<Change> = reals.iter().map(|r| real6(r, svc)).collect();
    changes.push(Change::Slots {
        offset: svc.table_offset,
        ids: reals.iter().map(|r| r.id).collect(),
    });
    changes.push(Change::Service {
        key: key6(svc),
        service: Service {
            id: svc.id,
            table_offset: svc.table_offset,
            table_len: reals.len() as u32,
            ..Service::default()
        },
    });
    changes
}

/// The director, HTTP over IPv6 to `reals` by DR, and DNS over IPv6 to D6.
fn world6(reals: &[&Real6]) -> Vec<Change> {
    let mut changes = vec![director_iface()];
    changes.extend(service6(&HTTP6, reals));
    changes.extend(service6(&DNS6, &[&D6]));
    changes
}

fn frame6(ip: Ipv6) -> Frame {
    Frame::new(DIRECTOR_MAC, ROUTER_MAC, ip)
}

fn http6(sport: u16, flags: u8) -> Frame {
    frame6(Ipv6::new(CLIENT6, VIP6, Tcp::new(sport, 80, flags)))
}

fn dns6(sport: u16) -> Frame {
    frame6(Ipv6::new(
        CLIENT6,
        VIP6,
        Udp::new(
            sport,
            53,
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",
        ),
    ))
}

fn ip6(frame: &Frame) -> &Ipv6 {
    match &frame.body {
        L3::Ipv6(ip) => ip,
        other => panic!("not IPv6: {other:?}"),
    }
}

/// The connection-table key of an IPv6 TCP/UDP frame.
fn flow6(frame: &Frame) -> FlowKey {
    let ip = ip6(frame);
    let (sport, dport) = match &ip.payload {
        L4::Tcp(t) => (t.sport, t.dport),
        L4::Udp(u) => (u.sport, u.dport),
        other => panic!("not TCP/UDP: {other:?}"),
    };
    FlowKey {
        saddr: Addr::from(ip.src),
        daddr: Addr::from(ip.dst),
        sport: sport.to_be(),
        dport: dport.to_be(),
        proto: ip.payload.proto(),
        family: AF_INET6,
        _pad16: 0,
    }
}

/// What IPVS counts for an IPv6 packet: the fixed header and its payload.
fn len6(frame: &Frame) -> u64 {
    let bytes = frame.bytes();
    40 + u64::from(u16::from_be_bytes([bytes[18], bytes[19]]))
}

/// What DR sends to `real`: the same frame, hop limit one less, between the MACs.
fn via_dr6(frame: &Frame, real: &Real6) -> Vec<u8> {
    let mut out = frame.clone().with_macs(real.mac, DIRECTOR_MAC);
    out.ipv6_mut().hop_limit -= 1;
    out.bytes()
}

fn dr6(what: &str, frame: &Frame, real: &Real6, svc: &Service6, state: u8, new: bool) -> Send {
    let counted = if new { Stat::ConnNew } else { Stat::ConnHit };
    Send::new(
        what,
        frame.bytes(),
        Verdict::TX,
        Output::Exact(via_dr6(frame, real)),
    )
    .counts(&[counted, Stat::TxRoute])
    .expect([Expect::Conn {
        flow: flow6(frame),
        real: real.id,
        service: svc.id,
        state,
    }])
}

fn untouched6(name: &'static str, setup: Vec<Change>, input: Vec<u8>, reason: Stat) -> Fixture {
    Fixture {
        name,
        setup,
        steps: vec![
            Send::pass(name, input, reason)
                .expect([
                    Expect::ConnCount(0),
                    Expect::ServiceStats {
                        id: HTTP6.id,
                        counters: counters(0, 0, 0),
                    },
                ])
                .into(),
        ],
    }
}

/// The ICMPv6 error `ty`/`code` with `word` (the MTU for "packet too big") the director sends
/// back about `frame` as it left this hop (RFC 4443): from the VIP to the client, hop limit
/// 64, quoting the first 48 bytes of the packet; checksum over the IPv6 pseudo-header.
fn icmp6_error(frame: &Frame, ty: u8, code: u8, word: u32) -> Vec<u8> {
    let ip = ip6(frame);
    let original = ip.bytes();
    let mut message = vec![ty, code, 0, 0];
    message.extend_from_slice(&word.to_be_bytes());
    message.extend_from_slice(&original[..48]);
    let pseudo = checksum::pseudo_v6(ip.dst, ip.src, 58, message.len() as u32);
    let sum = checksum::finish(checksum::sum(pseudo, &message));
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut reply = Ipv6::new(
        ip.dst,
        ip.src,
        L4::Raw {
            proto: 58,
            bytes: message,
        },
    );
    reply.hop_limit = 64;
    Frame::new(frame.src, frame.dst, reply).bytes()
}

pub fn fixtures() -> Vec<Fixture> {
    vec![
        {
            let syn = http6(41000, SYN);
            let bytes = len6(&syn);
            Fixture {
                name: "IPv6 TCP SYN to [VIP6]:80 goes to the real server by DR, hop limit one less; its ACK establishes",
                setup: world6(&[&A6]),
                steps: vec![
                    dr6("SYN", &syn, &A6, &HTTP6, SYN_RECV, true)
                        .expect([
                            Expect::HalfOpen(flow6(&syn), true),
                            Expect::ServiceStats {
                                id: HTTP6.id,
                                counters: counters(1, 1, bytes),
                            },
                            Expect::RealStats {
                                id: A6.id,
                                counters: counters(1, 1, bytes),
                            },
                        ])
                        .into(),
                    dr6("ACK", &http6(41000, ACK), &A6, &HTTP6, ESTABLISHED, false)
                        .promotes()
                        .expect([Expect::HalfOpen(flow6(&syn), false)])
                        .into(),
                ],
            }
        },
        Fixture {
            name: "IPv6 round robin: two new connections, one to each real server",
            setup: world6(&[&A6, &B6]),
            steps: vec![
                dr6("first SYN", &http6(41010, SYN), &A6, &HTTP6, SYN_RECV, true).into(),
                dr6(
                    "second SYN",
                    &http6(41011, SYN),
                    &B6,
                    &HTTP6,
                    SYN_RECV,
                    true,
                )
                .into(),
                dr6(
                    "first again",
                    &http6(41010, ACK),
                    &A6,
                    &HTTP6,
                    ESTABLISHED,
                    false,
                )
                .promotes()
                .into(),
            ],
        },
        Fixture {
            name: "IPv6 UDP query to [VIP6]:53 goes to the real server by DR",
            setup: world6(&[&A6]),
            steps: vec![dr6("query", &dns6(5300), &D6, &DNS6, UDP, true).into()],
        },
        Fixture {
            name: "IPv6 SYN behind hop-by-hop and destination options headers: balanced, headers kept",
            setup: world6(&[&A6]),
            steps: vec![{
                let mut frame = http6(41020, SYN);
                let ip = frame.ipv6_mut();
                *ip = ip.clone().with_extension(0, 8).with_extension(60, 16);
                dr6("SYN", &frame, &A6, &HTTP6, SYN_RECV, true).into()
            }],
        },
        {
            // A UDP datagram in two fragments: the first has the ports, the second only data.
            let first = {
                let mut f = dns6(5301);
                let ip = f.ipv6_mut();
                *ip = ip.clone().with_fragment(0, true, 0x0102_0304);
                f
            };
            let later = {
                let mut f = dns6(5301);
                let ip = f.ipv6_mut();
                *ip = ip.clone().with_fragment(1232, false, 0x0102_0304);
                ip.raw_payload = Some(vec![0x5a; 40]);
                f
            };
            let other_id = {
                let mut f = later.clone();
                let ip = f.ipv6_mut();
                ip.extensions[0].1[4..8].copy_from_slice(&9u32.to_be_bytes());
                f
            };
            Fixture {
                name: "IPv6 fragments: the first (with the ports) is scheduled, a later one of the same datagram (32-bit identification) follows it; another datagram's later fragment goes to the kernel",
                setup: world6(&[&A6]),
                steps: vec![
                    dr6("first fragment", &first, &D6, &DNS6, UDP, true).into(),
                    Send::new(
                        "later fragment",
                        later.bytes(),
                        Verdict::TX,
                        Output::Exact(via_dr6(&later, &D6)),
                    )
                    .counts(&[Stat::Fragment, Stat::ConnHit, Stat::TxRoute])
                    .into(),
                    Send::pass(
                        "later fragment of another datagram",
                        other_id.bytes(),
                        Stat::PassFragment,
                    )
                    .into(),
                ],
            }
        },
        {
            let mut frame = http6(41030, SYN);
            frame.ipv6_mut().hop_limit = 1;
            let mut steps = vec![
                Send::new(
                    "SYN, hop limit 1",
                    frame.bytes(),
                    Verdict::TX,
                    Output::Exact(icmp6_error(&frame, 3, 0, 0)),
                )
                .counts(&[Stat::ConnNew, Stat::IcmpTimeExceeded])
                .into(),
            ];
            // RFC 4443 2.4 (e): never to a source that is no single host.
            for (i, src) in ["ff02::1", "::", "::1"].into_iter().enumerate() {
                let mut frame = frame6(Ipv6::new(
                    src.parse().unwrap(),
                    VIP6,
                    Tcp::new(41031 + i as u16, 80, SYN),
                ));
                frame.ipv6_mut().hop_limit = 1;
                steps.push(
                    Send::drop(
                        format!("SYN from {src}, hop limit 1"),
                        frame.bytes(),
                        Stat::DropTtlExpired,
                    )
                    .counts(&[Stat::ConnNew])
                    .into(),
                );
            }
            Fixture {
                name: "IPv6 hop limit 1: answered with ICMPv6 time exceeded from the VIP (IPVS's decrement_ttl), never to a multicast, unspecified or loopback source",
                setup: world6(&[&A6]),
                steps,
            }
        },
        untouched6(
            "IPv6 SYN to an address with no service",
            world6(&[&A6]),
            frame6(Ipv6::new(
                CLIENT6,
                Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x99),
                Tcp::new(41040, 80, SYN),
            ))
            .bytes(),
            Stat::PassNotService,
        ),
        untouched6(
            "IPv6 SYN to [VIP6]:81 (no service on that port)",
            world6(&[&A6]),
            frame6(Ipv6::new(CLIENT6, VIP6, Tcp::new(41041, 81, SYN))).bytes(),
            Stat::PassNotService,
        ),
        untouched6(
            "IPv6 SYN to an address whose words are the IPv4 VIP's: the family tells them apart",
            {
                let mut setup = world::http_world(&[&world::A]);
                setup.extend(world6(&[&A6]));
                setup
            },
            frame6(Ipv6::new(CLIENT6, VIP_LOOKALIKE, Tcp::new(41042, 80, SYN))).bytes(),
            Stat::PassNotService,
        ),
        untouched6(
            "ICMPv6 neighbour solicitation for the VIP: the kernel's",
            world6(&[&A6]),
            frame6(Ipv6::new(
                CLIENT6,
                VIP6,
                L4::Raw {
                    proto: 58,
                    bytes: {
                        // Type 135, code 0, checksum (not checked here), reserved, target.
                        let mut ns = vec![135, 0, 0, 0, 0, 0, 0, 0];
                        ns.extend_from_slice(&VIP6.octets());
                        ns
                    },
                },
            ))
            .bytes(),
            Stat::PassNotService,
        ),
        untouched6(
            "IPv6 SYN behind five extension headers (more than the parser steps over)",
            world6(&[&A6]),
            {
                let mut frame = http6(41043, SYN);
                let ip = frame.ipv6_mut();
                let mut chained = ip.clone();
                for _ in 0..5 {
                    chained = chained.with_extension(60, 8);
                }
                *ip = chained;
                frame.bytes()
            },
            Stat::PassNotService,
        ),
        untouched6(
            "IPv6 payload length beyond the frame",
            world6(&[&A6]),
            {
                let mut bytes = http6(41044, SYN).bytes();
                bytes[18..20].copy_from_slice(&200u16.to_be_bytes());
                bytes
            },
            Stat::PassMalformed,
        ),
        untouched6(
            "IPv6 TCP header cut short (payload length 12)",
            world6(&[&A6]),
            {
                let mut bytes = http6(41045, SYN).bytes();
                bytes[18..20].copy_from_slice(&12u16.to_be_bytes());
                bytes.truncate(14 + 40 + 12);
                bytes
            },
            Stat::PassMalformed,
        ),
        {
            let v4 = world::http(41050, SYN);
            let v6 = http6(41050, SYN);
            Fixture {
                name: "dual stack: an IPv4 and an IPv6 service side by side, same client port, separate connections",
                setup: {
                    let mut setup = world::http_world(&[&world::A]);
                    setup.extend(world6(&[&B6]));
                    setup
                },
                steps: vec![
                    world::new_flow("IPv4 SYN", &v4, &world::A, &world::HTTP, SYN_RECV).into(),
                    dr6("IPv6 SYN", &v6, &B6, &HTTP6, SYN_RECV, true)
                        .expect([Expect::ConnCount(2)])
                        .into(),
                ],
            }
        },
    ]
}

// ---- NAT over IPv6 -----------------------------------------------------------------------------
//
// As the IPv4 NAT fixtures, in a network namespace of real interfaces (the program asks the
// kernel's FIB for next hops): clients on ext0 (2001:db8:10::2/64, the VIP on it too), the real
// servers on int0 (2001:db8:1::1/64, their gateway), IPv6 forwarding on, permanent neighbour
// entries.

const ROUTER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 1);
const RPORT: u16 = 8080;

/// The NAT director's interfaces over IPv6.
pub struct Nat6Net {
    ext: u32,
    int: u32,
}

impl Nat6Net {
    /// Builds the network in the calling thread's (fresh) network namespace.
    pub fn build() -> Nat6Net {
        let ip = |line: String| {
            let argv: Vec<&str> = line.split_whitespace().collect();
            lb_tests::cmd::run(&argv);
        };
        for (nic, mac) in [("ext0", DIRECTOR_MAC), ("int0", world::OTHER_NIC_MAC)] {
            ip(format!(
                "ip link add {nic} address {} type veth peer name {nic}p",
                crate::wire::fmt_mac(&mac)
            ));
            ip(format!("ip link set {nic} up"));
            ip(format!("ip link set {nic}p up"));
        }
        ip("ip link set lo up".into());
        ip("ip -6 addr add 2001:db8:10::2/64 dev ext0 nodad".into());
        ip(format!("ip -6 addr add {VIP6}/128 dev ext0 nodad"));
        ip("ip -6 addr add 2001:db8:1::1/64 dev int0 nodad".into());
        ip(format!("ip -6 route add default via {ROUTER6} dev ext0"));
        for (addr, mac, nic) in [(ROUTER6, ROUTER_MAC, "ext0"), (A6.addr, A6.mac, "int0")] {
            ip(format!(
                "ip -6 neigh replace {addr} lladdr {} dev {nic} nud permanent",
                crate::wire::fmt_mac(&mac)
            ));
        }
        std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
            .expect("setting net.ipv6.conf.all.forwarding");
        Nat6Net {
            ext: crate::harness::ifindex("ext0"),
            int: crate::harness::ifindex("int0"),
        }
    }

    fn nics(&self) -> Vec<Change> {
        [(self.ext, DIRECTOR_MAC), (self.int, world::OTHER_NIC_MAC)]
            .map(|(ifindex, mac)| Change::Iface {
                ifindex,
                iface: lb_common::Iface {
                    mac,
                    ..lb_common::Iface::default()
                },
            })
            .into()
    }
}

fn nat_world6(net: &Nat6Net) -> Vec<Change> {
    let mut setup = net.nics();
    let mut changes = service6(&HTTP6, &[&A6]);
    if let Change::Real { real, .. } = &mut changes[0] {
        real.method = method::MASQ;
        real.port = RPORT.to_be();
    }
    setup.extend(changes);
    setup
}

fn ports_mut(ip: &mut Ipv6) -> (&mut u16, &mut u16) {
    match &mut ip.payload {
        L4::Tcp(t) => (&mut t.sport, &mut t.dport),
        L4::Udp(u) => (&mut u.sport, &mut u.dport),
        other => panic!("not TCP/UDP: {other:?}"),
    }
}

fn nat_entry(state: u8, reply: bool) -> lb_common::Conn {
    lb_common::Conn {
        real: A6.id,
        service: HTTP6.id,
        vaddr: Addr::from(VIP6),
        vport: HTTP6.port.to_be(),
        state,
        flags: if reply { lb_common::CONN_F_REPLY } else { 0 },
        ..lb_common::Conn::default()
    }
}

/// A client's SYN (on ext0) readdressed to [A6]:8080 and sent out of int0, hop limit one
/// less; the test's builder recomputes the TCP checksum over the new pseudo-header.
fn nat_syn6(net: &Nat6Net, syn: &Frame) -> Send {
    let mut to_real = syn.clone().with_macs(A6.mac, world::OTHER_NIC_MAC);
    let ip = to_real.ipv6_mut();
    ip.dst = A6.addr;
    ip.hop_limit -= 1;
    *ports_mut(ip).1 = RPORT;
    Send::new(
        "SYN",
        syn.bytes(),
        Verdict::REDIRECT,
        Output::Exact(to_real.bytes()),
    )
    .on(net.ext)
    .counts(&[Stat::ConnNew, Stat::TxNat, Stat::Redirect])
}

pub fn nat_fixtures(net: &Nat6Net) -> Vec<Fixture> {
    let syn = http6(41100, SYN);
    let reply = Frame::new(
        world::OTHER_NIC_MAC,
        A6.mac,
        Ipv6::new(A6.addr, CLIENT6, Tcp::new(RPORT, 41100, SYN | ACK)),
    );
    let mut to_client = reply.clone().with_macs(ROUTER_MAC, DIRECTOR_MAC);
    {
        let ip = to_client.ipv6_mut();
        ip.src = VIP6;
        ip.hop_limit -= 1;
        *ports_mut(ip).0 = HTTP6.port;
    }
    let reply_key = FlowKey {
        saddr: Addr::from(A6.addr),
        daddr: Addr::from(CLIENT6),
        sport: RPORT.to_be(),
        dport: 41100u16.to_be(),
        proto: IPPROTO_TCP,
        family: AF_INET6,
        _pad16: 0,
    };
    vec![Fixture {
        name: "IPv6 NAT: the SYN is readdressed to [A6]:8080 (TCP checksum over the new pseudo-header), the SYN-ACK back from [VIP6]:80; both entries",
        setup: nat_world6(net),
        steps: vec![
            nat_syn6(net, &syn)
                .expect([
                    Expect::ConnEntry {
                        flow: flow6(&syn),
                        conn: nat_entry(SYN_RECV, false),
                    },
                    Expect::ConnEntry {
                        flow: reply_key,
                        conn: nat_entry(SYN_RECV, true),
                    },
                ])
                .into(),
            Send::new(
                "SYN-ACK",
                reply.bytes(),
                Verdict::REDIRECT,
                Output::Exact(to_client.bytes()),
            )
            .on(net.int)
            .counts(&[Stat::ConnHit, Stat::TxNatReply, Stat::Redirect])
            .into(),
        ],
    }]
}

// ---- tunnels -------------------------------------------------------------------------------

/// The director's IPv6 address on its NIC: the outer source of IPv6 tunnels.
const DIRECTOR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 2);

/// The director's NIC with its IPv4 and IPv6 addresses.
fn dual_stack_iface() -> Change {
    Change::Iface {
        ifindex: crate::harness::TEST_RUN_IFINDEX,
        iface: lb_common::Iface {
            mac: DIRECTOR_MAC,
            addr: world::addr(world::DIRECTOR_IP).ipv4(),
            addr6: Addr::from(DIRECTOR6),
            ..lb_common::Iface::default()
        },
    }
}

/// HTTP6 with A6 as its one real server, by TUN, reached at `addr` (either family), with
/// `mtu` on the path (0: unknown).
fn tun_world6(addr: std::net::IpAddr, mtu: u32) -> Vec<Change> {
    let mut setup = vec![dual_stack_iface()];
    let mut changes = service6(&HTTP6, &[&A6]);
    if let Change::Real { real, .. } = &mut changes[0] {
        real.method = method::TUNNEL;
        real.addr = Addr::from(addr);
        real.family = lb_common::addr::family_of(&addr);
        real.mtu = mtu;
    }
    setup.extend(changes);
    setup
}

/// `frame`'s IP packet (one hop on) as the payload of an outer header of protocol `proto`.
fn inner_of(frame: &Frame, proto: u8) -> L4 {
    let bytes = frame.bytes();
    L4::Raw {
        proto,
        bytes: bytes[14..].to_vec(),
    }
}

fn hopped6(frame: &Frame) -> Frame {
    let mut out = frame.clone();
    out.ipv6_mut().hop_limit -= 1;
    out
}

pub fn tunnel_fixtures() -> Vec<Fixture> {
    let syn = http6(41200, SYN);
    let big = {
        let mut f = http6(41201, SYN);
        f.ipv6_mut().payload = Tcp::new(41201, 80, SYN).payload(&[0x42; 1300]).into();
        f
    };
    vec![
        {
            let mut outer = Ipv6::new(DIRECTOR6, A6.addr, inner_of(&hopped6(&syn), 41));
            outer.hop_limit = 63;
            let out = Frame::new(A6.mac, DIRECTOR_MAC, outer);
            Fixture {
                name: "IPv6 in IPv6 (RFC 2473): the SYN, one hop on, in an outer IPv6 header from the NIC's IPv6 address, next header 41, hop limit copied",
                setup: tun_world6(A6.addr.into(), 0),
                steps: vec![
                    Send::new("SYN", syn.bytes(), Verdict::TX, Output::Exact(out.bytes()))
                        .counts(&[Stat::ConnNew, Stat::TxTunnel])
                        .into(),
                ],
            }
        },
        {
            let real4 = Ipv4Addr::new(10, 1, 0, 11);
            let mut outer = Ipv4::new(world::DIRECTOR_IP, real4, inner_of(&hopped6(&syn), 41));
            outer.ident = 0;
            outer.dont_fragment = true;
            outer.ttl = 63;
            let out = Frame::new(A6.mac, DIRECTOR_MAC, outer);
            Fixture {
                name: "IPv6 in IPv4 (6in4): an IPv6 service's IPv4 tunnel real server gets protocol 41, DF, ID 0, TTL from the hop limit",
                setup: tun_world6(real4.into(), 0),
                steps: vec![
                    Send::new("SYN", syn.bytes(), Verdict::TX, Output::Exact(out.bytes()))
                        .counts(&[Stat::ConnNew, Stat::TxTunnel])
                        .into(),
                ],
            }
        },
        {
            let v4 = world::http(41202, SYN);
            let mut outer = Ipv6::new(DIRECTOR6, A6.addr, inner_of(&world::hopped(&v4), 4));
            outer.hop_limit = 63;
            let out = Frame::new(world::A.mac, DIRECTOR_MAC, outer);
            Fixture {
                name: "IPv4 in IPv6: an IPv4 service's IPv6 tunnel real server (IPVS since 3.18) gets next header 4",
                setup: {
                    let mut setup = world::http_world(&[&world::A]);
                    setup.push(dual_stack_iface());
                    setup.push(world::edit_real(&world::A, &world::HTTP, |r| {
                        r.method = method::TUNNEL;
                        r.addr = Addr::from(A6.addr);
                        r.family = AF_INET6;
                    }));
                    setup
                },
                steps: vec![
                    Send::new("SYN", v4.bytes(), Verdict::TX, Output::Exact(out.bytes()))
                        .counts(&[Stat::ConnNew, Stat::TxTunnel])
                        .into(),
                ],
            }
        },
        Fixture {
            name: "IPv6 in IPv6, too big for the path (MTU 1300): ICMPv6 packet too big with 1280, the minimum MTU (IPVS's ensure_mtu_is_adequate)",
            setup: tun_world6(A6.addr.into(), 1300),
            steps: vec![
                Send::new(
                    "1,360-byte SYN",
                    big.bytes(),
                    Verdict::TX,
                    Output::Exact(icmp6_error(&hopped6(&big), 2, 0, 1280)),
                )
                .counts(&[Stat::ConnNew, Stat::IcmpFragNeeded])
                .into(),
            ],
        },
        Fixture {
            name: "IPv6 in IPv6 from a NIC with no IPv6 address: dropped (drop_no_iface)",
            setup: {
                let mut setup = tun_world6(A6.addr.into(), 0);
                setup[0] = director_iface();
                setup
            },
            steps: vec![
                Send::drop("SYN", syn.bytes(), Stat::DropNoIface)
                    .counts(&[Stat::ConnNew])
                    .into(),
            ],
        },
    ]
}

// ---- GUE and GRE where IPv6 is involved ------------------------------------------------------

/// `setup`'s one TUN real server set to the encapsulation `encap`.
fn with_encap(mut setup: Vec<Change>, encap: Encap) -> Vec<Change> {
    for change in &mut setup {
        if let Change::Real { real, .. } = change {
            match encap {
                Encap::Ipip => {}
                Encap::Gue { port, csum } => {
                    real.tun_type = tunnel::GUE;
                    real.tun_port = port.to_be();
                    real.tun_flags = if csum { tunnel::F_CSUM } else { 0 };
                }
                Encap::Gre { csum } => {
                    real.tun_type = tunnel::GRE;
                    real.tun_flags = if csum { tunnel::F_CSUM } else { 0 };
                }
            }
        }
    }
    setup
}

/// GUE's UDP source port for an IPv6 client's TCP flow: the flow hashed by
/// `lb_common::tunnel::source_port`, the helper both sides share (as for IPv4), over the
/// addresses folded as IPVS folds them.
fn gue_source_port6(frame: &Frame) -> u16 {
    let ip = ip6(frame);
    let L4::Tcp(tcp) = &ip.payload else {
        panic!("not TCP: {:?}", ip.payload)
    };
    u16::from_be(tunnel::source_port(
        Addr::from(ip.src).fold(),
        Addr::from(ip.dst).fold(),
        tcp.sport.to_be(),
        tcp.dport.to_be(),
        IPPROTO_TCP,
    ))
}

/// What follows the outer header when `encap` carries `inner` (an IP packet whose protocol
/// number is `proto`: 4 or 41), GUE from the UDP port `gue_sport`. The UDP checksum is
/// computed by the packet builder over the pseudo header of the outer header it ends up in;
/// GRE's here over the GRE header and the packet (RFC 2784).
fn encapsulated(inner: &Frame, proto: u8, gue_sport: u16, encap: Encap) -> L4 {
    let inner = inner.bytes()[14..].to_vec();
    match encap {
        Encap::Ipip => L4::Raw {
            proto,
            bytes: inner,
        },
        Encap::Gue { port, csum } => {
            let mut gue = vec![0x00, proto, 0x00, 0x00];
            gue.extend_from_slice(&inner);
            let mut udp = Udp::new(gue_sport, port, &gue);
            if !csum {
                udp.checksum = Some(0);
            }
            udp.into()
        }
        Encap::Gre { csum } => {
            let [t0, t1] = if proto == 41 {
                [0x86, 0xdd]
            } else {
                [0x08, 0x00]
            };
            let mut bytes = if csum {
                vec![0x80, 0x00, t0, t1, 0x00, 0x00, 0x00, 0x00]
            } else {
                vec![0x00, 0x00, t0, t1]
            };
            bytes.extend_from_slice(&inner);
            if csum {
                let sum = checksum::checksum(&bytes);
                bytes[4..6].copy_from_slice(&sum.to_be_bytes());
            }
            L4::Raw { proto: 47, bytes }
        }
    }
}

/// An IPv6 SYN from `sport` carrying `len` bytes (odd lengths leave the checksums a tail).
fn syn6_with(sport: u16, len: usize) -> Frame {
    let mut frame = http6(sport, SYN);
    frame.ipv6_mut().payload = Tcp::new(sport, 80, SYN)
        .payload(&(0..len).map(|i| (i * 13 + 5) as u8).collect::<Vec<_>>())
        .into();
    frame
}

fn tunnelled(name: &'static str, setup: Vec<Change>, input: &Frame, out: Frame) -> Fixture {
    Fixture {
        name,
        setup,
        steps: vec![
            Send::new(
                "SYN",
                input.bytes(),
                Verdict::TX,
                Output::Exact(out.bytes()),
            )
            .counts(&[Stat::ConnNew, Stat::TxTunnel])
            .into(),
        ],
    }
}

const GUE_PORT: u16 = 6080;
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

/// GUE and GRE (`--tun-type gue|gre`) to IPv6 real servers, as `ip_vs_tunnel_xmit_v6` builds
/// them (next header 17 or 47 after the outer IPv6 header; GUE carrying 41 or 4, GRE
/// 0x86dd or 0x0800; the UDP checksum 0 unless `--tun-csum`, else over the IPv6 pseudo
/// header), and to an IPv4 real server of an IPv6 service (6in4: GUE carrying 41, the UDP
/// checksum over the IPv4 pseudo header).
pub fn encap_fixtures() -> Vec<Fixture> {
    // 6in6, each encapsulation; the checksummed ones over odd lengths.
    let six_in_six = |name, encap: Encap, input: Frame| {
        let hopped = hopped6(&input);
        let mut outer = Ipv6::new(
            DIRECTOR6,
            A6.addr,
            encapsulated(&hopped, 41, gue_source_port6(&input), encap),
        );
        outer.hop_limit = 63;
        tunnelled(
            name,
            with_encap(tun_world6(A6.addr.into(), 0), encap),
            &input,
            Frame::new(A6.mac, DIRECTOR_MAC, outer),
        )
    };
    let real4 = Ipv4Addr::new(10, 1, 0, 11);
    let six_in_four = |name, encap: Encap, input: Frame| {
        let hopped = hopped6(&input);
        let mut outer = Ipv4::new(
            world::DIRECTOR_IP,
            real4,
            encapsulated(&hopped, 41, gue_source_port6(&input), encap),
        );
        outer.ident = 0;
        outer.dont_fragment = true;
        outer.ttl = 63;
        tunnelled(
            name,
            with_encap(tun_world6(real4.into(), 0), encap),
            &input,
            Frame::new(A6.mac, DIRECTOR_MAC, outer),
        )
    };
    let four_in_six = |name, encap: Encap, input: Frame| {
        let hopped = world::hopped(&input);
        let mut outer = Ipv6::new(
            DIRECTOR6,
            A6.addr,
            encapsulated(&hopped, 4, world::gue_source_port(input.ipv4()), encap),
        );
        outer.hop_limit = 63;
        let mut setup = world::http_world(&[&world::A]);
        setup.push(dual_stack_iface());
        setup.push(world::edit_real(&world::A, &world::HTTP, |r| {
            r.method = method::TUNNEL;
            r.addr = Addr::from(A6.addr);
            r.family = AF_INET6;
            match encap {
                Encap::Gue { port, csum } => {
                    r.tun_type = tunnel::GUE;
                    r.tun_port = port.to_be();
                    r.tun_flags = if csum { tunnel::F_CSUM } else { 0 };
                }
                Encap::Gre { csum } => {
                    r.tun_type = tunnel::GRE;
                    r.tun_flags = if csum { tunnel::F_CSUM } else { 0 };
                }
                Encap::Ipip => {}
            }
        }));
        tunnelled(
            name,
            setup,
            &input,
            Frame::new(world::A.mac, DIRECTOR_MAC, outer),
        )
    };
    let v4_segment = |sport: u16, len: usize| {
        let mut frame = world::http(sport, SYN);
        frame.ipv4_mut().payload = Tcp::new(sport, world::HTTP.port, SYN)
            .payload(&(0..len).map(|i| (i * 7 + 3) as u8).collect::<Vec<_>>())
            .into();
        frame
    };
    let big = syn6_with(41509, 1300);
    vec![
        six_in_six(
            "GUE over IPv6: next header 17 to the tunnel port, GUE carrying 41, UDP checksum 0 (udp6_set_csum nocheck, as IPVS without --tun-csum)",
            GUE,
            http6(41500, SYN),
        ),
        six_in_six(
            "GUE over IPv6 with checksum: the UDP checksum over the IPv6 pseudo header and the whole datagram (333-byte payload: a 1-byte tail)",
            GUE_CSUM,
            syn6_with(41501, 333),
        ),
        six_in_six(
            "GRE over IPv6: next header 47, flags 0, protocol 0x86dd",
            GRE,
            http6(41502, SYN),
        ),
        six_in_six(
            "GRE over IPv6 with checksum: the C bit and the sum over the GRE header and the packet (1,001-byte payload: a 1-byte tail after 256-byte pieces)",
            GRE_CSUM,
            syn6_with(41503, 1001),
        ),
        four_in_six(
            "GUE over IPv6 for an IPv4 client (4in6): GUE carrying 4, UDP checksum over the IPv6 pseudo header",
            GUE_CSUM,
            v4_segment(41504, 2),
        ),
        four_in_six(
            "GRE over IPv6 for an IPv4 client (4in6): protocol 0x0800, no checksum",
            GRE,
            world::http(41505, SYN),
        ),
        six_in_four(
            "GUE over IPv4 for an IPv6 client (6in4): GUE carrying 41, UDP checksum over the IPv4 pseudo header, DF, ID 0",
            GUE_CSUM,
            syn6_with(41506, 3),
        ),
        six_in_four(
            "GRE over IPv4 for an IPv6 client (6in4): protocol 0x86dd with checksum",
            GRE_CSUM,
            http6(41507, SYN),
        ),
        Fixture {
            name: "GUE over IPv6, too big for the path (MTU 1400): ICMPv6 packet too big announcing 1348, the MTU less the IPv6, UDP and GUE headers",
            setup: with_encap(tun_world6(A6.addr.into(), 1400), GUE),
            steps: vec![
                Send::new(
                    "1,360-byte SYN",
                    big.bytes(),
                    Verdict::TX,
                    Output::Exact(icmp6_error(&hopped6(&big), 2, 0, 1348)),
                )
                .counts(&[Stat::ConnNew, Stat::IcmpFragNeeded])
                .into(),
            ],
        },
        Fixture {
            name: "GRE with checksum over IPv6, the packet exactly fits the path (1,360 + 40 + 8 = MTU 1408): sent",
            setup: with_encap(tun_world6(A6.addr.into(), 1408), GRE_CSUM),
            steps: vec![{
                let hopped = hopped6(&big);
                let mut outer =
                    Ipv6::new(DIRECTOR6, A6.addr, encapsulated(&hopped, 41, 0, GRE_CSUM));
                outer.hop_limit = 63;
                Send::new(
                    "1,360-byte SYN",
                    big.bytes(),
                    Verdict::TX,
                    Output::Exact(Frame::new(A6.mac, DIRECTOR_MAC, outer).bytes()),
                )
                .counts(&[Stat::ConnNew, Stat::TxTunnel])
                .into()
            }],
        },
    ]
}

// ---- ICMPv6 errors about connections ----------------------------------------------------------

/// An ICMPv6 message `ty`/`code`/`word` quoting `quoted`, from `src` to `dst`, its checksum
/// computed here over the IPv6 pseudo-header.
fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, word: u32, quoted: &[u8]) -> Ipv6 {
    let mut message = vec![ty, 0, 0, 0];
    message.extend_from_slice(&word.to_be_bytes());
    message.extend_from_slice(quoted);
    let pseudo = checksum::pseudo_v6(src, dst, 58, message.len() as u32);
    let sum = checksum::finish(checksum::sum(pseudo, &message));
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    Ipv6::new(
        src,
        dst,
        L4::Raw {
            proto: 58,
            bytes: message,
        },
    )
}

/// The first 60 bytes (IPv6 and TCP headers) of a segment `src:sport` → `dst:dport`.
fn quote6(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Vec<u8> {
    let ip = Ipv6::new(src, dst, Tcp::new(sport, dport, SYN | ACK));
    ip.bytes()[..60].to_vec()
}

pub fn relay_fixtures() -> Vec<Fixture> {
    let syn = http6(41300, SYN);
    let error = Frame::new(
        DIRECTOR_MAC,
        ROUTER_MAC,
        icmp6(ROUTER6, VIP6, 2, 1400, &quote6(VIP6, 80, CLIENT6, 41300)),
    );
    let mut relayed = error.clone().with_macs(A6.mac, DIRECTOR_MAC);
    relayed.ipv6_mut().hop_limit -= 1;
    let unknown = Frame::new(
        DIRECTOR_MAC,
        ROUTER_MAC,
        icmp6(ROUTER6, VIP6, 2, 1400, &quote6(VIP6, 80, CLIENT6, 41399)),
    );
    vec![Fixture {
        name: "IPv6 DR: a packet too big about the real server's reply (VIP6:80 → client) is relayed to it (IPVS's ip_vs_in_icmp_v6), hop limit one less; one about no connection goes to the kernel",
        setup: world6(&[&A6]),
        steps: vec![
            dr6("SYN", &syn, &A6, &HTTP6, SYN_RECV, true).into(),
            Send::new(
                "packet too big",
                error.bytes(),
                Verdict::TX,
                Output::Exact(relayed.bytes()),
            )
            .counts(&[Stat::IcmpRelayed, Stat::TxRoute])
            .into(),
            Send::pass(
                "packet too big about no connection",
                unknown.bytes(),
                Stat::PassNotService,
            )
            .into(),
        ],
    }]
}

pub fn nat_relay_fixtures(net: &Nat6Net) -> Vec<Fixture> {
    let syn = http6(41310, SYN);
    // The client's side saw the reply from VIP6:80; the real server sent it from A6:8080.
    let seen = quote6(VIP6, 80, CLIENT6, 41310);
    let error = Frame::new(
        DIRECTOR_MAC,
        ROUTER_MAC,
        icmp6(ROUTER6, VIP6, 2, 1400, &seen),
    );
    let mut sent = seen.clone();
    sent[8..24].copy_from_slice(&A6.addr.octets());
    sent[40..42].copy_from_slice(&RPORT.to_be_bytes());
    let mut translated = Frame::new(
        A6.mac,
        world::OTHER_NIC_MAC,
        icmp6(ROUTER6, A6.addr, 2, 1400, &sent),
    );
    translated.ipv6_mut().hop_limit = 63;
    vec![Fixture {
        name: "IPv6 NAT: a packet too big about VIP6:80 → client goes to A6, about A6:8080 → client (outer destination, quote and ICMPv6 checksum rewritten; the quoted TCP checksum left, as IPVS does)",
        setup: nat_world6(net),
        steps: vec![
            nat_syn6(net, &syn).into(),
            Send::new(
                "packet too big",
                error.bytes(),
                Verdict::REDIRECT,
                Output::Exact(translated.bytes()),
            )
            .on(net.ext)
            .counts(&[Stat::IcmpRelayed, Stat::Redirect])
            .into(),
        ],
    }]
}

// ---- the real server's side: `lbd decap` ------------------------------------------------------

/// A decapsulation: `input` comes out as `inner` under the same MACs.
fn decapsulated6(name: &'static str, input: Frame, inner: Frame) -> Fixture {
    Fixture {
        name,
        setup: Vec::new(),
        steps: vec![
            Send::new(
                "tunnelled",
                input.bytes(),
                Verdict::PASS,
                Output::Exact(inner.bytes()),
            )
            .counts(&[Stat::Decap])
            .into(),
        ],
    }
}

/// [`decapsulated6`] of GUE in `outer` to [`GUE_PORT`], which `lbd decap` was given.
fn decapsulated6_gue(name: &'static str, outer: L3, inner: Frame) -> Fixture {
    let mut fixture = decapsulated6(name, Frame::new(A6.mac, DIRECTOR_MAC, outer), inner);
    fixture.setup = vec![Change::DecapGuePort(GUE_PORT)];
    fixture
}

pub fn decap_fixtures() -> Vec<Fixture> {
    let syn6 = hopped6(&http6(41400, SYN));
    let syn4 = world::hopped(&world::http(41401, SYN));
    let real4 = Ipv4Addr::new(10, 1, 0, 11);
    let on_a6 = |f: &Frame| f.clone().with_macs(A6.mac, DIRECTOR_MAC);
    vec![
        decapsulated6(
            "IPv6 in IPv6: the client's IPv6 SYN, Ethernet type IPv6",
            Frame::new(
                A6.mac,
                DIRECTOR_MAC,
                Ipv6::new(DIRECTOR6, A6.addr, inner_of(&syn6, 41)),
            ),
            on_a6(&syn6),
        ),
        decapsulated6(
            "IPv4 in IPv6: the client's IPv4 SYN, Ethernet type IPv4",
            Frame::new(
                A6.mac,
                DIRECTOR_MAC,
                Ipv6::new(DIRECTOR6, A6.addr, inner_of(&syn4, 4)),
            ),
            on_a6(&syn4),
        ),
        decapsulated6(
            "IPv6 in IPv4 (6in4): the client's IPv6 SYN, Ethernet type IPv6",
            Frame::new(
                A6.mac,
                DIRECTOR_MAC,
                Ipv4::new(world::DIRECTOR_IP, real4, inner_of(&syn6, 41)),
            ),
            on_a6(&syn6),
        ),
        // GUE and GRE as the director sends them (`encap_fixtures`), either family inside
        // either: the port GUE arrives on is lbd decap's --gue-port.
        decapsulated6_gue(
            "GUE over IPv6 carrying IPv6 (UDP checksum 0): the client's IPv6 SYN",
            Ipv6::new(DIRECTOR6, A6.addr, encapsulated(&syn6, 41, 40000, GUE)).into(),
            on_a6(&syn6),
        ),
        decapsulated6_gue(
            "GUE over IPv6 carrying IPv4, with checksum: the client's IPv4 SYN",
            Ipv6::new(DIRECTOR6, A6.addr, encapsulated(&syn4, 4, 40001, GUE_CSUM)).into(),
            on_a6(&syn4),
        ),
        decapsulated6_gue(
            "GUE over IPv4 carrying IPv6: the client's IPv6 SYN, Ethernet type IPv6",
            Ipv4::new(
                world::DIRECTOR_IP,
                real4,
                encapsulated(&syn6, 41, 40002, GUE_CSUM),
            )
            .into(),
            on_a6(&syn6),
        ),
        decapsulated6(
            "GRE over IPv6 carrying IPv6 (0x86dd)",
            Frame::new(
                A6.mac,
                DIRECTOR_MAC,
                Ipv6::new(DIRECTOR6, A6.addr, encapsulated(&syn6, 41, 0, GRE)),
            ),
            on_a6(&syn6),
        ),
        decapsulated6(
            "GRE over IPv6 with checksum carrying IPv4 (0x0800)",
            Frame::new(
                A6.mac,
                DIRECTOR_MAC,
                Ipv6::new(DIRECTOR6, A6.addr, encapsulated(&syn4, 4, 0, GRE_CSUM)),
            ),
            on_a6(&syn4),
        ),
        decapsulated6(
            "GRE over IPv4 with checksum carrying IPv6 (0x86dd): Ethernet type IPv6",
            Frame::new(
                A6.mac,
                DIRECTOR_MAC,
                Ipv4::new(
                    world::DIRECTOR_IP,
                    real4,
                    encapsulated(&syn6, 41, 0, GRE_CSUM),
                ),
            ),
            on_a6(&syn6),
        ),
        Fixture {
            name: "GUE over IPv6 to a port lbd decap was not given: untouched",
            setup: vec![Change::DecapGuePort(6081)],
            steps: vec![
                Send::new(
                    "GUE",
                    Frame::new(
                        A6.mac,
                        DIRECTOR_MAC,
                        Ipv6::new(DIRECTOR6, A6.addr, encapsulated(&syn6, 41, 40003, GUE)),
                    )
                    .bytes(),
                    Verdict::PASS,
                    Output::Unchanged,
                )
                .into(),
            ],
        },
        Fixture {
            name: "an outer IPv6 header with next header 41 but no whole inner header: untouched",
            setup: Vec::new(),
            steps: vec![
                Send::new(
                    "cut",
                    {
                        let full = Frame::new(
                            A6.mac,
                            DIRECTOR_MAC,
                            Ipv6::new(DIRECTOR6, A6.addr, inner_of(&syn6, 41)),
                        )
                        .bytes();
                        full[..14 + 40 + 30].to_vec()
                    },
                    Verdict::PASS,
                    Output::Unchanged,
                )
                .into(),
            ],
        },
    ]
}
