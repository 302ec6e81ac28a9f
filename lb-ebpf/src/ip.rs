//! IPv4 header helpers: checksums of headers the program writes itself, and the TTL of
//! packets it forwards as a router would.

use lb_common::{Stat, csum};
use network_types::ip::Ipv4Hdr;

use crate::{Verdict, pass};

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

/// One hop forwarded, as the kernel's IP forwarding (which IPVS NAT goes through) does: the TTL
/// goes down by one and the header checksum with it (RFC 1624). A packet whose TTL would run
/// out here is left to the kernel untouched, which answers it with ICMP "time exceeded" (an
/// ICMP error it just drops).
#[inline(always)]
pub fn forward_hop(h: &mut Ipv4Hdr) -> Result<(), Verdict> {
    let (ttl, proto) = (h.ttl, h.proto);
    if ttl <= 1 {
        return Err(pass(Stat::PassTtlExpired));
    }
    let check = u16::from_ne_bytes(h.check);
    let check = csum::replace16(
        check,
        u16::from_ne_bytes([ttl, proto]),
        u16::from_ne_bytes([ttl - 1, proto]),
    );
    h.check = check.to_ne_bytes();
    h.ttl = ttl - 1;
    Ok(())
}
