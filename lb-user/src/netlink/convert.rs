//! From `netlink-packet-route`'s typed replies to what lbd uses: [`Link`], addresses, the
//! parts of a route, neighbour entries. Pure functions, unit-tested without root.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::Nla;
use netlink_packet_route::{
    AddressFamily,
    address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope},
    link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
    route::{RouteAddress, RouteAttribute, RouteMessage, RouteType},
};

use super::{Link, NeighState, Neighbour, reply::Parsed, request::family_of};

/// RTA_VIA (<linux/rtnetlink.h>), for when it reaches us raw (see [`super::reply::Reply`]).
const RTA_VIA: u16 = 18;

/// A link; its addresses (a separate dump) are left empty.
pub(super) fn link(message: &LinkMessage) -> Parsed<Link> {
    let flags = message.header.flags;
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mac: [0; 6],
        mtu: 0,
        ipv4: Vec::new(),
        ipv6: Vec::new(),
        kind: None,
        peer_index: None,
        peer_netnsid: None,
        up: flags.contains(LinkFlags::Up | LinkFlags::LowerUp),
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            // Only Ethernet-like addresses; others (none, or 4-byte tunnel ends) stay zero.
            LinkAttribute::Address(address) => {
                if let Ok(mac) = <[u8; 6]>::try_from(address.as_slice()) {
                    link.mac = mac;
                }
            }
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::Link(peer) => link.peer_index = Some(*peer),
            LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(*id),
            LinkAttribute::LinkInfo(infos) => {
                link.kind = infos.iter().find_map(|info| match info {
                    LinkInfo::Kind(kind) => Some(kind.to_string()),
                    _ => None,
                });
            }
            _ => {}
        }
    }
    if link.name.is_empty() {
        return Err(format!(
            "interface {} has no name (IFLA_IFNAME)",
            link.index
        ));
    }
    Ok(link)
}

/// The interface's own address: IFA_LOCAL, or IFA_ADDRESS, which differs from it only on
/// point-to-point links (where it is the far end).
fn own_address(message: &AddressMessage) -> Option<IpAddr> {
    let mut address = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(local) => return Some(*local),
            AddressAttribute::Address(a) => address = Some(*a),
            _ => {}
        }
    }
    address
}

/// An IPv4 address: `(ifindex, address, prefix length)`; `None` for other families.
pub(super) fn ipv4_address(message: &AddressMessage) -> Parsed<Option<(u32, Ipv4Addr, u8)>> {
    if message.header.family != AddressFamily::Inet {
        return Ok(None);
    }
    match own_address(message) {
        Some(IpAddr::V4(addr)) => Ok(Some((
            message.header.index,
            addr,
            message.header.prefix_len,
        ))),
        Some(IpAddr::V6(_)) => Err("IPv6 address in an IPv4 address message".into()),
        None => Err("IPv4 address message without an address".into()),
    }
}

/// A global (scope universe) IPv6 address usable as a source: `(ifindex, address, prefix
/// length)`; `None` for other families, other scopes, and addresses not usable yet
/// (tentative: duplicate address detection still running) or ever (DAD failed).
pub(super) fn ipv6_source_address(message: &AddressMessage) -> Parsed<Option<(u32, Ipv6Addr, u8)>> {
    let header = &message.header;
    if header.family != AddressFamily::Inet6 {
        return Ok(None);
    }
    let addr = match own_address(message) {
        Some(IpAddr::V6(addr)) => addr,
        Some(IpAddr::V4(_)) => return Err("IPv4 address in an IPv6 address message".into()),
        None => return Err("IPv6 address message without an address".into()),
    };
    // IFA_FLAGS (32 bits) supersedes the header's 8-bit flags when present.
    let flags = message
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            AddressAttribute::Flags(flags) => Some(*flags),
            _ => None,
        })
        .unwrap_or(AddressFlags::from_bits_retain(header.flags.bits().into()));
    if header.scope != AddressScope::Universe
        || flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed)
    {
        return Ok(None);
    }
    Ok(Some((header.index, addr, header.prefix_len)))
}

/// The parts of the answer to RTM_GETROUTE that lbd uses.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RouteReply {
    pub route_type: RouteType,
    pub oif: Option<u32>,
    pub gateway: Option<IpAddr>,
    pub prefsrc: Option<IpAddr>,
    /// An IPv6 next hop for an IPv4 route (RTA_VIA, RFC 5549).
    pub via: bool,
}

fn ip(name: &str, address: &RouteAddress) -> Parsed<IpAddr> {
    match address {
        RouteAddress::Inet(a) => Ok((*a).into()),
        RouteAddress::Inet6(a) => Ok((*a).into()),
        other => Err(format!("{name} is not an IP address: {other:?}")),
    }
}

pub(super) fn route(message: &RouteMessage) -> Parsed<RouteReply> {
    let mut reply = RouteReply {
        route_type: message.header.kind,
        oif: None,
        gateway: None,
        prefsrc: None,
        via: false,
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Oif(oif) => reply.oif = Some(*oif),
            RouteAttribute::Gateway(gateway) => reply.gateway = Some(ip("RTA_GATEWAY", gateway)?),
            RouteAttribute::PrefSource(src) => reply.prefsrc = Some(ip("RTA_PREFSRC", src)?),
            RouteAttribute::Via(_) => reply.via = true,
            RouteAttribute::Other(raw) if raw.kind() == RTA_VIA => reply.via = true,
            _ => {}
        }
    }
    Ok(reply)
}

/// One neighbour-table entry (ARP or NDP) as the kernel reports it, usable or not.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct NeighbourEntry {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub state: NeighbourState,
    /// The link-layer address when it is an Ethernet one.
    pub lladdr: Option<[u8; 6]>,
}

impl NeighbourEntry {
    /// The entry as lbd may use it: a valid state (NUD_VALID in the kernel) and a MAC.
    pub(super) fn usable(&self) -> Option<Neighbour> {
        let state = match self.state {
            NeighbourState::Reachable => NeighState::Reachable,
            NeighbourState::Stale => NeighState::Stale,
            NeighbourState::Delay => NeighState::Delay,
            NeighbourState::Probe => NeighState::Probe,
            NeighbourState::Permanent => NeighState::Permanent,
            NeighbourState::Noarp => NeighState::Noarp,
            _ => return None,
        };
        Some(Neighbour {
            mac: self.lladdr?,
            state,
        })
    }

    /// Set by an administrator or needing no resolution (PERMANENT, NOARP).
    pub(super) fn is_static(&self) -> bool {
        matches!(
            self.state,
            NeighbourState::Permanent | NeighbourState::Noarp
        )
    }
}

/// An IPv4 (ARP) or IPv6 (NDP) neighbour; `None` for other families (bridge FDB entries share
/// the message type and multicast group).
pub(super) fn neighbour(message: &NeighbourMessage) -> Parsed<Option<NeighbourEntry>> {
    let family = message.header.family;
    if family != AddressFamily::Inet && family != AddressFamily::Inet6 {
        return Ok(None);
    }
    let mut addr = None;
    let mut lladdr = None;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => addr = Some((*a).into()),
            NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                addr = Some((*a).into());
            }
            NeighbourAttribute::Destination(other) => {
                return Err(format!("NDA_DST is not an IP address: {other:?}"));
            }
            NeighbourAttribute::LinkLayerAddress(mac) => {
                lladdr = <[u8; 6]>::try_from(mac.as_slice()).ok();
            }
            _ => {}
        }
    }
    let addr: IpAddr = addr.ok_or("neighbour without NDA_DST")?;
    if family_of(addr) != family {
        return Err(format!("NDA_DST {addr} in a {family:?} entry"));
    }
    Ok(Some(NeighbourEntry {
        ifindex: message.header.ifindex,
        addr,
        state: message.header.state,
        lladdr,
    }))
}

#[cfg(test)]
mod tests {
    //! Typed messages as the kernel would send them, emitted to bytes and read back through
    //! [`reply::decode`] and the conversions.
    use netlink_packet_core::{DefaultNla, Emitable, ParseableParametrized};
    use netlink_packet_route::{
        RouteNetlinkMessage,
        address::AddressHeaderFlags,
        link::InfoKind,
        neighbour::NeighbourFlags,
        route::{RouteType, RouteVia},
    };

    use super::*;
    use crate::netlink::reply::{self, Reply};

    fn bytes(message: &RouteNetlinkMessage) -> Vec<u8> {
        let mut buf = vec![0; message.buffer_len()];
        message.emit(&mut buf);
        buf
    }

    /// The message as `decode` reads it back, and what it could not read.
    fn read_back(message: &RouteNetlinkMessage) -> Reply {
        reply::decode(message.message_type(), &bytes(message))
            .unwrap()
            .unwrap()
    }

    fn veth_link(extra: Vec<LinkAttribute>) -> RouteNetlinkMessage {
        let mut message = LinkMessage::default();
        message.header.index = 5;
        message.header.flags = LinkFlags::Up | LinkFlags::Running | LinkFlags::LowerUp;
        message.attributes = vec![
            LinkAttribute::IfName("veth0".into()),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Link(4),
            LinkAttribute::LinkNetNsId(0),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
            LinkAttribute::Other(DefaultNla::new(0x99, vec![7])),
        ];
        message.attributes.extend(extra);
        RouteNetlinkMessage::NewLink(message)
    }

    fn read_link(message: &RouteNetlinkMessage) -> (Parsed<Link>, Vec<String>) {
        let reply = read_back(message);
        let RouteNetlinkMessage::NewLink(link_message) = &reply.message else {
            panic!("not a link: {:?}", reply.message);
        };
        (link(link_message), reply.unread)
    }

    fn expected_veth() -> Link {
        Link {
            index: 5,
            name: "veth0".into(),
            mac: [2, 0, 0, 0, 0, 1],
            mtu: 1500,
            ipv4: vec![],
            ipv6: vec![],
            kind: Some("veth".into()),
            peer_index: Some(4),
            peer_netnsid: Some(0),
            up: true,
        }
    }

    #[test]
    fn reads_a_veth_link() {
        let message = veth_link(vec![LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Veth,
        )])]);
        let (link, unread) = read_link(&message);
        assert_eq!(link.unwrap(), expected_veth());
        assert!(unread.is_empty());

        let RouteNetlinkMessage::NewLink(mut down) = message else {
            unreachable!()
        };
        down.header.flags = LinkFlags::Up;
        let (link, _) = read_link(&RouteNetlinkMessage::NewLink(down));
        assert!(!link.unwrap().up, "no carrier");
    }

    /// IFLA_LINKINFO with kind "veth" and driver data the crate refuses (a peer too short for
    /// its header), and an IFLA_TXQLEN of 2 bytes.
    fn attributes_the_crate_refuses() -> Vec<LinkAttribute> {
        let peer = DefaultNla::new(1, vec![0; 3]); // VETH_INFO_PEER
        let mut peer_bytes = vec![0; peer.buffer_len()];
        peer.emit(&mut peer_bytes);
        let info = [
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Other(DefaultNla::new(2, peer_bytes)), // IFLA_INFO_DATA
        ];
        let mut info_bytes = vec![0; info.as_slice().buffer_len()];
        info.as_slice().emit(&mut info_bytes);
        vec![
            LinkAttribute::Other(DefaultNla::new(18, info_bytes)), // IFLA_LINKINFO
            LinkAttribute::Other(DefaultNla::new(13, vec![1, 0])), // IFLA_TXQLEN
        ]
    }

    #[test]
    fn a_link_the_crate_refuses_is_read_attribute_by_attribute() {
        let message = veth_link(attributes_the_crate_refuses());
        let raw = bytes(&message);
        assert!(
            RouteNetlinkMessage::parse_with_param(&raw[..], message.message_type()).is_err(),
            "the crate refuses the whole message"
        );
        let (link, unread) = read_link(&message);
        assert_eq!(link.unwrap(), expected_veth(), "the kind survives");
        assert_eq!(unread.len(), 2, "{unread:?}");
        assert!(unread[0].starts_with("type 18:"), "{unread:?}");
    }

    #[test]
    fn an_unreadable_name_is_an_error_naming_the_interface_and_why() {
        let mut message = LinkMessage::default();
        message.header.index = 5;
        message.attributes = vec![
            LinkAttribute::Other(DefaultNla::new(3, vec![0xff, 0xfe, 0])), // IFLA_IFNAME
            LinkAttribute::Mtu(1500),
        ];
        let (link, unread) = read_link(&RouteNetlinkMessage::NewLink(message));
        let detail = reply::with_unread(link.unwrap_err(), &unread);
        assert!(detail.starts_with("interface 5 has no name"), "{detail}");
        assert!(detail.contains("type 3:"), "{detail}");
    }

    #[test]
    fn truncated_replies_are_errors_not_panics() {
        let message = veth_link(attributes_the_crate_refuses());
        let raw = bytes(&message);
        for len in 0..raw.len() {
            // Either an error or (cut at an attribute boundary) a link; never a panic.
            if let Ok(Some(reply)) = reply::decode(message.message_type(), &raw[..len])
                && let RouteNetlinkMessage::NewLink(link_message) = &reply.message
            {
                let _ = link(link_message);
            }
        }
        assert!(reply::decode(message.message_type(), &raw[..10]).is_err());
    }

    fn address(family: AddressFamily, attributes: Vec<AddressAttribute>) -> AddressMessage {
        let mut message = AddressMessage::default();
        message.header.family = family;
        message.header.index = 5;
        message.header.prefix_len = 24;
        message.header.flags = AddressHeaderFlags::Permanent;
        message.attributes = attributes;
        message
    }

    fn read_address(message: AddressMessage) -> AddressMessage {
        match read_back(&RouteNetlinkMessage::NewAddress(message)).message {
            RouteNetlinkMessage::NewAddress(message) => message,
            other => panic!("not an address: {other:?}"),
        }
    }

    #[test]
    fn reads_an_ipv4_address_preferring_ifa_local() {
        let ptp = address(
            AddressFamily::Inet,
            vec![
                AddressAttribute::Address(Ipv4Addr::new(10, 0, 0, 9).into()),
                AddressAttribute::Local(Ipv4Addr::new(10, 0, 0, 1).into()),
            ],
        );
        assert_eq!(
            ipv4_address(&read_address(ptp)).unwrap(),
            Some((5, Ipv4Addr::new(10, 0, 0, 1), 24))
        );
        let v6 = address(
            AddressFamily::Inet6,
            vec![AddressAttribute::Address(Ipv6Addr::LOCALHOST.into())],
        );
        assert_eq!(ipv4_address(&read_address(v6)).unwrap(), None);
        assert!(ipv4_address(&read_address(address(AddressFamily::Inet, vec![]))).is_err());
    }

    #[test]
    fn lists_only_global_settled_ipv6_addresses() {
        let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let settled = address(
            AddressFamily::Inet6,
            vec![AddressAttribute::Address(global.into())],
        );
        assert_eq!(
            ipv6_source_address(&read_address(settled.clone())).unwrap(),
            Some((5, global, 24))
        );
        let mut link_scope = settled.clone();
        link_scope.header.scope = AddressScope::Link;
        assert_eq!(
            ipv6_source_address(&read_address(link_scope)).unwrap(),
            None
        );
        let mut tentative = settled.clone();
        tentative.header.flags = AddressHeaderFlags::Tentative;
        assert_eq!(ipv6_source_address(&read_address(tentative)).unwrap(), None);
        // IFA_FLAGS supersedes the header's flags.
        let mut dad_failed = settled.clone();
        dad_failed
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Dadfailed));
        assert_eq!(
            ipv6_source_address(&read_address(dad_failed)).unwrap(),
            None
        );
        let mut v4 = settled;
        v4.header.family = AddressFamily::Inet;
        assert_eq!(ipv6_source_address(&read_address(v4)).unwrap(), None);
    }

    fn read_route(message: RouteMessage) -> Parsed<RouteReply> {
        match read_back(&RouteNetlinkMessage::NewRoute(message)).message {
            RouteNetlinkMessage::NewRoute(message) => route(&message),
            other => panic!("not a route: {other:?}"),
        }
    }

    #[test]
    fn reads_a_route_reply() {
        let mut message = RouteMessage::default();
        message.header.address_family = AddressFamily::Inet;
        message.header.destination_prefix_length = 32;
        message.header.table = 254;
        message.header.kind = RouteType::Unicast;
        message.attributes = vec![
            RouteAttribute::Table(254),
            RouteAttribute::Destination(Ipv4Addr::new(192, 0, 2, 9).into()),
            RouteAttribute::Oif(3),
            RouteAttribute::Gateway(Ipv4Addr::new(10, 0, 0, 254).into()),
            RouteAttribute::PrefSource(Ipv4Addr::new(10, 0, 0, 1).into()),
        ];
        assert_eq!(
            read_route(message.clone()).unwrap(),
            RouteReply {
                route_type: RouteType::Unicast,
                oif: Some(3),
                gateway: Some(Ipv4Addr::new(10, 0, 0, 254).into()),
                prefsrc: Some(Ipv4Addr::new(10, 0, 0, 1).into()),
                via: false,
            }
        );
        let mut via = message.clone();
        via.attributes[3] = RouteAttribute::Via(RouteVia::Inet6("fe80::1".parse().unwrap()));
        assert!(read_route(via).unwrap().via);
        // An RTA_VIA the crate refuses (shorter than its family field) still counts.
        let mut raw_via = message.clone();
        raw_via.attributes[3] = RouteAttribute::Other(DefaultNla::new(RTA_VIA, vec![10]));
        assert!(read_route(raw_via).unwrap().via);
        let mut local = message;
        local.header.kind = RouteType::Local;
        assert_eq!(read_route(local).unwrap().route_type, RouteType::Local);
    }

    fn neighbour_message(family: AddressFamily, state: NeighbourState) -> NeighbourMessage {
        let mut message = NeighbourMessage::default();
        message.header.family = family;
        message.header.ifindex = 3;
        message.header.state = state;
        message.attributes = vec![
            NeighbourAttribute::Destination(Ipv4Addr::new(10, 0, 0, 2).into()),
            NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 2]),
            NeighbourAttribute::Probes(1),
        ];
        message
    }

    fn read_neighbour(message: NeighbourMessage) -> Option<NeighbourEntry> {
        let reply = read_back(&RouteNetlinkMessage::NewNeighbour(message));
        match reply.message {
            RouteNetlinkMessage::NewNeighbour(message) => neighbour(&message).unwrap(),
            other => panic!("not a neighbour: {other:?}"),
        }
    }

    #[test]
    fn reads_neighbours_and_decides_usability() {
        let entry = read_neighbour(neighbour_message(
            AddressFamily::Inet,
            NeighbourState::Reachable,
        ))
        .unwrap();
        assert_eq!(
            (entry.ifindex, entry.addr),
            (3, Ipv4Addr::new(10, 0, 0, 2).into())
        );
        assert_eq!(
            entry.usable(),
            Some(Neighbour {
                mac: [2, 0, 0, 0, 0, 2],
                state: NeighState::Reachable
            })
        );
        for (state, usable, is_static) in [
            (NeighbourState::Stale, Some(NeighState::Stale), false),
            (NeighbourState::Delay, Some(NeighState::Delay), false),
            (NeighbourState::Probe, Some(NeighState::Probe), false),
            (NeighbourState::Permanent, Some(NeighState::Permanent), true),
            (NeighbourState::Noarp, Some(NeighState::Noarp), true),
            (NeighbourState::Incomplete, None, false),
            (NeighbourState::Failed, None, false),
            (NeighbourState::None, None, false),
        ] {
            let entry = read_neighbour(neighbour_message(AddressFamily::Inet, state)).unwrap();
            assert_eq!(entry.usable().map(|n| n.state), usable, "{state:?}");
            assert_eq!(entry.is_static(), is_static, "{state:?}");
        }
        // A valid state without a MAC (a NOARP device) is not usable either.
        let mut no_mac = neighbour_message(AddressFamily::Inet, NeighbourState::Noarp);
        no_mac.attributes.remove(1);
        assert_eq!(read_neighbour(no_mac).unwrap().usable(), None);
        // Bridge FDB entries share the message type and group.
        let mut fdb = neighbour_message(AddressFamily::Bridge, NeighbourState::Reachable);
        fdb.header.flags = NeighbourFlags::Own;
        assert_eq!(read_neighbour(fdb), None);
    }

    #[test]
    fn a_deleted_ipv6_neighbour_reads_as_such() {
        let mut message = neighbour_message(AddressFamily::Inet6, NeighbourState::Stale);
        let addr: Ipv6Addr = "fe80::2".parse().unwrap();
        message.attributes[0] = NeighbourAttribute::Destination(addr.into());
        let reply = read_back(&RouteNetlinkMessage::DelNeighbour(message));
        let RouteNetlinkMessage::DelNeighbour(deleted) = reply.message else {
            panic!("not a deletion: {:?}", reply.message);
        };
        assert_eq!(
            neighbour(&deleted).unwrap().unwrap().addr,
            IpAddr::from(addr)
        );
    }
}
