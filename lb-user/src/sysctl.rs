//! IPVS's settings that live in sysctls (`net.ipv4.vs.*`), for the ones that apply to lb.
//!
//! On LVS an operator runs `sysctl -w net.ipv4.vs.sloppy_tcp=1`; with lb the same name and
//! value go to `lbadm --sysctl net.ipv4.vs.sloppy_tcp=1` (or `lbd --sysctl` at start), and
//! `lbadm --sysctl` lists them as `sysctl` prints them. The values are lbd's running
//! configuration: saved with it, and kept across restarts.
//!
//! Pure: parsing and formatting; lbd applies a change as [`crate::model::Command::SetSysctl`].

use std::fmt;

use serde::{Deserialize, Serialize};

/// The prefix IPVS's sysctls have; lbadm accepts names with or without it.
pub const PREFIX: &str = "net.ipv4.vs.";

/// A setting lb implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sysctl {
    /// `sloppy_tcp` (0 or 1, default 0): a connection may start with any TCP segment but a
    /// RST, not only a SYN, so a director that takes over from another (VRRP, ECMP) picks up
    /// established connections mid-stream.
    SloppyTcp,
    /// `expire_nodest_conn` (0 or 1, default 0): a packet of a connection whose real server
    /// was deleted expires the connection (it may then open a new one) instead of being
    /// dropped; and a SYN on the ports of a connection to a real server of weight 0 starts a
    /// new connection.
    ExpireNodestConn,
    /// `expire_quiescent_template` (0 or 1, default 0): a persistence template whose real
    /// server has weight 0 is dropped, and the client scheduled afresh, instead of still
    /// sending its new connections there.
    ExpireQuiescentTemplate,
    /// `conn_reuse_mode` (0 to 3, default 1): when a SYN reusing a connection's ports starts a
    /// new connection. 0: never; bit 1: when the old one is in TIME_WAIT or CLOSE (and, with
    /// `expire_nodest_conn`, when its real server has weight 0); bit 2: also in FIN_WAIT for
    /// DR and TUN, the last state a director that sees one direction knows.
    ConnReuseMode,
}

impl Sysctl {
    pub const ALL: [Sysctl; 4] = [
        Sysctl::ConnReuseMode,
        Sysctl::ExpireNodestConn,
        Sysctl::ExpireQuiescentTemplate,
        Sysctl::SloppyTcp,
    ];

    /// The name without [`PREFIX`].
    pub const fn name(self) -> &'static str {
        match self {
            Sysctl::SloppyTcp => "sloppy_tcp",
            Sysctl::ExpireNodestConn => "expire_nodest_conn",
            Sysctl::ExpireQuiescentTemplate => "expire_quiescent_template",
            Sysctl::ConnReuseMode => "conn_reuse_mode",
        }
    }

    /// The values lb accepts for it.
    fn check(self, value: u32) -> Result<u32, SysctlError> {
        let (max, range) = match self {
            Sysctl::ConnReuseMode => (3, "0 to 3"),
            _ => (1, "0 or 1"),
        };
        if value <= max {
            Ok(value)
        } else {
            Err(SysctlError::Range {
                name: self.name(),
                value,
                range,
            })
        }
    }
}

/// The settings' values (IPVS's defaults when not set).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctls {
    #[serde(default)]
    pub sloppy_tcp: bool,
    #[serde(default)]
    pub expire_nodest_conn: bool,
    #[serde(default)]
    pub expire_quiescent_template: bool,
    #[serde(default = "default_conn_reuse_mode")]
    pub conn_reuse_mode: u32,
}

fn default_conn_reuse_mode() -> u32 {
    1
}

impl Default for Sysctls {
    fn default() -> Self {
        Sysctls {
            sloppy_tcp: false,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            conn_reuse_mode: default_conn_reuse_mode(),
        }
    }
}

impl Sysctls {
    pub fn get(&self, sysctl: Sysctl) -> u32 {
        match sysctl {
            Sysctl::SloppyTcp => u32::from(self.sloppy_tcp),
            Sysctl::ExpireNodestConn => u32::from(self.expire_nodest_conn),
            Sysctl::ExpireQuiescentTemplate => u32::from(self.expire_quiescent_template),
            Sysctl::ConnReuseMode => self.conn_reuse_mode,
        }
    }

    /// Sets a value [`parse_assignment`] checked.
    pub fn set(&mut self, sysctl: Sysctl, value: u32) {
        match sysctl {
            Sysctl::SloppyTcp => self.sloppy_tcp = value != 0,
            Sysctl::ExpireNodestConn => self.expire_nodest_conn = value != 0,
            Sysctl::ExpireQuiescentTemplate => self.expire_quiescent_template = value != 0,
            Sysctl::ConnReuseMode => self.conn_reuse_mode = value,
        }
    }

    /// The data path's copy of the flags (all clear is IPVS's defaults; lbd adds the timeouts).
    pub fn to_data_path(self) -> lb_common::Settings {
        let mut flags = 0;
        let mut set = |on: bool, flag: u32| {
            if on {
                flags |= flag;
            }
        };
        set(self.sloppy_tcp, lb_common::SETTINGS_F_SLOPPY_TCP);
        set(
            self.expire_nodest_conn,
            lb_common::SETTINGS_F_EXPIRE_NODEST_CONN,
        );
        set(
            self.expire_quiescent_template,
            lb_common::SETTINGS_F_EXPIRE_QUIESCENT_TEMPLATE,
        );
        set(
            self.conn_reuse_mode == 0,
            lb_common::SETTINGS_F_CONN_REUSE_OFF,
        );
        set(
            self.conn_reuse_mode & 2 != 0,
            lb_common::SETTINGS_F_CONN_REUSE_FIN_WAIT,
        );
        lb_common::Settings {
            flags,
            ..lb_common::Settings::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SysctlError {
    #[error("sysctl: cannot stat /proc/sys/{}: No such file or directory (lb implements: {})",
        .0.replace('.', "/"), known_names())]
    Unknown(String),
    #[error(
        "sysctl: setting key \"{PREFIX}{name}\": Invalid argument ({value}: {name} is {range})"
    )]
    Range {
        name: &'static str,
        value: u32,
        range: &'static str,
    },
    #[error("sysctl: \"{0}\" must be of the form name=value")]
    Malformed(String),
}

fn known_names() -> String {
    Sysctl::ALL
        .iter()
        .map(|s| format!("{PREFIX}{}", s.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `sloppy_tcp` or `net.ipv4.vs.sloppy_tcp` (also with `/` for `.`, as sysctl takes it).
pub fn parse_name(text: &str) -> Result<Sysctl, SysctlError> {
    let dotted = text.trim().replace('/', ".");
    let short = dotted.strip_prefix(PREFIX).unwrap_or(&dotted);
    Sysctl::ALL
        .into_iter()
        .find(|s| s.name() == short)
        .ok_or_else(|| SysctlError::Unknown(format!("{PREFIX}{short}")))
}

/// `name=value`, as `sysctl -w` takes it (spaces around `=` allowed).
pub fn parse_assignment(text: &str) -> Result<(Sysctl, u32), SysctlError> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| SysctlError::Malformed(text.to_owned()))?;
    let sysctl = parse_name(name)?;
    let value: u32 = value
        .trim()
        .parse()
        .map_err(|_| SysctlError::Malformed(text.to_owned()))?;
    Ok((sysctl, sysctl.check(value)?))
}

/// One line per setting, as `sysctl NAME` prints it: `net.ipv4.vs.sloppy_tcp = 0`.
pub fn format(values: &Sysctls, only: Option<Sysctl>) -> String {
    let mut out = String::new();
    for sysctl in Sysctl::ALL {
        if only.is_none_or(|o| o == sysctl) {
            out.push_str(&format!(
                "{PREFIX}{} = {}\n",
                sysctl.name(),
                values.get(sysctl)
            ));
        }
    }
    out
}

impl fmt::Display for Sysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_the_prefix() {
        assert_eq!(parse_name("sloppy_tcp"), Ok(Sysctl::SloppyTcp));
        assert_eq!(parse_name("net.ipv4.vs.sloppy_tcp"), Ok(Sysctl::SloppyTcp));
        assert_eq!(parse_name("net/ipv4/vs/sloppy_tcp"), Ok(Sysctl::SloppyTcp));
        let unknown = parse_name("net.ipv4.vs.am_droprate").unwrap_err();
        assert_eq!(
            unknown.to_string(),
            "sysctl: cannot stat /proc/sys/net/ipv4/vs/am_droprate: No such file or directory \
             (lb implements: net.ipv4.vs.conn_reuse_mode, net.ipv4.vs.expire_nodest_conn, \
             net.ipv4.vs.expire_quiescent_template, net.ipv4.vs.sloppy_tcp)"
        );
    }

    #[test]
    fn assignments_are_checked() {
        assert_eq!(
            parse_assignment("net.ipv4.vs.sloppy_tcp=1"),
            Ok((Sysctl::SloppyTcp, 1))
        );
        assert_eq!(
            parse_assignment("sloppy_tcp = 0"),
            Ok((Sysctl::SloppyTcp, 0))
        );
        assert!(matches!(
            parse_assignment("sloppy_tcp=2"),
            Err(SysctlError::Range { value: 2, .. })
        ));
        assert!(matches!(
            parse_assignment("sloppy_tcp"),
            Err(SysctlError::Malformed(_))
        ));
        assert!(matches!(
            parse_assignment("sloppy_tcp=yes"),
            Err(SysctlError::Malformed(_))
        ));
    }

    #[test]
    fn ranges_are_the_kernels() {
        assert_eq!(
            parse_assignment("conn_reuse_mode=3"),
            Ok((Sysctl::ConnReuseMode, 3))
        );
        assert!(parse_assignment("conn_reuse_mode=4").is_err());
        assert!(parse_assignment("expire_nodest_conn=2").is_err());
        assert_eq!(
            parse_assignment("net.ipv4.vs.expire_quiescent_template=1"),
            Ok((Sysctl::ExpireQuiescentTemplate, 1))
        );
    }

    #[test]
    fn ipvs_defaults_are_all_flags_clear() {
        assert_eq!(Sysctls::default().conn_reuse_mode, 1);
        assert_eq!(Sysctls::default().to_data_path().flags, 0);
        let mut values = Sysctls::default();
        values.set(Sysctl::ConnReuseMode, 0);
        assert_eq!(
            values.to_data_path().flags,
            lb_common::SETTINGS_F_CONN_REUSE_OFF
        );
        values.set(Sysctl::ConnReuseMode, 3);
        values.set(Sysctl::ExpireNodestConn, 1);
        values.set(Sysctl::ExpireQuiescentTemplate, 1);
        assert_eq!(
            values.to_data_path().flags,
            lb_common::SETTINGS_F_CONN_REUSE_FIN_WAIT
                | lb_common::SETTINGS_F_EXPIRE_NODEST_CONN
                | lb_common::SETTINGS_F_EXPIRE_QUIESCENT_TEMPLATE
        );
        // A state file from before these settings existed reads as the defaults.
        let old: Sysctls = serde_json::from_str(r#"{"sloppy_tcp":true}"#).unwrap();
        assert_eq!(old.conn_reuse_mode, 1);
        assert!(old.sloppy_tcp && !old.expire_nodest_conn);
    }

    #[test]
    fn listed_as_sysctl_prints_them() {
        let mut values = Sysctls::default();
        assert_eq!(
            format(&values, None),
            "net.ipv4.vs.conn_reuse_mode = 1\n\
             net.ipv4.vs.expire_nodest_conn = 0\n\
             net.ipv4.vs.expire_quiescent_template = 0\n\
             net.ipv4.vs.sloppy_tcp = 0\n"
        );
        values.set(Sysctl::SloppyTcp, 1);
        assert_eq!(
            format(&values, Some(Sysctl::SloppyTcp)),
            "net.ipv4.vs.sloppy_tcp = 1\n"
        );
        assert_eq!(
            values.to_data_path().flags,
            lb_common::SETTINGS_F_SLOPPY_TCP
        );
        assert_eq!(Sysctls::default().to_data_path().flags, 0);
    }
}
