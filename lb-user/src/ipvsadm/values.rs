//! The values of ipvsadm's options, read with ipvsadm's rules and refused with its messages:
//! numbers, timeouts, `host[:port]`, scheduler flags.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
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
/// Longest timeout ipvsadm accepts: 31 days.
pub const MAX_TIMEOUT: u32 = 86400 * 31;

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

/// ipvsadm's `parse_service` for `host[:port]`: `Ok(None)` when it is not one (the caller
/// words the error), the port only when one was written. Hosts are dotted quads (any form
/// `inet_aton` takes) or names; ports are numbers or service names of the protocol.
pub(crate) fn parse_service(
    text: &str,
    protocol: Option<Protocol>,
    names: &dyn Names,
) -> Result<Option<(Ipv4Addr, Option<u16>)>, CliError> {
    if is_all_digits(text) {
        return Ok(None);
    }
    if text.starts_with('[') || Ipv6Addr::from_str(text).is_ok() {
        return Err(CliError::unsupported("IPv6 is"));
    }
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    };
    let Some(addr) = inet_aton(host).or_else(|| names.host_addr(host)) else {
        return Ok(None);
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
pub(crate) fn check_mcast_group(value: &str) -> Result<(), CliError> {
    if value.contains(':') {
        match Ipv6Addr::from_str(value) {
            Ok(a) if a.is_multicast() => Ok(()),
            _ => Err(CliError::usage(format!(
                "invalid IPv6 mcast-group `{value}'"
            ))),
        }
    } else {
        match Ipv4Addr::from_str(value) {
            Ok(a) if a.is_multicast() => Ok(()),
            _ => Err(CliError::usage(format!(
                "invalid IPv4 mcast-group `{value}'"
            ))),
        }
    }
}
