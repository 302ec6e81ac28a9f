//! Running programs to completion and in the background, with failures that say what ran and
//! what it printed.

use std::{
    fmt,
    fs::{File, OpenOptions},
    io::Write as _,
    os::unix::process::{CommandExt as _, ExitStatusExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

static ECHO: AtomicBool = AtomicBool::new(false);

/// When on, every command run through this module is printed first as `+ argv`, so a lab
/// shows how its topology is built.
pub fn set_echo(on: bool) {
    ECHO.store(on, Ordering::Relaxed);
}

fn echo(argv: &[String]) {
    if ECHO.load(Ordering::Relaxed) {
        println!("+ {}", shell_words(argv));
    }
}

/// `argv` as one line a shell would accept, for messages.
pub fn shell_words<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|word| {
            let word = word.as_ref();
            let plain = !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=,@%+".contains(&b));
            if plain {
                word.to_owned()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn owned(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|s| (*s).to_owned()).collect()
}

/// Makes the child start with no blocked signals. A child inherits its parent's signal mask
/// through exec, and `lab` blocks SIGINT and SIGTERM to take them when it chooses: without
/// this, lbd would never see the SIGTERM that asks it to shut down cleanly.
fn clear_signal_mask(cmd: &mut Command) {
    // SAFETY: the hook runs in the forked child before exec and only calls sigemptyset and
    // sigprocmask, which are async-signal-safe, on a local.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A finished command: what ran, how it ended and what it printed.
#[derive(Clone, Debug)]
pub struct Ran {
    pub argv: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or `None` when a signal ended the command.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, showing the command, its status and both outputs, unless it succeeded; returns
    /// its stdout.
    #[track_caller]
    pub fn assert_success(&self) -> &str {
        assert!(self.success(), "command failed:\n{self}");
        &self.stdout
    }
}

impl fmt::Display for Ran {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  $ {}", shell_words(&self.argv))?;
        writeln!(f, "  {}", describe_status(self.status))?;
        writeln!(f, "  stdout: {}", indent_block(&self.stdout))?;
        write!(f, "  stderr: {}", indent_block(&self.stderr))
    }
}

fn indent_block(text: &str) -> String {
    if text.trim().is_empty() {
        "(empty)".to_owned()
    } else {
        format!("\n    {}", text.trim_end().replace('\n', "\n    "))
    }
}

pub fn describe_status(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => format!("{status}"),
    }
}

/// Runs `argv` to completion, feeding it `stdin` (or nothing), and returns what happened
/// without judging it.
pub fn try_run(argv: &[&str], stdin: Option<&str>) -> Ran {
    try_run_owned(owned(argv), stdin)
}

pub(crate) fn try_run_owned(argv: Vec<String>, stdin: Option<&str>) -> Ran {
    echo(&argv);
    let mut cmd = Command::new(&argv[0]);
    clear_signal_mask(&mut cmd);
    cmd.args(&argv[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", shell_words(&argv)));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        // A writer thread: a child that prints a lot before reading would otherwise deadlock
        // against us blocking on a full stdin pipe.
        let input = input.to_owned();
        std::thread::spawn(move || {
            let _ = pipe.write_all(input.as_bytes());
        });
    }
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for `{}`: {e}", shell_words(&argv)));
    Ran {
        argv,
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `argv` to completion and returns its stdout; panics with the command, its status and
/// its stderr if it fails.
#[track_caller]
pub fn run(argv: &[&str]) -> String {
    try_run(argv, None).assert_success().to_owned()
}

/// A process running in the background, killed (SIGKILL) and reaped when dropped if it was
/// not stopped before. Its stdout and stderr go to files so failures can show them.
pub struct Daemon {
    what: String,
    argv: Vec<String>,
    child: Option<Child>,
    status: Option<ExitStatus>,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Daemon {
    /// Starts `argv` with stdout and stderr appended to the given files (they may be the same
    /// file). The child gets its own process group, so a Ctrl-C in a terminal reaches only us
    /// and we stop children in order.
    pub fn spawn(what: &str, argv: Vec<String>, stdout: &Path, stderr: &Path) -> Daemon {
        Self::spawn_with_env(what, argv, &[], stdout, stderr)
    }

    pub fn spawn_with_env(
        what: &str,
        argv: Vec<String>,
        env: &[(&str, &str)],
        stdout: &Path,
        stderr: &Path,
    ) -> Daemon {
        echo(&argv);
        let open = |path: &Path| -> File {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
        };
        let out = open(stdout);
        let err = if stdout == stderr {
            out.try_clone().expect("dup log file")
        } else {
            open(stderr)
        };
        let mut cmd = Command::new(&argv[0]);
        clear_signal_mask(&mut cmd);
        cmd.args(&argv[1..])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} `{}`: {e}", shell_words(&argv)));
        Daemon {
            what: what.to_owned(),
            argv,
            child: Some(child),
            status: None,
            stdout: stdout.to_owned(),
            stderr: stderr.to_owned(),
        }
    }

    /// Its exit status, once it has been seen to exit.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.status
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    pub fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("daemon still owned");
        i32::try_from(child.id()).expect("pid fits in i32")
    }

    /// Whether it still runs; reaps it and remembers its status if it ended.
    pub fn is_running(&mut self) -> bool {
        if self.status.is_some() {
            return false;
        }
        let child = self.child.as_mut().expect("daemon still owned");
        match child.try_wait().expect("try_wait") {
            Some(status) => {
                self.status = Some(status);
                false
            }
            None => true,
        }
    }

    /// Panics with its output if it has exited.
    #[track_caller]
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            panic!(
                "{} exited unexpectedly ({})\n{}",
                self.what,
                describe_status(self.status.expect("exited")),
                self.report()
            );
        }
    }

    /// Sends `signal` (a `libc::SIG*` number) to the process itself, not its group.
    pub fn signal(&self, signal: i32) {
        if self.status.is_some() {
            return;
        }
        // SAFETY: kill(2) with a pid we spawned and have not reaped (status is None), so the
        // pid cannot have been reused by another process.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Sends `signal` and waits up to `timeout` for the process to exit; returns its status
    /// (at once if it had already exited). On timeout it is killed and this panics.
    #[track_caller]
    pub fn stop(&mut self, signal: i32, timeout: Duration) -> ExitStatus {
        self.signal(signal);
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() >= deadline {
                self.signal(libc::SIGKILL);
                let _ = self.child.as_mut().expect("owned").wait();
                panic!(
                    "{} did not exit within {timeout:?} of signal {signal}; killed it\n{}",
                    self.what,
                    self.report()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.status.expect("exited")
    }

    pub fn stdout_text(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The command line and the last lines of its output, for failure messages.
    pub fn report(&self) -> String {
        let mut text = format!("  $ {}\n", shell_words(&self.argv));
        text += &format!(
            "  output ({}):\n{}",
            self.stdout.display(),
            tail(&self.stdout_text(), 60)
        );
        if self.stderr != self.stdout {
            text += &format!(
                "\n  stderr ({}):\n{}",
                self.stderr.display(),
                tail(&self.stderr_text(), 60)
            );
        }
        text
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.status.is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

/// The last `lines` lines of `text`, indented.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if start > 0 {
        out += &format!("    ... ({start} earlier lines)\n");
    }
    if all.is_empty() {
        out += "    (empty)\n";
    }
    for line in &all[start..] {
        out += "    ";
        out += line;
        out += "\n";
    }
    out
}

/// Whether `program` is an executable on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            let candidate = dir.join(program);
            std::fs::metadata(&candidate).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_quotes_only_what_needs_it() {
        assert_eq!(
            shell_words(&[
                "curl",
                "--header",
                "Connection: close",
                "http://10.0.0.99:80/?n=[1-4]"
            ]),
            "curl --header 'Connection: close' 'http://10.0.0.99:80/?n=[1-4]'"
        );
        assert_eq!(shell_words(&["echo", "it's", ""]), r"echo 'it'\''s' ''");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(
            tail("a\nb\nc\n", 2),
            "    ... (1 earlier lines)\n    b\n    c\n"
        );
        assert_eq!(tail("", 2), "    (empty)\n");
    }

    #[test]
    fn try_run_reports_status_and_output() {
        let ran = try_run(&["sh", "-c", "echo out; echo err >&2; exit 3"], None);
        assert_eq!(ran.code(), Some(3));
        assert_eq!(ran.stdout, "out\n");
        assert_eq!(ran.stderr, "err\n");
        let message = ran.to_string();
        assert!(
            message.contains("exit code 3") && message.contains("err"),
            "{message}"
        );
        let ran = try_run(&["cat"], Some("fed\n"));
        assert_eq!(ran.assert_success(), "fed\n");
    }
}
