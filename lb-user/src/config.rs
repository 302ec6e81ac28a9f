//! The running configuration and the rules for changing it, as IPVS enforces them.
//!
//! Pure: applying commands here touches nothing outside this value. `lbd` applies a batch to
//! a copy and only adopts it when every command succeeded, so a bad request changes nothing.
//! Errors print as ipvsadm prints the kernel's refusals (libipvs `ipvs_strerror`).

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
};

use lb_common::{MAX_REALS, MAX_SERVICES};
use serde::{Deserialize, Serialize};

use crate::{
    ids::IdPool,
    model::{
        Command, Forward, MAX_TIMEOUT, MAX_WEIGHT, Netmask, RealSpec, ServiceAddr, ServiceSpec,
        Timeouts,
    },
};

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("Service already exists")]
    ServiceExists,
    /// `-E`, `-D`, `-Z` on an unknown service.
    #[error("No such service")]
    NoSuchService,
    /// `-a`, `-e`, `-d` on an unknown service.
    #[error("Service not defined")]
    ServiceNotDefined,
    #[error("Destination already exists")]
    DestinationExists,
    #[error("No such destination")]
    NoSuchDestination,
    /// A lower threshold above the upper one (`-y` above `-x`; the kernel's ERANGE, which
    /// ipvsadm prints as strerror's text).
    #[error("Numerical result out of range")]
    ThresholdRange,
    /// Out of service or real-server ids (IPVS would have run out of memory).
    #[error("Memory allocation problem")]
    Full,
    #[error("Invalid operation: {0}")]
    Invalid(String),
    /// A real server of the other family than its service's, other than a tunnel (the
    /// kernel's EINVAL, in libipvs' words).
    #[error("Invalid operation.  Possibly wrong module version, address not unicast, ...")]
    MixedFamily,
    /// `--start-daemon` with a group that is not multicast or a bad interface name (the
    /// kernel's EINVAL, in libipvs' words).
    #[error("Invalid operation.  Possibly wrong module version, address not unicast, ...")]
    InvalidDaemon,
    /// `--start-daemon` of a role that runs (the kernel's EEXIST, in libipvs' words).
    #[error("Daemon has already run")]
    DaemonRunning,
    /// `--stop-daemon` of a role that does not run (ESRCH).
    #[error("No daemon is running")]
    NoDaemon,
    /// `--start-daemon` on an interface that does not exist (ENODEV, strerror's text).
    #[error("No such device")]
    NoSuchDevice,
}

/// A real server of a service, with its data-path id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealEntry {
    pub id: u32,
    pub spec: RealSpec,
}

/// A virtual service, with its data-path id and real servers in the order they were added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub id: u32,
    pub spec: ServiceSpec,
    pub reals: Vec<RealEntry>,
}

/// A real server that was deleted (or whose service was) while connections may still use it.
/// As in IPVS, those connections keep going to it until they end; its id is reused only
/// once no connection refers to it, and re-adding it revives it with the same id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrashedReal {
    pub id: u32,
    pub service: ServiceAddr,
    pub service_id: u32,
    pub spec: RealSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub services: Vec<ServiceEntry>,
    #[serde(default)]
    pub trash: Vec<TrashedReal>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// IPVS's sysctls that apply (`lbadm --sysctl`).
    #[serde(default)]
    pub sysctls: crate::sysctl::Sysctls,
    /// The services a keepalived.conf (`lbd --config`) put in place, kept with the rest so
    /// that one removed from the file while lbd was down is removed at the next start.
    #[serde(default)]
    pub keepalived: Vec<ServiceAddr>,
    /// The connection synchronisation daemons (`--start-daemon`), with the settings they run
    /// with.
    #[serde(default, skip_serializing_if = "crate::sync::SyncDaemons::is_empty")]
    pub sync_daemons: crate::sync::SyncDaemons,
}

impl Config {
    /// Applies `commands` in order, all or nothing. What a command looks up (a service by
    /// address, a free id, a trashed real server) is indexed once for the whole batch, so a
    /// batch costs time linear in its length and in the configuration's size (a restore of
    /// 10,000 services used to scan every id in use for each one it added).
    pub fn apply_all(&self, commands: &[Command]) -> Result<Config, ConfigError> {
        let mut edit = Edit::new(self.clone());
        for command in commands {
            edit.apply(command)?;
        }
        Ok(edit.finish())
    }

    pub fn service(&self, addr: &ServiceAddr) -> Option<&ServiceEntry> {
        self.services.iter().find(|s| s.spec.addr == *addr)
    }

    /// Forgets trashed real servers no connection uses any more; returns their ids.
    pub fn purge_trash(&mut self, in_use: impl Fn(u32) -> bool) -> Vec<u32> {
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut self.trash)
            .into_iter()
            .partition(|t| in_use(t.id));
        self.trash = keep;
        gone.into_iter().map(|t| t.id).collect()
    }
}

/// Where a trashed real server is found again when re-added: its service and address.
type Dest = (ServiceAddr, IpAddr, u16);

/// A configuration being changed by a batch of commands, with the lookups the commands need
/// kept up to date as they go. Services and trashed real servers that leave during the batch
/// are left as `None` until [`Edit::finish`], so positions stay valid and order is kept.
struct Edit {
    /// Everything but the services and the trash, which are below.
    config: Config,
    services: Vec<Option<ServiceEntry>>,
    /// Position in `services` by address.
    by_addr: HashMap<ServiceAddr, usize>,
    trash: Vec<Option<TrashedReal>>,
    /// Positions in `trash` by destination, oldest first (only those still there).
    trash_by_dest: HashMap<Dest, Vec<usize>>,
    service_ids: IdPool,
    /// Id 0 is reserved: an empty scheduling slot.
    real_ids: IdPool,
    /// Positions of real servers in their service's list by destination, for the services a
    /// command has looked into (built on first use, so a batch of `-a`/`-e` on one service
    /// costs time linear in its length, not its length times the service's size). A
    /// service's index is dropped when a deletion shifts its list.
    reals_by_dest: HashMap<usize, HashMap<(IpAddr, u16), usize>>,
}

impl Edit {
    fn new(mut config: Config) -> Self {
        let services: Vec<Option<ServiceEntry>> = std::mem::take(&mut config.services)
            .into_iter()
            .map(Some)
            .collect();
        let trash = std::mem::take(&mut config.trash);
        let mut edit = Edit {
            config,
            by_addr: HashMap::with_capacity(services.len()),
            services: Vec::with_capacity(services.len()),
            trash: Vec::with_capacity(trash.len()),
            trash_by_dest: HashMap::new(),
            service_ids: IdPool::new(0, MAX_SERVICES),
            real_ids: IdPool::new(1, MAX_REALS),
            reals_by_dest: HashMap::new(),
        };
        for entry in services.into_iter().flatten() {
            edit.service_ids.insert(entry.id);
            for real in &entry.reals {
                edit.real_ids.insert(real.id);
            }
            edit.by_addr.insert(entry.spec.addr, edit.services.len());
            edit.services.push(Some(entry));
        }
        for trashed in trash {
            edit.real_ids.insert(trashed.id);
            edit.push_trash(trashed);
        }
        edit
    }

    fn finish(mut self) -> Config {
        self.config.services = self.services.into_iter().flatten().collect();
        self.config.trash = self.trash.into_iter().flatten().collect();
        self.config
    }

    fn service(&self, addr: &ServiceAddr) -> Option<&ServiceEntry> {
        self.services[*self.by_addr.get(addr)?].as_ref()
    }

    fn service_mut(&mut self, addr: &ServiceAddr) -> Option<&mut ServiceEntry> {
        self.services[*self.by_addr.get(addr)?].as_mut()
    }

    /// The position of the real server `addr:port` in the list of the service at `index`.
    fn real_position(&mut self, index: usize, addr: IpAddr, port: u16) -> Option<usize> {
        let services = &self.services;
        self.reals_by_dest
            .entry(index)
            .or_insert_with(|| {
                services[index]
                    .iter()
                    .flat_map(|s| s.reals.iter().enumerate())
                    .map(|(at, r)| ((r.spec.addr, r.spec.port), at))
                    .collect()
            })
            .get(&(addr, port))
            .copied()
    }

    /// Applies one command.
    fn apply(&mut self, command: &Command) -> Result<(), ConfigError> {
        check_ranges(command)?;
        match command {
            Command::AddService { service } => {
                if self.service(&service.addr).is_some() {
                    return Err(ConfigError::ServiceExists);
                }
                let id = self.service_ids.take_lowest().ok_or(ConfigError::Full)?;
                self.by_addr.insert(service.addr, self.services.len());
                self.services.push(Some(ServiceEntry {
                    id,
                    spec: service.clone(),
                    reals: Vec::new(),
                }));
            }
            Command::EditService { service } => {
                let entry = self
                    .service_mut(&service.addr)
                    .ok_or(ConfigError::NoSuchService)?;
                entry.spec = service.clone();
            }
            Command::DeleteService { service } => {
                let index = self
                    .by_addr
                    .remove(service)
                    .ok_or(ConfigError::NoSuchService)?;
                let entry = self.services[index].take().expect("indexed services exist");
                self.reals_by_dest.remove(&index);
                self.service_ids.release(entry.id);
                self.trash_reals(&entry, entry.reals.clone());
            }
            Command::AddReal { service, real } => {
                let real = normalise(service, real);
                if self.service(service).is_some() {
                    check_family(service, &real)?;
                }
                let revived = self.take_from_trash(service, real.addr, real.port);
                let id = match revived {
                    Some(id) => id,
                    None => self.real_ids.take_lowest().ok_or(ConfigError::Full)?,
                };
                let index = *self
                    .by_addr
                    .get(service)
                    .ok_or(ConfigError::ServiceNotDefined)?;
                // ip_vs_add_dest(): before looking for the destination.
                if real.lower_threshold > real.upper_threshold {
                    return Err(ConfigError::ThresholdRange);
                }
                if self.real_position(index, real.addr, real.port).is_some() {
                    return Err(ConfigError::DestinationExists);
                }
                let entry = self.services[index]
                    .as_mut()
                    .expect("indexed services exist");
                let at = entry.reals.len();
                self.reals_by_dest
                    .get_mut(&index)
                    .expect("indexed by real_position")
                    .insert((real.addr, real.port), at);
                entry.reals.push(RealEntry { id, spec: real });
            }
            Command::EditReal { service, real } => {
                let real = normalise(service, real);
                let index = *self
                    .by_addr
                    .get(service)
                    .ok_or(ConfigError::ServiceNotDefined)?;
                check_family(service, &real)?;
                // ip_vs_edit_dest(): before looking for the destination.
                if real.lower_threshold > real.upper_threshold {
                    return Err(ConfigError::ThresholdRange);
                }
                let at = self
                    .real_position(index, real.addr, real.port)
                    .ok_or(ConfigError::NoSuchDestination)?;
                self.services[index]
                    .as_mut()
                    .expect("indexed services exist")
                    .reals[at]
                    .spec = real;
            }
            Command::DeleteReal {
                service,
                addr,
                port,
            } => {
                let index = *self
                    .by_addr
                    .get(service)
                    .ok_or(ConfigError::ServiceNotDefined)?;
                let at = self
                    .real_position(index, *addr, *port)
                    .ok_or(ConfigError::NoSuchDestination)?;
                // The list shifts (its order is the listing's): its index goes.
                self.reals_by_dest.remove(&index);
                let entry = self.services[index]
                    .as_mut()
                    .expect("indexed services exist");
                let removed = entry.reals.remove(at);
                let (id, spec) = (entry.id, entry.spec.addr);
                self.push_trash(TrashedReal {
                    id: removed.id,
                    service: spec,
                    service_id: id,
                    spec: removed.spec,
                });
            }
            Command::Clear => {
                self.by_addr.clear();
                // Positions start again from 0.
                self.reals_by_dest.clear();
                for entry in std::mem::take(&mut self.services).into_iter().flatten() {
                    self.service_ids.release(entry.id);
                    let reals = entry.reals.clone();
                    self.trash_reals(&entry, reals);
                }
            }
            Command::Zero { service } => {
                if let Some(service) = service
                    && self.service(service).is_none()
                {
                    return Err(ConfigError::NoSuchService);
                }
            }
            Command::SetTimeouts { timeouts } => {
                let keep = |new: u32, old: u32| if new == 0 { old } else { new };
                let old = self.config.timeouts;
                self.config.timeouts = Timeouts {
                    tcp: keep(timeouts.tcp, old.tcp),
                    tcp_fin: keep(timeouts.tcp_fin, old.tcp_fin),
                    udp: keep(timeouts.udp, old.udp),
                };
            }
            Command::SetSysctl { name, value } => self.config.sysctls.set(*name, *value),
            Command::StartDaemon { daemon } => {
                let slot = self.config.sync_daemons.slot(daemon.role);
                if slot.is_some() {
                    return Err(ConfigError::DaemonRunning);
                }
                *slot = Some(daemon.clone());
            }
            Command::StopDaemon { role } => {
                if self.config.sync_daemons.slot(*role).take().is_none() {
                    return Err(ConfigError::NoDaemon);
                }
            }
        }
        Ok(())
    }

    fn push_trash(&mut self, trashed: TrashedReal) {
        self.trash_by_dest
            .entry((trashed.service, trashed.spec.addr, trashed.spec.port))
            .or_default()
            .push(self.trash.len());
        self.trash.push(Some(trashed));
    }

    fn trash_reals(&mut self, service: &ServiceEntry, reals: Vec<RealEntry>) {
        for r in reals {
            self.push_trash(TrashedReal {
                id: r.id,
                service: service.spec.addr,
                service_id: service.id,
                spec: r.spec,
            });
        }
    }

    /// The id of the oldest trashed real server at this destination, taken out of the trash,
    /// if it belonged to the live service of that address (same id, so the data path's view
    /// agrees); `None` otherwise.
    fn take_from_trash(&mut self, service: &ServiceAddr, addr: IpAddr, port: u16) -> Option<u32> {
        let positions = self.trash_by_dest.get(&(*service, addr, port))?;
        let &oldest = positions.first()?;
        let service_id = self.service(service)?.id;
        if self.trash[oldest].as_ref().map(|t| t.service_id) != Some(service_id) {
            return None;
        }
        if let Some(positions) = self.trash_by_dest.get_mut(&(*service, addr, port)) {
            positions.remove(0);
        }
        self.trash[oldest].take().map(|t| t.id)
    }
}

/// IPVS (since Linux 3.18) forwards to a real server of the other family than its service's
/// only through a tunnel (`ip_vs_genl_set_cmd` refuses the rest with EINVAL).
/// The ranges the front ends check (ipvsadm's syntax, keepalived.conf), checked again here:
/// a request on the control socket or a state file may carry anything its types hold.
fn check_ranges(command: &Command) -> Result<(), ConfigError> {
    let invalid = |what: String| Err(ConfigError::Invalid(what));
    match command {
        Command::AddService { service } | Command::EditService { service } => {
            if let Some(p) = &service.persistence {
                if !(1..=MAX_TIMEOUT).contains(&p.timeout) {
                    return invalid(format!(
                        "persistence timeout {} is not in 1..={MAX_TIMEOUT}",
                        p.timeout
                    ));
                }
                if let Netmask::V6(len) = p.netmask
                    && len > 128
                {
                    return invalid(format!("persistence prefix length {len} is over 128"));
                }
            }
        }
        Command::AddReal { real, .. } | Command::EditReal { real, .. }
            if real.weight > MAX_WEIGHT =>
        {
            return invalid(format!("weight {} is over {MAX_WEIGHT}", real.weight));
        }
        Command::SetTimeouts { timeouts } => {
            for t in [timeouts.tcp, timeouts.tcp_fin, timeouts.udp] {
                if t > MAX_TIMEOUT {
                    return invalid(format!("timeout {t} is over {MAX_TIMEOUT}"));
                }
            }
        }
        // The kernel's netlink checks (`ip_vs_genl_new_daemon`): EINVAL.
        Command::StartDaemon { daemon }
            if daemon.mcast_group.is_some_and(|g| !g.is_multicast())
                || daemon.mcast_ifn.is_empty()
                || daemon.mcast_ifn.len() >= 16 =>
        {
            return Err(ConfigError::InvalidDaemon);
        }
        _ => {}
    }
    Ok(())
}

fn check_family(service: &ServiceAddr, real: &RealSpec) -> Result<(), ConfigError> {
    if service.addr.is_ipv4() != real.addr.is_ipv4() && real.forward != Forward::Tunnel {
        return Err(ConfigError::MixedFamily);
    }
    Ok(())
}

/// ipvsadm's rule: with direct routing and tunnelling the real server's port is the
/// service's (the packet is not rewritten, so it cannot be anything else).
fn normalise(service: &ServiceAddr, real: &RealSpec) -> RealSpec {
    let mut real = real.clone();
    if real.forward != Forward::Masq && service.port != 0 {
        real.port = service.port;
    }
    real
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Protocol, Scheduler};
    use std::net::Ipv4Addr;

    fn svc(port: u16) -> ServiceAddr {
        ServiceAddr {
            protocol: Protocol::Tcp,
            addr: Ipv4Addr::new(192, 168, 1, 99).into(),
            port,
        }
    }

    fn spec(port: u16, scheduler: Scheduler) -> ServiceSpec {
        ServiceSpec {
            addr: svc(port),
            scheduler,
            persistence: None,
            sched_flags: Default::default(),
        }
    }

    fn real(last: u8, forward: Forward, weight: u32) -> RealSpec {
        RealSpec {
            addr: Ipv4Addr::new(192, 168, 1, last).into(),
            port: 80,
            forward,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Default::default(),
        }
    }

    fn add_service(port: u16) -> Command {
        Command::AddService {
            service: spec(port, Scheduler::Rr),
        }
    }

    fn add_real(port: u16, last: u8) -> Command {
        Command::AddReal {
            service: svc(port),
            real: real(last, Forward::Route, 1),
        }
    }

    /// The real-server index a batch keeps is only a shortcut: a long batch of adds, edits,
    /// deletes, service deletions and clears gives the same configuration (real servers in
    /// the same order, the same ids, the same errors) as those commands applied one at a time.
    #[test]
    fn a_batch_with_its_indexes_equals_one_command_at_a_time() {
        let mut seed = 12345u32;
        let mut next = move |n: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 16) % n
        };
        let mut commands = Vec::new();
        for _ in 0..3000 {
            let port = 80 + next(3) as u16;
            let last = 10 + next(40) as u8;
            commands.push(match next(100) {
                0..40 => add_real(port, last),
                40..65 => Command::EditReal {
                    service: svc(port),
                    real: real(last, Forward::Route, next(9)),
                },
                65..90 => Command::DeleteReal {
                    service: svc(port),
                    addr: Ipv4Addr::new(192, 168, 1, last).into(),
                    port: 80,
                },
                90..98 => add_service(port),
                98..100 if next(4) == 0 => Command::Clear,
                _ => Command::DeleteService { service: svc(port) },
            });
        }
        let mut one_at_a_time = Config::default();
        let mut accepted = Vec::new();
        let mut refused = Vec::new();
        for command in &commands {
            match one_at_a_time.apply_all(std::slice::from_ref(command)) {
                Ok(next) => {
                    one_at_a_time = next;
                    accepted.push(command.clone());
                }
                Err(e) => refused.push((accepted.len(), command.clone(), e)),
            }
        }
        assert!(accepted.len() > 500, "{} accepted", accepted.len());
        let longest = one_at_a_time.services.iter().map(|s| s.reals.len()).max();
        assert!(longest > Some(10), "{one_at_a_time:?}");
        assert_eq!(
            Config::default().apply_all(&accepted).unwrap(),
            one_at_a_time
        );
        // A command refused alone fails the batch it ends, with the same error.
        for (at, command, error) in refused.iter().step_by(7) {
            let mut batch = accepted[..*at].to_vec();
            batch.push(command.clone());
            assert_eq!(
                Config::default().apply_all(&batch).as_ref(),
                Err(error),
                "{command}"
            );
        }
    }

    #[test]
    fn seed_000_dr_sequence() {
        let config = Config::default()
            .apply_all(&[
                Command::Clear,
                add_service(80),
                add_real(80, 12),
                add_real(80, 13),
            ])
            .unwrap();
        let s = config.service(&svc(80)).unwrap();
        assert_eq!(s.reals.len(), 2);
        assert_eq!(s.reals[0].id, 1);
        assert_eq!(s.reals[1].id, 2);
    }

    #[test]
    fn ranges_are_checked_here_too_whatever_the_front_end() {
        let config = Config::default().apply_all(&[add_service(80)]).unwrap();
        let refused = |command: Command| {
            let err = config.apply_all(&[command]).unwrap_err();
            assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
            err.to_string()
        };
        let heavy = Command::AddReal {
            service: svc(80),
            real: real(12, Forward::Route, MAX_WEIGHT + 1),
        };
        assert!(refused(heavy).contains("weight 65536 is over 65535"));
        let mut persistent = spec(80, Scheduler::Rr);
        persistent.persistence = Some(crate::model::Persistence {
            timeout: 0,
            netmask: Netmask::V4(Ipv4Addr::BROADCAST),
        });
        let edit = Command::EditService {
            service: persistent.clone(),
        };
        assert!(refused(edit).contains("persistence timeout 0"));
        let long = Command::SetTimeouts {
            timeouts: Timeouts {
                tcp: MAX_TIMEOUT + 1,
                tcp_fin: 0,
                udp: 0,
            },
        };
        assert!(refused(long).contains("over 2678400"));
        // The limits themselves are fine.
        persistent.persistence.as_mut().unwrap().timeout = MAX_TIMEOUT;
        config
            .apply_all(&[
                Command::EditService {
                    service: persistent,
                },
                Command::AddReal {
                    service: svc(80),
                    real: real(12, Forward::Route, MAX_WEIGHT),
                },
            ])
            .unwrap();
    }

    #[test]
    fn a_lower_threshold_above_the_upper_one_is_out_of_range() {
        let config = Config::default().apply_all(&[add_service(80)]).unwrap();
        let thresholds = |upper, lower| {
            let mut r = real(12, Forward::Route, 1);
            r.upper_threshold = upper;
            r.lower_threshold = lower;
            r
        };
        let add = |r: RealSpec| Command::AddReal {
            service: svc(80),
            real: r,
        };
        // As ip_vs_add_dest(): -y above -x, also with no -x (0).
        for (upper, lower) in [(5, 10), (0, 1)] {
            let err = config
                .apply_all(&[add(thresholds(upper, lower))])
                .unwrap_err();
            assert_eq!(err.to_string(), "Numerical result out of range");
        }
        let config = config.apply_all(&[add(thresholds(10, 5))]).unwrap();
        let err = config
            .apply_all(&[Command::EditReal {
                service: svc(80),
                real: thresholds(10, 11),
            }])
            .unwrap_err();
        assert_eq!(err, ConfigError::ThresholdRange);
        // The service is looked up first.
        let err = config
            .apply_all(&[Command::AddReal {
                service: svc(81),
                real: thresholds(1, 2),
            }])
            .unwrap_err();
        assert_eq!(err, ConfigError::ServiceNotDefined);
        // Then the range, before the destination.
        let err = config.apply_all(&[add(thresholds(1, 2))]).unwrap_err();
        assert_eq!(err, ConfigError::ThresholdRange);
    }

    #[test]
    fn only_tunnels_mix_families() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let service = ServiceAddr {
            protocol: Protocol::Tcp,
            addr: v6,
            port: 80,
        };
        let config = Config::default()
            .apply_all(&[Command::AddService {
                service: ServiceSpec {
                    addr: service,
                    ..spec(80, Scheduler::Rr)
                },
            }])
            .unwrap();
        let add = |forward| Command::AddReal {
            service,
            real: real(12, forward, 1),
        };
        for forward in [Forward::Route, Forward::Masq] {
            let err = config.apply_all(&[add(forward)]).unwrap_err();
            assert_eq!(err, ConfigError::MixedFamily);
            assert_eq!(
                err.to_string(),
                "Invalid operation.  Possibly wrong module version, address not unicast, ..."
            );
        }
        let config = config.apply_all(&[add(Forward::Tunnel)]).unwrap();
        assert_eq!(
            config.services[0].reals[0].spec.addr,
            real(12, Forward::Tunnel, 1).addr
        );
        // Editing it into DR is refused the same way.
        let err = config
            .apply_all(&[Command::EditReal {
                service,
                real: real(12, Forward::Route, 1),
            }])
            .unwrap_err();
        assert_eq!(err, ConfigError::MixedFamily);
    }

    #[test]
    fn errors_are_ipvsadm_messages_and_change_nothing() {
        let config = Config::default().apply_all(&[add_service(80)]).unwrap();
        let err = config
            .apply_all(&[add_real(80, 12), add_service(80)])
            .unwrap_err();
        assert_eq!(err.to_string(), "Service already exists");
        assert!(config.service(&svc(80)).unwrap().reals.is_empty());
        let err = config.apply_all(&[add_real(81, 12)]).unwrap_err();
        assert_eq!(err.to_string(), "Service not defined");
        let err = config
            .apply_all(&[Command::DeleteService { service: svc(81) }])
            .unwrap_err();
        assert_eq!(err.to_string(), "No such service");
        let err = config
            .apply_all(&[add_real(80, 12), add_real(80, 12)])
            .unwrap_err();
        assert_eq!(err.to_string(), "Destination already exists");
        let err = config
            .apply_all(&[Command::EditReal {
                service: svc(80),
                real: real(7, Forward::Route, 2),
            }])
            .unwrap_err();
        assert_eq!(err.to_string(), "No such destination");
    }

    #[test]
    fn dr_and_tun_ports_follow_the_service_masq_may_map() {
        let mut r = real(12, Forward::Route, 1);
        r.port = 8080;
        let mut m = real(13, Forward::Masq, 1);
        m.port = 8080;
        let config = Config::default()
            .apply_all(&[
                add_service(80),
                Command::AddReal {
                    service: svc(80),
                    real: r,
                },
                Command::AddReal {
                    service: svc(80),
                    real: m,
                },
            ])
            .unwrap();
        let s = config.service(&svc(80)).unwrap();
        assert_eq!(s.reals[0].spec.port, 80);
        assert_eq!(s.reals[1].spec.port, 8080);
    }

    #[test]
    fn deleted_reals_wait_in_trash_and_revive_with_their_id() {
        let config = Config::default()
            .apply_all(&[add_service(80), add_real(80, 12), add_real(80, 13)])
            .unwrap();
        let deleted = config
            .apply_all(&[Command::DeleteReal {
                service: svc(80),
                addr: Ipv4Addr::new(192, 168, 1, 12).into(),
                port: 80,
            }])
            .unwrap();
        assert_eq!(deleted.trash.len(), 1);
        // A new real server does not take the trashed id...
        let more = deleted.apply_all(&[add_real(80, 14)]).unwrap();
        assert_eq!(more.service(&svc(80)).unwrap().reals[1].id, 3);
        // ...re-adding the deleted one revives it.
        let revived = deleted.apply_all(&[add_real(80, 12)]).unwrap();
        assert_eq!(revived.service(&svc(80)).unwrap().reals[1].id, 1);
        assert!(revived.trash.is_empty());
        // Once unused, the id is free again.
        let mut purged = deleted.clone();
        assert_eq!(purged.purge_trash(|_| false), vec![1]);
        let again = purged.apply_all(&[add_real(80, 20)]).unwrap();
        assert_eq!(again.service(&svc(80)).unwrap().reals[1].id, 1);
    }

    #[test]
    fn ids_within_one_batch_are_those_of_one_command_at_a_time() {
        let services: Vec<Command> = (0..300)
            .flat_map(|i| {
                [
                    add_service(1000 + i),
                    add_real(1000 + i, 12),
                    add_real(1000 + i, 13),
                ]
            })
            .collect();
        let config = Config::default().apply_all(&services).unwrap();
        assert_eq!(config.services.len(), 300);
        assert_eq!(config.services[299].id, 299);
        assert_eq!(config.services[299].reals[1].id, 600);
        // Applied one by one, the same commands give the same configuration.
        let mut stepwise = Config::default();
        for command in &services {
            stepwise = stepwise.apply_all(std::slice::from_ref(command)).unwrap();
        }
        assert_eq!(stepwise, config);

        // In one batch: a deleted service's id goes to the next one added, its real servers
        // wait in the trash, and a clear followed by the same rules revives every real server
        // with its id (the service ids come out the same, lowest first).
        let batch = [
            Command::DeleteService { service: svc(1005) },
            add_service(7),
            Command::Clear,
        ];
        let cleared = config.apply_all(&batch).unwrap();
        assert!(cleared.services.is_empty());
        assert_eq!(cleared.trash.len(), 600);
        assert_eq!(
            cleared.trash[0].id, 11,
            "the deleted service's real servers first"
        );
        let mut again = vec![Command::Clear];
        again.extend(services.iter().cloned());
        let restored = config.apply_all(&again).unwrap();
        assert_eq!(restored.services, config.services);
        assert!(restored.trash.is_empty());
        let restored = cleared.apply_all(&services).unwrap();
        assert_eq!(restored.services, config.services);
        assert!(restored.trash.is_empty());
    }

    #[test]
    fn clear_trashes_everything_and_timeouts_keep_zeroes() {
        let config = Config::default()
            .apply_all(&[add_service(80), add_real(80, 12), Command::Clear])
            .unwrap();
        assert!(config.services.is_empty());
        assert_eq!(config.trash.len(), 1);
        let config = config
            .apply_all(&[Command::SetTimeouts {
                timeouts: Timeouts {
                    tcp: 60,
                    tcp_fin: 0,
                    udp: 10,
                },
            }])
            .unwrap();
        assert_eq!(
            config.timeouts,
            Timeouts {
                tcp: 60,
                tcp_fin: 120,
                udp: 10
            }
        );
    }
}

/// A service as something outside lbadm wants it (a keepalived.conf, health checks applied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub spec: ServiceSpec,
    pub reals: Vec<RealSpec>,
}

/// The commands that turn the services of `current` listed in `managed` (and those of
/// `desired`) into `desired`, touching nothing else: services no longer desired are deleted,
/// new ones added, changed ones edited, and real servers added, edited or deleted one by one,
/// so connections to what did not change are never disturbed. Runs on every health verdict:
/// services and real servers are looked up through indexes, so it costs time linear in the
/// sizes of `current` and `desired`.
pub fn diff(current: &Config, managed: &[ServiceAddr], desired: &[Desired]) -> Vec<Command> {
    let have_by_addr: HashMap<&ServiceAddr, &ServiceEntry> =
        current.services.iter().map(|s| (&s.spec.addr, s)).collect();
    let wanted_addrs: HashSet<&ServiceAddr> = desired.iter().map(|d| &d.spec.addr).collect();
    let mut commands = Vec::new();
    for addr in managed {
        if have_by_addr.contains_key(addr) && !wanted_addrs.contains(addr) {
            commands.push(Command::DeleteService { service: *addr });
        }
    }
    for want in desired {
        let addr = want.spec.addr;
        let Some(have) = have_by_addr.get(&addr) else {
            commands.push(Command::AddService {
                service: want.spec.clone(),
            });
            commands.extend(want.reals.iter().map(|real| Command::AddReal {
                service: addr,
                real: real.clone(),
            }));
            continue;
        };
        if have.spec != want.spec {
            commands.push(Command::EditService {
                service: want.spec.clone(),
            });
        }
        let wanted: Vec<RealSpec> = want.reals.iter().map(|r| normalise(&addr, r)).collect();
        let wanted_keys: HashSet<(IpAddr, u16)> = wanted.iter().map(|r| (r.addr, r.port)).collect();
        let have_reals: HashMap<(IpAddr, u16), &RealSpec> = have
            .reals
            .iter()
            .map(|r| ((r.spec.addr, r.spec.port), &r.spec))
            .collect();
        for real in &have.reals {
            if !wanted_keys.contains(&(real.spec.addr, real.spec.port)) {
                commands.push(Command::DeleteReal {
                    service: addr,
                    addr: real.spec.addr,
                    port: real.spec.port,
                });
            }
        }
        for (real, normalised) in want.reals.iter().zip(&wanted) {
            match have_reals.get(&(normalised.addr, normalised.port)) {
                None => commands.push(Command::AddReal {
                    service: addr,
                    real: real.clone(),
                }),
                Some(existing) if **existing != *normalised => commands.push(Command::EditReal {
                    service: addr,
                    real: real.clone(),
                }),
                Some(_) => {}
            }
        }
    }
    commands
}

#[cfg(test)]
mod diff_tests {
    use super::*;
    use crate::model::{Protocol, Scheduler};
    use std::net::Ipv4Addr;

    fn addr(port: u16) -> ServiceAddr {
        ServiceAddr {
            protocol: Protocol::Tcp,
            addr: Ipv4Addr::new(10, 0, 0, 99).into(),
            port,
        }
    }

    fn spec(port: u16, scheduler: Scheduler) -> ServiceSpec {
        ServiceSpec {
            addr: addr(port),
            scheduler,
            persistence: None,
            sched_flags: Default::default(),
        }
    }

    fn real(last: u8, weight: u32) -> RealSpec {
        RealSpec {
            addr: Ipv4Addr::new(10, 0, 0, last).into(),
            port: 80,
            forward: Forward::Route,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Default::default(),
        }
    }

    #[test]
    fn one_verdict_among_thousands_of_services_is_one_command() {
        let desired: Vec<Desired> = (0..5000)
            .map(|port| Desired {
                spec: spec(port, Scheduler::Wlc),
                reals: vec![real(1, 1), real(2, 1), real(3, 1)],
            })
            .collect();
        let managed: Vec<ServiceAddr> = desired.iter().map(|d| d.spec.addr).collect();
        let current = Config::default()
            .apply_all(&diff(&Config::default(), &managed, &desired))
            .unwrap();
        assert!(diff(&current, &managed, &desired).is_empty());
        let mut after = desired.clone();
        after[4321].reals[1].weight = 0;
        assert_eq!(
            diff(&current, &managed, &after),
            vec![Command::EditReal {
                service: addr(4321),
                real: real(2, 0),
            }]
        );
    }

    #[test]
    fn diff_applies_to_exactly_the_desired_state_and_is_then_empty() {
        let desired = vec![Desired {
            spec: spec(80, Scheduler::Wlc),
            reals: vec![real(12, 1), real(13, 2)],
        }];
        let commands = diff(&Config::default(), &[], &desired);
        assert_eq!(commands.len(), 3);
        let current = Config::default().apply_all(&commands).unwrap();
        assert!(diff(&current, &[addr(80)], &desired).is_empty());

        // Change the scheduler, one weight, drop one real server, add another, add a service.
        let desired2 = vec![
            Desired {
                spec: spec(80, Scheduler::Rr),
                reals: vec![real(12, 5), real(14, 1)],
            },
            Desired {
                spec: spec(443, Scheduler::Sh),
                reals: vec![real(12, 1)],
            },
        ];
        let commands = diff(&current, &[addr(80)], &desired2);
        assert!(commands.contains(&Command::EditService {
            service: spec(80, Scheduler::Rr)
        }));
        assert!(commands.contains(&Command::DeleteReal {
            service: addr(80),
            addr: Ipv4Addr::new(10, 0, 0, 13).into(),
            port: 80
        }));
        let next = current.apply_all(&commands).unwrap();
        assert_eq!(diff(&next, &[addr(80), addr(443)], &desired2), vec![]);
        // The real server that only changed weight kept its id (its connections stay).
        let id = |c: &Config| c.service(&addr(80)).unwrap().reals[0].id;
        assert_eq!(id(&current), id(&next));

        // A managed service gone from the file is deleted; unmanaged ones are left alone.
        let commands = diff(&next, &[addr(80)], &desired2[1..]);
        assert_eq!(commands, vec![Command::DeleteService { service: addr(80) }]);
        assert!(diff(&next, &[], &desired2[1..]).is_empty());
    }
}
