//! Types shared by lb's XDP program (`lb-ebpf`) and user space (`lb-user`).
//!
//! Everything here is a BPF map key or value, a constant both sides must agree on, or a pure
//! helper both sides compute the same way. Map types are `#[repr(C)]`, made of fixed-width
//! integers and byte arrays with explicit padding (a hash key with uninitialised padding makes
//! lookups miss), and their sizes are asserted at compile time.
//!
//! Byte order: addresses and ports are kept in network byte order, exactly as they sit in the
//! packet, so the data path never swaps bytes. Everything else is host order.
#![no_std]

pub mod csum;
pub mod hash;
pub mod tcp_state;

use core::mem::size_of;

/// Version of the map layout (names, key and value types). lbd keeps maps pinned across
/// restarts and refuses pinned maps of another layout, so bump this with any change to a map
/// type or meaning.
pub const LAYOUT_VERSION: u32 = 2;

/// Upper bound on virtual services (the per-service arrays are this long).
pub const MAX_SERVICES: u32 = 16 * 1024;
/// Upper bound on real servers ("destinations" in IPVS terms; one per service and address).
/// Id 0 is reserved so that an empty scheduling slot is recognisable.
pub const MAX_REALS: u32 = 64 * 1024;
/// Total scheduling-table slots shared by all services (each service owns a contiguous run).
pub const SCHED_SLOTS: u32 = 1024 * 1024;
/// Longest scheduling table of one service. Longer weighted sequences are scaled down.
pub const MAX_TABLE_LEN: u32 = 64 * 1024;
/// Persistence templates (LRU hash entries).
pub const PERSIST_TABLE_SIZE: u32 = 64 * 1024;
/// Most real servers a connection-count scheduler (lc, wlc, ...) compares for one new
/// connection; real servers beyond it in a service are not considered.
pub const MAX_SCAN: u32 = 1024;
/// Default connection-table size (LRU hash entries); `lbd --conn-table-size` overrides it.
pub const DEFAULT_CONN_TABLE_SIZE: u32 = 256 * 1024;
/// Interfaces lbd can attach to.
pub const MAX_IFACES: u32 = 64;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// Forwarding method of a real server (ipvsadm `-g`, `-i`, `-m`).
pub mod method {
    /// Direct routing: rewrite the destination MAC (`-g`, "Route").
    pub const ROUTE: u8 = 0;
    /// IP-in-IP tunnelling (`-i`, "Tunnel").
    pub const TUNNEL: u8 = 1;
    /// Masquerading, i.e. NAT (`-m`, "Masq").
    pub const MASQ: u8 = 2;
}

/// Scheduler codes, as stored in [`Service::scheduler`].
pub mod scheduler {
    pub const RR: u32 = 0;
    pub const WRR: u32 = 1;
    pub const LC: u32 = 2;
    pub const WLC: u32 = 3;
    pub const SED: u32 = 4;
    pub const NQ: u32 = 5;
    pub const SH: u32 = 6;
    pub const DH: u32 = 7;
    pub const LBLC: u32 = 8;
    pub const LBLCR: u32 = 9;
    pub const FO: u32 = 10;
    pub const OVF: u32 = 11;
    pub const MH: u32 = 12;
}

/// Key of the service map: the virtual service's address, port and protocol.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ServiceKey {
    /// Virtual IP, network order.
    pub addr: u32,
    /// Virtual port, network order; 0 means "every port" (persistent port-0 services).
    pub port: u16,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub proto: u8,
    pub _pad: u8,
}
const _: () = assert!(size_of::<ServiceKey>() == 8);

/// Value of the service map.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Service {
    /// Index into the per-service arrays (statistics, scheduler state).
    pub id: u32,
    /// One of [`scheduler`].
    pub scheduler: u32,
    /// `SERVICE_F_*` bits.
    pub flags: u32,
    /// First slot of this service's scheduling table in the slot array.
    pub table_offset: u32,
    /// Number of slots; 0 means no real server takes new connections.
    pub table_len: u32,
    /// Persistence timeout in seconds; 0 when the service is not persistent.
    pub persist_timeout: u32,
    /// Persistence netmask, network order.
    pub persist_mask: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<Service>() == 32);

/// The service is persistent (`-p`).
pub const SERVICE_F_PERSISTENT: u32 = 1 << 0;
/// `sh-port` / `mh-port`: the hashing schedulers hash the client's port too.
pub const SERVICE_F_HASH_PORT: u32 = 1 << 1;
/// `sh-fallback` / `mh-fallback`: an overloaded bucket falls back to the next available server.
pub const SERVICE_F_HASH_FALLBACK: u32 = 1 << 2;

/// A real server ("destination") of one service, indexed by its id in the real-server array.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RealServer {
    /// Real server address, network order.
    pub addr: u32,
    /// Real server port, network order.
    pub port: u16,
    /// One of [`method`].
    pub method: u8,
    /// `REAL_F_*` bits.
    pub flags: u8,
    /// Next-hop MAC address: the real server's own when it is on the director's LAN (DR
    /// requires it), else the gateway's (TUN may cross routers).
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// Interface the real server is reached through.
    pub ifindex: u32,
    /// Weight as configured (informational for the data path; tables carry the schedule).
    pub weight: u32,
    /// Id of the service this real server belongs to.
    pub service: u32,
    /// MTU of the path to the next hop (for the tunnel's "fragmentation needed"); 0 = unknown.
    pub mtu: u32,
    /// Upper connection threshold (`-x`): at this many connections it takes no new ones.
    /// 0 = none.
    pub upper_threshold: u32,
    /// Lower threshold (`-y`): an overloaded real server takes new connections again below
    /// it (0 = three quarters of the upper threshold, as IPVS).
    pub lower_threshold: u32,
}
const _: () = assert!(size_of::<RealServer>() == 40);

impl RealServer {
    /// The port a connection to virtual port `vport` uses on this real server: its own, or
    /// with port 0 the virtual port itself, as IPVS does (`dest->port ? dest->port : vport`)
    /// for the real servers of a port-0 ("all ports") service. Network order, as both are.
    #[inline(always)]
    pub const fn port_for(&self, vport: u16) -> u16 {
        if self.port == 0 { vport } else { self.port }
    }
}

/// The slot holds a configured real server (unset slots are all zero).
pub const REAL_F_IN_USE: u8 = 1 << 0;
/// The next hop's MAC address is known.
pub const REAL_F_RESOLVED: u8 = 1 << 1;
/// Removed with `-d`: existing connections continue, as in IPVS, until they expire.
pub const REAL_F_REMOVED: u8 = 1 << 2;

/// A directional 5-tuple, as seen on the wire (network order).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub saddr: u32,
    pub daddr: u32,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(size_of::<FlowKey>() == 16);

/// Connection-table entry: where a flow goes.
///
/// A NAT connection has two entries: the client's direction (`flags` without
/// [`CONN_F_REPLY`]) and the real server's reply direction, keyed by the reply's 5-tuple and
/// carrying the virtual address and port the reply must appear to come from.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Conn {
    /// Real server id.
    pub real: u32,
    /// Service id.
    pub service: u32,
    /// The virtual address the client connected to, network order.
    pub vaddr: u32,
    /// The virtual port, network order.
    pub vport: u16,
    /// Connection state ([`tcp_state`] numbering; UDP flows use [`tcp_state::UDP`]).
    pub state: u8,
    /// `CONN_F_*` bits.
    pub flags: u8,
    /// `bpf_ktime_get_coarse_ns` of the last packet, refreshed at most once a second.
    pub last_seen_ns: u64,
}
const _: () = assert!(size_of::<Conn>() == 24);

/// The entry is the reply direction of a NAT connection.
pub const CONN_F_REPLY: u8 = 1 << 0;

/// Per-interface facts the data path needs (keyed by ifindex).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Iface {
    /// The interface's own MAC address.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// Its primary IPv4 address, network order (0 if none).
    pub addr: u32,
}
const _: () = assert!(size_of::<Iface>() == 12);

/// Live connection counts of a real server: kept by the data path as connections open and
/// change state (atomic adds, so every CPU sees the same figures when scheduling), and set to
/// the exact figures by lbd's sweep of the connection table, which also expires connections.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RealConns {
    /// IPVS's ActiveConn.
    pub active: i64,
    /// IPVS's InActConn.
    pub inactive: i64,
    /// 1 while over the upper threshold until back under the lower one (IPVS's OVERLOAD flag).
    pub overloaded: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<RealConns>() == 24);

/// Key of a persistence template (`-p`): the service and the client's masked address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PersistKey {
    pub service: u32,
    /// Client address AND the service's persistence netmask, network order.
    pub client: u32,
}
const _: () = assert!(size_of::<PersistKey>() == 8);

/// A persistence template: this client goes to this real server until it has been idle for
/// the service's persistence timeout.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Persist {
    pub real: u32,
    pub _pad: u32,
    /// Last new connection (refreshed by lbd while connections are open).
    pub last_seen_ns: u64,
}
const _: () = assert!(size_of::<Persist>() == 16);

/// Traffic counters, kept per CPU and summed by lbd (IPVS's Conns/InPkts/OutPkts/InBytes/OutBytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Counters {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}
const _: () = assert!(size_of::<Counters>() == 40);

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.conns = self.conns.wrapping_add(other.conns);
        self.in_pkts = self.in_pkts.wrapping_add(other.in_pkts);
        self.out_pkts = self.out_pkts.wrapping_add(other.out_pkts);
        self.in_bytes = self.in_bytes.wrapping_add(other.in_bytes);
        self.out_bytes = self.out_bytes.wrapping_add(other.out_bytes);
    }
}

/// Scheduler state of one service that the data path updates itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ServiceState {
    /// Position in the round-robin / weighted round-robin table.
    pub rr_position: u64,
}
const _: () = assert!(size_of::<ServiceState>() == 8);

/// Data-path event counters, indexed by reason (per CPU, summed by lbd).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Packets seen by the program.
    Rx = 0,
    /// Not IPv4 (ARP, IPv6, ...): passed to the kernel.
    PassNotIpv4,
    /// IPv4 fragment: passed to the kernel.
    PassFragment,
    /// Not TCP/UDP, or not to a configured service: passed.
    PassNotService,
    /// Headers shorter than they claim: passed to the kernel to deal with.
    PassMalformed,
    /// A NAT packet whose TTL runs out here: passed to the kernel, which sends "time exceeded".
    PassTtlExpired,
    /// Forwarded to a real server by direct routing (`-g`), on any interface.
    TxRoute,
    /// Forwarded through another interface (redirect).
    Redirect,
    /// Encapsulated in IPIP to a real server (`-i`).
    TxTunnel,
    /// Rewritten to a real server (`-m`).
    TxNat,
    /// A real server's reply rewritten back to the virtual service (`-m`).
    TxNatReply,
    /// Too big to tunnel with DF set: answered with ICMP "fragmentation needed".
    IcmpFragNeeded,
    /// IPIP frames decapsulated by the real-server program (`lbd decap`).
    Decap,
    /// ICMP errors about a known connection sent on (and translated, for NAT).
    IcmpRelayed,
    /// Packets of established connections.
    ConnHit,
    /// New connections scheduled.
    ConnNew,
    /// New connections sent to a real server by a persistence template (`-p`).
    PersistHit,
    /// A service with no real server able to take a new connection: dropped, as IPVS does.
    DropNoReal,
    /// Real server's MAC not yet known: dropped (the client retransmits).
    DropNoNeigh,
    /// The egress interface is not one lbd set up.
    DropNoIface,
    /// The connection table refused an insert.
    DropConnTableFull,
    /// Forwarding method not supported by this build.
    DropUnsupported,
    /// The kernel's FIB has no usable route or neighbour for the next hop.
    DropFib,
    /// Addressed to another host's MAC (flooded, or a promiscuous NIC): passed to the kernel,
    /// which drops it, as it does before IPVS.
    PassOtherHost,
}

impl Stat {
    pub const COUNT: u32 = Stat::PassOtherHost as u32 + 1;

    pub const ALL: [Stat; Stat::COUNT as usize] = [
        Stat::Rx,
        Stat::PassNotIpv4,
        Stat::PassFragment,
        Stat::PassNotService,
        Stat::PassMalformed,
        Stat::PassTtlExpired,
        Stat::TxRoute,
        Stat::Redirect,
        Stat::TxTunnel,
        Stat::TxNat,
        Stat::TxNatReply,
        Stat::IcmpFragNeeded,
        Stat::Decap,
        Stat::IcmpRelayed,
        Stat::ConnHit,
        Stat::ConnNew,
        Stat::PersistHit,
        Stat::DropNoReal,
        Stat::DropNoNeigh,
        Stat::DropNoIface,
        Stat::DropConnTableFull,
        Stat::DropUnsupported,
        Stat::DropFib,
        Stat::PassOtherHost,
    ];

    /// Stable snake_case name, used in logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::Rx => "rx",
            Stat::PassNotIpv4 => "pass_not_ipv4",
            Stat::PassFragment => "pass_fragment",
            Stat::PassNotService => "pass_not_service",
            Stat::PassMalformed => "pass_malformed",
            Stat::PassTtlExpired => "pass_ttl_expired",
            Stat::TxRoute => "tx_route",
            Stat::Redirect => "redirect",
            Stat::TxTunnel => "tx_tunnel",
            Stat::TxNat => "tx_nat",
            Stat::TxNatReply => "tx_nat_reply",
            Stat::IcmpFragNeeded => "icmp_frag_needed",
            Stat::Decap => "decap",
            Stat::IcmpRelayed => "icmp_relayed",
            Stat::ConnHit => "conn_hit",
            Stat::ConnNew => "conn_new",
            Stat::PersistHit => "persist_hit",
            Stat::DropNoReal => "drop_no_real",
            Stat::DropNoNeigh => "drop_no_neigh",
            Stat::DropNoIface => "drop_no_iface",
            Stat::DropConnTableFull => "drop_conn_table_full",
            Stat::DropUnsupported => "drop_unsupported",
            Stat::DropFib => "drop_fib",
            Stat::PassOtherHost => "pass_other_host",
        }
    }
}

/// Map names, as declared in the eBPF object (user space opens them by these names).
pub mod maps {
    pub const SERVICES: &str = "SERVICES";
    pub const REALS: &str = "REALS";
    pub const SCHED_TABLE: &str = "SCHED_TABLE";
    pub const SERVICE_STATE: &str = "SERVICE_STATE";
    pub const CONNS: &str = "CONNS";
    pub const REAL_CONNS: &str = "REAL_CONNS";
    pub const PERSIST: &str = "PERSIST";
    pub const IFACES: &str = "IFACES";
    pub const TX_PORTS: &str = "TX_PORTS";
    pub const SERVICE_STATS: &str = "SERVICE_STATS";
    pub const REAL_STATS: &str = "REAL_STATS";
    pub const DP_STATS: &str = "DP_STATS";
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: every type below is #[repr(C)], made only of integers and byte arrays with
    // explicit padding fields, so any bit pattern is valid and there are no implicit holes.
    unsafe impl aya::Pod for ServiceKey {}
    unsafe impl aya::Pod for Service {}
    unsafe impl aya::Pod for RealServer {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for Conn {}
    unsafe impl aya::Pod for Iface {}
    unsafe impl aya::Pod for Counters {}
    unsafe impl aya::Pod for ServiceState {}
    unsafe impl aya::Pod for RealConns {}
    unsafe impl aya::Pod for PersistKey {}
    unsafe impl aya::Pod for Persist {}
}

#[cfg(test)]
mod tests {
    use super::RealServer;

    #[test]
    fn port_zero_real_uses_the_connections_virtual_port() {
        let vport = 8443u16.to_be();
        let all_ports = RealServer::default();
        assert_eq!(all_ports.port_for(vport), vport);
        let mapped = RealServer {
            port: 8080u16.to_be(),
            ..RealServer::default()
        };
        assert_eq!(mapped.port_for(vport), 8080u16.to_be());
    }
}
