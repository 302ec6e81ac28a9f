//! The director: the running configuration made real in the data path.
//!
//! Every change goes the same way: validate and apply the commands to a copy of the
//! configuration (pure, all or nothing), find the next hops of new real servers, write the
//! difference to the maps (a service's new scheduling table is written to a fresh run of slots
//! and published by one update of its service entry), then persist the configuration.
//! A periodic [`Director::tick`] follows neighbour changes, expires connections as IPVS would,
//! counts active/inactive connections, frees ids that no connection uses any more and clears
//! stale lblc/lblcr locality entries.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::{Duration, Instant},
};

use lb_common::{
    Addr, CONN_F_REPLY, Conn, Counters, FlowKey, Iface, Persist, PersistKey, REAL_F_IN_USE,
    REAL_F_REMOVED, REAL_F_RESOLVED, RealConns, RealServer, SCHED_SLOTS, SERVICE_F_HASH_FALLBACK,
    SERVICE_F_HASH_PORT, SERVICE_F_PERSISTENT, Service, ServiceKey, Stat, filter, tcp_state,
};
use tracing::{debug, info, warn};

use crate::{
    bpf_batch::{Cursor, Reader},
    config::{Config, ConfigError, ServiceEntry, TrashedReal},
    dataplane::{AttachMode, Dataplane, DataplaneError, Table},
    interfaces, locality,
    model::{
        Command, ConnectionStatus, Forward, Rates, RealStatus, ServiceAddr, ServiceStatus,
        Snapshot, Stats, Timeouts,
    },
    netlink::{self, NeighbourEvent},
    resolution::{self, RESOLUTION_WAIT, Resolution},
    sched,
    slots::SlotAllocator,
    state,
    sweep::{self, Sweep, Template},
};

#[derive(Debug, thiserror::Error)]
pub enum DirectorError {
    /// Refused by the configuration rules: the message is ipvsadm's.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Transparent: a message of its own would print the data path's twice in a chain.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    #[error("scheduling tables are full ({SCHED_SLOTS} slots)")]
    SlotsFull,
    #[error("{0}")]
    Netlink(#[from] netlink::Error),
    #[error("saving state: {0}")]
    State(#[from] state::StateError),
}

type Result<T, E = DirectorError> = std::result::Result<T, E>;

/// Publishing more services than this at once (a restore) logs one line, not one each.
const LOG_EACH_UP_TO: usize = 20;

/// How a real server's address is reached: the interface and the next hop's MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct NextHop {
    ifindex: u32,
    /// MTU of the egress interface.
    mtu: u32,
    /// The neighbour to resolve (the real server itself when directly connected), of the real
    /// server's family (resolved over ARP or NDP).
    via: IpAddr,
    mac: Option<[u8; 6]>,
    /// `mac` is the last known one: the neighbour table no longer has it, and it is being
    /// resolved again.
    stale: bool,
}

impl NextHop {
    /// What the data path is given of it.
    fn published(&self) -> (u32, u32, IpAddr, Option<[u8; 6]>) {
        (self.ifindex, self.mtu, self.via, self.mac)
    }
}

/// A service ready to publish: its scheduling table, built and known to fit.
struct Plan {
    entry: ServiceEntry,
    /// Real servers that may take new connections (resolved).
    available: usize,
    /// The real servers the table was built over, in the order they were added.
    candidates: Vec<sched::Candidate>,
    table: Vec<u32>,
}

/// What the data path currently has for one service.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Published {
    key: ServiceKey,
    value: Service,
    table: Vec<u32>,
    /// `wrr`: where its walk was last restarted (`None` for a table taken over from a
    /// previous lbd, whose restart is not known).
    wrr: Option<sched::WrrMark>,
}

/// IPVS's rate estimator (`ip_vs_est.c`): every two seconds the rates move a quarter of the
/// way towards the last interval's figures.
#[derive(Clone, Copy, Debug, Default)]
struct Estimator {
    last: Counters,
    rates: Rates,
}

/// Moves `id`'s estimator on; a new one starts from the current counters.
fn estimate(estimators: &mut HashMap<u32, Estimator>, id: u32, now: Counters, elapsed: Duration) {
    match estimators.get_mut(&id) {
        Some(e) => e.update(now, elapsed),
        None => {
            estimators.insert(
                id,
                Estimator {
                    last: now,
                    rates: Rates::default(),
                },
            );
        }
    }
}

impl Estimator {
    const INTERVAL: Duration = Duration::from_secs(2);

    fn update(&mut self, now: Counters, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(0.001);
        let per_sec = |new: u64, old: u64| (new.saturating_sub(old) as f64 / secs) as i64;
        let smooth =
            |est: u64, sample: i64| (est as i64 + ((sample - est as i64) >> 2)).max(0) as u64;
        let r = &mut self.rates;
        r.cps = smooth(r.cps, per_sec(now.conns, self.last.conns));
        r.in_pps = smooth(r.in_pps, per_sec(now.in_pkts, self.last.in_pkts));
        r.out_pps = smooth(r.out_pps, per_sec(now.out_pkts, self.last.out_pkts));
        r.in_bps = smooth(r.in_bps, per_sec(now.in_bytes, self.last.in_bytes));
        r.out_bps = smooth(r.out_bps, per_sec(now.out_bytes, self.last.out_bytes));
        self.last = now;
    }
}

/// Map readers kept from one sweep to the next.
struct Readers {
    conns: Reader<FlowKey, Conn>,
    half_open: Reader<FlowKey, Conn>,
    templates: Reader<PersistKey, Persist>,
}

/// Data-path writes of a publication, made in batches in an order that keeps what a packet
/// sees consistent: real servers first, then fresh counters and round-robin positions, then
/// the service entries that point at them (and at their tables, written before).
#[derive(Default)]
struct Writes {
    /// Addresses for the pre-filter (`lb_common::filter`): (set, address).
    admit: Vec<(u32, u32)>,
    reals: Vec<(u32, RealServer)>,
    zero_services: Vec<u32>,
    zero_reals: Vec<u32>,
    /// Round-robin walks to restart: (service id, position).
    reset_states: Vec<(u32, u64)>,
    services: Vec<(ServiceKey, Service)>,
}

impl Writes {
    fn flush(self, dataplane: &mut Dataplane) -> Result<()> {
        // Admitted before the services that need them exist: a packet for a new service is
        // never filtered out.
        dataplane.admit(&self.admit)?;
        let (ids, reals): (Vec<u32>, Vec<RealServer>) = self.reals.into_iter().unzip();
        dataplane.set_reals(&ids, &reals)?;
        dataplane.zero_counters(&self.zero_services, &self.zero_reals)?;
        dataplane.reset_service_states(&self.reset_states)?;
        let (keys, services): (Vec<ServiceKey>, Vec<Service>) = self.services.into_iter().unzip();
        dataplane.set_services(&keys, &services)?;
        Ok(())
    }
}

/// A pass over the connection table: where it stands.
#[derive(Debug, Default)]
struct Pass {
    cursor: Cursor,
}

/// Connection-table entries read per tick at most: about 60 ms of CPU at a million
/// connections; a bigger table is swept over several ticks.
const SWEEP_BUDGET: usize = 131_072;

/// One past the highest ids in use.
#[derive(Clone, Copy, Debug, Default)]
struct Limits {
    services: u32,
    reals: u32,
}

impl Limits {
    fn of(config: &Config) -> Self {
        let reals = config
            .services
            .iter()
            .flat_map(|s| s.reals.iter().map(|r| r.id))
            .chain(config.trash.iter().map(|t| t.id))
            .max();
        Limits {
            services: config.services.iter().map(|s| s.id + 1).max().unwrap_or(0),
            reals: reals.map_or(0, |id| id + 1),
        }
    }
}

/// What the sweep needs of `config`.
fn sweep_rules(config: &Config) -> sweep::Rules {
    let persistence = config
        .services
        .iter()
        .filter_map(|s| {
            let p = s.spec.persistence?;
            Some((s.id, (p.netmask.to_addr(), u64::from(p.timeout))))
        })
        .collect();
    let masq = config
        .services
        .iter()
        .flat_map(|s| s.reals.iter().map(|r| (r.id, &r.spec)))
        .chain(config.trash.iter().map(|t| (t.id, &t.spec)))
        .filter(|(_, spec)| spec.forward == Forward::Masq)
        .map(|(id, _)| id)
        .collect();
    sweep::Rules {
        timeouts: config.timeouts,
        persistence,
        masq,
    }
}

pub struct Director {
    config: Config,
    dataplane: Dataplane,
    slots: SlotAllocator,
    published: HashMap<u32, Published>,
    /// Slot runs replaced recently, freed on the next tick so that a CPU still walking the
    /// old table never reads slots already given to someone else.
    retired: Vec<(u32, u32)>,
    next_hops: HashMap<IpAddr, NextHop>,
    /// The last sweep of the connection table (counts by real server), its buffers, what it
    /// needs of the configuration, and the readers it walks the maps with.
    sweep: Sweep,
    rules: sweep::Rules,
    readers: Readers,
    /// Where the pass over the connection table stands.
    pass: Pass,
    /// One past the highest service and real server ids in use (to read counters up to).
    limits: Limits,
    /// Rate estimators by service id and by real server id.
    service_rates: HashMap<u32, Estimator>,
    real_rates: HashMap<u32, Estimator>,
    last_estimate: Instant,
    /// Health-check verdicts of checked real servers.
    health: HashMap<crate::health::TargetKey, bool>,
    state_path: PathBuf,
    conn_table_size: u32,
    /// Connection-table entries the sweep reads per tick ([`SWEEP_BUDGET`]).
    sweep_budget: usize,
    last_route_refresh: Instant,
    /// Last sweep of the lblc/lblcr locality table (`None`: not yet).
    last_locality_sweep: Option<Instant>,
    /// The sysctls have been written to the data path since this lbd started.
    settings_written: bool,
    /// The NICs attached to, followed by name, and how to attach to them.
    interfaces: Vec<interfaces::Attached>,
    attach_mode: AttachMode,
    /// Until then, after a NIC came back, its addresses and the routes through it are read
    /// every tick (they are configured after the device appears).
    settling_until: Option<Instant>,
    /// The connection synchronisation daemons (`--start-daemon`).
    sync: crate::sync::running::Running,
}

/// How long after a NIC came back lbd re-reads its addresses and routes every tick.
const SETTLING: Duration = Duration::from_secs(10);

/// The data path's description of a NIC.
fn iface_of(link: &netlink::Link) -> Iface {
    let addr = link
        .ipv4
        .first()
        .map(|(a, _)| *a)
        .unwrap_or(Ipv4Addr::UNSPECIFIED);
    // The first global IPv6 address: the source of ICMPv6 errors lb sends.
    let addr6 = link
        .ipv6
        .first()
        .map(|(a, _)| *a)
        .unwrap_or(Ipv6Addr::UNSPECIFIED);
    Iface {
        mac: link.mac,
        _pad: [0; 2],
        addr: u32::from_ne_bytes(addr.octets()),
        addr6: Addr::from(addr6),
    }
}

/// How often lbd sweeps the locality table (IPVS checks its tables every minute).
const LOCALITY_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The sysctls and timeouts the data path reads.
fn data_path_settings(config: &Config) -> lb_common::Settings {
    let t = config.timeouts;
    lb_common::Settings {
        tcp_timeout: t.tcp,
        tcp_fin_timeout: t.tcp_fin,
        udp_timeout: t.udp,
        ..config.sysctls.to_data_path()
    }
}

/// CLOCK_MONOTONIC_COARSE in nanoseconds: the clock `bpf_ktime_get_coarse_ns` reads.
/// `--start-daemon`s as the kernel starts them: refused with ENODEV when the interface does
/// not exist, otherwise with its defaults filled in (the message size from the interface's
/// MTU), which `-L --daemon` then shows.
fn start_daemons(commands: &[Command]) -> Result<Vec<Command>> {
    commands
        .iter()
        .map(|command| match command {
            Command::StartDaemon { daemon } => {
                let link = netlink::link_by_name(&daemon.mcast_ifn)
                    .map_err(|_| ConfigError::NoSuchDevice)?;
                Ok(Command::StartDaemon {
                    daemon: daemon.clone().with_defaults(link.mtu),
                })
            }
            other => Ok(other.clone()),
        })
        .collect()
}

fn coarse_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn service_key(addr: &ServiceAddr) -> ServiceKey {
    ServiceKey {
        addr: Addr::from(addr.addr),
        port: addr.port.to_be(),
        proto: addr.protocol.number(),
        family: addr.family(),
    }
}

fn stats_of(c: Counters) -> Stats {
    Stats {
        conns: c.conns,
        in_pkts: c.in_pkts,
        out_pkts: c.out_pkts,
        in_bytes: c.in_bytes,
        out_bytes: c.out_bytes,
    }
}

impl Director {
    /// Takes over a loaded data path: describes the attached interfaces to it and restores the
    /// configuration saved at `state_path` (if any).
    pub fn new(
        mut dataplane: Dataplane,
        interfaces: &[netlink::Link],
        state_path: PathBuf,
        conn_table_size: u32,
    ) -> Result<Self> {
        for link in interfaces {
            dataplane.set_iface(link.index, iface_of(link))?;
        }
        let saved = state::load(&state_path)?;
        let adopted = dataplane.adopted();
        let mut director = Director {
            config: Config::default(),
            dataplane,
            slots: SlotAllocator::new(SCHED_SLOTS),
            published: HashMap::new(),
            retired: Vec::new(),
            next_hops: HashMap::new(),
            sweep: Sweep::default(),
            rules: sweep::Rules::default(),
            readers: Readers {
                conns: Dataplane::connection_reader(),
                half_open: Dataplane::connection_reader(),
                templates: Dataplane::template_reader(),
            },
            limits: Limits::default(),
            pass: Pass::default(),
            service_rates: HashMap::new(),
            real_rates: HashMap::new(),
            last_estimate: Instant::now(),
            health: HashMap::new(),
            state_path,
            conn_table_size,
            sweep_budget: SWEEP_BUDGET,
            last_route_refresh: Instant::now(),
            last_locality_sweep: None,
            settings_written: false,
            interfaces: Vec::new(),
            attach_mode: AttachMode::Auto,
            settling_until: None,
            sync: Default::default(),
        };
        if adopted {
            director.take_over_published()?;
        }
        if let Some(saved) = saved {
            let services = saved.services.len();
            let (plans, resolution) = director.prepare(&saved)?;
            director.adopt(saved, plans)?;
            // Nothing else runs yet: wait here, so the first packets find the real servers.
            resolution::wait_with(resolution, RESOLUTION_WAIT, |events, resolution| {
                director.learn(events, resolution)
            });
            info!(
                services,
                path = %director.state_path.display(),
                "restored configuration"
            );
        }
        // Whatever the previous lbd published that the configuration no longer has.
        let live: HashSet<u32> = director.config.services.iter().map(|s| s.id).collect();
        let stale: Vec<u32> = director
            .published
            .keys()
            .copied()
            .filter(|id| !live.contains(id))
            .collect();
        for id in stale {
            director.unpublish(id)?;
        }
        Ok(director)
    }

    /// Learns what a previous lbd left in the (pinned) data path, so that publishing the
    /// same configuration again changes nothing a packet could notice: same tables in the
    /// same slots, counters and round-robin positions kept.
    fn take_over_published(&mut self) -> Result<()> {
        for (key, value) in self.dataplane.service_entries() {
            let table = if value.table_len > 0 {
                if !self.slots.reserve(value.table_offset, value.table_len) {
                    warn!(
                        id = value.id,
                        "pinned scheduling table overlaps another; rebuilding it"
                    );
                    continue;
                }
                self.dataplane
                    .read_table(value.table_offset, value.table_len)?
            } else {
                Vec::new()
            };
            self.published.insert(
                value.id,
                Published {
                    key,
                    value,
                    table,
                    wrr: None,
                },
            );
        }
        info!(
            services = self.published.len(),
            "took over the data path a previous lbd left running"
        );
        Ok(())
    }

    /// Applies a batch of commands, all or nothing. Never waits for ARP: real servers whose
    /// MAC is not known yet are published unresolved (they take no new connections) and the
    /// kernel is asked to resolve them; the returned [`Resolution`] follows the answers, for a
    /// caller that wants to wait for them without holding the director (see
    /// [`wait_for_resolution`]). The periodic tick picks them up anyway.
    pub fn apply(&mut self, commands: &[Command]) -> Result<Resolution> {
        self.apply_owned(commands, None)
    }

    /// [`apply`](Self::apply) of a keepalived.conf's commands: `keepalived` (the services the
    /// file defines from now on) is recorded with the configuration, in the same save, so the
    /// next lbd knows which services the file owns.
    pub fn apply_managed(
        &mut self,
        commands: &[Command],
        keepalived: Vec<ServiceAddr>,
    ) -> Result<Resolution> {
        self.apply_owned(commands, Some(keepalived))
    }

    fn apply_owned(
        &mut self,
        commands: &[Command],
        keepalived: Option<Vec<ServiceAddr>>,
    ) -> Result<Resolution> {
        let commands = &start_daemons(commands)?;
        let mut next = self.config.apply_all(commands)?;
        if let Some(keepalived) = keepalived {
            next.keepalived = keepalived;
        }
        // All or nothing: what can run out (scheduling-table slots) is planned, and the new
        // configuration saved, before anything in the data path changes; a change that does
        // not fit or cannot be saved (a full disk) leaves data path, memory and file as they
        // were.
        let (plans, resolution) = self.prepare(&next)?;
        state::save(&self.state_path, &next)?;
        for command in commands {
            if let Command::Zero { service } = command {
                self.zero(service.as_ref(), &next)?;
            }
        }
        self.adopt(next, plans)?;
        Ok(resolution)
    }

    /// What making `next` the running configuration takes: the services to publish, planned
    /// to fit, and the resolution of real servers not seen before (asked of the kernel now).
    fn prepare(&mut self, next: &Config) -> Result<(Vec<Plan>, Resolution)> {
        let new_addrs: Vec<IpAddr> = next
            .services
            .iter()
            .flat_map(|s| s.reals.iter().map(|r| r.spec.addr))
            .filter(|a| !self.next_hops.contains_key(a))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let resolution = self.resolve(&new_addrs, true);
        // Everything that can run out is planned before anything changes.
        let before: HashMap<u32, &ServiceEntry> =
            self.config.services.iter().map(|s| (s.id, s)).collect();
        let changed: Vec<ServiceEntry> = next
            .services
            .iter()
            .filter(|entry| {
                before.get(&entry.id) != Some(entry) || !self.published.contains_key(&entry.id)
            })
            .cloned()
            .collect();
        let plans = self.plan(&changed)?;
        Ok((plans, resolution))
    }

    /// Makes `next` the running configuration in the data path, its services as `plans`
    /// (from [`Self::prepare`]) has them.
    fn adopt(&mut self, next: Config, plans: Vec<Plan>) -> Result<()> {
        let previous = std::mem::replace(&mut self.config, next);
        let live: HashMap<u32, ServiceAddr> = self
            .config
            .services
            .iter()
            .map(|s| (s.id, s.spec.addr))
            .collect();
        for old in &previous.services {
            if live.get(&old.id) != Some(&old.spec.addr) {
                self.unpublish(old.id)?;
                info!(service = %old.spec.addr, "service removed");
            }
        }
        // Real servers trashed by this change (those trashed as they are before are marked
        // already).
        let trashed_before: HashMap<u32, &TrashedReal> =
            previous.trash.iter().map(|t| (t.id, t)).collect();
        let newly_trashed: Vec<TrashedReal> = self
            .config
            .trash
            .iter()
            .filter(|t| trashed_before.get(&t.id) != Some(t))
            .cloned()
            .collect();
        self.mark_removed(&newly_trashed)?;
        self.publish_planned(plans)?;
        // As IPVS frees an lblc/lblcr service's table when the service goes or changes
        // scheduler. (The data path no longer reads them by then: the service entry changed
        // first.)
        let flush = locality::services_to_flush(&previous, &self.config);
        if !flush.is_empty() {
            self.flush_locality(&flush)?;
        }
        if previous.sysctls != self.config.sysctls
            || previous.timeouts != self.config.timeouts
            || !self.settings_written
        {
            self.dataplane
                .set_settings(data_path_settings(&self.config))?;
            self.settings_written = true;
            if previous.sysctls != self.config.sysctls {
                info!(sysctls = ?self.config.sysctls, "sysctls changed");
            }
        }
        self.rules = sweep_rules(&self.config);
        self.limits = Limits::of(&self.config);
        self.sync.reconcile(&self.config.sync_daemons);
        Ok(())
    }

    /// Writes trashed real servers as removed: their connections go on, new ones never reach
    /// them.
    fn mark_removed(&mut self, trashed: &[TrashedReal]) -> Result<()> {
        let mut writes = Writes::default();
        for t in trashed {
            let mut real = self.real_entry(t.service_id, &t.spec);
            real.flags |= REAL_F_REMOVED;
            writes.reals.push((t.id, real));
        }
        writes.flush(&mut self.dataplane)
    }

    /// Deletes the locality entries of the services `ids`.
    fn flush_locality(&mut self, ids: &HashSet<u32>) -> Result<()> {
        let mut flushed = 0;
        for (key, _) in self.dataplane.locality_entries() {
            if ids.contains(&key.service) {
                self.dataplane.remove_locality(&key)?;
                flushed += 1;
            }
        }
        if flushed > 0 {
            info!(entries = flushed, "lblc/lblcr locality entries flushed");
        }
        Ok(())
    }

    /// Every [`LOCALITY_SWEEP_INTERVAL`]: deletes locality entries that are unused for the
    /// expiration time or belong to no lblc/lblcr service (the data path already ignores
    /// them; this frees their space).
    fn sweep_locality(&mut self) -> Result<()> {
        if self
            .last_locality_sweep
            .is_some_and(|last| last.elapsed() < LOCALITY_SWEEP_INTERVAL)
        {
            return Ok(());
        }
        self.last_locality_sweep = Some(Instant::now());
        if self.dataplane.locality_is_empty() {
            return Ok(());
        }
        let live = locality::services_with_locality(&self.config);
        let now = coarse_now_ns();
        for (key, entry) in self.dataplane.locality_entries() {
            if locality::is_stale(&key, &entry, now, &live) {
                self.dataplane.remove_locality(&key)?;
            }
        }
        Ok(())
    }

    /// The data-path entry of a real server.
    fn real_entry(&self, service_id: u32, spec: &crate::model::RealSpec) -> RealServer {
        let hop = self.next_hops.get(&spec.addr);
        let mut flags = REAL_F_IN_USE;
        if hop.is_some_and(|h| h.mac.is_some()) {
            flags |= REAL_F_RESOLVED;
        }
        RealServer {
            addr: Addr::from(spec.addr),
            port: spec.port.to_be(),
            method: spec.forward.code(),
            flags,
            mac: hop.and_then(|h| h.mac).unwrap_or_default(),
            family: crate::model::family(spec.addr),
            _pad: 0,
            ifindex: hop.map(|h| h.ifindex).unwrap_or(0),
            weight: spec.weight,
            service: service_id,
            mtu: hop.map(|h| h.mtu).unwrap_or(0),
            upper_threshold: spec.upper_threshold,
            lower_threshold: spec.lower_threshold,
            tun_type: spec.tunnel.kind.code(),
            tun_flags: spec.tunnel.csum.flags(),
            tun_port: spec.tunnel.port.to_be(),
        }
    }

    /// Publishes services, their data-path writes made in batches; a long list (a restore)
    /// is logged in one line.
    fn publish_all(&mut self, entries: &[ServiceEntry]) -> Result<()> {
        let plans = self.plan(entries)?;
        self.publish_planned(plans)
    }

    /// The scheduling table each of `entries` gets, checked to fit: every run they need is
    /// allocated, in order, from a copy of the slot allocator, so that [`Self::publish`]
    /// cannot run out of slots half way and leave some services published and others not.
    /// Nothing is written or changed.
    fn plan(&self, entries: &[ServiceEntry]) -> Result<Vec<Plan>> {
        let mut trial = self.slots.clone();
        let mut plans = Vec::with_capacity(entries.len());
        for entry in entries {
            let candidates: Vec<sched::Candidate> = entry
                .reals
                .iter()
                .filter(|real| self.real_entry(entry.id, &real.spec).flags & REAL_F_RESOLVED != 0)
                .map(|real| sched::Candidate {
                    id: real.id,
                    weight: real.spec.weight,
                    addr: real.spec.addr,
                    port: real.spec.port,
                })
                .collect();
            // `entry.reals` is in the order they were added; IPVS walks them newest first.
            let table =
                sched::build_ipvs_order(entry.spec.scheduler, entry.spec.sched_flags, &candidates);
            let reuses = self
                .published
                .get(&entry.id)
                .is_some_and(|p| p.table == table);
            if !reuses && !table.is_empty() {
                trial
                    .allocate(table.len() as u32)
                    .ok_or(DirectorError::SlotsFull)?;
            }
            plans.push(Plan {
                entry: entry.clone(),
                available: candidates.len(),
                candidates,
                table,
            });
        }
        Ok(plans)
    }

    /// Publishes what [`Self::plan`] prepared (against the allocator it was planned on).
    fn publish_planned(&mut self, plans: Vec<Plan>) -> Result<()> {
        let announce = plans.len() <= LOG_EACH_UP_TO;
        let mut writes = Writes::default();
        let count = plans.len();
        for plan in plans {
            self.publish(plan, announce, &mut writes)?;
        }
        writes.flush(&mut self.dataplane)?;
        if !announce {
            info!(services = count, "scheduling tables published");
        }
        Ok(())
    }

    /// Prepares a service, its real servers and its scheduling table for publication in
    /// `writes` (the table itself is written at once, to slots nothing points to yet);
    /// `announce` logs a new table at info level (else debug).
    fn publish(&mut self, plan: Plan, announce: bool, writes: &mut Writes) -> Result<()> {
        let Plan {
            entry,
            available,
            candidates,
            table,
        } = plan;
        writes
            .admit
            .push((filter::VIP, service_key(&entry.spec.addr).addr.fold()));
        for real in &entry.reals {
            let value = self.real_entry(entry.id, &real.spec);
            writes.reals.push((real.id, value));
            if value.method == lb_common::method::MASQ {
                writes.admit.push((filter::NAT_REAL, value.addr.fold()));
            }
        }
        let key = service_key(&entry.spec.addr);
        let previous = self.published.get(&entry.id).cloned();
        let previous_scheduler = previous.as_ref().map(|p| p.value.scheduler);
        let (offset, len) = match &previous {
            Some(p) if p.table == table => (p.value.table_offset, p.value.table_len),
            _ if table.is_empty() => (0, 0),
            _ => {
                let len = table.len() as u32;
                let offset = self.slots.allocate(len).ok_or(DirectorError::SlotsFull)?;
                self.dataplane.write_table(offset, &table)?;
                (offset, len)
            }
        };
        let (mut flags, persist_timeout, persist_mask) = match entry.spec.persistence {
            // IPv6 services keep a prefix length (IPVS's `netmask` of an IPv6 service).
            Some(p) => (SERVICE_F_PERSISTENT, p.timeout, p.netmask.to_addr()),
            None => (0, 0, Addr::ZERO),
        };
        if entry.spec.sched_flags.port {
            flags |= SERVICE_F_HASH_PORT;
        }
        if entry.spec.sched_flags.fallback {
            flags |= SERVICE_F_HASH_FALLBACK;
        }
        let value = Service {
            id: entry.id,
            scheduler: entry.spec.scheduler.code(),
            flags,
            table_offset: offset,
            table_len: len,
            persist_timeout,
            persist_mask,
        };
        let table_changed = previous.as_ref().is_none_or(|p| p.table != table);
        if previous.is_none() {
            // A new service (or a re-used id): start its counters and walk from scratch.
            writes.zero_services.push(entry.id);
            writes.zero_reals.extend(entry.reals.iter().map(|r| r.id));
        }
        // rr keeps going from where it is when real servers change (a new table is walked
        // from the same position, modulo its length); IPVS's wrr restarts its weighted walk
        // at a round that depends on where it was (`sched::WrrMark`).
        let scheduler_changed = previous_scheduler != Some(entry.spec.scheduler.code());
        let mut wrr = None;
        if entry.spec.scheduler == crate::model::Scheduler::Wrr {
            let restart = match previous.as_ref() {
                None => Some(sched::wrr_mark_ipvs_order(None, &candidates)),
                Some(_) if scheduler_changed => Some(sched::wrr_mark_init_ipvs_order(&candidates)),
                Some(Published {
                    wrr: Some(mark), ..
                }) => {
                    if mark.serves_ipvs_order(&candidates) {
                        wrr = Some(mark.clone());
                        None
                    } else {
                        let position = self.dataplane.service_position(entry.id)?;
                        Some(sched::wrr_mark_ipvs_order(
                            Some((mark, position)),
                            &candidates,
                        ))
                    }
                }
                // Taken over from a previous lbd: where IPVS's walk would be is not known;
                // a new table starts at its cycle.
                Some(_) => table_changed.then(|| sched::wrr_mark_init_ipvs_order(&candidates)),
            };
            if let Some(mark) = restart {
                writes.reset_states.push((entry.id, mark.start));
                wrr = Some(mark);
            }
        } else if table_changed && scheduler_changed {
            writes.reset_states.push((entry.id, 0));
        }
        writes.services.push((key, value));
        if let Some(p) = previous
            && p.value.table_len > 0
            && (p.value.table_offset, p.value.table_len) != (offset, len)
        {
            self.retired.push((p.value.table_offset, p.value.table_len));
        }
        if table_changed {
            let (service, scheduler) = (&entry.spec.addr, &entry.spec.scheduler);
            let reals = entry.reals.len();
            if announce {
                info!(%service, %scheduler, slots = len, reals, available, "scheduling table published");
            } else {
                debug!(%service, %scheduler, slots = len, reals, available, "scheduling table published");
            }
        }
        self.published.insert(
            entry.id,
            Published {
                key,
                value,
                table,
                wrr,
            },
        );
        Ok(())
    }

    fn unpublish(&mut self, id: u32) -> Result<()> {
        if let Some(p) = self.published.remove(&id) {
            self.dataplane.remove_service(&p.key)?;
            if p.value.table_len > 0 {
                self.retired.push((p.value.table_offset, p.value.table_len));
            }
        }
        Ok(())
    }

    fn zero(&mut self, service: Option<&ServiceAddr>, config: &Config) -> Result<()> {
        for entry in &config.services {
            if service.is_some_and(|s| *s != entry.spec.addr) {
                continue;
            }
            self.dataplane.zero_service_counters(entry.id)?;
            self.service_rates.remove(&entry.id);
            for real in &entry.reals {
                self.dataplane.zero_real_counters(real.id)?;
                self.real_rates.remove(&real.id);
            }
        }
        Ok(())
    }

    /// Looks up how to reach `addrs` (a route each, their MACs from one read of the
    /// neighbour table) and asks the kernel to resolve the unknown ones, without waiting.
    /// With `follow`, the returned [`Resolution`] hears the answers (it subscribes before
    /// anything is read, so none is missed).
    fn resolve(&mut self, addrs: &[IpAddr], follow: bool) -> Resolution {
        if addrs.is_empty() {
            return Resolution::default();
        }
        let mut resolution = Resolution::follow(follow);
        let known: HashMap<(u32, IpAddr), [u8; 6]> = match netlink::neighbours(None) {
            Ok(table) => table
                .into_iter()
                .map(|(ifindex, addr, n)| ((ifindex, addr), n.mac))
                .collect(),
            Err(e) => {
                warn!("reading the neighbour table: {e}");
                HashMap::new()
            }
        };
        let mut mtus: HashMap<u32, u32> = HashMap::new();
        let mut unknown = 0usize;
        for &addr in addrs {
            let route = match netlink::route_to(addr) {
                Ok(route) => route,
                Err(e) => {
                    warn!(%addr, "no route to real server: {e}");
                    continue;
                }
            };
            let via = route.gateway.unwrap_or(addr);
            if route.gateway.is_some() {
                warn!(%addr, gateway = %via, "real server is not directly connected; \
                      direct routing needs it on the director's LAN");
            }
            let mac = known.get(&(route.ifindex, via)).copied();
            if mac.is_none() {
                if let Err(e) = netlink::request_resolution(route.ifindex, via) {
                    warn!(%addr, "cannot request neighbour resolution: {e}");
                }
                resolution.awaits(route.ifindex, via);
                unknown += 1;
                if unknown <= LOG_EACH_UP_TO {
                    info!(%addr, "resolving the real server's MAC; it takes connections once resolved");
                }
            }
            let mtu = *mtus.entry(route.ifindex).or_insert_with(|| {
                netlink::link_by_index(route.ifindex)
                    .map(|l| l.mtu)
                    .unwrap_or(0)
            });
            self.next_hops.insert(
                addr,
                NextHop {
                    ifindex: route.ifindex,
                    mtu,
                    via,
                    mac,
                    stale: false,
                },
            );
        }
        if unknown > LOG_EACH_UP_TO {
            info!(
                real_servers = unknown,
                "resolving real servers' MACs; each takes connections once resolved"
            );
        }
        resolution
    }

    /// Takes in neighbour announcements heard by a [`Resolution`]: real servers resolved
    /// are published at once. After lost announcements the whole table is read again.
    pub fn learn(&mut self, events: &[NeighbourEvent], resolution: &mut Resolution) -> Result<()> {
        if events.contains(&NeighbourEvent::Lost) {
            self.follow_neighbours()?;
            let resolved: HashSet<(u32, IpAddr)> = self
                .next_hops
                .values()
                .filter(|h| h.mac.is_some())
                .map(|h| (h.ifindex, h.via))
                .collect();
            resolution.retain(|ifindex, via| !resolved.contains(&(ifindex, via)));
        }
        // Only resolutions: a MAC lost or changed is left to the tick, which re-resolves.
        let macs: HashMap<(u32, IpAddr), [u8; 6]> = events
            .iter()
            .filter_map(|event| match *event {
                NeighbourEvent::Changed {
                    ifindex,
                    addr,
                    neighbour: Some(n),
                } => Some(((ifindex, addr), n.mac)),
                _ => None,
            })
            .collect();
        let mut changed = HashSet::new();
        for (addr, hop) in self.next_hops.iter_mut() {
            if hop.mac.is_none()
                && let Some(&mac) = macs.get(&(hop.ifindex, hop.via))
            {
                info!(%addr, mac = %fmt_mac(&mac), "real server resolved");
                hop.mac = Some(mac);
                changed.insert(*addr);
            }
        }
        self.republish(&changed)
    }

    /// Periodic upkeep; call about once a second.
    pub fn tick(&mut self) -> Result<()> {
        for (offset, len) in self.retired.drain(..) {
            self.slots.release(offset, len);
        }
        self.follow_interfaces()?;
        self.refresh_next_hops()?;
        // A daemon that could not start (its interface missing) is tried again.
        self.sync.reconcile(&self.config.sync_daemons);
        self.sync_receive()?;
        self.sweep_connections()?;
        self.sync.send(&self.config);
        self.sweep_locality()?;
        self.estimate_rates()?;
        Ok(())
    }

    /// Attaches again to a NIC deleted and created anew (its attachment went with the old
    /// device), and forgets one that is gone. While a NIC that came back settles, its
    /// addresses are read again every tick.
    fn follow_interfaces(&mut self) -> Result<()> {
        for change in interfaces::follow(&mut self.interfaces, interfaces::index_of) {
            match change {
                interfaces::Change::Gone { name, old } => {
                    warn!(iface = %name, ifindex = old,
                          "interface gone: no traffic through it until it is back, then lbd \
                           attaches to it again");
                    self.dataplane.forget_iface(old)?;
                }
                interfaces::Change::Back { name, old, new } => {
                    match self.reattach(&name, old) {
                        Ok(how) => {
                            info!(iface = %name, ifindex = new, mode = how,
                                  "interface back: XDP program attached again");
                            self.settling_until = Some(Instant::now() + SETTLING);
                        }
                        Err(e) => {
                            warn!(iface = %name, "interface back, attaching failed (tried again \
                                  next second): {e}");
                            // Seen as gone, so the next look tries again.
                            if let Some(i) = self.interfaces.iter_mut().find(|i| i.name == name) {
                                i.ifindex = 0;
                            }
                        }
                    }
                }
            }
        }
        if self.settling_until.is_some_and(|t| Instant::now() >= t) {
            self.settling_until = None;
        }
        if self.settling_until.is_some() {
            for iface in &self.interfaces {
                if iface.ifindex == 0 {
                    continue;
                }
                if let Ok(link) = netlink::link_by_name(&iface.name)
                    && link.index == iface.ifindex
                {
                    self.dataplane.set_iface(link.index, iface_of(&link))?;
                }
            }
        }
        Ok(())
    }

    /// A sync backup's received connections and templates, put in the data path's tables
    /// (call often: lbd does every 200 ms).
    pub fn sync_receive(&mut self) -> Result<()> {
        let now = coarse_now_ns();
        let received = self.sync.receive(&self.config, now);
        if received.messages == 0 {
            return Ok(());
        }
        self.sync.received(&received.entries, now);
        let (mut conns, mut templates) = (0, Vec::new());
        for entry in &received.entries {
            match entry {
                crate::sync::backup::Entry::Conn { key, conn, reply } => {
                    self.dataplane.put_connection(key, conn, reply.as_ref())?;
                    conns += 1;
                }
                crate::sync::backup::Entry::Template { key, template } => {
                    templates.push((*key, *template));
                }
            }
        }
        if !templates.is_empty() {
            let (keys, values): (Vec<_>, Vec<_>) = templates.iter().copied().unzip();
            self.dataplane.set_persistence_templates(&keys, &values)?;
        }
        let skipped: usize = received.skipped.values().sum();
        debug!(
            messages = received.messages,
            connections = conns,
            templates = templates.len(),
            skipped,
            other_syncid = received.other_syncid,
            bad = received.bad,
            "sync backup applied"
        );
        if skipped > 0 {
            debug!(skipped = ?received.skipped, "sync backup: entries not taken");
        }
        Ok(())
    }

    fn reattach(&mut self, name: &str, old: u32) -> Result<&'static str> {
        let link = netlink::link_by_name(name)?;
        self.dataplane.set_iface(link.index, iface_of(&link))?;
        Ok(self.dataplane.reattach(name, old, self.attach_mode)?)
    }

    /// Follows neighbour-table changes (a real server's MAC resolved, changed or lost).
    fn refresh_next_hops(&mut self) -> Result<()> {
        if self.last_route_refresh.elapsed() > Duration::from_secs(30)
            || self.settling_until.is_some()
        {
            // Routes rarely change; re-learn them now and then (new addresses are looked up
            // when added).
            self.last_route_refresh = Instant::now();
            let before = std::mem::take(&mut self.next_hops);
            let addrs: Vec<IpAddr> = before.keys().copied().collect();
            self.resolve(&addrs, false);
            let mut changed = HashSet::new();
            for (addr, old) in &before {
                let Some(new) = self.next_hops.get_mut(addr) else {
                    // No route any more (logged): keep what the data path has.
                    self.next_hops.insert(*addr, *old);
                    continue;
                };
                // A neighbour entry the kernel let go (nothing of its own uses it: DR frames
                // leave by XDP) is asked for again; meanwhile the last known MAC stands.
                if new.mac.is_none() && (new.ifindex, new.via) == (old.ifindex, old.via) {
                    new.mac = old.mac;
                    new.stale = old.mac.is_some();
                }
                if new.published() != old.published() {
                    info!(%addr, ifindex = new.ifindex, via = %new.via, mtu = new.mtu,
                          "real server's next hop changed");
                    changed.insert(*addr);
                }
            }
            self.republish(&changed)?;
        }
        self.follow_neighbours()
    }

    /// Reads the neighbour table and publishes what changed for real servers; asks the kernel
    /// again for those still unknown.
    fn follow_neighbours(&mut self) -> Result<()> {
        let table = netlink::neighbours(None)?;
        let known: HashMap<(u32, IpAddr), [u8; 6]> = table
            .into_iter()
            .map(|(ifindex, addr, n)| ((ifindex, addr), n.mac))
            .collect();
        let mut changed = HashSet::new();
        for (addr, hop) in self.next_hops.iter_mut() {
            let mac = known.get(&(hop.ifindex, hop.via)).copied();
            match (hop.mac, mac) {
                (None, Some(m)) => info!(%addr, mac = %fmt_mac(&m), "real server resolved"),
                (Some(old), Some(m)) if old != m => {
                    info!(%addr, mac = %fmt_mac(&m), "real server's MAC changed")
                }
                (Some(old), None) => {
                    // The kernel dropped or failed its entry (the kernel itself never sends to
                    // a DR real server, so it lets such entries go): ask again, and keep
                    // forwarding to the last known MAC meanwhile rather than drop the real
                    // server's connections. A real server that is really gone is the health
                    // checks' to take out.
                    if !hop.stale {
                        warn!(%addr, mac = %fmt_mac(&old),
                              "real server's MAC no longer in the neighbour table; re-resolving, \
                               the last known MAC stands meanwhile");
                    }
                    hop.stale = true;
                    if let Err(e) = netlink::request_resolution(hop.ifindex, hop.via) {
                        warn!(%addr, "cannot request neighbour resolution: {e}");
                    }
                    continue;
                }
                _ => {}
            }
            hop.stale = false;
            if mac != hop.mac {
                hop.mac = mac;
                changed.insert(*addr);
            }
            if hop.mac.is_none()
                && let Err(e) = netlink::request_resolution(hop.ifindex, hop.via)
            {
                warn!(%addr, "cannot request neighbour resolution: {e}");
            }
        }
        self.republish(&changed)
    }

    /// Publishes again the services (and removed real servers) whose next hops changed.
    fn republish(&mut self, changed: &HashSet<IpAddr>) -> Result<()> {
        if changed.is_empty() {
            return Ok(());
        }
        let affected: Vec<ServiceEntry> = self
            .config
            .services
            .iter()
            .filter(|entry| entry.reals.iter().any(|r| changed.contains(&r.spec.addr)))
            .cloned()
            .collect();
        self.publish_all(&affected)?;
        // Connections to removed real servers go on: they follow the new MAC too.
        let trashed: Vec<TrashedReal> = self
            .config
            .trash
            .iter()
            .filter(|t| changed.contains(&t.spec.addr))
            .cloned()
            .collect();
        self.mark_removed(&trashed)?;
        Ok(())
    }

    /// Reads at most `entries` connection-table entries per sweep tick (tests use a small
    /// figure to have passes over many ticks).
    pub fn set_sweep_budget(&mut self, entries: usize) {
        self.sweep_budget = entries.max(1);
    }

    /// Expires idle connections by IPVS's per-state timeouts, counts the half-open table's
    /// connections per real server, keeps persistence templates alive while their client has
    /// connections, expires the others, and frees removed real servers no connection uses.
    ///
    /// The maps are read in batches, into buffers kept from tick to tick. A connection table of
    /// more than [`SWEEP_BUDGET`] entries is read a part per tick (the kernel's walk costs
    /// about half a microsecond an entry at a million): a connection then expires up to a pass
    /// later than its timeout. Its live counts need no pass: they are exact as they go
    /// (`lb_common::RealConns`). The half-open table, a fraction of the size, is read whole
    /// every tick.
    fn sweep_connections(&mut self) -> Result<()> {
        if self.pass.cursor.at_start() {
            self.sweep.begin_pass();
        }
        let now = coarse_now_ns();
        self.sweep.tick(now);
        let (rules, sweep, sync) = (&self.rules, &mut self.sweep, &mut self.sync);
        let timeouts = self.config.timeouts;
        let (_, ended) = self.dataplane.read_connections_on(
            &mut self.readers.conns,
            &mut self.pass.cursor,
            self.sweep_budget,
            |keys, conns| {
                for (key, conn) in keys.iter().zip(conns) {
                    sweep.connection(rules, key, conn);
                    sync.connection(key, conn, now, sweep::tcp_timeout(conn.state, &timeouts));
                }
            },
        )?;
        if ended {
            self.sync.end_connections_pass();
            let dataplane = &self.dataplane;
            self.sweep
                .end_connections(|key| dataplane.has_connection(key));
        }
        if !self.sweep.expired.is_empty() {
            self.dataplane
                .expire_connections(Table::Conns, &self.sweep.expired)?;
        }
        self.sweep_half_open()?;
        if !ended {
            return Ok(());
        }
        self.sweep_templates()?;
        self.sweep.end_pass();

        let sweep = &self.sweep;
        let freed = self.config.purge_trash(|id| {
            let (c, h) = (sweep.counts(id), sweep.half_open(id));
            c.active + c.inactive + c.persistent + h.active + h.inactive > 0
        });
        if !freed.is_empty() {
            for &id in &freed {
                self.dataplane.set_real(id, &RealServer::default())?;
            }
            let zeroes = vec![RealConns::default(); freed.len()];
            self.dataplane.set_all_real_conns(&freed, &zeroes)?;
            state::save(&self.state_path, &self.config)?;
        }
        Ok(())
    }

    /// The half-open table, read whole: its expired entries go, and a fresh count of the rest
    /// replaces the data path's running count, which misses what the LRU evicted (a flood of
    /// SYNs evicts thousands a second).
    fn sweep_half_open(&mut self) -> Result<()> {
        self.sweep.begin_half_open();
        let (rules, sweep) = (&self.rules, &mut self.sweep);
        self.dataplane.read_connections(
            Table::HalfOpen,
            &mut self.readers.half_open,
            |keys, conns| {
                for (key, conn) in keys.iter().zip(conns) {
                    sweep.half_open_entry(rules, key, conn);
                }
            },
        )?;
        if !self.sweep.half_open_expired.is_empty() {
            self.dataplane
                .expire_connections(Table::HalfOpen, &self.sweep.half_open_expired)?;
        }
        let live = self.dataplane.live_counts();
        let configured = self
            .config
            .services
            .iter()
            .flat_map(|s| s.reals.iter().map(|r| r.id))
            .chain(self.config.trash.iter().map(|t| t.id));
        for id in configured {
            let c = self.sweep.half_open(id);
            live.set_half_open(id, i64::from(c.active), i64::from(c.inactive));
        }
        Ok(())
    }

    /// Persistence templates, at the end of a pass: as in IPVS, one outlives its timeout
    /// while connections it placed remain.
    fn sweep_templates(&mut self) -> Result<()> {
        let (mut refresh_keys, mut refreshed, mut expired) = (Vec::new(), Vec::new(), Vec::new());
        let now = coarse_now_ns();
        let (rules, sweep, sync) = (&self.rules, &mut self.sweep, &mut self.sync);
        let persistence: HashMap<u32, u64> = self
            .config
            .services
            .iter()
            .filter_map(|s| Some((s.id, u64::from(s.spec.persistence?.timeout))))
            .collect();
        self.dataplane
            .read_templates(&mut self.readers.templates, |keys, templates| {
                for (key, template) in keys.iter().zip(templates) {
                    if let Some(&timeout) = persistence.get(&key.service) {
                        sync.template(key, template, now, timeout);
                    }
                    match sweep.template(rules, key, template) {
                        Template::Keep => {}
                        Template::Refresh => {
                            refresh_keys.push(*key);
                            refreshed.push(Persist {
                                last_seen_ns: now,
                                ..*template
                            });
                        }
                        Template::Expire => expired.push(*key),
                    }
                }
            })?;
        self.sync.end_templates_pass();
        self.dataplane
            .set_persistence_templates(&refresh_keys, &refreshed)?;
        if !expired.is_empty() {
            self.dataplane.remove_persistence_templates(&expired)?;
        }
        Ok(())
    }

    /// Moves the rate estimators on, every [`Estimator::INTERVAL`].
    fn estimate_rates(&mut self) -> Result<()> {
        let elapsed = self.last_estimate.elapsed();
        if elapsed < Estimator::INTERVAL {
            return Ok(());
        }
        self.last_estimate = Instant::now();
        let services = self.dataplane.all_service_counters(self.limits.services)?;
        let reals = self.dataplane.all_real_counters(self.limits.reals)?;
        let of = |all: &[Counters], id: u32| all.get(id as usize).copied().unwrap_or_default();
        for entry in &self.config.services {
            estimate(
                &mut self.service_rates,
                entry.id,
                of(&services, entry.id),
                elapsed,
            );
            for real in &entry.reals {
                estimate(&mut self.real_rates, real.id, of(&reals, real.id), elapsed);
            }
        }
        Ok(())
    }

    /// The configuration with live counters, as `-L` shows it.
    pub fn snapshot(&self) -> Result<Snapshot> {
        // The data path's live counts, as IPVS lists its own: they follow every connection
        // as it opens and changes state (connections past their timeout count until the sweep
        // expires them). Walking the connection table instead took seconds at a million.
        let live = self.dataplane.all_real_conns(self.limits.reals)?;
        let service_counters = self.dataplane.all_service_counters(self.limits.services)?;
        let real_counters = self.dataplane.all_real_counters(self.limits.reals)?;
        let of = |all: &[Counters], id: u32| all.get(id as usize).copied().unwrap_or_default();
        let mut services = Vec::with_capacity(self.config.services.len());
        for entry in &self.config.services {
            let mut reals = Vec::with_capacity(entry.reals.len());
            for real in &entry.reals {
                let counts = live.get(real.id as usize).copied().unwrap_or_default();
                let count = |n: i64| u32::try_from(n.max(0)).unwrap_or(u32::MAX);
                reals.push(RealStatus {
                    spec: real.spec.clone(),
                    active_conns: count(counts.total_active()),
                    inactive_conns: count(counts.total_inactive()),
                    persistent_conns: self.sweep.counts(real.id).persistent,
                    stats: stats_of(of(&real_counters, real.id)),
                    rates: self
                        .real_rates
                        .get(&real.id)
                        .map(|e| e.rates)
                        .unwrap_or_default(),
                });
            }
            services.push(ServiceStatus {
                spec: entry.spec.clone(),
                stats: stats_of(of(&service_counters, entry.id)),
                rates: self
                    .service_rates
                    .get(&entry.id)
                    .map(|e| e.rates)
                    .unwrap_or_default(),
                reals,
            });
        }
        Ok(Snapshot {
            conn_table_size: self.conn_table_size,
            services,
            timeouts: self.config.timeouts,
        })
    }

    /// The connection table, as `-L -c` shows it, persistence templates included (state
    /// `NONE`, client port 0, as IPVS lists them).
    pub fn connections(&self) -> Vec<ConnectionStatus> {
        let now = coarse_now_ns();
        let services: HashMap<u32, &ServiceEntry> =
            self.config.services.iter().map(|s| (s.id, s)).collect();
        let reals: HashMap<u32, &crate::model::RealSpec> = self
            .config
            .services
            .iter()
            .flat_map(|s| s.reals.iter().map(|r| (r.id, &r.spec)))
            .chain(self.config.trash.iter().map(|t| (t.id, &t.spec)))
            .collect();
        let timeouts = self.config.timeouts;
        let mut list = Vec::new();
        // A connection moving from the half-open table to the connection table may be read in
        // both: listed once.
        let mut listed = HashSet::new();
        for table in [Table::Conns, Table::HalfOpen] {
            let read = self.dataplane.read_connections(
                table,
                &mut Dataplane::connection_reader(),
                |keys, conns| {
                    for (key, conn) in keys.iter().zip(conns) {
                        // (One over its timeout is gone for the data path already.)
                        if conn.flags & CONN_F_REPLY != 0
                            || sweep::expired(conn, now, &timeouts)
                            || !listed.insert(*key)
                        {
                            continue;
                        }
                        let (Some(service), Some(real)) =
                            (services.get(&conn.service), reals.get(&conn.real))
                        else {
                            continue;
                        };
                        let idle = sweep::idle_secs(now, conn.last_seen_ns);
                        let timeout = sweep::tcp_timeout(conn.state, &timeouts);
                        list.push(ConnectionStatus {
                            protocol: service.spec.addr.protocol,
                            expires_in: timeout.saturating_sub(idle) as u32,
                            state: tcp_state::name(conn.state).to_owned(),
                            client: (key.saddr.to_ip(key.family), u16::from_be(key.sport)),
                            virtual_addr: (key.daddr.to_ip(key.family), u16::from_be(key.dport)),
                            real: (real.addr, real.port),
                        });
                    }
                },
            );
            if let Err(e) = read {
                warn!("listing connections: {e}");
            }
        }
        let templates = self.dataplane.persistence_templates().unwrap_or_else(|e| {
            warn!("listing persistence templates: {e}");
            Vec::new()
        });
        for (key, template) in templates {
            let Some(service) = services.get(&key.service) else {
                continue;
            };
            let (Some(real), Some(p)) = (reals.get(&template.real), service.spec.persistence)
            else {
                continue;
            };
            let idle = sweep::idle_secs(now, template.last_seen_ns);
            list.push(ConnectionStatus {
                protocol: service.spec.addr.protocol,
                expires_in: u64::from(p.timeout).saturating_sub(idle) as u32,
                state: "NONE".to_owned(),
                // The service tells the template's family.
                client: (key.client.to_ip(service.spec.addr.family()), 0),
                virtual_addr: (service.spec.addr.addr, service.spec.addr.port),
                real: (real.addr, real.port),
            });
        }
        list
    }

    /// The running configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn timeouts(&self) -> Timeouts {
        self.config.timeouts
    }

    pub fn sysctls(&self) -> crate::sysctl::Sysctls {
        self.config.sysctls
    }

    /// Everything the metrics endpoint shows.
    pub fn metrics_input(&self) -> crate::metrics::MetricsInput {
        crate::metrics::MetricsInput {
            snapshot: self.snapshot().unwrap_or_default(),
            events: self.events().unwrap_or_default(),
            health: self
                .health
                .iter()
                .map(|(key, &up)| crate::metrics::HealthState {
                    service: key.service,
                    real: key.real,
                    port: key.port,
                    up,
                })
                .collect(),
            build: crate::metrics::BuildInfo::current(),
        }
    }

    /// Records the health-check verdict of a real server (for listings and metrics).
    pub fn set_health(&mut self, key: crate::health::TargetKey, up: bool) {
        self.health.insert(key, up);
    }

    /// Forgets health verdicts of real servers no longer checked.
    pub fn retain_health(&mut self, keep: impl Fn(&crate::health::TargetKey) -> bool) {
        self.health.retain(|k, _| keep(k));
    }

    /// Data-path event counters by reason.
    pub fn events(&self) -> Result<Vec<(Stat, u64)>> {
        Ok(self.dataplane.event_counters()?)
    }

    /// Attaches the data path to an interface (after the configuration is in place, so the
    /// first packets already find their services).
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<&'static str> {
        let how = self.dataplane.attach(iface, mode)?;
        self.attach_mode = mode;
        self.interfaces.push(interfaces::Attached {
            name: iface.to_owned(),
            ifindex: interfaces::index_of(iface),
        });
        Ok(how)
    }

    /// Once attached everywhere: forgets what a previous lbd left for its own programs.
    pub fn attached_everywhere(&mut self) -> Result<()> {
        Ok(self.dataplane.retire_previous_stages()?)
    }

    /// Stops: detaches and frees the data path, or leaves it running for the next lbd.
    pub fn shutdown(&mut self, on_exit: crate::dataplane::OnExit) -> Result<()> {
        Ok(self.dataplane.finish(on_exit)?)
    }
}

fn fmt_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
