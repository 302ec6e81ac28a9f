//! The real-server side of LVS-TUN where the kernel has no `ipip`, `fou` or `gre` module (no
//! `tunl0`, no `ip fou add ... gue`, no `gre0`): strip what the director put in front of the
//! client's packet and hand that packet to the stack, which then finds the VIP on `lo` as
//! with `tunl0`. Three encapsulations, as the director sends them (`--tun-type`):
//! - IP-in-IP: outer IPv4, protocol 4;
//! - GUE: outer IPv4, UDP to one of the ports in [`DECAP_GUE_PORTS`], a GUE header of
//!   version 0 without optional fields carrying protocol 4 (`lbd decap --gue-port`);
//! - GRE: outer IPv4, protocol 47, version 0, no key, sequence or routing, protocol type
//!   0x0800, with or without the checksum field.
//!
//! - IPv6: an outer IPv6 header (next header 41, IPv6 in IPv6; 4, IPv4 in IPv6) or an outer
//!   IPv4 header with protocol 41 (IPv6 in IPv4), the Ethernet type then the inner packet's.
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
/// Where the tunnel's header (UDP, GRE) starts.
const TUNNEL_OFFSET: usize = EthHdr::LEN + Ipv4Hdr::LEN;
/// GRE's C bit; every other flag bit and the version must be zero here.
const GRE_F_CSUM: u16 = 0x8000;
const ETH_P_IP: u16 = 0x0800;

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
        IPPROTO_IPIP => strip::<{ tunnel::IP_LEN as usize }>(ctx, &eth),
        // IPv6 in IPv4 (6in4): the director's tunnel to an IPv4 real server of an IPv6
        // service.
        IPPROTO_IPV6 => strip6::<{ tunnel::IP_LEN as usize }>(ctx, &eth, EtherType::Ipv6),
        IPPROTO_GRE => {
            let gre = ptr::at::<[u8; 4]>(ctx, TUNNEL_OFFSET)?;
            // SAFETY: `at` checked the four bytes.
            let [f0, f1, p0, p1] = unsafe { gre.read_unaligned() };
            if u16::from_be_bytes([p0, p1]) != ETH_P_IP {
                return None;
            }
            match u16::from_be_bytes([f0, f1]) {
                0 => strip::<{ (tunnel::IP_LEN + tunnel::GRE_LEN) as usize }>(ctx, &eth),
                GRE_F_CSUM => strip::<
                    { (tunnel::IP_LEN + tunnel::GRE_LEN + tunnel::GRE_CSUM_LEN) as usize },
                >(ctx, &eth),
                _ => None,
            }
        }
        IPPROTO_UDP => {
            // UDP's destination port, then GUE's first two bytes: version 0, not a control
            // message, no optional fields (0), and the inner protocol.
            let dport = ptr::at::<[u8; 2]>(ctx, TUNNEL_OFFSET + 2)?;
            let gue = ptr::at::<[u8; 2]>(ctx, TUNNEL_OFFSET + tunnel::UDP_LEN as usize)?;
            // SAFETY: `at` checked both.
            let (dport, gue) = unsafe { (dport.read_unaligned(), gue.read_unaligned()) };
            // SAFETY: a plain-data value, only tested for presence.
            if unsafe { DECAP_GUE_PORTS.get(&u16::from_ne_bytes(dport)) }.is_none()
                || gue != [0, IPPROTO_IPIP]
            {
                return None;
            }
            strip::<{ (tunnel::IP_LEN + tunnel::UDP_LEN + tunnel::GUE_LEN) as usize }>(ctx, &eth)
        }
        _ => None,
    }
}

/// The IPv6 outer header of RFC 2473 tunnels, as the director sends them to IPv6 real
/// servers: IPv6 in IPv6 (next header 41) or IPv4 in IPv6 (4), no extension headers.
#[inline(always)]
fn decapsulate6(ctx: &XdpContext, eth: &EthHdr) -> Option<()> {
    let outer = ptr::at::<Ipv6Hdr>(ctx, EthHdr::LEN)?;
    // SAFETY: `at` checked the outer IPv6 header.
    let next = unsafe { (*outer).next_hdr };
    match next {
        IPPROTO_IPV6 => strip6::<{ Ipv6Hdr::LEN }>(ctx, eth, EtherType::Ipv6),
        IPPROTO_IPIP => strip6::<{ Ipv6Hdr::LEN }>(ctx, eth, EtherType::Ipv4),
        _ => None,
    }
}

/// [`strip`] where the inner packet's family is `inner` (which the Ethernet header then
/// says), checking that a header of that family follows.
#[inline(always)]
fn strip6<const N: usize>(ctx: &XdpContext, eth: &EthHdr, inner: EtherType) -> Option<()> {
    if inner == EtherType::Ipv6 {
        ptr::at::<Ipv6Hdr>(ctx, EthHdr::LEN + N)?;
    } else {
        ptr::at::<Ipv4Hdr>(ctx, EthHdr::LEN + N)?;
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

/// Drops the `N` bytes after the Ethernet header (the tunnel's headers) when an IPv4 header's
/// worth of bytes follows them: moves the Ethernet header forward over them, then the start
/// of the frame.
#[inline(always)]
fn strip<const N: usize>(ctx: &XdpContext, eth: &EthHdr) -> Option<()> {
    ptr::at::<Ipv4Hdr>(ctx, EthHdr::LEN + N)?;
    let moved = ptr::at_mut::<EthHdr>(ctx, N)?;
    // SAFETY: `at_mut` checked the destination; `eth` is a copy.
    unsafe { *moved = *eth };
    // SAFETY: helper call on our own context; nothing is read through old pointers after it.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, N as i32) } != 0 {
        return None;
    }
    Some(())
}
