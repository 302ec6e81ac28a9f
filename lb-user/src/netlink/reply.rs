//! Reading what the kernel answers: a datagram split into messages, the status that ends an
//! exchange, and the rtnetlink messages lbd reads, typed by `netlink-packet-route` (attribute
//! by attribute when the crate refuses the whole message; see the module docs of [`super`]).

use netlink_packet_core::{
    DecodeError, DefaultNla, Emitable, NLM_F_ACK_TLVS, NLM_F_CAPPED, NetlinkBuffer, NlaBuffer,
    NlasIterator, Parseable, ParseableParametrized,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    address::{AddressAttribute, AddressHeader, AddressMessage},
    link::{InfoKind, LinkAttribute, LinkHeader, LinkInfo, LinkMessage},
    neighbour::{NeighbourAttribute, NeighbourHeader, NeighbourMessage},
    route::{RouteAttribute, RouteHeader, RouteLwEnCapType, RouteMessage},
};
use tracing::debug;

/// A reply that does not read as documented, with what was wrong.
pub(super) type Parsed<T> = Result<T, String>;

// The message types lbd reads (<linux/rtnetlink.h>).
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
/// IFLA_LINKINFO (<linux/if_link.h>): its IFLA_INFO_KIND is read even when the rest of it
/// (the driver's IFLA_INFO_DATA, where new kernels add options) does not parse.
const IFLA_LINKINFO: u16 = 18;
/// Extended-ack attribute carrying the kernel's explanation of an error (<linux/netlink.h>).
const NLMSGERR_ATTR_MSG: u16 = 1;

/// A reply as a typed message.
#[derive(Debug)]
pub(super) struct Reply {
    pub message: RouteNetlinkMessage,
    /// The attributes `netlink-packet-route` could not read, as "type N: why"; they are in
    /// `message` as `Other` (raw), as the crate itself keeps kinds it does not know.
    pub unread: Vec<String>,
}

/// The messages of one datagram, each checked to lie within it.
pub(super) fn messages(datagram: &[u8]) -> impl Iterator<Item = Parsed<NetlinkBuffer<&[u8]>>> {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let rest = datagram.get(offset..).filter(|rest| !rest.is_empty())?;
        match NetlinkBuffer::new_checked(rest) {
            Ok(message) => {
                // new_checked guarantees length >= 16, so this always moves forward.
                offset += align4(message.length() as usize);
                Some(Ok(message))
            }
            Err(e) => {
                offset = datagram.len();
                Some(Err(e.to_string()))
            }
        }
    })
}

fn align4(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// The status in an NLMSG_ERROR or NLMSG_DONE payload: `None` for success, else the errno and
/// the kernel's explanation when it sent one (extended ack, which `netlink-packet-core` leaves
/// unread in the echoed request).
pub(super) fn parse_status(
    flags: u16,
    done: bool,
    payload: &[u8],
) -> Parsed<Option<(i32, Option<String>)>> {
    // A DONE from an old kernel may have no payload at all.
    if done && payload.is_empty() {
        return Ok(None);
    }
    let code = payload
        .get(..4)
        .ok_or("status shorter than its error code")?;
    let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
    if code == 0 {
        return Ok(None);
    }
    // An NLMSG_ERROR echoes the request's header (and its body unless capped) before the TLVs.
    let mut tlvs = 4;
    if !done {
        tlvs += if flags & NLM_F_CAPPED != 0 {
            16
        } else {
            let echoed = payload
                .get(4..8)
                .ok_or("error without the echoed request")?;
            align4(u32::from_ne_bytes([echoed[0], echoed[1], echoed[2], echoed[3]]) as usize)
        };
    }
    let mut message = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        for nla in NlasIterator::new(payload.get(tlvs..).unwrap_or_default()) {
            let nla = nla.map_err(|e| e.to_string())?;
            if nla.kind() == NLMSGERR_ATTR_MSG {
                let value = nla.value();
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                message = Some(String::from_utf8_lossy(&value[..end]).into_owned());
            }
        }
    }
    Ok(Some((code.saturating_neg(), message)))
}

/// A link, address, route or neighbour message, typed; `None` for other message types. When
/// the crate refuses the message, it is read again attribute by attribute, keeping those that
/// do not parse raw; only a message too short for its header is an error.
pub(super) fn decode(message_type: u16, payload: &[u8]) -> Parsed<Option<Reply>> {
    if !matches!(
        message_type,
        RTM_NEWLINK | RTM_NEWADDR | RTM_NEWROUTE | RTM_NEWNEIGH | RTM_DELNEIGH
    ) {
        return Ok(None);
    }
    match RouteNetlinkMessage::parse_with_param(payload, message_type) {
        Ok(message) => Ok(Some(Reply {
            message,
            unread: Vec::new(),
        })),
        Err(refused) => {
            let reply = attribute_by_attribute(message_type, payload)?;
            debug!(
                message_type,
                %refused,
                unread = ?reply.unread,
                "netlink: a reply read attribute by attribute"
            );
            Ok(Some(reply))
        }
    }
}

fn attribute_by_attribute(message_type: u16, payload: &[u8]) -> Parsed<Reply> {
    let mut unread = Vec::new();
    let message = match message_type {
        RTM_NEWLINK => {
            let header = LinkHeader::parse(payload).map_err(too_short)?;
            let family = header.interface_family;
            let mut message = LinkMessage::default();
            message.attributes = each(
                &payload[header.buffer_len()..],
                &mut unread,
                |nla| LinkAttribute::parse_with_param(nla, family),
                raw_link_attribute,
            );
            message.header = header;
            RouteNetlinkMessage::NewLink(message)
        }
        RTM_NEWADDR => {
            let header = AddressHeader::parse(payload).map_err(too_short)?;
            let mut message = AddressMessage::default();
            message.attributes = each(
                &payload[header.buffer_len()..],
                &mut unread,
                |nla| AddressAttribute::parse(nla),
                |nla| AddressAttribute::Other(raw(nla)),
            );
            message.header = header;
            RouteNetlinkMessage::NewAddress(message)
        }
        RTM_NEWROUTE => {
            let header = RouteHeader::parse(payload).map_err(too_short)?;
            // Lightweight-tunnel encapsulations (RTA_ENCAP), which lbd does not read, are
            // left raw here rather than typed by their RTA_ENCAP_TYPE.
            let param = (header.address_family, header.kind, RouteLwEnCapType::None);
            let mut message = RouteMessage::default();
            message.attributes = each(
                &payload[header.buffer_len()..],
                &mut unread,
                |nla| RouteAttribute::parse_with_param(nla, param),
                |nla| RouteAttribute::Other(raw(nla)),
            );
            message.header = header;
            RouteNetlinkMessage::NewRoute(message)
        }
        _ => {
            let header = NeighbourHeader::parse(payload).map_err(too_short)?;
            let family = header.family;
            let mut message = NeighbourMessage::default();
            message.attributes = each(
                &payload[header.buffer_len()..],
                &mut unread,
                |nla| NeighbourAttribute::parse_with_param(nla, family),
                |nla| NeighbourAttribute::Other(raw(nla)),
            );
            message.header = header;
            if message_type == RTM_DELNEIGH {
                RouteNetlinkMessage::DelNeighbour(message)
            } else {
                RouteNetlinkMessage::NewNeighbour(message)
            }
        }
    };
    Ok(Reply { message, unread })
}

/// `detail` about a reply that did not convert, with the attributes that could not be read,
/// the likely reason.
pub(super) fn with_unread(detail: String, unread: &[String]) -> String {
    if unread.is_empty() {
        return detail;
    }
    format!(
        "{detail} (attributes netlink-packet-route could not read: {})",
        unread.join("; ")
    )
}

fn too_short(e: DecodeError) -> String {
    format!("shorter than its header: {e}")
}

/// Each attribute in `attributes`, typed by `parse`, or by `fallback` (and named in `unread`)
/// when it does not parse. A length running past the message ends the walk.
fn each<A>(
    attributes: &[u8],
    unread: &mut Vec<String>,
    parse: impl Fn(&NlaBuffer<&[u8]>) -> Result<A, DecodeError>,
    fallback: impl Fn(&NlaBuffer<&[u8]>) -> A,
) -> Vec<A> {
    let mut typed = Vec::new();
    for nla in NlasIterator::new(attributes) {
        let nla = match nla {
            Ok(nla) => nla,
            Err(e) => {
                unread.push(format!(
                    "the attributes from the first malformed one on: {e}"
                ));
                break;
            }
        };
        match parse(&nla) {
            Ok(attribute) => typed.push(attribute),
            Err(e) => {
                unread.push(format!("type {}: {e}", nla.kind()));
                typed.push(fallback(&nla));
            }
        }
    }
    typed
}

fn raw(nla: &NlaBuffer<&[u8]>) -> DefaultNla {
    DefaultNla::new(nla.kind(), nla.value().to_vec())
}

/// A link attribute that did not parse: IFLA_LINKINFO keeps its kind when that parses.
fn raw_link_attribute(nla: &NlaBuffer<&[u8]>) -> LinkAttribute {
    if nla.kind() == IFLA_LINKINFO
        && let Some(kind) = NlasIterator::new(nla.value())
            .flatten()
            .find_map(|info| InfoKind::parse(&info).ok())
    {
        return LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]);
    }
    LinkAttribute::Other(raw(nla))
}

#[cfg(test)]
#[cfg(target_endian = "little")]
mod tests {
    use super::*;

    #[test]
    fn reads_acks_errors_and_their_explanation() {
        assert_eq!(parse_status(0, false, &[0, 0, 0, 0, 36, 0, 0, 0]), Ok(None));
        assert_eq!(parse_status(0, true, &[]), Ok(None));
        // -ENODEV, capped echo of the request header, then NLMSGERR_ATTR_MSG.
        #[rustfmt::skip]
        let refusal: &[u8] = &[
            0xed, 0xff, 0xff, 0xff,
            36, 0, 0, 0, 28, 0, 0x05, 0x04, 1, 0, 0, 0, 0, 0, 0, 0,
            12, 0, 1, 0, b'n', b'o', b' ', b'd', b'e', b'v', 0, 0,
        ];
        assert_eq!(
            parse_status(NLM_F_CAPPED | NLM_F_ACK_TLVS, false, refusal),
            Ok(Some((19, Some("no dev".into()))))
        );
        // Uncapped: the whole 36-byte request is echoed before the attributes.
        let mut uncapped = refusal[..20].to_vec();
        uncapped.extend_from_slice(&[0; 20]);
        uncapped.extend_from_slice(&refusal[20..]);
        assert_eq!(
            parse_status(NLM_F_ACK_TLVS, false, &uncapped),
            Ok(Some((19, Some("no dev".into()))))
        );
        assert_eq!(
            parse_status(0, true, &[0xfc, 0xff, 0xff, 0xff]),
            Ok(Some((4, None)))
        );
        assert!(parse_status(0, false, &[0xfc, 0xff]).is_err());
    }

    #[test]
    fn splits_a_datagram_into_messages() {
        #[rustfmt::skip]
        let mut datagram = vec![
            19, 0, 0, 0, 30, 0, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, // 19 bytes + 1 pad
            16, 0, 0, 0, 26, 0, 5, 0, 2, 0, 0, 0, 0, 0, 0, 0,
        ];
        let types: Vec<u16> = messages(&datagram)
            .map(|m| m.unwrap().message_type())
            .collect();
        assert_eq!(types, [30, 26]);
        // A length running past the datagram ends the walk with an error.
        datagram[0] = 200;
        let walked: Vec<_> = messages(&datagram).collect();
        assert_eq!(walked.len(), 1);
        assert!(walked[0].is_err());
    }

    #[test]
    fn other_message_types_are_skipped_and_short_ones_refused() {
        assert!(decode(RTM_NEWLINK - 2, &[0; 16]).unwrap().is_none());
        for message_type in [RTM_NEWLINK, RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWNEIGH] {
            assert!(decode(message_type, &[2; 7]).is_err(), "{message_type}");
        }
    }
}
