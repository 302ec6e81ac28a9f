//! LVS-TUN ("Tunnel", `-i`): the client's packet is wrapped, whole and untouched, in an outer
//! IP header from the director to the real server, which unwraps it and answers the client
//! directly. The outer header is of the real server's family (this file builds IPv4's,
//! [`super::tunnel6`] IPv6's), whatever the client's (IPVS since 3.18: 4in4, 6in4, 4in6,
//! 6in6). The real server's `--tun-type` says what follows it, as IPVS's `ip_vs_tunnel_xmit`
//! and `ip_vs_tunnel_xmit_v6`:
//! - `ipip`: nothing; the outer protocol (next header) is the client's packet's, 4 or 41;
//! - `gue`: UDP to the real server's `--tun-port`, then a 4-byte GUE header (version 0, no
//!   options) carrying protocol 4 or 41 (`ipvs_gue_encap`); the UDP source port is a hash of
//!   the client's flow, so routers (ECMP) and the real server's NIC (RSS) spread flows; the
//!   UDP checksum (over the outer family's pseudo header) is 0 unless `--tun-csum` or
//!   `--tun-remcsum` (see `lb_common::tunnel::F_REMCSUM`), over IPv6 too (`udp6_set_csum`
//!   with `nocheck`; RFC 6935 allows zero for tunnels);
//! - `gre`: protocol 47, a GRE header with protocol 0x0800 or 0x86dd, with `--tun-csum` the
//!   GRE checksum over the GRE header and the client's packet (`ipvs_gre_encap`).
//!
//! A packet that would no longer fit the path MTU with the tunnel's headers is answered as
//! IPVS answers it: an IPv4 client whose packet has DF with ICMP "fragmentation needed", an
//! IPv6 client with ICMPv6 "packet too big" (at least 1280), each announcing the MTU less
//! those headers. XDP cannot fragment, so anything else too big is dropped and counted
//! (`drop_fib`).
//!
//! The next hop (egress interface, gateway's or real server's MAC, MTU) is the kernel's FIB
//! answer as lbd keeps it in the real server's entry (route and neighbour lookups, refreshed
//! as they change), so real servers may sit behind routers. `bpf_fib_lookup` is not used per
//! packet: it refuses to answer on interfaces with forwarding disabled, and LVS-TUN directors
//! run with `ip_forward` off.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_prandom_u32, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use lb_common::{
    AF_INET6, Addr, IPPROTO_UDP, Iface, REAL_F_RESOLVED, RealServer, Stat, csum, tunnel,
};
use network_types::{
    eth::{EthHdr, EtherType},
    ip::{Ipv4Hdr, Ipv6Hdr},
};

use crate::{
    Verdict, drop, fib, icmp, icmp6, ip, parse::L3_OFFSET, ptr, stage::Packet, stats, sum,
};

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IP_DF: u16 = 0x4000;
/// GRE's C bit (RFC 2784): a checksum field follows.
const GRE_F_CSUM: u16 = 0x8000;
/// GRE's protocol types for an IPv4 and an IPv6 payload.
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
/// Where the tunnel's own header (UDP, GRE) starts after an outer IPv4 or IPv6 header.
const AFTER_IPV4: usize = L3_OFFSET + Ipv4Hdr::LEN;
const AFTER_IPV6: usize = L3_OFFSET + Ipv6Hdr::LEN;

/// UDP and GUE headers, as GUE puts them after the outer IP header.
#[repr(C)]
struct UdpGue {
    sport: u16,
    dport: u16,
    len: [u8; 2],
    check: u16,
    /// Version 0, C 0, no optional fields (hlen 0), then the inner protocol and zero flags.
    gue: [u8; 4],
}

/// GRE's header with the checksum field (C bit set).
#[repr(C)]
struct GreCsum {
    flags: [u8; 2],
    proto: [u8; 2],
    check: u16,
    reserved: [u8; 2],
}

/// What the outer header copies from the client's packet (`ip_vs_prepare_tunneled_skb`).
pub struct Inner {
    /// Traffic class (IPv6) or TOS (IPv4).
    pub class: u8,
    /// Hop limit (IPv6) or TTL (IPv4), after this hop.
    pub hops: u8,
    /// IPv4's DF; IPv6 packets are never fragmented on the way.
    pub df: bool,
    /// The client's packet's protocol number as an outer header names it: 4 or 41.
    pub proto: u8,
}

/// The outer header to build: everything but the family's own fields.
pub struct Outer {
    /// The director's address on the egress NIC, of the real server's family.
    pub src: Addr,
    /// Protocol (next header): 4 or 41 (`ipip`), UDP (`gue`), GRE.
    pub proto: u8,
    /// From the outer header's first byte to the end of the client's packet.
    pub len: u16,
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
    let src = if outer6 {
        iface.addr6
    } else {
        Addr::v4(iface.addr)
    };
    if src == Addr::ZERO {
        return Err(drop(Stat::DropNoIface));
    }
    // One hop less before it goes in the tunnel, as IPVS does for every method; the outer
    // header inherits the TTL (hop limit).
    super::hop(ctx, packet)?;
    let inner6 = packet.flow.family == AF_INET6;
    let inner = inner(ctx, inner6)?;
    let (tun_type, tun_flags) = (real.tun_type, real.tun_flags);
    // `lb_common::tunnel` counts an outer IPv4 header.
    let mut overhead = tunnel::overhead(tun_type, tun_flags);
    if outer6 {
        overhead += (Ipv6Hdr::LEN - Ipv4Hdr::LEN) as u16;
    }
    let outer_len = u32::from(packet.ip_len) + u32::from(overhead);
    if real.mtu != 0 && outer_len > real.mtu {
        // The client's packet must shrink by our headers for the path to carry it; a path
        // smaller than them (a bad MTU) leaves no room, not a wrapped one.
        let room = real.mtu.saturating_sub(u32::from(overhead));
        return Err(too_big(ctx, packet, room, inner6, inner.df));
    }
    if outer_len > 0xffff {
        return Err(drop(Stat::DropFib));
    }

    // Make room for the tunnel's headers in front of the client's IP packet.
    // SAFETY: helper call on our own context; every pointer is re-derived afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, -i32::from(overhead)) } != 0 {
        return Err(drop(Stat::DropFib));
    }
    let outer = Outer {
        src,
        proto: match tun_type {
            tunnel::GUE => IPPROTO_UDP,
            tunnel::GRE => IPPROTO_GRE,
            _ => inner.proto,
        },
        len: outer_len as u16,
    };
    if outer6 {
        super::tunnel6::outer(ctx, &outer, &inner, real)?;
        match tun_type {
            tunnel::GUE => gue::<AFTER_IPV6>(ctx, packet, real, &outer, &inner)?,
            tunnel::GRE => gre::<AFTER_IPV6>(ctx, packet, tun_flags, &inner)?,
            _ => {}
        }
    } else {
        outer4(ctx, &outer, &inner, real)?;
        match tun_type {
            tunnel::GUE => gue::<AFTER_IPV4>(ctx, packet, real, &outer, &inner)?,
            tunnel::GRE => gre::<AFTER_IPV4>(ctx, packet, tun_flags, &inner)?,
            _ => {}
        }
    }
    stats::count(Stat::TxTunnel);
    fib::emit(ctx, egress, iface.mac, real.mac)
}

/// The outer IPv4 header (and the Ethernet type), after the head moved.
#[inline(always)]
fn outer4(
    ctx: &XdpContext,
    outer: &Outer,
    inner: &Inner,
    real: &RealServer,
) -> Result<(), Verdict> {
    let eth = ptr::at_mut::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::DropMalformed))?;
    let at = ptr::at_mut::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    // RFC 6864: with DF set the ID carries no meaning (an IPv6 client's packet always has
    // it: it must not be fragmented on the way). Without DF the outer packet may be
    // fragmented on the way, so its ID must not repeat soon between the director and this
    // real server: a random one, as the kernel picks for tunnels, without a shared counter.
    let (id, frags) = if inner.df {
        (0, IP_DF)
    } else {
        // SAFETY: helper call without arguments.
        ((unsafe { bpf_get_prandom_u32() }) as u16, 0)
    };
    let mut header = Ipv4Hdr {
        vihl: 0x45,
        tos: inner.class,
        tot_len: outer.len.to_be_bytes(),
        id: id.to_be_bytes(),
        frags: frags.to_be_bytes(),
        ttl: inner.hops,
        proto: outer.proto,
        check: [0; 2],
        src_addr: outer.src.ipv4().to_ne_bytes(),
        dst_addr: real.addr.ipv4().to_ne_bytes(),
    };
    header.check = ip::checksum(&header);
    // SAFETY: `at_mut` checked both headers after the head moved.
    unsafe {
        (*eth).ether_type = EtherType::Ipv4 as u16;
        *at = header;
    }
    Ok(())
}

/// The client's header's class, hop count, DF and protocol number.
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
            proto: IPPROTO_IPV6,
        });
    }
    let ip = ptr::at::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at` checked the IPv4 header.
    let (tos, frags, ttl) = unsafe { ((*ip).tos, u16::from_be_bytes((*ip).frags), (*ip).ttl) };
    Ok(Inner {
        class: tos,
        hops: ttl,
        df: frags & IP_DF != 0,
        proto: IPPROTO_IPIP,
    })
}

/// A packet too big for the tunnel's path, which leaves `room` bytes for it.
#[inline(always)]
fn too_big(ctx: &XdpContext, packet: &Packet, room: u32, inner6: bool, df: bool) -> Verdict {
    // The ICMP builders read the packet's bounds afresh: without this, the compiler carried
    // the packet's end over from the tunnel's own checks, spilled and refilled as a 32-bit
    // copy the verifier no longer knows for the end, and their bounds checks proved nothing.
    let ctx = core::hint::black_box(ctx);
    let answered = if inner6 {
        // IPVS tells an IPv6 client no less than the minimum MTU; a packet within that the
        // kernel would send fragmented in the outer header, which XDP cannot.
        let mtu = if room < icmp6::MIN_MTU {
            icmp6::MIN_MTU
        } else {
            room
        };
        if u32::from(packet.ip_len) <= mtu || !icmp6::may_answer(packet) {
            return drop(Stat::DropTooBig);
        }
        icmp6::packet_too_big(ctx, packet, mtu)
    } else {
        // Nor is a packet no ICMP error may be about (an ICMP error we relay, a later
        // fragment, a source that is no one host's) ever answered with one.
        if !df || !super::may_answer(packet) {
            return drop(Stat::DropTooBig);
        }
        icmp::frag_needed(ctx, packet, room as u16)
    };
    match answered {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// The one's-complement sum of an address's 16-bit words, as a pseudo header holds it (an
/// IPv4 address's other words are zero, so one sum serves both families).
#[inline(always)]
fn addr_sum(addr: &Addr) -> u32 {
    let w = |x: u32| (x & 0xffff) + (x >> 16);
    w(addr.0[0]) + w(addr.0[1]) + w(addr.0[2]) + w(addr.0[3])
}

/// The UDP and GUE headers at `AT`, after the outer IP header.
#[inline(always)]
fn gue<const AT: usize>(
    ctx: &XdpContext,
    packet: &Packet,
    real: &RealServer,
    outer: &Outer,
    inner: &Inner,
) -> Result<(), Verdict> {
    let flow = &packet.flow;
    // From the UDP header to the end of the client's packet.
    let udp_len = packet.ip_len + tunnel::UDP_LEN + tunnel::GUE_LEN;
    let mut header = UdpGue {
        sport: tunnel::source_port(
            flow.saddr.fold(),
            flow.daddr.fold(),
            flow.sport,
            flow.dport,
            flow.proto,
        ),
        dport: real.tun_port,
        len: udp_len.to_be_bytes(),
        check: 0,
        gue: [0, inner.proto, 0, 0],
    };
    if real.tun_flags & (tunnel::F_CSUM | tunnel::F_REMCSUM) != 0 {
        // RFC 768 / RFC 8200 8.1: over the pseudo header (addresses, protocol, UDP length),
        // the UDP and GUE headers and the client's packet.
        let inner_sum = inner_sum::<AT>(ctx, packet, tunnel::UDP_LEN + tunnel::GUE_LEN)?;
        let w = |b: [u8; 2]| u32::from(u16::from_ne_bytes(b));
        let sum = addr_sum(&outer.src)
            + addr_sum(&real.addr)
            + w([0, IPPROTO_UDP])
            + 2 * w(header.len)
            + u32::from(header.sport)
            + u32::from(header.dport)
            + w([header.gue[0], header.gue[1]])
            + w([header.gue[2], header.gue[3]])
            + u32::from(inner_sum);
        header.check = csum::udp_fixup(1, !csum::fold(sum));
    }
    let at = ptr::at_mut::<UdpGue>(ctx, AT).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at_mut` checked the headers (the head moved before they were derived); packet
    // fields need not be aligned.
    unsafe { at.write_unaligned(header) };
    Ok(())
}

/// The GRE header at `AT`, after the outer IP header, with its checksum if `tun_flags` ask
/// for it.
#[inline(always)]
fn gre<const AT: usize>(
    ctx: &XdpContext,
    packet: &Packet,
    tun_flags: u8,
    inner: &Inner,
) -> Result<(), Verdict> {
    let proto = if inner.proto == IPPROTO_IPV6 {
        ETH_P_IPV6
    } else {
        ETH_P_IP
    };
    if tun_flags & tunnel::F_CSUM == 0 {
        let at = ptr::at_mut::<[u8; 4]>(ctx, AT).ok_or_else(|| drop(Stat::DropMalformed))?;
        let [p0, p1] = proto.to_be_bytes();
        // SAFETY: `at_mut` checked the four bytes.
        unsafe { at.write_unaligned([0, 0, p0, p1]) };
        return Ok(());
    }
    let mut header = GreCsum {
        flags: GRE_F_CSUM.to_be_bytes(),
        proto: proto.to_be_bytes(),
        check: 0,
        reserved: [0; 2],
    };
    // RFC 2784: over the GRE header and its payload, no pseudo header.
    let sum = inner_sum::<AT>(ctx, packet, tunnel::GRE_LEN + tunnel::GRE_CSUM_LEN)?;
    let w = |b: [u8; 2]| u32::from(u16::from_ne_bytes(b));
    header.check = !csum::fold(w(header.flags) + w(header.proto) + u32::from(sum));
    let at = ptr::at_mut::<GreCsum>(ctx, AT).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at_mut` checked the header; packet fields need not be aligned.
    unsafe { at.write_unaligned(header) };
    Ok(())
}

/// The sum over the client's packet, `headers` bytes after `AT` (the outer IP header's end).
#[inline(always)]
fn inner_sum<const AT: usize>(
    ctx: &XdpContext,
    packet: &Packet,
    headers: u16,
) -> Result<u16, Verdict> {
    let offset = AT as u32 + u32::from(headers);
    sum::over(ctx, offset, u32::from(packet.ip_len)).ok_or_else(|| drop(Stat::DropMalformed))
}
