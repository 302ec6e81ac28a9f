//! What lbd needs to know from the kernel's network configuration, asked over route netlink:
//! interfaces ([`link_by_name`], [`link_by_index`]), the route the kernel would take to an
//! address ([`route_to`], like `ip route get`), the MAC behind a next hop ([`neighbour`],
//! [`neighbours`]), and a way to have the kernel resolve one without sending it traffic
//! ([`request_resolution`]). [`NeighbourMonitor`] follows neighbour changes as they happen.
//!
//! Everything here blocks; lbd calls it from `tokio::task::spawn_blocking` or a thread of its
//! own. Each call opens its own netlink socket, so it answers for the network namespace of the
//! calling thread (the tests rely on this), and calls from several threads do not interfere.
//!
//! IPv4 and IPv6 (routes, ARP and NDP neighbours) on Ethernet-like interfaces are covered, as
//! the data path is.
//!
//! # The crates, and what is done when a reply does not parse
//! Requests and replies are `netlink-packet-route`'s typed messages ([`request`], [`reply`]),
//! turned into lbd's types in [`convert`]; framing comes from `netlink-packet-core`, the
//! blocking socket from `netlink-sys`, opened per call in the calling thread's namespace
//! (`rtnetlink` would add an async handle on a connection task of its own, which does not fit
//! that). Only the extended-ack explanation of a refusal is read here, as the core crate keeps
//! it unparsed.
//!
//! The typed crate parses every attribute of a message and refuses the whole message when one
//! of them does not read as it expects (VF lists, per-family configuration, a driver's
//! options, a new kernel's additions), which has broken link lookups on new kernels before.
//! Two things keep that from failing a lookup here:
//! - Ask for less: link requests carry `IFLA_EXT_MASK` with `RTEXT_FILTER_SKIP_STATS` and
//!   without `RTEXT_FILTER_VF`, so the statistics and VF lists are not sent at all.
//! - Read what can be read: when the crate refuses a message, [`reply::decode`] reads it again
//!   attribute by attribute with the crate's own attribute parsers, keeping an attribute that
//!   does not parse raw (as `Other`, like kinds the crate does not know) and the interface kind
//!   out of an `IFLA_LINKINFO` whose driver data does not parse. A lookup then fails only when
//!   an attribute lbd needs is unreadable, and its error names the interface (or address) and
//!   the attributes that could not be read. The refusal is logged at debug level.
//!
//! On kernel 6.18, 0.34 parsed every message of link, address, route and neighbour dumps (lo,
//! veth, a bridge and its port, macvlan; IPv4 and IPv6; again with this code in the host's
//! namespace: lo, ifb, the NIC) without refusing one; the fallback is unit-tested with messages
//! built to be refused.
//!
//! # Resolving a neighbour with `NTF_USE`
//! [`request_resolution`] sends what `ip neigh replace ADDR dev IF use` does: RTM_NEWNEIGH with
//! NLM_F_CREATE and the NTF_USE flag. The kernel (`neigh_add` in net/core/neighbour.c) then
//! creates the entry if it is missing and calls `neigh_event_send` on it, exactly as when a
//! packet waits for it: a new or failed entry goes INCOMPLETE and an ARP request leaves at once
//! (checked with tcpdump on kernel 6.18), a STALE one goes DELAY and is probed. The answer lands
//! in the neighbour table, where [`neighbour`] or the monitor see it. A caveat from the same
//! code path: a "use" strips NUD_PERMANENT from an existing static entry, which then drops its
//! MAC and goes INCOMPLETE; [`request_resolution`] therefore leaves PERMANENT and NOARP entries
//! alone.

mod convert;
mod monitor;
mod reply;
mod request;
mod socket;

#[cfg(test)]
mod netns_tests;

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

pub use monitor::{NeighbourEvent, NeighbourMonitor};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage, route::RouteType};
use socket::Rtnl;

/// Interface names are at most 15 bytes plus the terminating NUL (IFNAMSIZ).
const IFNAMSIZ: usize = 16;

/// A network interface as lbd sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// The Ethernet address; all zero when the interface has none (a tunnel, for instance).
    pub mac: [u8; 6],
    pub mtu: u32,
    /// IPv4 addresses with their prefix length, primary first.
    pub ipv4: Vec<(Ipv4Addr, u8)>,
    /// Global (scope universe) IPv6 addresses usable as a source (not tentative), with their
    /// prefix length, in the kernel's order.
    pub ipv6: Vec<(Ipv6Addr, u8)>,
    /// The driver kind of a virtual interface ("veth", "bridge", "vlan", ...); `None` for a
    /// physical one.
    pub kind: Option<String>,
    /// IFLA_LINK: a veth's peer, or the lower device of a vlan or macvlan.
    pub peer_index: Option<u32>,
    /// Set when the interface behind `peer_index` is in another network namespace (the id is
    /// that namespace's id as seen from this one); `peer_index` is then an index over there.
    pub peer_netnsid: Option<i32>,
    /// Administratively up and with carrier (what `ip link` shows as `UP,LOWER_UP`).
    pub up: bool,
}

/// The kernel's answer to "how would a packet to this address leave?".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// The outgoing interface.
    pub ifindex: u32,
    /// The next hop when it is not the destination itself (directly connected); of the
    /// destination's family (an IPv6 route's gateway is often link-local).
    pub gateway: Option<IpAddr>,
    /// The source address the kernel would choose.
    pub prefsrc: Option<IpAddr>,
    /// The destination is one of this host's own addresses (`ifindex` is then loopback's).
    pub local: bool,
}

/// A neighbour whose MAC can be used to send to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub mac: [u8; 6],
    pub state: NeighState,
}

/// The neighbour-table states in which the MAC is known (the kernel's NUD_VALID). The others
/// (INCOMPLETE, FAILED, NONE) mean "not known" and are reported as no neighbour at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeighState {
    /// Confirmed recently.
    Reachable,
    /// Not confirmed recently; the kernel re-checks it when it is next used.
    Stale,
    /// Used while stale; waiting a moment for a confirmation before probing.
    Delay,
    /// Being re-checked with unicast ARP requests.
    Probe,
    /// Set by an administrator; never expires.
    Permanent,
    /// No resolution needed (a NOARP device, or a broadcast or multicast address).
    Noarp,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name, or "with index N".
    #[error("interface {0} not found")]
    LinkNotFound(String),
    #[error("no route to {dst}: {err}")]
    NoRoute { dst: IpAddr, err: io::Error },
    #[error("the route to {dst} goes through an IPv6 next hop, which lb does not support")]
    Ipv6NextHop { dst: IpAddr },
    /// The kernel refused a request; `detail` is its own explanation when it gave one.
    #[error("{what} failed: {err}{}", detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Kernel {
        what: String,
        err: io::Error,
        detail: Option<String>,
    },
    #[error("{what}: unexpected netlink reply: {detail}")]
    Malformed { what: String, detail: String },
    #[error("netlink socket: {op} failed: {err}")]
    Socket { op: &'static str, err: io::Error },
}

impl Error {
    /// The errno of a refusal by the kernel.
    fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn index_not_found(index: u32) -> Error {
    Error::LinkNotFound(format!("with index {index}"))
}

/// The interface called `name`, with its IPv4 and global IPv6 addresses.
pub fn link_by_name(name: &str) -> Result<Link> {
    // Names the kernel could not hold cannot name an interface.
    if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
        return Err(Error::LinkNotFound(name.into()));
    }
    let mut rtnl = Rtnl::open()?;
    let what = format!("looking up interface {name}");
    let link = rtnl
        .get(request::get_link_by_name(name), &what, link_reply)
        .map_err(|e| match e.errno() {
            Some(libc::ENODEV) => Error::LinkNotFound(name.into()),
            _ => e,
        })?;
    with_addresses(&mut rtnl, link)
}

/// The interface with index `index`, with its IPv4 and global IPv6 addresses.
pub fn link_by_index(index: u32) -> Result<Link> {
    // Index 0 means "none" to the kernel, which would want a name instead.
    if index == 0 || index > i32::MAX as u32 {
        return Err(index_not_found(index));
    }
    let mut rtnl = Rtnl::open()?;
    let what = format!("looking up interface with index {index}");
    let link = rtnl
        .get(request::get_link_by_index(index), &what, link_reply)
        .map_err(|e| match e.errno() {
            Some(libc::ENODEV) => index_not_found(index),
            _ => e,
        })?;
    with_addresses(&mut rtnl, link)
}

fn link_reply(message: &RouteNetlinkMessage) -> reply::Parsed<Option<Link>> {
    match message {
        RouteNetlinkMessage::NewLink(link) => convert::link(link).map(Some),
        _ => Ok(None),
    }
}

fn with_addresses(rtnl: &mut Rtnl, mut link: Link) -> Result<Link> {
    let what = format!("listing the IPv4 addresses of {}", link.name);
    let index = link.index;
    link.ipv4 = rtnl.dump(
        request::dump_addresses(AddressFamily::Inet),
        &what,
        |message| match message {
            RouteNetlinkMessage::NewAddress(address) => Ok(convert::ipv4_address(address)?
                .filter(|(ifindex, ..)| *ifindex == index)
                .map(|(_, addr, prefix)| (addr, prefix))),
            _ => Ok(None),
        },
    )?;
    let what = format!("listing the IPv6 addresses of {}", link.name);
    link.ipv6 = rtnl.dump(
        request::dump_addresses(AddressFamily::Inet6),
        &what,
        |message| match message {
            RouteNetlinkMessage::NewAddress(address) => Ok(convert::ipv6_source_address(address)?
                .filter(|(ifindex, ..)| *ifindex == index)
                .map(|(_, addr, prefix)| (addr, prefix))),
            _ => Ok(None),
        },
    )?;
    Ok(link)
}

/// The route the kernel would use for a packet to `dst` (RTM_GETROUTE, as `ip route get`, or
/// `ip -6 route get` for an IPv6 address).
pub fn route_to(dst: IpAddr) -> Result<Route> {
    let what = format!("route lookup for {dst}");
    let reply = Rtnl::open()?
        .get(request::get_route(dst), &what, |message| match message {
            RouteNetlinkMessage::NewRoute(route) => convert::route(route).map(Some),
            _ => Ok(None),
        })
        .map_err(|e| match e {
            // Unreachable, prohibit and blackhole routes come back as refusals.
            Error::Kernel { err, .. } => Error::NoRoute { dst, err },
            e => e,
        })?;
    if reply.via {
        return Err(Error::Ipv6NextHop { dst });
    }
    let ifindex = reply.oif.ok_or_else(|| Error::Malformed {
        what,
        detail: "the route has no outgoing interface (RTA_OIF)".into(),
    })?;
    Ok(Route {
        ifindex,
        gateway: reply.gateway,
        prefsrc: reply.prefsrc,
        local: reply.route_type == RouteType::Local,
    })
}

/// The neighbour `addr` on interface `ifindex` (ARP or NDP by its family), when its MAC is
/// known (see [`NeighState`]).
pub fn neighbour(ifindex: u32, addr: IpAddr) -> Result<Option<Neighbour>> {
    Ok(neighbour_entry(&mut Rtnl::open()?, ifindex, addr)?.and_then(|entry| entry.usable()))
}

fn neighbour_entry(
    rtnl: &mut Rtnl,
    ifindex: u32,
    addr: IpAddr,
) -> Result<Option<convert::NeighbourEntry>> {
    let what = format!("neighbour lookup for {addr} on interface {ifindex}");
    match rtnl.get(
        request::get_neighbour(ifindex, addr),
        &what,
        |message| match message {
            RouteNetlinkMessage::NewNeighbour(neighbour) => convert::neighbour(neighbour).map(Some),
            _ => Ok(None),
        },
    ) {
        Ok(entry) => Ok(entry),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(None),
        Err(e) if e.errno() == Some(libc::ENODEV) => Err(index_not_found(ifindex)),
        Err(e) => Err(e),
    }
}

/// Every neighbour whose MAC is known, IPv4 (ARP) then IPv6 (NDP), on interface `ifindex` or
/// on all of them, as `(ifindex, address, neighbour)`.
pub fn neighbours(ifindex: Option<u32>) -> Result<Vec<(u32, IpAddr, Neighbour)>> {
    let what = match ifindex {
        Some(index) => format!("listing the neighbours on interface {index}"),
        None => "listing the neighbours".to_string(),
    };
    let mut rtnl = Rtnl::open()?;
    let mut all = Vec::new();
    for family in [AddressFamily::Inet, AddressFamily::Inet6] {
        all.extend(rtnl.dump(
            request::dump_neighbours(family, ifindex),
            &what,
            |message| {
                let RouteNetlinkMessage::NewNeighbour(neighbour) = message else {
                    return Ok(None);
                };
                Ok(convert::neighbour(neighbour)?
                    // The kernel filters too; this also covers kernels that ignore the filter.
                    .filter(|entry| ifindex.is_none_or(|index| index == entry.ifindex))
                    .filter(|entry| request::family_of(entry.addr) == family)
                    // Multicast destinations get NOARP entries (with the group's MAC) when
                    // something is sent to them; they are never next hops.
                    .filter(|entry| !entry.addr.is_multicast())
                    .and_then(|entry| Some((entry.ifindex, entry.addr, entry.usable()?))))
            },
        )?);
    }
    Ok(all)
}

/// Has the kernel resolve `addr` on interface `ifindex` (ARP, or NDP's neighbour solicitation
/// for IPv6) without lbd sending it traffic;
/// the result appears in [`neighbour`] and to a [`NeighbourMonitor`] once answered. Returns as
/// soon as the kernel has taken the request. Static (PERMANENT, NOARP) entries are left as they
/// are: they are already usable, and NTF_USE would undo PERMANENT (see the module docs).
pub fn request_resolution(ifindex: u32, addr: IpAddr) -> Result<()> {
    let mut rtnl = Rtnl::open()?;
    if let Some(entry) = neighbour_entry(&mut rtnl, ifindex, addr)?
        && entry.is_static()
    {
        return Ok(());
    }
    let what = format!("requesting resolution of {addr} on interface {ifindex}");
    rtnl.ack(request::use_neighbour(ifindex, addr), &what)
        .map_err(|e| match e.errno() {
            Some(libc::ENODEV) => index_not_found(ifindex),
            _ => e,
        })
}
