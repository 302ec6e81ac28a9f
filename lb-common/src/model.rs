//! A reference model of the data path, in plain Rust (feature `model`, `std`): given the
//! director's configuration and a frame, what lb must do with it, byte for byte. The fuzz test
//! (`tests/tests/datapath/fuzz.rs`) runs the real XDP program and this model side by side.
//!
//! It is written from the protocol rules (RFC 791, 792, 768, 793, 1122, 1624) and from IPVS's
//! and lb's documented behaviour, not from `lb-ebpf`'s code: where the two disagree, one of
//! them is wrong and the fuzz test says which frame shows it. What it takes from lb-common is
//! configuration facts both sides must share: the pre-filter's hash ([`crate::filter::slot`]),
//! the counter names ([`Stat`]), the connection-table key layout ([`FlowKey`]) and IPVS's TCP
//! state table ([`crate::tcp_state`], itself a transcription of `ip_vs_proto_tcp.c`).
//!
//! Scope: the configurations the fuzz test builds. Every service has one real server, so
//! scheduling is deterministic (no persistence, no thresholds, no connection-count
//! //! schedulers); of IPVS's sysctls only `sloppy_tcp` may differ from its default; the half-open
//! table never fills (it is an LRU, whose evictions no model can predict: the test clears it,
//! in the program and here, long before), and no entry expires during a run. The connection
//! table may fill ([`World::conn_table_size`]: a plain hash refuses a new key when full).
//!
//! The model keeps state where lb does, because the outcome depends on history: the two
//! connection tables, the TCP state of each connection, the first fragments seen (for their
//! later fragments), the traffic counters and the live connection counts. A connection opens
//! (with a TCP SYN without RST or any UDP datagram, as IPVS; NAT connections have a reply
//! entry) in the half-open table and moves to the connection table with its first packet
//! after the opening one that shows it is real: the client's packet that finds the TCP state
//! ESTABLISHED, a UDP flow's second datagram (either way, for NAT); never a later fragment,
//! which is more of a datagram already seen. If the connection table is full, the connection
//! stays where it is (and tries again with its next such packet).
//!
//! Where lb deliberately differs from IPVS, the model follows lb's documented choice, and says
//! so: checksums are not verified on the way in (the end host does; lb's rewrites are
//! incremental, RFC 1624, so a bad checksum stays bad), although IPVS sees only packets whose
//! IP header checksum the kernel checked and drops ICMP errors with a bad checksum; a
//! translated ICMP error's quoted UDP checksum is updated too (IPVS leaves it); fragments are
//! followed by their first fragment's flow, not reassembled. (The TUN outer header copies the
//! inner TOS byte whole, as IPVS's `ip_vs_tunnel_xmit` does.)
//!
//! Addresses are `[u8; 4]` as on the wire and ports host-order `u16` inside the model;
//! [`Tuple::key`] gives the program's [`FlowKey`] (network order in memory).

extern crate std;

use std::{boxed::Box, collections::BTreeMap, ops::Range, vec, vec::Vec};

use crate::{
    Counters, FlowKey, IPPROTO_TCP, IPPROTO_UDP, RealConns, Stat, filter, method, tcp_state,
};

pub type Mac = [u8; 6];
pub type Addr = [u8; 4];

const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_IPIP: u8 = 4;
const IP_DF: u16 = 0x4000;
const IP_MF: u16 = 0x2000;
const IP_OFFSET: u16 = 0x1fff;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;

/// What the program returns (`xdp_action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Drop = 1,
    Pass = 2,
    Tx = 3,
    Redirect = 4,
}

/// One of the director's NICs as lbd describes it (`IFACES`).
#[derive(Clone, Copy, Debug)]
pub struct Iface {
    pub ifindex: u32,
    pub mac: Mac,
    pub addr: Addr,
}

/// A real server: the only one of its service.
#[derive(Clone, Copy, Debug)]
pub struct Real {
    pub id: u32,
    pub addr: Addr,
    /// 0: the virtual port (IPVS's port-0 real servers).
    pub port: u16,
    /// One of [`method`].
    pub method: u8,
    /// The next hop's MAC (resolved).
    pub mac: Mac,
    /// Path MTU for the tunnel; 0 unknown.
    pub mtu: u32,
}

/// A virtual service (`-t`/`-u VIP:port`) and its one real server.
#[derive(Clone, Copy, Debug)]
pub struct Service {
    pub id: u32,
    pub vip: Addr,
    pub port: u16,
    pub proto: u8,
    pub real: Real,
}

/// Where the kernel's FIB sends a packet next (what `bpf_fib_lookup` answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    pub ifindex: u32,
    pub smac: Mac,
    pub dmac: Mac,
}

/// The kernel's routes and neighbours: the next hop from `ingress` to `dst`, if forwarding
/// there succeeds.
pub type Fib = Box<dyn Fn(u32, Addr) -> Option<NextHop>>;

/// The director as lbd set it up.
pub struct World {
    pub ifaces: Vec<Iface>,
    pub services: Vec<Service>,
    pub fib: Fib,
    /// IPVS's `sloppy_tcp`: any TCP segment but a RST may open a connection.
    pub sloppy_tcp: bool,
    /// The connection table's size (`CONNS`, entries of either direction).
    pub conn_table_size: usize,
}

/// A directional 5-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tuple {
    pub saddr: Addr,
    pub daddr: Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
}

impl Tuple {
    /// The program's connection-table key.
    pub fn key(&self) -> FlowKey {
        FlowKey {
            saddr: crate::Addr::v4(u32::from_ne_bytes(self.saddr)),
            daddr: crate::Addr::v4(u32::from_ne_bytes(self.daddr)),
            sport: self.sport.to_be(),
            dport: self.dport.to_be(),
            proto: self.proto,
            family: crate::AF_INET,
            _pad16: 0,
        }
    }

    fn reversed(&self) -> Tuple {
        Tuple {
            saddr: self.daddr,
            daddr: self.saddr,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }
}

/// A connection-table entry: a client's connection, or (NAT) its reply direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub real: u32,
    pub service: u32,
    pub vaddr: Addr,
    pub vport: u16,
    /// [`tcp_state`] numbering; UDP: [`tcp_state::UDP`]. A reply entry keeps the state it was
    /// created with (the client's entry holds the connection's).
    pub state: u8,
    pub reply: bool,
}

/// What the program must do with a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub action: Action,
    /// The frame as it leaves (PASS: the input, untouched; DROP: empty, not compared).
    pub frame: Vec<u8>,
    /// Byte ranges of `frame` the program fills with values no model can predict (a random
    /// outer IP ID and the header checksum covering it).
    pub unpredictable: Vec<Range<usize>>,
    /// Offset of an IPv4 header in `frame` whose checksum must be valid (checked by the
    /// caller when part of the header is unpredictable).
    pub valid_header_at: Option<usize>,
    /// The data-path counters the frame bumps, once each (`Rx` first).
    pub stats: Vec<Stat>,
}

/// The two connection tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// The connection table (`CONNS`): connections past their opening packet.
    Conns,
    /// The half-open table (`HALF_OPEN`): connections that have seen only their opening
    /// packet, or could not move on because the connection table was full.
    HalfOpen,
}

/// The model: the world and what the data path remembers.
pub struct Model {
    world: World,
    conns: BTreeMap<Tuple, Entry>,
    half_open: BTreeMap<Tuple, Entry>,
    /// First fragments by (source, destination, IP ID, protocol): their flow.
    frags: BTreeMap<(Addr, Addr, u16, u8), Tuple>,
    /// IPv6 first fragments by (source, destination, identification, protocol): their
    /// ports.
    frags6: BTreeMap<Frag6Key, (u16, u16)>,
    service_stats: BTreeMap<u32, Counters>,
    real_stats: BTreeMap<u32, Counters>,
    /// Round-robin draws per service (RR advances on every new connection).
    rr_draws: BTreeMap<u32, u64>,
}

/// The parsed frame.
struct Frame<'a> {
    bytes: &'a [u8],
    ingress: u32,
    ihl: usize,
    /// IPv4 total length.
    tot: usize,
    df: bool,
    later_fragment: bool,
    first_fragment: bool,
    ttl: u8,
    id: u16,
    proto: u8,
    saddr: Addr,
    daddr: Addr,
}

/// How the parse ended: a packet to follow, or a verdict.
enum Parsed<'a> {
    Flow(Frame<'a>, Tuple, u8),
    LaterFragment(Frame<'a>),
    IcmpError(Frame<'a>, Quote),
    /// A well-formed IPv6 TCP/UDP packet. The model's world has IPv4 services only, so the
    /// program can only pass it: for the reason it would (pre-filter, frame for another host,
    /// an unknown fragment, no service), remembering first fragments as it does.
    Ipv6(Frame6<'a>),
    /// An ICMPv6 error about an IPv6 TCP/UDP packet (the frame, its ingress): about no
    /// connection the model can have.
    Icmp6Error(&'a [u8], u32),
}

/// An IPv6 datagram's fragments: source, destination, identification, protocol.
type Frag6Key = ([u8; 16], [u8; 16], u32, u8);

/// The parsed IPv6 packet.
struct Frame6<'a> {
    bytes: &'a [u8],
    ingress: u32,
    saddr: [u8; 16],
    daddr: [u8; 16],
    proto: u8,
    first_fragment: bool,
    later_fragment: bool,
    id: u32,
    sport: u16,
    dport: u16,
}

/// The packet an ICMP error quotes, as offsets into the frame.
struct Quote {
    tuple: Tuple,
    ip_at: usize,
    l4_at: usize,
}

/// A verdict reached early: pass or drop, counted under a reason.
type Early = (Action, Stat);

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn addr_at(b: &[u8], at: usize) -> Addr {
    [b[at], b[at + 1], b[at + 2], b[at + 3]]
}

/// The internet checksum (RFC 1071) of `bytes`, as it goes in the packet (big endian).
pub fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// RFC 1624 eqn. 3: checksum `check` after the even-aligned bytes `old` become `new`.
fn adjusted(check: u16, old: &[u8], new: &[u8]) -> u16 {
    let mut sum = u32::from(!check);
    for (o, n) in old.chunks(2).zip(new.chunks(2)) {
        sum += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        sum += u32::from(u16::from_be_bytes([n[0], n[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Replaces `frame[at..at + new.len()]` with `new` and adjusts the checksum at `check_at`.
fn rewrite(frame: &mut [u8], at: usize, new: &[u8], check_at: usize) {
    let old: Vec<u8> = frame[at..at + new.len()].to_vec();
    let check = be16(frame, check_at);
    frame[check_at..check_at + 2].copy_from_slice(&adjusted(check, &old, new).to_be_bytes());
    frame[at..at + new.len()].copy_from_slice(new);
}

/// Whether `addr` can be the destination of an ICMP error (RFC 1122 3.2.2: never to a
/// source that does not name one host: this network, loopback, multicast, reserved,
/// broadcast).
fn unicast_host(addr: Addr) -> bool {
    !matches!(addr[0], 0 | 127 | 224..=255)
}

impl Model {
    pub fn new(world: World) -> Self {
        Self {
            world,
            conns: BTreeMap::new(),
            half_open: BTreeMap::new(),
            frags: BTreeMap::new(),
            frags6: BTreeMap::new(),
            service_stats: BTreeMap::new(),
            real_stats: BTreeMap::new(),
            rr_draws: BTreeMap::new(),
        }
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Both connection tables: every entry, by its table and key.
    pub fn conns(&self) -> impl Iterator<Item = (Table, &Tuple, &Entry)> {
        let conns = self.conns.iter().map(|(t, e)| (Table::Conns, t, e));
        let half_open = self.half_open.iter().map(|(t, e)| (Table::HalfOpen, t, e));
        conns.chain(half_open)
    }

    /// The first fragments remembered, keyed as the program keys them.
    pub fn frags(&self) -> impl Iterator<Item = (crate::FragKey, FlowKey)> + '_ {
        let v4 = self.frags.iter().map(|((saddr, daddr, id, proto), tuple)| {
            let key = crate::FragKey {
                saddr: crate::Addr::v4(u32::from_ne_bytes(*saddr)),
                daddr: crate::Addr::v4(u32::from_ne_bytes(*daddr)),
                id: u32::from(id.to_be()),
                proto: *proto,
                family: crate::AF_INET,
                _pad16: 0,
            };
            (key, tuple.key())
        });
        let v6 = self
            .frags6
            .iter()
            .map(|((saddr, daddr, id, proto), (sport, dport))| {
                let (saddr, daddr) = (
                    crate::Addr::from_octets(*saddr),
                    crate::Addr::from_octets(*daddr),
                );
                let key = crate::FragKey {
                    saddr,
                    daddr,
                    id: *id,
                    proto: *proto,
                    family: crate::AF_INET6,
                    _pad16: 0,
                };
                let flow = FlowKey {
                    saddr,
                    daddr,
                    sport: sport.to_be(),
                    dport: dport.to_be(),
                    proto: *proto,
                    family: crate::AF_INET6,
                    _pad16: 0,
                };
                (key, flow)
            });
        v4.chain(v6)
    }

    /// The live connection counts of real server `id` (IPVS's ActiveConn and InActConn,
    /// by table), from what the tables hold.
    pub fn real_conns(&self, id: u32) -> RealConns {
        let mut counts = RealConns::default();
        for (table, _, entry) in self.conns().filter(|(_, _, e)| !e.reply && e.real == id) {
            let active = tcp_state::is_active(entry.state);
            *match (table, active) {
                (Table::Conns, true) => &mut counts.active,
                (Table::Conns, false) => &mut counts.inactive,
                (Table::HalfOpen, true) => &mut counts.half_open_active,
                (Table::HalfOpen, false) => &mut counts.half_open_inactive,
            } += 1;
        }
        counts
    }

    pub fn service_stats(&self, id: u32) -> Counters {
        self.service_stats.get(&id).copied().unwrap_or_default()
    }

    pub fn real_stats(&self, id: u32) -> Counters {
        self.real_stats.get(&id).copied().unwrap_or_default()
    }

    /// New connections scheduled for service `id` so far (its round-robin position).
    pub fn rr_draws(&self, id: u32) -> u64 {
        self.rr_draws.get(&id).copied().unwrap_or(0)
    }

    /// Forgets every connection and fragment (the caller clears the program's tables too).
    pub fn clear_tables(&mut self) {
        self.conns.clear();
        self.half_open.clear();
        self.frags.clear();
    }

    /// Number of entries in the connection tables (both) and the fragment table.
    pub fn table_sizes(&self) -> (usize, usize) {
        (self.conns.len() + self.half_open.len(), self.frags.len())
    }

    fn table(&mut self, table: Table) -> &mut BTreeMap<Tuple, Entry> {
        match table {
            Table::Conns => &mut self.conns,
            Table::HalfOpen => &mut self.half_open,
        }
    }

    /// The entry of `tuple`: in the connection table, else in the half-open table.
    fn lookup(&self, tuple: &Tuple) -> Option<(Table, Entry)> {
        self.conns
            .get(tuple)
            .map(|e| (Table::Conns, *e))
            .or_else(|| self.half_open.get(tuple).map(|e| (Table::HalfOpen, *e)))
    }

    /// Moves the connection of `key` (client entry `entry`, and for NAT its reply entry
    /// `reply`) from the half-open table to the connection table, if there is room.
    fn promote(&mut self, key: Tuple, entry: Entry, reply: Option<Tuple>, stats: &mut Vec<Stat>) {
        let capacity = self.world.conn_table_size;
        let room = |conns: &BTreeMap<Tuple, Entry>, key: &Tuple| {
            conns.contains_key(key) || conns.len() < capacity
        };
        if let Some(reply) = reply {
            if !room(&self.conns, &reply) {
                stats.push(Stat::ConnTableFull);
                return;
            }
            self.conns.insert(
                reply,
                Entry {
                    reply: true,
                    ..entry
                },
            );
        }
        if self.conns.contains_key(&key) {
            // Already moved (by another CPU, in the program).
            return;
        }
        if !room(&self.conns, &key) {
            if let Some(reply) = reply {
                self.conns.remove(&reply);
            }
            stats.push(Stat::ConnTableFull);
            return;
        }
        self.conns.insert(key, entry);
        self.half_open.remove(&key);
        if let Some(reply) = reply {
            self.half_open.remove(&reply);
        }
        stats.push(Stat::Promoted);
    }

    fn iface(&self, ifindex: u32) -> Option<&Iface> {
        self.world.ifaces.iter().find(|i| i.ifindex == ifindex)
    }

    fn service(&self, tuple: &Tuple) -> Option<Service> {
        self.world
            .services
            .iter()
            .find(|s| s.vip == tuple.daddr && s.port == tuple.dport && s.proto == tuple.proto)
            .or_else(|| {
                self.world
                    .services
                    .iter()
                    .find(|s| s.vip == tuple.daddr && s.port == 0 && s.proto == tuple.proto)
            })
            .copied()
    }

    fn real(&self, id: u32) -> Option<Real> {
        self.world
            .services
            .iter()
            .map(|s| s.real)
            .find(|r| r.id == id)
    }

    /// The pre-filter: the destination may be a virtual address, or the source a NAT real
    /// server's (the same hash lbd fills it with, false positives included).
    fn maybe_ours(&self, tuple: &Tuple) -> bool {
        self.maybe_ours_words(
            u32::from_ne_bytes(tuple.saddr),
            u32::from_ne_bytes(tuple.daddr),
        )
    }

    /// The pre-filter on addresses folded to a word each (an IPv4 address is its own).
    fn maybe_ours_words(&self, saddr: u32, daddr: u32) -> bool {
        let slot = |addr: Addr| filter::slot(u32::from_ne_bytes(addr));
        let services = &self.world.services;
        services.iter().any(|s| slot(s.vip) == filter::slot(daddr))
            || services
                .iter()
                .filter(|s| s.real.method == method::MASQ)
                .any(|s| slot(s.real.addr) == filter::slot(saddr))
    }

    /// Runs one frame that arrived on `ingress`.
    pub fn run(&mut self, ingress: u32, input: &[u8]) -> Outcome {
        let mut stats = vec![Stat::Rx];
        match self.process(ingress, input, &mut stats) {
            Ok(outcome) => {
                stats.extend(outcome.stats);
                Outcome { stats, ..outcome }
            }
            Err((action, reason)) => {
                stats.push(reason);
                Outcome {
                    action,
                    frame: if action == Action::Pass {
                        input.to_vec()
                    } else {
                        Vec::new()
                    },
                    unpredictable: Vec::new(),
                    valid_header_at: None,
                    stats,
                }
            }
        }
    }

    fn process(
        &mut self,
        ingress: u32,
        input: &[u8],
        stats: &mut Vec<Stat>,
    ) -> Result<Outcome, Early> {
        let pass = |reason| (Action::Pass, reason);
        match parse(ingress, input)? {
            Parsed::Flow(frame, tuple, flags) => {
                if !self.maybe_ours(&tuple) {
                    return Err(pass(Stat::PassNotService));
                }
                self.for_this_host(&frame)?;
                if frame.first_fragment {
                    self.frags
                        .insert((frame.saddr, frame.daddr, frame.id, frame.proto), tuple);
                }
                self.flow(&frame, tuple, flags, stats)
            }
            Parsed::LaterFragment(frame) => {
                let Some(tuple) = self
                    .frags
                    .get(&(frame.saddr, frame.daddr, frame.id, frame.proto))
                    .copied()
                else {
                    return Err(pass(Stat::PassFragment));
                };
                stats.push(Stat::Fragment);
                self.for_this_host(&frame)?;
                self.flow(&frame, tuple, 0, stats)
            }
            Parsed::IcmpError(frame, quote) => {
                self.for_this_host(&frame)?;
                self.icmp_error(&frame, &quote, stats)
            }
            Parsed::Icmp6Error(bytes, ingress) => {
                self.for_this_host_of(bytes, ingress)?;
                Err(pass(Stat::PassNotService))
            }
            Parsed::Ipv6(frame) => {
                let key = (frame.saddr, frame.daddr, frame.id, frame.proto);
                if frame.later_fragment {
                    if !self.frags6.contains_key(&key) {
                        return Err(pass(Stat::PassFragment));
                    }
                    stats.push(Stat::Fragment);
                    self.for_this_host_of(frame.bytes, frame.ingress)?;
                    return Err(pass(Stat::PassNotService));
                }
                let fold = |a: &[u8; 16]| {
                    a.chunks(4)
                        .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
                        .fold(0, |x, w| x ^ w)
                };
                if !self.maybe_ours_words(fold(&frame.saddr), fold(&frame.daddr)) {
                    return Err(pass(Stat::PassNotService));
                }
                self.for_this_host_of(frame.bytes, frame.ingress)?;
                if frame.first_fragment {
                    self.frags6.insert(key, (frame.sport, frame.dport));
                }
                Err(pass(Stat::PassNotService))
            }
        }
    }

    /// Only frames addressed to the ingress NIC's own MAC are balanced (IPVS's PACKET_HOST).
    fn for_this_host(&self, frame: &Frame) -> Result<(), Early> {
        self.for_this_host_of(frame.bytes, frame.ingress)
    }

    fn for_this_host_of(&self, bytes: &[u8], ingress: u32) -> Result<(), Early> {
        let dst = &bytes[0..6];
        if dst[0] & 1 != 0 {
            return Err((Action::Pass, Stat::PassBroadcast));
        }
        match self.iface(ingress) {
            Some(iface) if iface.mac != dst => Err((Action::Pass, Stat::PassOtherHost)),
            _ => Ok(()),
        }
    }

    /// A TCP/UDP packet (or a later fragment, with its first fragment's `tuple`).
    fn flow(
        &mut self,
        frame: &Frame,
        tuple: Tuple,
        flags: u8,
        stats: &mut Vec<Stat>,
    ) -> Result<Outcome, Early> {
        let is_tcp = tuple.proto == IPPROTO_TCP;
        if let Some((table, entry)) = self.lookup(&tuple) {
            if entry.reply {
                let client = Tuple {
                    saddr: tuple.daddr,
                    daddr: entry.vaddr,
                    sport: tuple.dport,
                    dport: entry.vport,
                    proto: tuple.proto,
                };
                // The connection's state is in its client entry (of the same table).
                if let Some(c) = self.table(table).get_mut(&client) {
                    if is_tcp {
                        c.state = tcp_state::next(c.state, flags, tcp_state::Direction::Output);
                    }
                    let c = *c;
                    // A UDP flow answered: both entries move.
                    if table == Table::HalfOpen && !is_tcp && !frame.later_fragment {
                        self.promote(client, c, Some(tuple), stats);
                    }
                }
                stats.push(Stat::ConnHit);
                self.count(entry.service, entry.real, frame, true);
                return self.nat_reply(frame, &entry);
            }
            let real = self
                .real(entry.real)
                .expect("entries name configured reals");
            // IPVS's is_new_conn (`th->syn && !th->rst`) on a finished connection
            // (conn_reuse_mode 1: TIME_WAIT, CLOSE): a new connection on the same ports, and
            // the old one goes at once (both of its entries).
            let new_syn = is_tcp && flags & TCP_SYN != 0 && flags & TCP_RST == 0;
            let finished = matches!(entry.state, tcp_state::TIME_WAIT | tcp_state::CLOSE);
            if new_syn && finished {
                if real.method == method::MASQ {
                    let reply = reply_tuple(&tuple, &real);
                    self.table(table).remove(&reply);
                }
                self.table(table).remove(&tuple);
            } else {
                let e = self.table(table).get_mut(&tuple).expect("just found");
                if is_tcp {
                    let direction = if real.method == method::MASQ {
                        tcp_state::Direction::Input
                    } else {
                        tcp_state::Direction::InputOnly
                    };
                    e.state = tcp_state::next(e.state, flags, direction);
                }
                let e = *e;
                if table == Table::HalfOpen
                    && !frame.later_fragment
                    && (!is_tcp || e.state == tcp_state::ESTABLISHED)
                {
                    let reply = (real.method == method::MASQ).then(|| reply_tuple(&tuple, &real));
                    self.promote(tuple, e, reply, stats);
                }
                stats.push(Stat::ConnHit);
                self.count(entry.service, entry.real, frame, false);
                return self.to_real(frame, &tuple, &real, stats);
            }
        }
        // A new flow.
        let Some(service) = self.service(&tuple) else {
            return Err((Action::Pass, Stat::PassNotService));
        };
        if frame.later_fragment {
            return Err((Action::Pass, Stat::PassFragment));
        }
        if is_tcp && (flags & TCP_RST != 0 || (flags & TCP_SYN == 0 && !self.world.sloppy_tcp)) {
            return Err((Action::Pass, Stat::PassNotSyn));
        }
        let real = service.real;
        let direction = if real.method == method::MASQ {
            tcp_state::Direction::Input
        } else {
            tcp_state::Direction::InputOnly
        };
        let state = if is_tcp {
            tcp_state::next(tcp_state::NONE, flags, direction)
        } else {
            tcp_state::UDP
        };
        let entry = Entry {
            real: real.id,
            service: service.id,
            vaddr: tuple.daddr,
            vport: tuple.dport,
            state,
            reply: false,
        };
        // Into the half-open table.
        if real.method == method::MASQ {
            self.half_open.insert(
                reply_tuple(&tuple, &real),
                Entry {
                    reply: true,
                    ..entry
                },
            );
        }
        self.half_open.insert(tuple, entry);
        *self.rr_draws.entry(service.id).or_default() += 1;
        stats.push(Stat::ConnNew);
        for counters in [
            self.service_stats.entry(service.id).or_default(),
            self.real_stats.entry(real.id).or_default(),
        ] {
            counters.conns += 1;
        }
        self.count(service.id, real.id, frame, false);
        self.to_real(frame, &tuple, &real, stats)
    }

    /// IPVS's InPkts/InBytes (client side) or OutPkts/OutBytes: IP total lengths.
    fn count(&mut self, service: u32, real: u32, frame: &Frame, out: bool) {
        let bytes = frame.tot as u64;
        for counters in [
            self.service_stats.entry(service).or_default(),
            self.real_stats.entry(real).or_default(),
        ] {
            if out {
                counters.out_pkts += 1;
                counters.out_bytes += bytes;
            } else {
                counters.in_pkts += 1;
                counters.in_bytes += bytes;
            }
        }
    }

    /// Sends a client's packet (or an ICMP error about a DR/TUN connection) on to `real`.
    fn to_real(
        &self,
        frame: &Frame,
        tuple: &Tuple,
        real: &Real,
        stats: &mut Vec<Stat>,
    ) -> Result<Outcome, Early> {
        match real.method {
            method::ROUTE => {
                let iface = *self.egress(frame)?;
                let mut out = frame.bytes.to_vec();
                if let Err(early) = self.hop(frame, &mut out) {
                    return self.icmp_answer(frame, frame.bytes, early, 11, 0, 0);
                }
                stats.push(Stat::TxRoute);
                Ok(emit(
                    out,
                    frame.ingress,
                    iface.ifindex,
                    iface.mac,
                    real.mac,
                    stats,
                ))
            }
            method::TUNNEL => self.tunnel(frame, real, stats),
            _ => self.nat(frame, tuple, real, stats),
        }
        .map(|mut outcome| {
            if frame.proto == IPPROTO_ICMP && real.method != method::MASQ {
                outcome.stats.push(Stat::IcmpRelayed);
            }
            outcome
        })
    }

    /// The NIC a frame to a real server on the director's LAN leaves by: the one it came in.
    fn egress(&self, frame: &Frame) -> Result<&Iface, Early> {
        self.iface(frame.ingress)
            .ok_or((Action::Drop, Stat::DropNoIface))
    }

    /// One hop less (IPVS's decrement_ttl). A packet whose TTL runs out here is answered with
    /// ICMP time exceeded, unless no error may be sent about it (RFC 1122 3.2.2, RFC 1812
    /// 4.3.2.7: not about an ICMP error, a fragment other than the first, or to a source that
    /// is not one host's); then it is dropped.
    fn hop(&self, frame: &Frame, out: &mut [u8]) -> Result<(), Early> {
        if frame.ttl > 1 {
            let ttl_proto = [frame.ttl - 1, frame.proto];
            rewrite(out, ETH_LEN + 8, &ttl_proto, ETH_LEN + 10);
            return Ok(());
        }
        if frame.proto == IPPROTO_ICMP || frame.later_fragment || !unicast_host(frame.saddr) {
            return Err((Action::Drop, Stat::DropTtlExpired));
        }
        Err((Action::Tx, Stat::IcmpTimeExceeded))
    }

    fn tunnel(&self, frame: &Frame, real: &Real, stats: &mut Vec<Stat>) -> Result<Outcome, Early> {
        let iface = *self.egress(frame)?;
        let mut inner = frame.bytes.to_vec();
        if let Err(early) = self.hop(frame, &mut inner) {
            return self.icmp_answer(frame, frame.bytes, early, 11, 0, 0);
        }
        let outer_len = frame.tot + 20;
        if real.mtu != 0 && outer_len as u32 > real.mtu {
            // Too big: "fragmentation needed" if it may not be fragmented and an error may be
            // sent about it; else dropped (XDP cannot fragment).
            if !frame.df
                || frame.proto == IPPROTO_ICMP
                || frame.later_fragment
                || !unicast_host(frame.saddr)
            {
                return Err((Action::Drop, Stat::DropTooBig));
            }
            let mtu = (real.mtu - 20) as u16;
            return self.icmp_answer(frame, &inner, (Action::Tx, Stat::IcmpFragNeeded), 3, 4, mtu);
        }
        let mut outer = [0u8; 20];
        outer[0] = 0x45;
        outer[1] = frame.bytes[ETH_LEN + 1];
        outer[2..4].copy_from_slice(&(outer_len as u16).to_be_bytes());
        // Without DF the outer packet may be fragmented: its ID is random (checked below only
        // for a valid checksum); with DF it means nothing and is 0 (RFC 6864).
        outer[6..8].copy_from_slice(&(if frame.df { IP_DF } else { 0 }).to_be_bytes());
        outer[8] = inner[ETH_LEN + 8];
        outer[9] = IPPROTO_IPIP;
        outer[12..16].copy_from_slice(&iface.addr);
        outer[16..20].copy_from_slice(&real.addr);
        let sum = checksum(&outer);
        outer[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut out = Vec::with_capacity(inner.len() + 20);
        out.extend_from_slice(&inner[..ETH_LEN]);
        out.extend_from_slice(&outer);
        out.extend_from_slice(&inner[ETH_LEN..]);
        out[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        stats.push(Stat::TxTunnel);
        let mut outcome = emit(
            out,
            frame.ingress,
            iface.ifindex,
            iface.mac,
            real.mac,
            stats,
        );
        if !frame.df {
            outcome.unpredictable = vec![ETH_LEN + 4..ETH_LEN + 6, ETH_LEN + 10..ETH_LEN + 12];
            outcome.valid_header_at = Some(ETH_LEN);
        }
        Ok(outcome)
    }

    /// Client → NAT real server: destination address and port rewritten.
    fn nat(
        &self,
        frame: &Frame,
        tuple: &Tuple,
        real: &Real,
        stats: &mut Vec<Stat>,
    ) -> Result<Outcome, Early> {
        let Some(hop) = (self.world.fib)(frame.ingress, real.addr) else {
            return Err((Action::Drop, Stat::DropFib));
        };
        let mut out = frame.bytes.to_vec();
        if let Err(early) = self.hop(frame, &mut out) {
            return self.icmp_answer(frame, frame.bytes, early, 11, 0, 0);
        }
        let port = real_port(real, tuple.dport);
        readdress(&mut out, frame, ETH_LEN + 16, &real.addr, 2, port);
        stats.push(Stat::TxNat);
        Ok(emit(
            out,
            frame.ingress,
            hop.ifindex,
            hop.smac,
            hop.dmac,
            stats,
        ))
    }

    /// NAT real server → client: back from the virtual address and port.
    fn nat_reply(&self, frame: &Frame, entry: &Entry) -> Result<Outcome, Early> {
        let Some(hop) = (self.world.fib)(frame.ingress, frame.daddr) else {
            return Err((Action::Drop, Stat::DropFib));
        };
        if frame.ttl <= 1 {
            // The kernel's forwarding answers it, as it does before IPVS sees replies.
            return Err((Action::Pass, Stat::PassTtlExpired));
        }
        let mut out = frame.bytes.to_vec();
        rewrite(
            &mut out,
            ETH_LEN + 8,
            &[frame.ttl - 1, frame.proto],
            ETH_LEN + 10,
        );
        readdress(&mut out, frame, ETH_LEN + 12, &entry.vaddr, 0, entry.vport);
        let mut stats = vec![Stat::TxNatReply];
        Ok(emit(
            out,
            frame.ingress,
            hop.ifindex,
            hop.smac,
            hop.dmac,
            &mut stats,
        ))
    }

    /// An ICMP error quoting a packet of a connection, as IPVS's ip_vs_in_icmp/out_icmp.
    fn icmp_error(
        &mut self,
        frame: &Frame,
        quote: &Quote,
        stats: &mut Vec<Stat>,
    ) -> Result<Outcome, Early> {
        let key = quote.tuple.reversed();
        let Some((_, entry)) = self.lookup(&key) else {
            return Err((Action::Pass, Stat::PassNotService));
        };
        let ttl_out = |out: &mut Vec<u8>| -> Result<(), Early> {
            if frame.ttl <= 1 {
                return Err((Action::Drop, Stat::DropTtlExpired));
            }
            rewrite(
                out,
                ETH_LEN + 8,
                &[frame.ttl - 1, frame.proto],
                ETH_LEN + 10,
            );
            Ok(())
        };
        if entry.reply {
            // From the real server's side: about client → VIP:vport, from the VIP.
            self.count(entry.service, entry.real, frame, true);
            let Some(hop) = (self.world.fib)(frame.ingress, frame.daddr) else {
                return Err((Action::Drop, Stat::DropFib));
            };
            let mut out = frame.bytes.to_vec();
            ttl_out(&mut out)?;
            rewrite(&mut out, ETH_LEN + 12, &entry.vaddr, ETH_LEN + 10);
            translate_quote(&mut out, frame, quote, 16, 2, entry.vaddr, entry.vport);
            stats.push(Stat::IcmpRelayed);
            return Ok(emit(
                out,
                frame.ingress,
                hop.ifindex,
                hop.smac,
                hop.dmac,
                stats,
            ));
        }
        let real = self
            .real(entry.real)
            .expect("entries name configured reals");
        self.count(entry.service, entry.real, frame, false);
        if real.method != method::MASQ {
            return self.to_real(frame, &key, &real, stats);
        }
        // From the client's side about a NAT connection: about RIP:rport → client.
        let Some(hop) = (self.world.fib)(frame.ingress, real.addr) else {
            return Err((Action::Drop, Stat::DropFib));
        };
        let mut out = frame.bytes.to_vec();
        ttl_out(&mut out)?;
        rewrite(&mut out, ETH_LEN + 16, &real.addr, ETH_LEN + 10);
        let port = real_port(&real, entry.vport);
        translate_quote(&mut out, frame, quote, 12, 0, real.addr, port);
        stats.push(Stat::IcmpRelayed);
        Ok(emit(
            out,
            frame.ingress,
            hop.ifindex,
            hop.smac,
            hop.dmac,
            stats,
        ))
    }

    /// The director's own ICMP error about `frame` (as `about`: the packet as it stood when
    /// the error was decided), back to where it came from; or `early` when it is a drop.
    fn icmp_answer(
        &self,
        frame: &Frame,
        about: &[u8],
        early: Early,
        icmp_type: u8,
        code: u8,
        word: u16,
    ) -> Result<Outcome, Early> {
        if early.0 != Action::Tx {
            return Err(early);
        }
        let quoted = &about[ETH_LEN..ETH_LEN + frame.ihl + 8];
        let mut icmp = vec![icmp_type, code, 0, 0, 0, 0];
        icmp.extend_from_slice(&word.to_be_bytes());
        icmp.extend_from_slice(quoted);
        let sum = checksum(&icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = IPPROTO_ICMP;
        ip[12..16].copy_from_slice(&frame.daddr);
        ip[16..20].copy_from_slice(&frame.saddr);
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut out = Vec::new();
        out.extend_from_slice(&frame.bytes[6..12]);
        out.extend_from_slice(&frame.bytes[0..6]);
        out.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        out.extend_from_slice(&ip);
        out.extend_from_slice(&icmp);
        Ok(Outcome {
            action: Action::Tx,
            frame: out,
            unpredictable: Vec::new(),
            valid_header_at: None,
            stats: vec![early.1],
        })
    }
}

/// The port a connection to virtual port `vport` uses on `real`.
/// The tuple of a NAT connection's replies: from the real server to the client.
fn reply_tuple(tuple: &Tuple, real: &Real) -> Tuple {
    Tuple {
        saddr: real.addr,
        daddr: tuple.saddr,
        sport: real_port(real, tuple.dport),
        dport: tuple.sport,
        proto: tuple.proto,
    }
}

fn real_port(real: &Real, vport: u16) -> u16 {
    if real.port == 0 { vport } else { real.port }
}

/// NAT's rewrite of one address (at `addr_at` in the frame) and, but in a later fragment
/// (which has no L4 header), one port (`port_off` into the L4 header), with the IP and the
/// L4 checksum (which covers the pseudo-header's addresses; UDP's 0 means none).
fn readdress(
    out: &mut [u8],
    frame: &Frame,
    addr_at: usize,
    addr: &Addr,
    port_off: usize,
    port: u16,
) {
    if !frame.later_fragment {
        let l4 = ETH_LEN + frame.ihl;
        let check_at = l4 + if frame.proto == IPPROTO_TCP { 16 } else { 6 };
        let port_at = l4 + port_off;
        let old = be16(out, check_at);
        let new = adjusted(
            adjusted(old, &out[addr_at..addr_at + 4], addr),
            &out[port_at..port_at + 2],
            &port.to_be_bytes(),
        );
        let new = if frame.proto == IPPROTO_UDP {
            udp_checksum(old, new)
        } else {
            new
        };
        out[check_at..check_at + 2].copy_from_slice(&new.to_be_bytes());
        out[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    }
    rewrite(out, addr_at, addr, ETH_LEN + 10);
}

/// RFC 768: a UDP checksum of 0 means none and stays 0; a computed 0 is sent as all ones.
fn udp_checksum(old: u16, new: u16) -> u16 {
    match (old, new) {
        (0, _) => 0,
        (_, 0) => 0xffff,
        (_, c) => c,
    }
}

/// Rewrites the quoted packet of an ICMP error: its address at `addr_off` into the quoted IP
/// header and port at `port_off` into its L4 header, with the quoted IP checksum, the quoted
/// UDP checksum (when it has one: TCP's lies beyond the 8 bytes RFC 792 guarantees) and the
/// ICMP checksum over every byte that changed.
fn translate_quote(
    out: &mut [u8],
    frame: &Frame,
    quote: &Quote,
    addr_off: usize,
    port_off: usize,
    addr: Addr,
    port: u16,
) {
    let before = out.to_vec();
    let (ip, l4) = (quote.ip_at, quote.l4_at);
    let (addr_at, port_at) = (ip + addr_off, l4 + port_off);
    if quote.tuple.proto == IPPROTO_UDP {
        let old = be16(out, l4 + 6);
        let new = adjusted(
            adjusted(old, &out[addr_at..addr_at + 4], &addr),
            &out[port_at..port_at + 2],
            &port.to_be_bytes(),
        );
        out[l4 + 6..l4 + 8].copy_from_slice(&udp_checksum(old, new).to_be_bytes());
    }
    out[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
    rewrite(out, addr_at, &addr, ip + 10);
    let icmp_check = ETH_LEN + frame.ihl + 2;
    let mut check = be16(&before, icmp_check);
    for at in (ip..l4 + 8).step_by(2) {
        if before[at..at + 2] != out[at..at + 2] {
            check = adjusted(check, &before[at..at + 2], &out[at..at + 2]);
        }
    }
    out[icmp_check..icmp_check + 2].copy_from_slice(&check.to_be_bytes());
}

/// The frame out to `dmac` from `smac` by NIC `egress`: back out where it came in (XDP_TX)
/// or redirected to another of the director's NICs.
fn emit(
    mut out: Vec<u8>,
    ingress: u32,
    egress: u32,
    smac: Mac,
    dmac: Mac,
    stats: &mut Vec<Stat>,
) -> Outcome {
    out[0..6].copy_from_slice(&dmac);
    out[6..12].copy_from_slice(&smac);
    let action = if egress == ingress {
        Action::Tx
    } else {
        stats.push(Stat::Redirect);
        Action::Redirect
    };
    Outcome {
        action,
        frame: out,
        unpredictable: Vec::new(),
        valid_header_at: None,
        stats: core::mem::take(stats),
    }
}

/// Ethernet → IPv4 → TCP/UDP ports, or an ICMP error and what it quotes. Only what lies
/// within the IP datagram counts (RFC 791: the total length delimits it; bytes after it are
/// link-layer padding): a header that does not fit in it is malformed, handed to the kernel
/// (which drops it in `ip_rcv`).
fn parse(ingress: u32, bytes: &[u8]) -> Result<Parsed<'_>, Early> {
    let malformed = (Action::Pass, Stat::PassMalformed);
    if bytes.len() >= ETH_LEN && be16(bytes, 12) == ETHERTYPE_IPV6 {
        return parse6(ingress, bytes);
    }
    if bytes.len() < ETH_LEN || be16(bytes, 12) != ETHERTYPE_IPV4 {
        return Err((Action::Pass, Stat::PassNotIp));
    }
    let ip = &bytes[ETH_LEN..];
    if ip.len() < 20 {
        return Err(malformed);
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let tot = usize::from(be16(ip, 2));
    if ip[0] >> 4 != 4 || ihl < 20 || tot > ip.len() || tot < ihl {
        return Err(malformed);
    }
    let frags = be16(ip, 6);
    let proto = ip[9];
    let frame = Frame {
        bytes,
        ingress,
        ihl,
        tot,
        df: frags & IP_DF != 0,
        later_fragment: frags & IP_OFFSET != 0,
        first_fragment: frags & IP_OFFSET == 0 && frags & IP_MF != 0,
        ttl: ip[8],
        id: be16(ip, 4),
        proto,
        saddr: addr_at(ip, 12),
        daddr: addr_at(ip, 16),
    };
    let datagram = &ip[..tot];
    let l4 = &datagram[ihl..];
    if proto == IPPROTO_ICMP {
        if frags & (IP_MF | IP_OFFSET) != 0 {
            return Err((Action::Pass, Stat::PassFragment));
        }
        if l4.len() < 2 {
            return Err(malformed);
        }
        if !matches!(l4[0], 3 | 4 | 11 | 12) {
            return Err((Action::Pass, Stat::PassNotService));
        }
        let quoted = &l4[(8).min(l4.len())..];
        if quoted.len() < 20 {
            return Err(malformed);
        }
        let qihl = usize::from(quoted[0] & 0x0f) * 4;
        if quoted[0] >> 4 != 4 || qihl < 20 {
            return Err(malformed);
        }
        let qproto = quoted[9];
        if qproto != IPPROTO_TCP && qproto != IPPROTO_UDP {
            return Err((Action::Pass, Stat::PassNotService));
        }
        if be16(quoted, 6) & IP_OFFSET != 0 {
            return Err((Action::Pass, Stat::PassFragment));
        }
        if quoted.len() < qihl + 8 {
            return Err(malformed);
        }
        let ip_at = ETH_LEN + ihl + 8;
        let quote = Quote {
            tuple: Tuple {
                saddr: addr_at(quoted, 12),
                daddr: addr_at(quoted, 16),
                sport: be16(quoted, qihl),
                dport: be16(quoted, qihl + 2),
                proto: qproto,
            },
            ip_at,
            l4_at: ip_at + qihl,
        };
        return Ok(Parsed::IcmpError(frame, quote));
    }
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return Err((Action::Pass, Stat::PassNotService));
    }
    if frame.later_fragment {
        return Ok(Parsed::LaterFragment(frame));
    }
    let header = if proto == IPPROTO_TCP { 20 } else { 8 };
    if l4.len() < header {
        return Err(malformed);
    }
    let tuple = Tuple {
        saddr: frame.saddr,
        daddr: frame.daddr,
        sport: be16(l4, 0),
        dport: be16(l4, 2),
        proto,
    };
    let flags = if proto == IPPROTO_TCP { l4[13] } else { 0 };
    Ok(Parsed::Flow(frame, tuple, flags))
}

/// Ethernet → IPv6 → up to four extension headers (hop-by-hop, routing, destination options
/// stepped over; a fragment header read) → TCP/UDP ports (RFC 8200). The payload length
/// delimits the packet. As the program reads headers, none may lie past byte 511 of the
/// frame, and the TCP/UDP header must start within the first 256.
fn parse6(ingress: u32, bytes: &[u8]) -> Result<Parsed<'_>, Early> {
    let malformed = (Action::Pass, Stat::PassMalformed);
    // A read of `len` bytes at frame offset `at`, as the program's bounds-checked pointers.
    let readable = |at: usize, len: usize| at <= 0x1ff && at + len <= bytes.len();
    if !readable(ETH_LEN, 40) {
        return Err(malformed);
    }
    let ip = &bytes[ETH_LEN..];
    let payload = usize::from(be16(ip, 4));
    if ip[0] >> 4 != 6 || 40 + payload > ip.len() {
        return Err(malformed);
    }
    let end = ETH_LEN + 40 + payload;
    let mut proto = ip[6];
    let mut at = ETH_LEN + 40;
    let (mut first, mut later, mut id) = (false, false, 0u32);
    for _ in 0..4 {
        if proto == 44 {
            if !readable(at, 8) {
                return Err(malformed);
            }
            let field = be16(bytes, at + 2);
            later = field & 0xfff8 != 0;
            first = !later && field & 1 != 0;
            id = u32::from_ne_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
            proto = bytes[at];
            at += 8;
        } else if proto == 0 || proto == 43 || proto == 60 {
            if !readable(at, 2) {
                return Err(malformed);
            }
            proto = bytes[at];
            at += (usize::from(bytes[at + 1]) + 1) * 8;
        } else {
            break;
        }
    }
    if proto == 58 && !first && !later {
        return parse_icmp6_error(ingress, bytes, at, end);
    }
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return Err((Action::Pass, Stat::PassNotService));
    }
    if at > 255 || at > end {
        return Err(malformed);
    }
    let (mut sport, mut dport) = (0, 0);
    if !later {
        let l4_len = if proto == IPPROTO_TCP { 20 } else { 8 };
        if at + l4_len > end {
            return Err(malformed);
        }
        sport = be16(bytes, at);
        dport = be16(bytes, at + 2);
    }
    let addr = |at: usize| -> [u8; 16] { bytes[at..at + 16].try_into().unwrap_or([0; 16]) };
    Ok(Parsed::Ipv6(Frame6 {
        bytes,
        ingress,
        saddr: addr(ETH_LEN + 8),
        daddr: addr(ETH_LEN + 24),
        proto,
        first_fragment: first,
        later_fragment: later,
        id,
        sport,
        dport,
    }))
}

/// An ICMPv6 error (types 1 to 4) quoting an IPv6 header followed by TCP/UDP, as the program
/// reads it: the model knows no IPv6 connection, so such an error for this host is passed
/// (`pass_not_service`) after the frame check; anything else for its reason.
fn parse_icmp6_error(
    ingress: u32,
    bytes: &[u8],
    at: usize,
    end: usize,
) -> Result<Parsed<'_>, Early> {
    let malformed = (Action::Pass, Stat::PassMalformed);
    if at + 2 > end {
        return Err(malformed);
    }
    let icmp_type = bytes[at];
    if icmp_type == 0 || icmp_type > 4 {
        return Err((Action::Pass, Stat::PassNotService));
    }
    let quoted = at + 8;
    if quoted + 40 > end {
        return Err(malformed);
    }
    if bytes[quoted] >> 4 != 6 {
        return Err(malformed);
    }
    let next = bytes[quoted + 6];
    if next != IPPROTO_TCP && next != IPPROTO_UDP {
        return Err((Action::Pass, Stat::PassNotService));
    }
    if quoted + 40 + 8 > end || quoted + 40 > 255 {
        return Err(malformed);
    }
    Ok(Parsed::Icmp6Error(bytes, ingress))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_update_matches_a_full_recompute() {
        let mut header = [
            0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 51, 100, 7, 203, 0, 113, 10,
        ];
        let sum = checksum(&header);
        header[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut updated = header;
        rewrite(&mut updated, 16, &[10, 1, 0, 11], 10);
        rewrite(&mut updated, 8, &[63, 6], 10);
        let mut recomputed = updated;
        recomputed[10..12].fill(0);
        let sum = checksum(&recomputed);
        assert_eq!(updated[10..12], sum.to_be_bytes());
        assert_eq!(checksum(&updated), 0);
    }

    #[test]
    fn udp_checksum_zero_stays_zero() {
        assert_eq!(udp_checksum(0, 0x1234), 0);
        assert_eq!(udp_checksum(0x1111, 0), 0xffff);
        assert_eq!(udp_checksum(0x1111, 0x2222), 0x2222);
    }
}
