//! lb's XDP object loaded for benchmarking, a director's network to run it in, and the
//! measuring loop shared by the per-packet and scaling benchmarks.
//!
//! Every figure comes from BPF_PROG_TEST_RUN with `repeat`: one system call runs the program
//! `repeat` times on the same frame. The time per packet is the CPU time the calling thread
//! spent in that call divided by `repeat` (nanosecond resolution, unlike the kernel's own
//! whole-nanosecond average, which is kept alongside as a cross-check). Cases are interleaved
//! round by round so that drift (frequency, other load) touches all of them alike, and each
//! run checks that the program took the path it is meant to measure: its verdict, and the
//! data path's own event counters (`DP_STATS`) grown by exactly `repeat`.

use std::{
    collections::BTreeSet,
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd as _, BorrowedFd, OwnedFd},
};

use anyhow::{Context as _, Result, bail, ensure};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, DevMapHash, HashMap, MapData, MapInfo, PerCpuArray},
    programs::Xdp,
};
use lb_common::{
    Conn, FlowKey, IPPROTO_TCP, Iface, REAL_F_IN_USE, REAL_F_RESOLVED, RealServer, Service,
    ServiceKey, Stat,
    filter::{self, Filter},
    maps, method,
};

use super::{
    bpf::{self, TestRun},
    frames::Mac,
};
use crate::cmd;

/// The XDP entry points in lb's object.
pub const PROGRAM: &str = "lb_xdp";
pub const DECAP_PROGRAM: &str = "lb_decap";

// The director's network (built by [`Net::build`] in a network namespace of its own):
//
//   client 198.51.100.7 ── router 203.0.113.1 ── ext0 203.0.113.2/24 + VIP 203.0.113.10/32
//                 DR real servers 203.0.113.21, .22 ─┘     director (forwarding on)
//                                                         int0 10.1.0.1/24
//                              NAT real servers 10.1.0.11, .12 ─┘
//   TUN real servers 10.9.0.3, .4 (behind the router; lb sends to the router's MAC)
pub const DIRECTOR_MAC: Mac = [0x02, 0xd1, 0, 0, 0, 0x01];
pub const INT_MAC: Mac = [0x02, 0xd1, 0, 0, 0, 0x07];
pub const ROUTER_MAC: Mac = [0x02, 0x00, 0x5e, 0, 0, 0x01];
pub const DIRECTOR_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
pub const ROUTER_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 1);
pub const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The IPv6 service's VIP and client (the DR-over-IPv6 rows).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 0x10);
pub const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x51, 0, 0, 0, 0, 7);
pub const DR_REALS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x11),
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x12),
];
/// The director's IPv6 address on ext0 (the outer source of IPv6 tunnels), and the IPv6
/// service's TUN real servers (behind the router, as the IPv4 ones) and NAT real servers (on
/// int0's network).
pub const DIRECTOR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, 0, 2);
pub const TUN_REALS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 3),
    Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 4),
];
/// int0's IPv6 address: the IPv6 NAT real servers' gateway.
pub const GATEWAY6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 1, 0, 0, 0, 0, 1);
pub const NAT_REALS6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0xfd00, 0, 1, 0, 0, 0, 0, 0x11),
    Ipv6Addr::new(0xfd00, 0, 1, 0, 0, 0, 0, 0x12),
];
/// An address the director has no service on.
pub const OTHER_VIP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 99);
pub const DR_REALS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(203, 0, 113, 21),
    Ipv4Addr::new(203, 0, 113, 22),
];
pub const TUN_REALS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 9, 0, 3), Ipv4Addr::new(10, 9, 0, 4)];
pub const NAT_REALS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 1, 0, 11), Ipv4Addr::new(10, 1, 0, 12)];

/// The MAC the benchmarks give DR real servers: the director's own. BPF_PROG_TEST_RUN with
/// `repeat` (and live frames, once their pages are recycled) runs the program again on the
/// frame it already rewrote, and lb balances only frames addressed to the director's NIC (as
/// the kernel's stack does before IPVS); with this MAC every repetition takes the same path.
pub const DR_REAL_MAC: Mac = DIRECTOR_MAC;

pub fn real_mac(n: u8) -> Mac {
    [0x02, 0x00, 0x5e, 0x10, 0x00, n]
}

/// An IPv4 address as the maps keep it (network order in memory).
pub fn addr(ip: Ipv4Addr) -> lb_common::Addr {
    ip.into()
}

/// Runs `f` on a thread of its own in a fresh network namespace (`unshare(CLONE_NEWNET)`
/// changes only the calling thread), so that interfaces, routes and neighbours made there, and
/// the FIB lookups of the programs run there, touch nothing else. Commands `f` starts are
/// children of that thread and so run in its namespace. Everything goes away with the thread.
/// A panic in `f` is re-raised here.
pub fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let thread = std::thread::Builder::new()
        .name("bench-netns".into())
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

/// Runs a command (in the calling thread's namespace) and fails with its output unless it
/// succeeds.
pub fn sh(line: &str) -> Result<String> {
    let argv: Vec<&str> = line.split_whitespace().collect();
    let ran = cmd::try_run(&argv, None);
    ensure!(ran.success(), "command failed:\n{ran}");
    Ok(ran.stdout)
}

pub fn fmt_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The index of interface `name` in the calling thread's namespace.
pub fn ifindex(name: &str) -> Result<u32> {
    let c_name = std::ffi::CString::new(name)?;
    // SAFETY: a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    ensure!(
        index != 0,
        "if_nametoindex({name}): {}",
        std::io::Error::last_os_error()
    );
    Ok(index)
}

/// The director's interfaces, by index in the calling thread's namespace.
pub struct Net {
    pub ext: u32,
    pub int: u32,
}

impl Net {
    /// Builds the network pictured above in the calling thread's namespace (a fresh one):
    /// each NIC is one end of a veth pair, next hops are permanent neighbour entries.
    pub fn build() -> Result<Net> {
        for (nic, mac) in [("ext0", DIRECTOR_MAC), ("int0", INT_MAC)] {
            sh(&format!(
                "ip link add {nic} address {} type veth peer name {nic}p",
                fmt_mac(&mac)
            ))?;
            sh(&format!("ip link set {nic} up"))?;
            sh(&format!("ip link set {nic}p up"))?;
        }
        sh("ip link set lo up")?;
        sh(&format!("ip addr add {DIRECTOR_IP}/24 dev ext0"))?;
        sh(&format!("ip addr add {VIP}/32 dev ext0"))?;
        sh(&format!("ip addr add {GATEWAY_IP}/24 dev int0"))?;
        sh(&format!("ip route add default via {ROUTER_IP} dev ext0"))?;
        let mut neighbours = vec![(ROUTER_IP, ROUTER_MAC, "ext0")];
        for (i, ip) in NAT_REALS.iter().enumerate() {
            neighbours.push((*ip, real_mac(0x20 + i as u8), "int0"));
        }
        for (ip, mac, nic) in neighbours {
            sh(&format!(
                "ip neigh replace {ip} lladdr {} dev {nic} nud permanent",
                fmt_mac(&mac)
            ))?;
        }
        // The IPv6 twins: the director's address, the IPv6 VIP, and int0's network with the
        // IPv6 NAT real servers (the IPv6 NAT rows route through the kernel's FIB too).
        sh(&format!("ip addr add {DIRECTOR6}/64 dev ext0 nodad"))?;
        sh(&format!("ip addr add {VIP6}/128 dev ext0 nodad"))?;
        sh(&format!("ip addr add {GATEWAY6}/64 dev int0 nodad"))?;
        for (i, ip) in NAT_REALS6.iter().enumerate() {
            sh(&format!(
                "ip neigh replace {ip} lladdr {} dev int0 nud permanent",
                fmt_mac(&real_mac(0x40 + i as u8))
            ))?;
        }
        // LVS-NAT directors forward (seed 001); bpf_fib_lookup answers only then.
        std::fs::write("/proc/sys/net/ipv4/conf/all/forwarding", "1")
            .context("enabling forwarding")?;
        std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1")
            .context("enabling IPv6 forwarding")?;
        Ok(Net {
            ext: ifindex("ext0")?,
            int: ifindex("int0")?,
        })
    }
}

/// A program behind a hand-assembled wrapper (`asm::restore_vary_then_tail_call`) that puts
/// the frame back before every run: BPF_PROG_TEST_RUN (and live-frames mode) runs the program
/// again on the buffer it has just changed, and every forwarding method changes it (DR takes
/// one off the TTL). [`Wrapped::new_flows`] also writes a new source address into the frame
/// every run, so every run is a new connection (a SYN from another client), and the
/// connection table fills as it would under load.
pub struct Wrapped {
    wrapper: OwnedFd,
    _slot: OwnedFd,
    _counter: Option<OwnedFd>,
}

/// Where the IPv4 source address sits in an Ethernet frame.
pub const SOURCE_ADDRESS: i16 = 14 + 12;

impl Wrapped {
    /// `target` run on `frame` as it is, every time.
    pub fn restoring(target: BorrowedFd<'_>, frame: &[u8]) -> Result<Wrapped> {
        Self::wrap(target, frame, false)
    }

    /// `target` run on `frame` from another source address every time.
    pub fn new_flows(target: BorrowedFd<'_>, frame: &[u8]) -> Result<Wrapped> {
        Self::wrap(target, frame, true)
    }

    fn wrap(target: BorrowedFd<'_>, frame: &[u8], vary: bool) -> Result<Wrapped> {
        use std::os::fd::AsRawFd as _;
        let counter = if vary {
            Some(bpf::counter_array().context("the new-flow wrapper's counter")?)
        } else {
            None
        };
        let slot = bpf::prog_array()?;
        let wrapper = bpf::load_xdp(
            "bench_wrapper",
            &super::asm::restore_vary_then_tail_call(
                frame,
                slot.as_raw_fd(),
                counter.as_ref().map(|c| super::asm::Vary {
                    counter_map_fd: c.as_raw_fd(),
                    offset: SOURCE_ADDRESS,
                }),
            ),
        )?;
        bpf::set_tail_call(slot.as_fd(), target)
            .context("putting the program in the tail-call slot")?;
        Ok(Wrapped {
            wrapper,
            _slot: slot,
            _counter: counter,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.wrapper.as_fd()
    }
}

/// One map of the loaded object and the memory the kernel charges for it.
#[derive(Clone, Debug)]
pub struct MapMemory {
    pub name: String,
    pub kind: String,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    /// The `memlock` figure of the map's fdinfo (the kernel's own estimate, in bytes).
    pub memlock: u64,
}

/// lb's object, loaded with both XDP programs and its maps typed as in lb-common.
pub struct Lb {
    ebpf: Ebpf,
    pub services: HashMap<MapData, ServiceKey, Service>,
    pub reals: Array<MapData, RealServer>,
    pub slots: Array<MapData, u32>,
    pub conns: HashMap<MapData, FlowKey, Conn>,
    pub half_open: HashMap<MapData, FlowKey, Conn>,
    pub real_conns: Array<MapData, lb_common::RealConns>,
    pub ifaces: HashMap<MapData, u32, Iface>,
    ifaces_version: Array<MapData, u32>,
    tx_ports: DevMapHash<MapData>,
    dp_stats: PerCpuArray<MapData, u64>,
    /// The pre-filter's sets, filled as lbd fills them.
    filter: Array<MapData, u64>,
    admitted: Box<Filter>,
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    ebpf: &mut Ebpf,
    name: &str,
) -> Result<T> {
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("map {name} not in the object"))?;
    T::try_from(map).with_context(|| format!("map {name} has an unexpected type"))
}

impl Lb {
    /// Loads the object (the verifier runs here) with the given map sizes instead of the
    /// object's own (which are lbd's defaults).
    pub fn load(sizes: &[(&'static str, u32)]) -> Result<Lb> {
        let object = lb_user::object::ebpf_object();
        ensure!(
            !object.is_empty(),
            "the eBPF object is empty: lb-user was built with AYA_BUILD_SKIP=1"
        );
        let mut loader = EbpfLoader::new();
        for (name, size) in sizes {
            loader.map_max_entries(name, *size);
        }
        let mut ebpf = loader.load(object).context("loading lb's eBPF object")?;
        lb_user::dataplane::load_director_programs(&mut ebpf)
            .context("the verifier rejected the data path")?;
        let decap: &mut Xdp = ebpf
            .program_mut(DECAP_PROGRAM)
            .with_context(|| format!("program {DECAP_PROGRAM} not in the object"))?
            .try_into()
            .with_context(|| format!("{DECAP_PROGRAM} is not an XDP program"))?;
        decap
            .load()
            .with_context(|| format!("the verifier rejected {DECAP_PROGRAM}"))?;
        Ok(Lb {
            services: take(&mut ebpf, maps::SERVICES)?,
            reals: take(&mut ebpf, maps::REALS)?,
            slots: take(&mut ebpf, maps::SCHED_TABLE)?,
            conns: take(&mut ebpf, maps::CONNS)?,
            half_open: take(&mut ebpf, maps::HALF_OPEN)?,
            real_conns: take(&mut ebpf, maps::REAL_CONNS)?,
            ifaces: take(&mut ebpf, maps::IFACES)?,
            ifaces_version: take(&mut ebpf, maps::IFACES_VERSION)?,
            tx_ports: take(&mut ebpf, maps::TX_PORTS)?,
            dp_stats: take(&mut ebpf, maps::DP_STATS)?,
            filter: take(&mut ebpf, maps::FILTER)?,
            admitted: Box::default(),
            ebpf,
        })
    }

    /// Program `name` (lb_xdp or lb_decap).
    pub fn program(&self, name: &str) -> Result<&Xdp> {
        Ok(self
            .ebpf
            .program(name)
            .with_context(|| format!("program {name} not in the object"))?
            .try_into()?)
    }

    /// The kernel's count of instructions its verifier processed, per loaded program.
    pub fn verified_instructions(&self) -> Result<Vec<(String, u32)>> {
        Ok(lb_user::dataplane::verified_instructions(&self.ebpf)?)
    }

    /// The descriptor of program `name`.
    pub fn prog_fd(&self, name: &str) -> Result<BorrowedFd<'_>> {
        Ok(self.program(name)?.fd()?.as_fd())
    }

    /// DP_STATS summed over CPUs, indexed by [`Stat`].
    pub fn dp_stats(&self) -> Result<Vec<u64>> {
        (0..Stat::COUNT)
            .map(|i| Ok(self.dp_stats.get(&i, 0)?.iter().sum()))
            .collect()
    }

    /// Every map either program uses, with the kernel's figure for its memory.
    pub fn maps_memory(&self) -> Result<Vec<MapMemory>> {
        let mut ids = BTreeSet::new();
        for (_, prog) in self.ebpf.programs() {
            ids.extend(prog.info()?.map_ids()?.unwrap_or_default());
        }
        let mut out = Vec::new();
        for id in ids {
            let info = MapInfo::from_id(id)?;
            let fd = info.fd()?;
            out.push(MapMemory {
                name: info.name_as_str().unwrap_or("?").to_owned(),
                kind: info
                    .map_type()
                    .map(|t| format!("{t:?}"))
                    .unwrap_or_else(|_| "?".into()),
                key_size: info.key_size(),
                value_size: info.value_size(),
                max_entries: info.max_entries(),
                memlock: bpf::map_memlock(fd.as_fd())?,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn set_iface(&mut self, ifindex: u32, mac: Mac, ip: Ipv4Addr) -> Result<()> {
        let iface = Iface {
            mac,
            addr: addr(ip).ipv4(),
            ..Iface::default()
        };
        self.ifaces.insert(ifindex, iface, 0)?;
        self.tx_ports.insert(ifindex, ifindex, None, 0)?;
        // As lbd does: the data path's per-CPU copy of the ingress entry is then refreshed.
        let version = self.ifaces_version.get(&0, 0)?;
        self.ifaces_version.set(0, version.wrapping_add(1), 0)?;
        Ok(())
    }

    /// Gives interface `ifindex` (already set) the IPv6 address `ip` too.
    pub fn set_iface6(&mut self, ifindex: u32, ip: Ipv6Addr) -> Result<()> {
        let mut iface = self.ifaces.get(&ifindex, 0)?;
        iface.addr6 = ip.into();
        self.ifaces.insert(ifindex, iface, 0)?;
        let version = self.ifaces_version.get(&0, 0)?;
        self.ifaces_version.set(0, version.wrapping_add(1), 0)?;
        Ok(())
    }

    /// Admits `addr` into a pre-filter set, as lbd does when it publishes a service.
    fn admit(&mut self, set: u32, addr: u32) -> Result<()> {
        if let Some((index, word)) = self.admitted.admit(set, addr) {
            self.filter.set(index, word, 0)?;
        }
        Ok(())
    }

    /// A resolved real server of service `service`.
    pub fn set_real(
        &mut self,
        id: u32,
        service: u32,
        how: u8,
        ip: Ipv4Addr,
        mac: Mac,
        ifindex: u32,
    ) -> Result<()> {
        let real = RealServer {
            addr: addr(ip),
            port: 80u16.to_be(),
            family: lb_common::AF_INET,
            method: how,
            flags: REAL_F_IN_USE | REAL_F_RESOLVED,
            mac,
            ifindex,
            weight: 1,
            service,
            ..RealServer::default()
        };
        if how == method::MASQ {
            self.admit(filter::NAT_REAL, real.addr.fold())?;
        }
        self.reals.set(id, real, 0)?;
        Ok(())
    }

    /// A TCP service on `vip:port` whose scheduling table (at `offset`) lists `ids`.
    pub fn set_service(
        &mut self,
        id: u32,
        vip: Ipv4Addr,
        port: u16,
        scheduler: u32,
        offset: u32,
        ids: &[u32],
    ) -> Result<()> {
        for (i, real) in ids.iter().enumerate() {
            self.slots.set(offset + i as u32, *real, 0)?;
        }
        let key = service_key(vip, port);
        let service = Service {
            id,
            scheduler,
            table_offset: offset,
            table_len: ids.len() as u32,
            ..Service::default()
        };
        self.admit(filter::VIP, key.addr.fold())?;
        self.services.insert(key, service, 0)?;
        Ok(())
    }

    /// The lab's standard services on the VIP: port 80 by DR (real servers 1, 2), port 81
    /// by TUN (3, 4), port 82 by NAT (5, 6); round-robin each; and the same three on the
    /// IPv6 VIP (services 4, 5, 6; real servers 7-12).
    pub fn standard_world(&mut self, net: &Net) -> Result<()> {
        self.set_iface(net.ext, DIRECTOR_MAC, DIRECTOR_IP)?;
        self.set_iface(net.int, INT_MAC, GATEWAY_IP)?;
        for (i, ip) in DR_REALS.iter().enumerate() {
            let id = 1 + i as u32;
            self.set_real(id, 1, method::ROUTE, *ip, DR_REAL_MAC, 0)?;
        }
        for (i, ip) in TUN_REALS.iter().enumerate() {
            // Behind the router: the next hop's MAC is the router's, as lbd would find it.
            self.set_real(3 + i as u32, 2, method::TUNNEL, *ip, ROUTER_MAC, 0)?;
        }
        for (i, ip) in NAT_REALS.iter().enumerate() {
            self.set_real(
                5 + i as u32,
                3,
                method::MASQ,
                *ip,
                real_mac(0x20 + i as u8),
                net.int,
            )?;
        }
        use lb_common::scheduler::RR;
        self.set_service(1, VIP, 80, RR, 0, &[1, 2])?;
        self.set_service(2, VIP, 81, RR, 2, &[3, 4])?;
        self.set_service(3, VIP, 82, RR, 4, &[5, 6])?;
        // Over IPv6: port 80 by DR (real servers 7, 8), 81 by TUN, IPv6 in IPv6 (9, 10), 82
        // by NAT (11, 12).
        self.set_iface6(net.ext, DIRECTOR6)?;
        let v6 = DR_REALS6
            .iter()
            .map(|ip| (method::ROUTE, *ip, DR_REAL_MAC, 0))
            .chain(
                TUN_REALS6
                    .iter()
                    .map(|ip| (method::TUNNEL, *ip, ROUTER_MAC, 0)),
            )
            .chain(
                NAT_REALS6
                    .iter()
                    .enumerate()
                    .map(|(i, ip)| (method::MASQ, *ip, real_mac(0x40 + i as u8), net.int)),
            );
        for (i, (how, ip, mac, ifindex)) in v6.enumerate() {
            let real = RealServer {
                addr: ip.into(),
                port: 80u16.to_be(),
                method: how,
                flags: REAL_F_IN_USE | REAL_F_RESOLVED,
                mac,
                ifindex,
                family: lb_common::AF_INET6,
                weight: 1,
                service: 4 + i as u32 / 2,
                ..RealServer::default()
            };
            if how == method::MASQ {
                self.admit(filter::NAT_REAL, real.addr.fold())?;
            }
            self.reals.set(7 + i as u32, real, 0)?;
            self.slots.set(6 + i as u32, 7 + i as u32, 0)?;
        }
        for (id, port) in [(4u32, 80u16), (5, 81), (6, 82)] {
            let key = ServiceKey {
                addr: VIP6.into(),
                port: port.to_be(),
                proto: IPPROTO_TCP,
                family: lb_common::AF_INET6,
            };
            self.admit(filter::VIP, key.addr.fold())?;
            let service = Service {
                id,
                scheduler: RR,
                table_offset: 6 + 2 * (id - 4),
                table_len: 2,
                ..Service::default()
            };
            self.services.insert(key, service, 0)?;
        }
        Ok(())
    }
}

pub fn service_key(vip: Ipv4Addr, port: u16) -> ServiceKey {
    ServiceKey {
        addr: addr(vip),
        port: port.to_be(),
        proto: IPPROTO_TCP,
        family: lb_common::AF_INET,
    }
}

/// The connection-table key of a TCP flow (network order, as the data path keys it).
pub fn flow_key(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> FlowKey {
    FlowKey {
        saddr: addr(src),
        daddr: addr(dst),
        sport: sport.to_be(),
        dport: dport.to_be(),
        proto: IPPROTO_TCP,
        family: lb_common::AF_INET,
        _pad16: 0,
    }
}

/// One path to measure: a program, the frame it gets, and how to tell it took the path.
pub struct Case<'a> {
    /// Stable short name (used to pair a case with its baseline).
    pub key: String,
    pub label: String,
    pub prog: BorrowedFd<'a>,
    pub frame: Vec<u8>,
    pub ingress: u32,
    /// The XDP action every run must end with.
    pub verdict: u32,
    /// Data-path counters that must grow by exactly `repeat` per run.
    pub counts: Vec<Stat>,
    /// The key of the case it is compared with ("floor", or the wrapper's floor).
    pub baseline: Option<String>,
}

/// What measuring a case gave: per round, ns per packet (thread CPU time / repeat) and the
/// kernel's own average.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub key: String,
    pub label: String,
    pub baseline: Option<String>,
    pub ns: Vec<f64>,
    pub kernel_ns: Vec<f64>,
    pub repeat: u32,
    pub error: Option<String>,
}

impl Measured {
    pub fn summary(&self) -> Option<super::stats::Summary> {
        super::stats::Summary::of(&self.ns)
    }

    pub fn kernel_summary(&self) -> Option<super::stats::Summary> {
        super::stats::Summary::of(&self.kernel_ns)
    }
}

/// Runs `case` once with `repeat`, checking its path; returns ns per packet and the kernel's.
pub fn run_case(case: &Case<'_>, lb: Option<&Lb>, repeat: u32) -> Result<(f64, f64)> {
    let before = match (lb, case.counts.is_empty()) {
        (Some(lb), false) => Some(lb.dp_stats()?),
        _ => None,
    };
    let result = TestRun {
        prog: case.prog,
        data: &case.frame,
        ingress_ifindex: case.ingress,
        repeat,
        flags: 0,
        batch_size: 0,
    }
    .run()?;
    if result.verdict != case.verdict {
        let counted = match (lb, &before) {
            (Some(lb), Some(before)) => {
                let after = lb.dp_stats()?;
                format!(" (counters: {})", counter_growth(before, &after))
            }
            _ => String::new(),
        };
        bail!(
            "verdict {} where {} was expected (the program did not take the measured path){counted}",
            result.verdict,
            case.verdict
        );
    }
    if let (Some(before), Some(lb)) = (before, lb) {
        let after = lb.dp_stats()?;
        for stat in &case.counts {
            let i = *stat as usize;
            let grew = after[i].wrapping_sub(before[i]);
            if grew != u64::from(repeat) {
                bail!(
                    "counter {} grew by {grew}, not {repeat}: the program did not take the \
                     measured path every time (counters: {})",
                    stat.name(),
                    counter_growth(&before, &after)
                );
            }
        }
    }
    let ns = result.thread_cpu.as_nanos() as f64 / f64::from(repeat);
    Ok((ns, f64::from(result.kernel_ns)))
}

/// The data-path counters that changed between two readings: `name +n, ...`.
fn counter_growth(before: &[u64], after: &[u64]) -> String {
    Stat::ALL
        .iter()
        .filter(|s| after[**s as usize] != before[**s as usize])
        .map(|s| {
            format!(
                "{} +{}",
                s.name(),
                after[*s as usize].wrapping_sub(before[*s as usize])
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Measures every case `rounds` times, interleaved (round 1 of every case, then round 2...),
/// case `i` with `repeats[i]` runs per system call. A case that fails its check stops being
/// measured and carries the error.
pub fn measure(
    cases: &[Case<'_>],
    repeats: &[u32],
    lb: Option<&Lb>,
    rounds: usize,
    stop: &dyn Fn() -> bool,
) -> Vec<Measured> {
    assert_eq!(cases.len(), repeats.len(), "one repeat count per case");
    let mut out: Vec<Measured> = cases
        .iter()
        .zip(repeats)
        .map(|(c, repeat)| Measured {
            key: c.key.clone(),
            label: c.label.clone(),
            baseline: c.baseline.clone(),
            repeat: *repeat,
            ..Measured::default()
        })
        .collect();
    for _ in 0..rounds {
        if stop() {
            break;
        }
        for (case, m) in cases.iter().zip(out.iter_mut()) {
            if m.error.is_some() {
                continue;
            }
            match run_case(case, lb, m.repeat) {
                Ok((ns, kernel)) => {
                    m.ns.push(ns);
                    m.kernel_ns.push(kernel);
                }
                Err(e) => m.error = Some(format!("{e:#}")),
            }
        }
    }
    out
}

/// A `repeat` that makes one run of `case` take about `target` (at least 1,000, at most
/// `max`), from a short calibration run.
pub fn calibrate(case: &Case<'_>, lb: Option<&Lb>, target_ns: f64, max: u32) -> Result<u32> {
    let (ns, _) = run_case(case, lb, 1000)?;
    let repeat = (target_ns / ns.max(1.0)).clamp(1000.0, f64::from(max));
    Ok(repeat as u32)
}

/// Per round, what `m` costs above its `baseline` (ns per packet).
pub fn extra_ns(m: &Measured, baseline: &Measured) -> Option<super::stats::Summary> {
    let d: Vec<f64> = m.ns.iter().zip(&baseline.ns).map(|(a, b)| a - b).collect();
    super::stats::Summary::of(&d)
}

/// Per round, `m` as a multiple of `floor`. A case measured behind the restore wrapper
/// (`wrapped`: the wrapper in front of the floor, measured alike) is compared by its cost above
/// the wrapped floor, added to the floor, over the floor.
pub fn ratio_to_floor(
    m: &Measured,
    wrapped: Option<&Measured>,
    floor: &Measured,
) -> Option<super::stats::Summary> {
    let r: Vec<f64> = match wrapped {
        None => m.ns.iter().zip(&floor.ns).map(|(a, f)| a / f).collect(),
        Some(w) => {
            m.ns.iter()
                .zip(&w.ns)
                .zip(&floor.ns)
                .map(|((a, b), f)| (f + a - b) / f)
                .collect()
        }
    };
    super::stats::Summary::of(&r)
}
