//! ipvsadm's command-line syntax and output layouts, so that existing command sequences and
//! scripts work with `ipvsadm` replaced by `lbadm`.
//!
//! Pure: parsing turns arguments into an [`Invocation`] (changes as [`model::Command`]s with
//! ipvsadm's defaults applied, or what to list), formatting turns what lbd reports into
//! ipvsadm's text. The only outside lookups are names (hosts, `/etc/services`), behind
//! [`Names`] so tests and `-n` use none.
//!
//! How `lbadm` uses it:
//! 1. [`parse()`] the arguments; on error print the [`CliError`] to stderr and exit with
//!    [`CliError::exit_code`].
//! 2. [`Invocation::Apply`]: send the commands. [`Invocation::Restore`]: read stdin,
//!    [`parse_restore`], send the commands. A refusal from lbd is printed as is (it is already
//!    ipvsadm's wording) and exits 255, as [`CliError::Refused`]; for `-R`, [`locate_refusal`]
//!    finds the line at fault, named as for a line that does not parse.
//! 3. [`Invocation::List`]: by [`ListOptions::what`], ask lbd for the snapshot, connections or
//!    timeouts and print [`format_list`], [`format_connections`], [`format_timeouts`] or
//!    [`format_daemon`]. [`Invocation::Save`]: [`format_save`].
//! 4. [`Invocation::Help`] / [`Invocation::Version`]: print [`help_text`] / [`version_text`]
//!    on stdout, exit 0.
//!
//! [`model::Command`]: crate::model::Command

mod error;
mod format;
mod help;
mod line;
mod names;
pub(crate) mod options;
mod parse;
mod popt;
mod refusal;
mod scan;
mod values;

#[cfg(test)]
mod seed_tests;
#[cfg(test)]
mod testutil;

pub use error::CliError;
pub use format::{
    IPVS_VERSION, format_connections, format_daemon, format_list, format_save, format_timeouts,
};
pub use help::{IPVSADM_COMPAT, help_text, version_text};
pub use names::{Names, NoNames, ServicesDb, SystemNames};
pub use parse::{
    Invocation, ListOptions, ListWhat, Parsed, RestoreLines, parse, parse_restore,
    parse_restore_located, parse_restore_with, parse_with,
};
pub use refusal::locate_refusal;
pub use values::{DEFAULT_PERSISTENT_TIMEOUT, MAX_TIMEOUT};

/// The name lbadm's messages and help use where ipvsadm says `ipvsadm`.
pub const PROGRAM: &str = "lbadm";
