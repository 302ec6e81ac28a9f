//! The fuzz test: random and mutated frames through the real program (BPF_PROG_TEST_RUN), each
//! verdict and output frame checked against the reference model (`lb_common::model`), and the
//! tables checked for corruption as it goes.
//!
//! The world is the NAT fixtures' network ([`NatNet`]: the program asks the kernel's FIB for
//! NAT's next hops) with five services of one real server each, so that scheduling is
//! deterministic: DR, TUN (with a path MTU, for "fragmentation needed") and NAT over TCP, NAT
//! and TUN over UDP. Frames are generated from a seed ([`Gen`]): well-formed skeletons aimed at
//! the services from a small pool of clients (so that flows repeat and connections see their
//! later packets), NAT replies from the real servers, fragments, ICMP errors quoting flows,
//! other protocols, EtherTypes and addresses, malformed headers; and a share of them mutated
//! (bits flipped, bytes replaced, cut short, extended).
//!
//! The outcome depends on history (connections and their TCP states, first fragments), which
//! the model keeps as the program does. Every `CHECK_EVERY` frames a checkpoint compares the
//! program's tables with the model's and with themselves: every connection entry the same
//! and in the same table (connection or half-open), each naming a configured real server of
//! its service; the remembered first fragments the same; the live connection counts
//! (`REAL_CONNS`, by table) equal to what each table holds; the data-path counters equal to
//! the model's (promotions and a full connection table's refusals among them), and every
//! received frame counted once under a verdict; the traffic counters and round-robin
//! positions equal. Once the tables have grown past a few hundred entries, both sides' are
//! cleared there: the half-open table (sized far larger for this test) must never fill, since
//! an LRU's evictions cannot be modelled; the connection table, a plain hash, is sized to fill
//! now and then, so that connections that cannot move into it are checked too.
//!
//! `LB_FUZZ_FRAMES` (default [`CI_FRAMES`]) and `LB_FUZZ_SEED` (default: from the clock,
//! printed) choose the run; `cargo xtask fuzz --frames N --seed S` sets them.
//! `LB_FUZZ_CHECK_EVERY=1` checkpoints after every frame (to find which frame upset a counter).

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    net::Ipv4Addr,
    time::Instant,
};

use lb_common::{
    Conn, FlowKey, FragKey, IPPROTO_TCP, IPPROTO_UDP, REAL_F_IN_USE, REAL_F_RESOLVED, RealConns,
    RealServer, Service as MapService, ServiceKey, Stat, method,
    model::{self, Action, Model, NextHop, Table, World},
    tcp_state,
};

use super::{
    checksum,
    harness::{self, Change, Director, Verdict},
    wire::{self, Mac},
    world::{self, NatNet},
};

/// Frames in a CI run (a few seconds).
pub const CI_FRAMES: u64 = 50_000;
/// Frames between checkpoints.
const CHECK_EVERY: u64 = 2_000;
/// The half-open table's size here: far more than the run lets it hold, so that the LRU never
/// evicts (it may before it is full, since CPUs keep free nodes of their own).
const HALF_OPEN_TABLE_SIZE: u32 = 16 * 1024;
/// The connection table's size here: less than the run lets it hold, so that it fills now
/// and then (a plain hash: the model knows when).
const CONN_TABLE_SIZE: u32 = 128;
/// Connection entries (both tables) after which a checkpoint clears the tables.
const CLEAR_CONNS_AT: usize = 400;
/// Remembered first fragments after which a checkpoint clears the tables.
const CLEAR_FRAGS_AT: usize = 2_000;

const EXT_MAC: Mac = world::DIRECTOR_MAC;
const INT_MAC: Mac = world::OTHER_NIC_MAC;
const ROUTER_MAC: Mac = world::ROUTER_MAC;

const CLIENTS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(198, 51, 100, 7),
    Ipv4Addr::new(198, 51, 100, 8),
    Ipv4Addr::new(192, 0, 2, 33),
    Ipv4Addr::new(8, 8, 4, 4),
];
const CLIENT_PORTS: [u16; 5] = [40000, 40001, 51234, 1024, 65535];
const VIP: Ipv4Addr = world::VIP;

/// One service of the fuzz world and its real server.
struct Svc {
    id: u32,
    vip: Ipv4Addr,
    port: u16,
    proto: u8,
    real_id: u32,
    real_addr: Ipv4Addr,
    real_port: u16,
    method: u8,
    real_mac: Mac,
    mtu: u32,
}

const SERVICES: [Svc; 6] = [
    Svc {
        id: 1,
        vip: VIP,
        port: 80,
        proto: IPPROTO_TCP,
        real_id: 1,
        real_addr: world::A.addr,
        real_port: 80,
        method: method::ROUTE,
        real_mac: world::A.mac,
        mtu: 0,
    },
    Svc {
        id: 2,
        vip: VIP,
        port: 443,
        proto: IPPROTO_TCP,
        real_id: 2,
        real_addr: world::B.addr,
        real_port: 443,
        method: method::TUNNEL,
        real_mac: world::B.mac,
        mtu: 1400,
    },
    Svc {
        id: 3,
        vip: VIP,
        port: 8080,
        proto: IPPROTO_TCP,
        real_id: 3,
        real_addr: world::C.addr,
        real_port: 80,
        method: method::MASQ,
        real_mac: world::C.mac,
        mtu: 0,
    },
    Svc {
        id: 4,
        vip: VIP,
        port: 53,
        proto: IPPROTO_UDP,
        real_id: 4,
        real_addr: world::D.addr,
        real_port: 5353,
        method: method::MASQ,
        real_mac: world::D.mac,
        mtu: 0,
    },
    Svc {
        id: 5,
        vip: VIP,
        port: 4500,
        proto: IPPROTO_UDP,
        real_id: 5,
        real_addr: Ipv4Addr::new(10, 9, 0, 5),
        real_port: 0,
        method: method::TUNNEL,
        real_mac: ROUTER_MAC,
        mtu: 0,
    },
    // A port-0 ("all ports") service on a second VIP, NATed to a real server on the clients'
    // side of the director (one-arm NAT: replies come in and leave by the same NIC).
    Svc {
        id: 6,
        vip: world::ALL_PORTS_VIP,
        port: 0,
        proto: IPPROTO_TCP,
        real_id: 6,
        real_addr: world::E.addr,
        real_port: 0,
        method: method::MASQ,
        real_mac: world::E.mac,
        mtu: 0,
    },
];

/// Ports clients use on the port-0 service.
const ANY_PORTS: [u16; 3] = [22, 80, 3306];

impl Svc {
    /// A port a client sends to.
    fn vport(&self, rng: &mut Rng) -> u16 {
        if self.port == 0 {
            rng.pick(&ANY_PORTS)
        } else {
            self.port
        }
    }

    /// The port the real server answers from.
    fn rport(&self, rng: &mut Rng) -> u16 {
        if self.real_port == 0 {
            self.vport(rng)
        } else {
            self.real_port
        }
    }

    /// The NIC the real server is behind, and the director's MAC on it: the inside LAN's, or
    /// the clients' side (one-arm NAT).
    fn real_nic(&self, g: &Gen) -> (u32, Mac) {
        if self.real_addr.octets()[..3] == [10, 1, 0] {
            (g.int, INT_MAC)
        } else {
            (g.ext, EXT_MAC)
        }
    }
}

fn octets(a: Ipv4Addr) -> [u8; 4] {
    a.octets()
}

/// The maps as lbd would fill them for [`SERVICES`] on `net`'s two NICs.
fn setup(net: &NatNet, sloppy_tcp: bool) -> Vec<Change> {
    let mut changes = net.nics();
    if sloppy_tcp {
        changes.push(world::sloppy_tcp());
    }
    for (i, svc) in SERVICES.iter().enumerate() {
        changes.push(Change::Real {
            id: svc.real_id,
            real: RealServer {
                addr: lb_common::Addr::v4(u32::from_ne_bytes(octets(svc.real_addr))),
                port: svc.real_port.to_be(),
                family: lb_common::AF_INET,
                method: svc.method,
                flags: REAL_F_IN_USE | REAL_F_RESOLVED,
                mac: svc.real_mac,
                ifindex: 0,
                weight: 1,
                service: svc.id,
                mtu: svc.mtu,
                ..RealServer::default()
            },
        });
        let offset = 16 * i as u32;
        changes.push(Change::Slots {
            offset,
            ids: vec![svc.real_id],
        });
        changes.push(Change::Service {
            key: ServiceKey {
                addr: lb_common::Addr::v4(u32::from_ne_bytes(octets(svc.vip))),
                port: svc.port.to_be(),
                proto: svc.proto,
                family: lb_common::AF_INET,
            },
            service: MapService {
                id: svc.id,
                table_offset: offset,
                table_len: 1,
                ..MapService::default()
            },
        });
    }
    changes
}

/// The same world for the model. Its FIB is [`NatNet`]'s routes and neighbours: the inside
/// LAN 10.1.0.0/24 on int0 (A to D known), the outside 203.0.113.0/24 on ext0 (the router and
/// E known), the director's own addresses local, the default route via the router.
fn model_world(net: &NatNet, sloppy_tcp: bool) -> World {
    let (ext, int) = (net.ext, net.int);
    let fib = move |_ingress: u32, dst: [u8; 4]| -> Option<NextHop> {
        let ip = Ipv4Addr::from(dst);
        let neighbour = |mac: Mac, ifindex: u32, smac: Mac| NextHop {
            ifindex,
            smac,
            dmac: mac,
        };
        let inside = [world::A, world::B, world::C, world::D];
        if let Some(real) = inside.iter().find(|r| r.addr == ip) {
            return Some(neighbour(real.mac, int, INT_MAC));
        }
        if ip == world::ROUTER_IP {
            return Some(neighbour(ROUTER_MAC, ext, EXT_MAC));
        }
        if ip == world::E.addr {
            return Some(neighbour(world::E.mac, ext, EXT_MAC));
        }
        let o = dst;
        let on_link = (o[0], o[1], o[2]) == (10, 1, 0) || (o[0], o[1], o[2]) == (203, 0, 113);
        // bpf_fib_lookup answers from the routing tables alone: loopback is local, and
        // anything else without a route of its own (0/8, multicast, class E, broadcast)
        // follows the default route.
        let special = o[0] == 127;
        if on_link || special {
            return None;
        }
        Some(neighbour(ROUTER_MAC, ext, EXT_MAC))
    };
    let ifaces = vec![
        model::Iface {
            ifindex: ext,
            mac: EXT_MAC,
            addr: octets(world::DIRECTOR_IP),
        },
        model::Iface {
            ifindex: int,
            mac: INT_MAC,
            addr: octets(world::NAT_GATEWAY_IP),
        },
    ];
    let services = SERVICES
        .iter()
        .map(|svc| model::Service {
            id: svc.id,
            vip: octets(svc.vip),
            port: svc.port,
            proto: svc.proto,
            real: model::Real {
                id: svc.real_id,
                addr: octets(svc.real_addr),
                port: svc.real_port,
                method: svc.method,
                mac: svc.real_mac,
                mtu: svc.mtu,
            },
        })
        .collect();
    World {
        ifaces,
        services,
        fib: Box::new(fib),
        sloppy_tcp,
        conn_table_size: CONN_TABLE_SIZE as usize,
    }
}

// ---- the generator --------------------------------------------------------------------------

/// xorshift64*: small, fast, and the same sequence from the same seed everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        // splitmix64 of the seed: neighbouring seeds start far apart (never at 0).
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn u16(&mut self) -> u16 {
        self.next() as u16
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
}

/// IPv4 header fields the generator varies.
struct Ip {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    tos: u8,
    id: u16,
    df: bool,
    mf: bool,
    offset: u16,
    ttl: u8,
    options: Vec<u8>,
}

impl Ip {
    /// The header and `payload`, lengths and checksum right.
    fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let header_len = 20 + self.options.len();
        let mut h = vec![0u8; header_len];
        h[0] = 0x40 | (header_len / 4) as u8;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&((header_len + payload.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&self.id.to_be_bytes());
        let mut frag = self.offset & 0x1fff;
        if self.df {
            frag |= 0x4000;
        }
        if self.mf {
            frag |= 0x2000;
        }
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.proto;
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        h[20..].copy_from_slice(&self.options);
        let sum = checksum::checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }
}

fn tcp_segment(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
    flags: u8,
    rng: &mut Rng,
) -> Vec<u8> {
    let options = if rng.chance(20) {
        let words = rng.below(11);
        let mut o = rng.bytes(4 * words);
        if rng.chance(50) {
            o.fill(1); // NOPs
        }
        o
    } else {
        Vec::new()
    };
    let mut s = vec![0u8; 20 + options.len()];
    s[0..2].copy_from_slice(&sport.to_be_bytes());
    s[2..4].copy_from_slice(&dport.to_be_bytes());
    s[4..12].copy_from_slice(&rng.bytes(8));
    s[12] = ((s.len() / 4) as u8) << 4;
    s[13] = flags;
    s[14..16].copy_from_slice(&rng.u16().to_be_bytes());
    s[20..].copy_from_slice(&options);
    let payload_len = payload_len(rng);
    s.extend(rng.bytes(payload_len));
    let sum = l4_checksum(src, dst, IPPROTO_TCP, &s);
    s[16..18].copy_from_slice(&sum.to_be_bytes());
    s
}

fn udp_datagram(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, rng: &mut Rng) -> Vec<u8> {
    let payload_len = payload_len(rng);
    let mut d = vec![0u8; 8];
    d[0..2].copy_from_slice(&sport.to_be_bytes());
    d[2..4].copy_from_slice(&dport.to_be_bytes());
    d[4..6].copy_from_slice(&((8 + payload_len) as u16).to_be_bytes());
    d.extend(rng.bytes(payload_len));
    if !rng.chance(10) {
        let sum = match l4_checksum(src, dst, IPPROTO_UDP, &d) {
            0 => 0xffff,
            s => s,
        };
        d[6..8].copy_from_slice(&sum.to_be_bytes());
    }
    d
}

fn payload_len(rng: &mut Rng) -> usize {
    match rng.below(10) {
        0..=4 => 0,
        5..=7 => rng.below(64),
        8 => rng.below(600),
        // Around the tunnel's MTU (1400 with a 20-byte outer header).
        _ => 1300 + rng.below(200),
    }
}

fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, segment: &[u8]) -> u16 {
    checksum::finish(checksum::sum(
        checksum::pseudo_v4(src, dst, proto, segment.len() as u16),
        segment,
    ))
}

fn frame(dst: Mac, src: Mac, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// One frame to send and the NIC it arrives on.
struct Input {
    ingress: u32,
    bytes: Vec<u8>,
    /// What the generator made (for reports).
    what: &'static str,
}

struct Gen {
    rng: Rng,
    ext: u32,
    int: u32,
}

impl Gen {
    fn client(&mut self) -> Ipv4Addr {
        self.rng.pick(&CLIENTS)
    }

    fn ttl(&mut self) -> u8 {
        match self.rng.below(20) {
            0 => 0,
            1 => 1,
            2 => 2,
            3 => self.rng.byte(),
            _ => 64,
        }
    }

    fn tcp_flags(&mut self) -> u8 {
        const SYN: u8 = tcp_state::TCP_SYN;
        const ACK: u8 = tcp_state::TCP_ACK;
        const FIN: u8 = tcp_state::TCP_FIN;
        const RST: u8 = tcp_state::TCP_RST;
        match self.rng.below(12) {
            0..=2 => SYN,
            3..=4 => ACK,
            5 => ACK | 0x08,
            6 => FIN | ACK,
            7 => RST,
            8 => SYN | ACK,
            9 => SYN | RST,
            10 => 0,
            _ => self.rng.byte(),
        }
    }

    fn ip_options(&mut self) -> Vec<u8> {
        if !self.rng.chance(15) {
            return Vec::new();
        }
        let words = 1 + self.rng.below(10);
        match self.rng.below(3) {
            0 => vec![1; 4 * words],
            1 => {
                let mut o = vec![0x94, 0x04, 0, 0];
                o.resize(4 * words, 0);
                o
            }
            _ => self.rng.bytes(4 * words),
        }
    }

    fn ip(&mut self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Ip {
        Ip {
            src,
            dst,
            proto,
            tos: if self.rng.chance(20) {
                self.rng.byte()
            } else {
                0
            },
            id: if self.rng.chance(30) {
                self.rng.below(4) as u16
            } else {
                self.rng.u16()
            },
            df: self.rng.chance(60),
            mf: false,
            offset: 0,
            ttl: self.ttl(),
            options: self.ip_options(),
        }
    }

    /// Mostly the director's MAC on that NIC; sometimes broadcast, multicast or another host's.
    fn dst_mac(&mut self, own: Mac) -> Mac {
        match self.rng.below(40) {
            0 => [0xff; 6],
            1 => [0x01, 0x00, 0x5e, 0, 0, 1],
            2 => [0x02, 0x99, 0, 0, 0, 1],
            _ => own,
        }
    }

    fn next(&mut self) -> Input {
        let mut input = match self.rng.below(100) {
            0..=34 => self.client_packet(),
            35..=49 => self.nat_reply(),
            50..=59 => self.fragment(),
            60..=71 => self.icmp_error(),
            72..=79 => self.other(),
            _ => self.malformed(),
        };
        if self.rng.chance(25) {
            self.mutate(&mut input.bytes);
            input.what = "mutated";
        }
        input
    }

    /// A client's TCP segment or UDP datagram to a service (or to the VIP on another port, or
    /// to another address).
    fn client_packet(&mut self) -> Input {
        let svc = &SERVICES[self.rng.below(SERVICES.len())];
        let src = self.client();
        let sport = self.rng.pick(&CLIENT_PORTS);
        let vport = svc.vport(&mut self.rng);
        let (dst, dport) = match self.rng.below(10) {
            0 => (svc.vip, self.rng.u16()),
            1 => (world::OTHER_VIP, vport),
            2 => (Ipv4Addr::from(self.rng.next() as u32), vport),
            _ => (svc.vip, vport),
        };
        let proto = if self.rng.chance(5) {
            if svc.proto == IPPROTO_TCP {
                IPPROTO_UDP
            } else {
                IPPROTO_TCP
            }
        } else {
            svc.proto
        };
        let payload = if proto == IPPROTO_TCP {
            let flags = self.tcp_flags();
            tcp_segment(src, dst, sport, dport, flags, &mut self.rng)
        } else {
            udp_datagram(src, dst, sport, dport, &mut self.rng)
        };
        let ip = self.ip(src, dst, proto);
        let mac = self.dst_mac(EXT_MAC);
        Input {
            ingress: self.ext,
            bytes: frame(mac, ROUTER_MAC, 0x0800, &ip.packet(&payload)),
            what: "client packet",
        }
    }

    /// A NAT real server's answer to a client, arriving on the inside NIC.
    fn nat_reply(&mut self) -> Input {
        let nat: Vec<&Svc> = SERVICES
            .iter()
            .filter(|s| s.method == method::MASQ)
            .collect();
        let svc = nat[self.rng.below(nat.len())];
        let dst = self.client();
        let dport = self.rng.pick(&CLIENT_PORTS);
        let sport = svc.rport(&mut self.rng);
        let payload = if svc.proto == IPPROTO_TCP {
            let flags = self.tcp_flags();
            tcp_segment(svc.real_addr, dst, sport, dport, flags, &mut self.rng)
        } else {
            udp_datagram(svc.real_addr, dst, sport, dport, &mut self.rng)
        };
        let ip = self.ip(svc.real_addr, dst, svc.proto);
        let (ingress, own) = svc.real_nic(self);
        let mac = self.dst_mac(own);
        Input {
            ingress,
            bytes: frame(mac, svc.real_mac, 0x0800, &ip.packet(&payload)),
            what: "NAT reply",
        }
    }

    /// A fragment of a client's datagram, or of a NAT reply: the first (MF, offset 0, with
    /// the ports) or a later one (payload only), with IDs from a small pool so they match.
    fn fragment(&mut self) -> Input {
        let mut input = if self.rng.chance(70) {
            self.client_packet()
        } else {
            self.nat_reply()
        };
        input.what = "fragment";
        let bytes = &mut input.bytes;
        if bytes.len() < 34 {
            return input;
        }
        let later = self.rng.chance(50);
        let offset: u16 = if later {
            1 + self.rng.below(200) as u16
        } else {
            0
        };
        let mf = !later || self.rng.chance(50);
        let frag = (offset & 0x1fff) | if mf { 0x2000 } else { 0 };
        let id = self.rng.below(4) as u16;
        bytes[18..20].copy_from_slice(&id.to_be_bytes());
        bytes[20..22].copy_from_slice(&frag.to_be_bytes());
        refresh_ip_checksum(bytes);
        input
    }

    /// An ICMP error quoting a flow: our reply to a client (from the client's side), a NAT
    /// packet to a real server (from the inside), or something random.
    fn icmp_error(&mut self) -> Input {
        let svc = &SERVICES[self.rng.below(SERVICES.len())];
        let client = self.client();
        let cport = self.rng.pick(&CLIENT_PORTS);
        let inside = svc.method == method::MASQ && self.rng.chance(50);
        let (vport, rport) = (svc.vport(&mut self.rng), svc.rport(&mut self.rng));
        let (real_nic, real_mac) = svc.real_nic(self);
        let (qsrc, qdst, qsport, qdport, ingress, own, from) = if inside {
            // The client's packet as forwarded to the real server, quoted by it or a router.
            let from = if self.rng.chance(50) {
                svc.real_addr
            } else {
                world::NAT_GATEWAY_IP
            };
            (
                client,
                svc.real_addr,
                cport,
                rport,
                real_nic,
                real_mac,
                from,
            )
        } else {
            // Our (or the real server's) reply to the client, quoted by a router on the way.
            let from = if self.rng.chance(50) {
                world::ROUTER_IP
            } else {
                client
            };
            (svc.vip, client, vport, cport, self.ext, EXT_MAC, from)
        };
        let qproto = if self.rng.chance(90) {
            svc.proto
        } else {
            self.rng.pick(&[1, 47, 6, 17])
        };
        let l4 = if qproto == IPPROTO_TCP {
            let flags = self.tcp_flags();
            tcp_segment(qsrc, qdst, qsport, qdport, flags, &mut self.rng)
        } else {
            udp_datagram(qsrc, qdst, qsport, qdport, &mut self.rng)
        };
        let mut quoted_ip = self.ip(qsrc, qdst, qproto);
        if self.rng.chance(10) {
            quoted_ip.offset = self.rng.below(3) as u16;
            quoted_ip.mf = self.rng.chance(50);
        }
        let mut quoted = quoted_ip.packet(&l4);
        let keep = match self.rng.below(10) {
            0 => self.rng.below(quoted.len() + 1),
            1..=6 => quoted_ip.options.len() + 28,
            _ => quoted.len().min(576 - 28),
        };
        quoted.truncate(keep.min(quoted.len()));
        let (ty, code) = match self.rng.below(10) {
            0..=3 => (3, self.rng.pick(&[1, 3, 4])),
            4 => (4, 0),
            5..=6 => (11, 0),
            7 => (12, 0),
            8 => (self.rng.pick(&[0, 8, 5, 13]), 0),
            _ => (self.rng.byte(), self.rng.byte()),
        };
        let mut icmp = vec![ty, code, 0, 0];
        icmp.extend_from_slice(&[0, 0, 0x05, 0x78]);
        icmp.extend_from_slice(&quoted);
        let sum = checksum::checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let dst = if inside { client } else { svc.vip };
        let dst = if self.rng.chance(10) {
            self.client()
        } else {
            dst
        };
        let ip = self.ip(from, dst, 1);
        let mac = self.dst_mac(own);
        Input {
            ingress,
            bytes: frame(mac, ROUTER_MAC, 0x0800, &ip.packet(&icmp)),
            what: "ICMP error",
        }
    }

    /// ARP, IPv6, VLAN, other EtherTypes and IP protocols.
    fn other(&mut self) -> Input {
        let mac = self.dst_mac(EXT_MAC);
        let bytes = match self.rng.below(6) {
            0 => {
                let mut arp = vec![0, 1, 8, 0, 6, 4, 0, 1];
                arp.extend_from_slice(&ROUTER_MAC);
                arp.extend_from_slice(&world::ROUTER_IP.octets());
                arp.extend_from_slice(&[0; 6]);
                arp.extend_from_slice(&VIP.octets());
                frame([0xff; 6], ROUTER_MAC, 0x0806, &arp)
            }
            1 => {
                // IPv6 (the world has IPv4 services only): TCP, UDP, or extension headers
                // (hop-by-hop, fragment, destination options) over random bytes.
                let next = self.rng.pick(&[6, 17, 0, 44, 60, 58]);
                let len = 8 + self.rng.below(48);
                let mut v6 = vec![0x60, 0, 0, 0, 0, len as u8, next, 64];
                v6.extend(self.rng.bytes(32 + len));
                frame(mac, ROUTER_MAC, 0x86dd, &v6)
            }
            2 => {
                // A VLAN-tagged copy of a client packet: lb sits below the VLAN device.
                let inner = self.client_packet().bytes;
                let mut tagged = frame(mac, ROUTER_MAC, 0x8100, &[0, 5]);
                tagged.extend_from_slice(&inner[12..]);
                tagged
            }
            3 => {
                let proto = self.rng.pick(&[4, 47, 50, 132, 0, 255]);
                let len = self.rng.below(60);
                let payload = self.rng.bytes(len);
                let client = self.client();
                let ip = self.ip(client, VIP, proto);
                frame(mac, ROUTER_MAC, 0x0800, &ip.packet(&payload))
            }
            4 => {
                // ICMP that is not an error, and fragmented ICMP.
                let mut icmp = vec![8, 0, 0, 0, 0, 1, 0, 1];
                let len = self.rng.below(40);
                icmp.extend(self.rng.bytes(len));
                let sum = checksum::checksum(&icmp);
                icmp[2..4].copy_from_slice(&sum.to_be_bytes());
                let client = self.client();
                let mut ip = self.ip(client, VIP, 1);
                if self.rng.chance(30) {
                    ip.mf = true;
                    ip.df = false;
                }
                frame(mac, ROUTER_MAC, 0x0800, &ip.packet(&icmp))
            }
            _ => {
                let ethertype = self.rng.u16();
                let len = self.rng.below(100);
                frame(mac, ROUTER_MAC, ethertype, &self.rng.bytes(len))
            }
        };
        Input {
            ingress: self.ext,
            bytes,
            what: "other",
        }
    }

    /// A well-formed packet with a header field made wrong, or cut short.
    fn malformed(&mut self) -> Input {
        let mut input = if self.rng.chance(70) {
            self.client_packet()
        } else {
            self.icmp_error()
        };
        input.what = "malformed";
        let b = &mut input.bytes;
        if b.len() < 34 || b[12..14] != [8, 0] {
            return input;
        }
        match self.rng.below(7) {
            0 => b[14] = (self.rng.byte() & 0xf0) | (b[14] & 0x0f),
            1 => b[14] = 0x40 | self.rng.below(16) as u8,
            2 => {
                let tot = u16::from_be_bytes([b[16], b[17]]);
                let bogus = match self.rng.below(3) {
                    0 => tot.saturating_add(1 + self.rng.below(64) as u16),
                    1 => self.rng.below(usize::from(tot) + 1) as u16,
                    _ => self.rng.u16(),
                };
                b[16..18].copy_from_slice(&bogus.to_be_bytes());
            }
            3 => {
                let len = 14 + self.rng.below(b.len() - 13);
                b.truncate(len.max(14));
            }
            4 => {
                // Padding after the datagram (Ethernet's minimum, or junk).
                let pad = self.rng.below(64);
                let junk = self.rng.chance(50);
                let extra = if junk {
                    self.rng.bytes(pad)
                } else {
                    vec![0; pad]
                };
                b.extend(extra);
            }
            5 => {
                // A header that leaves no room for the L4 header in the datagram.
                let ihl = usize::from(b[14] & 0x0f) * 4;
                let tot = ihl + self.rng.below(20);
                b[16..18].copy_from_slice(&(tot as u16).to_be_bytes());
            }
            _ => b[22] = self.rng.pick(&[0, 1, 2]),
        }
        if self.rng.chance(70) {
            refresh_ip_checksum(b);
        }
        input
    }

    /// Bit flips, random bytes, truncation, extension.
    fn mutate(&mut self, b: &mut Vec<u8>) {
        for _ in 0..1 + self.rng.below(3) {
            match self.rng.below(5) {
                0 | 1 => {
                    let at = self.rng.below(b.len());
                    b[at] ^= 1 << self.rng.below(8);
                }
                2 => {
                    // Mostly in the headers, where it matters.
                    let at = 14 + self.rng.below(b.len().min(80).saturating_sub(14).max(1));
                    if at < b.len() {
                        b[at] = self.rng.byte();
                    }
                }
                3 => {
                    let len = 14 + self.rng.below(b.len() - 13);
                    b.truncate(len);
                }
                _ => {
                    let n = 1 + self.rng.below(32);
                    b.extend(self.rng.bytes(n));
                }
            }
        }
        if self.rng.chance(50) && b.len() >= 34 && b[12..14] == [8, 0] {
            refresh_ip_checksum(b);
        }
    }
}

/// Recomputes the IPv4 header checksum of an Ethernet frame (as far as the header is there).
fn refresh_ip_checksum(b: &mut [u8]) {
    if b.len() < 34 {
        return;
    }
    let ihl = usize::from(b[14] & 0x0f) * 4;
    if ihl < 20 || b.len() < 14 + ihl {
        return;
    }
    b[24..26].fill(0);
    let sum = checksum::checksum(&b[14..14 + ihl]);
    b[24..26].copy_from_slice(&sum.to_be_bytes());
}

// ---- the run ---------------------------------------------------------------------------------

/// Seed and size of a run, from the environment.
pub fn settings() -> (u64, u64) {
    let frames = std::env::var("LB_FUZZ_FRAMES")
        .ok()
        .map(|v| v.parse().expect("LB_FUZZ_FRAMES: a number"))
        .unwrap_or(CI_FRAMES);
    let seed = std::env::var("LB_FUZZ_SEED")
        .ok()
        .map(|v| v.parse().expect("LB_FUZZ_SEED: a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock after 1970")
                .as_nanos() as u64
        });
    (seed, frames)
}

/// Runs `frames` frames from `seed` (in the calling thread's network namespace, which must be
/// a fresh one). Panics with a report at the first disagreement.
pub fn run(seed: u64, frames: u64) {
    let check_every = std::env::var("LB_FUZZ_CHECK_EVERY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CHECK_EVERY)
        .max(1);
    eprintln!("fuzz: seed {seed}, {frames} frames (LB_FUZZ_SEED={seed} LB_FUZZ_FRAMES={frames})");
    // Every fourth seed runs with `sloppy_tcp` (any segment but a RST opens a connection).
    let sloppy_tcp = seed % 4 == 3;
    eprintln!("fuzz: sloppy_tcp {}", u8::from(sloppy_tcp));
    let net = NatNet::build(true);
    let mut director = Director::load_sized(
        harness::PROGRAM,
        &[
            (lb_common::maps::CONNS, CONN_TABLE_SIZE),
            (lb_common::maps::HALF_OPEN, HALF_OPEN_TABLE_SIZE),
        ],
    );
    for change in setup(&net, sloppy_tcp) {
        director.apply(&change);
    }
    let mut model = Model::new(model_world(&net, sloppy_tcp));
    let mut generator = Gen {
        rng: Rng::new(seed),
        ext: net.ext,
        int: net.int,
    };
    let mut expected_stats = vec![0u64; Stat::COUNT as usize + 1];
    let mut verdicts: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut window = Vec::new();
    let start = Instant::now();
    for n in 0..frames {
        let input = generator.next();
        let (verdict, out) = director
            .run_on(&input.bytes, Some(input.ingress))
            .unwrap_or_else(|e| panic!("{}", report(seed, n, &input, &format!("test run: {e}"))));
        let expected = model.run(input.ingress, &input.bytes);
        let problem = compare(&expected, verdict, &out).or_else(|| {
            // A second oracle, independent of the model: what comes in with sound checksums
            // leaves with sound checksums.
            let after = if verdict.forwards() {
                wire::checksum_problems(&out)
            } else {
                Vec::new()
            };
            (!after.is_empty() && wire::checksum_problems(&input.bytes).is_empty())
                .then(|| format!("checksums broken on the way: {after:?}"))
        });
        if let Some(problem) = problem {
            let detail = format!(
                "{problem}\nexpected {:?}, counted {:?}\n{}",
                expected.action,
                expected.stats.iter().map(|s| s.name()).collect::<Vec<_>>(),
                if expected.action == Action::Drop
                    || !verdict.forwards() && verdict != Verdict::PASS
                {
                    String::new()
                } else {
                    format!(
                        "expected (-) vs actual (+):\n{}",
                        wire::hexdump_diff(&expected.frame, &out)
                    )
                }
            );
            panic!("{}", report(seed, n, &input, &detail));
        }
        for stat in &expected.stats {
            expected_stats[*stat as usize] += 1;
        }
        if expected.stats.contains(&Stat::IcmpRelayed)
            && (expected.stats.contains(&Stat::TxRoute) || expected.stats.contains(&Stat::TxTunnel))
        {
            expected_stats[DR_TUN_RELAYS] += 1;
        }
        *verdicts.entry(verdict_name(verdict)).or_default() += 1;
        window.push((n, input));
        if (n + 1) % check_every == 0 || n + 1 == frames {
            if let Err(problem) = checkpoint(&director, &model, &expected_stats) {
                let mut frames_seen = String::new();
                for (i, input) in window.iter().rev().take(5) {
                    let _ = writeln!(
                        frames_seen,
                        "frame {i} ({}): {}",
                        input.what,
                        hex(&input.bytes)
                    );
                }
                panic!(
                    "fuzz seed {seed}: tables or counters wrong at the checkpoint after frame {n} \
                     (rerun with LB_FUZZ_SEED={seed} LB_FUZZ_CHECK_EVERY=1 to find the frame):\n\
                     {problem}\nlast frames of the window:\n{frames_seen}"
                );
            }
            window.clear();
        }
        // Only every CHECK_EVERY frames, whatever LB_FUZZ_CHECK_EVERY says, so that a replay
        // with more checkpoints sends the same frames into the same tables.
        if (n + 1) % CHECK_EVERY == 0 {
            let (conns, frags) = model.table_sizes();
            if conns > CLEAR_CONNS_AT || frags > CLEAR_FRAGS_AT {
                clear_tables(&mut director, &mut model);
            }
        }
    }
    let elapsed = start.elapsed();
    eprintln!(
        "fuzz: {frames} frames in {:.1} s ({:.0} frames/s), verdicts {verdicts:?}",
        elapsed.as_secs_f64(),
        frames as f64 / elapsed.as_secs_f64()
    );
    let mut counted: Vec<String> = Stat::ALL
        .iter()
        .filter(|s| expected_stats[**s as usize] > 0)
        .map(|s| format!("{} {}", s.name(), expected_stats[*s as usize]))
        .collect();
    counted.sort();
    eprintln!("fuzz: counters {}", counted.join(", "));
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::PASS => "pass",
        Verdict::DROP => "drop",
        Verdict::TX => "tx",
        Verdict::REDIRECT => "redirect",
        _ => "other",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn report(seed: u64, n: u64, input: &Input, detail: &str) -> String {
    format!(
        "fuzz seed {seed}, frame {n} ({}, ingress {}): {detail}\ninput: {}\n{}",
        input.what,
        input.ingress,
        hex(&input.bytes),
        wire::describe(&input.bytes)
    )
}

/// What is wrong with the program's answer, if anything.
fn compare(expected: &model::Outcome, verdict: Verdict, out: &[u8]) -> Option<String> {
    if verdict.0 != expected.action as u32 {
        return Some(format!(
            "verdict {verdict:?}, the model says {:?}",
            expected.action
        ));
    }
    if expected.action == Action::Drop {
        return None;
    }
    let mut actual = out.to_vec();
    if actual.len() == expected.frame.len() {
        for range in &expected.unpredictable {
            actual[range.clone()].copy_from_slice(&expected.frame[range.clone()]);
        }
    }
    if actual != expected.frame {
        return Some("the frame out differs from the model's".into());
    }
    if let Some(at) = expected.valid_header_at
        && checksum::checksum(&out[at..at + 20]) != 0
    {
        return Some(format!("the IPv4 header at {at} has a bad checksum"));
    }
    None
}

/// The program's tables against the model's and against themselves.
fn checkpoint(director: &Director, model: &Model, expected_stats: &[u64]) -> Result<(), String> {
    let mut problems = Vec::new();
    // Counters: as the model counted, and every frame under exactly one verdict.
    let stats = director.dp_stats();
    for stat in Stat::ALL {
        let (got, want) = (stats[stat as usize], expected_stats[stat as usize]);
        if got != want {
            problems.push(format!(
                "counter {}: {got}, the model counted {want}",
                stat.name()
            ));
        }
    }
    let verdicts: u64 = Stat::ALL
        .iter()
        .filter(|s| is_verdict_reason(**s))
        .map(|s| stats[*s as usize])
        .sum();
    // NAT's translated ICMP errors are counted only as icmp_relayed (DR and TUN relays also
    // under tx_route/tx_tunnel): the model knows how many there were.
    let nat_relays =
        expected_stats[Stat::IcmpRelayed as usize] - model_dr_tun_relays(expected_stats);
    if verdicts + nat_relays != stats[Stat::Rx as usize] {
        problems.push(format!(
            "{} frames received, {} counted under a verdict (+{nat_relays} NAT relays)",
            stats[Stat::Rx as usize],
            verdicts
        ));
    }
    // Both connection tables: the model's, entry for entry, each in the same table.
    let conns = director.conns_by_table();
    let want: HashMap<(Table, FlowKey), model::Entry> = model
        .conns()
        .map(|(table, t, e)| ((table, t.key()), *e))
        .collect();
    let got: HashMap<(Table, FlowKey), Conn> = conns
        .iter()
        .map(|(key, conn, half_open)| ((table_of(*half_open), *key), *conn))
        .collect();
    for ((table, key), conn) in &got {
        let Some(real) = SERVICES.iter().find(|s| s.real_id == conn.real) else {
            problems.push(format!(
                "{table:?} {key:?}: names unknown real server {}",
                conn.real
            ));
            continue;
        };
        if real.id != conn.service {
            problems.push(format!(
                "{table:?} {key:?}: real {} is not of service {}",
                conn.real, conn.service
            ));
        }
        match want.get(&(*table, *key)) {
            None => problems.push(format!(
                "{table:?} {key:?} -> {conn:?}: not in the model's table{}",
                want.keys()
                    .find(|(_, k)| k == key)
                    .map(|(t, _)| format!(" (the model has it in {t:?})"))
                    .unwrap_or_default()
            )),
            Some(e) => {
                let same = e.real == conn.real
                    && e.service == conn.service
                    && lb_common::Addr::v4(u32::from_ne_bytes(e.vaddr)) == conn.vaddr
                    && e.vport.to_be() == conn.vport
                    && (e.reply || e.state == conn.state)
                    && e.reply == (conn.flags & lb_common::CONN_F_REPLY != 0);
                if !same {
                    problems.push(format!("{table:?} {key:?}: {conn:?}, the model has {e:?}"));
                }
            }
        }
    }
    for ((table, key), e) in &want {
        if !got.contains_key(&(*table, *key)) {
            problems.push(format!(
                "{table:?} {key:?} -> {e:?}: missing from the program's table"
            ));
        }
    }
    // The first fragments remembered for their later ones.
    let got: HashMap<FragKey, FlowKey> = director.frags().into_iter().collect();
    let want: HashMap<FragKey, FlowKey> = model.frags().collect();
    if got != want {
        let mut diff: Vec<String> = Vec::new();
        for (key, flow) in &got {
            if want.get(key) != Some(flow) {
                diff.push(format!(
                    "program has {key:?} -> {flow:?}, the model {:?}",
                    want.get(key)
                ));
            }
        }
        for (key, flow) in &want {
            if !got.contains_key(key) {
                diff.push(format!(
                    "the model has {key:?} -> {flow:?}, the program not"
                ));
            }
        }
        diff.truncate(10);
        problems.push(format!("FRAGS differ:\n{}", diff.join("\n")));
    }
    // Live counts: what each table holds, and what the model counts.
    for svc in &SERVICES {
        let mut held = RealConns::default();
        for (_, conn, half_open) in &conns {
            if conn.real != svc.real_id || conn.flags & lb_common::CONN_F_REPLY != 0 {
                continue;
            }
            *match (*half_open, tcp_state::is_active(conn.state)) {
                (false, true) => &mut held.active,
                (false, false) => &mut held.inactive,
                (true, true) => &mut held.half_open_active,
                (true, false) => &mut held.half_open_inactive,
            } += 1;
        }
        let live = RealConns {
            overloaded: 0,
            ..director.real_conns(svc.real_id)
        };
        if live != held {
            problems.push(format!(
                "real {}: REAL_CONNS {live:?}, the tables hold {held:?}",
                svc.real_id
            ));
        }
        let modelled = model.real_conns(svc.real_id);
        if modelled != held {
            problems.push(format!(
                "real {}: the model counts {modelled:?}, the tables hold {held:?}",
                svc.real_id
            ));
        }
        for (what, got, want) in [
            (
                "service",
                director.service_stats(svc.id),
                model.service_stats(svc.id),
            ),
            (
                "real",
                director.real_stats(svc.real_id),
                model.real_stats(svc.real_id),
            ),
        ] {
            if got != want {
                problems.push(format!(
                    "{what} {} counters {got:?}, the model {want:?}",
                    svc.id
                ));
            }
        }
        if director.rr_position(svc.id) != model.rr_draws(svc.id) {
            problems.push(format!(
                "service {} round-robin position {}, the model scheduled {}",
                svc.id,
                director.rr_position(svc.id),
                model.rr_draws(svc.id)
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The counters that say what became of a frame (one per frame, but NAT's ICMP relays).
fn is_verdict_reason(stat: Stat) -> bool {
    let name = stat.name();
    (name.starts_with("pass_") || name.starts_with("drop_"))
        || matches!(
            stat,
            Stat::TxRoute
                | Stat::TxTunnel
                | Stat::TxNat
                | Stat::TxNatReply
                | Stat::IcmpFragNeeded
                | Stat::IcmpTimeExceeded
        )
}

/// DR and TUN relays the model counted (those counted twice: tx_* and icmp_relayed).
fn model_dr_tun_relays(expected_stats: &[u64]) -> u64 {
    expected_stats[DR_TUN_RELAYS]
}

/// The model's name of a table, from whether it is the half-open one.
fn table_of(half_open: bool) -> Table {
    if half_open {
        Table::HalfOpen
    } else {
        Table::Conns
    }
}

/// A slot past the program's counters where the run keeps its count of DR/TUN relays.
const DR_TUN_RELAYS: usize = Stat::COUNT as usize;

/// Empties the connection and fragment tables of both, and the live counts with them.
fn clear_tables(director: &mut Director, model: &mut Model) {
    // (A key in both tables is listed, and removed, twice.)
    for (flow, _) in director.conns() {
        director.apply(&Change::RemoveConn(flow));
    }
    director.clear_frags();
    for svc in &SERVICES {
        director.apply(&Change::RealConns {
            id: svc.real_id,
            conns: RealConns::default(),
        });
    }
    model.clear_tables();
}
