//! Connections from a chosen client address and port: the flows of a recording replayed
//! exactly (schedulers that hash the client's address, or its address and port).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddrV4, TcpStream},
    os::fd::FromRawFd as _,
    time::Duration,
};

use crate::netns::Netns;

/// Makes every address of `net` (`a.b.c.d/len`) an address of `ns` that sockets may bind to
/// (a local route on `lo`, as for AnyIP), so a test can connect from any of them.
pub fn add_client_network(ns: &Netns, net: &str) {
    ns.run(&["ip", "route", "add", "local", net, "dev", "lo"]);
}

/// One HTTP/1.0 request from `from` to `to`, made in `ns`: the body of the answer (nginx's
/// real-server name, without its newline).
pub fn http_get_from(ns: &Netns, from: SocketAddrV4, to: SocketAddrV4) -> Result<String, String> {
    let mut stream = ns.enter(|| connect_from(from, to))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| format!("setting a timeout: {e}"))?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: lb\r\n\r\n")
        .map_err(|e| format!("writing to {to} from {from}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|e| format!("reading from {to} from {from}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    match answer.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.trim_end().to_owned()),
        _ => Err(format!("{from} -> {to}: not a 200 answer: {answer:?}")),
    }
}

/// A TCP connection from `from` to `to`, made in `ns` and left open, nothing sent.
pub fn connect_in(ns: &Netns, from: SocketAddrV4, to: SocketAddrV4) -> Result<TcpStream, String> {
    ns.enter(|| connect_from(from, to))
}

/// A blocking TCP connection from `from` to `to` (in the calling thread's namespace).
fn connect_from(from: SocketAddrV4, to: SocketAddrV4) -> Result<TcpStream, String> {
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a socket this function owns; the addresses are whole
    // `sockaddr_in`s of `len` bytes.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        // The stream owns (and closes) the socket from here on.
        let stream = TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
        let local = sockaddr(from);
        if libc::bind(fd, (&raw const local).cast(), len) != 0 {
            return Err(format!(
                "binding to {from}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let remote = sockaddr(to);
        let timeout = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        );
        if libc::connect(fd, (&raw const remote).cast(), len) != 0 {
            return Err(format!(
                "connecting to {to} from {from}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(stream)
    }
}
