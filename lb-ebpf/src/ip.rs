//! IP header helpers: checksums of IPv4 headers the program writes itself, and the TTL (IPv6:
//! hop limit) of packets it forwards as a router would.

use aya_ebpf::programs::XdpContext;
use lb_common::{AF_INET6, Stat, csum};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::{Verdict, drop, parse::L3_OFFSET, pass, ptr};

/// The checksum field for `h` (a 20-byte header whose own checksum field is ignored).
#[inline(always)]
pub fn checksum(h: &Ipv4Hdr) -> [u8; 2] {
    let w = |a: u8, b: u8| u16::from_ne_bytes([a, b]);
    let words = [
        w(h.vihl, h.tos),
        w(h.tot_len[0], h.tot_len[1]),
        w(h.id[0], h.id[1]),
        w(h.frags[0], h.frags[1]),
        w(h.ttl, h.proto),
        0,
        w(h.src_addr[0], h.src_addr[1]),
        w(h.src_addr[2], h.src_addr[3]),
        w(h.dst_addr[0], h.dst_addr[1]),
        w(h.dst_addr[2], h.dst_addr[3]),
    ];
    csum::ipv4_header(&words).to_ne_bytes()
}

/// One hop forwarded: the TTL goes down by one and the header checksum with it (RFC 1624), as
/// IPVS does for every method (`decrement_ttl` in `ip_vs_xmit.c`) and the kernel's IP
/// forwarding for what it routes. False, and the header untouched, when the TTL would run out
/// here.
#[inline(always)]
pub fn decrement_ttl(h: &mut Ipv4Hdr) -> bool {
    let (ttl, proto) = (h.ttl, h.proto);
    if ttl <= 1 {
        return false;
    }
    let check = u16::from_ne_bytes(h.check);
    let check = csum::replace16(
        check,
        u16::from_ne_bytes([ttl, proto]),
        u16::from_ne_bytes([ttl - 1, proto]),
    );
    h.check = check.to_ne_bytes();
    h.ttl = ttl - 1;
    true
}

/// IPv6's hop limit, one less (it has no header checksum); false, and the header untouched,
/// when it would run out here.
#[inline(always)]
pub fn decrement_hop_limit(h: &mut Ipv6Hdr) -> bool {
    if h.hop_limit <= 1 {
        return false;
    }
    h.hop_limit -= 1;
    true
}

/// One hop for the packet in `ctx` of `family`: false when its TTL or hop limit runs out.
#[inline(always)]
pub fn decrement(ctx: &XdpContext, family: u8) -> Result<bool, Verdict> {
    if family == AF_INET6 {
        let ip = ptr::at_mut::<Ipv6Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
        // SAFETY: `at_mut` checked the IPv6 header; no other reference to it is live.
        return Ok(decrement_hop_limit(unsafe { &mut *ip }));
    }
    let ip = ptr::at_mut::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at_mut` checked the IPv4 header; no other reference to it is live.
    Ok(decrement_ttl(unsafe { &mut *ip }))
}

/// A NAT reply's hop: one off the TTL (hop limit); a reply whose TTL runs out here is left to
/// the kernel untouched, whose forwarding answers it with ICMP "time exceeded" (IPVS sees
/// replies after the kernel's forwarding has done so).
#[inline(always)]
pub fn reply_hop(ctx: &XdpContext, family: u8) -> Result<(), Verdict> {
    if decrement(ctx, family)? {
        Ok(())
    } else {
        Err(pass(Stat::PassTtlExpired))
    }
}
