//! Following neighbour-table changes as the kernel announces them (the RTNLGRP_NEIGH group,
//! what `ip monitor neigh` shows).

use std::{net::IpAddr, os::fd::AsRawFd, time::Duration};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::Socket;

use super::{
    Error, Neighbour, Result, convert, reply,
    socket::{open_socket, recv_datagram},
};

/// A change in the neighbour tables (ARP for IPv4, NDP for IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighbourEvent {
    /// The entry for `addr` on `ifindex` changed. `neighbour` is `None` when its MAC is no
    /// longer known: deleted, failed, or being resolved anew.
    Changed {
        ifindex: u32,
        addr: IpAddr,
        neighbour: Option<Neighbour>,
    },
    /// The kernel dropped announcements (the socket's buffer was full): read the whole table
    /// again with [`super::neighbours`].
    Lost,
}

/// Subscribes to neighbour changes in the calling thread's network namespace. To follow the
/// table without missing a change: create the monitor, read the table with
/// [`super::neighbours`], then apply the events from [`NeighbourMonitor::wait`].
pub struct NeighbourMonitor {
    socket: Socket,
    buf: Vec<u8>,
}

impl NeighbourMonitor {
    pub fn new() -> Result<Self> {
        Ok(NeighbourMonitor {
            socket: open_socket(&[libc::RTNLGRP_NEIGH])?,
            buf: vec![0; 32 * 1024],
        })
    }

    /// The next announcements, waiting up to `timeout` (for ever with `None`) for them; an
    /// empty list when none came in time.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Vec<NeighbourEvent>> {
        if !self.readable(timeout)? {
            return Ok(Vec::new());
        }
        let len = match recv_datagram(&self.socket, &mut self.buf, libc::MSG_DONTWAIT) {
            Ok(len) => len,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                return Ok(vec![NeighbourEvent::Lost]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(Vec::new()),
            Err(err) => return Err(Error::Socket { op: "receive", err }),
        };
        let malformed = |detail| Error::Malformed {
            what: "reading neighbour announcements".into(),
            detail,
        };
        let mut events = Vec::new();
        for message in reply::messages(&self.buf[..len]) {
            let message = message.map_err(malformed)?;
            let Some(reply) =
                reply::decode(message.message_type(), message.payload()).map_err(malformed)?
            else {
                continue;
            };
            let (neighbour, deleted) = match &reply.message {
                RouteNetlinkMessage::NewNeighbour(neighbour) => (neighbour, false),
                RouteNetlinkMessage::DelNeighbour(neighbour) => (neighbour, true),
                _ => continue,
            };
            let entry = convert::neighbour(neighbour)
                .map_err(|detail| malformed(reply::with_unread(detail, &reply.unread)))?;
            if let Some(entry) = entry {
                let neighbour = if deleted { None } else { entry.usable() };
                events.push(NeighbourEvent::Changed {
                    ifindex: entry.ifindex,
                    addr: entry.addr,
                    neighbour,
                });
            }
        }
        Ok(events)
    }

    fn readable(&self, timeout: Option<Duration>) -> Result<bool> {
        let timeout_ms = match timeout {
            None => -1,
            // Rounded up, so that a short timeout still waits.
            Some(t) => i32::try_from(t.as_nanos().div_ceil(1_000_000)).unwrap_or(i32::MAX),
        };
        let mut fd = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `fd` is one valid pollfd, for a descriptor the socket keeps open meanwhile,
        // and the count passed is 1.
        let ready = unsafe { libc::poll(&mut fd, 1, timeout_ms) };
        match ready {
            0 => Ok(false),
            n if n > 0 => Ok(true),
            _ => {
                let err = std::io::Error::last_os_error();
                if err.kind() == std::io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(Error::Socket { op: "poll", err })
                }
            }
        }
    }
}
