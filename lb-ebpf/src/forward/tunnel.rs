//! LVS-TUN ("Tunnel", `-i`): the client's packet is wrapped, whole and untouched, in an outer
//! IPv4 header from the director to the real server, which unwraps it and answers the client
//! directly. The real server's `--tun-type` says how, as IPVS's `ip_vs_tunnel_xmit`:
//! - `ipip`: IP-in-IP, protocol 4;
//! - `gue`: UDP to the real server's `--tun-port`, then a 4-byte GUE header (version 0, no
//!   options) carrying protocol 4 (`ipvs_gue_encap`); the UDP source port is a hash of the
//!   client's flow, so routers (ECMP) and the real server's NIC (RSS) spread flows; the UDP
//!   checksum is 0 unless `--tun-csum` or `--tun-remcsum` (see `lb_common::tunnel::F_REMCSUM`);
//! - `gre`: protocol 47, a GRE header with protocol 0x0800, with `--tun-csum` the GRE checksum
//!   over the GRE header and the client's packet (`ipvs_gre_encap`).
//!
//! A packet that would no longer fit the path MTU with the tunnel's headers and may not be
//! fragmented is answered with ICMP "fragmentation needed" announcing the MTU less those
//! headers, as IPVS does.
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
use lb_common::{IPPROTO_UDP, Iface, REAL_F_RESOLVED, RealServer, Stat, csum, tunnel};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{Verdict, drop, fib, icmp, ip, parse::L3_OFFSET, ptr, stage::Packet, stats, sum};

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_GRE: u8 = 47;
const IP_DF: u16 = 0x4000;
/// Where the tunnel's own header (UDP, GRE) starts: after the outer IPv4 header.
const TUNNEL_OFFSET: usize = L3_OFFSET + tunnel::IP_LEN as usize;
/// GRE's C bit (RFC 2784): a checksum field follows.
const GRE_F_CSUM: u16 = 0x8000;
/// GRE's protocol type for an IPv4 payload.
const ETH_P_IP: u16 = 0x0800;

/// UDP and GUE headers, as GUE puts them after the outer IPv4 header.
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
    if iface.addr == 0 {
        return Err(drop(Stat::DropNoIface));
    }
    let (src, smac) = (iface.addr, iface.mac);
    // One hop less before it goes in the tunnel, as IPVS does; the outer header inherits the
    // TTL (ip_vs_tunnel_xmit).
    super::hop(ctx, packet)?;
    let inner = ptr::at::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at` checked the inner IPv4 header.
    let (tos, frags, ttl) = unsafe {
        (
            (*inner).tos,
            u16::from_be_bytes((*inner).frags),
            (*inner).ttl,
        )
    };
    let df = frags & IP_DF;
    let (tun_type, tun_flags) = (real.tun_type, real.tun_flags);
    let overhead = tunnel::overhead(tun_type, tun_flags);
    let outer_len = packet
        .ip_len
        .checked_add(overhead)
        .ok_or_else(|| drop(Stat::DropFib))?;

    if real.mtu != 0 && u32::from(outer_len) > real.mtu {
        // XDP cannot fragment (IPVS would fragment the outer packet): count it rather than
        // lose it silently. Nor is a packet no ICMP error may be about (an ICMP error we
        // relay, a later fragment, a source that is no one host's) ever answered with one.
        if df == 0 || !super::may_answer(packet) {
            return Err(drop(Stat::DropFib));
        }
        // The client's packet must shrink by our headers for the path to carry it.
        let mtu = real.mtu.saturating_sub(u32::from(overhead)) as u16;
        return icmp::frag_needed(ctx, packet, mtu);
    }

    // Make room for the tunnel's headers in front of the client's IP packet.
    // SAFETY: helper call on our own context; every pointer is re-derived afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, -i32::from(overhead)) } != 0 {
        return Err(drop(Stat::DropFib));
    }
    let eth = ptr::at_mut::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::DropMalformed))?;
    let outer = ptr::at_mut::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    // RFC 6864: with DF set the ID carries no meaning. Without DF the outer packet may be
    // fragmented on the way, so its ID must not repeat soon between the director and this
    // real server: a random one, as the kernel picks for tunnels, without a shared counter.
    // SAFETY: helper call without arguments.
    let id = if df != 0 {
        0
    } else {
        (unsafe { bpf_get_prandom_u32() }) as u16
    };
    let mut header = Ipv4Hdr {
        vihl: 0x45,
        tos,
        tot_len: outer_len.to_be_bytes(),
        id: id.to_be_bytes(),
        frags: df.to_be_bytes(),
        ttl,
        proto: match tun_type {
            tunnel::GUE => IPPROTO_UDP,
            tunnel::GRE => IPPROTO_GRE,
            _ => IPPROTO_IPIP,
        },
        check: [0; 2],
        src_addr: src.to_ne_bytes(),
        dst_addr: real.addr.ipv4().to_ne_bytes(),
    };
    header.check = ip::checksum(&header);
    // SAFETY: `at_mut` checked both headers after the head moved.
    unsafe {
        (*eth).ether_type = network_types::eth::EtherType::Ipv4 as u16;
        *outer = header;
    }
    match tun_type {
        tunnel::GUE => gue(ctx, packet, real, src, outer_len - tunnel::IP_LEN)?,
        tunnel::GRE => gre(ctx, packet, tun_flags)?,
        _ => {}
    }
    stats::count(Stat::TxTunnel);
    fib::emit(ctx, egress, smac, real.mac)
}

/// The UDP and GUE headers after the outer IPv4 header; `udp_len` counts from the UDP header
/// to the end of the client's packet.
#[inline(always)]
fn gue(
    ctx: &XdpContext,
    packet: &Packet,
    real: &RealServer,
    src: u32,
    udp_len: u16,
) -> Result<(), Verdict> {
    let flow = &packet.flow;
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
        gue: [0, IPPROTO_IPIP, 0, 0],
    };
    if real.tun_flags & (tunnel::F_CSUM | tunnel::F_REMCSUM) != 0 {
        // RFC 768: over the pseudo header, the UDP and GUE headers and the client's packet.
        let inner = inner_sum(ctx, packet, tunnel::UDP_LEN + tunnel::GUE_LEN)?;
        let w = |b: [u8; 2]| u32::from(u16::from_ne_bytes(b));
        let [s0, s1, s2, s3] = src.to_ne_bytes();
        let [d0, d1, d2, d3] = real.addr.ipv4().to_ne_bytes();
        let sum = w([s0, s1])
            + w([s2, s3])
            + w([d0, d1])
            + w([d2, d3])
            + w([0, IPPROTO_UDP])
            + 2 * w(header.len)
            + u32::from(header.sport)
            + u32::from(header.dport)
            + w([header.gue[0], header.gue[1]])
            + w([header.gue[2], header.gue[3]])
            + u32::from(inner);
        header.check = csum::udp_fixup(1, !csum::fold(sum));
    }
    let at = ptr::at_mut::<UdpGue>(ctx, TUNNEL_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at_mut` checked the headers (the head moved before they were derived); packet
    // fields need not be aligned.
    unsafe { at.write_unaligned(header) };
    Ok(())
}

/// The GRE header after the outer IPv4 header, with its checksum if `tun_flags` ask for it.
#[inline(always)]
fn gre(ctx: &XdpContext, packet: &Packet, tun_flags: u8) -> Result<(), Verdict> {
    if tun_flags & tunnel::F_CSUM == 0 {
        let at =
            ptr::at_mut::<[u8; 4]>(ctx, TUNNEL_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
        let [p0, p1] = ETH_P_IP.to_be_bytes();
        // SAFETY: `at_mut` checked the four bytes.
        unsafe { at.write_unaligned([0, 0, p0, p1]) };
        return Ok(());
    }
    let mut header = GreCsum {
        flags: GRE_F_CSUM.to_be_bytes(),
        proto: ETH_P_IP.to_be_bytes(),
        check: 0,
        reserved: [0; 2],
    };
    // RFC 2784: over the GRE header and its payload, no pseudo header.
    let inner = inner_sum(ctx, packet, tunnel::GRE_LEN + tunnel::GRE_CSUM_LEN)?;
    let w = |b: [u8; 2]| u32::from(u16::from_ne_bytes(b));
    header.check = !csum::fold(w(header.flags) + w(header.proto) + u32::from(inner));
    let at = ptr::at_mut::<GreCsum>(ctx, TUNNEL_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at_mut` checked the header; packet fields need not be aligned.
    unsafe { at.write_unaligned(header) };
    Ok(())
}

/// The sum over the client's packet, `headers` bytes after the outer IPv4 header.
#[inline(always)]
fn inner_sum(ctx: &XdpContext, packet: &Packet, headers: u16) -> Result<u16, Verdict> {
    let offset = TUNNEL_OFFSET as u32 + u32::from(headers);
    sum::over(ctx, offset, u32::from(packet.ip_len)).ok_or_else(|| drop(Stat::DropMalformed))
}
