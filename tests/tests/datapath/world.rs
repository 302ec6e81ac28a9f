//! The little network every fixture lives in, and shorthands for its packets and map entries.
//!
//! ```text
//!  client 198.51.100.7 ── router ──▶ director (VIP 203.0.113.10, MAC 02:d1:..:01, ifindex 1)
//!                                       │ XDP_TX, dst MAC rewritten (DR)
//!                                       ▼
//!                 real servers A 10.1.0.11, B .12, C .13 (HTTP), D .14 (DNS)
//! ```
//!
//! NAT fixtures run in a network of real interfaces instead ([`NatNet`]), because the program
//! asks the kernel's FIB for their next hops.

use std::{net::Ipv4Addr, time::Duration};

use lb_common::{
    Conn, FlowKey, IPPROTO_TCP, IPPROTO_UDP, Iface, REAL_F_IN_USE, REAL_F_RESOLVED, RealServer,
    Service, ServiceKey, Stat, method,
};

use super::{
    fixture::{Expect, Output, Send},
    harness::{self, Change, TEST_RUN_IFINDEX, Verdict},
    packet::{Frame, Icmp, Ipv4, L3, L4, Tcp, Udp},
    wire::{Mac, fmt_mac},
};

/// The director's own NIC (the one BPF_PROG_TEST_RUN pretends packets arrive on).
pub const DIRECTOR_MAC: Mac = [0x02, 0xd1, 0x00, 0x00, 0x00, 0x01];
pub const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The upstream router that hands clients' packets to the director.
pub const ROUTER_MAC: Mac = [0x02, 0xee, 0x00, 0x00, 0x00, 0xfe];
/// A second NIC, for forwarding out of another interface (XDP_REDIRECT). The redirect goes
/// through a devmap, which only takes interfaces that exist: tables that use it run in a
/// fresh network namespace with a veth of this index ([`with_other_nic`]).
pub const OTHER_IFINDEX: u32 = 7;
pub const OTHER_NIC_MAC: Mac = [0x02, 0xd1, 0x00, 0x00, 0x00, 0x07];

pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const CLIENT_2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 8);
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// An address the director has no service on.
pub const OTHER_VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 99);
/// A VIP with a port-0 ("all ports", `ipvsadm -A -t VIP:0 -p`) service.
pub const ALL_PORTS_VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);

/// A virtual service and where its scheduling table lives.
pub struct ServiceDef {
    pub id: u32,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub proto: u8,
    pub table_offset: u32,
}

pub const HTTP: ServiceDef = ServiceDef {
    id: 1,
    vip: VIP,
    port: 80,
    proto: IPPROTO_TCP,
    table_offset: 0,
};
pub const DNS: ServiceDef = ServiceDef {
    id: 2,
    vip: VIP,
    port: 53,
    proto: IPPROTO_UDP,
    table_offset: 64,
};
pub const ALL_PORTS: ServiceDef = ServiceDef {
    id: 3,
    vip: ALL_PORTS_VIP,
    port: 0,
    proto: IPPROTO_TCP,
    table_offset: 128,
};
/// A second TCP service on the VIP, with its own table and round-robin position.
pub const HTTPS: ServiceDef = ServiceDef {
    id: 4,
    vip: VIP,
    port: 443,
    proto: IPPROTO_TCP,
    table_offset: 192,
};

/// A real server.
pub struct RealDef {
    pub id: u32,
    pub addr: Ipv4Addr,
    pub mac: Mac,
}

pub const A: RealDef = RealDef {
    id: 1,
    addr: Ipv4Addr::new(10, 1, 0, 11),
    mac: mac(0x0a),
};
pub const B: RealDef = RealDef {
    id: 2,
    addr: Ipv4Addr::new(10, 1, 0, 12),
    mac: mac(0x0b),
};
pub const C: RealDef = RealDef {
    id: 3,
    addr: Ipv4Addr::new(10, 1, 0, 13),
    mac: mac(0x0c),
};
pub const D: RealDef = RealDef {
    id: 4,
    addr: Ipv4Addr::new(10, 1, 0, 14),
    mac: mac(0x0d),
};

const fn mac(last: u8) -> Mac {
    [0x02, 0x00, 0x5e, 0x10, 0x00, last]
}

// ---- map entries ----------------------------------------------------------------------------

pub fn service_key(svc: &ServiceDef) -> ServiceKey {
    ServiceKey {
        addr: addr(svc.vip),
        port: svc.port.to_be(),
        proto: svc.proto,
        family: lb_common::AF_INET,
    }
}

/// The service entry with a table of `len` slots.
pub fn service(svc: &ServiceDef, len: u32) -> Change {
    Change::Service {
        key: service_key(svc),
        service: Service {
            id: svc.id,
            table_offset: svc.table_offset,
            table_len: len,
            ..Service::default()
        },
    }
}

/// The service and its scheduling table (`ids` become the slots; their length the table length).
pub fn service_with_table(svc: &ServiceDef, ids: &[&RealDef]) -> Vec<Change> {
    vec![
        Change::Slots {
            offset: svc.table_offset,
            ids: ids.iter().map(|r| r.id).collect(),
        },
        service(svc, ids.len() as u32),
    ]
}

/// A resolved DR real server of `svc`, reached through the ingress interface.
pub fn real_server(real: &RealDef, svc: &ServiceDef) -> RealServer {
    RealServer {
        addr: addr(real.addr),
        port: svc.port.to_be(),
        method: method::ROUTE,
        flags: REAL_F_IN_USE | REAL_F_RESOLVED,
        mac: real.mac,
        ifindex: 0,
        weight: 1,
        service: svc.id,
        ..RealServer::default()
    }
}

pub fn add_real(real: &RealDef, svc: &ServiceDef) -> Change {
    Change::Real {
        id: real.id,
        real: real_server(real, svc),
    }
}

/// A real server entry changed by `edit` (flags, method, ifindex...).
pub fn edit_real(real: &RealDef, svc: &ServiceDef, edit: impl FnOnce(&mut RealServer)) -> Change {
    let mut entry = real_server(real, svc);
    edit(&mut entry);
    Change::Real {
        id: real.id,
        real: entry,
    }
}

/// `net.ipv4.vs.sloppy_tcp = 1`: any TCP segment but a RST may open a connection.
pub fn sloppy_tcp() -> Change {
    Change::Settings(lb_common::Settings {
        flags: lb_common::SETTINGS_F_SLOPPY_TCP,
        ..lb_common::Settings::default()
    })
}

pub fn director_iface() -> Change {
    Change::Iface {
        ifindex: TEST_RUN_IFINDEX,
        iface: Iface {
            mac: DIRECTOR_MAC,
            addr: addr(DIRECTOR_IP).ipv4(),
            ..Iface::default()
        },
    }
}

/// The director with its NIC, real servers A, B, C for HTTP and D for DNS, and HTTP's table set
/// to `table` (the DNS service is added by fixtures that want it).
pub fn http_world(table: &[&RealDef]) -> Vec<Change> {
    let mut changes = vec![
        director_iface(),
        add_real(&A, &HTTP),
        add_real(&B, &HTTP),
        add_real(&C, &HTTP),
    ];
    changes.extend(service_with_table(&HTTP, table));
    changes
}

pub fn dns_world() -> Vec<Change> {
    let mut changes = vec![director_iface(), add_real(&D, &DNS)];
    changes.extend(service_with_table(&DNS, &[&D]));
    changes
}

pub fn conn_entry(flow: FlowKey, real: &RealDef, svc: &ServiceDef, state: u8) -> Change {
    idle_conn_entry(flow, real, svc, state, Duration::ZERO)
}

/// A connection-table entry last used `idle` ago.
pub fn idle_conn_entry(
    flow: FlowKey,
    real: &RealDef,
    svc: &ServiceDef,
    state: u8,
    idle: Duration,
) -> Change {
    Change::Conn {
        idle,
        flow,
        conn: Conn {
            real: real.id,
            service: svc.id,
            state,
            ..Conn::default()
        },
    }
}

/// An IPv4 address as the maps keep it (network order in memory).
pub fn addr(ip: Ipv4Addr) -> lb_common::Addr {
    ip.into()
}

// ---- packets ----------------------------------------------------------------------------------

/// A TCP segment from the client to HTTP on the VIP, as the router hands it to the director.
pub fn http(sport: u16, flags: u8) -> Frame {
    tcp(CLIENT, VIP, sport, HTTP.port, flags)
}

pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, flags: u8) -> Frame {
    Frame::new(
        DIRECTOR_MAC,
        ROUTER_MAC,
        Ipv4::new(src, dst, Tcp::new(sport, dport, flags)),
    )
}

pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Frame {
    Frame::new(
        DIRECTOR_MAC,
        ROUTER_MAC,
        Ipv4::new(src, dst, Udp::new(sport, dport, payload)),
    )
}

/// A DNS query from the client to the VIP.
pub fn dns(sport: u16) -> Frame {
    udp(
        CLIENT,
        VIP,
        sport,
        DNS.port,
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00",
    )
}

/// The 5-tuple of a TCP/UDP frame, as the data path keys the connection table.
pub fn flow_of(frame: &Frame) -> FlowKey {
    let L3::Ipv4(ip) = &frame.body else {
        panic!("flow_of: not IPv4")
    };
    let (sport, dport) = match &ip.payload {
        L4::Tcp(t) => (t.sport, t.dport),
        L4::Udp(u) => (u.sport, u.dport),
        other => panic!("flow_of: not TCP/UDP: {other:?}"),
    };
    FlowKey {
        saddr: addr(ip.src),
        daddr: addr(ip.dst),
        sport: sport.to_be(),
        dport: dport.to_be(),
        proto: ip.payload.proto(),
        family: lb_common::AF_INET,
        _pad16: 0,
    }
}

/// IPv4 total length: the bytes IPVS (and so lb) counts for a packet.
pub fn ip_len(frame: &Frame) -> u64 {
    let L3::Ipv4(ip) = &frame.body else {
        panic!("ip_len: not IPv4")
    };
    u64::from(ip.total_len.unwrap_or(ip.bytes().len() as u16))
}

/// `frame` one hop on: its TTL one less, as the director forwards every packet (IPVS's
/// `decrement_ttl`, for every method).
pub fn hopped(frame: &Frame) -> Frame {
    let mut frame = frame.clone();
    frame.ipv4_mut().ttl -= 1;
    frame
}

/// What DR sends to `real`: the same frame one hop on ([`hopped`]), to the real server's MAC,
/// from the director's.
pub fn via_dr(frame: &Frame, real: &RealDef) -> Vec<u8> {
    hopped(frame).with_macs(real.mac, DIRECTOR_MAC).bytes()
}

/// What TUN sends to `real` through the director's NIC: the frame one hop on ([`hopped`]),
/// [`tunnelled`].
pub fn via_tun(frame: &Frame, real: &RealDef) -> Vec<u8> {
    tunnelled(
        &hopped(frame),
        real.addr,
        real.mac,
        DIRECTOR_MAC,
        DIRECTOR_IP,
    )
}

/// What TUN sends: `frame`'s IP packet, byte for byte, inside an outer IPv4 header from `src`
/// (the egress NIC's address) to the real server at `real_addr`, in a frame to `next_hop`
/// from `smac`. The outer header is 20 bytes, copies TOS, DF and TTL (as IPVS's
/// `ip_vs_tunnel_xmit`), carries the inner ID only without DF (RFC 6864: 0 otherwise),
/// protocol 4. Ethernet padding of the input stays at the end of the frame, after the inner
/// packet.
pub fn tunnelled(
    frame: &Frame,
    real_addr: Ipv4Addr,
    next_hop: Mac,
    smac: Mac,
    src: Ipv4Addr,
) -> Vec<u8> {
    tunnelled_as(frame, real_addr, next_hop, smac, src, Encap::Ipip)
}

/// A TUN real server's encapsulation (`--tun-type`), as the fixtures expect it.
#[derive(Clone, Copy, Debug)]
pub enum Encap {
    Ipip,
    /// UDP to `port`, a GUE header (version 0, no options, protocol 4); `csum`: the UDP
    /// checksum is computed, else 0.
    Gue {
        port: u16,
        csum: bool,
    },
    /// GRE with protocol 0x0800; `csum`: with the checksum field (C bit).
    Gre {
        csum: bool,
    },
}

impl Encap {
    /// Bytes in front of the client's packet.
    pub fn overhead(self) -> usize {
        match self {
            Encap::Ipip => 20,
            Encap::Gue { .. } => 20 + 8 + 4,
            Encap::Gre { csum: false } => 20 + 4,
            Encap::Gre { csum: true } => 20 + 8,
        }
    }
}

/// GUE's UDP source port for the flow of `inner` (a TCP or UDP packet): a hash of the flow
/// (`lb_common::tunnel::source_port`, the helper both sides share), in host order.
pub fn gue_source_port(inner: &Ipv4) -> u16 {
    let (sport, dport, proto) = match &inner.payload {
        L4::Tcp(t) => (t.sport, t.dport, IPPROTO_TCP),
        L4::Udp(u) => (u.sport, u.dport, IPPROTO_UDP),
        L4::Icmp(_) => (0, 0, 1),
        other => panic!("gue_source_port: {other:?}"),
    };
    u16::from_be(lb_common::tunnel::source_port(
        addr(inner.src).ipv4(),
        addr(inner.dst).ipv4(),
        sport.to_be(),
        dport.to_be(),
        proto,
    ))
}

/// [`tunnelled`] with the encapsulation `encap`. The tunnel's own checksums (UDP's over the
/// pseudo header, GRE's over its header and payload) are computed here from the bytes
/// (RFC 768, RFC 2784), independently of the data path's incremental sums.
pub fn tunnelled_as(
    frame: &Frame,
    real_addr: Ipv4Addr,
    next_hop: Mac,
    smac: Mac,
    src: Ipv4Addr,
    encap: Encap,
) -> Vec<u8> {
    let inner = frame.ipv4().clone();
    let payload: L4 = match encap {
        Encap::Ipip => inner.clone().into(),
        Encap::Gue { port, csum } => {
            let mut gue = vec![0x00, 0x04, 0x00, 0x00];
            gue.extend_from_slice(&inner.bytes());
            let mut udp = Udp::new(gue_source_port(&inner), port, &gue);
            if !csum {
                udp.checksum = Some(0);
            }
            udp.into()
        }
        Encap::Gre { csum } => {
            let mut bytes = if csum {
                vec![0x80, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00]
            } else {
                vec![0x00, 0x00, 0x08, 0x00]
            };
            bytes.extend_from_slice(&inner.bytes());
            if csum {
                let sum = super::checksum::checksum(&bytes);
                bytes[4..6].copy_from_slice(&sum.to_be_bytes());
            }
            L4::Raw { proto: 47, bytes }
        }
    };
    let mut outer = Ipv4::new(src, real_addr, payload);
    outer.tos = inner.tos;
    outer.dont_fragment = inner.dont_fragment;
    outer.ident = if inner.dont_fragment { 0 } else { inner.ident };
    outer.ttl = inner.ttl;
    // The input's padding (if any) ends `min_len` bytes in; the tunnel's headers move it.
    let padded = if frame.min_len == 0 {
        0
    } else {
        frame.min_len + encap.overhead()
    };
    Frame::new(next_hop, smac, outer).padded_to(padded).bytes()
}

/// What TUN sends to `real` with the encapsulation `encap` ([`via_tun`] for IP-in-IP).
pub fn via_tun_as(frame: &Frame, real: &RealDef, encap: Encap) -> Vec<u8> {
    tunnelled_as(
        &hopped(frame),
        real.addr,
        real.mac,
        DIRECTOR_MAC,
        DIRECTOR_IP,
        encap,
    )
}

/// The director's answer to a packet too big for the tunnel with DF set: ICMP "fragmentation
/// needed" (3/4) with `next_hop_mtu`, from the address the client sent to (the VIP), TTL 64,
/// ID 0, no DF, TOS 0; back to the MAC the frame came from, from the MAC it was sent to;
/// quoting the client's IP header (options too, and the TTL it has once one hop less: IPVS
/// checks the MTU after `decrement_ttl`) and the first 8 bytes of its payload.
pub fn frag_needed(frame: &Frame, next_hop_mtu: u16) -> Vec<u8> {
    let hopped = hopped(frame);
    let ip = hopped.ipv4();
    let original = ip.bytes();
    let quoted = &original[..ip.header_len() + 8];
    let mut reply = Ipv4::new(ip.dst, ip.src, Icmp::frag_needed(next_hop_mtu, quoted));
    reply.ident = 0;
    reply.dont_fragment = false;
    reply.ttl = 64;
    Frame::new(frame.src, frame.dst, reply).bytes()
}

/// The director's answer to a client's packet whose TTL runs out at it: ICMP "time exceeded"
/// (11/0), from the address the client sent to, TTL 64, ID 0, no DF, TOS 0; back to the MAC
/// the frame came from, from the MAC it was sent to; quoting the client's IP header as it
/// came and the first 8 bytes of its payload.
pub fn time_exceeded(frame: &Frame) -> Vec<u8> {
    let ip = frame.ipv4();
    let original = ip.bytes();
    let quoted = &original[..ip.header_len() + 8];
    let mut reply = Ipv4::new(ip.dst, ip.src, Icmp::time_exceeded(quoted));
    reply.ident = 0;
    reply.dont_fragment = false;
    reply.ttl = 64;
    Frame::new(frame.src, frame.dst, reply).bytes()
}

/// `frame` with its destination address and port replaced (NAT towards a real server).
pub fn with_destination(frame: &Frame, addr: Ipv4Addr, port: u16) -> Frame {
    let mut frame = frame.clone();
    let ip = frame.ipv4_mut();
    ip.dst = addr;
    *ports_mut(ip).1 = port;
    frame
}

/// `frame` with its source address and port replaced (NAT of a real server's reply).
pub fn with_source(frame: &Frame, addr: Ipv4Addr, port: u16) -> Frame {
    let mut frame = frame.clone();
    let ip = frame.ipv4_mut();
    ip.src = addr;
    *ports_mut(ip).0 = port;
    frame
}

fn ports_mut(ip: &mut Ipv4) -> (&mut u16, &mut u16) {
    match &mut ip.payload {
        L4::Tcp(t) => (&mut t.sport, &mut t.dport),
        L4::Udp(u) => (&mut u.sport, &mut u.dport),
        other => panic!("not TCP/UDP: {other:?}"),
    }
}

/// Runs `f` in a fresh network namespace that has the second NIC, `other0` with index
/// [`OTHER_IFINDEX`] (one end of a veth pair), and loopback up.
pub fn with_other_nic<T: std::marker::Send + 'static>(
    f: impl FnOnce() -> T + std::marker::Send + 'static,
) -> T {
    harness::in_fresh_netns(move || {
        let index = OTHER_IFINDEX.to_string();
        for argv in [
            &["ip", "link", "set", "lo", "up"][..],
            &[
                "ip", "link", "add", "other0", "index", &index, "type", "veth", "peer", "name",
                "other0p",
            ],
            &["ip", "link", "set", "other0", "up"],
            &["ip", "link", "set", "other0p", "up"],
        ] {
            lb_tests::cmd::run(argv);
        }
        assert_eq!(harness::ifindex("other0"), OTHER_IFINDEX);
        f()
    })
}

// ---- NAT: a director with real interfaces ------------------------------------------------------
//
//  client 198.51.100.7 ── router 203.0.113.1 ─┬─ ext0 (DIRECTOR_MAC, 203.0.113.2/24 + VIP/32)
//                       E 203.0.113.21 ───────┘        director, net.ipv4.conf.all.forwarding=1
//                                                   int0 (OTHER_NIC_MAC, 10.1.0.1/24)
//                    A 10.1.0.11, B .12, C .13, D .14 ─┘  (F 10.1.0.16: no neighbour entry)
//
// Each NIC is one end of a veth pair whose other end is up and otherwise unused; next hops are
// permanent neighbour entries, so the kernel never needs to ask (ARP) for them.

/// The director's client-side NIC and the real servers' side.
pub const NAT_EXT: &str = "ext0";
pub const NAT_INT: &str = "int0";
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The director on the real servers' LAN: their default gateway, as LVS-NAT requires.
pub const NAT_GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);

/// A real server on the clients' side of the director (one-arm NAT).
pub const E: RealDef = RealDef {
    id: 5,
    addr: Ipv4Addr::new(203, 0, 113, 21),
    mac: mac(0x0e),
};
/// A real server on the inside LAN the kernel has no neighbour entry for.
pub const F: RealDef = RealDef {
    id: 6,
    addr: Ipv4Addr::new(10, 1, 0, 16),
    mac: mac(0x0f),
};

/// The NAT director's interfaces, by index in the fixture thread's network namespace.
pub struct NatNet {
    pub ext: u32,
    pub int: u32,
}

impl NatNet {
    /// Both NICs described to the data path, as lbd does for each `--iface` (IFACES and the
    /// TX_PORTS devmap that redirects between them).
    pub fn nics(&self) -> Vec<Change> {
        [
            (self.ext, DIRECTOR_MAC, DIRECTOR_IP),
            (self.int, OTHER_NIC_MAC, NAT_GATEWAY_IP),
        ]
        .map(|(ifindex, mac, ip)| Change::Iface {
            ifindex,
            iface: Iface {
                mac,
                addr: addr(ip).ipv4(),
                ..Iface::default()
            },
        })
        .into()
    }

    /// Builds the network above in the calling thread's network namespace, which must be a
    /// fresh one ([`harness::in_fresh_netns`]); `forwarding` is what the director's
    /// `net.ipv4.conf.all.forwarding` is set to.
    pub fn build(forwarding: bool) -> NatNet {
        let ip = |line: String| {
            let argv: Vec<&str> = line.split_whitespace().collect();
            lb_tests::cmd::run(&argv);
        };
        for (nic, mac) in [(NAT_EXT, DIRECTOR_MAC), (NAT_INT, OTHER_NIC_MAC)] {
            ip(format!(
                "ip link add {nic} address {} type veth peer name {nic}p",
                fmt_mac(&mac)
            ));
            ip(format!("ip link set {nic} up"));
            ip(format!("ip link set {nic}p up"));
        }
        ip("ip link set lo up".into());
        ip(format!("ip addr add {DIRECTOR_IP}/24 dev {NAT_EXT}"));
        ip(format!("ip addr add {VIP}/32 dev {NAT_EXT}"));
        ip(format!("ip addr add {NAT_GATEWAY_IP}/24 dev {NAT_INT}"));
        ip(format!(
            "ip route add default via {ROUTER_IP} dev {NAT_EXT}"
        ));
        let neighbours = [
            (ROUTER_IP, ROUTER_MAC, NAT_EXT),
            (E.addr, E.mac, NAT_EXT),
            (A.addr, A.mac, NAT_INT),
            (B.addr, B.mac, NAT_INT),
            (C.addr, C.mac, NAT_INT),
            (D.addr, D.mac, NAT_INT),
        ];
        for (addr, mac, nic) in neighbours {
            ip(format!(
                "ip neigh replace {addr} lladdr {} dev {nic} nud permanent",
                fmt_mac(&mac)
            ));
        }
        // /proc/sys/net is the calling thread's namespace's; reading it back through ext0 (which
        // exists only here) proves the write did not land in the host's namespace.
        let value = if forwarding { "1" } else { "0" };
        std::fs::write("/proc/sys/net/ipv4/conf/all/forwarding", value)
            .expect("setting net.ipv4.conf.all.forwarding");
        for nic in [NAT_EXT, NAT_INT] {
            let path = format!("/proc/sys/net/ipv4/conf/{nic}/forwarding");
            let got = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(got.trim(), value, "{path}");
        }
        NatNet {
            ext: harness::ifindex(NAT_EXT),
            int: harness::ifindex(NAT_INT),
        }
    }
}

// ---- packet steps ------------------------------------------------------------------------------

/// The first packet of a flow: scheduled to `real` (of `svc`), a connection entry in `state`,
/// sent back out of the same NIC.
pub fn new_flow(what: &str, frame: &Frame, real: &RealDef, svc: &ServiceDef, state: u8) -> Send {
    Send::new(
        what,
        frame.bytes(),
        Verdict::TX,
        Output::Exact(via_dr(frame, real)),
    )
    .counts(&[Stat::ConnNew, Stat::TxRoute])
    .expect([Expect::Conn {
        flow: flow_of(frame),
        real: real.id,
        service: svc.id,
        state,
    }])
}

/// A packet of a known flow: to `real` as its connection entry says, now in `state`.
pub fn known_flow(what: &str, frame: &Frame, real: &RealDef, svc: &ServiceDef, state: u8) -> Send {
    Send::new(
        what,
        frame.bytes(),
        Verdict::TX,
        Output::Exact(via_dr(frame, real)),
    )
    .counts(&[Stat::ConnHit, Stat::TxRoute])
    .expect([Expect::Conn {
        flow: flow_of(frame),
        real: real.id,
        service: svc.id,
        state,
    }])
}
