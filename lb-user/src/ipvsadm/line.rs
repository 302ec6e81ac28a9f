//! One ipvsadm command line after its command: the options gathered and checked as ipvsadm's
//! `process_options` does, then turned into an [`Invocation`].
//!
//! The order of the checks is ipvsadm's, so the same bad command line gets the same first
//! complaint: options left to right (each value checked as it is read), then the plain
//! arguments, the scheduler flags, the command/option table, the per-command rules, and last
//! what the kernel would refuse (an unknown scheduler).
//!
//! `-E` and `-e` are not partial updates: like ipvsadm they send a complete definition in which
//! every option not given takes its default (scheduler wlc, no persistence, weight 1, direct
//! routing, no thresholds).

use std::{
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use super::{
    error::CliError,
    names::Names,
    options::{Bit, Cmd, Opt, OptionSet},
    parse::{Invocation, ListOptions},
    popt::OptToken,
    scan::{inet_aton, string_to_number},
    values::{
        MAX_TIMEOUT, check_mcast_group, number, parse_prefix_len, parse_sched_flags, parse_service,
        parse_timeout,
    },
};
use crate::{
    model::{
        Command, Forward, Netmask, Persistence, Protocol, RealSpec, SchedFlags, Scheduler,
        ServiceAddr, ServiceSpec, Timeouts, Tunnel, TunnelCsum, TunnelType, family,
    },
    sync::{DEFAULT_MCAST_IFN, Role, SyncDaemon},
};

/// The scheduler ipvsadm uses when `-s` is not given.
const DEFAULT_SCHEDULER: &str = "wlc";
/// libipvs' message when the kernel has no scheduler of that name.
const UNKNOWN_SCHEDULER: &str = "Scheduler or persistence engine not found";

/// Everything one command line says, gathered as ipvsadm gathers it in its command entry.
pub(crate) struct Line {
    cmd: Cmd,
    options: OptionSet,
    protocol: Option<Protocol>,
    svc_addr: IpAddr,
    svc_port: u16,
    scheduler: Option<String>,
    persistent: Option<u32>,
    netmask: Netmask,
    sched_flags: Option<String>,
    dest_addr: IpAddr,
    dest_port: u16,
    forward: Forward,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tunnel: Tunnel,
    timeouts: Timeouts,
    list: ListOptions,
    /// `--start-daemon` / `--stop-daemon`: the role and the daemon options.
    daemon: SyncDaemon,
}

impl Line {
    pub fn new(cmd: Cmd) -> Self {
        Line {
            cmd,
            options: OptionSet::default(),
            protocol: None,
            svc_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            svc_port: 0,
            scheduler: None,
            persistent: None,
            netmask: Netmask::V4(Ipv4Addr::BROADCAST),
            sched_flags: None,
            dest_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dest_port: 0,
            forward: Forward::Route,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::default(),
            timeouts: Timeouts {
                tcp: 0,
                tcp_fin: 0,
                udp: 0,
            },
            list: ListOptions::default(),
            daemon: SyncDaemon {
                role: Role::Master,
                mcast_ifn: String::new(),
                syncid: 0,
                sync_maxlen: 0,
                mcast_group: None,
                mcast_port: 0,
                mcast_ttl: 0,
            },
        }
    }

    /// The role `--start-daemon` or `--stop-daemon` named.
    pub fn set_role(&mut self, role: Role) {
        self.daemon.role = role;
    }

    /// One option after the command: record it (refusing repeats) and check its value.
    pub fn option(&mut self, token: OptToken, names: &dyn Names) -> Result<(), CliError> {
        let value = token.value.as_deref().unwrap_or_default();
        match token.opt {
            Opt::TcpService | Opt::UdpService => {
                self.options.set(Bit::Service)?;
                let protocol = if token.opt == Opt::TcpService {
                    Protocol::Tcp
                } else {
                    Protocol::Udp
                };
                self.protocol = Some(protocol);
                let (addr, port) =
                    parse_service(value, Some(protocol), names)?.ok_or_else(|| {
                        CliError::usage("illegal virtual server address[:port] specified")
                    })?;
                self.svc_addr = addr;
                // An IPv6 service starts with a /128 granularity, whatever -M said before it
                // (ipvsadm's parse_service sets the netmask to 128).
                if addr.is_ipv6() {
                    self.netmask = Netmask::V6(128);
                }
                // Without a port the service port is 0 (a wildcard, persistent services only).
                self.svc_port = port.unwrap_or(0);
            }
            Opt::SctpService => {
                self.options.set(Bit::Service)?;
                return Err(CliError::unsupported("SCTP services are"));
            }
            Opt::FwmarkService => {
                self.options.set(Bit::Service)?;
                if string_to_number(value, 1, i64::from(u32::MAX)).is_none() {
                    return Err(CliError::usage(format!(
                        "invalid fwmark value `{value}' specified"
                    )));
                }
                return Err(CliError::unsupported("firewall-mark services (-f) are"));
            }
            Opt::Scheduler => {
                self.options.set(Bit::Scheduler)?;
                self.scheduler = Some(value.to_owned());
            }
            Opt::Persistent => {
                self.options.set(Bit::Persistent)?;
                self.persistent = Some(parse_timeout(token.value.as_deref(), 1, MAX_TIMEOUT)?);
            }
            Opt::Netmask => {
                self.options.set(Bit::Netmask)?;
                // A prefix length once the service is known to be IPv6, a netmask otherwise.
                self.netmask = if self.svc_addr.is_ipv6() {
                    Netmask::V6(parse_prefix_len(value)?)
                } else {
                    Netmask::V4(
                        inet_aton(value)
                            .or_else(|| names.host_addr(value))
                            .ok_or_else(|| {
                                CliError::usage("illegal virtual server persistent mask specified")
                            })?,
                    )
                };
            }
            Opt::RealServer => {
                self.options.set(Bit::Server)?;
                // Service names resolve with the service's protocol, if given before -r.
                let (addr, port) =
                    parse_service(value, self.protocol, names)?.ok_or_else(|| {
                        CliError::usage("illegal real server address[:port] specified")
                    })?;
                self.dest_addr = addr;
                // No port: the service's, as far as it is known at this point of the line.
                self.dest_port = port.unwrap_or(self.svc_port);
            }
            Opt::Gatewaying | Opt::Ipip | Opt::Masquerading => {
                self.options.set(Bit::Forward)?;
                self.forward = match token.opt {
                    Opt::Ipip => Forward::Tunnel,
                    Opt::Masquerading => Forward::Masq,
                    _ => Forward::Route,
                };
            }
            Opt::Weight => {
                self.options.set(Bit::Weight)?;
                self.weight = number(value, 0, 65535, "illegal weight specified")?;
            }
            Opt::UThreshold => {
                self.options.set(Bit::UThreshold)?;
                self.u_threshold =
                    number(value, 0, i32::MAX.into(), "illegal u_threshold specified")?;
            }
            Opt::LThreshold => {
                self.options.set(Bit::LThreshold)?;
                self.l_threshold =
                    number(value, 0, i32::MAX.into(), "illegal l_threshold specified")?;
            }
            Opt::Numeric => {
                self.options.set(Bit::Numeric)?;
                self.list.numeric = true;
            }
            Opt::Connection => {
                self.options.set(Bit::Connection)?;
                self.list.connection = true;
            }
            Opt::Timeout => {
                self.options.set(Bit::Timeout)?;
                self.list.timeout = true;
            }
            Opt::Daemon => {
                self.options.set(Bit::Daemon)?;
                self.list.daemon = true;
            }
            Opt::Stats => {
                self.options.set(Bit::Stats)?;
                self.list.stats = true;
            }
            Opt::Rate => {
                self.options.set(Bit::Rate)?;
                self.list.rate = true;
            }
            Opt::Thresholds => {
                self.options.set(Bit::Thresholds)?;
                self.list.thresholds = true;
            }
            Opt::PersistentConn => {
                self.options.set(Bit::PersistentConn)?;
                self.list.persistent_conn = true;
            }
            Opt::NoSort => {
                self.options.set(Bit::NoSort)?;
                self.list.nosort = true;
            }
            // Sorting is the default; --sort is accepted for compatibility.
            Opt::Sort => {}
            Opt::Exact => {
                self.options.set(Bit::Exact)?;
                self.list.exact = true;
            }
            Opt::TunInfo => {
                self.options.set(Bit::TunInfo)?;
                self.list.tun_info = true;
            }
            // ipvsadm only accepts -6 after -f, which lb refuses before getting here. Its
            // message ends with a newline of its own, so an empty line follows it.
            Opt::Ipv6 => return Err(CliError::usage("-6 used before -f\n")),
            Opt::Ops => {
                self.options.set(Bit::OnePacket)?;
                return Err(CliError::unsupported("One-Packet Scheduling (-o) is"));
            }
            Opt::Pe => {
                self.options.set(Bit::PersistenceEngine)?;
                return Err(CliError::unsupported("Persistence engines (--pe) are"));
            }
            Opt::SchedFlags => {
                self.options.set(Bit::SchedFlags)?;
                self.sched_flags = Some(value.to_owned());
            }
            Opt::TunType => {
                self.options.set(Bit::TunType)?;
                self.tunnel.kind = TunnelType::from_name(value)
                    .ok_or_else(|| CliError::usage("illegal tunnel type specified"))?;
            }
            Opt::TunPort => {
                self.options.set(Bit::TunPort)?;
                self.tunnel.port = number(value, 1, 65535, "illegal tunnel port specified")? as u16;
            }
            Opt::TunNocsum => self.options.set(Bit::TunNocsum)?,
            // ipvsadm ORs the flags; --tun-csum with --tun-remcsum is refused later
            // (`tunnel_opt_check`), so the last one given stands for the one given.
            Opt::TunCsum => {
                self.options.set(Bit::TunCsum)?;
                self.tunnel.csum = TunnelCsum::Csum;
            }
            Opt::TunRemcsum => {
                self.options.set(Bit::TunRemcsum)?;
                self.tunnel.csum = TunnelCsum::Remcsum;
            }
            // Sync daemon options, checked as ipvsadm checks them (the table then refuses them
            // with any other command).
            Opt::McastInterface => {
                self.options.set(Bit::Mcast)?;
                self.daemon.mcast_ifn = value.to_owned();
            }
            Opt::SyncId => {
                self.options.set(Bit::SyncId)?;
                self.daemon.syncid = number(value, 0, 255, "illegal syncid specified")? as u8;
            }
            Opt::McastGroup => {
                self.options.set(Bit::McastGroup)?;
                self.daemon.mcast_group = Some(check_mcast_group(value)?);
            }
            Opt::McastPort => {
                self.options.set(Bit::McastPort)?;
                self.daemon.mcast_port =
                    number(value, 1, 65535, "illegal mcast-port specified")? as u16;
            }
            Opt::McastTtl => {
                self.options.set(Bit::McastTtl)?;
                self.daemon.mcast_ttl = number(value, 1, 255, "illegal mcast-ttl specified")? as u8;
            }
            Opt::SyncMaxlen => {
                self.options.set(Bit::SyncMaxlen)?;
                self.daemon.sync_maxlen =
                    number(value, 1, 65535 - 20 - 8, "illegal sync-maxlen specified")? as u16;
            }
            // A second command, -h or -v after the command.
            Opt::AddService
            | Opt::EditService
            | Opt::DeleteService
            | Opt::Clear
            | Opt::List
            | Opt::Zero
            | Opt::AddServer
            | Opt::EditServer
            | Opt::DeleteServer
            | Opt::Set
            | Opt::Help
            | Opt::Version
            | Opt::Restore
            | Opt::Save
            | Opt::StartDaemon
            | Opt::StopDaemon => {
                return Err(CliError::usage(format!(
                    "invalid option `{}'",
                    token.written
                )));
            }
        }
        Ok(())
    }

    /// The checks after all options are read, given the plain arguments, then the invocation.
    pub fn finish(mut self, plain: Vec<String>) -> Result<Invocation, CliError> {
        let mut plain = plain.into_iter();
        if self.cmd == Cmd::Timeout {
            let (Some(tcp), Some(tcp_fin), Some(udp)) = (plain.next(), plain.next(), plain.next())
            else {
                return Err(CliError::usage("--set option requires 3 timeout values"));
            };
            self.timeouts = Timeouts {
                tcp: parse_timeout(Some(&tcp), 0, MAX_TIMEOUT)?,
                tcp_fin: parse_timeout(Some(&tcp_fin), 0, MAX_TIMEOUT)?,
                udp: parse_timeout(Some(&udp), 0, MAX_TIMEOUT)?,
            };
        }
        if let Some(arg) = plain.next() {
            return Err(CliError::usage(format!("unexpected argument {arg}")));
        }
        let flags = match self.sched_flags.as_deref() {
            Some(arg) if !arg.is_empty() => {
                let sched = self.scheduler.as_deref().filter(|s| !s.is_empty());
                parse_sched_flags(sched.unwrap_or(DEFAULT_SCHEDULER), arg)?
            }
            _ => SchedFlags::default(),
        };
        self.options.check(self.cmd)?;

        if matches!(self.cmd, Cmd::Add | Cmd::Edit)
            && self.svc_port == 0
            && self.persistent.is_none()
        {
            return Err(CliError::usage(
                "Zero port specified for non-persistent service",
            ));
        }
        if matches!(self.cmd, Cmd::AddDest | Cmd::EditDest) {
            // Direct routing and tunnelling cannot change the port: the real server gets the
            // service's port whatever -r said.
            if matches!(self.forward, Forward::Route | Forward::Tunnel) {
                self.dest_port = self.svc_port;
            }
            // IPVS forwards to a real server of the other family only through a tunnel.
            if family(self.dest_addr) != family(self.svc_addr) && self.forward != Forward::Tunnel {
                return Err(CliError::usage(
                    "Different address family is allowed only for tunneling servers",
                ));
            }
            self.check_tunnel_options()?;
        }

        let service = self.protocol.map(|protocol| ServiceAddr {
            protocol,
            addr: self.svc_addr,
            port: self.svc_port,
        });
        // The table has made sure commands that need a service have one.
        let need_service = || service.ok_or(CliError::TryHelp);
        let command = match self.cmd {
            Cmd::List => {
                let has = |bit| self.options.has(bit);
                let conflict = ((has(Bit::Connection) || has(Bit::Timeout) || has(Bit::Daemon))
                    && (has(Bit::Stats) || has(Bit::Rate) || has(Bit::Thresholds)))
                    || ((has(Bit::Timeout) || has(Bit::Daemon)) && has(Bit::PersistentConn));
                if conflict {
                    return Err(CliError::usage("options conflicts in the list command"));
                }
                return Ok(Invocation::List(ListOptions {
                    service,
                    ..self.list
                }));
            }
            Cmd::Save => {
                return Ok(Invocation::Save {
                    numeric: self.list.numeric,
                });
            }
            Cmd::Restore => return Ok(Invocation::Restore),
            Cmd::Flush => Command::Clear,
            Cmd::Zero => Command::Zero { service },
            Cmd::Timeout => Command::SetTimeouts {
                timeouts: self.timeouts,
            },
            Cmd::Add | Cmd::Edit => {
                let spec = ServiceSpec {
                    addr: need_service()?,
                    scheduler: self.scheduler()?,
                    persistence: self.persistent.map(|timeout| Persistence {
                        timeout,
                        netmask: self.netmask,
                    }),
                    sched_flags: flags,
                };
                if self.cmd == Cmd::Add {
                    Command::AddService { service: spec }
                } else {
                    Command::EditService { service: spec }
                }
            }
            Cmd::Del => Command::DeleteService {
                service: need_service()?,
            },
            Cmd::AddDest | Cmd::EditDest => {
                let real = RealSpec {
                    addr: self.dest_addr,
                    port: self.dest_port,
                    forward: self.forward,
                    weight: self.weight,
                    upper_threshold: self.u_threshold,
                    lower_threshold: self.l_threshold,
                    tunnel: self.tunnel,
                };
                let service = need_service()?;
                if self.cmd == Cmd::AddDest {
                    Command::AddReal { service, real }
                } else {
                    Command::EditReal { service, real }
                }
            }
            Cmd::DelDest => Command::DeleteReal {
                service: need_service()?,
                addr: self.dest_addr,
                port: self.dest_port,
            },
            Cmd::StartDaemon => {
                let mut daemon = self.daemon.clone();
                if daemon.mcast_ifn.is_empty() {
                    daemon.mcast_ifn = DEFAULT_MCAST_IFN.to_owned();
                }
                Command::StartDaemon { daemon }
            }
            Cmd::StopDaemon => Command::StopDaemon {
                role: self.daemon.role,
            },
        };
        Ok(Invocation::Apply(vec![command]))
    }

    /// ipvsadm allows tunnel options only with -i, then checks them against the tunnel type
    /// (`tunnel_opt_check`): ipip takes none; gue needs --tun-port and takes one of
    /// --tun-nocsum, --tun-csum, --tun-remcsum; gre takes one of --tun-nocsum, --tun-csum.
    fn check_tunnel_options(&self) -> Result<(), CliError> {
        /// '+' compulsory, 'x' illegal, '1' at most one of them.
        const TABLE: [(TunnelType, [u8; 4]); 3] = [
            (TunnelType::Ipip, *b"xxxx"),
            (TunnelType::Gue, *b"+111"),
            (TunnelType::Gre, *b"x11x"),
        ];
        let tunnel_bits = [Bit::TunPort, Bit::TunNocsum, Bit::TunCsum, Bit::TunRemcsum];
        let any =
            self.options.has(Bit::TunType) || tunnel_bits.iter().any(|&b| self.options.has(b));
        if any && self.forward != Forward::Tunnel {
            return Err(CliError::usage(
                "Tunnel options conflict with forward method",
            ));
        }
        let kind = self.tunnel.kind;
        let rules = TABLE
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(*b"xxxx", |(_, rules)| *rules);
        let mut first_exclusive: Option<Bit> = None;
        for (bit, rule) in tunnel_bits.into_iter().zip(rules) {
            if !self.options.has(bit) {
                if rule == b'+' {
                    return Err(CliError::usage(format!(
                        "You need to supply the '{}' option for the '{}' tunnel type",
                        bit.name(),
                        kind.name()
                    )));
                }
                continue;
            }
            match rule {
                b'x' => {
                    return Err(CliError::usage(format!(
                        "Illegal '{}' option with the '{}' tunnel type",
                        bit.name(),
                        kind.name()
                    )));
                }
                b'1' => match first_exclusive {
                    None => first_exclusive = Some(bit),
                    Some(first) => {
                        return Err(CliError::usage(format!(
                            "The option '{}' conflicts with the '{}' option in the '{}' tunnel type",
                            bit.name(),
                            first.name(),
                            kind.name()
                        )));
                    }
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// The scheduler by name (wlc when not given); the kernel refuses names it does not know.
    fn scheduler(&self) -> Result<Scheduler, CliError> {
        let name = match self.scheduler.as_deref() {
            None | Some("") => DEFAULT_SCHEDULER,
            Some(name) => name,
        };
        Scheduler::from_str(name).map_err(|_| CliError::Refused(UNKNOWN_SCHEDULER.to_owned()))
    }
}
