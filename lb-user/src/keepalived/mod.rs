//! The LVS part of a keepalived.conf, read as keepalived reads it, so that a director run by
//! keepalived can keep its configuration with lb in place of IPVS.
//!
//! keepalived keeps running VRRP (it moves the virtual addresses between directors); lb takes
//! the `virtual_server` blocks: the services, their real servers and their health checks.
//! Everything else (`global_defs`, `vrrp_instance`, `vrrp_script`, `static_ipaddress`, ...)
//! is skipped with a [`Note`], apart from `global_defs`' `lvs_timeouts` and `lvs_flush`.
//!
//! The whole file, includes too, is checked before anything is returned: a file with any
//! [`ConfigError`] gives all of them, each with its file and line, and no configuration.
//!
//! IPv6 virtual and real servers work as IPv4 ones (`-i`/TUN may mix the families, as IPVS
//! allows; DR and NAT may not). What lb refuses ([`ErrorKind::Unsupported`]): scoped IPv6
//! addresses, IPv6 `virtual_server_group` entries, `virtual_server fwmark` (and `fwmark`
//! entries of a `virtual_server_group`), SCTP, one-packet scheduling (`ops`) on
//! UDP, persistence engines, the twos scheduler,
//! `BFD_CHECK` and `FILE_CHECK`, `SSL_GET`'s TLS
//! settings, `bind_if` and `fwmark` of checks, keepalived's `$` parameters and `~SEQ` blocks.
//! Every other keyword works as in keepalived, or is noted as left aside with the reason
//! (`smtp_alert`, `snmp_name`, `lvs_sync_daemon`, ...): `keyword_walk` tests that none is
//! silently ignored. Conditional lines (`@id ...`) are read as keepalived reads
//! them, for the configuration id of [`ReadOptions`].
//!
//! Where keepalived would log an error and go on without the line (a bad value, an unknown
//! keyword, `HTTP_GET` without a url), lb refuses the file. Where keepalived applies a
//! default with a warning (no `lb_kind`: NAT; no `protocol`: UDP; no `lb_algo`: wlc; a DR real
//! server port reset to the service's; a quorum above the total weight), lb applies the same
//! and notes it.
//!
//! How it is used:
//! 1. [`parse_file`] (or [`parse_str`]); on error print the [`ConfigErrors`], one per line.
//! 2. Show the [`LvsConfig::notes`].
//! 3. Send [`LvsConfig::commands`]: the IPVS table keepalived would set up at start. The
//!    health checks ([`RealServerConf::checks`]) then decide which real servers stay.
//!
//! `example.conf` next to this file is a complete sample of what lb takes.

mod conf;
mod error;
mod files;
mod lex;
mod lvs;
mod startup;
mod tree;
mod values;

#[cfg(test)]
mod keyword_walk;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use conf::{
    CheckKind, HealthCheck, HttpGet, HttpUrl, HttpVersion, LvsConfig, MiscCheck, RealServerConf,
    Script, SorryServer, StatusCodes, VirtualServer,
};
use error::Report;
pub use error::{ConfigError, ConfigErrors, ErrorKind, Location, Note};
use files::{Files, RealFiles};

/// Where keepalived looks for its configuration by default.
pub const DEFAULT_PATH: &str = "/etc/keepalived/keepalived.conf";

/// What keepalived's command line says about reading its configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// keepalived's `-i` / `--config-id`: the `@id` lines that apply. `None`: the host name up
    /// to its first dot, as keepalived.
    pub config_id: Option<String>,
}

impl ReadOptions {
    fn config_id(&self) -> String {
        self.config_id.clone().unwrap_or_else(|| {
            // uname's node name, which is what /proc shows for this UTS namespace.
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            let host = host.trim();
            host.split('.').next().unwrap_or(host).to_owned()
        })
    }
}

/// Reads the LVS configuration of the keepalived.conf at `path` and the files it includes.
pub fn parse_file(path: &Path) -> Result<LvsConfig, ConfigErrors> {
    parse_file_with(path, &ReadOptions::default())
}

/// [`parse_file`] with keepalived's command-line options.
pub fn parse_file_with(path: &Path, options: &ReadOptions) -> Result<LvsConfig, ConfigErrors> {
    read_file(&RealFiles, path, &options.config_id())
}

/// Reads the LVS configuration in `text`. `name` is the file name errors and notes give; an
/// `include` in `text` reads files relative to its directory.
pub fn parse_str(text: &str, name: &str) -> Result<LvsConfig, ConfigErrors> {
    parse_str_with(text, name, &ReadOptions::default())
}

/// [`parse_str`] with keepalived's command-line options.
pub fn parse_str_with(
    text: &str,
    name: &str,
    options: &ReadOptions,
) -> Result<LvsConfig, ConfigErrors> {
    parse_with(&RealFiles, text, name, &options.config_id())
}

fn read_file(files: &dyn Files, path: &Path, config_id: &str) -> Result<LvsConfig, ConfigErrors> {
    let name = path.to_string_lossy();
    match files.read(path) {
        Ok(text) => parse_with(files, &text, &name, config_id),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            kind: ErrorKind::File,
            location: Location {
                file: name.as_ref().into(),
                line: 0,
            },
            message: format!("cannot read {name}: {e}"),
        }])),
    }
}

fn parse_with(
    files: &dyn Files,
    text: &str,
    name: &str,
    config_id: &str,
) -> Result<LvsConfig, ConfigErrors> {
    let mut report = Report::default();
    let tokens = lex::lex(files, text, name, config_id, &mut report);
    let stmts = tree::build(tokens, &mut report);
    let mut config = lvs::read(files, &stmts, &mut report);
    report.sort();
    if !report.errors.is_empty() {
        return Err(ConfigErrors(report.errors));
    }
    config.notes = report.notes;
    Ok(config)
}
