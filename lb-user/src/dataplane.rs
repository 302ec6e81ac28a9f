//! The loaded XDP program and typed access to its maps. This is the only module that talks
//! to the kernel's BPF side; what to write is decided elsewhere.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, DevMapHash, HashMap, Map, MapData, PerCpuArray, PerCpuValues, ProgramArray,
        xdp::XdpMapError,
    },
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
    util::nr_cpus,
};

use crate::{
    bpf_batch::{self, Cursor, Reader},
    live_counts::LiveCounts,
    pinning::{PINNED_MAPS, PinDir, PinError},
    real_copies::RealWriter,
};
use lb_common::{
    CONN_F_REPLY, Conn, Counters, FlowKey, Iface, Locality, LocalityKey, MAX_REALS, Persist,
    PersistKey, RealConns, RealServer, Service, ServiceKey, ServiceState, Stat, filter::Filter,
    maps, stage,
};

/// How to attach: `--xdp-mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// Native (driver) mode if the driver supports it, else generic.
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode: works on any interface, slower.
    Skb,
}

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("mapping the live connection counts (REAL_CONNS) into memory: {0}")]
    MapLiveCounts(String),
    #[error("the embedded eBPF object is empty (built with AYA_BUILD_SKIP); rebuild without it")]
    NoObject,
    #[error(
        "this kernel ({0}) is too old: lb's XDP data path needs Linux {major}.{minor} or newer",
        major = MIN_KERNEL.0,
        minor = MIN_KERNEL.1
    )]
    OldKernel(String),
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("XDP program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("redirect map: {0}")]
    TxPort(#[from] XdpMapError),
    #[error("BPF map: {0}")]
    Map(#[from] aya::maps::MapError),
    /// `detail` is the error with its causes, printed here rather than given as the source
    /// (a chain printed as well would say it twice).
    #[error("attaching XDP to {iface} in {mode} mode failed: {detail}{hint}")]
    Attach {
        iface: String,
        mode: &'static str,
        detail: String,
        hint: String,
    },
    #[error("map {0} missing from the eBPF object")]
    MissingMap(&'static str),
    #[error("program {0} missing from the eBPF object")]
    MissingProgram(&'static str),
    #[error("per-CPU values: {0}")]
    Cpus(std::io::Error),
    #[error("{0}")]
    Pin(#[from] PinError),
    #[error("pinning the XDP link of {iface} at {path}: {detail}")]
    PinLink {
        iface: String,
        path: std::path::PathBuf,
        detail: String,
    },
    #[error("interface {0} not found")]
    NoInterface(String),
    #[error("{what}: {source}")]
    Batch {
        what: &'static str,
        source: std::io::Error,
    },
}

/// What happens to the data path when lbd exits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OnExit {
    /// Detach the XDP program and remove the pinned maps: a clean stop.
    Detach,
    /// Leave the program attached and the maps pinned: traffic keeps flowing, and the next
    /// lbd (a restart or an upgrade) takes over without dropping a connection.
    Keep,
}

type Result<T, E = DataplaneError> = std::result::Result<T, E>;

/// The oldest kernel the data path is built and tested for (Debian 12's): older verifiers
/// refuse it, or accept it only by chance.
pub const MIN_KERNEL: (u32, u32) = (6, 1);

/// Refuses a kernel older than [`MIN_KERNEL`], by its release string (`uname -r`, e.g.
/// `6.1.0-57-amd64`), with a message that says what is needed. An unreadable release is let
/// through: the verifier then has the last word.
pub fn check_kernel(release: &str) -> Result<()> {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().ok());
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    if (major, minor) < MIN_KERNEL {
        return Err(DataplaneError::OldKernel(release.to_owned()));
    }
    Ok(())
}

/// [`check_kernel`] on the running kernel.
fn check_running_kernel() -> Result<()> {
    match std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        Ok(release) => check_kernel(release.trim()),
        Err(_) => Ok(()),
    }
}

/// Pins of jump tables are named this, then the id of the entry program that uses them.
const JUMP_PIN_PREFIX: &str = "jump-";

/// The XDP program, its attachments and its maps.
pub struct Dataplane {
    ebpf: Ebpf,
    links: Vec<(String, XdpLinkId)>,
    /// Where this lbd's jump table is pinned.
    jump_pin: std::path::PathBuf,
    pins: PinDir,
    /// State was found pinned at load: this lbd took over from a previous one.
    adopted: bool,
    services: HashMap<MapData, ServiceKey, Service>,
    /// Real servers' entries, written so that none is read torn (see `real_copies`).
    reals: RealWriter,
    sched_table: Array<MapData, u32>,
    conns: HashMap<MapData, FlowKey, Conn>,
    half_open: HashMap<MapData, FlowKey, Conn>,
    /// `REAL_CONNS`'s memory, for atomic changes to the live counts.
    live: LiveCounts,
    locality: HashMap<MapData, LocalityKey, Locality>,
    ifaces: HashMap<MapData, u32, Iface>,
    ifaces_version: Array<MapData, u32>,
    settings: Array<MapData, lb_common::Settings>,
    tx_ports: DevMapHash<MapData>,
    service_stats: PerCpuArray<MapData, Counters>,
    real_stats: PerCpuArray<MapData, Counters>,
    dp_stats: PerCpuArray<MapData, u64>,
    /// The pre-filter's bit sets, and what they hold (only ever added to).
    filter: Array<MapData, u64>,
    admitted: Box<Filter>,
    /// Descriptors of the maps read and written in batches (`bpf_batch`).
    fds: BatchFds,
    cpus: usize,
}

/// The data path's two connection tables (`lb-ebpf`'s `conn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// `CONNS`: connections past their opening packet, never evicted.
    Conns,
    /// `HALF_OPEN`: connections that have seen only their opening packet (LRU).
    HalfOpen,
}

/// The maps lbd reads or writes many entries of at once.
struct BatchFds {
    conns: OwnedFd,
    half_open: OwnedFd,
    persist: OwnedFd,
    real_conns: OwnedFd,
    service_stats: OwnedFd,
    real_stats: OwnedFd,
    sched_table: OwnedFd,
    services: OwnedFd,
    service_state: OwnedFd,
}

/// A descriptor of its own for map `name` (aya's typed maps do not lend theirs): for
/// `bpf_batch` and `real_copies`.
pub fn map_fd(ebpf: &Ebpf, name: &'static str) -> Result<OwnedFd> {
    let data = match ebpf.map(name).ok_or(DataplaneError::MissingMap(name))? {
        Map::Array(d) | Map::PerCpuArray(d) | Map::HashMap(d) | Map::LruHashMap(d) => d,
        _ => return Err(DataplaneError::MissingMap(name)),
    };
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| DataplaneError::Batch {
            what: "duplicating a map descriptor",
            source,
        })
}

/// Entries per batch call when walking a map.
const CHUNK: usize = 8192;

fn batch_err(what: &'static str) -> impl FnOnce(std::io::Error) -> DataplaneError {
    move |source| DataplaneError::Batch { what, source }
}

const PROGRAM: &str = stage::ENTRY;
const DECAP_PROGRAM: &str = stage::DECAP;

/// Loads the director's programs into the kernel (the verifier runs here): the entry and every
/// stage, each stage put at its index of the `JUMP` program array the entry tail-calls
/// through. lbd and the tests load the data path through this one function.
pub fn load_director_programs(ebpf: &mut Ebpf) -> Result<()> {
    xdp_program(ebpf, PROGRAM)?.load()?;
    let mut fds = Vec::new();
    for (index, name) in stage::PROGRAMS {
        let program = xdp_program(ebpf, name)?;
        program.load()?;
        fds.push((
            index,
            program
                .fd()?
                .try_clone()
                .map_err(|e| DataplaneError::Program(e.into()))?,
        ));
    }
    let mut jump: ProgramArray<&mut MapData> = ProgramArray::try_from(
        ebpf.map_mut(maps::JUMP)
            .ok_or(DataplaneError::MissingMap(maps::JUMP))?,
    )?;
    for (index, fd) in &fds {
        jump.set(*index, fd, 0)?;
    }
    Ok(())
}

/// The XDP program `name` of the object.
fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp> {
    Ok(ebpf
        .program_mut(name)
        .ok_or(DataplaneError::MissingProgram(name))?
        .try_into()?)
}

/// How hard the kernel's verifier worked on each loaded XDP program of `ebpf`: its own count
/// of processed instructions (`bpf_prog_info.verified_insns`, Linux 5.16+), by program name.
pub fn verified_instructions(ebpf: &Ebpf) -> Result<Vec<(String, u32)>> {
    let mut counts = Vec::new();
    for (name, program) in ebpf.programs() {
        let Ok(info) = program.info() else {
            continue;
        };
        counts.push((
            name.to_owned(),
            info.verified_instruction_count().unwrap_or(0),
        ));
    }
    counts.sort();
    Ok(counts)
}

/// The real-server side of LVS-TUN (`lbd decap`): strips IP-in-IP, GRE and GUE (on
/// `gue_ports`) headers in XDP on kernels without the `ipip`, `gre` or `fou` modules.
/// Detached when dropped.
pub struct Decap {
    _ebpf: Ebpf,
}

impl Decap {
    pub fn attach(
        iface: &str,
        mode: AttachMode,
        gue_ports: &[u16],
    ) -> Result<(Self, &'static str)> {
        check_running_kernel()?;
        let object = crate::object::ebpf_object();
        if object.is_empty() {
            return Err(DataplaneError::NoObject);
        }
        // The director's maps are not used here: keep them tiny.
        let mut loader = EbpfLoader::new();
        for name in [
            maps::SERVICES,
            maps::REALS,
            maps::REAL_SLOT,
            maps::SCHED_TABLE,
            maps::SERVICE_STATE,
            maps::CONNS,
            maps::HALF_OPEN,
            maps::LOCALITY,
            maps::IFACES,
            maps::TX_PORTS,
            maps::SERVICE_STATS,
            maps::REAL_STATS,
            maps::FRAGS,
        ] {
            loader.map_max_entries(name, 1);
        }
        let mut ebpf = loader.load(object)?;
        let mut ports: HashMap<_, u16, u8> = HashMap::try_from(
            ebpf.map_mut(maps::DECAP_GUE_PORTS)
                .ok_or(DataplaneError::MissingMap(maps::DECAP_GUE_PORTS))?,
        )?;
        for port in gue_ports {
            ports.insert(port.to_be(), 1, 0)?;
        }
        let program: &mut Xdp = ebpf
            .program_mut(DECAP_PROGRAM)
            .ok_or(DataplaneError::MissingMap(DECAP_PROGRAM))?
            .try_into()?;
        program.load()?;
        let (_, mode) = attach_with_fallback(program, iface, mode)?;
        Ok((Decap { _ebpf: ebpf }, mode))
    }
}

/// Attaches `program` to `iface` in `mode` (auto: native, else generic).
fn attach_with_fallback(
    program: &mut Xdp,
    iface: &str,
    mode: AttachMode,
) -> Result<(XdpLinkId, &'static str)> {
    let attempts: &[(XdpMode, &'static str)] = match mode {
        AttachMode::Native => &[(XdpMode::Driver, "native")],
        AttachMode::Skb => &[(XdpMode::Skb, "skb")],
        AttachMode::Auto => &[(XdpMode::Driver, "native"), (XdpMode::Skb, "skb")],
    };
    let mut last = None;
    for &(xdp_mode, name) in attempts {
        match program.attach(iface, xdp_mode) {
            Ok(link) => return Ok((link, name)),
            Err(e) => last = Some((name, e)),
        }
    }
    let (name, error) = last.expect("at least one attempt");
    let chain: Vec<&(dyn std::error::Error + 'static)> = {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        std::iter::from_fn(|| {
            let this = cause?;
            cause = this.source();
            Some(this)
        })
        .collect()
    };
    let busy = chain.iter().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::EBUSY))
    });
    let detail = chain
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join(": ");
    let hint = if busy {
        let c_name = std::ffi::CString::new(iface).unwrap_or_default();
        // SAFETY: if_nametoindex reads a NUL-terminated string we own.
        let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        crate::xdp_holder::busy_hint(iface, ifindex)
    } else if name == "native" {
        " (the driver may lack native XDP: try --xdp-mode skb)".to_owned()
    } else {
        String::new()
    };
    Err(DataplaneError::Attach {
        iface: iface.to_owned(),
        mode: name,
        detail,
        hint,
    })
}

impl Dataplane {
    /// Loads the embedded program with a connection table of `conn_table_size` entries, its
    /// maps pinned under `pins` (re-adopting what a previous lbd left there).
    pub fn load(conn_table_size: u32, pins: PinDir) -> Result<Self> {
        check_running_kernel()?;
        let object = crate::object::ebpf_object();
        if object.is_empty() {
            return Err(DataplaneError::NoObject);
        }
        let adopted = pins.check()?;
        pins.create()?;
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(maps::CONNS, conn_table_size);
        loader.map_max_entries(
            maps::HALF_OPEN,
            lb_common::half_open_table_size(conn_table_size),
        );
        for (name, _, _) in PINNED_MAPS {
            loader.map_pin_path(name, pins.map(name));
        }
        let mut ebpf = loader.load(object)?;
        load_director_programs(&mut ebpf)?;
        // The jump table is pinned too, under a name of this lbd's own: a program array drops
        // its programs when no descriptor or pin holds it, which would leave an entry kept
        // attached by `--on-exit keep` with no stages. The previous lbd's table stays until
        // this one has taken over every link (`retire_previous_stages`).
        let jump_pin = pins.dir().join(format!(
            "{JUMP_PIN_PREFIX}{}",
            xdp_program(&mut ebpf, PROGRAM)?.info()?.id()
        ));
        ProgramArray::<&MapData>::try_from(
            ebpf.map(maps::JUMP)
                .ok_or(DataplaneError::MissingMap(maps::JUMP))?,
        )?
        .pin(&jump_pin)
        .map_err(|e| DataplaneError::PinLink {
            iface: "(jump table)".to_owned(),
            path: jump_pin.clone(),
            detail: e.to_string(),
        })?;
        fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
            ebpf: &mut Ebpf,
            name: &'static str,
        ) -> Result<T> {
            let map = ebpf
                .take_map(name)
                .ok_or(DataplaneError::MissingMap(name))?;
            Ok(T::try_from(map)?)
        }
        let fds = BatchFds {
            conns: map_fd(&ebpf, maps::CONNS)?,
            half_open: map_fd(&ebpf, maps::HALF_OPEN)?,
            persist: map_fd(&ebpf, maps::PERSIST)?,
            real_conns: map_fd(&ebpf, maps::REAL_CONNS)?,
            service_stats: map_fd(&ebpf, maps::SERVICE_STATS)?,
            real_stats: map_fd(&ebpf, maps::REAL_STATS)?,
            sched_table: map_fd(&ebpf, maps::SCHED_TABLE)?,
            services: map_fd(&ebpf, maps::SERVICES)?,
            service_state: map_fd(&ebpf, maps::SERVICE_STATE)?,
        };
        let filter: Array<MapData, u64> = take(&mut ebpf, maps::FILTER)?;
        // A restarted lbd goes on from what the pinned sets hold.
        let admitted = Box::new(Filter::from_words(
            (0..lb_common::filter::LEN).map(|i| filter.get(&i, 0).unwrap_or(0)),
        ));
        // A restarted lbd goes on from the pinned copies' flips.
        let reals_fd = map_fd(&ebpf, maps::REALS)?;
        let real_slot_fd = map_fd(&ebpf, maps::REAL_SLOT)?;
        let real_slot: Array<MapData, u32> = take(&mut ebpf, maps::REAL_SLOT)?;
        let reals = RealWriter::new(
            reals_fd,
            real_slot_fd,
            (0..MAX_REALS).map(|id| real_slot.get(&id, 0).unwrap_or(0)),
        )
        .map_err(batch_err("creating the grace-period map"))?;
        let live = LiveCounts::map(fds.real_conns.as_fd(), MAX_REALS)
            .map_err(|e| DataplaneError::MapLiveCounts(e.to_string()))?;
        Ok(Dataplane {
            filter,
            admitted,
            live,
            fds,
            services: take(&mut ebpf, maps::SERVICES)?,
            reals,
            sched_table: take(&mut ebpf, maps::SCHED_TABLE)?,
            conns: take(&mut ebpf, maps::CONNS)?,
            half_open: take(&mut ebpf, maps::HALF_OPEN)?,
            locality: take(&mut ebpf, maps::LOCALITY)?,
            ifaces: take(&mut ebpf, maps::IFACES)?,
            ifaces_version: take(&mut ebpf, maps::IFACES_VERSION)?,
            settings: take(&mut ebpf, maps::SETTINGS)?,
            tx_ports: take(&mut ebpf, maps::TX_PORTS)?,
            service_stats: take(&mut ebpf, maps::SERVICE_STATS)?,
            real_stats: take(&mut ebpf, maps::REAL_STATS)?,
            dp_stats: take(&mut ebpf, maps::DP_STATS)?,
            cpus: nr_cpus().map_err(|(_, e)| DataplaneError::Cpus(e))?,
            links: Vec::new(),
            jump_pin,
            pins,
            adopted,
            ebpf,
        })
    }

    /// Removes the jump tables previous lbds pinned (once this one's entry is attached
    /// everywhere, nothing tail-calls through them any more).
    pub fn retire_previous_stages(&self) -> Result<()> {
        let ours = self.jump_pin.file_name().map(|n| n.to_owned());
        let Ok(entries) = std::fs::read_dir(self.pins.dir()) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with(JUMP_PIN_PREFIX) && Some(&name) != ours.as_ref() {
                std::fs::remove_file(entry.path()).map_err(|source| {
                    DataplaneError::Pin(PinError::Io {
                        path: entry.path(),
                        source,
                    })
                })?;
            }
        }
        Ok(())
    }

    /// Whether this lbd took over pinned state from a previous one.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// Attaches the program to `iface`: takes over the pinned XDP link a previous lbd left
    /// there (the program is replaced atomically: no packet finds no program), or attaches
    /// afresh and pins the link. Returns how.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<&'static str> {
        let c_name = std::ffi::CString::new(iface)
            .map_err(|_| DataplaneError::NoInterface(iface.to_owned()))?;
        // SAFETY: if_nametoindex reads a NUL-terminated string we own.
        let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
        if ifindex == 0 {
            return Err(DataplaneError::NoInterface(iface.to_owned()));
        }
        let pin = self.pins.link(ifindex);
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or(DataplaneError::MissingMap(PROGRAM))?
            .try_into()?;
        let pin_err = |detail: String| DataplaneError::PinLink {
            iface: iface.to_owned(),
            path: pin.clone(),
            detail,
        };
        if pin.exists() {
            let pinned = PinnedLink::from_pin(&pin).map_err(|e| pin_err(e.to_string()))?;
            let link =
                XdpLink::try_from(FdLink::from(pinned)).map_err(|e| pin_err(e.to_string()))?;
            let id = program.attach_to_link(link)?;
            self.links.push((iface.to_owned(), id));
            return Ok("taken over from the previous lbd");
        }
        let (id, how) = attach_with_fallback(program, iface, mode)?;
        let link = program.take_link(id)?;
        let fd_link = FdLink::try_from(link).map_err(|e| pin_err(e.to_string()))?;
        let pinned = fd_link.pin(&pin).map_err(|e| pin_err(e.to_string()))?;
        // Keep a reference in the program too, so it owns the link while we run.
        let link = XdpLink::try_from(FdLink::from(pinned)).map_err(|e| pin_err(e.to_string()))?;
        let id = program.attach_to_link(link)?;
        self.links.push((iface.to_owned(), id));
        Ok(how)
    }

    /// Attaches again to `iface`, deleted and created anew: the old device's link went with
    /// it (it is dropped, and its pin removed), the new device gets a link of its own.
    pub fn reattach(
        &mut self,
        iface: &str,
        old_ifindex: u32,
        mode: AttachMode,
    ) -> Result<&'static str> {
        if let Some(at) = self.links.iter().position(|(name, _)| name == iface) {
            let (_, id) = self.links.remove(at);
            let program: &mut Xdp = self
                .ebpf
                .program_mut(PROGRAM)
                .ok_or(DataplaneError::MissingMap(PROGRAM))?
                .try_into()?;
            // (Its device is gone: there is nothing left to detach from.)
            let _ = program.detach(id);
        }
        if old_ifindex != 0 {
            self.forget_iface(old_ifindex)?;
        }
        self.attach(iface, mode)
    }

    /// Forgets a NIC that is gone: its entry, its port for redirects and its link's pin.
    pub fn forget_iface(&mut self, ifindex: u32) -> Result<()> {
        let _ = self.ifaces.remove(&ifindex);
        let _ = self.tx_ports.remove(ifindex);
        let pin = self.pins.link(ifindex);
        match std::fs::remove_file(&pin) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(DataplaneError::Pin(PinError::Io { path: pin, source })),
        }
        let version = self.ifaces_version.get(&0, 0)?;
        self.ifaces_version.set(0, version.wrapping_add(1), 0)?;
        Ok(())
    }

    /// Stops: with [`OnExit::Detach`] removes every pin (the links go, so the program is
    /// detached, and the maps are freed); with [`OnExit::Keep`] leaves everything in place.
    pub fn finish(&mut self, on_exit: OnExit) -> Result<()> {
        if on_exit == OnExit::Keep {
            return Ok(());
        }
        self.pins.remove_all()?;
        let program: &mut Xdp = self
            .ebpf
            .program_mut(PROGRAM)
            .ok_or(DataplaneError::MissingMap(PROGRAM))?
            .try_into()?;
        for (_, link) in self.links.drain(..) {
            // The pin is gone, so closing our reference destroys the link: detached.
            program.detach(link)?;
        }
        Ok(())
    }

    /// Removes what a previous lbd left pinned under `pins` (`lbd --cleanup`). Returns
    /// whether there was anything.
    pub fn cleanup(pins: &PinDir) -> Result<bool> {
        Ok(pins.remove_all()?)
    }

    /// Every service entry in the data path (to re-adopt after a restart).
    pub fn service_entries(&self) -> Vec<(ServiceKey, Service)> {
        self.services.iter().filter_map(|e| e.ok()).collect()
    }

    /// A run of the scheduling table.
    pub fn read_table(&self, offset: u32, len: u32) -> Result<Vec<u32>> {
        (offset..offset + len)
            .map(|i| Ok(self.sched_table.get(&i, 0)?))
            .collect()
    }

    /// Describes one of the director's NICs to the data path, which may then send frames out
    /// of it (by XDP_TX, or redirected from another NIC).
    pub fn set_iface(&mut self, ifindex: u32, iface: Iface) -> Result<()> {
        self.ifaces.insert(ifindex, iface, 0)?;
        self.tx_ports.insert(ifindex, ifindex, None, 0)?;
        // The data path keeps each CPU's last ingress entry until this changes.
        let version = self.ifaces_version.get(&0, 0)?;
        self.ifaces_version.set(0, version.wrapping_add(1), 0)?;
        Ok(())
    }

    /// Writes IPVS's sysctls for the data path.
    pub fn set_settings(&mut self, settings: lb_common::Settings) -> Result<()> {
        Ok(self.settings.set(0, settings, 0)?)
    }

    /// Admits addresses into the pre-filter's sets: (set, address) pairs, addresses in
    /// network order (`lb_common::filter`). Only words that change are written.
    pub fn admit(&mut self, addrs: &[(u32, u32)]) -> Result<()> {
        for &(set, addr) in addrs {
            if let Some((index, word)) = self.admitted.admit(set, addr) {
                self.filter.set(index, word, 0)?;
            }
        }
        Ok(())
    }

    pub fn set_real(&mut self, id: u32, real: &RealServer) -> Result<()> {
        self.set_reals(&[id], std::slice::from_ref(real))
    }

    /// Writes a scheduling table run starting at `offset` (one call: a Maglev table has
    /// 65,537 slots).
    pub fn write_table(&mut self, offset: u32, ids: &[u32]) -> Result<()> {
        let slots: Vec<u32> = (offset..offset + ids.len() as u32).collect();
        bpf_batch::update(self.fds.sched_table.as_fd(), &slots, ids)
            .map_err(batch_err("writing a scheduling table"))
    }

    /// Writes real servers' entries (never read torn: `real_copies`).
    pub fn set_reals(&mut self, ids: &[u32], reals: &[RealServer]) -> Result<()> {
        self.reals
            .write(ids, reals)
            .map_err(batch_err("writing real servers"))
    }

    /// Writes service entries (publishing their tables).
    pub fn set_services(&mut self, keys: &[ServiceKey], services: &[Service]) -> Result<()> {
        bpf_batch::update(self.fds.services.as_fd(), keys, services)
            .map_err(batch_err("writing services"))
    }

    /// Restarts services' round-robin walks: (service id, position in its table).
    pub fn reset_service_states(&mut self, positions: &[(u32, u64)]) -> Result<()> {
        let (ids, states): (Vec<u32>, Vec<ServiceState>) = positions
            .iter()
            .map(|&(id, rr_position)| (id, ServiceState { rr_position }))
            .unzip();
        bpf_batch::update(self.fds.service_state.as_fd(), &ids, &states)
            .map_err(batch_err("resetting round-robin positions"))
    }

    /// Where a service's round-robin walk stands (the data path's count of slots given out
    /// since its last reset, from the position written then).
    pub fn service_position(&self, id: u32) -> Result<u64> {
        let state: Option<ServiceState> = bpf_batch::lookup(self.fds.service_state.as_fd(), &id)
            .map_err(batch_err("reading a round-robin position"))?;
        Ok(state.unwrap_or_default().rr_position)
    }

    /// Zeroes the traffic counters of services and real servers.
    pub fn zero_counters(&mut self, services: &[u32], reals: &[u32]) -> Result<()> {
        for (fd, ids) in [
            (self.fds.service_stats.as_fd(), services),
            (self.fds.real_stats.as_fd(), reals),
        ] {
            let zeroes = vec![Counters::default(); ids.len() * self.cpus];
            bpf_batch::update(fd, ids, &zeroes).map_err(batch_err("zeroing counters"))?;
        }
        Ok(())
    }

    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<()> {
        match self.services.remove(key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The counters of every service id below `limit` (summed over CPUs), by id.
    pub fn all_service_counters(&self, limit: u32) -> Result<Vec<Counters>> {
        self.all_counters(self.fds.service_stats.as_fd(), limit)
    }

    /// The counters of every real server id below `limit` (summed over CPUs), by id.
    pub fn all_real_counters(&self, limit: u32) -> Result<Vec<Counters>> {
        self.all_counters(self.fds.real_stats.as_fd(), limit)
    }

    fn all_counters(&self, fd: BorrowedFd<'_>, limit: u32) -> Result<Vec<Counters>> {
        let mut totals = vec![Counters::default(); limit as usize];
        let mut reader = Reader::<u32, Counters>::new(CHUNK.min(limit.max(1) as usize), self.cpus);
        reader
            .read(fd, limit as usize, |ids, values| {
                for (&id, per_cpu) in ids.iter().zip(values.chunks(self.cpus)) {
                    if let Some(total) = totals.get_mut(id as usize) {
                        per_cpu.iter().for_each(|c| total.add(c));
                    }
                }
            })
            .map_err(batch_err("reading traffic counters"))?;
        Ok(totals)
    }

    fn zeroes(&self) -> Result<PerCpuValues<Counters>> {
        PerCpuValues::try_from(vec![Counters::default(); self.cpus]).map_err(DataplaneError::Cpus)
    }

    pub fn zero_service_counters(&mut self, id: u32) -> Result<()> {
        let zeroes = self.zeroes()?;
        Ok(self.service_stats.set(id, zeroes, 0)?)
    }

    pub fn zero_real_counters(&mut self, id: u32) -> Result<()> {
        let zeroes = self.zeroes()?;
        Ok(self.real_stats.set(id, zeroes, 0)?)
    }

    /// Data-path event counters by reason.
    pub fn event_counters(&self) -> Result<Vec<(Stat, u64)>> {
        Stat::ALL
            .iter()
            .map(|&stat| {
                let values = self.dp_stats.get(&(stat as u32), 0)?;
                Ok((stat, values.iter().sum()))
            })
            .collect()
    }

    /// Reads the whole connection table a chunk at a time into `reader`, handing each chunk
    /// to `each` (entries added or removed meanwhile may or may not be seen).
    pub fn read_connections(
        &self,
        table: Table,
        reader: &mut Reader<FlowKey, Conn>,
        each: impl FnMut(&[FlowKey], &[Conn]),
    ) -> Result<usize> {
        let fd = match table {
            Table::Conns => self.fds.conns.as_fd(),
            Table::HalfOpen => self.fds.half_open.as_fd(),
        };
        reader
            .read(fd, usize::MAX, each)
            .map_err(batch_err("reading the connection table"))
    }

    /// As [`Dataplane::read_connections`], up to `limit` entries from where `cursor` stands;
    /// returns how many were read and whether the table's end was reached.
    pub fn read_connections_on(
        &self,
        reader: &mut Reader<FlowKey, Conn>,
        cursor: &mut Cursor,
        limit: usize,
        each: impl FnMut(&[FlowKey], &[Conn]),
    ) -> Result<(usize, bool)> {
        reader
            .read_on(self.fds.conns.as_fd(), cursor, limit, each)
            .map_err(batch_err("reading the connection table"))
    }

    /// A reader for [`Dataplane::read_connections`].
    pub fn connection_reader() -> Reader<FlowKey, Conn> {
        Reader::new(CHUNK, 1)
    }

    /// Whether either table has an entry for `key` now.
    pub fn has_connection(&self, key: &FlowKey) -> bool {
        self.conns.get(key, 0).is_ok() || self.half_open.get(key, 0).is_ok()
    }

    /// Expires entries of `table` that the sweep read as `seen`, each taken out of the table
    /// with the value it holds at that moment: one refreshed since it was read is put back,
    /// and a client-direction entry of the connection table that is really gone is taken off
    /// the live counts here (the data path only counts off the entries it removes itself).
    /// Returns how many entries went.
    pub fn expire_connections(&mut self, table: Table, seen: &[(FlowKey, Conn)]) -> Result<usize> {
        let fd = match table {
            Table::Conns => self.fds.conns.as_fd(),
            Table::HalfOpen => self.fds.half_open.as_fd(),
        };
        let err = |e| batch_err("expiring connections")(e);
        let mut gone = 0;
        for (key, read) in seen {
            let Some(now) = bpf_batch::take::<FlowKey, Conn>(fd, key).map_err(err)? else {
                continue;
            };
            if now.last_seen_ns != read.last_seen_ns || now.state != read.state {
                // Used again between the sweep's read and now: it stays. (Unless a new entry
                // took its place meanwhile, which then stands for it.)
                if bpf_batch::insert_new(fd, key, &now).map_err(err)? {
                    continue;
                }
            }
            gone += 1;
            if table == Table::Conns && now.flags & CONN_F_REPLY == 0 {
                self.live.closed(now.real, now.state);
            }
        }
        Ok(gone)
    }

    /// How many times [`Dataplane::put_connection`] tries to place an entry against packets
    /// of the same flow that create one.
    const PUT_ATTEMPTS: usize = 3;

    /// Puts a connection learnt from elsewhere (a sync master) in the connection table, in
    /// place of what the table has for `key`: the live counts follow (the replaced entry
    /// off, the new one on), a NAT connection's reply entry is written first (as the data
    /// path does), and a half-open entry of the flow goes (the sweep recounts that table).
    pub fn put_connection(
        &mut self,
        key: &FlowKey,
        conn: &Conn,
        reply: Option<&FlowKey>,
    ) -> Result<()> {
        let err = |e| batch_err("writing a synchronised connection")(e);
        let fd = self.fds.conns.as_fd();
        if let Some(reply) = reply {
            let entry = Conn {
                flags: CONN_F_REPLY,
                ..*conn
            };
            bpf_batch::update(fd, &[*reply], &[entry]).map_err(err)?;
        }
        // The data path may create or remove the flow's entry meanwhile, and whoever removes
        // an entry takes it off the counts (the map's delete decides): take the old entry out
        // in one step, then insert the new one only where there is none, again if a packet
        // made one in between. A read-then-overwrite would miss an entry made between the two
        // (counted once, never taken off) or take one off twice.
        let mut placed = false;
        for _ in 0..Self::PUT_ATTEMPTS {
            if let Some(old) = bpf_batch::take::<FlowKey, Conn>(fd, key).map_err(err)?
                && old.flags & CONN_F_REPLY == 0
            {
                self.live.closed(old.real, old.state);
            }
            if bpf_batch::insert_new(fd, key, conn).map_err(err)? {
                placed = true;
                break;
            }
        }
        if !placed {
            // The flow's packets keep making an entry of their own: theirs stands.
            return Ok(());
        }
        self.live.opened(conn.real, conn.state);
        bpf_batch::take::<FlowKey, Conn>(self.fds.half_open.as_fd(), key).map_err(err)?;
        Ok(())
    }

    /// The live counts, for atomic changes.
    pub fn live_counts(&self) -> &LiveCounts {
        &self.live
    }

    /// The connection counts of every real server id below `limit`, by id.
    pub fn all_real_conns(&self, limit: u32) -> Result<Vec<RealConns>> {
        let mut all = vec![RealConns::default(); limit as usize];
        let mut reader = Reader::<u32, RealConns>::new(CHUNK.min(limit.max(1) as usize), 1);
        reader
            .read(
                self.fds.real_conns.as_fd(),
                limit as usize,
                |ids, values| {
                    for (&id, value) in ids.iter().zip(values) {
                        if let Some(slot) = all.get_mut(id as usize) {
                            *slot = *value;
                        }
                    }
                },
            )
            .map_err(batch_err("reading connection counts"))?;
        Ok(all)
    }

    /// Writes real servers' connection counts.
    pub fn set_all_real_conns(&mut self, ids: &[u32], values: &[RealConns]) -> Result<()> {
        bpf_batch::update(self.fds.real_conns.as_fd(), ids, values)
            .map_err(batch_err("writing connection counts"))
    }

    /// Reads every persistence template a chunk at a time, as
    /// [`Dataplane::read_connections`].
    pub fn read_templates(
        &self,
        reader: &mut Reader<PersistKey, Persist>,
        each: impl FnMut(&[PersistKey], &[Persist]),
    ) -> Result<usize> {
        reader
            .read(self.fds.persist.as_fd(), usize::MAX, each)
            .map_err(batch_err("reading persistence templates"))
    }

    /// A reader for [`Dataplane::read_templates`].
    pub fn template_reader() -> Reader<PersistKey, Persist> {
        Reader::new(CHUNK, 1)
    }

    /// Every persistence template.
    pub fn persistence_templates(&self) -> Result<Vec<(PersistKey, Persist)>> {
        let mut all = Vec::new();
        Reader::<PersistKey, Persist>::new(CHUNK, 1)
            .read(self.fds.persist.as_fd(), usize::MAX, |keys, values| {
                all.extend(keys.iter().copied().zip(values.iter().copied()));
            })
            .map_err(batch_err("reading persistence templates"))?;
        Ok(all)
    }

    /// Writes persistence templates back.
    pub fn set_persistence_templates(
        &mut self,
        keys: &[PersistKey],
        values: &[Persist],
    ) -> Result<()> {
        bpf_batch::update(self.fds.persist.as_fd(), keys, values)
            .map_err(batch_err("refreshing persistence templates"))
    }

    /// Removes persistence templates (those already gone are skipped).
    pub fn remove_persistence_templates(&mut self, keys: &[PersistKey]) -> Result<usize> {
        bpf_batch::delete(self.fds.persist.as_fd(), keys)
            .map_err(batch_err("expiring persistence templates"))
    }

    /// Whether the lblc/lblcr locality table has no entry (one lookup).
    pub fn locality_is_empty(&self) -> bool {
        self.locality.keys().next().is_none()
    }

    /// Every lblc/lblcr locality entry (entries that vanish while we walk are skipped).
    pub fn locality_entries(&self) -> Vec<(LocalityKey, Locality)> {
        self.locality
            .iter()
            .filter_map(|entry| entry.ok())
            .collect()
    }

    pub fn remove_locality(&mut self, key: &LocalityKey) -> Result<()> {
        match self.locality.remove(key) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_older_than_6_1_are_refused_by_release() {
        for ok in [
            "6.1.0-57-amd64",
            "6.12.118+deb12-amd64",
            "6.18.44-fc-v1252",
            "7.0",
            "garbage",
        ] {
            assert!(check_kernel(ok).is_ok(), "{ok}");
        }
        for old in ["5.15.0-91-generic", "5.10.0-28-amd64", "6.0.12", "4.19.0"] {
            let err = check_kernel(old).unwrap_err().to_string();
            assert!(
                err.contains(old) && err.contains("Linux 6.1 or newer"),
                "{err}"
            );
        }
    }
}
