//! `lbadm`: ipvsadm's command line for lb. Parses exactly what ipvsadm parses, sends the
//! changes to lbd over its control socket and prints what ipvsadm prints.

use std::{io::Read as _, path::PathBuf, process::ExitCode};

use lb_user::{
    control::{DEFAULT_SOCKET, RequestBody, ResponseBody, SOCKET_ENV, client},
    ipvsadm::{self, CliError, Invocation, ListWhat, NoNames, SystemNames},
    model::Command,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Cli(e)) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code() as u8)
        }
        Err(Failure::Other(message)) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Cli(CliError),
    Other(String),
}

impl From<CliError> for Failure {
    fn from(e: CliError) -> Self {
        Failure::Cli(e)
    }
}

impl From<client::ClientError> for Failure {
    fn from(e: client::ClientError) -> Self {
        Failure::Other(e.to_string())
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    if let Some((socket, rest)) = sysctl_args(args) {
        return sysctl(socket, rest);
    }
    let parsed = ipvsadm::parse(args)?;
    let socket = parsed
        .socket
        .or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let ask = |body| client::request(&socket, body);
    match parsed.invocation {
        Invocation::Apply(commands) => apply(&socket, commands),
        Invocation::Restore => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| Failure::Other(format!("reading standard input: {e}")))?;
            let (commands, lines) = ipvsadm::parse_restore_located(&input, &ipvsadm::SystemNames)?;
            match apply(&socket, commands.clone()) {
                Err(Failure::Cli(CliError::Refused(message))) => {
                    // Name the line lbd refused, as for one that does not parse.
                    let at = match ask(RequestBody::List) {
                        Ok(ResponseBody::Snapshot { snapshot }) => {
                            ipvsadm::locate_refusal(&snapshot, &commands)
                        }
                        _ => None,
                    };
                    let refused = CliError::Refused(message);
                    Err(Failure::Cli(match at.and_then(|i| lines.get(i)) {
                        Some((line, text)) => CliError::Restore {
                            line: *line,
                            text: text.clone(),
                            source: Box::new(refused),
                        },
                        None => refused,
                    }))
                }
                other => other,
            }
        }
        Invocation::List(opts) => {
            let names: &dyn ipvsadm::Names = if opts.numeric { &NoNames } else { &SystemNames };
            let text = match opts.what() {
                ListWhat::Services => {
                    let snapshot = expect_snapshot(ask(RequestBody::List)?)?;
                    ipvsadm::format_list(&snapshot, &opts, names)?
                }
                ListWhat::Connections => match ask(RequestBody::Connections)? {
                    ResponseBody::Connections { connections } => {
                        ipvsadm::format_connections(&connections, &opts, names)
                    }
                    other => return Err(unexpected(other)),
                },
                ListWhat::Timeouts => match ask(RequestBody::Timeouts)? {
                    ResponseBody::Timeouts { timeouts } => ipvsadm::format_timeouts(&timeouts),
                    other => return Err(unexpected(other)),
                },
                ListWhat::Daemon => match ask(RequestBody::Daemons)? {
                    ResponseBody::Daemons { daemons } => ipvsadm::format_daemon(&daemons),
                    other => return Err(unexpected(other)),
                },
            };
            out(&text);
            Ok(())
        }
        Invocation::Save { numeric } => {
            let snapshot = expect_snapshot(ask(RequestBody::List)?)?;
            let names: &dyn ipvsadm::Names = if numeric { &NoNames } else { &SystemNames };
            out(&ipvsadm::format_save(&snapshot, numeric, names));
            Ok(())
        }
        Invocation::Help => {
            out(&ipvsadm::help_text());
            Ok(())
        }
        Invocation::Version => {
            out(&ipvsadm::version_text());
            Ok(())
        }
    }
}

/// `[--socket PATH] --sysctl [NAME[=VALUE]]...` (lb's own option, so not part of ipvsadm's
/// syntax): the socket given, if any, and the arguments after `--sysctl`.
fn sysctl_args(args: &[String]) -> Option<(Option<PathBuf>, &[String])> {
    match args {
        [first, rest @ ..] if first == "--sysctl" => Some((None, rest)),
        [flag, path, first, rest @ ..] if flag == "--socket" && first == "--sysctl" => {
            Some((Some(PathBuf::from(path)), rest))
        }
        [flag, first, rest @ ..] if flag.starts_with("--socket=") && first == "--sysctl" => {
            Some((Some(PathBuf::from(&flag["--socket=".len()..])), rest))
        }
        _ => None,
    }
}

/// Lists IPVS's sysctls as lbd has them (`sysctl` layout), or sets them: `NAME=VALUE` sets,
/// a bare `NAME` prints one. Settings are checked before any is sent, and sent together.
fn sysctl(socket: Option<PathBuf>, args: &[String]) -> Result<(), Failure> {
    use lb_user::sysctl;
    let socket = socket
        .or_else(|| std::env::var_os(SOCKET_ENV).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let mut commands = Vec::new();
    let mut show = Vec::new();
    for arg in args {
        let parsed = if arg.contains('=') {
            sysctl::parse_assignment(arg)
                .map(|(name, value)| commands.push(Command::SetSysctl { name, value }))
        } else {
            sysctl::parse_name(arg).map(|name| show.push(name))
        };
        parsed.map_err(|e| Failure::Other(e.to_string()))?;
    }
    apply(&socket, commands.clone())?;
    if commands.is_empty() || !show.is_empty() {
        let values = match client::request(&socket, RequestBody::Sysctls)? {
            ResponseBody::Sysctls { sysctls } => sysctls,
            other => return Err(unexpected(other)),
        };
        let text = if show.is_empty() {
            sysctl::format(&values, None)
        } else {
            show.iter()
                .map(|name| sysctl::format(&values, Some(*name)))
                .collect()
        };
        out(&text);
    } else {
        // As `sysctl -w` echoes what it set.
        let text: String = commands
            .iter()
            .filter_map(|c| match c {
                Command::SetSysctl { name, value } => Some(format!("{name} = {value}\n")),
                _ => None,
            })
            .collect();
        out(&text);
    }
    Ok(())
}

/// Writes to standard output; a reader that went away (`lbadm -Lnc | head`) ends the output
/// quietly, as with ipvsadm, instead of a panic.
fn out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush());
}

fn apply(socket: &std::path::Path, commands: Vec<Command>) -> Result<(), Failure> {
    if commands.is_empty() {
        return Ok(());
    }
    match client::request(socket, RequestBody::Apply { commands })? {
        ResponseBody::Done => Ok(()),
        ResponseBody::Error { message } => Err(Failure::Cli(CliError::Refused(message))),
        other => Err(unexpected(other)),
    }
}

fn expect_snapshot(body: ResponseBody) -> Result<lb_user::model::Snapshot, Failure> {
    match body {
        ResponseBody::Snapshot { snapshot } => Ok(snapshot),
        other => Err(unexpected(other)),
    }
}

fn unexpected(body: ResponseBody) -> Failure {
    match body {
        ResponseBody::Error { message } => Failure::Other(message),
        other => Failure::Other(format!("unexpected answer from lbd: {other:?}")),
    }
}
