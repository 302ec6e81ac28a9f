//! The programs keepalived runs for the checker: `MISC_CHECK`s and the `notify_up`,
//! `notify_down`, `quorum_up` and `quorum_down` scripts.
//!
//! As keepalived's `system_call_script()`: the command line is split into words (quotes and
//! backslashes as keepalived's `alloc_strvec_quoted` reads them), the program is run directly
//! (looked up in `PATH`), as the configured user and group, in a process group of its own (so
//! that a timed-out check is ended with all its children), with standard input and output on
//! `/dev/null` and without `IFS`, `LD_PRELOAD` and `LD_LIBRARY_PATH` in its environment.

use std::{ffi::CString, io, process::Stdio, time::Duration};

use tokio::process::{Child, Command};
use tracing::{info, warn};

/// A program to run and whom as.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ScriptSpec {
    /// The program and its arguments; never empty once configured.
    pub argv: Vec<String>,
    /// Run as this user and group (resolved when the configuration was read); `None`: as lbd.
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl ScriptSpec {
    /// The command line as keepalived logs it.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }

    fn command(&self) -> io::Result<Command> {
        let Some((program, args)) = self.argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no program"));
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env_remove("IFS")
            .env_remove("LD_PRELOAD")
            .env_remove("LD_LIBRARY_PATH")
            .process_group(0)
            .kill_on_drop(false);
        if let Some(gid) = self.gid {
            command.gid(gid);
        }
        if let Some(uid) = self.uid {
            command.uid(uid);
        }
        Ok(command)
    }
}

/// How a run of a program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this status.
    Status(u8),
    /// A signal ended it.
    Signal(i32),
    /// It outran its timeout and was ended (SIGTERM, then SIGKILL 2 s later).
    TimedOut,
    /// It could not be started.
    NotStarted,
}

/// Runs `script` and waits for it, at most `limit`; a program still running then is ended
/// with its process group, as keepalived ends a timed-out `MISC_CHECK`.
pub async fn run(script: &ScriptSpec, limit: Duration) -> (Exit, String) {
    let mut child = match script.command().and_then(|mut c| c.spawn()) {
        Ok(child) => child,
        Err(e) => {
            let reason = format!("cannot run {}: {e}", script.display());
            return (Exit::NotStarted, reason);
        }
    };
    match tokio::time::timeout(limit, child.wait()).await {
        Ok(Ok(status)) => exit_of(status),
        Ok(Err(e)) => (Exit::NotStarted, format!("waiting for it: {e}")),
        Err(_) => {
            end_group(&mut child).await;
            (Exit::TimedOut, format!("timed out after {limit:?}"))
        }
    }
}

fn exit_of(status: std::process::ExitStatus) -> (Exit, String) {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => {
            let code = u8::try_from(code).unwrap_or(u8::MAX);
            (Exit::Status(code), format!("exited with status {code}"))
        }
        (None, Some(signal)) => (Exit::Signal(signal), format!("ended by signal {signal}")),
        (None, None) => (Exit::Signal(0), "ended".to_owned()),
    }
}

/// SIGTERM to the process group, SIGKILL 2 s later if it is still there, then reaps it.
async fn end_group(child: &mut Child) {
    let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals the process group the child leads (it was
    // started with process_group(0)); it touches no memory of ours.
    unsafe { libc::kill(-pid, libc::SIGTERM) };
    if tokio::time::timeout(Duration::from_secs(2), child.wait())
        .await
        .is_err()
    {
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = child.wait().await;
    } else {
        // Whatever the program left behind in its group goes too.
        // SAFETY: as above.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
    }
}

/// Starts a notify script and does not wait for it (keepalived's `notify_exec()`); its exit is
/// reaped and logged in the background. Must be called within a tokio runtime.
pub fn notify(script: &ScriptSpec, what: &str) {
    let line = script.display();
    match script.command().and_then(|mut c| c.spawn()) {
        Ok(mut child) => {
            info!(script = %line, "{what} script started");
            tokio::spawn(async move {
                match child.wait().await {
                    Ok(status) if status.success() => {}
                    Ok(status) => info!(script = %line, "{}", exit_of(status).1),
                    Err(e) => warn!(script = %line, "waiting for it: {e}"),
                }
            });
        }
        Err(e) => warn!(script = %line, "cannot run {what} script: {e}"),
    }
}

/// Splits a command line into words as keepalived does for scripts: blanks separate words,
/// `"..."` and `'...'` group them, a backslash takes the next character as it is. `None` when a
/// quote is not closed.
pub fn split_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '"' | '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        q if q == c => break,
                        '\\' if c == '"' => w.push(chars.next()?),
                        other => w.push(other),
                    }
                }
            }
            '\\' => {
                let next = chars.next()?;
                word.get_or_insert_with(String::new).push(next);
            }
            other => word.get_or_insert_with(String::new).push(other),
        }
    }
    words.extend(word);
    Some(words)
}

/// keepalived's `set_script_uid_gid()`: a user name (or number) and optional group name (or
/// number), the group defaulting to the user's own.
pub fn resolve_user(user: &str, group: Option<&str>) -> Result<(u32, u32), String> {
    let (uid, user_gid) = match lookup_user(user) {
        Some(ids) => ids,
        None => return Err(format!("no user '{user}' on this host")),
    };
    let gid = match group {
        None => user_gid,
        Some(group) => match lookup_group(group) {
            Some(gid) => gid,
            None => return Err(format!("no group '{group}' on this host")),
        },
    };
    Ok((uid, gid))
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let c_name = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill in.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the right type, `buf.len()` is its size.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        return Some((pwd.pw_uid, pwd.pw_gid));
    }
    // keepalived also takes a number.
    let uid: u32 = name.parse().ok()?;
    // SAFETY: as above, by uid.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

fn lookup_group(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: an all-zero group is a valid value for getgrnam_r to fill in.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is to a live local of the right type, `buf.len()` is its size.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc == 0 && !result.is_null() {
        return Some(grp.gr_gid);
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words() {
        let w = |s: &str| split_words(s).unwrap();
        assert_eq!(w("/bin/check  a\tb"), ["/bin/check", "a", "b"]);
        assert_eq!(
            w(r#"/x "a b" 'c "d"' e\ f"#),
            ["/x", "a b", "c \"d\"", "e f"]
        );
        assert_eq!(w(r#"/x "a\"b""#), ["/x", "a\"b"]);
        assert_eq!(w(""), Vec::<String>::new());
        assert_eq!(split_words("/x \"open"), None);
    }

    #[test]
    fn users() {
        assert_eq!(resolve_user("root", None), Ok((0, 0)));
        assert_eq!(resolve_user("0", Some("0")), Ok((0, 0)));
        assert!(resolve_user("no-such-user-lb", None).is_err());
        assert!(resolve_user("root", Some("no-such-group-lb")).is_err());
    }

    #[tokio::test]
    async fn runs_and_times_out() {
        let sh = |code: &str| ScriptSpec {
            argv: vec!["/bin/sh".into(), "-c".into(), code.into()],
            uid: None,
            gid: None,
        };
        let second = Duration::from_secs(5);
        assert_eq!(run(&sh("exit 12"), second).await.0, Exit::Status(12));
        assert_eq!(run(&sh("kill -9 $$"), second).await.0, Exit::Signal(9));
        let (exit, _) = run(&sh("sleep 30"), Duration::from_millis(100)).await;
        assert_eq!(exit, Exit::TimedOut);
        let missing = ScriptSpec {
            argv: vec!["/nonexistent/lb-check".into()],
            ..ScriptSpec::default()
        };
        assert_eq!(run(&missing, second).await.0, Exit::NotStarted);
    }
}
