//! LVS-TUN where IPv6 is involved, as IPVS does it since Linux 3.18: an IPv6 real server is
//! reached through an outer IPv6 header (RFC 2473: IPv6-in-IPv6, next header 41, or IPv4 in
//! IPv6, next header 4); an IPv6 client's packet to an IPv4 real server goes in an outer IPv4
//! header with protocol 41 (6in4). The outer header copies the inner one's traffic class (TOS)
//! and hop limit (TTL), with flow label 0, as `ip_vs_tunnel_xmit_v6` does.
//!
//! A packet that no longer fits the path is answered as IPVS answers it: an IPv6 client with
//! ICMPv6 "packet too big" (the path's MTU less the outer header, at least 1280), an IPv4
//! client whose packet has DF with "fragmentation needed". XDP cannot fragment, so anything
//! else too big is dropped and counted (`drop_fib`).

use aya_ebpf::{EbpfContext as _, helpers::bpf_xdp_adjust_head, programs::XdpContext};
use lb_common::{AF_INET6, Addr, Iface, REAL_F_RESOLVED, RealServer, Stat};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
};

use crate::{Verdict, drop, fib, icmp, icmp6, ip, parse::L3_OFFSET, ptr, stage::Packet, stats};

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IP_DF: u16 = 0x4000;

/// What the outer header copies from the inner one.
struct Inner {
    /// Traffic class (IPv6) or TOS (IPv4).
    class: u8,
    /// Hop limit (IPv6) or TTL (IPv4), after this hop.
    hops: u8,
    /// IPv4's DF; IPv6 packets are never fragmented on the way.
    df: bool,
}

#[inline(always)]
pub fn forward(
    ctx: &XdpContext,
    packet: &Packet,
    real: &RealServer,
    ingress: &Iface,
) -> Result<Verdict, Verdict> {
    if real.flags & REAL_F_RESOLVED == 0 {
        return Err(drop(Stat::DropNoNeigh));
    }
    let (egress, iface) = super::route::egress(ctx, real, ingress)?;
    let outer6 = real.family == AF_INET6;
    if (outer6 && iface.addr6 == Addr::ZERO) || (!outer6 && iface.addr == 0) {
        return Err(drop(Stat::DropNoIface));
    }
    // One hop less before it goes in the tunnel, as for every method.
    super::hop(ctx, packet)?;
    let inner6 = packet.flow.family == AF_INET6;
    let inner = inner(ctx, inner6)?;
    let overhead = if outer6 { Ipv6Hdr::LEN } else { Ipv4Hdr::LEN };
    let outer_len = u32::from(packet.ip_len) + overhead as u32;
    if real.mtu != 0 && outer_len > real.mtu {
        // A path smaller than the outer header (a bad MTU) leaves no room, not a wrapped one.
        let room = real.mtu.saturating_sub(overhead as u32);
        return Err(too_big(ctx, packet, room, inner6, inner.df));
    }
    // SAFETY: helper call on our own context; every pointer is re-derived afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, -(overhead as i32)) } != 0 {
        return Err(drop(Stat::DropFib));
    }
    let eth = ptr::at_mut::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::DropMalformed))?;
    let next = if inner6 { IPPROTO_IPV6 } else { IPPROTO_IPIP };
    if outer6 {
        let outer =
            ptr::at_mut::<Ipv6Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
        let header = Ipv6Hdr {
            vcf: [0x60 | (inner.class >> 4), inner.class << 4, 0, 0],
            payload_len: packet.ip_len.to_be_bytes(),
            next_hdr: next,
            hop_limit: inner.hops,
            src_addr: iface.addr6.octets(),
            dst_addr: real.addr.octets(),
        };
        // SAFETY: `at_mut` checked both headers after the head moved.
        unsafe {
            (*eth).ether_type = EtherType::Ipv6 as u16;
            *outer = header;
        }
    } else {
        let outer =
            ptr::at_mut::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
        // An IPv6 packet is never fragmented on the way: DF, and so ID 0 (RFC 6864).
        let mut header = Ipv4Hdr {
            vihl: 0x45,
            tos: inner.class,
            tot_len: (outer_len as u16).to_be_bytes(),
            id: [0; 2],
            frags: IP_DF.to_be_bytes(),
            ttl: inner.hops,
            proto: next,
            check: [0; 2],
            src_addr: iface.addr.to_ne_bytes(),
            dst_addr: real.addr.ipv4().to_ne_bytes(),
        };
        header.check = ip::checksum(&header);
        // SAFETY: `at_mut` checked both headers after the head moved.
        unsafe {
            (*eth).ether_type = EtherType::Ipv4 as u16;
            *outer = header;
        }
    }
    stats::count(Stat::TxTunnel);
    fib::emit(ctx, egress, iface.mac, real.mac)
}

/// The inner header's class, hop count and DF.
#[inline(always)]
fn inner(ctx: &XdpContext, inner6: bool) -> Result<Inner, Verdict> {
    if inner6 {
        let ip = ptr::at::<Ipv6Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
        // SAFETY: `at` checked the IPv6 header.
        let (vcf, hops) = unsafe { ((*ip).vcf, (*ip).hop_limit) };
        return Ok(Inner {
            class: (vcf[0] << 4) | (vcf[1] >> 4),
            hops,
            df: true,
        });
    }
    let ip = ptr::at::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at` checked the IPv4 header.
    let (tos, frags, ttl) = unsafe { ((*ip).tos, u16::from_be_bytes((*ip).frags), (*ip).ttl) };
    Ok(Inner {
        class: tos,
        hops: ttl,
        df: frags & IP_DF != 0,
    })
}

/// A packet too big for the tunnel's path, which leaves `room` bytes for it.
#[inline(always)]
fn too_big(ctx: &XdpContext, packet: &Packet, room: u32, inner6: bool, df: bool) -> Verdict {
    let answered = if inner6 {
        // IPVS tells an IPv6 client no less than the minimum MTU; a packet within that the
        // kernel would send fragmented in the outer header, which XDP cannot.
        let mtu = if room < icmp6::MIN_MTU {
            icmp6::MIN_MTU
        } else {
            room
        };
        if u32::from(packet.ip_len) <= mtu || !icmp6::may_answer(packet) {
            return drop(Stat::DropFib);
        }
        icmp6::packet_too_big(ctx, packet, mtu)
    } else {
        if !df || !super::may_answer(packet) {
            return drop(Stat::DropFib);
        }
        icmp::frag_needed(ctx, packet, room as u16)
    };
    match answered {
        Ok(verdict) | Err(verdict) => verdict,
    }
}
