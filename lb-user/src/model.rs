//! The configuration vocabulary of lb, in LVS terms: virtual services, real servers, forwarding
//! methods, schedulers. These are what `lbadm` sends, what `lbd` keeps and persists, and what
//! listings show. Pure data: no I/O.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use serde::{Deserialize, Serialize};

/// Transport protocol of a virtual service (`-t` / `-u`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => lb_common::IPPROTO_TCP,
            Protocol::Udp => lb_common::IPPROTO_UDP,
        }
    }

    /// As ipvsadm prints it in listings: `TCP` / `UDP`.
    pub const fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }

    /// As ipvsadm writes it in options: `-t` / `-u`.
    pub const fn flag(self) -> &'static str {
        match self {
            Protocol::Tcp => "-t",
            Protocol::Udp => "-u",
        }
    }
}

/// Identity of a virtual service: protocol, virtual address and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceAddr {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
}

impl ServiceAddr {
    /// The service's address family ([`lb_common::AF_INET`] or [`lb_common::AF_INET6`]).
    pub fn family(&self) -> u8 {
        family(self.addr)
    }
}

impl fmt::Display for ServiceAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.protocol.label(),
            AddrPort(self.addr, self.port)
        )
    }
}

/// The address family of an address, as the data path's keys carry it.
pub fn family(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => lb_common::AF_INET,
        IpAddr::V6(_) => lb_common::AF_INET6,
    }
}

/// `addr:port`, with the address in brackets for IPv6 (`[2001:db8::1]:80`), as ipvsadm writes
/// both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrPort(pub IpAddr, pub u16);

impl fmt::Display for AddrPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// IPVS schedulers (`-s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Sed,
    Nq,
    Sh,
    Dh,
    Lblc,
    Lblcr,
    Fo,
    Ovf,
    Mh,
}

impl Scheduler {
    /// ipvsadm's default scheduler.
    pub const DEFAULT: Scheduler = Scheduler::Wlc;

    pub const ALL: [Scheduler; 13] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Sh,
        Scheduler::Dh,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Sh => "sh",
            Scheduler::Dh => "dh",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
        }
    }

    /// The code the data path understands ([`lb_common::scheduler`]).
    pub const fn code(self) -> u32 {
        use lb_common::scheduler as s;
        match self {
            Scheduler::Rr => s::RR,
            Scheduler::Wrr => s::WRR,
            Scheduler::Lc => s::LC,
            Scheduler::Wlc => s::WLC,
            Scheduler::Sed => s::SED,
            Scheduler::Nq => s::NQ,
            Scheduler::Sh => s::SH,
            Scheduler::Dh => s::DH,
            Scheduler::Lblc => s::LBLC,
            Scheduler::Lblcr => s::LBLCR,
            Scheduler::Fo => s::FO,
            Scheduler::Ovf => s::OVF,
            Scheduler::Mh => s::MH,
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Unknown scheduler name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Scheduler not found")]
pub struct UnknownScheduler(pub String);

impl FromStr for Scheduler {
    type Err = UnknownScheduler;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheduler::ALL
            .into_iter()
            .find(|sch| sch.name() == s)
            .ok_or_else(|| UnknownScheduler(s.to_owned()))
    }
}

/// Forwarding method of a real server (`-g`, `-i`, `-m`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Forward {
    /// Direct routing (`-g`, the default): "Route" in listings.
    #[default]
    Route,
    /// IP-in-IP tunnelling (`-i`): "Tunnel".
    Tunnel,
    /// NAT (`-m`): "Masq".
    Masq,
}

impl Forward {
    /// The word `ipvsadm -L` prints in the Forward column.
    pub const fn label(self) -> &'static str {
        match self {
            Forward::Route => "Route",
            Forward::Tunnel => "Tunnel",
            Forward::Masq => "Masq",
        }
    }

    /// The option `ipvsadm -S` writes.
    pub const fn flag(self) -> &'static str {
        match self {
            Forward::Route => "-g",
            Forward::Tunnel => "-i",
            Forward::Masq => "-m",
        }
    }

    pub const fn code(self) -> u8 {
        match self {
            Forward::Route => lb_common::method::ROUTE,
            Forward::Tunnel => lb_common::method::TUNNEL,
            Forward::Masq => lb_common::method::MASQ,
        }
    }
}

/// How a tunnelled real server's packets are wrapped (`--tun-type`, IPVS's tunnel types).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    /// IP-in-IP, the default.
    #[default]
    Ipip,
    /// Generic UDP Encapsulation to `--tun-port`.
    Gue,
    /// GRE.
    Gre,
}

impl TunnelType {
    /// The name ipvsadm takes and prints.
    pub const fn name(self) -> &'static str {
        match self {
            TunnelType::Ipip => "ipip",
            TunnelType::Gue => "gue",
            TunnelType::Gre => "gre",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [TunnelType::Ipip, TunnelType::Gue, TunnelType::Gre]
            .into_iter()
            .find(|t| t.name() == name)
    }

    pub const fn code(self) -> u8 {
        match self {
            TunnelType::Ipip => lb_common::tunnel::IPIP,
            TunnelType::Gue => lb_common::tunnel::GUE,
            TunnelType::Gre => lb_common::tunnel::GRE,
        }
    }
}

/// A tunnel's checksum (`--tun-nocsum`, `--tun-csum`, `--tun-remcsum`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TunnelCsum {
    /// No checksum (UDP checksum 0, no GRE checksum field), the default.
    #[default]
    Nocsum,
    /// GUE's UDP checksum, GRE's checksum.
    Csum,
    /// GUE remote checksum offload (see `lb_common::tunnel::F_REMCSUM`).
    Remcsum,
}

impl TunnelCsum {
    /// ipvsadm's short form in `--tun-info` listings.
    pub const fn label(self) -> &'static str {
        match self {
            TunnelCsum::Nocsum => "-c",
            TunnelCsum::Csum => "+c",
            TunnelCsum::Remcsum => "r+c",
        }
    }

    /// The option ipvsadm takes and `-S` writes.
    pub const fn option(self) -> &'static str {
        match self {
            TunnelCsum::Nocsum => "--tun-nocsum",
            TunnelCsum::Csum => "--tun-csum",
            TunnelCsum::Remcsum => "--tun-remcsum",
        }
    }

    pub const fn flags(self) -> u8 {
        match self {
            TunnelCsum::Nocsum => 0,
            TunnelCsum::Csum => lb_common::tunnel::F_CSUM,
            TunnelCsum::Remcsum => lb_common::tunnel::F_REMCSUM,
        }
    }
}

/// A tunnelled real server's encapsulation; the default (IP-in-IP) for other methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Tunnel {
    #[serde(rename = "type", default)]
    pub kind: TunnelType,
    /// GUE's UDP destination port (`--tun-port`); 0 for the other types.
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub csum: TunnelCsum,
}

impl Tunnel {
    /// What ipvsadm's `--tun-info` column shows: `ipip`, `gue:PORT:-c`, `gre:+c`.
    pub fn info(&self) -> String {
        match self.kind {
            TunnelType::Ipip => "ipip".to_owned(),
            TunnelType::Gue => format!("gue:{}:{}", self.port, self.csum.label()),
            TunnelType::Gre => format!("gre:{}", self.csum.label()),
        }
    }

    /// The options `ipvsadm -S` writes after `-w` (`print_tunnel_rule`).
    pub fn save_options(&self) -> String {
        match self.kind {
            TunnelType::Ipip => " --tun-type ipip".to_owned(),
            TunnelType::Gue => format!(
                " --tun-type gue --tun-port {} {}",
                self.port,
                self.csum.option()
            ),
            TunnelType::Gre => format!(" --tun-type gre {}", self.csum.option()),
        }
    }
}

/// Persistence (`-p [timeout]`, `-M netmask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Persistence {
    /// Seconds (ipvsadm's default is 300).
    pub timeout: u32,
    /// Client netmask: a mask for IPv4 services (default 255.255.255.255), a prefix length for
    /// IPv6 ones (default 128), as IPVS keeps it in one `netmask` field.
    pub netmask: Netmask,
}

/// The persistence granularity of a service, in IPVS's terms: IPv4 services have a netmask,
/// IPv6 services a prefix length (`-M 64`). Saved as JSON as a string (`"255.255.255.0"`, as
/// state files before IPv6 have it) or a number (`64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Netmask {
    V4(Ipv4Addr),
    V6(u8),
}

impl Netmask {
    /// The default of a service of `addr`'s family: every client on its own.
    pub const fn host(addr: IpAddr) -> Netmask {
        match addr {
            IpAddr::V4(_) => Netmask::V4(Ipv4Addr::BROADCAST),
            IpAddr::V6(_) => Netmask::V6(128),
        }
    }

    /// Whether this is the default of its family (ipvsadm then prints no mask).
    pub fn is_host(self) -> bool {
        match self {
            Netmask::V4(m) => m == Ipv4Addr::BROADCAST,
            Netmask::V6(len) => len == 128,
        }
    }

    /// The mask as the data path applies it to client addresses.
    pub fn to_addr(self) -> lb_common::Addr {
        match self {
            Netmask::V4(m) => lb_common::Addr::from(IpAddr::V4(m)),
            Netmask::V6(len) => lb_common::Addr::prefix_mask(u32::from(len)),
        }
    }
}

impl fmt::Display for Netmask {
    /// As `-S` writes it after `-M` and `-L` after `mask`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(m) => m.fmt(f),
            Netmask::V6(len) => len.fmt(f),
        }
    }
}

/// Scheduler flags (`-b`): `sh-fallback`, `sh-port`, `mh-fallback`, `mh-port`
/// (`flag-1`, `flag-2`, `flag-3` are their generic names in ipvsadm).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SchedFlags {
    /// `sh-fallback` / `mh-fallback` (IP_VS_SVC_F_SCHED1).
    pub fallback: bool,
    /// `sh-port` / `mh-port` (IP_VS_SVC_F_SCHED2).
    pub port: bool,
    /// `flag-3` (IP_VS_SVC_F_SCHED3), unused by the stock schedulers.
    pub flag3: bool,
}

impl SchedFlags {
    /// The names of the flags that are set, as `-b` takes them: `sh` and `mh` name their own
    /// two (`sh-fallback`, `sh-port`...), other schedulers get the generic `flag-N`.
    pub fn names(self, scheduler: Scheduler) -> Vec<&'static str> {
        let (fallback, port) = match scheduler {
            Scheduler::Sh => ("sh-fallback", "sh-port"),
            Scheduler::Mh => ("mh-fallback", "mh-port"),
            _ => ("flag-1", "flag-2"),
        };
        [
            (self.fallback, fallback),
            (self.port, port),
            (self.flag3, "flag-3"),
        ]
        .into_iter()
        .filter_map(|(set, name)| set.then_some(name))
        .collect()
    }
}

/// Everything that defines a virtual service (`-A` / `-E`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    pub addr: ServiceAddr,
    pub scheduler: Scheduler,
    #[serde(default)]
    pub persistence: Option<Persistence>,
    #[serde(default)]
    pub sched_flags: SchedFlags,
}

/// Everything that defines a real server of a service (`-a` / `-e`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealSpec {
    /// Of the service's family, or of either family for a tunnel (`-i`), as IPVS allows.
    pub addr: IpAddr,
    pub port: u16,
    pub forward: Forward,
    /// 0..=65535 as in IPVS; 0 = quiescent (no new connections).
    pub weight: u32,
    /// Upper connection threshold (`-x`), 0 = none.
    #[serde(default)]
    pub upper_threshold: u32,
    /// Lower connection threshold (`-y`), 0 = none.
    #[serde(default)]
    pub lower_threshold: u32,
    /// The encapsulation of a tunnelled real server (`-i --tun-type ...`).
    #[serde(default)]
    pub tunnel: Tunnel,
}

/// Largest weight ipvsadm accepts.
pub const MAX_WEIGHT: u32 = 65535;

/// Longest timeout ipvsadm accepts (persistence, `--set`): 31 days.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

/// Connection timeouts (`--set tcp tcpfin udp`), in seconds; 0 in a request means "unchanged".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    /// IPVS's defaults: established TCP 900 s, FIN_WAIT 120 s, UDP 300 s.
    fn default() -> Self {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

/// A change to the configuration, as `lbadm` asks for it. Specs are complete: `lbadm` has
/// applied ipvsadm's defaults already.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Command {
    /// `-A`
    AddService { service: ServiceSpec },
    /// `-E`
    EditService { service: ServiceSpec },
    /// `-D`
    DeleteService { service: ServiceAddr },
    /// `-a`
    AddReal {
        service: ServiceAddr,
        real: RealSpec,
    },
    /// `-e`
    EditReal {
        service: ServiceAddr,
        real: RealSpec,
    },
    /// `-d`
    DeleteReal {
        service: ServiceAddr,
        addr: IpAddr,
        port: u16,
    },
    /// `-C`
    Clear,
    /// `-Z [service]`
    Zero { service: Option<ServiceAddr> },
    /// `--set tcp tcpfin udp`
    SetTimeouts { timeouts: Timeouts },
    /// `--sysctl NAME=VALUE` (lb's; IPVS's `sysctl -w net.ipv4.vs.NAME=VALUE`)
    SetSysctl {
        name: crate::sysctl::Sysctl,
        value: u32,
    },
    /// `--start-daemon master|backup [--mcast-interface IF] [--syncid N] ...`: as given (0 and
    /// `None` for the kernel's defaults, which lbd fills in when it starts the daemon).
    StartDaemon { daemon: crate::sync::SyncDaemon },
    /// `--stop-daemon master|backup`
    StopDaemon { role: crate::sync::Role },
}

/// Traffic counters of a service or real server (ipvsadm `--stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Stats {
    pub conns: u64,
    pub in_pkts: u64,
    pub out_pkts: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
}

/// Rates (ipvsadm `--rate`), per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Rates {
    pub cps: u64,
    pub in_pps: u64,
    pub out_pps: u64,
    pub in_bps: u64,
    pub out_bps: u64,
}

/// A real server as listed: its spec and live figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealStatus {
    pub spec: RealSpec,
    pub active_conns: u32,
    pub inactive_conns: u32,
    pub persistent_conns: u32,
    pub stats: Stats,
    pub rates: Rates,
}

/// A virtual service as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub spec: ServiceSpec,
    pub stats: Stats,
    pub rates: Rates,
    pub reals: Vec<RealStatus>,
}

/// One entry of the connection table (`-L -c`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionStatus {
    pub protocol: Protocol,
    /// Seconds until it expires.
    pub expires_in: u32,
    /// IPVS state name (`ESTABLISHED`, `FIN_WAIT`, `UDP`, ...).
    pub state: String,
    pub client: (IpAddr, u16),
    pub virtual_addr: (IpAddr, u16),
    pub real: (IpAddr, u16),
}

/// The running configuration with live figures, as `lbd` reports it.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Size of the connection table (ipvsadm prints it as `size=N` in its header).
    pub conn_table_size: u32,
    pub services: Vec<ServiceStatus>,
    pub timeouts: Timeouts,
}

/// ipvsadm's own spelling of a command, for logs (`-a -t 10.0.0.1:80 -r 10.0.0.2:80 -g -w 1`).
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let service = |f: &mut fmt::Formatter<'_>, s: &ServiceAddr| {
            write!(f, "{} {}", s.protocol.flag(), AddrPort(s.addr, s.port))
        };
        let spec = |f: &mut fmt::Formatter<'_>, s: &ServiceSpec| {
            service(f, &s.addr)?;
            write!(f, " -s {}", s.scheduler)?;
            let flags = s.sched_flags.names(s.scheduler);
            if !flags.is_empty() {
                write!(f, " -b {}", flags.join(","))?;
            }
            if let Some(p) = s.persistence {
                write!(f, " -p {}", p.timeout)?;
                if !p.netmask.is_host() {
                    write!(f, " -M {}", p.netmask)?;
                }
            }
            Ok(())
        };
        let real = |f: &mut fmt::Formatter<'_>, s: &ServiceAddr, r: &RealSpec| {
            service(f, s)?;
            write!(
                f,
                " -r {} {} -w {}",
                AddrPort(r.addr, r.port),
                r.forward.flag(),
                r.weight
            )?;
            if r.forward == Forward::Tunnel && r.tunnel.kind != TunnelType::Ipip {
                f.write_str(&r.tunnel.save_options())?;
            }
            if r.upper_threshold > 0 {
                write!(f, " -x {}", r.upper_threshold)?;
            }
            if r.lower_threshold > 0 {
                write!(f, " -y {}", r.lower_threshold)?;
            }
            Ok(())
        };
        match self {
            Command::AddService { service } => {
                f.write_str("-A ")?;
                spec(f, service)
            }
            Command::EditService { service } => {
                f.write_str("-E ")?;
                spec(f, service)
            }
            Command::DeleteService { service: s } => {
                f.write_str("-D ")?;
                service(f, s)
            }
            Command::AddReal {
                service: s,
                real: r,
            } => {
                f.write_str("-a ")?;
                real(f, s, r)
            }
            Command::EditReal {
                service: s,
                real: r,
            } => {
                f.write_str("-e ")?;
                real(f, s, r)
            }
            Command::DeleteReal {
                service: s,
                addr,
                port,
            } => {
                f.write_str("-d ")?;
                service(f, s)?;
                write!(f, " -r {}", AddrPort(*addr, *port))
            }
            Command::Clear => f.write_str("-C"),
            Command::Zero { service: None } => f.write_str("-Z"),
            Command::Zero { service: Some(s) } => {
                f.write_str("-Z ")?;
                service(f, s)
            }
            Command::SetTimeouts { timeouts: t } => {
                write!(f, "--set {} {} {}", t.tcp, t.tcp_fin, t.udp)
            }
            Command::SetSysctl { name, value } => write!(f, "--sysctl {name}={value}"),
            Command::StartDaemon { daemon: d } => {
                write!(
                    f,
                    "--start-daemon {} --mcast-interface {} --syncid {}",
                    d.role.name(),
                    d.mcast_ifn,
                    d.syncid
                )?;
                if d.sync_maxlen != 0 {
                    write!(f, " --sync-maxlen {}", d.sync_maxlen)?;
                }
                if let Some(group) = d.mcast_group {
                    write!(f, " --mcast-group {group}")?;
                }
                if d.mcast_port != 0 {
                    write!(f, " --mcast-port {}", d.mcast_port)?;
                }
                if d.mcast_ttl != 0 {
                    write!(f, " --mcast-ttl {}", d.mcast_ttl)?;
                }
                Ok(())
            }
            Command::StopDaemon { role } => write!(f, "--stop-daemon {}", role.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(scheduler: Scheduler, sched_flags: SchedFlags) -> Command {
        Command::AddService {
            service: ServiceSpec {
                addr: ServiceAddr {
                    protocol: Protocol::Tcp,
                    addr: Ipv4Addr::new(192, 168, 1, 99).into(),
                    port: 80,
                },
                scheduler,
                persistence: None,
                sched_flags,
            },
        }
    }

    #[test]
    fn logged_commands_carry_the_scheduler_flags() {
        let both = SchedFlags {
            fallback: true,
            port: true,
            flag3: false,
        };
        assert_eq!(
            service(Scheduler::Mh, both).to_string(),
            "-A -t 192.168.1.99:80 -s mh -b mh-fallback,mh-port"
        );
        assert_eq!(
            service(
                Scheduler::Wlc,
                SchedFlags {
                    flag3: true,
                    ..both
                }
            )
            .to_string(),
            "-A -t 192.168.1.99:80 -s wlc -b flag-1,flag-2,flag-3"
        );
        assert_eq!(
            service(Scheduler::Rr, SchedFlags::default()).to_string(),
            "-A -t 192.168.1.99:80 -s rr"
        );
    }

    #[test]
    fn netmasks_by_family() {
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let v4: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        assert_eq!(Netmask::host(v6), Netmask::V6(128));
        assert_eq!(Netmask::host(v4), Netmask::V4(Ipv4Addr::BROADCAST));
        assert!(Netmask::V6(128).is_host() && !Netmask::V6(64).is_host());
        // What the data path ANDs client addresses with.
        assert_eq!(Netmask::V6(64).to_addr(), lb_common::Addr::prefix_mask(64));
        assert_eq!(
            Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)).to_addr(),
            lb_common::Addr::from(Ipv4Addr::new(255, 255, 255, 0))
        );
        assert_eq!(Netmask::V6(48).to_string(), "48");
        // JSON: a string for an IPv4 mask (as state files before IPv6 have it), a number for
        // a prefix length.
        assert_eq!(serde_json::to_string(&Netmask::V6(64)).unwrap(), "64");
        assert_eq!(
            serde_json::from_str::<Netmask>("\"255.255.255.0\"").unwrap(),
            Netmask::V4(Ipv4Addr::new(255, 255, 255, 0))
        );
        assert_eq!(
            serde_json::from_str::<Netmask>("96").unwrap(),
            Netmask::V6(96)
        );
    }

    #[test]
    fn ipv6_commands_are_logged_in_ipvsadm_syntax() {
        let service = ServiceAddr {
            protocol: Protocol::Udp,
            addr: "2001:db8::1".parse().unwrap(),
            port: 53,
        };
        assert_eq!(service.family(), lb_common::AF_INET6);
        assert_eq!(service.to_string(), "UDP [2001:db8::1]:53");
        let command = Command::AddService {
            service: ServiceSpec {
                addr: service,
                scheduler: Scheduler::Sh,
                persistence: Some(Persistence {
                    timeout: 600,
                    netmask: Netmask::V6(64),
                }),
                sched_flags: SchedFlags::default(),
            },
        };
        assert_eq!(
            command.to_string(),
            "-A -u [2001:db8::1]:53 -s sh -p 600 -M 64"
        );
        let real = Command::AddReal {
            service,
            real: RealSpec {
                addr: Ipv4Addr::new(10, 0, 1, 1).into(),
                port: 53,
                forward: Forward::Tunnel,
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
                tunnel: Tunnel::default(),
            },
        };
        assert_eq!(
            real.to_string(),
            "-a -u [2001:db8::1]:53 -r 10.0.1.1:53 -i -w 1"
        );
    }
}
