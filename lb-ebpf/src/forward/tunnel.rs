//! LVS-TUN ("Tunnel", `-i`): the client's packet is wrapped, whole and untouched, in an outer
//! IPv4 header (IP-in-IP, protocol 4) from the director to the real server, which unwraps it
//! and answers the client directly. A packet that would no longer fit the path MTU and may not
//! be fragmented is answered with ICMP "fragmentation needed", as IPVS does.
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
use lb_common::{Iface, REAL_F_RESOLVED, RealServer, Stat};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{Verdict, drop, fib, icmp, ip, parse::L3_OFFSET, ptr, stage::Packet, stats};

const IPPROTO_IPIP: u8 = 4;
const IP_DF: u16 = 0x4000;

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
    let outer_len = packet
        .ip_len
        .checked_add(Ipv4Hdr::LEN as u16)
        .ok_or_else(|| drop(Stat::DropFib))?;

    if real.mtu != 0 && u32::from(outer_len) > real.mtu {
        // XDP cannot fragment (IPVS would fragment the outer packet): count it rather than
        // lose it silently. Nor is a packet no ICMP error may be about (an ICMP error we
        // relay, a later fragment, a source that is no one host's) ever answered with one.
        if df == 0 || !super::may_answer(packet) {
            return Err(drop(Stat::DropFib));
        }
        // The client's packet must shrink by our header for the path to carry it.
        let mtu = real.mtu.saturating_sub(Ipv4Hdr::LEN as u32) as u16;
        return icmp::frag_needed(ctx, packet, mtu);
    }

    // Make room for the outer header in front of the client's IP packet.
    // SAFETY: helper call on our own context; every pointer is re-derived afterwards.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, -(Ipv4Hdr::LEN as i32)) } != 0 {
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
        proto: IPPROTO_IPIP,
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
    stats::count(Stat::TxTunnel);
    fib::emit(ctx, egress, smac, real.mac)
}
