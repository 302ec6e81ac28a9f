//! The sync daemons' UDP sockets, set up as the kernel sets up its own (`make_send_sock`,
//! `make_receive_sock`): a master's sends to the group through the daemon's interface with
//! the daemon's TTL, not looped back, fragmentable; a backup's is bound to the group and port
//! on that interface alone and joins the group there. A backup's socket is read by a thread
//! of its own into a queue, so that a burst of messages is taken off the socket at once and
//! applied when lbd gets to it.

use std::{
    io,
    mem::size_of,
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use super::SyncDaemon;
use crate::netlink::Link;

/// How many received messages may wait for lbd (about 6 MB at the usual 1472 bytes).
const QUEUE: usize = 4096;
/// The receive buffer a backup asks for: a master's first pass over a large table arrives at
/// once.
const RCVBUF: libc::c_int = 8 << 20;

fn setsockopt<T>(
    fd: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of the size passed; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(value).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn socket(v6: bool) -> io::Result<OwnedFd> {
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: plain system call; the descriptor is owned from here on.
    let fd = unsafe { libc::socket(family, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `bind(2)` of a socket not yet a `UdpSocket` (std binds only sockets it creates).
fn bind(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    // SAFETY: all-zero is a valid `sockaddr_in` and `sockaddr_in6`.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is large and aligned enough for any address.
            unsafe { std::ptr::write(std::ptr::from_mut(&mut storage).cast(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe { std::ptr::write(std::ptr::from_mut(&mut storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    // SAFETY: `storage` holds an address of `len` bytes.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&storage).cast(),
            len as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn context(what: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// The group's address with the interface as scope (IPv6 link-local groups need it).
fn group_addr(daemon: &SyncDaemon, link: &Link) -> SocketAddr {
    match daemon.group() {
        IpAddr::V4(g) => SocketAddr::from((g, daemon.mcast_port)),
        IpAddr::V6(g) => SocketAddr::V6(std::net::SocketAddrV6::new(
            g,
            daemon.mcast_port,
            0,
            link.index,
        )),
    }
}

/// A master's socket.
pub struct Sender {
    socket: UdpSocket,
}

impl Sender {
    pub fn open(daemon: &SyncDaemon, link: &Link) -> io::Result<Sender> {
        let group = group_addr(daemon, link);
        let fd = socket(group.is_ipv6())?;
        let ttl = libc::c_int::from(daemon.mcast_ttl);
        let off: libc::c_int = 0;
        if group.is_ipv6() {
            let index = link.index as libc::c_int;
            setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_IF, &index)
                .map_err(context("IPV6_MULTICAST_IF"))?;
            setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &off)?;
            setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS, &ttl)?;
            let dont: libc::c_int = libc::IPV6_PMTUDISC_DONT;
            setsockopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, &dont)?;
        } else {
            let mreq = libc::ip_mreqn {
                imr_multiaddr: libc::in_addr { s_addr: 0 },
                imr_address: libc::in_addr { s_addr: 0 },
                imr_ifindex: link.index as libc::c_int,
            };
            setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_IF, &mreq)
                .map_err(context("IP_MULTICAST_IF"))?;
            setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, &off)?;
            setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, &ttl)?;
            let dont: libc::c_int = libc::IP_PMTUDISC_DONT;
            setsockopt(&fd, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, &dont)?;
        }
        // IPv4: from the interface's address, as the kernel binds it (`bind_mcastif_addr`).
        if let (false, Some((addr, _))) = (group.is_ipv6(), link.ipv4.first()) {
            bind(&fd, SocketAddr::from((*addr, 0)))
                .map_err(context("binding to the interface's address"))?;
        }
        let socket = UdpSocket::from(fd);
        socket
            .set_write_timeout(Some(Duration::from_millis(100)))
            .map_err(context("SO_SNDTIMEO"))?;
        socket
            .connect(group)
            .map_err(context("connecting to the group"))?;
        Ok(Sender { socket })
    }

    pub fn send(&self, message: &[u8]) -> io::Result<()> {
        self.socket.send(message).map(drop)
    }
}

/// A backup's socket and the thread that reads it.
pub struct Receiver {
    messages: mpsc::Receiver<Vec<u8>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Receiver {
    /// Opens the socket and starts reading it; datagrams longer than `sync_maxlen` are
    /// truncated, and then refused by their size, as the kernel reads them.
    pub fn open(daemon: &SyncDaemon, link: &Link) -> io::Result<Receiver> {
        let group = group_addr(daemon, link);
        let fd = socket(group.is_ipv6())?;
        let on: libc::c_int = 1;
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, &on)?;
        // As root, past rmem_max; otherwise as much as it allows.
        if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF).is_err() {
            let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF);
        }
        let name = std::ffi::CString::new(link.name.as_str())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the name is NUL-terminated and outlives the call.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.as_bytes_with_nul().len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(context("SO_BINDTODEVICE")(io::Error::last_os_error()));
        }
        bind(&fd, group).map_err(context("binding to the group's address and port"))?;
        let socket = UdpSocket::from(fd);
        match group {
            SocketAddr::V4(g) => {
                let mreq = libc::ip_mreqn {
                    imr_multiaddr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(g.ip().octets()),
                    },
                    imr_address: libc::in_addr { s_addr: 0 },
                    imr_ifindex: link.index as libc::c_int,
                };
                setsockopt(&socket, libc::IPPROTO_IP, libc::IP_ADD_MEMBERSHIP, &mreq)
                    .map_err(context("joining the group"))?;
            }
            SocketAddr::V6(g) => {
                let mreq = libc::ipv6_mreq {
                    ipv6mr_multiaddr: libc::in6_addr {
                        s6_addr: g.ip().octets(),
                    },
                    ipv6mr_interface: link.index,
                };
                setsockopt(
                    &socket,
                    libc::IPPROTO_IPV6,
                    libc::IPV6_ADD_MEMBERSHIP,
                    &mreq,
                )
                .map_err(context("joining the group"))?;
            }
        }
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let (tx, messages) = mpsc::sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let maxlen = usize::from(daemon.sync_maxlen);
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("lbd-sync-backup".to_owned())
                .spawn(move || read_loop(&socket, maxlen, &tx, &stop))?
        };
        Ok(Receiver {
            messages,
            stop,
            thread: Some(thread),
        })
    }

    /// The messages received since the last call.
    pub fn drain(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.messages.try_iter()
    }
}

fn read_loop(socket: &UdpSocket, maxlen: usize, tx: &mpsc::SyncSender<Vec<u8>>, stop: &AtomicBool) {
    let mut buf = vec![0u8; maxlen.max(1)];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv(&mut buf) {
            Ok(n) => {
                if tx.try_send(buf[..n].to_vec()).is_err() {
                    tracing::warn!("sync backup: lbd is behind, a message was dropped");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => {
                tracing::warn!("sync backup: receiving: {e}");
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
