//! The values of ipvsadm's options, read with ipvsadm's rules and refused with its messages:
//! numbers, timeouts, `host[:port]`, scheduler flags.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

use super::{
    error::CliError,
    names::Names,
    scan::{inet_aton, is_all_digits, string_to_number},
};
use crate::model::{Protocol, SchedFlags};

/// Persistence timeout when `-p` has no value: ipvsadm 1.31's IPVS_SVC_PERSISTENT_TIMEOUT,
/// 6 minutes (recorded in `tests/golden/ipvsadm/persistence.golden`; older manuals say 300).
pub const DEFAULT_PERSISTENT_TIMEOUT: u32 = 360;
pub use crate::model::MAX_TIMEOUT;

/// `strtol` into `min..=max`, or ipvsadm's message for that option.
pub(crate) fn number(value: &str, min: i64, max: i64, message: &str) -> Result<u32, CliError> {
    string_to_number(value, min, max)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| CliError::usage(message))
}

/// ipvsadm's `parse_timeout`: no value means the persistence default.
pub(crate) fn parse_timeout(value: Option<&str>, min: u32, max: u32) -> Result<u32, CliError> {
    let Some(value) = value else {
        return Ok(DEFAULT_PERSISTENT_TIMEOUT);
    };
    number(
        value,
        min.into(),
        max.into(),
        &format!("invalid timeout value `{value}' specified"),
    )
}

/// ipvsadm's `parse_service` for `host[:port]` and `[ipv6]:port`: `Ok(None)` when it is not
/// one (the caller words the error), the port only when one was written. An IPv6 address
/// (`inet_pton`) is taken in brackets with a port, or bare without one (`2001:db8::1:80` is one
/// address, no port). Otherwise hosts are dotted quads (any form `inet_aton` takes) or names
/// (IPv4 only, as `gethostbyname`); ports are numbers or service names of the protocol. As in
/// ipvsadm, brackets around something that is not IPv6 lose their port (`[10.0.0.1]:80` is
/// 10.0.0.1 without one).
pub(crate) fn parse_service(
    text: &str,
    protocol: Option<Protocol>,
    names: &dyn Names,
) -> Result<Option<(IpAddr, Option<u16>)>, CliError> {
    if is_all_digits(text) {
        return Ok(None);
    }
    let (host, mut port) = match text.strip_prefix('[') {
        Some(rest) => {
            let Some((inside, after)) = rest.split_once(']') else {
                return Ok(None);
            };
            let Some(port) = after.strip_prefix(':') else {
                return Ok(None);
            };
            (inside, Some(port))
        }
        None => (text, None),
    };
    let addr = if let Ok(v6) = Ipv6Addr::from_str(host) {
        IpAddr::V6(v6)
    } else {
        // ipvsadm looks for the port again in what is left (strrchr), whatever the brackets
        // said.
        let host = match host.rsplit_once(':') {
            Some((h, p)) => {
                port = Some(p);
                h
            }
            None => {
                port = None;
                host
            }
        };
        match inet_aton(host).or_else(|| names.host_addr(host)) {
            Some(v4) => IpAddr::V4(v4),
            None => return Ok(None),
        }
    };
    let port = match port {
        None => None,
        Some(port) => {
            let number = string_to_number(port, 0, 65535).and_then(|n| u16::try_from(n).ok());
            let named = || protocol.and_then(|p| names.service_port(port, p));
            match number.or_else(named) {
                Some(port) => Some(port),
                None => return Ok(None),
            }
        }
    };
    Ok(Some((addr, port)))
}

/// ipvsadm's `-M` for an IPv6 service: `atoi` of the value (so `48abc` is 48), 1 to 128.
pub(crate) fn parse_prefix_len(value: &str) -> Result<u8, CliError> {
    let len = atoi(value);
    if (1..=128).contains(&len) {
        Ok(len as u8)
    } else {
        Err(CliError::usage("illegal ipv6 netmask specified"))
    }
}

/// C's `atoi`: leading blanks, an optional sign, then digits as far as they go; 0 if none.
fn atoi(value: &str) -> i64 {
    let s = value.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if negative { -n } else { n }
}

/// ipvsadm's `parse_sched_flags`: a comma-separated list; the scheduler-specific names only go
/// with their scheduler (`sched` is the `-s` value as written, or wlc).
pub(crate) fn parse_sched_flags(sched: &str, arg: &str) -> Result<SchedFlags, CliError> {
    let mut flags = SchedFlags::default();
    for flag in arg.split(',').filter(|f| !f.is_empty()) {
        let (bit, only_for) = match flag {
            "flag-1" => (&mut flags.fallback, None),
            "flag-2" => (&mut flags.port, None),
            "flag-3" => (&mut flags.flag3, None),
            "sh-fallback" => (&mut flags.fallback, Some("sh")),
            "sh-port" => (&mut flags.port, Some("sh")),
            "mh-fallback" => (&mut flags.fallback, Some("mh")),
            "mh-port" => (&mut flags.port, Some("mh")),
            _ => {
                return Err(CliError::usage(format!("invalid scheduler flag `{flag}'")));
            }
        };
        *bit = true;
        if only_for.is_some_and(|s| s != sched) {
            return Err(CliError::usage(format!(
                "incompatible scheduler flag `{flag}'"
            )));
        }
    }
    Ok(flags)
}

/// ipvsadm's check of `--mcast-group`: a multicast address of either family.
pub(crate) fn check_mcast_group(value: &str) -> Result<IpAddr, CliError> {
    if value.contains(':') {
        match Ipv6Addr::from_str(value) {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V6(a)),
            _ => Err(CliError::usage(format!(
                "invalid IPv6 mcast-group `{value}'"
            ))),
        }
    } else {
        match Ipv4Addr::from_str(value) {
            Ok(a) if a.is_multicast() => Ok(IpAddr::V4(a)),
            _ => Err(CliError::usage(format!(
                "invalid IPv4 mcast-group `{value}'"
            ))),
        }
    }
}
