//! A route-netlink socket and the request/reply exchange over it.

use std::io;

use netlink_packet_core::{NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::{
    Error, Result,
    reply::{self, Parsed},
    request::Request,
};

/// A dump interrupted by a concurrent change (NLM_F_DUMP_INTR) is asked again this many times.
const DUMP_ATTEMPTS: usize = 3;

pub(super) struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// Opens a route-netlink socket in the calling thread's network namespace.
pub(super) fn open_socket(groups: &[u32]) -> Result<Socket> {
    let fail = |op| move |err| Error::Socket { op, err };
    let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail("open"))?;
    socket.bind_auto().map_err(fail("bind"))?;
    for &group in groups {
        socket
            .add_membership(group)
            .map_err(fail("join multicast group"))?;
    }
    Ok(socket)
}

/// Receives one whole datagram into `buf`, growing it when the datagram is larger (peeking
/// first: a datagram larger than the buffer would otherwise be cut short without notice).
pub(super) fn recv_datagram(
    socket: &Socket,
    buf: &mut Vec<u8>,
    flags: libc::c_int,
) -> io::Result<usize> {
    loop {
        let len = match socket.recv(&mut &mut buf[..], flags | libc::MSG_PEEK | libc::MSG_TRUNC) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => result?,
        };
        if len > buf.len() {
            buf.resize(len, 0);
        }
        match socket.recv(&mut &mut buf[..], flags) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

impl Rtnl {
    pub(super) fn open() -> Result<Self> {
        let socket = open_socket(&[])?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|err| Error::Socket { op: "connect", err })?;
        // Best effort (Linux 4.12+): the kernel's explanation of a refusal, and errors that
        // do not echo the whole request back.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    /// Sends a request that is answered by one message, the first that `parse` takes (it
    /// returns `None` for messages of another kind).
    pub(super) fn get<T>(
        &mut self,
        mut request: Request,
        what: &str,
        parse: impl Fn(&RouteNetlinkMessage) -> Parsed<Option<T>>,
    ) -> Result<T> {
        let mut reply = None;
        self.exchange(&mut request, what, |message| {
            if reply.is_none() {
                reply = parse(message)?;
            }
            Ok(())
        })?;
        reply.ok_or_else(|| Error::Malformed {
            what: what.into(),
            detail: "the kernel acknowledged the request without answering it".into(),
        })
    }

    /// Sends a dump request and keeps what `parse` makes of each message (`None`: skip it).
    pub(super) fn dump<T>(
        &mut self,
        mut request: Request,
        what: &str,
        mut parse: impl FnMut(&RouteNetlinkMessage) -> Parsed<Option<T>>,
    ) -> Result<Vec<T>> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut items = Vec::new();
            let consistent = self.exchange(&mut request, what, |message| {
                items.extend(parse(message)?);
                Ok(())
            })?;
            if consistent {
                return Ok(items);
            }
        }
        Err(Error::Kernel {
            what: what.into(),
            err: io::Error::from_raw_os_error(libc::EINTR),
            detail: Some(format!(
                "the dump was interrupted by changes {DUMP_ATTEMPTS} times"
            )),
        })
    }

    /// Sends a request that is only acknowledged.
    pub(super) fn ack(&mut self, mut request: Request, what: &str) -> Result<()> {
        self.exchange(&mut request, what, |_| Ok(())).map(drop)
    }

    /// Sends `request` and hands every link, address, route or neighbour message of the reply
    /// to `on_reply`, up to the kernel's final word: the acknowledgement or refusal of a
    /// request (non-dump requests all ask for one), the end of a dump. Returns false when the
    /// dump was interrupted by a concurrent change.
    fn exchange(
        &mut self,
        request: &mut Request,
        what: &str,
        mut on_reply: impl FnMut(&RouteNetlinkMessage) -> Parsed<()>,
    ) -> Result<bool> {
        let malformed = |detail: String| Error::Malformed {
            what: what.into(),
            detail,
        };
        self.seq = self.seq.wrapping_add(1);
        self.socket
            .send(&request.bytes(self.seq), 0)
            .map_err(|err| Error::Socket { op: "send", err })?;
        let mut consistent = true;
        loop {
            let len = recv_datagram(&self.socket, &mut self.buf, 0)
                .map_err(|err| Error::Socket { op: "receive", err })?;
            for message in reply::messages(&self.buf[..len]) {
                let message = message.map_err(malformed)?;
                // Only replies to this request (the socket is private, so this is a safeguard).
                if message.sequence_number() != self.seq {
                    continue;
                }
                if message.flags() & NLM_F_DUMP_INTR != 0 {
                    consistent = false;
                }
                let payload = message.payload();
                match message.message_type() {
                    NLMSG_NOOP => {}
                    NLMSG_OVERRUN => return Err(malformed("NLMSG_OVERRUN".into())),
                    final_word @ (NLMSG_ERROR | NLMSG_DONE) => {
                        let status =
                            reply::parse_status(message.flags(), final_word == NLMSG_DONE, payload);
                        return match status.map_err(malformed)? {
                            None => Ok(consistent || !request.is_dump()),
                            Some((errno, detail)) => Err(Error::Kernel {
                                what: what.into(),
                                err: io::Error::from_raw_os_error(errno),
                                detail,
                            }),
                        };
                    }
                    message_type => {
                        let Some(reply) =
                            reply::decode(message_type, payload).map_err(malformed)?
                        else {
                            continue;
                        };
                        on_reply(&reply.message).map_err(|detail| {
                            malformed(reply::with_unread(detail, &reply.unread))
                        })?;
                    }
                }
            }
        }
    }
}
