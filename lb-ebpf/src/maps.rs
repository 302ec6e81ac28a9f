//! The BPF maps (layouts in `lb-common`), and typed lookups on them.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, LruHashMap, PerCpuArray},
};
use lb_common::{
    Conn, Counters, DEFAULT_CONN_TABLE_SIZE, FlowKey, Iface, LOCALITY_TABLE_SIZE, Locality,
    LocalityKey, MAX_IFACES, MAX_REALS, MAX_SERVICES, PERSIST_TABLE_SIZE, Persist, PersistKey,
    RealConns, RealServer, SCHED_SLOTS, Service, ServiceKey, ServiceState, Stat,
};

use crate::{Verdict, pass};

/// Virtual services by (VIP, port, protocol).
#[map]
pub static SERVICES: HashMap<ServiceKey, Service> = HashMap::with_max_entries(MAX_SERVICES, 0);

/// Real servers by id (id 0 unused), two copies each: slot `id` and slot `id + MAX_REALS`.
/// `REAL_SLOT` says which copy is live. lbd writes a changed real server into the other copy
/// and then flips `REAL_SLOT` (one aligned word), so a packet reads either the old entry or the
/// new one whole, never a mix of both (a map update copies the value while programs read it).
/// lbd waits out an RCU grace period before it writes a copy that was live, so a program that
/// read `REAL_SLOT` just before a flip finishes with an entry nothing is writing.
#[map]
pub static REALS: Array<RealServer> = Array::with_max_entries(2 * MAX_REALS, 0);

/// Which copy of each real server's entry in `REALS` is live (0 or 1), by id.
#[map]
pub static REAL_SLOT: Array<u32> = Array::with_max_entries(MAX_REALS, 0);

/// Scheduling tables: runs of real-server ids, one run per service (see `Service::table_*`).
#[map]
pub static SCHED_TABLE: Array<u32> = Array::with_max_entries(SCHED_SLOTS, 0);

/// Scheduler state the data path advances (round-robin position), by service id.
#[map]
pub static SERVICE_STATE: Array<ServiceState> = Array::with_max_entries(MAX_SERVICES, 0);

/// The connection table: 5-tuple → real server, for connections past their opening packet.
/// A plain hash, never evicted from: entries leave when they expire (lbd's sweep) or are
/// replaced by a new connection on the same ports. When it is full, new connections stay in
/// the half-open table.
#[map]
pub static CONNS: HashMap<FlowKey, Conn> = HashMap::with_max_entries(DEFAULT_CONN_TABLE_SIZE, 0);

/// Connections that have seen only their opening packet (`lb_common::half_open_table_size`).
/// LRU: a flood of SYNs or one-off datagrams evicts its own kind, never an established
/// connection.
#[map]
pub static HALF_OPEN: LruHashMap<FlowKey, Conn> =
    LruHashMap::with_max_entries(lb_common::half_open_table_size(DEFAULT_CONN_TABLE_SIZE), 0);

/// The entry of flow `key` in either table, copied out.
#[inline(always)]
pub fn connection(key: &FlowKey) -> Option<Conn> {
    // SAFETY: plain-data values copied out at once.
    unsafe { CONNS.get(key).or_else(|| HALF_OPEN.get(key)).copied() }
}

/// `BPF_F_MMAPABLE`: lbd maps the array's memory to add to its counters atomically.
const BPF_F_MMAPABLE: u32 = 1 << 10;

/// Live connection counts per real server id (shared by all CPUs and lbd: atomic updates).
#[map]
pub static REAL_CONNS: Array<RealConns> = Array::with_max_entries(MAX_REALS, BPF_F_MMAPABLE);

/// Persistence templates (`-p`): (service, masked client) → real server.
#[map]
pub static PERSIST: LruHashMap<PersistKey, Persist> =
    LruHashMap::with_max_entries(PERSIST_TABLE_SIZE, 0);

/// lblc/lblcr: (service, destination address) → real server(s), as IPVS's per-service
/// locality tables. LRU, so the least recently used entry makes room when it is full.
#[map]
pub static LOCALITY: LruHashMap<LocalityKey, Locality> =
    LruHashMap::with_max_entries(LOCALITY_TABLE_SIZE, 0);

/// IPVS's sysctls that the data path reads (`lb_common::Settings`), written by lbd.
#[map]
pub static SETTINGS: Array<lb_common::Settings> = Array::with_max_entries(1, 0);

/// The `SETTINGS_F_*` bits (all clear: IPVS's defaults).
#[inline(always)]
pub fn settings() -> u32 {
    SETTINGS.get(0).map_or(0, |s| s.flags)
}

/// Nanoseconds of inactivity after which a connection in `state` is over (IPVS's timeouts,
/// as `--set` changed them).
#[inline(always)]
pub fn timeout_ns(state: u8) -> u64 {
    let secs = match SETTINGS.get(0) {
        Some(s) => s.timeout_secs(state),
        None => lb_common::Settings::default().timeout_secs(state),
    };
    u64::from(secs) * 1_000_000_000
}

/// Whether `setting` (a `SETTINGS_F_*` bit) is on.
#[inline(always)]
pub fn setting(flag: u32) -> bool {
    settings() & flag != 0
}

/// The pre-filter's bit sets (`lb_common::filter`): addresses that may be virtual or NAT
/// real servers'.
#[map]
pub static FILTER: Array<u64> = Array::with_max_entries(lb_common::filter::LEN, 0);

/// Whether a flow may be ours: its destination may be a virtual address or its source a NAT
/// real server (false: certainly not).
#[inline(always)]
pub fn maybe_ours(flow: &FlowKey) -> bool {
    admits(lb_common::filter::VIP, flow.daddr.fold())
        || admits(lb_common::filter::NAT_REAL, flow.saddr.fold())
}

#[inline(always)]
fn admits(set: u32, addr: u32) -> bool {
    let (word, bit) = lb_common::filter::slot(addr);
    FILTER.get(set + word).is_some_and(|w| *w & bit != 0)
}

/// The director's interfaces (own MAC and address), by ifindex.
#[map]
pub static IFACES: HashMap<u32, Iface> = HashMap::with_max_entries(MAX_IFACES, 0);

/// Bumped by lbd after each change to `IFACES`: the entry's per-CPU copy of the ingress NIC's
/// entry is then looked up afresh.
#[map]
pub static IFACES_VERSION: Array<u32> = Array::with_max_entries(1, 0);

/// The same interfaces as redirect targets (ifindex → itself): a frame leaves by another of
/// the director's NICs through this devmap, which batches transmissions per NIC.
#[map]
pub static TX_PORTS: DevMapHash = DevMapHash::with_max_entries(MAX_IFACES, 0);

#[map]
pub static SERVICE_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_SERVICES, 0);

#[map]
pub static REAL_STATS: PerCpuArray<Counters> = PerCpuArray::with_max_entries(MAX_REALS, 0);

#[map]
pub static DP_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Stat::COUNT, 0);

/// The service a packet is addressed to: exact port first, then a port-0 ("all ports") service.
#[inline(always)]
pub fn lookup_service(flow: &FlowKey) -> Result<Service, Verdict> {
    let mut key = ServiceKey {
        addr: flow.daddr,
        port: flow.dport,
        proto: flow.proto,
        family: flow.family,
    };
    // SAFETY: values are plain data copied out at once; a concurrent update replaces the
    // element wholesale (hash map updates are RCU), so we read either the old or the new one.
    if let Some(service) = unsafe { SERVICES.get(&key) } {
        return Ok(*service);
    }
    key.port = 0;
    // SAFETY: as above.
    match unsafe { SERVICES.get(&key) } {
        Some(service) => Ok(*service),
        None => Err(pass(Stat::PassNotService)),
    }
}

/// A configured real server by id (a reference into the array: copied only where needed).
#[inline(always)]
pub fn real(id: u32) -> Option<&'static RealServer> {
    let copy = REAL_SLOT.get(id).map_or(0, |slot| *slot & 1);
    let real = REALS.get(id + copy * MAX_REALS)?;
    if real.flags & lb_common::REAL_F_IN_USE == 0 {
        return None;
    }
    Some(real)
}
