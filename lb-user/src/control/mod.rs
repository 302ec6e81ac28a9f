//! The control protocol between `lbadm` and `lbd`: one JSON request per line on a Unix
//! socket, one JSON response per line back. Every message carries the protocol version so a
//! mismatched pair fails with a clear message instead of misreading each other.

pub mod client;
pub mod server;

use serde::{Deserialize, Serialize};

use crate::model::{Command, ConnectionStatus, Snapshot, Timeouts};

/// Bumped on any incompatible change to [`Request`] or [`Response`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Default control socket path.
pub const DEFAULT_SOCKET: &str = "/run/lb/lbd.sock";
/// Environment variable `lbadm` reads when `--socket` is not given.
pub const SOCKET_ENV: &str = "LBD_SOCKET";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    pub body: RequestBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RequestBody {
    /// Apply the commands in order, all or nothing: if one fails, none takes effect.
    Apply { commands: Vec<Command> },
    /// The running configuration with counters.
    List,
    /// The connection table.
    Connections,
    /// Current timeouts.
    Timeouts,
    /// IPVS's sysctls as lbd has them (`lbadm --sysctl`).
    Sysctls,
    /// The connection synchronisation daemons (`-L --daemon`).
    Daemons,
    /// Re-read the configuration file (`lbd --config`) and apply what changed.
    Reload,
    /// Drain the director (`true`: withdraw every VIP from BIRD, connections keep flowing) or
    /// return it to service (`lbd drain`, `lbd undrain`).
    Drain { drained: bool },
    /// What the director announces through BIRD, and whether it is drained (`lbd status`).
    Announcements,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    pub body: ResponseBody,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResponseBody {
    Done,
    Snapshot {
        snapshot: Snapshot,
    },
    Connections {
        connections: Vec<ConnectionStatus>,
    },
    Timeouts {
        timeouts: Timeouts,
    },
    Sysctls {
        sysctls: crate::sysctl::Sysctls,
    },
    Daemons {
        daemons: crate::sync::SyncDaemons,
    },
    Announcements {
        status: crate::bird::AnnounceStatus,
    },
    /// The request was refused; `message` is what ipvsadm would print.
    Error {
        message: String,
    },
}
