//! ipvsadm's command line turned into lb's vocabulary: what to change ([`Command`]s with
//! ipvsadm's defaults filled in), what to list, or save/restore/help. This file has the entry
//! points and the results; [`Line`] does the per-option work.

use std::path::PathBuf;

use super::{
    error::CliError,
    line::Line,
    names::{Names, SystemNames},
    options::{Cmd, Opt},
    popt::{Token, Tokens},
};
use crate::{
    model::{Command, ServiceAddr},
    sync::Role,
};

/// What a command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Change the configuration: `-A -E -D -a -e -d -C -Z --set`.
    Apply(Vec<Command>),
    /// `-L` / `-l` (also a bare `lbadm`).
    List(ListOptions),
    /// `-S`, with `-n` for numeric addresses and ports.
    Save { numeric: bool },
    /// `-R`: read rules from standard input (see [`parse_restore`]).
    Restore,
    /// `-h`: print [`help_text`](super::help_text), exit 0.
    Help,
    /// `-v`: print [`version_text`](super::version_text), exit 0.
    Version,
}

/// A parsed command line: the invocation and lbadm's own `--socket PATH`, if given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parsed {
    pub invocation: Invocation,
    pub socket: Option<PathBuf>,
}

/// The options of `-L`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `-n`: addresses and ports as numbers.
    pub numeric: bool,
    /// `-c`: the connection table.
    pub connection: bool,
    /// `-t|-u VIP[:PORT]`: only this service.
    pub service: Option<ServiceAddr>,
    /// `--stats`
    pub stats: bool,
    /// `--rate`
    pub rate: bool,
    /// `--exact`: counters in full instead of K/M/G/T.
    pub exact: bool,
    /// `--thresholds`
    pub thresholds: bool,
    /// `--persistent-conn`
    pub persistent_conn: bool,
    /// `--timeout`: the connection timeouts.
    pub timeout: bool,
    /// `--daemon`: the sync daemons.
    pub daemon: bool,
    /// `--nosort`: services and real servers in lbd's order.
    pub nosort: bool,
    /// `--tun-info`
    pub tun_info: bool,
}

/// Which listing `-L` produces, hence what to ask lbd for and which formatter prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListWhat {
    /// The service table (all, or [`ListOptions::service`]): [`format_list`](super::format_list).
    Services,
    /// `-c`: [`format_connections`](super::format_connections).
    Connections,
    /// `--timeout`: [`format_timeouts`](super::format_timeouts).
    Timeouts,
    /// `--daemon`: [`format_daemon`](super::format_daemon).
    Daemon,
}

impl ListOptions {
    /// In ipvsadm's order of precedence (the options are mutually exclusive anyway).
    pub fn what(&self) -> ListWhat {
        if self.connection {
            ListWhat::Connections
        } else if self.service.is_some() {
            ListWhat::Services
        } else if self.timeout {
            ListWhat::Timeouts
        } else if self.daemon {
            ListWhat::Daemon
        } else {
            ListWhat::Services
        }
    }
}

/// Parses lbadm's arguments (without the program name), resolving names with the system's
/// resolver and `/etc/services`.
pub fn parse(args: &[String]) -> Result<Parsed, CliError> {
    parse_with(args, &SystemNames)
}

/// [`parse`] with the given name lookups.
pub fn parse_with(args: &[String], names: &dyn Names) -> Result<Parsed, CliError> {
    let (args, socket) = take_socket(args)?;
    let invocation = parse_invocation(&args, names)?;
    Ok(Parsed { invocation, socket })
}

/// Parses `-R` input, the `-S` format: one ipvsadm command line per line, optionally starting
/// with `ipvsadm` (or `lbadm`); blank lines and `#` comments are skipped. All lines are checked
/// before anything is applied: the first bad line fails the whole input.
pub fn parse_restore(input: &str) -> Result<Vec<Command>, CliError> {
    parse_restore_with(input, &SystemNames)
}

/// [`parse_restore`] with the given name lookups.
pub fn parse_restore_with(input: &str, names: &dyn Names) -> Result<Vec<Command>, CliError> {
    Ok(parse_restore_located(input, names)?.0)
}

/// Where each command of a restore came from: its 1-based line and the line's text.
pub type RestoreLines = Vec<(usize, String)>;

/// [`parse_restore_with`], also saying for each command which line it came from, so that a
/// refusal of the whole input can name the line at fault (see [`locate_refusal`]).
///
/// [`locate_refusal`]: super::locate_refusal
pub fn parse_restore_located(
    input: &str,
    names: &dyn Names,
) -> Result<(Vec<Command>, RestoreLines), CliError> {
    let mut commands = Vec::new();
    let mut lines = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let words: Vec<String> = line
            .split_whitespace()
            .take_while(|w| !w.starts_with('#'))
            .enumerate()
            .filter(|(i, w)| !(*i == 0 && (*w == "ipvsadm" || *w == super::PROGRAM)))
            .map(|(_, w)| w.to_owned())
            .collect();
        if words.is_empty() {
            continue;
        }
        let at_line = |source: CliError| CliError::Restore {
            line: index + 1,
            text: line.trim_end_matches('\r').to_owned(),
            source: Box::new(source),
        };
        match parse_invocation(&words, names).map_err(at_line)? {
            Invocation::Apply(mut more) => {
                let text = line.trim_end_matches('\r');
                lines.extend(std::iter::repeat_n(
                    (index + 1, text.to_owned()),
                    more.len(),
                ));
                commands.append(&mut more);
            }
            // ipvsadm refuses to restore from within a restore (its loop guard).
            Invocation::Restore => return Err(at_line(CliError::TryHelp)),
            _ => {
                return Err(at_line(CliError::usage(
                    "only rules (-A -E -D -a -e -d -C -Z --set) can be restored",
                )));
            }
        }
    }
    Ok((commands, lines))
}

/// Removes lbadm's `--socket PATH` / `--socket=PATH` (allowed anywhere before `--`).
fn take_socket(args: &[String]) -> Result<(Vec<String>, Option<PathBuf>), CliError> {
    let mut rest = Vec::with_capacity(args.len());
    let mut socket = None;
    let mut words = args.iter();
    while let Some(word) = words.next() {
        let value = if word == "--" {
            rest.push(word.clone());
            rest.extend(words.by_ref().cloned());
            break;
        } else if word == "--socket" {
            words.next().cloned().ok_or_else(|| CliError::BadOption {
                option: word.clone(),
                reason: "missing argument",
            })?
        } else if let Some(value) = word.strip_prefix("--socket=") {
            value.to_owned()
        } else {
            rest.push(word.clone());
            continue;
        };
        if socket.replace(PathBuf::from(value)).is_some() {
            return Err(CliError::usage("multiple 'socket' options specified"));
        }
    }
    Ok((rest, socket))
}

fn parse_invocation(args: &[String], names: &dyn Names) -> Result<Invocation, CliError> {
    // Without arguments ipvsadm lists the table.
    if args.is_empty() {
        return Ok(Invocation::List(ListOptions::default()));
    }
    let mut tokens = Tokens::new(args);
    let mut plain = Vec::new();
    // The command must be the first option; anything else only earns the hint.
    let first = loop {
        match tokens.next() {
            Some(Ok(Token::Arg(arg))) => plain.push(arg),
            Some(Ok(Token::Opt(opt))) => break opt,
            None | Some(Err(_)) => return Err(CliError::TryHelp),
        }
    };
    let cmd = match first.opt {
        Opt::Help => return Ok(Invocation::Help),
        Opt::Version => return Ok(Invocation::Version),
        Opt::AddService => Cmd::Add,
        Opt::EditService => Cmd::Edit,
        Opt::DeleteService => Cmd::Del,
        Opt::Clear => Cmd::Flush,
        Opt::List => Cmd::List,
        Opt::Zero => Cmd::Zero,
        Opt::AddServer => Cmd::AddDest,
        Opt::EditServer => Cmd::EditDest,
        Opt::DeleteServer => Cmd::DelDest,
        Opt::Set => Cmd::Timeout,
        Opt::Restore => Cmd::Restore,
        Opt::Save => Cmd::Save,
        Opt::StartDaemon | Opt::StopDaemon => {
            let start = first.opt == Opt::StartDaemon;
            let role = match first.value.as_deref() {
                Some("master") => Role::Master,
                Some("backup") => Role::Backup,
                _ if start => {
                    return Err(CliError::usage("illegal start-daemon parameter specified"));
                }
                _ => return Err(CliError::usage("illegal start_daemon specified")),
            };
            let mut line = Line::new(if start {
                Cmd::StartDaemon
            } else {
                Cmd::StopDaemon
            });
            line.set_role(role);
            for token in tokens {
                match token? {
                    Token::Arg(arg) => plain.push(arg),
                    Token::Opt(opt) => line.option(opt, names)?,
                }
            }
            return line.finish(plain);
        }
        _ => return Err(CliError::TryHelp),
    };

    let mut line = Line::new(cmd);
    for token in tokens {
        match token? {
            Token::Arg(arg) => plain.push(arg),
            Token::Opt(opt) => line.option(opt, names)?,
        }
    }
    line.finish(plain)
}

#[cfg(test)]
mod tests;
