//! The few requests lbd sends, as `netlink-packet-route`'s typed messages, and their bytes.

use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    address::AddressMessage,
    link::{LinkAttribute, LinkExtentMask, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage},
    route::{RouteAddress, RouteAttribute, RouteMessage},
};

/// A request and the netlink flags it is sent with.
#[derive(Clone, Debug)]
pub(super) struct Request {
    message: NetlinkMessage<RouteNetlinkMessage>,
}

impl Request {
    fn new(message: RouteNetlinkMessage, flags: u16) -> Self {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        message.finalize();
        Request { message }
    }

    /// Requests that are not dumps ask for an acknowledgement, so that every exchange ends
    /// with an NLMSG_ERROR (error 0 for success) or NLMSG_DONE.
    fn get(message: RouteNetlinkMessage) -> Self {
        Self::new(message, NLM_F_ACK)
    }

    fn dump(message: RouteNetlinkMessage) -> Self {
        Self::new(message, NLM_F_DUMP)
    }

    pub(super) fn is_dump(&self) -> bool {
        self.message.header.flags & NLM_F_DUMP == NLM_F_DUMP
    }

    /// The request as sent, with sequence number `seq`.
    pub(super) fn bytes(&mut self, seq: u32) -> Vec<u8> {
        self.message.header.sequence_number = seq;
        let mut buf = vec![0; self.message.buffer_len()];
        self.message.serialize(&mut buf);
        buf
    }
}

pub(super) fn family_of(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Link replies without their statistics (large, and not read).
fn skip_stats() -> LinkAttribute {
    LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])
}

pub(super) fn get_link_by_name(name: &str) -> Request {
    let mut message = LinkMessage::default();
    message.attributes = vec![LinkAttribute::IfName(name.into()), skip_stats()];
    Request::get(RouteNetlinkMessage::GetLink(message))
}

pub(super) fn get_link_by_index(index: u32) -> Request {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.attributes = vec![skip_stats()];
    Request::get(RouteNetlinkMessage::GetLink(message))
}

/// Every address of `family` (IPv4 or IPv6) on every interface.
pub(super) fn dump_addresses(family: AddressFamily) -> Request {
    let mut message = AddressMessage::default();
    message.header.family = family;
    Request::dump(RouteNetlinkMessage::GetAddress(message))
}

/// What `ip route get DST` asks: the route the kernel would use for a packet to `dst` (either
/// family: `ip -6 route get` for an IPv6 one).
pub(super) fn get_route(dst: IpAddr) -> Request {
    let mut message = RouteMessage::default();
    message.header.address_family = family_of(dst);
    message.header.destination_prefix_length = if dst.is_ipv6() { 128 } else { 32 };
    message.attributes = vec![RouteAttribute::Destination(RouteAddress::from(dst))];
    Request::get(RouteNetlinkMessage::GetRoute(message))
}

fn neighbour_message(ifindex: u32, addr: IpAddr) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = family_of(addr);
    message.header.ifindex = ifindex;
    message.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::from(
        addr,
    ))];
    message
}

/// The neighbour entry of `addr` (the ARP table's for IPv4, NDP's for IPv6).
pub(super) fn get_neighbour(ifindex: u32, addr: IpAddr) -> Request {
    Request::get(RouteNetlinkMessage::GetNeighbour(neighbour_message(
        ifindex, addr,
    )))
}

/// The neighbour table of `family` (IPv4: ARP, IPv6: NDP), of one interface or all.
pub(super) fn dump_neighbours(family: AddressFamily, ifindex: Option<u32>) -> Request {
    let mut message = NeighbourMessage::default();
    message.header.family = family;
    message.attributes = ifindex
        .map(NeighbourAttribute::IfIndex)
        .into_iter()
        .collect();
    Request::dump(RouteNetlinkMessage::GetNeighbour(message))
}

/// What `ip neigh replace ADDR dev IF use` sends: create the entry if missing and mark it used,
/// so the kernel starts resolving it as if a packet were waiting (an ARP request, or an IPv6
/// neighbour solicitation). The state stays NUD_NONE, which the kernel ignores for a "use" and
/// which keeps the new entry subject to garbage collection.
pub(super) fn use_neighbour(ifindex: u32, addr: IpAddr) -> Request {
    let mut message = neighbour_message(ifindex, addr);
    message.header.flags = NeighbourFlags::Use;
    Request::new(
        RouteNetlinkMessage::NewNeighbour(message),
        NLM_F_ACK | NLM_F_CREATE,
    )
}

#[cfg(test)]
#[cfg(target_endian = "little")]
mod tests {
    //! The bytes are laid out by hand from <linux/netlink.h> and <linux/rtnetlink.h>: what the
    //! kernel reads, whichever library builds it.
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn get_link_by_name_layout() {
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x34, 0, 0, 0, 18, 0, 0x05, 0, 9, 0, 0, 0, 0, 0, 0, 0, // len 52, GETLINK, REQUEST|ACK
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,       // ifinfomsg, index 0
            10, 0, 3, 0, b'v', b'e', b't', b'h', b'0', 0, 0, 0,   // IFLA_IFNAME "veth0\0" + pad
            8, 0, 29, 0, 8, 0, 0, 0,                              // IFLA_EXT_MASK SKIP_STATS
        ];
        assert_eq!(get_link_by_name("veth0").bytes(9), expected);
        let by_index = get_link_by_index(5).bytes(1);
        assert_eq!(&by_index[16..24], &[0, 0, 0, 0, 5, 0, 0, 0]);
        assert_eq!(&by_index[32..], &[8, 0, 29, 0, 8, 0, 0, 0]);
    }

    #[test]
    fn use_neighbour_is_a_create_with_ntf_use() {
        let mut request = use_neighbour(7, Ipv4Addr::new(10, 0, 0, 2).into());
        #[rustfmt::skip]
        let expected: &[u8] = &[
            36, 0, 0, 0, 28, 0, 0x05, 0x04, 4, 3, 2, 1, 0, 0, 0, 0, // NEWNEIGH, REQUEST|ACK|CREATE
            2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0x01, 0,                   // AF_INET, ifindex 7, NONE, NTF_USE
            8, 0, 1, 0, 10, 0, 0, 2,                                 // NDA_DST 10.0.0.2
        ];
        assert_eq!(request.bytes(0x0102_0304), expected);
        assert!(!request.is_dump());
    }

    #[test]
    fn route_neighbour_and_address_requests() {
        #[rustfmt::skip]
        let route: &[u8] = &[
            36, 0, 0, 0, 26, 0, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            2, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,                     // AF_INET, /32
            8, 0, 1, 0, 192, 0, 2, 9,                                // RTA_DST
        ];
        assert_eq!(
            get_route(Ipv4Addr::new(192, 0, 2, 9).into()).bytes(0),
            route
        );
        let v6 = get_route("2001:db8::9".parse().unwrap()).bytes(0);
        assert_eq!(&v6[16..18], &[10, 128]);
        assert_eq!(v6.len(), 16 + 12 + 20);

        let mut get = get_neighbour(3, Ipv4Addr::new(10, 0, 0, 2).into());
        assert!(!get.is_dump());
        assert_eq!(&get.bytes(0)[4..8], &[30, 0, 0x05, 0]); // GETNEIGH, REQUEST|ACK

        let mut dump = dump_neighbours(AddressFamily::Inet, Some(3));
        assert!(dump.is_dump());
        let bytes = dump.bytes(0);
        assert_eq!(&bytes[4..8], &[30, 0, 0x01, 0x03]); // GETNEIGH, REQUEST|DUMP
        assert_eq!(&bytes[28..], &[8, 0, 8, 0, 3, 0, 0, 0]); // NDA_IFINDEX 3
        assert_eq!(
            dump_neighbours(AddressFamily::Inet, None).bytes(0).len(),
            16 + 12
        );

        let mut addresses = dump_addresses(AddressFamily::Inet6);
        assert!(addresses.is_dump());
        #[rustfmt::skip]
        let expected: &[u8] = &[
            24, 0, 0, 0, 22, 0, 0x01, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, // GETADDR, REQUEST|DUMP
            10, 0, 0, 0, 0, 0, 0, 0,                                // AF_INET6
        ];
        assert_eq!(addresses.bytes(0), expected);
    }
}
