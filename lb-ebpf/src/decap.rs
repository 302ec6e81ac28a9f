//! The real-server side of LVS-TUN where the kernel has no `ipip`, `fou` or `gre` module (no
//! `tunl0`, no `ip fou add ... gue`, no `gre0`): strip what the director put in front of the
//! client's packet and hand that packet to the stack, which then finds the VIP on `lo` as
//! with `tunl0`. Three encapsulations, as the director sends them (`--tun-type`), each over an
//! outer IPv4 or IPv6 header and carrying an IPv4 or IPv6 packet (IPVS's `ip_vs_tunnel_xmit`
//! and `ip_vs_tunnel_xmit_v6`):
//! - IP-in-IP: outer protocol (next header) 4 or 41, the inner packet's;
//! - GUE: outer protocol 17, UDP to one of the ports in [`DECAP_GUE_PORTS`], a GUE header of
//!   version 0 without optional fields carrying protocol 4 or 41 (`lbd decap --gue-port`);
//! - GRE: outer protocol 47, version 0, no key, sequence or routing, protocol type 0x0800 or
//!   0x86dd, with or without the checksum field.
//!
//! Outer IPv4 headers are the plain 20 bytes, unfragmented; outer IPv6 headers carry no
//! extension headers. The Ethernet type becomes the inner packet's.
//!
//! Outer checksums (UDP's, GRE's) are not verified: the client's packet keeps its own.
//! Everything else passes untouched.

use aya_ebpf::{
    EbpfContext as _,
    bindings::xdp_action,
    helpers::bpf_xdp_adjust_head,
    macros::{map, xdp},
    maps::HashMap,
    programs::XdpContext,
};
use lb_common::{Stat, tunnel};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
};

use crate::{ptr, stats};

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_GRE: u8 = 47;
/// GRE's C bit; every other flag bit and the version must be zero here.
const GRE_F_CSUM: u16 = 0x8000;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Outer header lengths, and what the tunnels add after them.
const IP: usize = tunnel::IP_LEN as usize;
const IP6: usize = Ipv6Hdr::LEN;
const GRE: usize = tunnel::GRE_LEN as usize;
const GRE_CSUM: usize = (tunnel::GRE_LEN + tunnel::GRE_CSUM_LEN) as usize;
const GUE: usize = (tunnel::UDP_LEN + tunnel::GUE_LEN) as usize;

/// The UDP ports (network order) GUE arrives on: `lbd decap --gue-port`. Empty: no GUE.
#[map]
pub static DECAP_GUE_PORTS: HashMap<u16, u8> =
    HashMap::with_max_entries(lb_common::DECAP_GUE_PORTS_MAX, 0);

#[xdp]
pub fn lb_decap(ctx: XdpContext) -> u32 {
    if decapsulate(&ctx).is_some() {
        stats::count(Stat::Decap);
    }
    xdp_action::XDP_PASS
}

#[inline(always)]
fn decapsulate(ctx: &XdpContext) -> Option<()> {
    let eth = ptr::at::<EthHdr>(ctx, 0)?;
    // SAFETY: `at` checked the Ethernet header.
    let eth = unsafe { *eth };
    if eth.ether_type == EtherType::Ipv6 as u16 {
        return decapsulate6(ctx, &eth);
    }
    if eth.ether_type != EtherType::Ipv4 as u16 {
        return None;
    }
    let outer = ptr::at::<Ipv4Hdr>(ctx, EthHdr::LEN)?;
    // SAFETY: `at` checked the outer IPv4 header.
    let outer = unsafe { *outer };
    // Only plain 20-byte outer headers, unfragmented, as the director sends them.
    if outer.vihl != 0x45 || u16::from_be_bytes(outer.frags) & 0x3fff != 0 {
        return None;
    }
    match outer.proto {
        IPPROTO_IPIP => strip::<IP>(ctx, &eth, EtherType::Ipv4),
        // IPv6 in IPv4 (6in4): the director's tunnel to an IPv4 real server of an IPv6
        // service.
        IPPROTO_IPV6 => strip::<IP>(ctx, &eth, EtherType::Ipv6),
        IPPROTO_GRE => gre::<IP, { IP + GRE }, { IP + GRE_CSUM }>(ctx, &eth),
        IPPROTO_UDP => gue::<IP, { IP + GUE }>(ctx, &eth),
        _ => None,
    }
}

/// The IPv6 outer header, as the director sends it to IPv6 real servers: no extension
/// headers.
#[inline(always)]
fn decapsulate6(ctx: &XdpContext, eth: &EthHdr) -> Option<()> {
    let outer = ptr::at::<Ipv6Hdr>(ctx, EthHdr::LEN)?;
    // SAFETY: `at` checked the outer IPv6 header.
    let next = unsafe { (*outer).next_hdr };
    match next {
        // RFC 2473: IPv6 in IPv6, IPv4 in IPv6.
        IPPROTO_IPV6 => strip::<IP6>(ctx, eth, EtherType::Ipv6),
        IPPROTO_IPIP => strip::<IP6>(ctx, eth, EtherType::Ipv4),
        IPPROTO_GRE => gre::<IP6, { IP6 + GRE }, { IP6 + GRE_CSUM }>(ctx, eth),
        IPPROTO_UDP => gue::<IP6, { IP6 + GUE }>(ctx, eth),
        _ => None,
    }
}

/// The family of the packet a tunnel header names by protocol number (4, 41).
#[inline(always)]
fn by_proto(proto: u8) -> Option<EtherType> {
    match proto {
        IPPROTO_IPIP => Some(EtherType::Ipv4),
        IPPROTO_IPV6 => Some(EtherType::Ipv6),
        _ => None,
    }
}

/// A GRE header after the `OUTER` bytes of the outer IP header: `PLAIN` (with it) or `CSUM`
/// (with its checksum field too) bytes to strip.
#[inline(always)]
fn gre<const OUTER: usize, const PLAIN: usize, const CSUM: usize>(
    ctx: &XdpContext,
    eth: &EthHdr,
) -> Option<()> {
    let gre = ptr::at::<[u8; 4]>(ctx, EthHdr::LEN + OUTER)?;
    // SAFETY: `at` checked the four bytes.
    let [f0, f1, p0, p1] = unsafe { gre.read_unaligned() };
    let inner = match u16::from_be_bytes([p0, p1]) {
        ETH_P_IP => EtherType::Ipv4,
        ETH_P_IPV6 => EtherType::Ipv6,
        _ => return None,
    };
    match u16::from_be_bytes([f0, f1]) {
        0 => strip::<PLAIN>(ctx, eth, inner),
        GRE_F_CSUM => strip::<CSUM>(ctx, eth, inner),
        _ => None,
    }
}

/// UDP after the `OUTER` bytes of the outer IP header, to a GUE port, then a GUE header:
/// `ALL` bytes to strip.
#[inline(always)]
fn gue<const OUTER: usize, const ALL: usize>(ctx: &XdpContext, eth: &EthHdr) -> Option<()> {
    // UDP's destination port, then GUE's first two bytes: version 0, not a control message,
    // no optional fields (0), and the inner protocol.
    let dport = ptr::at::<[u8; 2]>(ctx, EthHdr::LEN + OUTER + 2)?;
    let gue = ptr::at::<[u8; 2]>(ctx, EthHdr::LEN + OUTER + tunnel::UDP_LEN as usize)?;
    // SAFETY: `at` checked both.
    let (dport, [flags, proto]) = unsafe { (dport.read_unaligned(), gue.read_unaligned()) };
    // SAFETY: a plain-data value, only tested for presence.
    if flags != 0 || unsafe { DECAP_GUE_PORTS.get(&u16::from_ne_bytes(dport)) }.is_none() {
        return None;
    }
    strip::<ALL>(ctx, eth, by_proto(proto)?)
}

/// Drops the `N` bytes after the Ethernet header (the tunnel's headers) when a whole header
/// of the inner packet's family `inner` follows them (its version says so too): moves the
/// Ethernet header forward over them, saying that family, then the start of the frame.
#[inline(always)]
fn strip<const N: usize>(ctx: &XdpContext, eth: &EthHdr, inner: EtherType) -> Option<()> {
    let version = if inner == EtherType::Ipv6 {
        let ip = ptr::at::<Ipv6Hdr>(ctx, EthHdr::LEN + N)?;
        // SAFETY: `at` checked the header.
        (unsafe { (*ip).vcf[0] } >> 4) == 6
    } else {
        let ip = ptr::at::<Ipv4Hdr>(ctx, EthHdr::LEN + N)?;
        // SAFETY: `at` checked the header.
        (unsafe { (*ip).vihl } >> 4) == 4
    };
    if !version {
        return None;
    }
    let moved = ptr::at_mut::<EthHdr>(ctx, N)?;
    // SAFETY: `at_mut` checked the destination; `eth` is a copy.
    unsafe {
        *moved = *eth;
        (*moved).ether_type = inner as u16;
    }
    // SAFETY: helper call on our own context; nothing is read through old pointers after it.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, N as i32) } != 0 {
        return None;
    }
    Some(())
}
