//! ICMPv6 errors back to the client (RFC 4443), built in place from the packet they are
//! about, as IPVS sends them for IPv6 (`icmpv6_send` in `ip_vs_xmit.c`): "packet too big"
//! (type 2) with the MTU a tunnel leaves, "time exceeded" (type 3, code 0) for a packet whose
//! hop limit runs out here. The error quotes the packet's first 48 bytes: its IPv6 header and
//! the 8 bytes after it (the TCP/UDP ports, unless extension headers come first), from the
//! address the client was talking to (the VIP).

use aya_ebpf::{
    EbpfContext as _,
    bindings::xdp_action,
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use lb_common::{AF_INET6, Addr, Stat, csum};
use network_types::{eth::EthHdr, ip::Ipv6Hdr};

use crate::{Verdict, drop, parse::L3_OFFSET, ptr, stage::Packet, stats};

const IPPROTO_ICMPV6: u8 = 58;
const ICMPV6_PKT_TOOBIG: u8 = 2;
const ICMPV6_TIME_EXCEED: u8 = 3;
const ICMPV6_EXC_HOPLIMIT: u8 = 0;
const ICMPV6_HEADER: usize = 8;
/// Bytes of the offending packet quoted: its IPv6 header and 8 more.
const QUOTE: usize = Ipv6Hdr::LEN + 8;
/// The IPv6 minimum MTU (RFC 8200 5): no path is told to be smaller.
pub const MIN_MTU: u32 = 1280;

/// Whether the director may answer `packet` with an ICMPv6 error (RFC 4443 2.4 (e), as the
/// kernel's `icmp6_send`): not about a fragment other than the first, nor to a source that
/// names no single host (unspecified, loopback, multicast).
#[inline(always)]
pub fn may_answer(packet: &Packet) -> bool {
    let src = packet.flow.saddr;
    let first_octet = src.0[0].to_ne_bytes()[0];
    packet.flow.family == AF_INET6
        && !crate::parse::is_icmp(packet.flow.proto)
        && packet.fragment != crate::stage::LATER_FRAGMENT
        && first_octet != 0xff
        && src != Addr::ZERO
        && src != Addr([0, 0, 0, 1u32.to_be()])
}

/// "Packet too big", with the MTU the path can carry.
#[inline(always)]
pub fn packet_too_big(ctx: &XdpContext, packet: &Packet, mtu: u32) -> Result<Verdict, Verdict> {
    error(ctx, packet, ICMPV6_PKT_TOOBIG, 0, mtu)?;
    stats::count(Stat::IcmpFragNeeded);
    Ok(xdp_action::XDP_TX)
}

/// "Time exceeded": hop limit exceeded in transit.
#[inline(always)]
pub fn time_exceeded(ctx: &XdpContext, packet: &Packet) -> Result<Verdict, Verdict> {
    error(ctx, packet, ICMPV6_TIME_EXCEED, ICMPV6_EXC_HOPLIMIT, 0)?;
    stats::count(Stat::IcmpTimeExceeded);
    Ok(xdp_action::XDP_TX)
}

/// Sums 16-bit halves of network-order words (one's complement, unfolded).
#[inline(always)]
fn sum_words(words: &[u32]) -> u32 {
    let mut sum = 0u32;
    for w in words {
        sum += (w & 0xffff) + (w >> 16);
    }
    sum
}

/// Turns the packet into the ICMPv6 error `icmp_type`/`code` with `word` (the MTU for
/// "packet too big") for the client, ready to go back out.
#[inline(always)]
fn error(
    ctx: &XdpContext,
    packet: &Packet,
    icmp_type: u8,
    code: u8,
    word: u32,
) -> Result<(), Verdict> {
    let orig_eth = ptr::at::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at` checked the Ethernet header.
    let (client_mac, our_mac) = unsafe { ((*orig_eth).src_addr, (*orig_eth).dst_addr) };
    ptr::at::<[u8; QUOTE]>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;

    // New frame: Ethernet | IPv6 (40) | ICMPv6 (8) | the first 48 bytes of the packet, which
    // stay where they are once the head grows by the two new headers.
    let grow = Ipv6Hdr::LEN + ICMPV6_HEADER;
    // SAFETY: helper call on our own context; pointers are re-derived afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, -(grow as i32)) } != 0 {
        return Err(drop(Stat::DropFib));
    }
    let keep = EthHdr::LEN + grow + QUOTE;
    let len = ctx.data_end() - ctx.data();
    // SAFETY: helper call; shrinking only (a TCP/UDP packet has at least the bytes quoted).
    if keep < len
        && unsafe { bpf_xdp_adjust_tail(ctx.as_ptr() as *mut _, -((len - keep) as i32)) } != 0
    {
        return Err(drop(Stat::DropFib));
    }
    let eth = ptr::at_mut::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::DropMalformed))?;
    let ip = ptr::at_mut::<Ipv6Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    let icmp = ptr::at_mut::<[u8; ICMPV6_HEADER]>(ctx, L3_OFFSET + Ipv6Hdr::LEN)
        .ok_or_else(|| drop(Stat::DropMalformed))?;
    let quoted = ptr::at::<[u32; QUOTE / 4]>(ctx, L3_OFFSET + grow)
        .ok_or_else(|| drop(Stat::DropMalformed))?
        .cast::<u32>();
    let length = (ICMPV6_HEADER + QUOTE) as u32;
    // From the address the client was talking to (the VIP), to the client.
    let (src, dst) = (&packet.flow.daddr, &packet.flow.saddr);
    let word = word.to_be();
    // The pseudo-header (addresses, upper-layer length, next header), the ICMPv6 header
    // with its checksum zero, and the quote.
    let mut sum = sum_words(&src.0)
        + sum_words(&dst.0)
        + sum_words(&[length.to_be(), u32::from(IPPROTO_ICMPV6).to_be(), word])
        + u32::from(u16::from_ne_bytes([icmp_type, code]));
    for i in 0..QUOTE / 4 {
        // SAFETY: within the quote `at` checked; read unaligned, as packet fields may be.
        sum += sum_words(&[unsafe { quoted.add(i).read_unaligned() }]);
    }
    let check = (!csum::fold(sum)).to_ne_bytes();
    let word = word.to_ne_bytes();
    // SAFETY: `at_mut` checked the three headers after the resize.
    unsafe {
        (*eth).dst_addr = client_mac;
        (*eth).src_addr = our_mac;
        (*eth).ether_type = network_types::eth::EtherType::Ipv6 as u16;
        (*ip).vcf = [0x60, 0, 0, 0];
        (*ip).payload_len = (length as u16).to_be_bytes();
        (*ip).next_hdr = IPPROTO_ICMPV6;
        (*ip).hop_limit = 64;
        (*ip).src_addr = src.octets();
        (*ip).dst_addr = dst.octets();
        *icmp = [
            icmp_type, code, check[0], check[1], word[0], word[1], word[2], word[3],
        ];
    }
    Ok(())
}
