//! ICMP errors back to the client, built in place from the packet they are about: RFC 792
//! asks for the original IP header and the first 8 bytes of its payload, which is what we
//! keep. "Fragmentation needed" (type 3, code 4) for a packet too big for a tunnel, "time
//! exceeded" (type 11, code 0) for one whose TTL runs out here, as IPVS sends them
//! (`ensure_mtu_is_adequate`, `decrement_ttl`). Never about an ICMP error (RFC 1122): callers
//! drop those instead.

use aya_ebpf::{
    EbpfContext as _,
    bindings::xdp_action,
    helpers::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use lb_common::{Stat, csum};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{Verdict, drop, ip, ptr, stage::Packet, stats};

const IPPROTO_ICMP: u8 = 1;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_FRAG_NEEDED: u8 = 4;
const ICMP_HEADER: usize = 8;
/// Bytes of the original datagram's payload quoted after its header.
const QUOTED_PAYLOAD: usize = 8;

const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMP_EXC_TTL: u8 = 0;

/// "Fragmentation needed", with the MTU the path can carry.
#[inline(always)]
pub fn frag_needed(ctx: &XdpContext, packet: &Packet, mtu: u16) -> Result<Verdict, Verdict> {
    error(ctx, packet, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu)?;
    stats::count(Stat::IcmpFragNeeded);
    Ok(xdp_action::XDP_TX)
}

/// "Time exceeded in transit".
#[inline(always)]
pub fn time_exceeded(ctx: &XdpContext, packet: &Packet) -> Result<Verdict, Verdict> {
    error(ctx, packet, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0)?;
    stats::count(Stat::IcmpTimeExceeded);
    Ok(xdp_action::XDP_TX)
}

/// Turns the packet into the ICMP error `icmp_type`/`code` (with `word` as the second half of
/// its "rest of header": the MTU for frag-needed) for the client, ready to go back out.
#[inline(always)]
fn error(
    ctx: &XdpContext,
    packet: &Packet,
    icmp_type: u8,
    code: u8,
    word: u16,
) -> Result<(), Verdict> {
    let orig_eth = ptr::at::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at` checked the Ethernet header.
    let (client_mac, our_mac) = unsafe { ((*orig_eth).src_addr, (*orig_eth).dst_addr) };
    // The header length again from the packet (the parser checked it; this stage only has
    // its offsets as numbers), so that the sizes below are bounded for the verifier.
    let orig_ip = ptr::at::<Ipv4Hdr>(ctx, EthHdr::LEN).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at` checked the IPv4 header.
    let ihl = usize::from(unsafe { (*orig_ip).vihl } & 0x0f) * 4;
    if ihl < Ipv4Hdr::LEN {
        return Err(drop(Stat::DropMalformed));
    }
    // The quoted header's own words, summed as they are: its checksum may be bad (the kernel
    // would have dropped such a packet; lb does not check on the way in), and the error's
    // checksum must cover the bytes it carries. (Before the check below: after it, the
    // compiler would drop the options' own bounds checks as implied, which the verifier,
    // tracking constant offsets only, cannot follow.)
    let mut sum = header_sum(ctx, ihl)?;
    // The quoted L4 bytes (TCP/UDP headers are >= 8 bytes).
    let quoted =
        ptr::at::<[u16; 4]>(ctx, EthHdr::LEN + ihl).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at` checked the eight bytes (read unaligned: packet fields need not be).
    let quoted = unsafe { quoted.read_unaligned() };

    // New frame: Ethernet | IPv4 (20) | ICMP (8) | original IP header | 8 bytes, where the
    // original IP header stays where it is once the head grows by IPv4 + ICMP headers.
    let grow = (Ipv4Hdr::LEN + ICMP_HEADER) as i32;
    // SAFETY: helper call on our own context; pointers are re-derived afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, -grow) } != 0 {
        return Err(drop(Stat::DropFib));
    }
    let keep = EthHdr::LEN + Ipv4Hdr::LEN + ICMP_HEADER + ihl + QUOTED_PAYLOAD;
    let len = ctx.data_end() - ctx.data();
    // SAFETY: helper call; shrinking only (a TCP/UDP packet has at least the 8 bytes quoted).
    if keep < len
        && unsafe { bpf_xdp_adjust_tail(ctx.as_ptr() as *mut _, -((len - keep) as i32)) } != 0
    {
        return Err(drop(Stat::DropFib));
    }

    let eth = ptr::at_mut::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::DropMalformed))?;
    let ip = ptr::at_mut::<Ipv4Hdr>(ctx, EthHdr::LEN).ok_or_else(|| drop(Stat::DropMalformed))?;
    let icmp = ptr::at_mut::<[u16; 4]>(ctx, EthHdr::LEN + Ipv4Hdr::LEN)
        .ok_or_else(|| drop(Stat::DropMalformed))?;
    let total = (Ipv4Hdr::LEN + ICMP_HEADER + ihl + QUOTED_PAYLOAD) as u16;
    let mut header = Ipv4Hdr {
        vihl: 0x45,
        tos: 0,
        tot_len: total.to_be_bytes(),
        id: [0; 2],
        frags: [0; 2],
        ttl: 64,
        proto: IPPROTO_ICMP,
        check: [0; 2],
        // From the address the client was talking to (the VIP), as the kernel's icmp_send.
        src_addr: packet.flow.daddr.ipv4().to_ne_bytes(),
        dst_addr: packet.flow.saddr.ipv4().to_ne_bytes(),
    };
    header.check = ip::checksum(&header);
    let type_code = u16::from_ne_bytes([icmp_type, code]);
    let mtu_word = u16::from_ne_bytes(word.to_be_bytes());
    sum += u32::from(type_code) + u32::from(mtu_word);
    let mut i = 0;
    while i < 4 {
        sum += u32::from(quoted[i]);
        i += 1;
    }
    let check = !csum::fold(sum);
    // SAFETY: `at_mut` checked the three headers after the resize.
    unsafe {
        (*eth).dst_addr = client_mac;
        (*eth).src_addr = our_mac;
        (*eth).ether_type = network_types::eth::EtherType::Ipv4 as u16;
        *ip = header;
        icmp.write_unaligned([type_code, check, 0, mtu_word]);
    }
    Ok(())
}

/// The one's complement sum (unfolded) of the `ihl` bytes of the IPv4 header at the frame's
/// start: the fixed 20 bytes, then its options a word at a time.
#[inline(always)]
fn header_sum(ctx: &XdpContext, ihl: usize) -> Result<u32, Verdict> {
    let fixed = ptr::at::<[u16; 10]>(ctx, EthHdr::LEN).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at` checked the 20 bytes.
    let fixed = unsafe { fixed.read_unaligned() };
    let mut sum = 0u32;
    let mut i = 0;
    while i < 10 {
        sum += u32::from(fixed[i]);
        i += 1;
    }
    // Options: at most 40 bytes.
    let mut off = Ipv4Hdr::LEN;
    while off < 60 {
        if off >= ihl {
            break;
        }
        let word =
            ptr::at::<[u16; 2]>(ctx, EthHdr::LEN + off).ok_or_else(|| drop(Stat::DropMalformed))?;
        // SAFETY: `at` checked the four bytes.
        let word = unsafe { word.read_unaligned() };
        sum += u32::from(word[0]) + u32::from(word[1]);
        off += 4;
    }
    Ok(sum)
}
