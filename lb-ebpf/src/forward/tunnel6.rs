//! LVS-TUN to an IPv6 real server, as IPVS's `ip_vs_tunnel_xmit_v6` (since Linux 3.18): the
//! outer IPv6 header (RFC 2473) in front of the client's packet of either family and of the
//! tunnel's own header (GUE's UDP, GRE; [`super::tunnel`] builds those and decides the rest).
//! It copies the inner header's traffic class (TOS) and hop limit (TTL), with flow label 0,
//! and carries no extension headers.

use aya_ebpf::programs::XdpContext;
use lb_common::{RealServer, Stat};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::Ipv6Hdr,
};

use super::tunnel::{Inner, Outer};
use crate::{Verdict, drop, parse::L3_OFFSET, ptr};

/// The outer IPv6 header (and the Ethernet type), after the head moved.
#[inline(always)]
pub fn outer(
    ctx: &XdpContext,
    outer: &Outer,
    inner: &Inner,
    real: &RealServer,
) -> Result<(), Verdict> {
    let eth = ptr::at_mut::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::DropMalformed))?;
    let at = ptr::at_mut::<Ipv6Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    let header = Ipv6Hdr {
        vcf: [0x60 | (inner.class >> 4), inner.class << 4, 0, 0],
        // What follows the fixed header; `outer.len` counts it too.
        payload_len: (outer.len - Ipv6Hdr::LEN as u16).to_be_bytes(),
        next_hdr: outer.proto,
        hop_limit: inner.hops,
        src_addr: outer.src.octets(),
        dst_addr: real.addr.octets(),
    };
    // SAFETY: `at_mut` checked both headers after the head moved.
    unsafe {
        (*eth).ether_type = EtherType::Ipv6 as u16;
        *at = header;
    }
    Ok(())
}
