//! Health checks of real servers, as keepalived's checkers do them (`TCP_CHECK`, `HTTP_GET`,
//! `MISC_CHECK`, `SMTP_CHECK`, `UDP_CHECK`, `DNS_CHECK`, `PING_CHECK`).
//!
//! Each check of a real server runs every `delay_loop`; a failed attempt is retried `retry`
//! times, `delay_before_retry` apart, before the check is declared down, and a down check is
//! up again on its first success. A real server is up while all its checks are. The rules are
//! the pure state machine of [`state`]; [`spawn`] runs them on tokio, one task per real server,
//! and reports each change of a real server's state as an [`Event`].
//!
//! Real servers start **up** (keepalived's default without `alpha`), and no event is sent for
//! that: a real server dead at start-up is reported down after its first failed attempt. With
//! `alpha` a check starts failed, and its first result is reported either way.
//!
//! [`script`] runs the programs keepalived runs: `MISC_CHECK`s and the `notify_*` scripts.

pub mod body_regex;
mod icmp;
mod probe;
mod runner;
pub mod script;
pub mod state;
mod tls;

#[cfg(test)]
mod io_tests;

use std::{fmt, net::IpAddr, sync::Arc, time::Duration};

pub use crate::keepalived::{HttpVersion, StatusCodes};
use crate::model::ServiceAddr;
pub use body_regex::BodyRegex;
pub use runner::{EVENT_QUEUE, HealthChecker, spawn};
pub use script::ScriptSpec;
pub use tls::{ClientCert, ClientCertError, certificates};

/// keepalived's defaults for the settings a check leaves out.
pub mod defaults {
    use std::time::Duration;

    /// `delay_loop` (a virtual server's default).
    pub const DELAY_LOOP: Duration = Duration::from_secs(60);
    /// `connect_timeout` (a virtual server's default).
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    /// `retry` of TCP_CHECK and HTTP_GET.
    pub const RETRY: u32 = 1;
    /// `delay_before_retry` of TCP_CHECK.
    pub const TCP_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(1);
    /// `delay_before_retry` of HTTP_GET.
    pub const HTTP_DELAY_BEFORE_RETRY: Duration = Duration::from_secs(3);
}

/// Which real server of which service a target is: the identity events are reported under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetKey {
    pub service: ServiceAddr,
    pub real: IpAddr,
    pub port: u16,
}

impl fmt::Display for TargetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {}",
            self.service,
            crate::model::AddrPort(self.real, self.port)
        )
    }
}

/// A real server to check: how, and what its checks make of its weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub key: TargetKey,
    /// The weight configured (keepalived's `iweight`), which `misc_dynamic` checks adjust.
    pub weight: u32,
    /// All must pass for the real server to be up; none means it is always up.
    pub checks: Vec<CheckSpec>,
    /// `ha_suspend`: the checks are suspended while this address (the virtual server's) is
    /// not on one of this host's interfaces.
    pub suspend_unless_local: Option<IpAddr>,
}

/// One check of a real server, its settings resolved as keepalived resolves them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CheckSpec {
    pub probe: Probe,
    /// Address the check connects to: `connect_ip`, else the real server's (either family).
    pub addr: IpAddr,
    /// `connect_port`, else the real server's port (unused by MISC_CHECK).
    pub port: u16,
    /// `bindto`: the source address of the check's connections (of `addr`'s family).
    pub bindto: Option<IpAddr>,
    /// `bind_port`: their source port.
    pub bind_port: Option<u16>,
    pub connect_timeout: Duration,
    /// Failed attempts retried before a live checker counts as failed.
    pub retry: u32,
    pub delay_before_retry: Duration,
    pub delay_loop: Duration,
    /// The first attempt comes after a random delay up to this (0: at once).
    pub warmup: Duration,
    /// `alpha`: the checker starts failed.
    pub alpha: bool,
    /// `log_all_failures`: every failed attempt is logged, not only changes.
    pub log_all_failures: bool,
}

/// What a check does.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Probe {
    /// `TCP_CHECK`: a TCP connection can be established.
    Tcp,
    /// `HTTP_GET`: each url answers with one of its status codes.
    Http(HttpProbe),
    /// `MISC_CHECK`: a program exits with 0 (or, with `misc_dynamic`, 2-255).
    Misc(MiscProbe),
    /// `SMTP_CHECK`: a 220 banner, 250 to `HELO helo_name`, then any answer to `QUIT`.
    Smtp { helo_name: String },
    /// `UDP_CHECK`: a datagram draws no ICMP error (or the reply it must draw).
    Udp(UdpProbe),
    /// `DNS_CHECK`: a query draws an answer without error.
    Dns(DnsProbe),
    /// `PING_CHECK`: an ICMP (ICMPv6) echo request draws its echo reply.
    Ping,
}

/// A `UDP_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct UdpProbe {
    /// `payload` (hex); none sends keepalived's 32 bytes of `keepalived check - `.
    pub payload: Option<Vec<u8>>,
    /// `require_reply`: silence until `connect_timeout` fails (else it passes).
    pub require_reply: bool,
    /// `require_reply HEX`: the reply starts with these bytes, where the mask has 0 bits
    /// (`X` digits are wildcards); then `min_reply_length` / `max_reply_length` apply too.
    pub reply: Option<(Vec<u8>, Vec<u8>)>,
    pub min_reply_length: u16,
    pub max_reply_length: u16,
}

/// A `DNS_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsProbe {
    /// The query type (`type`, default SOA = 6).
    pub qtype: u16,
    /// `name`, default `.`.
    pub name: String,
}

/// The HTTP side of an `HTTP_GET`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpProbe {
    /// Checked one after the other, as keepalived does: one url per attempt.
    pub urls: Vec<UrlProbe>,
    pub protocol: HttpVersion,
    /// `fast_recovery`: while recovering (or in alpha mode at start), the urls are checked
    /// back to back rather than one per `delay_loop`.
    pub fast_recovery: bool,
    /// `SSL_GET`: the same exchange over TLS, the certificate unverified (as keepalived).
    pub tls: bool,
    /// SSL_GET's client certificate (keepalived's global `SSL { certificate, key }`),
    /// presented when the real server asks for one.
    pub client_cert: Option<Arc<ClientCert>>,
}

/// One `url` of an `HTTP_GET`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UrlProbe {
    pub path: String,
    pub status_codes: StatusCodes,
    /// The Host header (`virtualhost`); none sends `address:port`.
    pub host: Option<String>,
    /// `digest`: the MD5 sum of the body; the whole response is then read.
    pub digest: Option<[u8; 16]>,
    /// `regex`: what the body must match (or not); the whole response is then read.
    pub regex: Option<BodyRegex>,
}

/// A `MISC_CHECK`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MiscProbe {
    pub script: ScriptSpec,
    /// `misc_timeout`; none: the virtual server's `delay_loop`, as keepalived.
    pub timeout: Duration,
    /// `misc_dynamic`: an exit status of 2-255 is a success that sets the weight to status - 2.
    pub dynamic: bool,
}

impl CheckSpec {
    /// `TCP_CHECK` of `addr:port` with keepalived's defaults (no warmup).
    pub fn tcp(addr: impl Into<IpAddr>, port: u16) -> Self {
        CheckSpec {
            probe: Probe::Tcp,
            addr: addr.into(),
            port,
            bindto: None,
            bind_port: None,
            connect_timeout: defaults::CONNECT_TIMEOUT,
            retry: defaults::RETRY,
            delay_before_retry: defaults::TCP_DELAY_BEFORE_RETRY,
            delay_loop: defaults::DELAY_LOOP,
            warmup: Duration::ZERO,
            alpha: false,
            log_all_failures: false,
        }
    }

    /// `HTTP_GET` of `path` on `addr:port` with keepalived's defaults (any 2xx passes).
    pub fn http(addr: impl Into<IpAddr>, port: u16, path: impl Into<String>) -> Self {
        CheckSpec {
            probe: Probe::Http(HttpProbe {
                urls: vec![UrlProbe {
                    path: path.into(),
                    status_codes: StatusCodes::success(),
                    host: None,
                    digest: None,
                    regex: None,
                }],
                protocol: HttpVersion::V1_0,
                fast_recovery: false,
                tls: false,
                client_cert: None,
            }),
            delay_before_retry: defaults::HTTP_DELAY_BEFORE_RETRY,
            ..CheckSpec::tcp(addr, port)
        }
    }

    /// The retry and scheduling rules of this check.
    pub fn policy(&self) -> state::Policy {
        let rules = match &self.probe {
            Probe::Http(http) => state::Rules::Http {
                urls: http.urls.len(),
                fast_recovery: http.fast_recovery,
            },
            Probe::Misc(_) => state::Rules::Misc,
            // smtp_final(), udp_epilog() and dns_final() follow tcp_epilog()'s rules.
            // icmp_epilog() too.
            Probe::Tcp | Probe::Smtp { .. } | Probe::Udp(_) | Probe::Dns(_) | Probe::Ping => {
                state::Rules::Tcp
            }
        };
        state::Policy {
            rules,
            delay_loop: self.delay_loop,
            retry: self.retry,
            delay_before_retry: self.delay_before_retry,
            alpha: self.alpha,
        }
    }

    /// Refuses what keepalived's parser refuses, and what would make a check spin.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.delay_loop.is_zero() {
            return Err(SpecError::ZeroDelayLoop);
        }
        match &self.probe {
            Probe::Misc(misc) => {
                if misc.script.argv.is_empty() {
                    return Err(SpecError::NoProgram);
                }
            }
            _ => {
                if self.connect_timeout.is_zero() {
                    return Err(SpecError::ZeroConnectTimeout);
                }
                // ICMP has no ports.
                if self.port == 0 && self.probe != Probe::Ping {
                    return Err(SpecError::ZeroPort);
                }
            }
        }
        if let Probe::Http(http) = &self.probe {
            if http.urls.is_empty() {
                return Err(SpecError::NoUrl);
            }
            for url in &http.urls {
                let path = &url.path;
                // The path goes verbatim into the request line.
                if !path.starts_with('/')
                    || path.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20)
                {
                    return Err(SpecError::BadPath(path.clone()));
                }
                if let Some(host) = &url.host
                    && (host.is_empty()
                        || host.bytes().any(|b| b.is_ascii_whitespace() || b < 0x20))
                {
                    return Err(SpecError::BadHost(host.clone()));
                }
            }
        }
        Ok(())
    }
}

impl Target {
    pub fn validate(&self) -> Result<(), TargetError> {
        for check in &self.checks {
            check.validate().map_err(|error| TargetError::Check {
                key: self.key,
                error,
            })?;
        }
        Ok(())
    }
}

/// A check that cannot run as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("delay_loop must be positive")]
    ZeroDelayLoop,
    #[error("connect_timeout must be positive")]
    ZeroConnectTimeout,
    #[error("port must not be 0")]
    ZeroPort,
    #[error("HTTP_GET needs at least one url")]
    NoUrl,
    #[error("MISC_CHECK needs a program (misc_path)")]
    NoProgram,
    #[error("invalid HTTP path {0:?}: must start with '/' and contain no spaces or controls")]
    BadPath(String),
    #[error("invalid virtualhost {0:?}: must be non-empty, without spaces or controls")]
    BadHost(String),
}

/// A target set that cannot be adopted; nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{key}: {error}")]
    Check { key: TargetKey, error: SpecError },
    #[error("{0}: listed more than once")]
    DuplicateKey(TargetKey),
}

/// A real server changed state or weight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub key: TargetKey,
    pub up: bool,
    /// The weight its checks give it: the configured one, unless a `misc_dynamic` check set
    /// another (keepalived's effective weight, within 0-65535).
    pub weight: u32,
    /// What decided it, e.g. `HTTP_GET http://10.0.0.12:80/ returned 503`.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const RS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 12);

    #[test]
    fn defaults_are_keepalived_s() {
        let p = CheckSpec::tcp(RS, 80).policy();
        assert_eq!(p.retry, 1);
        assert_eq!(p.delay_before_retry, Duration::from_secs(1));
        assert_eq!(p.delay_loop, Duration::from_secs(60));
        assert!(!p.alpha);
        let h = CheckSpec::http(RS, 80, "/");
        assert_eq!(h.connect_timeout, Duration::from_secs(5));
        assert_eq!(h.policy().delay_before_retry, Duration::from_secs(3));
        assert_eq!(
            h.policy().rules,
            state::Rules::Http {
                urls: 1,
                fast_recovery: false
            }
        );
    }

    #[test]
    fn validation() {
        assert_eq!(CheckSpec::tcp(RS, 80).validate(), Ok(()));
        assert_eq!(CheckSpec::tcp(RS, 0).validate(), Err(SpecError::ZeroPort));
        assert_eq!(CheckSpec::http(RS, 80, "/health?x=1").validate(), Ok(()));
        for bad in ["", "health", "/a b", "/a\r\nX: y"] {
            assert_eq!(
                CheckSpec::http(RS, 80, bad).validate(),
                Err(SpecError::BadPath(bad.into()))
            );
        }
        let tcp = CheckSpec {
            delay_loop: Duration::ZERO,
            ..CheckSpec::tcp(RS, 80)
        };
        assert_eq!(tcp.validate(), Err(SpecError::ZeroDelayLoop));
        let mut http = CheckSpec::http(RS, 80, "/");
        if let Probe::Http(h) = &mut http.probe {
            h.urls[0].host = Some("a b".into());
        }
        assert_eq!(http.validate(), Err(SpecError::BadHost("a b".into())));
        let misc = CheckSpec {
            probe: Probe::Misc(MiscProbe {
                script: ScriptSpec::default(),
                timeout: Duration::from_secs(1),
                dynamic: false,
            }),
            port: 0,
            ..CheckSpec::tcp(RS, 0)
        };
        assert_eq!(misc.validate(), Err(SpecError::NoProgram));
    }
}
