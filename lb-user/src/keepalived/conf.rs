//! What the LVS part of a keepalived.conf says, with keepalived's defaults and inheritance
//! resolved: every value here is the one keepalived would use.

use std::{net::IpAddr, time::Duration};

use super::error::{Location, Note};
use crate::{
    health::{BodyRegex, DnsProbe, ScriptSpec, UdpProbe},
    model::{RealSpec, ServiceSpec, Timeouts},
};

/// The LVS configuration of a keepalived.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvsConfig {
    /// The `virtual_server` blocks in file order (those keepalived ignores left out, with a
    /// note).
    pub services: Vec<VirtualServer>,
    /// `global_defs { lvs_timeouts ... }`; a 0 leaves that timeout as it is.
    pub timeouts: Option<Timeouts>,
    /// `global_defs { lvs_flush }`: clear the whole IPVS table before setting up.
    pub flush: bool,
    /// The global `SSL { certificate, key }` block's client certificate, which SSL_GET
    /// checks present.
    pub client_cert: Option<std::sync::Arc<crate::health::ClientCert>>,
    /// What lb left aside or defaulted, in file order.
    pub notes: Vec<Note>,
}

/// A `virtual_server IP PORT { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualServer {
    /// Address, protocol (`protocol`), scheduler (`lb_algo` / `lvs_sched`), persistence
    /// (`persistence_timeout`, `persistence_granularity`), scheduler flags (`sh-port`, ...).
    pub spec: ServiceSpec,
    /// The real servers in file order, each with its forwarding method, port and weight as
    /// IPVS gets them.
    pub reals: Vec<RealServerConf>,
    /// Takes the real servers' place while the live weight is under quorum.
    pub sorry_server: Option<SorryServer>,
    /// Least total weight of live real servers for the service to count as up (`quorum`,
    /// default 1), lowered to the total weight of the real servers as keepalived does.
    pub quorum: u32,
    /// Weight units of tolerance around the quorum (`hysteresis`, default 0), kept under
    /// `quorum` as keepalived does.
    pub hysteresis: u32,
    /// `quorum_up` script.
    pub quorum_up: Option<Script>,
    /// `quorum_down` script.
    pub quorum_down: Option<Script>,
    /// `delay_loop` of the virtual server (default 60 s); the checks have their own, resolved.
    pub delay_loop: Duration,
    /// `alpha`: checks start failed. Already resolved into each check's `alpha`.
    pub alpha: bool,
    /// `omega`: run the quorum-down and real-server-down notifications on shutdown.
    pub omega: bool,
    /// `ha_suspend`: suspend the checks while the virtual address is not on this host.
    pub ha_suspend: bool,
    /// `virtual_server group NAME`: one of the group's addresses. The services of a group
    /// share their real servers' checks (run once) and scripts (run once).
    pub group: Option<String>,
    pub location: Location,
}

/// `sorry_server IP PORT` with `sorry_server_lvs_method` and `sorry_server_inhibit`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SorryServer {
    /// Weight 1, the forwarding method and port resolved as for real servers.
    pub spec: RealSpec,
    /// `sorry_server_inhibit`: kept in the table with weight 0 while not in use, rather than
    /// removed.
    pub inhibit: bool,
}

/// A `real_server IP PORT { ... }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServerConf {
    /// As IPVS gets it: the port is the service's for DR and TUN (and for NAT when none was
    /// given), the weight is `weight` or the virtual server's `weight` (default 1),
    /// `uthreshold` / `lthreshold` the thresholds.
    pub spec: RealSpec,
    /// `inhibit_on_failure` (its own, else the virtual server's): a failed real server is
    /// kept with weight 0 instead of being removed.
    pub inhibit_on_failure: bool,
    /// The health checks; with none, the real server is always up.
    pub checks: Vec<HealthCheck>,
    /// `notify_up` script.
    pub notify_up: Option<Script>,
    /// `notify_down` script.
    pub notify_down: Option<Script>,
    pub location: Location,
}

/// A health check of a real server (`TCP_CHECK`, `HTTP_GET`, ...), its settings resolved from
/// the check, the real server, the virtual server and keepalived's defaults in that order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: CheckKind,
    /// `connect_ip`, default the real server's address.
    pub addr: IpAddr,
    /// `connect_port`, default the real server's port as written; 0 for `PING_CHECK`.
    pub port: u16,
    /// `bindto`: source address.
    pub bindto: Option<IpAddr>,
    /// `bind_port`: source port.
    pub bind_port: Option<u16>,
    /// `connect_timeout`, default 5 s.
    pub connect_timeout: Duration,
    /// `retry` (`nb_get_retry`): further attempts before a live server counts as failed,
    /// default 1.
    pub retry: u32,
    /// `delay_before_retry`, default 1 s for TCP_CHECK, 3 s for HTTP_GET.
    pub delay_before_retry: Duration,
    /// `delay_loop`: interval between checks, default 60 s.
    pub delay_loop: Duration,
    /// `warmup`: the first check starts after a random delay up to this (default
    /// `delay_loop`; 0: at once).
    pub warmup: Duration,
    /// `alpha`: the check starts failed, so the real server only comes in once it passes.
    pub alpha: bool,
    /// `log_all_failures`: log every failure, not only state changes.
    pub log_all_failures: bool,
    pub location: Location,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckKind {
    /// `TCP_CHECK`: a connection is accepted.
    Tcp,
    /// `HTTP_GET`, or `SSL_GET` (the same over TLS).
    Http(HttpGet),
    /// `MISC_CHECK`: a program's exit status.
    Misc(MiscCheck),
    /// `SMTP_CHECK { helo_name }` (default `smtpchecker.keepalived.org`).
    Smtp { helo_name: String },
    /// `UDP_CHECK { payload, require_reply, min_reply_length, max_reply_length }`.
    Udp(UdpProbe),
    /// `DNS_CHECK { type, name }`.
    Dns(DnsProbe),
    /// `PING_CHECK`: an ICMP (ICMPv6) echo request is answered.
    Ping,
}

/// The program side of a `MISC_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MiscCheck {
    /// `misc_path` split into words, run as `user` (else `global_defs`' `script_user`, else
    /// the `keepalived_script` user if there is one, else lbd's own user).
    pub script: ScriptSpec,
    /// `misc_timeout`, default the virtual server's `delay_loop`.
    pub timeout: Duration,
    /// `misc_dynamic`: exit status 2-255 passes and sets the weight to status - 2.
    pub dynamic: bool,
}

/// The HTTP side of an `HTTP_GET` check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpGet {
    /// The `url` blocks, all of which must pass, at least one.
    pub urls: Vec<HttpUrl>,
    /// `http_protocol`, default 1.0.
    pub protocol: HttpVersion,
    /// `fast_recovery`: after a failure, check all the URLs at once rather than one per
    /// `delay_loop`.
    pub fast_recovery: bool,
    /// `SSL_GET`: the request goes over TLS, and as keepalived, the real server's certificate
    /// is not verified.
    pub tls: bool,
    /// SSL_GET's client certificate: the global `SSL { certificate, key }` block's.
    pub client_cert: Option<std::sync::Arc<crate::health::ClientCert>>,
}

/// A `url { path ... }` of an `HTTP_GET`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    pub path: String,
    /// `status_code`, default 200-299.
    pub status_codes: StatusCodes,
    /// The Host header: the url's `virtualhost`, else the check's, the real server's, the
    /// virtual server's; none sends the address.
    pub virtualhost: Option<String>,
    /// `digest`: the MD5 sum the body must have (as keepalived's `genhash` prints it).
    pub digest: Option<[u8; 16]>,
    /// `regex` with `regex_options`, `regex_no_match`, `regex_min_offset` and
    /// `regex_max_offset`: what the body must match, or not.
    pub regex: Option<BodyRegex>,
}

/// `http_protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum HttpVersion {
    /// `1.0`
    #[default]
    V1_0,
    /// `1.0C`: 1.0 with `Connection: close`.
    V1_0Close,
    /// `1.1` (with `Connection: close`).
    V1_1,
}

/// The status codes an `HTTP_GET` url accepts: ranges within 100-599.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatusCodes(pub(super) Vec<(u16, u16)>);

impl std::fmt::Display for StatusCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, &(lo, hi)) in self.0.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            match lo == hi {
                true => write!(f, "{sep}{lo}")?,
                false => write!(f, "{sep}{lo}-{hi}")?,
            }
        }
        Ok(())
    }
}

impl StatusCodes {
    /// Codes and inclusive ranges of codes.
    pub fn new(ranges: Vec<(u16, u16)>) -> Self {
        StatusCodes(ranges)
    }

    /// keepalived's default: any 2xx.
    pub fn success() -> Self {
        StatusCodes(vec![(200, 299)])
    }

    pub fn contains(&self, code: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| (lo..=hi).contains(&code))
    }

    /// Inclusive ranges, in the order written.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }
}

/// A notification script: `notify_up "/path/script arg" [user [group]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The command line as written (one word, quoted if it has arguments).
    pub command: String,
    pub user: Option<String>,
    pub group: Option<String>,
    /// What runs: the command split into words, and the user resolved as for `MISC_CHECK`.
    pub spec: ScriptSpec,
}
