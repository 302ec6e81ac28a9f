//! The `lbadm` side: one request, one response, over a blocking Unix socket.

use std::{
    io::{self, BufRead as _, BufReader, Write as _},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    time::Duration,
};

/// How long lbadm waits for lbd's answer (a restore of 100,000 services takes a few seconds).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

use super::{PROTOCOL_VERSION, Request, RequestBody, Response, ResponseBody};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach lbd at {path}: {source} (is lbd running? start it with `lbd --iface IF`)"
    )]
    Connect { path: PathBuf, source: io::Error },
    #[error("talking to lbd at {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "lbd at {path} did not answer within {} s (is it stuck? its log says what it is doing)",
        ANSWER_TIMEOUT.as_secs()
    )]
    Timeout { path: PathBuf },
    #[error("lbd closed the connection without answering")]
    NoAnswer,
    #[error("unreadable answer from lbd: {0}")]
    Decode(serde_json::Error),
    #[error("lbd speaks control protocol version {0}, this lbadm speaks {PROTOCOL_VERSION}")]
    Version(u32),
}

/// Sends `body` to the lbd listening at `path` and returns its answer.
pub fn request(path: &Path, body: RequestBody) -> Result<ResponseBody, ClientError> {
    let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
        path: path.to_owned(),
        source,
    })?;
    let io_err = |source: io::Error| match source.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout {
            path: path.to_owned(),
        },
        _ => ClientError::Io {
            path: path.to_owned(),
            source,
        },
    };
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(ANSWER_TIMEOUT)))
        .map_err(io_err)?;
    let mut line = serde_json::to_string(&Request {
        version: PROTOCOL_VERSION,
        body,
    })
    .expect("requests serialise");
    line.push('\n');
    (&stream).write_all(line.as_bytes()).map_err(io_err)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(io_err)?;
    if answer.is_empty() {
        return Err(ClientError::NoAnswer);
    }
    let response: Response = serde_json::from_str(&answer).map_err(ClientError::Decode)?;
    if response.version != PROTOCOL_VERSION {
        return Err(ClientError::Version(response.version));
    }
    Ok(response.body)
}
