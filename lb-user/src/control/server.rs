//! The `lbd` side: a Unix socket answering one JSON request per line.
//!
//! Who may talk to it: root, lbd's own user, and the members of `--socket-group` (the
//! kernel's word for the peer, `SO_PEERCRED`, and its supplementary groups from /proc). The
//! socket is mode 0600 (0660 with a group), bound in a private directory and only then moved
//! to its path, so it is never reachable with a looser mode. Requests are bounded in size, a
//! session idle for [`SESSION_IDLE`] is closed, and at most [`MAX_SESSIONS`] run at once.

use std::{
    fs, io,
    os::unix::fs::{DirBuilderExt as _, FileTypeExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader},
    net::{UnixListener, UnixStream},
};
use tracing::{debug, info, warn};

use super::{PROTOCOL_VERSION, Request, RequestBody, Response, ResponseBody};
use crate::{
    director::Director,
    model::Command,
    resolution::{RESOLUTION_WAIT, wait_for_resolution},
};

/// Re-reads `lbd --config`'s file and applies it; the error says why nothing changed.
pub type ReloadHook = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Drains the director (`Some(true)`), returns it to service (`Some(false)`) or only reports
/// (`None`): what BIRD is told to announce, and why.
pub type AnnounceHook =
    Arc<dyn Fn(Option<bool>) -> Result<crate::bird::AnnounceStatus, String> + Send + Sync>;

/// The hooks a session may call besides the director: reloading `--config`, and the VIP
/// announcements of `--bird-vips`.
#[derive(Clone, Default)]
pub struct Hooks {
    pub reload: Option<ReloadHook>,
    pub announce: Option<AnnounceHook>,
}

/// What one session may send in all (a restore of 100,000 services and their real servers
/// is about 40 MB); beyond it the session ends.
const MAX_REQUEST: usize = 64 * 1024 * 1024;

/// A session that sends nothing for this long is closed.
pub const SESSION_IDLE: Duration = Duration::from_secs(60);

/// Sessions served at once; further connections are closed at once (and logged).
pub const MAX_SESSIONS: usize = 64;

/// The control socket; removed from the filesystem when dropped.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
    access: Access,
    sessions: Arc<tokio::sync::Semaphore>,
}

/// Who may use the control socket besides root and lbd's own user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// `--socket-group`: its members may (its gid).
    pub group: Option<u32>,
}

impl Access {
    /// Whether a peer with `uid`, primary `gid` and supplementary `groups` may talk to lbd,
    /// which runs as `own_uid`.
    pub fn allows(&self, own_uid: u32, uid: u32, gid: u32, groups: &[u32]) -> bool {
        uid == 0
            || uid == own_uid
            || self
                .group
                .is_some_and(|group| gid == group || groups.contains(&group))
    }

    /// The socket file's mode.
    fn mode(&self) -> u32 {
        if self.group.is_some() { 0o660 } else { 0o600 }
    }
}

/// The supplementary groups in a /proc/PID/status text ("Groups:\t4 27 1000").
pub fn status_groups(status: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Groups:"))
        .map(|groups| {
            groups
                .split_whitespace()
                .filter_map(|g| g.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A group's id by name or number (`--socket-group`).
pub fn group_id(name: &str) -> io::Result<u32> {
    if let Ok(gid) = name.parse() {
        return Ok(gid);
    }
    let text = fs::read_to_string("/etc/group")?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let group = fields.next()?;
            let gid = fields.nth(1)?.parse().ok()?;
            (group == name).then_some(gid)
        })
        .next()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no group named {name} in /etc/group"),
            )
        })
}

impl ControlSocket {
    /// Binds `path` (creating its directory, 0700, or 0750 with a group), refusing if another
    /// lbd answers there or if something that is not a socket is in the way (a stale socket
    /// of a dead lbd is replaced).
    pub fn bind(path: &Path, access: Access) -> io::Result<Self> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(if access.group.is_some() { 0o750 } else { 0o700 })
                .create(dir)?;
            if access.group.is_some() {
                std::os::unix::fs::chown(dir, None, access.group)?;
            }
        }
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("another lbd is already listening on {}", path.display()),
                    ));
                }
                fs::remove_file(path)?;
            }
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket: not removing it (give --socket another path)",
                        path.display()
                    ),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Bound where only lbd can reach it, given its mode and group there, then moved.
        let private = dir.join(format!(".lbd-socket.{}", std::process::id()));
        let _ = fs::remove_file(private.join("socket"));
        let _ = fs::remove_dir(&private);
        fs::DirBuilder::new().mode(0o700).create(&private)?;
        let bound = (|| -> io::Result<UnixListener> {
            let tmp = private.join("socket");
            let listener = UnixListener::bind(&tmp)?;
            fs::set_permissions(&tmp, fs::Permissions::from_mode(access.mode()))?;
            if access.group.is_some() {
                std::os::unix::fs::chown(&tmp, None, access.group)?;
            }
            fs::rename(&tmp, path)?;
            Ok(listener)
        })();
        let _ = fs::remove_file(private.join("socket"));
        let _ = fs::remove_dir(&private);
        Ok(ControlSocket {
            listener: bound?,
            path: path.to_owned(),
            access,
            sessions: Arc::new(tokio::sync::Semaphore::new(MAX_SESSIONS)),
        })
    }

    /// Whether the peer of `stream` may use lbd; the refusal says who asked.
    fn check_peer(&self, stream: &UnixStream) -> Result<(), String> {
        let cred = stream
            .peer_cred()
            .map_err(|e| format!("cannot tell who is asking: {e}"))?;
        let groups = cred
            .pid()
            .and_then(|pid| fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .map(|status| status_groups(&status))
            .unwrap_or_default();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let own = unsafe { libc::geteuid() };
        if self.access.allows(own, cred.uid(), cred.gid(), &groups) {
            return Ok(());
        }
        Err(format!(
            "permission denied: uid {} (pid {}) may not use lbd's control socket (root, lbd's \
             own user and members of lbd --socket-group may)",
            cred.uid(),
            cred.pid().map_or_else(|| "?".to_owned(), |p| p.to_string())
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves requests until the task is dropped.
    pub async fn serve(&self, director: Arc<Mutex<Director>>, hooks: Hooks) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let Ok(permit) = Arc::clone(&self.sessions).try_acquire_owned() else {
                        warn!("control connection closed: {MAX_SESSIONS} sessions already open");
                        continue;
                    };
                    let allowed = self.check_peer(&stream);
                    if let Err(why) = &allowed {
                        warn!("control connection refused: {why}");
                    }
                    let director = Arc::clone(&director);
                    let hooks = hooks.clone();
                    tokio::spawn(async move {
                        if let Err(e) = session(stream, allowed, director, hooks).await {
                            debug!("control connection ended: {e}");
                        }
                        drop(permit);
                    });
                }
                Err(e) => warn!("control socket accept failed: {e}"),
            }
        }
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One client's requests, each answered in turn; a refused peer gets its refusal as the
/// answer to its first request, and the session ends.
async fn session(
    stream: UnixStream,
    allowed: Result<(), String>,
    director: Arc<Mutex<Director>>,
    hooks: Hooks,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_REQUEST as u64)).lines();
    loop {
        let Ok(line) = tokio::time::timeout(SESSION_IDLE, lines.next_line()).await else {
            debug!("control session idle for {SESSION_IDLE:?}: closed");
            return Ok(());
        };
        let Some(line) = line? else {
            return Ok(());
        };
        if let Err(message) = &allowed {
            let out = answer(ResponseBody::Error {
                message: message.clone(),
            });
            write.write_all(out.as_bytes()).await?;
            return Ok(());
        }
        let body = match serde_json::from_str::<Request>(&line) {
            Ok(request) if request.version != PROTOCOL_VERSION => ResponseBody::Error {
                message: format!(
                    "lbadm speaks control protocol version {}, this lbd speaks {PROTOCOL_VERSION}",
                    request.version
                ),
            },
            Ok(Request {
                body: RequestBody::Reload,
                ..
            }) => {
                let reload = hooks.reload.clone();
                tokio::task::spawn_blocking(move || match reload {
                    None => ResponseBody::Error {
                        message: "lbd was started without --config: nothing to reload".to_owned(),
                    },
                    Some(reload) => match reload() {
                        Ok(()) => ResponseBody::Done,
                        Err(message) => ResponseBody::Error { message },
                    },
                })
                .await
                .unwrap_or_else(|e| ResponseBody::Error {
                    message: format!("internal error: {e}"),
                })
            }
            Ok(Request {
                body: body @ (RequestBody::Drain { .. } | RequestBody::Announcements),
                ..
            }) => {
                let announce = hooks.announce.clone();
                let drain = match body {
                    RequestBody::Drain { drained } => Some(drained),
                    _ => None,
                };
                tokio::task::spawn_blocking(move || match announce {
                    None => ResponseBody::Error {
                        message: "lbd was started without --bird-vips: it announces no VIP, so \
                                  there is nothing to drain or show"
                            .to_owned(),
                    },
                    Some(announce) => match announce(drain) {
                        Ok(status) => ResponseBody::Announcements { status },
                        Err(message) => ResponseBody::Error { message },
                    },
                })
                .await
                .unwrap_or_else(|e| ResponseBody::Error {
                    message: format!("internal error: {e}"),
                })
            }
            Ok(request) => {
                let director = Arc::clone(&director);
                tokio::task::spawn_blocking(move || handle(&director, request.body))
                    .await
                    .unwrap_or_else(|e| ResponseBody::Error {
                        message: format!("internal error: {e}"),
                    })
            }
            Err(e) => ResponseBody::Error {
                message: format!("malformed request: {e}"),
            },
        };
        write.write_all(answer(body).as_bytes()).await?;
    }
}

/// A response line.
fn answer(body: ResponseBody) -> String {
    let mut out = serde_json::to_string(&Response {
        version: PROTOCOL_VERSION,
        body,
    })
    .expect("responses serialise");
    out.push('\n');
    out
}

use tokio::io::AsyncReadExt as _;

/// Batches longer than this (a restore) are logged in one line, each command at debug level:
/// tens of thousands of log lines cost lbd more than applying the commands.
const LOG_EACH_UP_TO: usize = 20;

fn log_applied(commands: &[Command]) {
    if commands.len() <= LOG_EACH_UP_TO {
        for command in commands {
            info!(command = %command, "applied");
        }
        return;
    }
    for command in commands {
        debug!(command = %command, "applied");
    }
    if let (Some(first), Some(last)) = (commands.first(), commands.last()) {
        info!(commands = commands.len(), %first, %last, "applied a batch");
    }
}

/// Carries out one request. A change is answered once the real servers it added are
/// resolved (or [`RESOLUTION_WAIT`] has passed), without holding the director meanwhile.
pub fn handle(director: &Mutex<Director>, body: RequestBody) -> ResponseBody {
    let lock = || director.lock().unwrap_or_else(|p| p.into_inner());
    let error = |e: &dyn std::fmt::Display| ResponseBody::Error {
        message: e.to_string(),
    };
    match body {
        RequestBody::Apply { commands } => {
            let applied = lock().apply(&commands);
            match applied {
                Ok(resolution) => {
                    log_applied(&commands);
                    wait_for_resolution(director, resolution, RESOLUTION_WAIT);
                    ResponseBody::Done
                }
                Err(e) => {
                    info!(error = %e, commands = commands.len(), "refused");
                    error(&e)
                }
            }
        }
        RequestBody::List => match lock().snapshot() {
            Ok(snapshot) => ResponseBody::Snapshot { snapshot },
            Err(e) => error(&e),
        },
        RequestBody::Connections => ResponseBody::Connections {
            connections: lock().connections(),
        },
        RequestBody::Timeouts => ResponseBody::Timeouts {
            timeouts: lock().timeouts(),
        },
        RequestBody::Sysctls => ResponseBody::Sysctls {
            sysctls: lock().sysctls(),
        },
        RequestBody::Daemons => ResponseBody::Daemons {
            daemons: lock().config().sync_daemons.clone(),
        },
        RequestBody::Reload | RequestBody::Drain { .. } | RequestBody::Announcements => {
            ResponseBody::Error {
                message: "handled by the session".to_owned(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_the_own_user_and_the_socket_group_may_talk_to_lbd() {
        let none = Access::default();
        assert!(none.allows(0, 0, 0, &[]));
        assert!(none.allows(1000, 1000, 1000, &[]));
        assert!(!none.allows(0, 1000, 1000, &[27]));
        let staff = Access { group: Some(50) };
        assert!(staff.allows(0, 1000, 50, &[]));
        assert!(staff.allows(0, 1000, 1000, &[27, 50]));
        assert!(!staff.allows(0, 1000, 1000, &[27]));
    }

    #[test]
    fn supplementary_groups_come_from_proc_status() {
        let status = "Name:\tlbadm\nUid:\t1000\t1000\t1000\t1000\nGroups:\t4 27 1000 \nNSpid:\t7\n";
        assert_eq!(status_groups(status), vec![4, 27, 1000]);
        assert_eq!(status_groups("Groups:\t\n"), Vec::<u32>::new());
        assert_eq!(group_id("4242").unwrap(), 4242);
        assert_eq!(group_id("root").unwrap(), 0);
        assert!(group_id("no-such-group-here").is_err());
    }

    #[tokio::test]
    async fn the_socket_replaces_a_stale_one_and_refuses_to_remove_anything_else() {
        let dir = std::env::temp_dir().join(format!("lb-control-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // A directory lbd creates is private.
        let path = dir.join("run/lbd.sock");
        let socket = ControlSocket::bind(&path, Access::default()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.join("run")), 0o700);
        // Another lbd is refused while this one listens.
        let again = ControlSocket::bind(&path, Access::default());
        assert_eq!(again.err().unwrap().kind(), io::ErrorKind::AddrInUse);
        // A dead lbd's socket (its file left, nobody listening) is replaced.
        drop(socket);
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let replaced = ControlSocket::bind(&path, Access { group: Some(0) }).unwrap();
        assert_eq!(mode(&path), 0o660);
        drop(replaced);
        assert!(!path.exists(), "the socket goes with its lbd");
        // Anything else at the path stays, and the refusal says so.
        fs::write(&path, "state").unwrap();
        let err = ControlSocket::bind(&path, Access::default()).err().unwrap();
        assert!(err.to_string().contains("is not a socket"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "state");
        // No private directory is left behind.
        let left: Vec<_> = fs::read_dir(dir.join("run"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("lbd.sock")]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
