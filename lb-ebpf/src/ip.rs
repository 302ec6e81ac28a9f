//! IPv4 header helpers for headers the program writes itself.

use lb_common::csum;
use network_types::ip::Ipv4Hdr;

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
