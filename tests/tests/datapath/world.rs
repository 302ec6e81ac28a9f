//! The little network every fixture lives in, and shorthands for its packets and map entries.
//!
//! ```text
//!  client 198.51.100.7 ── router ──▶ director (VIP 203.0.113.10, MAC 02:d1:..:01, ifindex 1)
//!                                       │ XDP_TX, dst MAC rewritten (DR)
//!                                       ▼
//!                 real servers A 10.1.0.11, B .12, C .13 (HTTP), D .14 (DNS)
//! ```

use std::net::Ipv4Addr;

use lb_common::{
    Conn, FlowKey, IPPROTO_TCP, IPPROTO_UDP, Iface, REAL_F_IN_USE, REAL_F_RESOLVED, RealServer,
    Service, ServiceKey, Stat, method,
};

use super::{
    fixture::{Expect, Output, Send},
    harness::{Change, TEST_RUN_IFINDEX, Verdict},
    packet::{Frame, Ipv4, L3, L4, Tcp, Udp},
    wire::Mac,
};

/// The director's own NIC (the one BPF_PROG_TEST_RUN pretends packets arrive on).
pub const DIRECTOR_MAC: Mac = [0x02, 0xd1, 0x00, 0x00, 0x00, 0x01];
pub const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The upstream router that hands clients' packets to the director.
pub const ROUTER_MAC: Mac = [0x02, 0xee, 0x00, 0x00, 0x00, 0xfe];
/// A second NIC, for forwarding out of another interface (XDP_REDIRECT).
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
        _pad: 0,
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

pub fn director_iface() -> Change {
    Change::Iface {
        ifindex: TEST_RUN_IFINDEX,
        iface: Iface {
            mac: DIRECTOR_MAC,
            addr: addr(DIRECTOR_IP),
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
    Change::Conn {
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
pub fn addr(ip: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(ip.octets())
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
        _pad: [0; 3],
    }
}

/// IPv4 total length: the bytes IPVS (and so lb) counts for a packet.
pub fn ip_len(frame: &Frame) -> u64 {
    let L3::Ipv4(ip) = &frame.body else {
        panic!("ip_len: not IPv4")
    };
    u64::from(ip.total_len.unwrap_or(ip.bytes().len() as u16))
}

/// What DR sends to `real`: the same frame, to the real server's MAC, from the director's.
pub fn via_dr(frame: &Frame, real: &RealDef) -> Vec<u8> {
    frame.clone().with_macs(real.mac, DIRECTOR_MAC).bytes()
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
