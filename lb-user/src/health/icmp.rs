//! `PING_CHECK` (keepalived's check_ping.c): an ICMP echo request to the address checked, or
//! an ICMPv6 one for an IPv6 address, and its echo reply within `connect_timeout`.
//!
//! keepalived sends from an unprivileged ICMP socket (`SOCK_DGRAM`, `IPPROTO_ICMP`), and to be
//! allowed one as root it widens the system's `net.ipv4.ping_group_range` to start at group 0.
//! lb changes no system setting: it sends from a raw socket (`CAP_NET_RAW`), connected to the
//! address checked so that the kernel hands it that address's ICMP only, and filtered to echo
//! replies (`ICMP_FILTER`, `ICMP6_FILTER`). A reply counts when it carries the request's
//! identifier and sequence number; each attempt has its own pair. The request is keepalived's:
//! 128 bytes of `keepalived check - ` after the header.

use std::{
    io::{self, Read as _},
    mem::size_of_val,
    net::SocketAddr,
    os::fd::AsRawFd as _,
    sync::{
        LazyLock,
        atomic::{AtomicU32, Ordering},
    },
};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::{io::unix::AsyncFd, time::timeout};

use super::CheckSpec;

const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_ECHO: u8 = 8;
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;
/// check_ping.c's `ICMP_BUFSIZE`: the data after the 8-byte header.
const PAYLOAD: usize = 128;
/// `<linux/icmp.h>`'s `ICMP_FILTER` option, at level `SOL_RAW`.
const SOL_RAW: libc::c_int = 255;
const ICMP_FILTER: libc::c_int = 1;
/// `<netinet/icmp6.h>`'s `ICMP6_FILTER`, at level `IPPROTO_ICMPV6`.
const ICMP6_FILTER: libc::c_int = 1;

/// The echo request `id`/`seq`: ICMP (with its checksum) or ICMPv6 (the kernel sums those).
pub(crate) fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let kind = if v6 { ICMP6_ECHO_REQUEST } else { ICMP_ECHO };
    let mut packet = vec![kind, 0, 0, 0];
    packet.extend(id.to_be_bytes());
    packet.extend(seq.to_be_bytes());
    packet.extend(b"keepalived check - ".iter().cycle().take(PAYLOAD));
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Whether `packet`, as a raw socket returns it (IPv4 with its IP header, IPv6 without), is
/// the echo reply to `id`/`seq`.
pub(crate) fn is_reply(v6: bool, packet: &[u8], id: u16, seq: u16) -> bool {
    let icmp = if v6 {
        packet
    } else {
        let Some(&first) = packet.first() else {
            return false;
        };
        let header = usize::from(first & 0x0f) * 4;
        if first >> 4 != 4 || header < 20 {
            return false;
        }
        packet.get(header..).unwrap_or_default()
    };
    let want = if v6 {
        ICMP6_ECHO_REPLY
    } else {
        ICMP_ECHO_REPLY
    };
    icmp.len() >= 8
        && icmp[0] == want
        && icmp[1] == 0
        && icmp[4..6] == id.to_be_bytes()
        && icmp[6..8] == seq.to_be_bytes()
}

/// Identifier and sequence number of the next attempt: different for each attempt, and from
/// one lbd run to the next.
fn next_id_seq() -> (u16, u16) {
    static NEXT: LazyLock<AtomicU32> = LazyLock::new(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        AtomicU32::new(nanos ^ std::process::id().rotate_left(16))
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (n as u16, (n >> 16) as u16 | 1)
}

/// A raw ICMP socket connected to the address checked, letting through echo replies only.
fn open(check: &CheckSpec) -> Result<Socket, String> {
    let v6 = check.addr.is_ipv6();
    let (domain, protocol) = match v6 {
        true => (Domain::IPV6, Protocol::ICMPV6),
        false => (Domain::IPV4, Protocol::ICMPV4),
    };
    let socket = Socket::new(domain, Type::RAW, Some(protocol)).map_err(|e| {
        let icmp = if v6 { "ICMPv6" } else { "ICMP" };
        let hint = match e.kind() {
            io::ErrorKind::PermissionDenied => " (lbd needs CAP_NET_RAW for PING_CHECK)",
            _ => "",
        };
        format!(
            "cannot open a raw {icmp} socket: {}{hint}",
            super::probe::describe(&e)
        )
    })?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let (level, option, filter): (_, _, Vec<u32>) = match v6 {
        // A set bit blocks that type.
        true => {
            let mut blocked = vec![u32::MAX; 8];
            blocked[usize::from(ICMP6_ECHO_REPLY >> 5)] &= !(1 << (ICMP6_ECHO_REPLY & 31));
            (libc::IPPROTO_ICMPV6, ICMP6_FILTER, blocked)
        }
        false => (SOL_RAW, ICMP_FILTER, vec![!(1 << ICMP_ECHO_REPLY)]),
    };
    // SAFETY: `filter` outlives the call, and its size is the length given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            filter.as_ptr().cast(),
            size_of_val(filter.as_slice()) as libc::socklen_t,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(format!("filtering ICMP: {}", super::probe::describe(&e)));
    }
    if let Some(source) = check.bindto {
        let source = SocketAddr::new(source, 0);
        socket
            .bind(&source.into())
            .map_err(|e| format!("binding to {source}: {}", super::probe::describe(&e)))?;
    }
    socket
        .connect(&SocketAddr::new(check.addr, 0).into())
        .map_err(|e| super::probe::describe(&e))?;
    Ok(socket)
}

/// One echo request and its reply, within `connect_timeout`.
pub(crate) async fn ping(check: &CheckSpec) -> Result<(), String> {
    let v6 = check.addr.is_ipv6();
    // SAFETY: the socket owns its descriptor, which stays open as long as the AsyncFd holds it.
    let socket = unsafe { AsyncFd::register(open(check)?) }.map_err(|e| e.to_string())?;
    let (id, seq) = next_id_seq();
    let request = echo_request(v6, id, seq);
    let limit = check.connect_timeout;
    let exchange = async {
        socket
            .async_io(tokio::io::Interest::WRITABLE, |s| s.send(&request))
            .await
            .map_err(|e| format!("sending the echo request: {}", super::probe::describe(&e)))?;
        let mut buffer = [0u8; 1500];
        loop {
            let n = socket
                .async_io(tokio::io::Interest::READABLE, |mut s| s.read(&mut buffer))
                .await
                .map_err(|e| format!("receiving: {}", super::probe::describe(&e)))?;
            if is_reply(v6, &buffer[..n], id, seq) {
                return Ok(());
            }
        }
    };
    match timeout(limit, exchange).await {
        Ok(result) => result,
        Err(_) => Err(format!("no echo reply within {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_keepalived_s() {
        let v4 = echo_request(false, 0x1234, 7);
        assert_eq!(v4.len(), 8 + 128);
        assert_eq!(&v4[..2], &[8, 0]);
        assert_eq!(&v4[4..8], &[0x12, 0x34, 0, 7]);
        assert!(v4[8..].starts_with(b"keepalived check - keepalived"));
        // A packet with its checksum in sums to 0 (complemented: 0xffff ... 0).
        assert_eq!(checksum(&v4), 0);
        let v6 = echo_request(true, 1, 2);
        assert_eq!(&v6[..8], &[128, 0, 0, 0, 0, 1, 0, 2]);
    }

    #[test]
    fn checksum_of_rfc_1071_s_example() {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2.
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
        // An odd length is padded with a zero byte.
        assert_eq!(checksum(&[0x01]), !0x0100);
    }

    #[test]
    fn replies_match_their_request_only() {
        let mut reply6 = vec![129, 0, 0xab, 0xcd, 0x12, 0x34, 0, 7];
        reply6.extend([0u8; 16]);
        assert!(is_reply(true, &reply6, 0x1234, 7));
        assert!(!is_reply(true, &reply6, 0x1234, 8));
        assert!(!is_reply(true, &reply6, 0x1235, 7));
        assert!(!is_reply(true, &reply6[..7], 0x1234, 7));
        // IPv4: after an IP header of 20 bytes, or 24 with options.
        for header in [20usize, 24] {
            let mut reply = vec![0x40 | (header / 4) as u8];
            reply.resize(header, 0);
            reply.extend([0, 0, 0, 0, 0x12, 0x34, 0, 7]);
            assert!(is_reply(false, &reply, 0x1234, 7));
            // An echo request (what the director would see of its own on lo) is no reply.
            reply[header] = 8;
            assert!(!is_reply(false, &reply, 0x1234, 7));
        }
        assert!(!is_reply(false, &[0x45], 0x1234, 7));
        assert!(!is_reply(false, &[], 0x1234, 7));
        let mut v6_as_v4 = vec![0x60];
        v6_as_v4.resize(28, 0);
        assert!(!is_reply(false, &v6_as_v4, 0, 0));
    }

    #[test]
    fn each_attempt_has_its_own_identifier() {
        let a = next_id_seq();
        let b = next_id_seq();
        assert_ne!(a, b);
        assert_ne!(a.1, 0);
    }
}
