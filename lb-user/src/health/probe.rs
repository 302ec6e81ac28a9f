//! One attempt of a check: the network I/O, each step bounded by the check's
//! `connect_timeout` as keepalived bounds each of its steps by `connection_to`.

use std::{
    io,
    net::{Ipv4Addr, SocketAddrV4},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
    time::timeout,
};

use super::CheckSpec;

/// How an attempt went, and in words for the logs and events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub success: bool,
    /// `TCP_CHECK 10.0.0.12:80: connection refused`, `HTTP_GET http://10.0.0.12:80/ returned 200`.
    pub reason: String,
}

/// A status line longer than this is not one.
const MAX_STATUS_LINE: usize = 1024;

/// Runs one attempt of `check` against `addr`.
pub(crate) async fn attempt(addr: Ipv4Addr, check: &CheckSpec) -> Outcome {
    match check {
        CheckSpec::Tcp {
            port,
            connect_timeout,
            ..
        } => tcp_check(addr, *port, *connect_timeout).await,
        CheckSpec::Http {
            port,
            path,
            status_code,
            connect_timeout,
            ..
        } => http_get(addr, *port, path, *status_code, *connect_timeout).await,
    }
}

async fn tcp_check(addr: Ipv4Addr, port: u16, limit: Duration) -> Outcome {
    let label = format!("TCP_CHECK {addr}:{port}");
    // As keepalived, the connection is closed as soon as it is established.
    match connect(addr, port, limit).await {
        Ok(_) => Outcome {
            success: true,
            reason: format!("{label}: connected"),
        },
        Err(e) => Outcome {
            success: false,
            reason: format!("{label}: {e}"),
        },
    }
}

async fn http_get(
    addr: Ipv4Addr,
    port: u16,
    path: &str,
    expected: Option<u16>,
    limit: Duration,
) -> Outcome {
    let label = format!("HTTP_GET http://{addr}:{port}{path}");
    let status = async {
        let mut stream = connect(addr, port, limit).await?;
        // keepalived's request (HTTP/1.0, its User-Agent, Host with the port).
        let request = format!(
            "GET {path} HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: {addr}:{port}\r\n\r\n"
        );
        let line = timeout(limit, status_line(&mut stream, request.as_bytes()))
            .await
            .map_err(|_| format!("no response within {limit:?}"))??;
        parse_status_line(&line).ok_or_else(|| {
            let shown: String = String::from_utf8_lossy(&line).chars().take(64).collect();
            format!("invalid status line {shown:?}")
        })
    }
    .await;
    match status {
        Ok(code) => {
            let success = match expected {
                Some(want) => code == want,
                // keepalived's default when no status_code is configured.
                None => (200..=299).contains(&code),
            };
            let reason = match expected {
                Some(want) if !success => format!("{label} returned {code} (expected {want})"),
                _ => format!("{label} returned {code}"),
            };
            Outcome { success, reason }
        }
        Err(e) => Outcome {
            success: false,
            reason: format!("{label}: {e}"),
        },
    }
}

async fn connect(addr: Ipv4Addr, port: u16, limit: Duration) -> Result<TcpStream, String> {
    match timeout(limit, TcpStream::connect(SocketAddrV4::new(addr, port))).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("connect timed out after {limit:?}")),
    }
}

/// Sends `request` and reads up to the end of the first line of the response (or what came
/// before the server closed the connection), without the line ending.
async fn status_line(stream: &mut TcpStream, request: &[u8]) -> Result<Vec<u8>, String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("sending the request: {}", describe(&e)))?;
    let mut line = Vec::new();
    // Large enough that a small response is read whole, so closing does not reset it.
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            line.truncate(end);
            break;
        }
        if line.len() >= MAX_STATUS_LINE {
            break;
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("reading the response: {}", describe(&e)))?;
        if n == 0 {
            if line.is_empty() {
                return Err("connection closed without a response".into());
            }
            break;
        }
        line.extend_from_slice(&chunk[..n]);
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// The status code of an HTTP status line (`HTTP/1.1 200 OK`). Like keepalived's
/// `extract_status_code()`, but the reason phrase may be missing altogether.
pub(crate) fn parse_status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/")?;
    let space = rest.iter().position(|&b| b == b' ')?;
    let code = &rest[space + 1..];
    let digits = code.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || code.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    Some(digits.iter().fold(0, |n, &d| n * 10 + u16::from(d - b'0')))
}

/// `connection refused` rather than `Connection refused (os error 111)`.
fn describe(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{:?}", e.kind()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.0 200 OK"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 503 Service Unavailable"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204"), Some(204));
        assert_eq!(parse_status_line(b"HTTP/1.1 404 "), Some(404));
        for bad in [
            &b""[..],
            b"HTTP/1.1",
            b"HTTP/1.1 ",
            b"HTTP/1.1 20",
            b"HTTP/1.1 2000 OK",
            b"HTTP/1.1 20x OK",
            b"HTTP/1.1  200 OK",
            b"SSH-2.0-OpenSSH_9.6",
            b"<html>",
        ] {
            assert_eq!(
                parse_status_line(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn io_errors_read_as_prose() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(describe(&e), "connection refused");
        let e = io::Error::other("Weird");
        assert_eq!(describe(&e), "weird");
    }
}
