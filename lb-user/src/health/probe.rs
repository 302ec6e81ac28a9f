//! One attempt of a check: the network I/O, each step bounded by the check's
//! `connect_timeout` as keepalived bounds each of its steps by `connection_to`; or a run of a
//! `MISC_CHECK` program.
//!
//! HTTP_GET and SSL_GET speak HTTP themselves rather than through hyper's client, on purpose:
//! keepalived's checker sends its own request template (HTTP/1.0 without `Connection`, or
//! `http_protocol 1.1` with `Connection: close`, `User-Agent: KeepAliveClient`, `Host:
//! address:port` unless `virtualhost`), reads only the status line unless a `digest` or a
//! `regex` is set, and hashes the raw bytes after the head up to the server's close, cut at a case-sensitive
//! `Content-Length:` and with any chunked framing left in, which is what genhash prints and
//! so what configurations hold. hyper would send its own headers and decode the body, and the
//! configured digests of chunked pages would no longer match. TLS (SSL_GET) is rustls, through
//! tokio-rustls, under the same exchange.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

use rustls::pki_types::ServerName;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::{TcpSocket, TcpStream, UdpSocket},
    time::{Instant, timeout, timeout_at},
};

use super::{
    CheckSpec, DnsProbe, HttpProbe, HttpVersion, MiscProbe, Probe, UdpProbe, UrlProbe,
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
        Probe::Smtp { helo_name } => smtp_check(check, helo_name).await,
        Probe::Udp(udp) => udp_check(check, udp).await,
        Probe::Dns(dns) => dns_check(check, dns).await,
        Probe::Ping => {
            let label = format!("PING_CHECK {}", check.addr);
            match super::icmp::ping(check).await {
                Ok(()) => Outcome::new(true, format!("{label}: echo reply")),
                Err(e) => Outcome::new(false, format!("{label}: {e}")),
            }
        }
    }
}

/// check_smtp.c's conversation: a 220 banner, `HELO`, 250, `QUIT`, any line. Each line is
/// read afresh (what else came with it is dropped) within `connect_timeout`.
async fn smtp_check(check: &CheckSpec, helo_name: &str) -> Outcome {
    let label = format!("SMTP_CHECK {}:{}", check.addr, check.port);
    let limit = check.connect_timeout;
    let talk = async {
        let mut stream = connect(check).await?;
        let banner = smtp_line(&mut stream, limit).await?;
        if smtp_status(&banner) != Some(220) {
            return Err(format!("bad greeting banner {:?}", shown(&banner)));
        }
        smtp_send(&mut stream, &format!("HELO {helo_name}\r\n")).await?;
        let hello = smtp_line(&mut stream, limit).await?;
        if smtp_status(&hello) != Some(250) {
            return Err(format!("bad HELO response {:?}", shown(&hello)));
        }
        smtp_send(&mut stream, "QUIT\r\n").await?;
        smtp_line(&mut stream, limit).await?;
        Ok(())
    };
    match talk.await {
        Ok(()) => Outcome::new(true, format!("{label}: 220, 250")),
        Err(e) => Outcome::new(false, format!("{label}: {e}")),
    }
}

async fn smtp_send(stream: &mut TcpStream, line: &str) -> Result<(), String> {
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|e| format!("sending: {}", describe(&e)))
}

/// The next line (without its `\n`), as keepalived's `smtp_get_line`.
async fn smtp_line(stream: &mut TcpStream, limit: std::time::Duration) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            line.truncate(end);
            return Ok(line);
        }
        let n = timeout(limit, stream.read(&mut chunk))
            .await
            .map_err(|_| "read timeout".to_owned())?
            .map_err(|e| format!("reading: {}", describe(&e)))?;
        if n == 0 {
            return Err("connection closed".into());
        }
        line.extend_from_slice(&chunk[..n]);
    }
}

/// keepalived's `smtp_get_status`: three digits then a space or the end of the line (a
/// `\r` right after the digits does not count: keepalived refuses `220\r\n` too).
fn smtp_status(line: &[u8]) -> Option<u16> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || line.get(3).is_some_and(|&b| b != b' ') {
        return None;
    }
    Some(digits.iter().fold(0, |n, &d| n * 10 + u16::from(d - b'0')))
}

fn shown(line: &[u8]) -> String {
    String::from_utf8_lossy(line).chars().take(64).collect()
}

/// The wildcard address of `addr`'s family (a source left to the kernel).
fn unspecified(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

/// A UDP socket bound as the check says and connected to its target.
async fn udp_socket(check: &CheckSpec) -> Result<UdpSocket, String> {
    let source = SocketAddr::new(
        check.bindto.unwrap_or(unspecified(check.addr)),
        check.bind_port.unwrap_or(0),
    );
    let socket = UdpSocket::bind(source)
        .await
        .map_err(|e| format!("binding to {source}: {}", describe(&e)))?;
    socket
        .connect(SocketAddr::new(check.addr, check.port))
        .await
        .map_err(|e| describe(&e))?;
    Ok(socket)
}

/// keepalived's datagram when no `payload` is given (`set_buf` of layer4.c).
fn default_udp_payload() -> Vec<u8> {
    b"keepalived check - "
        .iter()
        .copied()
        .cycle()
        .take(32)
        .collect()
}

/// check_udp.c: send, then an ICMP error fails; silence passes unless a reply is required;
/// a reply passes, or with `require_reply HEX` must match it and the length bounds.
async fn udp_check(check: &CheckSpec, udp: &UdpProbe) -> Outcome {
    let label = format!("UDP_CHECK {}:{}", check.addr, check.port);
    let result = async {
        let socket = udp_socket(check).await?;
        let payload = udp.payload.clone().unwrap_or_else(default_udp_payload);
        socket
            .send(&payload)
            .await
            .map_err(|e| format!("sending: {}", describe(&e)))?;
        let mut buf = vec![0u8; usize::from(udp.max_reply_length) + 1];
        match timeout(check.connect_timeout, socket.recv(&mut buf)).await {
            Err(_) if udp.require_reply => Err("no reply".to_owned()),
            Err(_) => Ok("no reply, no error".to_owned()),
            Ok(Err(e)) => Err(describe(&e)),
            Ok(Ok(n)) => match &udp.reply {
                Some((data, mask)) if !udp_reply_matches(&buf[..n], data, mask, udp) => {
                    Err(format!("reply of {n} bytes does not match"))
                }
                _ => Ok(format!("reply of {n} bytes")),
            },
        }
    }
    .await;
    match result {
        Ok(said) => Outcome::new(true, format!("{label}: {said}")),
        Err(e) => Outcome::new(false, format!("{label}: {e}")),
    }
}

/// keepalived's `check_udp_reply`, inverted: the length within bounds, and the first bytes
/// (as many as both have) equal where the mask has 0 bits.
pub(crate) fn udp_reply_matches(reply: &[u8], data: &[u8], mask: &[u8], udp: &UdpProbe) -> bool {
    let len = reply.len();
    if len < usize::from(udp.min_reply_length) || len > usize::from(udp.max_reply_length) {
        return false;
    }
    reply
        .iter()
        .zip(data)
        .zip(mask.iter().chain(std::iter::repeat(&0)))
        .all(|((r, d), m)| (r ^ d) & !m == 0)
}

/// A DNS query as check_dns.c builds it: a random id, recursion desired, one question.
pub(crate) fn dns_query(id: u16, dns: &DnsProbe) -> Vec<u8> {
    let mut q = Vec::with_capacity(32 + dns.name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    if dns.name != "." {
        for label in dns.name.split('.').filter(|l| !l.is_empty()) {
            q.push(u8::try_from(label.len()).unwrap_or(63));
            q.extend_from_slice(label.as_bytes());
        }
    }
    q.push(0);
    q.extend_from_slice(&dns.qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    q
}

/// check_dns.c: an answer with our id and no error code within `connect_timeout`; other
/// datagrams are skipped.
async fn dns_check(check: &CheckSpec, dns: &DnsProbe) -> Outcome {
    let label = format!("DNS_CHECK {}:{} {}", check.addr, check.port, dns.name);
    let result = async {
        let deadline = Instant::now() + check.connect_timeout;
        let socket = udp_socket(check).await?;
        let id = {
            use std::hash::{BuildHasher as _, RandomState};
            RandomState::new().hash_one(std::time::SystemTime::now()) as u16
        };
        socket
            .send(&dns_query(id, dns))
            .await
            .map_err(|e| format!("sending: {}", describe(&e)))?;
        let mut buf = [0u8; 2048];
        loop {
            let n = timeout_at(deadline, socket.recv(&mut buf))
                .await
                .map_err(|_| "read timeout".to_owned())?
                .map_err(|e| describe(&e))?;
            if n < 12 || buf[..2] != id.to_be_bytes() || buf[2] & 0x80 == 0 {
                continue;
            }
            return match buf[3] & 0x0f {
                0 => Ok(()),
                rcode => Err(format!("answered with rcode {rcode}")),
            };
        }
    }
    .await;
    match result {
        Ok(()) => Outcome::new(true, format!("{label}: answered")),
        Err(e) => Outcome::new(false, format!("{label}: {e}")),
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

/// The words of a check's outcomes: `HTTP_GET http://10.0.0.12:80/`,
/// `SSL_GET https://10.0.0.12:443/`.
fn http_label(check: &CheckSpec, http: &HttpProbe, url: &UrlProbe) -> String {
    let (keyword, scheme) = match http.tls {
        true => ("SSL_GET", "https"),
        false => ("HTTP_GET", "http"),
    };
    format!(
        "{keyword} {scheme}://{}:{}{}",
        check.addr, check.port, url.path
    )
}

/// What an HTTP check talks over: the TCP connection, or TLS on it (SSL_GET).
trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Connects as [`connect`] does, then for SSL_GET shakes hands within `connect_timeout` too.
async fn http_connect(check: &CheckSpec, http: &HttpProbe) -> Result<Box<dyn Stream>, String> {
    let tcp = connect(check).await?;
    if !http.tls {
        return Ok(Box::new(tcp));
    }
    let limit = check.connect_timeout;
    // An IP address as the server name: rustls then sends no SNI, as keepalived without
    // `enable_sni`.
    let server = ServerName::IpAddress(check.addr.into());
    let connector = super::tls::connector(http.client_cert.as_deref())?;
    match timeout(limit, connector.connect(server, tcp)).await {
        Ok(Ok(tls)) => Ok(Box::new(tls)),
        Ok(Err(e)) => Err(format!("TLS handshake: {}", describe(&e))),
        Err(_) => Err(format!("TLS handshake timed out after {limit:?}")),
    }
}

async fn http_get(check: &CheckSpec, http: &HttpProbe, url: &UrlProbe) -> Outcome {
    let label = http_label(check, http, url);
    if url.digest.is_some() || url.regex.is_some() {
        return http_whole(check, http, url, &label).await;
    }
    let limit = check.connect_timeout;
    let status = async {
        let mut stream = http_connect(check, http).await?;
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

/// With `digest` or `regex`: as keepalived's http_read_thread, the whole response up to the
/// server's close, each read within `connect_timeout`; the status must be one of the url's,
/// then the MD5 of the body (up to a `Content-Length:`, if any) must be the digest, then the
/// body (all of it) must match the regex (or with `regex_no_match`, not).
async fn http_whole(check: &CheckSpec, http: &HttpProbe, url: &UrlProbe, label: &str) -> Outcome {
    use md5::{Digest as _, Md5};
    let limit = check.connect_timeout;
    let response = async {
        let mut stream = http_connect(check, http).await?;
        stream
            .write_all(request(check, http, url).as_bytes())
            .await
            .map_err(|e| format!("sending the request: {}", describe(&e)))?;
        let mut response = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = match timeout(limit, stream.read(&mut chunk)).await {
                Err(_) => return Err(format!("timeout reading the response after {limit:?}")),
                Ok(Ok(n)) => n,
                // A TLS server that closes without close_notify has still said all it had.
                Ok(Err(e)) if http.tls && e.kind() == io::ErrorKind::UnexpectedEof => 0,
                Ok(Err(e)) => return Err(format!("reading the response: {}", describe(&e))),
            };
            if n == 0 {
                break;
            }
            response.extend_from_slice(&chunk[..n]);
        }
        Ok::<_, String>(response)
    }
    .await;
    let response = match response {
        Ok(r) if r.is_empty() => return Outcome::new(false, format!("{label}: no data received")),
        Ok(r) => r,
        Err(e) => return Outcome::new(false, format!("{label}: {e}")),
    };
    let line_end = response
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(response.len());
    let line = response[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&response[..line_end]);
    let code = match parse_status_line(line) {
        Some(code) if url.status_codes.contains(code) => code,
        Some(code) => {
            let reason = format!("{label} returned {code} (expected {})", url.status_codes);
            return Outcome::new(false, reason);
        }
        None => {
            return Outcome::new(
                false,
                format!("{label}: invalid status line {:?}", shown(line)),
            );
        }
    };
    let mut passed = Vec::new();
    if let Some(digest) = url.digest {
        let sum: [u8; 16] = Md5::digest(http_body(&response)).into();
        if sum != digest {
            let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
            return Outcome::new(
                false,
                format!("{label} returned {code}, MD5 digest {hex} is not the one configured"),
            );
        }
        passed.push("the digest configured".to_owned());
    }
    if let Some(regex) = &url.regex {
        // keepalived matches what follows the head, not cut at a Content-Length.
        let body = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(&[][..], |at| &response[at + 4..]);
        let pattern = regex.pattern();
        let said = match regex.no_match {
            false => format!("a body matching regex {pattern:?}"),
            true => format!("a body not matching regex {pattern:?} (regex_no_match)"),
        };
        if !regex.passes(body) {
            return Outcome::new(false, format!("{label} returned {code}, not {said}"));
        }
        passed.push(said);
    }
    Outcome::new(
        true,
        format!("{label} returned {code} with {}", passed.join(" and ")),
    )
}

/// The body of a response: what follows the first blank line (`\r\n\r\n`, as keepalived's
/// `extract_html`), cut at a `Content-Length:` of the headers (keepalived's case-sensitive
/// `extract_content_length`); empty without a blank line.
pub(crate) fn http_body(response: &[u8]) -> &[u8] {
    let Some(start) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return &[];
    };
    let (head, body) = (&response[..start], &response[start + 4..]);
    let length = head
        .windows(15)
        .position(|w| w == b"Content-Length:")
        .and_then(|at| {
            let rest = &head[at + 15..];
            let text: String = rest
                .iter()
                .take_while(|&&b| b != b'\r' && b != b'\n')
                .map(|&b| b as char)
                .collect();
            text.trim_start().parse::<usize>().ok()
        });
    match length {
        Some(n) if n < body.len() => &body[..n],
        _ => body,
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
    let socket = match check.addr {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| describe(&e))?;
    if check.bindto.is_some() || check.bind_port.is_some() {
        let source = SocketAddr::new(
            check.bindto.unwrap_or(unspecified(check.addr)),
            check.bind_port.unwrap_or(0),
        );
        // A fixed source port is reused from one attempt to the next.
        if check.bind_port.is_some() {
            socket.set_reuseaddr(true).map_err(|e| describe(&e))?;
        }
        socket
            .bind(source)
            .map_err(|e| format!("binding to {source}: {}", describe(&e)))?;
    }
    let peer = SocketAddr::new(check.addr, check.port);
    match timeout(limit, socket.connect(peer)).await {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(describe(&e)),
        Err(_) => Err(format!("connect timed out after {limit:?}")),
    }
}

/// Sends `request` and reads up to the end of the first line of the response (or what came
/// before the server closed the connection), without the line ending.
async fn status_line(
    stream: &mut (impl AsyncRead + AsyncWrite + Unpin + ?Sized),
    request: &[u8],
) -> Result<Vec<u8>, String> {
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
pub(super) fn describe(e: &io::Error) -> String {
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
    fn bodies_as_keepalived_cuts_them() {
        assert_eq!(http_body(b"HTTP/1.0 200 OK\r\n\r\nhello"), b"hello");
        assert_eq!(
            http_body(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nhello"),
            b"hel"
        );
        assert_eq!(
            http_body(b"HTTP/1.0 200 OK\r\ncontent-length: 3\r\n\r\nhello"),
            b"hello"
        );
        assert_eq!(http_body(b"HTTP/1.0 200 OK\r\n"), b"");
    }

    #[test]
    fn smtp_status_codes() {
        assert_eq!(smtp_status(b"220 mx.example.com ESMTP\r"), Some(220));
        assert_eq!(smtp_status(b"250 "), Some(250));
        assert_eq!(smtp_status(b"250"), Some(250));
        // keepalived: a multi-line reply's first line, or digits then \r, are not a status.
        assert_eq!(smtp_status(b"220-mx.example.com\r"), None);
        assert_eq!(smtp_status(b"220\r"), None);
        assert_eq!(smtp_status(b"22"), None);
    }

    #[test]
    fn dns_queries_are_keepalived_s() {
        let soa_root = DnsProbe {
            qtype: 6,
            name: ".".into(),
        };
        assert_eq!(
            dns_query(0x1234, &soa_root),
            [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1]
        );
        let a = DnsProbe {
            qtype: 1,
            name: "www.example.com.".into(),
        };
        let q = dns_query(1, &a);
        assert_eq!(&q[12..], b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
    }

    #[test]
    fn udp_replies_match_with_wildcards_and_bounds() {
        let udp = UdpProbe {
            max_reply_length: 8,
            min_reply_length: 2,
            ..UdpProbe::default()
        };
        let (data, mask) = (vec![0xab, 0x00], vec![0x00, 0xf0]);
        assert!(udp_reply_matches(&[0xab, 0x50, 9], &data, &mask, &udp));
        assert!(!udp_reply_matches(&[0xab, 0x05, 9], &data, &mask, &udp));
        assert!(!udp_reply_matches(&[0xab], &data, &mask, &udp));
        assert!(!udp_reply_matches(&[0xab; 9], &data, &mask, &udp));
        assert_eq!(default_udp_payload(), b"keepalived check - keepalived ch");
    }

    #[test]
    fn io_errors_read_as_prose() {
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(describe(&e), "connection refused");
        let e = io::Error::other("Weird");
        assert_eq!(describe(&e), "weird");
    }
}
