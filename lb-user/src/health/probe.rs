//! One attempt of a check: the network I/O, each step bounded by the check's
//! `connect_timeout` as keepalived bounds each of its steps by `connection_to`; or a run of a
//! `MISC_CHECK` program.

use std::{
    io,
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream},
    time::timeout,
};

use super::{
    CheckSpec, HttpProbe, HttpVersion, MiscProbe, Probe, UrlProbe,
    script::{self, Exit},
};

/// How an attempt went, and in words for the logs and events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub success: bool,
    /// A `misc_dynamic` MISC_CHECK that passed: its exit status (0, or 2-255).
    pub dynamic_status: Option<u8>,
    /// `TCP_CHECK 10.0.0.12:80: connection refused`, `HTTP_GET http://10.0.0.12:80/ returned 200`.
    pub reason: String,
}

impl Outcome {
    fn new(success: bool, reason: String) -> Self {
        Outcome {
            success,
            dynamic_status: None,
            reason,
        }
    }
}

/// A status line longer than this is not one.
const MAX_STATUS_LINE: usize = 1024;

/// Runs one attempt of `check`; for an HTTP_GET, of its url `url`.
pub(crate) async fn attempt(check: &CheckSpec, url: usize) -> Outcome {
    match &check.probe {
        Probe::Tcp => tcp_check(check).await,
        Probe::Http(http) => {
            let url = &http.urls[url.min(http.urls.len().saturating_sub(1))];
            http_get(check, http, url).await
        }
        Probe::Misc(misc) => misc_check(misc).await,
    }
}

async fn tcp_check(check: &CheckSpec) -> Outcome {
    let label = format!("TCP_CHECK {}:{}", check.addr, check.port);
    // As keepalived, the connection is closed as soon as it is established.
    match connect(check).await {
        Ok(_) => Outcome::new(true, format!("{label}: connected")),
        Err(e) => Outcome::new(false, format!("{label}: {e}")),
    }
}

/// keepalived's request (`request_template` of check_http.c).
pub(crate) fn request(check: &CheckSpec, http: &HttpProbe, url: &UrlProbe) -> String {
    let host = match &url.host {
        Some(host) => host.clone(),
        None => format!("{}:{}", check.addr, check.port),
    };
    let (minor, close) = match http.protocol {
        HttpVersion::V1_0 => (0, ""),
        HttpVersion::V1_0Close => (0, "Connection: close\r\n"),
        HttpVersion::V1_1 => (1, "Connection: close\r\n"),
    };
    format!(
        "GET {} HTTP/1.{minor}\r\nUser-Agent: KeepAliveClient\r\n{close}Host: {host}\r\n\r\n",
        url.path
    )
}

async fn http_get(check: &CheckSpec, http: &HttpProbe, url: &UrlProbe) -> Outcome {
    let label = format!("HTTP_GET http://{}:{}{}", check.addr, check.port, url.path);
    let limit = check.connect_timeout;
    let status = async {
        let mut stream = connect(check).await?;
        let request = request(check, http, url);
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
            let success = url.status_codes.contains(code);
            let reason = match success {
                true => format!("{label} returned {code}"),
                false => format!("{label} returned {code} (expected {})", url.status_codes),
            };
            Outcome::new(success, reason)
        }
        Err(e) => Outcome::new(false, format!("{label}: {e}")),
    }
}

async fn misc_check(misc: &MiscProbe) -> Outcome {
    let label = format!("MISC_CHECK {}", misc.script.display());
    let (exit, said) = script::run(&misc.script, misc.timeout).await;
    let (success, dynamic_status) = match exit {
        Exit::Status(0) => (true, misc.dynamic.then_some(0)),
        Exit::Status(code @ 2..) if misc.dynamic => (true, Some(code)),
        _ => (false, None),
    };
    Outcome {
        success,
        dynamic_status,
        reason: format!("{label}: {said}"),
    }
}

async fn connect(check: &CheckSpec) -> Result<TcpStream, String> {
    let limit = check.connect_timeout;
    let socket = TcpSocket::new_v4().map_err(|e| describe(&e))?;
    if check.bindto.is_some() || check.bind_port.is_some() {
        let source = SocketAddrV4::new(
            check.bindto.unwrap_or(Ipv4Addr::UNSPECIFIED),
            check.bind_port.unwrap_or(0),
        );
        // A fixed source port is reused from one attempt to the next.
        if check.bind_port.is_some() {
            socket.set_reuseaddr(true).map_err(|e| describe(&e))?;
        }
        socket
            .bind(SocketAddr::V4(source))
            .map_err(|e| format!("binding to {source}: {}", describe(&e)))?;
    }
    let peer = SocketAddr::V4(SocketAddrV4::new(check.addr, check.port));
    match timeout(limit, socket.connect(peer)).await {
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
    fn requests_are_keepalived_s() {
        use crate::keepalived::StatusCodes;
        let addr = Ipv4Addr::new(10, 0, 0, 12);
        let mut check = CheckSpec::http(addr, 8080, "/a");
        let Probe::Http(mut http) = check.probe.clone() else {
            unreachable!()
        };
        let url = http.urls[0].clone();
        assert_eq!(
            request(&check, &http, &url),
            "GET /a HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: 10.0.0.12:8080\r\n\r\n"
        );
        http.protocol = HttpVersion::V1_1;
        let url = UrlProbe {
            host: Some("www.example.com".into()),
            status_codes: StatusCodes::success(),
            ..url
        };
        assert_eq!(
            request(&check, &http, &url),
            "GET /a HTTP/1.1\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n\
             Host: www.example.com\r\n\r\n"
        );
        http.protocol = HttpVersion::V1_0Close;
        check.port = 80;
        let url = UrlProbe { host: None, ..url };
        assert_eq!(
            request(&check, &http, &url),
            "GET /a HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nConnection: close\r\n\
             Host: 10.0.0.12:80\r\n\r\n"
        );
    }

    #[test]
    fn io_errors_read_as_prose() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(describe(&e), "connection refused");
        let e = io::Error::other("Weird");
        assert_eq!(describe(&e), "weird");
    }
}
