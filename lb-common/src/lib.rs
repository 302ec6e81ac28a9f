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

pub mod addr;
pub mod csum;
pub mod filter;
pub mod hash;
#[cfg(feature = "model")]
pub mod model;
pub mod tcp_state;

use core::mem::size_of;

pub use addr::{AF_INET, AF_INET6, Addr};

/// Version of the map layout (names, key and value types). lbd keeps maps pinned across
/// restarts and refuses pinned maps of another layout, so bump this with any change to a map
/// type or meaning.
pub const LAYOUT_VERSION: u32 = 9;

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
/// Default connection-table size (hash entries); `lbd --conn-table-size` overrides it.
pub const DEFAULT_CONN_TABLE_SIZE: u32 = 256 * 1024;
/// The half-open table (LRU hash entries) holds connections until their first packet after
/// the opening one: a TCP connection until its handshake completes, a UDP flow until its
/// second datagram. A flood of opening packets (spoofed SYNs, one-off datagrams) only ever
/// evicts other half-open entries; the connection table proper is never evicted from.
/// It is this fraction of the connection table (`--conn-table-size`), at least
/// [`MIN_HALF_OPEN_TABLE_SIZE`].
pub const HALF_OPEN_TABLE_SHARE: u32 = 4;
/// The smallest half-open table.
pub const MIN_HALF_OPEN_TABLE_SIZE: u32 = 1024;

/// The half-open table's size for a connection table of `conn_table_size` entries.
pub const fn half_open_table_size(conn_table_size: u32) -> u32 {
    let share = conn_table_size / HALF_OPEN_TABLE_SHARE;
    if share < MIN_HALF_OPEN_TABLE_SIZE {
        MIN_HALF_OPEN_TABLE_SIZE
    } else {
        share
    }
}
/// UDP ports `lbd decap` takes GUE on (`--gue-port`, the `DECAP_GUE_PORTS` map).
pub const DECAP_GUE_PORTS_MAX: u32 = 16;
/// Interfaces lbd can attach to.
pub const MAX_IFACES: u32 = 64;
/// Locality entries of lblc/lblcr (LRU hash entries, shared by all services). IPVS keeps up
/// to 16,384 per service before its garbage collection starts; here the least recently used
/// entry of any service makes room.
pub const LOCALITY_TABLE_SIZE: u32 = 64 * 1024;
/// Most real servers one destination's lblcr set holds. IPVS's sets are unbounded lists, but
/// a set only grows while every member is overloaded, and shrinks again after
/// [`LOCALITY_EXPIRATION_NS`]; a full set makes room by dropping its most loaded member.
pub const LOCALITY_SET_SIZE: usize = 8;
/// A locality entry unused this long is forgotten, and an lblcr set unchanged this long sheds
/// its most loaded member: IPVS's sysctls `lblc_expiration` and `lblcr_expiration`, default
/// 24 hours (not settable in lb).
pub const LOCALITY_EXPIRATION_NS: u64 = 24 * 60 * 60 * 1_000_000_000;

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

/// Encapsulation of a tunnelled real server (ipvsadm `--tun-type`), as [`RealServer::tun_type`]:
/// IPVS's `IP_VS_CONN_F_TUNNEL_TYPE_*` values.
pub mod tunnel {
    /// IP-in-IP (protocol 4), the default.
    pub const IPIP: u8 = 0;
    /// Generic UDP Encapsulation: the outer IP header, UDP to the real server's `--tun-port`,
    /// a 4-byte GUE header (version 0, no options) carrying protocol 4 or 41.
    pub const GUE: u8 = 1;
    /// GRE (RFC 2784): the outer IP header, protocol 47, a GRE header with protocol 0x0800
    /// or 0x86dd.
    pub const GRE: u8 = 2;

    /// `--tun-csum`: GUE's UDP checksum, GRE's checksum (IPVS's `IP_VS_TUNNEL_ENCAP_FLAG_CSUM`).
    pub const F_CSUM: u8 = 1 << 0;
    /// `--tun-remcsum`: GUE remote checksum offload (`IP_VS_TUNNEL_ENCAP_FLAG_REMCSUM`). IPVS
    /// adds the option only for packets whose checksum is still to be done
    /// (`CHECKSUM_PARTIAL`, locally sent ones); packets it forwards from a NIC get the full
    /// UDP checksum, and so do all of lb's.
    pub const F_REMCSUM: u8 = 1 << 1;

    /// Outer IPv4 header.
    pub const IP_LEN: u16 = 20;
    /// UDP header.
    pub const UDP_LEN: u16 = 8;
    /// GUE header, version 0, no optional fields.
    pub const GUE_LEN: u16 = 4;
    /// GRE header without optional fields.
    pub const GRE_LEN: u16 = 4;
    /// GRE's checksum and reserved field, present with [`F_CSUM`].
    pub const GRE_CSUM_LEN: u16 = 4;

    /// Bytes the tunnel adds in front of the client's IP packet with an outer IPv4 header (an
    /// outer IPv6 header adds 20 more).
    pub const fn overhead(tun_type: u8, flags: u8) -> u16 {
        match tun_type {
            GUE => IP_LEN + UDP_LEN + GUE_LEN,
            GRE if flags & F_CSUM != 0 => IP_LEN + GRE_LEN + GRE_CSUM_LEN,
            GRE => IP_LEN + GRE_LEN,
            _ => IP_LEN,
        }
    }

    /// The ephemeral range GUE's UDP source ports come from: the kernel's default
    /// `ip_local_port_range` (32768-60999), as `udp_flow_src_port` uses for IPVS's tunnels.
    pub const SPORT_MIN: u16 = 32768;
    pub const SPORT_END: u32 = 61000;

    /// GUE's UDP source port (network order) for a packet of flow `saddr:sport -> daddr:dport`
    /// (network order, as in the packet; `proto` its protocol): a hash of the inner flow
    /// scaled into the ephemeral range, as the kernel's `udp_flow_src_port`, so that routers'
    /// ECMP and real servers' RSS spread flows while each flow keeps one port.
    #[inline(always)]
    pub const fn source_port(saddr: u32, daddr: u32, sport: u16, dport: u16, proto: u8) -> u16 {
        let ports = ((sport as u32) << 16) | dport as u32;
        let hash = crate::hash::flow_hash(saddr, daddr, ports, proto as u32);
        let span = (SPORT_END - SPORT_MIN as u32) as u64;
        let port = ((hash as u64 * span) >> 32) as u32 + SPORT_MIN as u32;
        (port as u16).to_be()
    }
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
    pub addr: Addr,
    /// Virtual port, network order; 0 means "every port" (persistent port-0 services).
    pub port: u16,
    /// IPPROTO_TCP or IPPROTO_UDP.
    pub proto: u8,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u8,
}
const _: () = assert!(size_of::<ServiceKey>() == 20);

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
    /// Persistence netmask, network order: IPv4's `-M` netmask, or the mask of IPv6's
    /// prefix length.
    pub persist_mask: Addr,
}
const _: () = assert!(size_of::<Service>() == 40);

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
    pub addr: Addr,
    /// Real server port, network order.
    pub port: u16,
    /// One of [`method`].
    pub method: u8,
    /// `REAL_F_*` bits.
    pub flags: u8,
    /// Next-hop MAC address: the real server's own when it is on the director's LAN (DR
    /// requires it), else the gateway's (TUN may cross routers).
    pub mac: [u8; 6],
    /// The real server's address family ([`AF_INET`], [`AF_INET6`]): that of the tunnel for
    /// `-i`, which may differ from the service's; the service's for `-g` and `-m`.
    pub family: u8,
    pub _pad: u8,
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
    /// A TUN real server's encapsulation, one of [`tunnel`] (`--tun-type`; 0 = IP-in-IP).
    pub tun_type: u8,
    /// `tunnel::F_*` bits (`--tun-csum`, `--tun-remcsum`).
    pub tun_flags: u8,
    /// GUE's UDP destination port (`--tun-port`), network order.
    pub tun_port: u16,
}
const _: () = assert!(size_of::<RealServer>() == 56);

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
/// Removed with `-d`: no new connections; packets of existing ones are dropped until they
/// expire (as in IPVS, whose destination is then no longer available), or expire them with
/// `expire_nodest_conn`. The slot stays reserved while connections refer to it.
pub const REAL_F_REMOVED: u8 = 1 << 2;

/// A directional 5-tuple, as seen on the wire (network order).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FlowKey {
    pub saddr: Addr,
    pub daddr: Addr,
    pub sport: u16,
    pub dport: u16,
    pub proto: u8,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u8,
    // Padding in naturally aligned pieces: the data path builds keys on the stack, and the
    // verifier refuses a misaligned stack store.
    pub _pad16: u16,
}
const _: () = assert!(size_of::<FlowKey>() == 40);

/// A datagram's fragments, as IP reassembly tells them apart (RFC 791, RFC 8200): source,
/// destination, identification (IPv4's 16 bits, IPv6's 32) and protocol, in network order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct FragKey {
    pub saddr: Addr,
    pub daddr: Addr,
    pub id: u32,
    pub proto: u8,
    /// [`AF_INET`] or [`AF_INET6`].
    pub family: u8,
    pub _pad16: u16,
}
const _: () = assert!(size_of::<FragKey>() == 40);

/// Datagrams whose later fragments the data path can follow at once (LRU hash entries): the
/// first fragment, which carries the ports, records its flow; the later ones, which do not,
/// go where it went.
pub const FRAG_TABLE_SIZE: u32 = 16 * 1024;

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
    pub vaddr: Addr,
    /// The virtual port, network order.
    pub vport: u16,
    /// Connection state ([`tcp_state`] numbering; UDP flows use [`tcp_state::UDP`]).
    pub state: u8,
    /// `CONN_F_*` bits.
    pub flags: u8,
    pub _pad: u32,
    /// `bpf_ktime_get_coarse_ns` of the last packet, refreshed at most once a second.
    pub last_seen_ns: u64,
}
const _: () = assert!(size_of::<Conn>() == 40);

/// The entry is the reply direction of a NAT connection.
pub const CONN_F_REPLY: u8 = 1 << 0;
/// A connection of a persistent service: IPVS creates it under the client's persistence
/// template, which controls it, and never reschedules such a connection when a SYN reuses
/// its ports (`is_new_conn_expected`).
pub const CONN_F_TEMPLATED: u8 = 1 << 1;

/// Per-interface facts the data path needs (keyed by ifindex).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Iface {
    /// The interface's own MAC address.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
    /// Its primary IPv4 address, network order (0 if none).
    pub addr: u32,
    /// Its primary global IPv6 address (all zero if none).
    pub addr6: Addr,
}
const _: () = assert!(size_of::<Iface>() == 28);

/// Live connection counts of a real server (IPVS's ActiveConn and InActConn are the sums of
/// the two tables' figures). Every change is an atomic add, by the data path or by lbd
/// (through the map's shared memory), so no writer overwrites another's update:
/// - the connection table's figures are exact by construction: that table never evicts, and
///   whoever removes an entry (the data path replacing it, lbd's sweep expiring it) and only
///   the one whose removal succeeded takes it off the counts;
/// - the half-open table's figures follow its entries as they come and go, and lbd sets them
///   to a fresh count of the table every sweep tick, which takes out the entries its LRU
///   evicted silently (so they are exact again within a tick, whatever a flood did).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RealConns {
    /// Active connections in the connection table.
    pub active: i64,
    /// Inactive connections in the connection table.
    pub inactive: i64,
    /// Active connections in the half-open table (SYN_RECV, mostly).
    pub half_open_active: i64,
    /// Inactive connections in the half-open table (one-off UDP flows, mostly).
    pub half_open_inactive: i64,
    /// 1 while over the upper threshold until back under the lower one (IPVS's OVERLOAD flag).
    pub overloaded: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<RealConns>() == 40);

impl RealConns {
    /// IPVS's ActiveConn: both tables' active connections.
    pub const fn total_active(&self) -> i64 {
        clamp(self.active) + clamp(self.half_open_active)
    }

    /// IPVS's InActConn: both tables' inactive connections.
    pub const fn total_inactive(&self) -> i64 {
        clamp(self.inactive) + clamp(self.half_open_inactive)
    }
}

/// A count that a concurrent recount may have taken below zero for a moment reads as zero.
const fn clamp(n: i64) -> i64 {
    if n < 0 { 0 } else { n }
}

/// Byte offsets of [`RealConns`]'s counters, for lbd's atomic adds through the map's memory.
pub mod real_conns {
    pub const ACTIVE: usize = 0;
    pub const INACTIVE: usize = 8;
    pub const HALF_OPEN_ACTIVE: usize = 16;
    pub const HALF_OPEN_INACTIVE: usize = 24;
}

/// Key of a persistence template (`-p`): the service and the client's masked address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PersistKey {
    pub service: u32,
    /// Client address AND the service's persistence netmask, network order (the service
    /// tells the family).
    pub client: Addr,
}
const _: () = assert!(size_of::<PersistKey>() == 20);

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

/// Key of the locality table (lblc, lblcr): the service and the destination address of the
/// packet, as IPVS keeps one table per service keyed by destination address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct LocalityKey {
    /// Service id.
    pub service: u32,
    /// The packet's destination address, network order (the service tells the family).
    pub daddr: Addr,
}
const _: () = assert!(size_of::<LocalityKey>() == 20);

/// Where connections to one destination address go: lblc's real server (a set of one), or
/// lblcr's set of real servers. Ids are only hints: the data path checks on every read that
/// each still names an available real server of the service (ids are reused after deletion).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Locality {
    /// Real-server ids, oldest first; the first `len` are members.
    pub reals: [u32; LOCALITY_SET_SIZE],
    /// Number of members (at most [`LOCALITY_SET_SIZE`]).
    pub len: u32,
    pub _pad: u32,
    /// `bpf_ktime_get_coarse_ns` when a new connection last looked the entry up (IPVS's
    /// `lastuse`), refreshed at most once a second.
    pub last_use_ns: u64,
    /// When a member was last added or dropped (IPVS's `set.lastmod`; lblcr).
    pub last_mod_ns: u64,
}
const _: () = assert!(size_of::<Locality>() == 56);

impl Locality {
    /// An entry whose only member is `real`, used and made `now`.
    #[inline(always)]
    pub const fn single(real: u32, now: u64) -> Self {
        let mut reals = [0; LOCALITY_SET_SIZE];
        reals[0] = real;
        Locality {
            reals,
            len: 1,
            _pad: 0,
            last_use_ns: now,
            last_mod_ns: now,
        }
    }

    /// Number of members (a corrupt `len` reads as full).
    #[inline(always)]
    pub const fn len(&self) -> usize {
        let len = self.len as usize;
        if len < LOCALITY_SET_SIZE {
            len
        } else {
            LOCALITY_SET_SIZE
        }
    }

    #[inline(always)]
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    pub const fn is_full(&self) -> bool {
        self.len() == LOCALITY_SET_SIZE
    }

    /// Whether `real` is a member.
    pub fn contains(&self, real: u32) -> bool {
        self.reals[..self.len()].contains(&real)
    }
}

/// One change to a locality set, made in a single bounded pass so that the data path can run
/// it as a `bpf_loop` (the verifier then checks one step, not every path through a loop):
/// drop the member at `remove` (lblcr's shrink), then add `add` as the newest member unless it
/// is one already. A full set first drops the member at `evict` to make room.
///
/// Run [`SetEdit::step`] for `i` in `0..SetEdit::STEPS` (stopping when it returns false), then
/// [`SetEdit::finish`], and read the result from [`SetEdit::set`]; or [`SetEdit::apply`] to do
/// it all at once. (Finishing without the pass is harmless when nothing is planned.)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SetEdit {
    /// The set, rewritten in place.
    pub set: Locality,
    /// Index to drop; [`SetEdit::NONE`] for none.
    remove: u32,
    /// Id to add; 0 for none.
    add: u32,
    /// Index to drop if `add` does not fit.
    evict: u32,
    /// Members before the edit.
    len: u32,
    /// Members written back so far.
    out: u32,
    /// `add` is a member already.
    present: u32,
}

impl SetEdit {
    /// "No index".
    pub const NONE: u32 = u32::MAX;
    /// Steps of the pass: one per slot to look for `add`, one to decide, one per slot to
    /// rewrite.
    pub const STEPS: u32 = 2 * LOCALITY_SET_SIZE as u32 + 1;

    #[inline(always)]
    pub fn new(set: Locality, remove: Option<usize>, add: Option<u32>, evict: usize) -> Self {
        let mut edit = SetEdit {
            set,
            ..SetEdit::default()
        };
        edit.plan(remove, add, evict);
        edit
    }

    /// Plans an edit of the set already in [`SetEdit::set`] (the data path edits in place).
    #[inline(always)]
    pub fn plan(&mut self, remove: Option<usize>, add: Option<u32>, evict: usize) {
        self.len = self.set.len() as u32;
        self.remove = match remove {
            Some(index) => index as u32,
            None => Self::NONE,
        };
        self.add = add.unwrap_or_default();
        self.evict = evict as u32;
        // As if nothing changed, so that finishing without the pass is harmless; the pass
        // rewrites from 0.
        self.out = self.len;
        self.present = 0;
    }

    /// Step `i` of the pass; false once there is nothing left to do.
    #[inline(always)]
    pub fn step(&mut self, i: u32) -> bool {
        let size = LOCALITY_SET_SIZE as u32;
        if i < size {
            // Is `add` a member (other than the one to drop)?
            if i < self.len && i != self.remove && self.set.reals.get(i as usize) == Some(&self.add)
            {
                self.present = 1;
            }
            return true;
        }
        if i == size {
            self.out = 0;
            if self.add != 0 && self.present == 0 && self.remove == Self::NONE && self.len == size {
                self.remove = self.evict;
            }
            return true;
        }
        // Rewrite slot `index`, closing the gap left by `remove`.
        let index = i - size - 1;
        if index >= size {
            return false;
        }
        let member = if index < self.len {
            self.set.reals.get(index as usize).copied()
        } else {
            None
        };
        if let Some(id) = member
            && index != self.remove
        {
            if let Some(slot) = self.set.reals.get_mut(self.out as usize) {
                *slot = id;
            }
            self.out += 1;
        }
        if index >= self.out
            && let Some(slot) = self.set.reals.get_mut(index as usize)
        {
            *slot = 0;
        }
        true
    }

    /// Completes the edit; whether the set changed (`last_mod_ns` is the caller's to set).
    #[inline(always)]
    pub fn finish(&mut self) -> bool {
        let removed = self.out != self.len;
        let mut added = false;
        if self.add != 0
            && self.present == 0
            && let Some(slot) = self.set.reals.get_mut(self.out as usize)
        {
            *slot = self.add;
            self.out += 1;
            added = true;
        }
        self.set.len = self.out;
        removed || added
    }

    /// The whole pass at once (user space, tests).
    pub fn apply(mut self) -> (Locality, bool) {
        for i in 0..Self::STEPS {
            if !self.step(i) {
                break;
            }
        }
        let changed = self.finish();
        (self.set, changed)
    }
}

/// Nanoseconds from `then` to `now` on the coarse monotonic clock; 0 when `then` is later
/// (another CPU, or lbd, stamped it after `now` was read). Compared as a signed difference, so
/// a stamp just ahead of `now` is "not idle" rather than "idle for 584 years".
#[inline(always)]
pub const fn elapsed_ns(now: u64, then: u64) -> u64 {
    let diff = now.wrapping_sub(then) as i64;
    if diff < 0 { 0 } else { diff as u64 }
}

/// Scheduler state of one service that the data path updates itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ServiceState {
    /// Position in the round-robin / weighted round-robin table.
    pub rr_position: u64,
}
const _: () = assert!(size_of::<ServiceState>() == 8);

/// Settings IPVS keeps as sysctls (`net.ipv4.vs.*`) and timeouts (`ipvsadm --set`) that the
/// data path reads: one value, written by lbd. All zeroes are IPVS's defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    /// `SETTINGS_F_*` bits.
    pub flags: u32,
    /// `--set tcp tcpfin udp`, in seconds (0: IPVS's default).
    pub tcp_timeout: u32,
    pub tcp_fin_timeout: u32,
    pub udp_timeout: u32,
}
const _: () = assert!(size_of::<Settings>() == 16);

impl Settings {
    /// Seconds of inactivity after which a connection in `state` is over: the data path
    /// treats it as gone from then on, and lbd's sweep removes it a little later.
    #[inline(always)]
    pub const fn timeout_secs(&self, state: u8) -> u32 {
        tcp_state::timeout_secs(
            state,
            self.tcp_timeout,
            self.tcp_fin_timeout,
            self.udp_timeout,
        )
    }
}

/// `sloppy_tcp`: any TCP packet but a RST may start a connection, not only a SYN (a director
/// taking over flows mid-stream after a failover).
pub const SETTINGS_F_SLOPPY_TCP: u32 = 1 << 0;
/// `expire_nodest_conn`: a packet of a connection whose real server was deleted expires the
/// connection (and may open a new one) instead of being dropped; a SYN reusing the ports of
/// a connection to a real server of weight 0 is scheduled afresh.
pub const SETTINGS_F_EXPIRE_NODEST_CONN: u32 = 1 << 1;
/// `expire_quiescent_template`: a persistence template whose real server has weight 0 is
/// not used (the client is scheduled afresh).
pub const SETTINGS_F_EXPIRE_QUIESCENT_TEMPLATE: u32 = 1 << 2;
/// `conn_reuse_mode = 0`: a SYN reusing a connection's ports never reschedules it. (Zero
/// flags mean IPVS's default, 1.)
pub const SETTINGS_F_CONN_REUSE_OFF: u32 = 1 << 3;
/// `conn_reuse_mode & 2`: a SYN on a DR or TUN connection in FIN_WAIT (the last state a
/// director that sees one direction knows) reschedules it too.
pub const SETTINGS_F_CONN_REUSE_FIN_WAIT: u32 = 1 << 4;

/// Data-path event counters, indexed by reason (per CPU, summed by lbd).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stat {
    /// Packets seen by the program.
    Rx = 0,
    /// Not IP (ARP, LLDP, VLAN-tagged, ...): passed to the kernel.
    PassNotIp,
    /// An IPv4 fragment lb cannot place: a later fragment whose first one was not seen (or
    /// not balanced), a fragmented ICMP message: passed to the kernel.
    PassFragment,
    /// Not TCP/UDP, or not to a configured service: passed.
    PassNotService,
    /// Headers shorter than they claim: passed to the kernel to deal with.
    PassMalformed,
    /// A NAT reply whose TTL runs out here: passed to the kernel, whose forwarding answers it
    /// with "time exceeded" (as behind IPVS, which sees replies after the kernel's forwarding).
    PassTtlExpired,
    /// Forwarded to a real server by direct routing (`-g`), on any interface.
    TxRoute,
    /// Forwarded through another interface (redirect).
    Redirect,
    /// Encapsulated to a real server (`-i`: IP-in-IP, GUE or GRE).
    TxTunnel,
    /// Rewritten to a real server (`-m`).
    TxNat,
    /// A real server's reply rewritten back to the virtual service (`-m`).
    TxNatReply,
    /// Too big to tunnel with DF set: answered with ICMP "fragmentation needed".
    IcmpFragNeeded,
    /// IP-in-IP, GUE and GRE frames decapsulated by the real-server program (`lbd decap`).
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
    /// The half-open table refused an insert.
    DropConnTableFull,
    /// Forwarding method not supported by this build.
    DropUnsupported,
    /// The kernel's FIB has no usable route or neighbour for the next hop.
    DropFib,
    /// Addressed to another host's MAC (flooded, or a promiscuous NIC): passed to the kernel,
    /// which drops it, as it does before IPVS.
    PassOtherHost,
    /// A stage of the data path was missing from the jump table (see [`stage`]): dropped.
    DropNoStage,
    /// A broadcast or multicast frame: passed to the kernel, as IPVS balances only packets
    /// addressed to this host (`PACKET_HOST`).
    PassBroadcast,
    /// A TCP packet for a service that is not a SYN (or is a RST) and belongs to no
    /// connection: passed to the kernel, as IPVS does unless `sloppy_tcp` is set.
    PassNotSyn,
    /// A packet of a connection whose real server was deleted (`-d`): dropped, as IPVS does
    /// (its destination is no longer available), unless `expire_nodest_conn` is set.
    DropNoDest,
    /// A header the parser checked was found short when a stage came to rewrite it (a bug
    /// if it ever counts): dropped.
    DropMalformed,
    /// A NAT connection's reply entry, evicted apart from the client's, put back by the
    /// client's next packet.
    ReplyRestored,
    /// A connection left the half-open table for the connection table (its handshake
    /// completed; a UDP flow's second datagram).
    Promoted,
    /// The connection table was full when a connection was to move into it: it stays in the
    /// half-open table, where it goes on working but may be evicted.
    ConnTableFull,
    /// A later fragment (no ports) matched to its datagram's first fragment, whose flow it
    /// then follows (to the same real server, if that flow has a connection).
    Fragment,
    /// A client's packet whose TTL runs out here: answered with ICMP "time exceeded", as IPVS
    /// does for every method.
    IcmpTimeExceeded,
    /// A relayed ICMP error whose TTL runs out here: dropped (no ICMP error about an error).
    DropTtlExpired,
    /// A packet too big for its tunnel's path that no ICMP error may answer: an IPv4 packet
    /// without DF (IPVS fragments the outer packet; XDP cannot send two frames for one), an
    /// ICMP error being relayed, a later fragment, a source that is no one host's.
    DropTooBig,
}

impl Stat {
    pub const COUNT: u32 = Stat::DropTooBig as u32 + 1;

    pub const ALL: [Stat; Stat::COUNT as usize] = [
        Stat::Rx,
        Stat::PassNotIp,
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
        Stat::DropNoStage,
        Stat::PassBroadcast,
        Stat::PassNotSyn,
        Stat::DropNoDest,
        Stat::DropMalformed,
        Stat::ReplyRestored,
        Stat::Promoted,
        Stat::ConnTableFull,
        Stat::Fragment,
        Stat::IcmpTimeExceeded,
        Stat::DropTtlExpired,
        Stat::DropTooBig,
    ];

    /// Stable snake_case name, used in logs and metrics.
    pub const fn name(self) -> &'static str {
        match self {
            Stat::Rx => "rx",
            Stat::PassNotIp => "pass_not_ip",
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
            Stat::DropNoStage => "drop_no_stage",
            Stat::PassBroadcast => "pass_broadcast",
            Stat::PassNotSyn => "pass_not_syn",
            Stat::DropNoDest => "drop_no_dest",
            Stat::DropMalformed => "drop_malformed",
            Stat::ReplyRestored => "reply_restored",
            Stat::Promoted => "promoted",
            Stat::ConnTableFull => "conn_table_full",
            Stat::Fragment => "fragment",
            Stat::IcmpTimeExceeded => "icmp_time_exceeded",
            Stat::DropTtlExpired => "drop_ttl_expired",
            Stat::DropTooBig => "drop_too_big",
        }
    }
}

/// Map names, as declared in the eBPF object (user space opens them by these names).
pub mod maps {
    pub const SERVICES: &str = "SERVICES";
    pub const REALS: &str = "REALS";
    /// Which of a real server's two copies in `REALS` is live (see `real_slot`).
    pub const REAL_SLOT: &str = "REAL_SLOT";
    pub const SCHED_TABLE: &str = "SCHED_TABLE";
    pub const SERVICE_STATE: &str = "SERVICE_STATE";
    pub const CONNS: &str = "CONNS";
    pub const HALF_OPEN: &str = "HALF_OPEN";
    pub const REAL_CONNS: &str = "REAL_CONNS";
    pub const PERSIST: &str = "PERSIST";
    pub const IFACES: &str = "IFACES";
    pub const TX_PORTS: &str = "TX_PORTS";
    pub const SERVICE_STATS: &str = "SERVICE_STATS";
    pub const REAL_STATS: &str = "REAL_STATS";
    pub const DP_STATS: &str = "DP_STATS";
    pub const LOCALITY: &str = "LOCALITY";
    pub const JUMP: &str = "JUMP";
    pub const FILTER: &str = "FILTER";
    pub const IFACES_VERSION: &str = "IFACES_VERSION";
    pub const SETTINGS: &str = "SETTINGS";
    pub const FRAGS: &str = "FRAGS";
    /// `lbd decap`'s GUE ports (the director leaves it empty).
    pub const DECAP_GUE_PORTS: &str = "DECAP_GUE_PORTS";
}

/// The data path as separate XDP programs, each verified on its own (the kernel's verifier
/// walks every path through a program; one program doing everything came within a hair of its
/// limit). [`stage::ENTRY`] is attached to the NIC: it parses the packet, looks up the
/// connection table and tail-calls the stage that finishes the job through the `JUMP` program
/// array, handing over what it learnt in a per-CPU value. lbd (and the tests) load every
/// program of [`stage::PROGRAMS`] and put each at its index.
pub mod stage {
    /// The program attached to the director's NICs.
    pub const ENTRY: &str = "lb_xdp";
    /// The real-server side program (`lbd decap`), not a stage.
    pub const DECAP: &str = "lb_decap";

    /// A new connection: choose a real server (scheduler, persistence), remember it.
    pub const SCHEDULE: u32 = 0;
    /// Forward by direct routing (`-g`).
    pub const ROUTE: u32 = 1;
    /// Forward by IP-in-IP tunnel (`-i`).
    pub const TUNNEL: u32 = 2;
    /// Forward by NAT (`-m`).
    pub const MASQ: u32 = 3;
    /// A NAT real server's reply, back to the client.
    pub const MASQ_REPLY: u32 = 4;
    /// An ICMP error about a connection: relayed, translated for NAT.
    pub const ICMP: u32 = 5;
    /// A new connection of an lblc or lblcr service (their locality tables).
    pub const SCHEDULE_LOCALITY: u32 = 6;
    /// Slots of the jump table.
    pub const COUNT: u32 = 7;

    /// Each stage's slot and program name in the object.
    pub const PROGRAMS: [(u32, &str); COUNT as usize] = [
        (SCHEDULE, "lb_schedule"),
        (ROUTE, "lb_route"),
        (TUNNEL, "lb_tunnel"),
        (MASQ, "lb_masq"),
        (MASQ_REPLY, "lb_masq_reply"),
        (ICMP, "lb_icmp"),
        (SCHEDULE_LOCALITY, "lb_schedule_locality"),
    ];
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
    unsafe impl aya::Pod for FragKey {}
    unsafe impl aya::Pod for Conn {}
    unsafe impl aya::Pod for Iface {}
    unsafe impl aya::Pod for Counters {}
    unsafe impl aya::Pod for ServiceState {}
    unsafe impl aya::Pod for Settings {}
    unsafe impl aya::Pod for RealConns {}
    unsafe impl aya::Pod for PersistKey {}
    unsafe impl aya::Pod for Persist {}
    unsafe impl aya::Pod for LocalityKey {}
    unsafe impl aya::Pod for Locality {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(set: &Locality) -> &[u32] {
        &set.reals[..set.len()]
    }

    fn set_of(ids: &[u32]) -> Locality {
        let mut reals = [0; LOCALITY_SET_SIZE];
        reals[..ids.len()].copy_from_slice(ids);
        Locality {
            reals,
            len: ids.len() as u32,
            ..Locality::default()
        }
    }

    /// `set_of(ids)` edited, and whether it changed; the slots past the members must be
    /// cleared.
    fn edit(
        ids: &[u32],
        remove: Option<usize>,
        add: Option<u32>,
        evict: usize,
    ) -> (Locality, bool) {
        let (set, changed) = SetEdit::new(set_of(ids), remove, add, evict).apply();
        assert!(
            set.reals[set.len()..].iter().all(|&id| id == 0),
            "slots past the members cleared: {set:?}"
        );
        (set, changed)
    }

    #[test]
    fn a_new_entry_has_one_member() {
        let set = Locality::single(7, 100);
        assert_eq!(
            (members(&set), set.last_use_ns, set.last_mod_ns),
            (&[7][..], 100, 100)
        );
        assert!(set.contains(7) && !set.contains(0) && !set.is_empty() && !set.is_full());
    }

    #[test]
    fn an_edit_adds_the_newest_member_last_unless_it_is_one() {
        let (set, changed) = edit(&[7, 3], None, Some(9), 0);
        assert_eq!((members(&set), changed), (&[7, 3, 9][..], true));
        let (set, changed) = edit(&[7, 3], None, Some(3), 0);
        assert_eq!((members(&set), changed), (&[7, 3][..], false));
        let (set, changed) = edit(&[], None, Some(4), 0);
        assert_eq!((members(&set), changed), (&[4][..], true));
        let (set, changed) = edit(&[7, 3], None, None, 0);
        assert_eq!((members(&set), changed), (&[7, 3][..], false));
        // Nothing planned: finishing without the pass changes nothing either.
        let mut unrun = SetEdit::new(set_of(&[7, 3]), None, None, 0);
        assert!(!unrun.finish());
        assert_eq!(members(&unrun.set), [7, 3]);
    }

    #[test]
    fn an_edit_drops_a_member_keeping_the_others_in_order() {
        let (set, changed) = edit(&[7, 3, 9, 5], Some(1), None, 0);
        assert_eq!((members(&set), changed), (&[7, 9, 5][..], true));
        let (set, _) = edit(&[7, 3, 9, 5], Some(3), None, 0);
        assert_eq!(members(&set), [7, 3, 9]);
        let (set, changed) = edit(&[7, 3], Some(5), None, 0);
        assert_eq!(
            (members(&set), changed),
            (&[7, 3][..], false),
            "no member there"
        );
        // Shrink and grow in one edit (lblcr: the set expired and its choice was overloaded).
        let (set, _) = edit(&[7, 3, 9], Some(0), Some(4), 0);
        assert_eq!(members(&set), [3, 9, 4]);
        // The member dropped can come back as the newest.
        let (set, _) = edit(&[7, 3, 9], Some(0), Some(7), 0);
        assert_eq!(members(&set), [3, 9, 7]);
    }

    #[test]
    fn a_full_set_evicts_only_to_add_a_new_member() {
        let full: [u32; LOCALITY_SET_SIZE] = core::array::from_fn(|i| i as u32 + 1);
        let (set, changed) = edit(&full, None, Some(99), 2);
        assert!(changed && set.is_full());
        assert_eq!(members(&set)[..3], [1, 2, 4]);
        assert_eq!(set.reals[LOCALITY_SET_SIZE - 1], 99);
        // A member already: nothing is evicted.
        let (set, changed) = edit(&full, None, Some(5), 2);
        assert_eq!((members(&set), changed), (&full[..], false));
        // A shrink makes the room.
        let (set, _) = edit(&full, Some(0), Some(99), 2);
        assert_eq!(members(&set)[..2], [2, 3]);
        assert_eq!(set.reals[LOCALITY_SET_SIZE - 1], 99);
        // A corrupt length reads as a full set, never beyond the array.
        let mut corrupt = set_of(&full);
        corrupt.len = 1000;
        assert_eq!(corrupt.len(), LOCALITY_SET_SIZE);
    }

    #[test]
    fn elapsed_time_ignores_stamps_from_just_after_now() {
        assert_eq!(elapsed_ns(1_000, 400), 600);
        assert_eq!(elapsed_ns(1_000, 1_000), 0);
        assert_eq!(elapsed_ns(1_000, 1_500), 0, "stamped after `now` was read");
        // A stamp set back past the clock's start (a test ageing an entry on a machine up for
        // less than that) still reads as that old.
        let day = LOCALITY_EXPIRATION_NS;
        assert_eq!(elapsed_ns(5, 5u64.wrapping_sub(day + 1)), day + 1);
    }

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
