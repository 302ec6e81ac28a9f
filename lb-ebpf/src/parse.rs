//! Header parsing: Ethernet → IPv4 or IPv6 (its extension headers stepped over) → TCP/UDP
//! ports, into a [`Packet`] summary, or an ICMP error quoting a TCP/UDP packet, into a
//! [`Packet`] and its [`Quote`]. Both are written into
//! the carry (a map value) field by field, never built on the stack as an enum: the compiler
//! would share stack slots between the variants, and older verifiers refuse reads of slots a
//! path never wrote. Anything we do not balance (ARP,
//! ICMPv6, fragments we cannot place, other protocols, malformed headers) is handed to the
//! kernel untouched.

use aya_ebpf::programs::XdpContext;
use lb_common::{AF_INET, AF_INET6, Addr, FlowKey, IPPROTO_TCP, IPPROTO_UDP, Stat};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
};

use crate::{
    Verdict,
    maps::{IFACES, IFACES_VERSION},
    pass, ptr,
    stage::{Carry, FIRST_FRAGMENT, LATER_FRAGMENT, Packet, Quote, WHOLE},
};

/// Offset of the IPv4 header (no VLAN tags: lb attaches to the interface that carries them off).
pub const L3_OFFSET: usize = EthHdr::LEN;

/// What a frame turned out to be.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A TCP or UDP packet, summarised in the carry's `packet` (its first fragment, too).
    Flow,
    /// A later fragment of a TCP or UDP datagram: addresses, protocol and IP ID in the
    /// carry's `packet`, ports unknown until its first fragment's flow is found (`frag`).
    LaterFragment,
    /// An ICMP error quoting a TCP/UDP packet: the error in `packet`, the quote in `quote`.
    IcmpError,
}

pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;

/// Whether a flow's protocol says it is an ICMP error being relayed (either family).
#[inline(always)]
pub const fn is_icmp(proto: u8) -> bool {
    proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6
}
/// ICMP errors that quote the offending packet (RFC 792): unreachable, source quench,
/// time exceeded, parameter problem.
const ICMP_ERRORS: [u8; 4] = [3, 4, 11, 12];
const ICMP_HEADER: usize = 8;

/// Fragment offset mask and "more fragments" flag in the IPv4 flags/offset field.
const IP_MF_OR_OFFSET: u16 = 0x3fff;
/// Fragment offset mask alone.
const IP_OFFSET: u16 = 0x1fff;
/// "More fragments" flag.
const IP_MF: u16 = 0x2000;
/// Byte offset of the flags in the TCP header.
const TCP_FLAGS_OFFSET: usize = 13;

/// IPv6 extension headers the parser steps over (RFC 8200 4.1): hop-by-hop options,
/// routing, fragment, destination options.
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DSTOPTS: u8 = 60;
/// Extension headers stepped over at most; a packet with more goes to the kernel.
const IPV6_MAX_EXTENSIONS: usize = 4;
/// Fragment offset mask (in 8-byte units, shifted by 3) and "more fragments" flag in the
/// fragment header's offset field.
const IPV6_OFFSET: u16 = 0xfff8;
const IPV6_MF: u16 = 0x0001;

/// Whether the frame is for this host: addressed to the ingress NIC's MAC. IPVS balances only
/// such frames (`PACKET_HOST`): broadcast and multicast ones are the stack's, and the kernel
/// drops other hosts' frames (`PACKET_OTHERHOST`) before IPVS sees them; XDP sees them too
/// when a bridge or switch floods unknown unicast or the NIC is promiscuous, and two
/// directors must not both forward such a frame. A NIC lbd does not describe is not checked.
///
/// The ingress NIC's entry is kept in the carry for the way out (DR and TUN usually leave by
/// it) and for the next packet: it is looked up again only when the NIC differs or lbd has
/// changed `IFACES` since (it bumps `IFACES_VERSION` after each change).
#[inline(always)]
pub fn for_this_host(ctx: &XdpContext, carry: &mut Carry) -> Result<(), Verdict> {
    let eth = ptr::at::<EthHdr>(ctx, 0).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked that a whole EthHdr lies within the packet.
    let dst = unsafe { (*eth).dst_addr };
    if dst[0] & 1 != 0 {
        return Err(pass(Stat::PassBroadcast));
    }
    let ifindex = ctx.ingress_ifindex() as u32;
    let version = IFACES_VERSION.get(0).copied().unwrap_or(0);
    if carry.ingress_ifindex != ifindex || carry.ingress_version != version {
        let ingress = &mut carry.ingress;
        // SAFETY: plain-data value copied out at once.
        match unsafe { IFACES.get(&ifindex) } {
            Some(iface) => {
                ingress.mac = iface.mac;
                ingress.addr = iface.addr;
                ingress.addr6 = iface.addr6;
            }
            None => {
                ingress.mac = [0; 6];
                ingress.addr = 0;
                ingress.addr6 = Addr::ZERO;
            }
        }
        ingress._pad = [0; 2];
        carry.ingress_ifindex = ifindex;
        carry.ingress_version = version;
    }
    let mac = carry.ingress.mac;
    if mac != [0; 6] && mac != dst {
        return Err(pass(Stat::PassOtherHost));
    }
    Ok(())
}

#[inline(always)]
pub fn parse(ctx: &XdpContext, packet: &mut Packet, quote: &mut Quote) -> Result<Kind, Verdict> {
    let eth = ptr::at::<EthHdr>(ctx, 0).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked that a whole EthHdr lies within the packet.
    let ether_type = unsafe { (*eth).ether_type };
    if ether_type == EtherType::Ipv6 as u16 {
        return parse6(ctx, packet, quote);
    }
    if ether_type != EtherType::Ipv4 as u16 {
        return Err(pass(Stat::PassNotIp));
    }

    let ip = ptr::at::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked that a whole Ipv4Hdr lies within the packet.
    let ip = unsafe { &*ip };
    let ihl = usize::from(ip.vihl & 0x0f) * 4;
    if ip.vihl >> 4 != 4 || ihl < Ipv4Hdr::LEN {
        return Err(pass(Stat::PassMalformed));
    }
    // A frame shorter than its IP header claims is not ours to rewrite (the kernel drops it).
    let tot_len = usize::from(u16::from_be_bytes(ip.tot_len));
    if tot_len > ctx.data_end() - ctx.data() - L3_OFFSET {
        return Err(pass(Stat::PassMalformed));
    }
    // The total length delimits the datagram (RFC 791); bytes after it are the link's padding.
    // Headers must lie within it, as the kernel's `ip_rcv` and transport protocols require:
    // a "TCP header" made of Ethernet padding is not a packet.
    let end = L3_OFFSET + tot_len;
    if tot_len < ihl {
        return Err(pass(Stat::PassMalformed));
    }
    let frags = u16::from_be_bytes(ip.frags);
    let proto = ip.proto;
    let l4_offset = L3_OFFSET + ihl;
    if proto == IPPROTO_ICMP {
        if frags & IP_MF_OR_OFFSET != 0 {
            return Err(pass(Stat::PassFragment));
        }
        icmp_error(ctx, ip, l4_offset, end, packet, quote)?;
        return Ok(Kind::IcmpError);
    }
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        return Err(pass(Stat::PassNotService));
    }
    packet.ip_len = u16::from_be_bytes(ip.tot_len);
    packet.ip_id = u32::from(u16::from_ne_bytes(ip.id));
    packet.l4_offset = l4_offset as u8;
    packet.entry = 0;
    packet._pad = 0;
    if frags & IP_OFFSET != 0 {
        // Payload only: the ports are in the first fragment.
        packet.flow = v4_flow(ip.src_addr, ip.dst_addr, [0; 4], proto);
        packet.tcp_flags = 0;
        packet.fragment = LATER_FRAGMENT;
        return Ok(Kind::LaterFragment);
    }
    packet.fragment = if frags & IP_MF != 0 {
        FIRST_FRAGMENT
    } else {
        WHOLE
    };

    let l4_len = if proto == IPPROTO_TCP { 20 } else { 8 };
    if l4_offset + l4_len > end {
        return Err(pass(Stat::PassMalformed));
    }
    // Source and destination ports are the first four bytes of both TCP and UDP headers.
    let ports = ptr::at::<[u8; 4]>(ctx, l4_offset).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked the four port bytes.
    let ports = unsafe { *ports };
    let tcp_flags = if proto == IPPROTO_TCP {
        // A TCP header is at least 20 bytes; check it all so later rewrites may touch it.
        let tcp = ptr::at::<[u8; 20]>(ctx, l4_offset).ok_or_else(|| pass(Stat::PassMalformed))?;
        // SAFETY: `at` checked the 20-byte fixed TCP header.
        unsafe { (*tcp)[TCP_FLAGS_OFFSET] }
    } else {
        ptr::at::<[u8; 8]>(ctx, l4_offset).ok_or_else(|| pass(Stat::PassMalformed))?;
        0
    };

    packet.flow = v4_flow(ip.src_addr, ip.dst_addr, ports, proto);
    packet.tcp_flags = tcp_flags;
    Ok(Kind::Flow)
}

/// Ethernet → IPv6 → (extension headers) → TCP/UDP ports. The payload length delimits the
/// packet as IPv4's total length does; the headers must lie within it. A fragment header is
/// handled as IPv4's fragmentation fields are (RFC 8200 4.5: its 32-bit identification
/// tells a datagram's fragments apart). ICMPv6 (neighbour discovery, errors) is the kernel's.
#[inline(always)]
fn parse6(ctx: &XdpContext, packet: &mut Packet, quote: &mut Quote) -> Result<Kind, Verdict> {
    let ip = ptr::at::<Ipv6Hdr>(ctx, L3_OFFSET).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked that a whole Ipv6Hdr lies within the packet.
    let ip = unsafe { &*ip };
    if ip.vcf[0] >> 4 != 6 {
        return Err(pass(Stat::PassMalformed));
    }
    let payload_len = usize::from(u16::from_be_bytes(ip.payload_len));
    if Ipv6Hdr::LEN + payload_len > ctx.data_end() - ctx.data() - L3_OFFSET {
        return Err(pass(Stat::PassMalformed));
    }
    let end = L3_OFFSET + Ipv6Hdr::LEN + payload_len;
    let mut proto = ip.next_hdr;
    let mut offset = L3_OFFSET + Ipv6Hdr::LEN;
    let mut fragment = WHOLE;
    let mut id = 0u32;
    for _ in 0..IPV6_MAX_EXTENSIONS {
        if proto == IPV6_FRAGMENT {
            let h = ptr::at::<[u8; 8]>(ctx, offset).ok_or_else(|| pass(Stat::PassMalformed))?;
            // SAFETY: `at` checked the eight bytes.
            let h = unsafe { *h };
            let field = u16::from_be_bytes([h[2], h[3]]);
            fragment = if field & IPV6_OFFSET != 0 {
                LATER_FRAGMENT
            } else if field & IPV6_MF != 0 {
                FIRST_FRAGMENT
            } else {
                // An atomic fragment (RFC 6946): a whole packet.
                WHOLE
            };
            id = u32::from_ne_bytes([h[4], h[5], h[6], h[7]]);
            proto = h[0];
            offset += 8;
        } else if proto == IPV6_HOPOPTS || proto == IPV6_ROUTING || proto == IPV6_DSTOPTS {
            let h = ptr::at::<[u8; 2]>(ctx, offset).ok_or_else(|| pass(Stat::PassMalformed))?;
            // SAFETY: `at` checked the two bytes.
            let h = unsafe { *h };
            proto = h[0];
            offset += (usize::from(h[1]) + 1) * 8;
        } else {
            break;
        }
    }
    if proto == IPPROTO_ICMPV6 && fragment == WHOLE {
        icmp6_error(ctx, ip, offset, end, packet, quote)?;
        return Ok(Kind::IcmpError);
    }
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP {
        // Other protocols, or more extension headers than we step over.
        return Err(pass(Stat::PassNotService));
    }
    // Offsets cross to the next stage as a byte.
    if offset > usize::from(u8::MAX) || offset > end {
        return Err(pass(Stat::PassMalformed));
    }
    packet.ip_len = (Ipv6Hdr::LEN + payload_len) as u16;
    packet.ip_id = id;
    packet.l4_offset = offset as u8;
    packet.entry = 0;
    packet._pad = 0;
    packet.fragment = fragment;
    let mut ports = [0u8; 4];
    packet.tcp_flags = 0;
    if fragment != LATER_FRAGMENT {
        let l4_len = if proto == IPPROTO_TCP { 20 } else { 8 };
        if offset + l4_len > end {
            return Err(pass(Stat::PassMalformed));
        }
        if proto == IPPROTO_TCP {
            let tcp = ptr::at::<[u8; 20]>(ctx, offset).ok_or_else(|| pass(Stat::PassMalformed))?;
            // SAFETY: `at` checked the 20-byte fixed TCP header.
            let tcp = unsafe { &*tcp };
            ports = [tcp[0], tcp[1], tcp[2], tcp[3]];
            packet.tcp_flags = tcp[TCP_FLAGS_OFFSET];
        } else {
            let udp = ptr::at::<[u8; 8]>(ctx, offset).ok_or_else(|| pass(Stat::PassMalformed))?;
            // SAFETY: `at` checked the 8-byte UDP header.
            let udp = unsafe { &*udp };
            ports = [udp[0], udp[1], udp[2], udp[3]];
        }
    }
    packet.flow = FlowKey {
        saddr: Addr::from_octets(ip.src_addr),
        daddr: Addr::from_octets(ip.dst_addr),
        sport: u16::from_ne_bytes([ports[0], ports[1]]),
        dport: u16::from_ne_bytes([ports[2], ports[3]]),
        proto,
        family: AF_INET6,
        _pad16: 0,
    };
    Ok(if fragment == LATER_FRAGMENT {
        Kind::LaterFragment
    } else {
        Kind::Flow
    })
}

/// An ICMPv6 error (RFC 4443: destination unreachable, packet too big, time exceeded,
/// parameter problem) about a TCP or UDP packet whose quoted IPv6 header is followed by its
/// TCP/UDP header; anything else (neighbour discovery, echo, quotes with extension headers) is
/// the kernel's.
#[inline(always)]
fn icmp6_error(
    ctx: &XdpContext,
    ip: &Ipv6Hdr,
    icmp_offset: usize,
    end: usize,
    packet: &mut Packet,
    quote: &mut Quote,
) -> Result<(), Verdict> {
    if icmp_offset + 2 > end {
        return Err(pass(Stat::PassMalformed));
    }
    let type_code =
        ptr::at::<[u8; 2]>(ctx, icmp_offset).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked the two bytes.
    let icmp_type = unsafe { (*type_code)[0] };
    if icmp_type == 0 || icmp_type > 4 {
        return Err(pass(Stat::PassNotService));
    }
    let quoted_ip_offset = icmp_offset + ICMP_HEADER;
    if quoted_ip_offset + Ipv6Hdr::LEN > end {
        return Err(pass(Stat::PassMalformed));
    }
    let quoted =
        ptr::at::<Ipv6Hdr>(ctx, quoted_ip_offset).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked the quoted IPv6 header.
    let quoted = unsafe { &*quoted };
    if quoted.vcf[0] >> 4 != 6 {
        return Err(pass(Stat::PassMalformed));
    }
    if quoted.next_hdr != IPPROTO_TCP && quoted.next_hdr != IPPROTO_UDP {
        return Err(pass(Stat::PassNotService));
    }
    let quoted_l4_offset = quoted_ip_offset + Ipv6Hdr::LEN;
    if quoted_l4_offset + 8 > end || quoted_l4_offset > usize::from(u8::MAX) {
        return Err(pass(Stat::PassMalformed));
    }
    let ports =
        ptr::at::<[u8; 8]>(ctx, quoted_l4_offset).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked the eight bytes.
    let ports = unsafe { *ports };
    packet.flow = FlowKey {
        saddr: Addr::from_octets(ip.src_addr),
        daddr: Addr::from_octets(ip.dst_addr),
        sport: 0,
        dport: 0,
        proto: IPPROTO_ICMPV6,
        family: AF_INET6,
        _pad16: 0,
    };
    packet.l4_offset = icmp_offset as u8;
    packet.ip_len = (end - L3_OFFSET) as u16;
    packet.tcp_flags = 0;
    packet.ip_id = 0;
    packet.fragment = WHOLE;
    packet.entry = 0;
    packet._pad = 0;
    quote.flow = FlowKey {
        saddr: Addr::from_octets(quoted.src_addr),
        daddr: Addr::from_octets(quoted.dst_addr),
        sport: u16::from_ne_bytes([ports[0], ports[1]]),
        dport: u16::from_ne_bytes([ports[2], ports[3]]),
        proto: quoted.next_hdr,
        family: AF_INET6,
        _pad16: 0,
    };
    quote.ip_offset = quoted_ip_offset as u8;
    quote.l4_offset = quoted_l4_offset as u8;
    quote._pad = 0;
    Ok(())
}

/// An ICMP error about a TCP or UDP packet; anything else (echo, errors about other
/// protocols or about later fragments, truncated quotes) is passed.
#[inline(always)]
fn icmp_error(
    ctx: &XdpContext,
    ip: &Ipv4Hdr,
    icmp_offset: usize,
    end: usize,
    packet: &mut Packet,
    quote: &mut Quote,
) -> Result<(), Verdict> {
    // Type and code together: a one-byte check compiles to a comparison the verifier does not
    // learn a readable range from.
    if icmp_offset + 2 > end {
        return Err(pass(Stat::PassMalformed));
    }
    let type_code =
        ptr::at::<[u8; 2]>(ctx, icmp_offset).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked the two bytes.
    let icmp_type = unsafe { (*type_code)[0] };
    if !ICMP_ERRORS.contains(&icmp_type) {
        return Err(pass(Stat::PassNotService));
    }
    let quoted_ip_offset = icmp_offset + ICMP_HEADER;
    if quoted_ip_offset + Ipv4Hdr::LEN > end {
        return Err(pass(Stat::PassMalformed));
    }
    let quoted =
        ptr::at::<Ipv4Hdr>(ctx, quoted_ip_offset).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked the quoted IPv4 header.
    let quoted = unsafe { &*quoted };
    let quoted_ihl = usize::from(quoted.vihl & 0x0f) * 4;
    if quoted.vihl >> 4 != 4 || quoted_ihl < Ipv4Hdr::LEN {
        return Err(pass(Stat::PassMalformed));
    }
    if quoted.proto != IPPROTO_TCP && quoted.proto != IPPROTO_UDP {
        return Err(pass(Stat::PassNotService));
    }
    // A later fragment starts with payload, not ports: nothing to match (IPVS ignores these
    // errors too).
    if u16::from_be_bytes(quoted.frags) & IP_OFFSET != 0 {
        return Err(pass(Stat::PassFragment));
    }
    let quoted_l4_offset = quoted_ip_offset + quoted_ihl;
    // RFC 792 quotes at least 8 bytes of the payload: both ports and, for UDP, the checksum.
    if quoted_l4_offset + 8 > end {
        return Err(pass(Stat::PassMalformed));
    }
    let ports =
        ptr::at::<[u8; 8]>(ctx, quoted_l4_offset).ok_or_else(|| pass(Stat::PassMalformed))?;
    // SAFETY: `at` checked the eight bytes.
    let ports = unsafe { *ports };
    packet.flow = v4_flow(ip.src_addr, ip.dst_addr, [0; 4], IPPROTO_ICMP);
    packet.l4_offset = icmp_offset as u8;
    packet.ip_len = u16::from_be_bytes(ip.tot_len);
    packet.tcp_flags = 0;
    packet.ip_id = u32::from(u16::from_ne_bytes(ip.id));
    packet.fragment = WHOLE;
    packet.entry = 0;
    packet._pad = 0;
    quote.flow = v4_flow(
        quoted.src_addr,
        quoted.dst_addr,
        [ports[0], ports[1], ports[2], ports[3]],
        quoted.proto,
    );
    quote.ip_offset = quoted_ip_offset as u8;
    quote.l4_offset = quoted_l4_offset as u8;
    quote._pad = 0;
    Ok(())
}

/// An IPv4 flow's key from its header's addresses and the first four bytes of its TCP/UDP
/// header (the ports; zero where there are none).
#[inline(always)]
fn v4_flow(src: [u8; 4], dst: [u8; 4], ports: [u8; 4], proto: u8) -> FlowKey {
    FlowKey {
        saddr: Addr::v4(u32::from_ne_bytes(src)),
        daddr: Addr::v4(u32::from_ne_bytes(dst)),
        sport: u16::from_ne_bytes([ports[0], ports[1]]),
        dport: u16::from_ne_bytes([ports[2], ports[3]]),
        proto,
        family: AF_INET,
        _pad16: 0,
    }
}
