//! The program under test: lb's compiled XDP object, loaded afresh for every fixture, its maps
//! typed as in `lb-common`, and one packet at a time run through it with BPF_PROG_TEST_RUN.
//!
//! Without a `ctx_in` the kernel runs an XDP test on the loopback device of the caller's network
//! namespace, so the program sees `ingress_ifindex == 1`: the fixtures give the director's MAC
//! to `IFACES[1]`, and a real server with `ifindex == 0` (same as ingress) gets XDP_TX.
//!
//! NAT asks the kernel's FIB for next hops (`bpf_fib_lookup`, forwarding mode, from the ingress
//! interface), so its fixtures need real interfaces, routes and neighbours: they run on a thread
//! of their own in a fresh network namespace ([`in_fresh_netns`]) and name the ingress interface
//! of each packet, which reaches the program through an `xdp_md` in `ctx_in` (Linux 5.15+).

use std::{fmt, time::Duration};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, DevMapHash, HashMap, MapData, MapError, PerCpuArray, xdp::XdpMapError},
    programs::{ProgramError, TestRun as _, TestRunOptions, Xdp},
};
use lb_common::{
    Conn, Counters, FlowKey, FragKey, Iface, LOCALITY_SET_SIZE, Locality, LocalityKey, Persist,
    PersistKey, RealConns, RealServer, Service, ServiceKey, ServiceState, Settings, Stat,
    filter::{self, Filter},
    maps, method,
};
use lb_user::real_copies::RealWriter;

/// The name of the XDP entry point in the object.
pub const PROGRAM: &str = "lb_xdp";
/// The real-server side program in the same object: strips IP-in-IP (`lbd decap`).
pub const DECAP_PROGRAM: &str = "lb_decap";
/// `ingress_ifindex` in BPF_PROG_TEST_RUN without a context: the loopback device.
pub const TEST_RUN_IFINDEX: u32 = 1;
/// Room in the output buffer beyond the input's length, for rewrites that grow the packet
/// (IP-in-IP adds 20 bytes).
const OUTPUT_SLACK: usize = 256;

/// Map sizes for fixtures: small enough that loading an object per fixture stays cheap.
/// (The data path bounds-checks every array access against the map, not a constant.)
const MAX_ENTRIES: &[(&str, u32)] = &[
    (maps::SERVICES, 64),
    (maps::SERVICE_STATE, 64),
    (maps::SERVICE_STATS, 64),
    // (REALS keeps its size: a real server's second copy is at id + MAX_REALS.)
    (maps::REAL_STATS, 256),
    (maps::SCHED_TABLE, 4096), // an `mh` table is 4093 slots
    (maps::CONNS, 1024),
    (maps::HALF_OPEN, 1024),
    (maps::REAL_CONNS, 256),
    (maps::PERSIST, 1024),
    (maps::LOCALITY, 1024),
];

/// An XDP action, shown by name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Verdict(pub u32);

impl Verdict {
    pub const ABORTED: Verdict = Verdict(0);
    pub const DROP: Verdict = Verdict(1);
    pub const PASS: Verdict = Verdict(2);
    pub const TX: Verdict = Verdict(3);
    pub const REDIRECT: Verdict = Verdict(4);

    /// Whether the packet leaves the director (so its bytes are what a real server receives).
    pub fn forwards(self) -> bool {
        self == Verdict::TX || self == Verdict::REDIRECT
    }
}

impl fmt::Debug for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Verdict::ABORTED => f.write_str("XDP_ABORTED"),
            Verdict::DROP => f.write_str("XDP_DROP"),
            Verdict::PASS => f.write_str("XDP_PASS"),
            Verdict::TX => f.write_str("XDP_TX"),
            Verdict::REDIRECT => f.write_str("XDP_REDIRECT"),
            Verdict(other) => write!(f, "unknown verdict {other}"),
        }
    }
}

/// A change to the maps, as lbd would make it: fixture setup, and edits between packets.
#[derive(Clone, Debug)]
pub enum Change {
    Iface {
        ifindex: u32,
        iface: Iface,
    },
    RemoveIface(u32),
    Service {
        key: ServiceKey,
        service: Service,
    },
    RemoveService(ServiceKey),
    Real {
        id: u32,
        real: RealServer,
    },
    /// Scheduling-table slots from `offset` on.
    Slots {
        offset: u32,
        ids: Vec<u32>,
    },
    /// A connection-table entry (as a sync daemon or a previous lbd would leave it), last
    /// used `idle` before it is written (its `last_seen_ns` is set from that).
    Conn {
        flow: FlowKey,
        conn: Conn,
        idle: Duration,
    },
    RemoveConn(FlowKey),
    /// IPVS's sysctls as lbd writes them (`lbadm --sysctl`).
    Settings(Settings),
    /// A real server's live connection counts and overload flag, written whole.
    RealConns {
        id: u32,
        conns: RealConns,
    },
    /// Counts as a sweep would leave them: `active`/`inactive` in all (the half-open table's
    /// figures zero), the overload flag left as the data path set it.
    SweptConns {
        id: u32,
        active: i64,
        inactive: i64,
    },
    /// A persistence template whose last use was `age` ago (on the clock the data path
    /// reads, `bpf_ktime_get_coarse_ns`), computed when the change is applied.
    Persist {
        key: PersistKey,
        real: u32,
        age: std::time::Duration,
    },
    /// A locality entry (lblc, lblcr) with real servers `reals` (oldest first), last used
    /// `used` ago and last changed `modified` ago (on the data path's clock; a time before
    /// the clock's start wraps, which the data path reads as that long ago).
    Locality {
        key: LocalityKey,
        reals: Vec<u32>,
        used: std::time::Duration,
        modified: std::time::Duration,
    },
    /// A UDP port `lbd decap` takes GUE on (`--gue-port`), host order.
    DecapGuePort(u16),
    /// A service's round-robin position, as lbd writes it when it (re)starts a walk.
    RrPosition {
        service: u32,
        position: u64,
    },
}

/// The loaded program and its maps.
pub struct Director {
    ebpf: Ebpf,
    /// Which entry point of the object runs the packets.
    program: &'static str,
    services: HashMap<MapData, ServiceKey, Service>,
    /// Real servers' entries, written as lbd writes them (two copies, one live).
    reals: RealWriter,
    slots: Array<MapData, u32>,
    service_state: Array<MapData, ServiceState>,
    conns: HashMap<MapData, FlowKey, Conn>,
    frags: HashMap<MapData, FragKey, FlowKey>,
    half_open: HashMap<MapData, FlowKey, Conn>,
    real_conns: Array<MapData, RealConns>,
    persist: HashMap<MapData, PersistKey, Persist>,
    locality: HashMap<MapData, LocalityKey, Locality>,
    ifaces: HashMap<MapData, u32, Iface>,
    /// Bumped after each change to `ifaces`, as lbd does.
    ifaces_version: Array<MapData, u32>,
    /// The same NICs as redirect targets, as lbd fills them with each interface.
    tx_ports: DevMapHash<MapData>,
    service_stats: PerCpuArray<MapData, Counters>,
    real_stats: PerCpuArray<MapData, Counters>,
    dp_stats: PerCpuArray<MapData, u64>,
    settings: Array<MapData, Settings>,
    /// `lbd decap --gue-port`, network order.
    decap_gue_ports: HashMap<MapData, u16, u8>,
    /// The pre-filter's sets, filled as lbd fills them: every service's address and every
    /// NAT real server's, never removed.
    filter: Array<MapData, u64>,
    admitted: Box<Filter>,
}

fn take<T: TryFrom<aya::maps::Map, Error = MapError>>(ebpf: &mut Ebpf, name: &str) -> T {
    let map = ebpf
        .take_map(name)
        .unwrap_or_else(|| panic!("map {name} not in the object"));
    T::try_from(map).unwrap_or_else(|e| panic!("map {name} has an unexpected type: {e}"))
}

impl Director {
    /// Loads the object (the verifier runs here) with empty maps.
    pub fn load() -> Self {
        Self::load_program(PROGRAM)
    }

    /// Loads the object with `program` (one of its XDP entry points) as the one packets run
    /// through.
    pub fn load_program(program: &'static str) -> Self {
        Self::load_sized(program, &[])
    }

    /// Loads the object with `program` as the entry, and map sizes from `sizes` where they
    /// differ from the fixtures' defaults.
    pub fn load_sized(program: &'static str, sizes: &[(&str, u32)]) -> Self {
        let object = lb_user::object::ebpf_object();
        assert!(
            !object.is_empty(),
            "the eBPF object is empty: built with AYA_BUILD_SKIP=1?"
        );
        let mut loader = EbpfLoader::new();
        for (name, size) in MAX_ENTRIES.iter().chain(sizes) {
            loader.map_max_entries(name, *size);
        }
        let mut ebpf = loader.load(object).expect("loading the eBPF object");
        if program == PROGRAM {
            // The entry and its stages, linked through the jump table, as lbd loads them.
            if let Err(e) = lb_user::dataplane::load_director_programs(&mut ebpf) {
                panic!("the verifier rejected the data path: {e:#}\n{e:?}");
            }
        } else {
            let prog: &mut Xdp = ebpf
                .program_mut(program)
                .unwrap_or_else(|| panic!("program {program} not in the object"))
                .try_into()
                .unwrap_or_else(|e| panic!("{program} is not an XDP program: {e}"));
            if let Err(e) = prog.load() {
                panic!("the verifier rejected {program}: {e:#}\n{e:?}");
            }
        }
        Self {
            program,
            services: take(&mut ebpf, maps::SERVICES),
            reals: RealWriter::new(
                lb_user::dataplane::map_fd(&ebpf, maps::REALS).expect("REALS"),
                lb_user::dataplane::map_fd(&ebpf, maps::REAL_SLOT).expect("REAL_SLOT"),
                [],
            )
            .expect("a grace-period map"),
            slots: take(&mut ebpf, maps::SCHED_TABLE),
            service_state: take(&mut ebpf, maps::SERVICE_STATE),
            conns: take(&mut ebpf, maps::CONNS),
            frags: take(&mut ebpf, maps::FRAGS),
            half_open: take(&mut ebpf, maps::HALF_OPEN),
            real_conns: take(&mut ebpf, maps::REAL_CONNS),
            persist: take(&mut ebpf, maps::PERSIST),
            locality: take(&mut ebpf, maps::LOCALITY),
            ifaces: take(&mut ebpf, maps::IFACES),
            ifaces_version: take(&mut ebpf, maps::IFACES_VERSION),
            tx_ports: take(&mut ebpf, maps::TX_PORTS),
            service_stats: take(&mut ebpf, maps::SERVICE_STATS),
            real_stats: take(&mut ebpf, maps::REAL_STATS),
            dp_stats: take(&mut ebpf, maps::DP_STATS),
            filter: take(&mut ebpf, maps::FILTER),
            settings: take(&mut ebpf, maps::SETTINGS),
            decap_gue_ports: take(&mut ebpf, maps::DECAP_GUE_PORTS),
            admitted: Box::default(),
            ebpf,
        }
    }

    /// Another writer of real servers' entries over this director's maps, as lbd's, from
    /// where the director's own left them (for a test that writes from another thread).
    pub fn real_writer(&self) -> RealWriter {
        let map = self.ebpf.map(maps::REAL_SLOT).expect("REAL_SLOT");
        let slots: Array<&MapData, u32> = Array::try_from(map).expect("an array");
        let live: Vec<u32> = (0..256).map(|id| slots.get(&id, 0).unwrap_or(0)).collect();
        let fd = |name| lb_user::dataplane::map_fd(&self.ebpf, name).expect(name);
        RealWriter::new(fd(maps::REALS), fd(maps::REAL_SLOT), live).expect("a grace-period map")
    }

    /// The kernel's count of instructions its verifier processed, per loaded program.
    pub fn verified_instructions(&self) -> Vec<(String, u32)> {
        lb_user::dataplane::verified_instructions(&self.ebpf).expect("program info")
    }

    fn program(&self) -> &Xdp {
        self.ebpf
            .program(self.program)
            .expect("loaded above")
            .try_into()
            .expect("XDP")
    }

    /// Runs one packet through the program: its verdict and the packet as it left.
    pub fn run(&self, input: &[u8]) -> Result<(Verdict, Vec<u8>), ProgramError> {
        self.run_on(input, None)
    }

    /// Runs one packet as if it arrived on interface `ingress` (of the calling thread's network
    /// namespace); `None` for the kernel's default, the loopback device.
    pub fn run_on(
        &self,
        input: &[u8],
        ingress: Option<u32>,
    ) -> Result<(Verdict, Vec<u8>), ProgramError> {
        let mut out = vec![0u8; input.len() + OUTPUT_SLACK];
        let ctx = ingress.map(|ifindex| xdp_md(input.len(), ifindex));
        let result = self.program().test_run(TestRunOptions {
            data_in: Some(input),
            data_out: Some(&mut out),
            ctx_in: ctx.as_deref(),
            ..TestRunOptions::default()
        })?;
        out.truncate(result.data_size_out as usize);
        Ok((Verdict(result.return_value), out))
    }

    /// Time per packet over `repeat` runs (the kernel's own measurement).
    ///
    /// BPF_PROG_TEST_RUN's `repeat` runs the program again on the packet as the previous run
    /// left it: that measures a packet whose rewrite leaves it on the same path (DR only changes
    /// MACs), but a tunnelled, readdressed or decapsulated packet would be timed as something
    /// else from the second run on. With `fresh`, every run starts from `input` instead: one
    /// BPF_PROG_TEST_RUN per run, the kernel-timed durations averaged (each then also carries
    /// the kernel timer's own overhead, some tens of ns).
    pub fn time_per_packet(
        &self,
        input: &[u8],
        ingress: Option<u32>,
        repeat: u32,
        fresh: bool,
    ) -> std::time::Duration {
        let mut out = vec![0u8; input.len() + OUTPUT_SLACK];
        let ctx = ingress.map(|ifindex| xdp_md(input.len(), ifindex));
        let mut timed = |repeat: u32| {
            self.program()
                .test_run(TestRunOptions {
                    data_in: Some(input),
                    data_out: Some(&mut out),
                    ctx_in: ctx.as_deref(),
                    repeat,
                    ..TestRunOptions::default()
                })
                .expect("BPF_PROG_TEST_RUN")
                .duration
        };
        if fresh {
            (0..repeat).map(|_| timed(1)).sum::<std::time::Duration>() / repeat.max(1)
        } else {
            timed(repeat)
        }
    }

    pub fn apply(&mut self, change: &Change) {
        let result = match change {
            Change::Iface { ifindex, iface } => {
                self.ifaces.insert(ifindex, iface, 0).and_then(|()| {
                    self.tx_ports
                        .insert(*ifindex, *ifindex, None, 0)
                        .map_err(|e| match e {
                            XdpMapError::MapError(e) => e,
                            other => panic!("TX_PORTS[{ifindex}]: {other}"),
                        })
                })
            }
            Change::RemoveIface(ifindex) => self
                .ifaces
                .remove(ifindex)
                .and_then(|()| self.tx_ports.remove(*ifindex)),
            Change::Service { key, service } => self
                .admit(filter::VIP, key.addr.fold())
                .and_then(|()| self.services.insert(key, service, 0)),
            Change::RemoveService(key) => self.services.remove(key),
            Change::Real { id, real } => {
                let admitted = if real.method == method::MASQ {
                    self.admit(filter::NAT_REAL, real.addr.fold())
                } else {
                    Ok(())
                };
                admitted.and_then(|()| {
                    self.reals
                        .write(&[*id], std::slice::from_ref(real))
                        .map_err(|e| {
                            MapError::SyscallError(aya::sys::SyscallError {
                                call: "writing a real server",
                                io_error: e,
                            })
                        })
                })
            }
            Change::RrPosition { service, position } => self.service_state.set(
                *service,
                ServiceState {
                    rr_position: *position,
                },
                0,
            ),
            Change::Slots { offset, ids } => ids
                .iter()
                .enumerate()
                .try_for_each(|(i, id)| self.slots.set(offset + i as u32, id, 0)),
            Change::Conn { flow, conn, idle } => {
                let now = coarse_now_ns();
                let idle = idle.as_nanos() as u64;
                assert!(
                    now > idle,
                    "{change:?}: the monotonic clock reads {now} ns, less than the idle time \
                     (a VM just booted?): fixtures must use shorter timeouts"
                );
                let conn = Conn {
                    last_seen_ns: now - idle,
                    ..*conn
                };
                self.conns.insert(flow, conn, 0)
            }
            // From whichever table holds it.
            Change::RemoveConn(flow) => self
                .conns
                .remove(flow)
                .or_else(|_| self.half_open.remove(flow)),
            Change::Settings(settings) => self.settings.set(0, settings, 0),
            Change::DecapGuePort(port) => self.decap_gue_ports.insert(port.to_be(), 1, 0),
            Change::RealConns { id, conns } => self.real_conns.set(*id, conns, 0),
            Change::SweptConns {
                id,
                active,
                inactive,
            } => {
                let conns = RealConns {
                    active: *active,
                    inactive: *inactive,
                    half_open_active: 0,
                    half_open_inactive: 0,
                    ..self.real_conns(*id)
                };
                self.real_conns.set(*id, conns, 0)
            }
            Change::Persist { key, real, age } => {
                let template = Persist {
                    real: *real,
                    _pad: 0,
                    last_seen_ns: coarse_now_ns().saturating_sub(age.as_nanos() as u64),
                };
                self.persist.insert(key, template, 0)
            }
            Change::Locality {
                key,
                reals,
                used,
                modified,
            } => {
                assert!(
                    reals.len() <= LOCALITY_SET_SIZE,
                    "{change:?}: too many members"
                );
                let mut entry = Locality {
                    len: reals.len() as u32,
                    last_use_ns: coarse_now_ns().wrapping_sub(used.as_nanos() as u64),
                    last_mod_ns: coarse_now_ns().wrapping_sub(modified.as_nanos() as u64),
                    ..Locality::default()
                };
                entry.reals[..reals.len()].copy_from_slice(reals);
                self.locality.insert(key, entry, 0)
            }
        };
        if let Err(e) = result {
            panic!("applying {change:?}: {e}");
        }
        if matches!(change, Change::Iface { .. } | Change::RemoveIface(_)) {
            let version = self.ifaces_version.get(&0, 0).expect("IFACES_VERSION");
            self.ifaces_version
                .set(0, version.wrapping_add(1), 0)
                .expect("IFACES_VERSION");
        }
    }

    /// Admits `addr` into a pre-filter set, as lbd does when it publishes a service.
    fn admit(&mut self, set: u32, addr: u32) -> Result<(), MapError> {
        match self.admitted.admit(set, addr) {
            Some((index, word)) => self.filter.set(index, word, 0),
            None => Ok(()),
        }
    }

    /// The entry of `flow` in the connection table or else the half-open table, and whether
    /// it is the half-open table's.
    pub fn conn_in(&self, flow: &FlowKey) -> Option<(Conn, bool)> {
        for (table, half_open) in [(&self.conns, false), (&self.half_open, true)] {
            match table.get(flow, 0) {
                Ok(conn) => return Some((conn, half_open)),
                Err(MapError::KeyNotFound) => {}
                Err(e) => panic!("reading the connection tables: {e}"),
            }
        }
        None
    }

    /// The entry of `flow` in either table.
    pub fn conn(&self, flow: &FlowKey) -> Option<Conn> {
        self.conn_in(flow).map(|(conn, _)| conn)
    }

    /// Every entry of both tables (the connection table's first).
    pub fn conns(&self) -> Vec<(FlowKey, Conn)> {
        self.conns
            .iter()
            .chain(self.half_open.iter())
            .map(|entry| entry.expect("iterating the connection tables"))
            .collect()
    }

    /// Every entry of both tables, with whether it is the half-open table's (the connection
    /// table's first).
    pub fn conns_by_table(&self) -> Vec<(FlowKey, Conn, bool)> {
        let list = |table: &HashMap<MapData, FlowKey, Conn>, half_open| {
            table
                .iter()
                .map(move |entry| {
                    let (key, conn) = entry.expect("iterating the connection tables");
                    (key, conn, half_open)
                })
                .collect::<Vec<_>>()
        };
        let mut all = list(&self.conns, false);
        all.extend(list(&self.half_open, true));
        all
    }

    /// The first fragments remembered for their later ones (`FRAGS`).
    pub fn frags(&self) -> Vec<(FragKey, FlowKey)> {
        self.frags
            .iter()
            .map(|entry| entry.expect("iterating FRAGS"))
            .collect()
    }

    /// Forgets every remembered first fragment.
    pub fn clear_frags(&mut self) {
        for (key, _) in self.frags() {
            self.frags.remove(&key).expect("removing from FRAGS");
        }
    }

    /// A real server's live connection counts (`REAL_CONNS`).
    pub fn real_conns(&self, id: u32) -> RealConns {
        self.real_conns.get(&id, 0).expect("reading REAL_CONNS")
    }

    /// The persistence template of `key`, if any.
    pub fn persist(&self, key: &PersistKey) -> Option<Persist> {
        match self.persist.get(key, 0) {
            Ok(template) => Some(template),
            Err(MapError::KeyNotFound) => None,
            Err(e) => panic!("reading PERSIST: {e}"),
        }
    }

    /// The locality entry of `key`, if any.
    pub fn locality(&self, key: &LocalityKey) -> Option<Locality> {
        match self.locality.get(key, 0) {
            Ok(entry) => Some(entry),
            Err(MapError::KeyNotFound) => None,
            Err(e) => panic!("reading LOCALITY: {e}"),
        }
    }

    pub fn rr_position(&self, service: u32) -> u64 {
        self.service_state
            .get(&service, 0)
            .expect("reading SERVICE_STATE")
            .rr_position
    }

    pub fn service_stats(&self, id: u32) -> Counters {
        sum_counters(&self.service_stats, id)
    }

    pub fn real_stats(&self, id: u32) -> Counters {
        sum_counters(&self.real_stats, id)
    }

    /// DP_STATS summed over CPUs, indexed by `Stat`.
    pub fn dp_stats(&self) -> Vec<u64> {
        (0..Stat::COUNT)
            .map(|i| {
                self.dp_stats
                    .get(&i, 0)
                    .expect("reading DP_STATS")
                    .iter()
                    .sum()
            })
            .collect()
    }
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds: the clock `bpf_ktime_get_coarse_ns` reads, which
/// the data path stamps persistence templates and connections with.
pub fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer we pass.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC_COARSE)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `struct xdp_md` (uapi `linux/bpf.h`: data, data_end, data_meta, ingress_ifindex,
/// rx_queue_index, egress_ifindex; six `u32`s) as BPF_PROG_TEST_RUN takes it in `ctx_in`. The
/// kernel wants no metadata (`data` = `data_meta` = 0), `data_end` equal to the input's length,
/// and no egress; it looks `ingress_ifindex` up in the caller's network namespace and runs the
/// program on that device's receive queue `rx_queue_index`.
fn xdp_md(len: usize, ingress_ifindex: u32) -> Vec<u8> {
    let len = u32::try_from(len).expect("test input longer than 4 GiB");
    [0, len, 0, ingress_ifindex, 0, 0]
        .iter()
        .flat_map(|field: &u32| field.to_ne_bytes())
        .collect()
}

/// Runs `f` on a thread of its own in a fresh network namespace (`unshare(CLONE_NEWNET)`
/// affects only the calling thread), and returns what it returns; a panic in `f` is re-raised
/// here. Commands `f` runs are children of that thread and so start in its namespace. The
/// namespace, with every interface, route and neighbour made in it, goes away when the thread
/// ends: nothing to clean up, even when a fixture panics.
pub fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let thread = std::thread::Builder::new()
        .name("fresh-netns".into())
        .spawn(move || {
            // SAFETY: plain syscall with a flag argument; it changes only this thread's
            // network namespace, which nothing else in the process shares.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                panic!(
                    "unshare(CLONE_NEWNET): {} (needs root)",
                    std::io::Error::last_os_error()
                );
            }
            f()
        })
        .expect("spawning the network-namespace thread");
    match thread.join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The index of interface `name` in the calling thread's network namespace.
pub fn ifindex(name: &str) -> u32 {
    let c_name = std::ffi::CString::new(name).expect("interface name without NUL");
    // SAFETY: `c_name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    assert!(
        index != 0,
        "if_nametoindex({name}): {}",
        std::io::Error::last_os_error()
    );
    index
}

fn sum_counters(map: &PerCpuArray<MapData, Counters>, id: u32) -> Counters {
    let mut total = Counters::default();
    for per_cpu in map.get(&id, 0).expect("reading a stats map").iter() {
        total.add(per_cpu);
    }
    total
}
