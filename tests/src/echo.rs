//! Line services next to nginx on every real server, run by socat: a TCP echo on
//! [`ECHO_PORT`] (seed 001's second service is telnet, port 23) that greets with the real
//! server's name and then echoes what it gets, and a UDP echo on [`UDP_ECHO_PORT`] that answers
//! each datagram's first line with `"<name> <line>"`. And their client side, with sockets the
//! test process opens inside a namespace ([`Netns::enter`]), so a test sees exactly which
//! address a reply came from.

use std::{
    io::{Read as _, Write as _},
    net::{Shutdown, SocketAddr, SocketAddrV4, TcpStream, UdpSocket},
    path::Path,
    time::Duration,
};

use crate::{cmd::Daemon, netns::Netns};

/// The TCP echo's port (seed 001: `ipvsadm -A -t VIP:23`).
pub const ECHO_PORT: u16 = 23;
/// The UDP echo's port.
pub const UDP_ECHO_PORT: u16 = 53;

/// How long a client waits to connect, and then for the whole answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the TCP echo for real server `name` in `ns`: every connection first gets
/// `"<name>\n"`, then its own bytes back until it half-closes.
pub fn start_tcp_echo(ns: &Netns, dir: &Path, name: &str) -> Daemon {
    let log = dir.join("tcp-echo.log");
    let listen = format!("TCP4-LISTEN:{ECHO_PORT},fork,reuseaddr");
    let serve = format!("SYSTEM:echo {name}; exec cat");
    Daemon::spawn(
        &format!("TCP echo in {}", ns.name()),
        ns.argv(&["socat", &listen, &serve]),
        &log,
        &log,
    )
}

/// Starts the UDP echo for real server `name` in `ns`, bound to `bind`: a datagram
/// `"<line>\n"` gets `"<name> <line>\n"` back, from `bind`:[`UDP_ECHO_PORT`]. It binds to one
/// address, not the wildcard, so that a reply leaves from the address the request came to
/// (an unbound reply would take the routing's choice, not the VIP on `lo`).
pub fn start_udp_echo(ns: &Netns, dir: &Path, name: &str, bind: std::net::Ipv4Addr) -> Daemon {
    let log = dir.join(format!("udp-echo-{bind}.log"));
    let listen = format!("UDP4-RECVFROM:{UDP_ECHO_PORT},bind={bind},fork,reuseaddr");
    let serve = format!("SYSTEM:read -r line; echo \"{name} $line\"");
    Daemon::spawn(
        &format!("UDP echo on {bind} in {}", ns.name()),
        ns.argv(&["socat", &listen, &serve]),
        &log,
        &log,
    )
}

/// Connects from `ns` to `to` (a new connection), sends `line` and a newline, half-closes and
/// returns everything the server sent until it closed: `"<name>\n<line>\n"` from the echo.
pub fn tcp_exchange(ns: &Netns, to: SocketAddrV4, line: &str) -> Result<String, String> {
    let mut stream = ns
        .enter(|| TcpStream::connect_timeout(&SocketAddr::V4(to), CONNECT_TIMEOUT))
        .map_err(|e| format!("connecting to {to}: {e}"))?;
    let io = |what: &str, e: std::io::Error| format!("{what} {to}: {e}");
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| io("setting a timeout on", e))?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| io("writing to", e))?;
    stream
        .shutdown(Shutdown::Write)
        .map_err(|e| io("half-closing", e))?;
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Ok(String::from_utf8_lossy(&answer).into_owned()),
        Err(e) => Err(format!(
            "reading from {to} (got {:?} so far): {e}",
            String::from_utf8_lossy(&answer)
        )),
    }
}

/// A datagram's answer: who sent it and what it said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    pub from: SocketAddr,
    pub text: String,
}

/// Sends `"<line>\n"` from a new socket in `ns` (so a new flow: a new source port) to `to`,
/// and returns the first datagram that comes back, from whatever address. A lost datagram
/// is sent again from the same socket (the same flow), up to `attempts` times in all.
pub fn udp_exchange(
    ns: &Netns,
    to: SocketAddrV4,
    line: &str,
    attempts: u32,
) -> Result<Datagram, String> {
    let socket = ns
        .enter(|| UdpSocket::bind("0.0.0.0:0"))
        .map_err(|e| format!("binding a UDP socket: {e}"))?;
    // Unconnected on purpose: a connected socket would silently drop an answer from the
    // wrong address, and the test wants to see it.
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| format!("setting a timeout: {e}"))?;
    let mut buf = vec![0u8; 65536];
    let mut last = String::new();
    for _ in 0..attempts.max(1) {
        socket
            .send_to(format!("{line}\n").as_bytes(), to)
            .map_err(|e| format!("sending to {to}: {e}"))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                return Ok(Datagram {
                    from,
                    text: String::from_utf8_lossy(&buf[..n]).into_owned(),
                });
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!(
        "no answer from {to} to {attempts} datagrams (last error: {last})"
    ))
}
