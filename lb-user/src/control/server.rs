//! The `lbd` side: a Unix socket (mode 0600) answering one JSON request per line.

use std::{
    io,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
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

/// Requests longer than this are refused (a restore of tens of thousands of services fits).
const MAX_REQUEST: usize = 256 * 1024 * 1024;

/// The control socket; removed from the filesystem when dropped.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Binds `path` (creating its directory), refusing if another lbd answers there.
    pub fn bind(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("another lbd is already listening on {}", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(ControlSocket {
            listener,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves requests until the task is dropped.
    pub async fn serve(&self, director: Arc<Mutex<Director>>, hooks: Hooks) {
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let director = Arc::clone(&director);
                    let hooks = hooks.clone();
                    tokio::spawn(async move {
                        if let Err(e) = session(stream, director, hooks).await {
                            debug!("control connection ended: {e}");
                        }
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

async fn session(
    stream: UnixStream,
    director: Arc<Mutex<Director>>,
    hooks: Hooks,
) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(MAX_REQUEST as u64)).lines();
    while let Some(line) = lines.next_line().await? {
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
        let mut out = serde_json::to_string(&Response {
            version: PROTOCOL_VERSION,
            body,
        })
        .expect("responses serialise");
        out.push('\n');
        write.write_all(out.as_bytes()).await?;
    }
    Ok(())
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
        RequestBody::Reload | RequestBody::Drain { .. } | RequestBody::Announcements => {
            ResponseBody::Error {
                message: "handled by the session".to_owned(),
            }
        }
    }
}
