//! LVS-NAT ("Masq", `-m`): the client's packet is readdressed to the real server (address
//! and, with port mapping, port) and routed to it; the real server's reply, which comes back
//! through the director because it is the real server's gateway, is readdressed back to the
//! virtual service. Checksums are updated incrementally (RFC 1624); a UDP checksum of 0 ("none")
//! stays 0. Routing is the kernel's FIB, so a two-NIC director forwards between its NICs here.

use aya_ebpf::programs::XdpContext;
use lb_common::{Conn, IPPROTO_TCP, RealServer, Stat, csum};
use network_types::ip::Ipv4Hdr;

use crate::{
    Verdict, drop, fib,
    parse::L3_OFFSET,
    ptr,
    stage::{LATER_FRAGMENT, Packet},
    stats,
};

/// Offsets of the checksum field in the TCP and UDP headers.
const TCP_CHECK: usize = 16;
const UDP_CHECK: usize = 6;
/// Offsets of the source and destination ports in both.
const SPORT: usize = 0;
const DPORT: usize = 2;
/// Offsets of the source and destination addresses in the IPv4 header.
const SADDR: usize = 12;
const DADDR: usize = 16;

/// Client → real server.
#[inline(always)]
pub fn forward(ctx: &XdpContext, packet: &Packet, real: &RealServer) -> Result<Verdict, Verdict> {
    let hop = route(ctx, packet.flow.saddr.ipv4(), real.addr.ipv4())?;
    super::hop(ctx, packet)?;
    rewrite(
        ctx,
        packet,
        DADDR,
        DPORT,
        packet.flow.daddr.ipv4(),
        real.addr.ipv4(),
        packet.flow.dport,
        real.port_for(packet.flow.dport),
    )?;
    stats::count(Stat::TxNat);
    fib::emit(ctx, hop.ifindex, hop.smac, hop.dmac)
}

/// Real server → client: back to the virtual address and port the client used.
#[inline(always)]
pub fn reply(ctx: &XdpContext, packet: &Packet, conn: &Conn) -> Result<Verdict, Verdict> {
    let hop = route(ctx, conn.vaddr.ipv4(), packet.flow.daddr.ipv4())?;
    let ip = ptr::at_mut::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at_mut` checked the IPv4 header; no other reference to it is live.
    crate::ip::reply_hop(unsafe { &mut *ip })?;
    rewrite(
        ctx,
        packet,
        SADDR,
        SPORT,
        packet.flow.saddr.ipv4(),
        conn.vaddr.ipv4(),
        packet.flow.sport,
        conn.vport,
    )?;
    stats::count(Stat::TxNatReply);
    fib::emit(ctx, hop.ifindex, hop.smac, hop.dmac)
}

#[inline(always)]
fn route(ctx: &XdpContext, src: u32, dst: u32) -> Result<fib::NextHop, Verdict> {
    fib::forward_lookup(ctx, ctx.ingress_ifindex() as u32, src, dst)
        .ok_or_else(|| drop(Stat::DropFib))
}

/// Replaces one address (at `addr_at` in the IP header) and one port (at `port_at` in the
/// L4 header), fixing the IP and L4 checksums (the caller has taken one off the TTL). A later fragment has no L4 header: only its
/// address changes (the first fragment's L4 checksum covers the whole datagram's).
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "one rewrite, spelled out")]
fn rewrite(
    ctx: &XdpContext,
    packet: &Packet,
    addr_at: usize,
    port_at: usize,
    old_addr: u32,
    new_addr: u32,
    old_port: u16,
    new_port: u16,
) -> Result<(), Verdict> {
    let ip = ptr::at_mut::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
    let addr =
        ptr::at_mut::<u32>(ctx, L3_OFFSET + addr_at).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: both pointers were bounds-checked by `at_mut` just above; header fields in a
    // packet need not be aligned, so they are read and written unaligned.
    unsafe {
        let ip_check = u16::from_ne_bytes((*ip).check);
        (*ip).check = csum::replace32(ip_check, old_addr, new_addr).to_ne_bytes();
        addr.write_unaligned(new_addr);
    }
    if packet.fragment == LATER_FRAGMENT {
        return Ok(());
    }
    let port = ptr::at_mut::<u16>(ctx, packet.l4_offset as usize + port_at)
        .ok_or_else(|| drop(Stat::DropMalformed))?;
    let is_tcp = packet.flow.proto == IPPROTO_TCP;
    let check_at = packet.l4_offset as usize + if is_tcp { TCP_CHECK } else { UDP_CHECK };
    let l4_check = ptr::at_mut::<u16>(ctx, check_at).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: as above.
    unsafe {
        let old_l4 = l4_check.read_unaligned();
        // The L4 checksum covers the pseudo-header (addresses) and the ports.
        let updated = csum::replace16(
            csum::replace32(old_l4, old_addr, new_addr),
            old_port,
            new_port,
        );
        l4_check.write_unaligned(if is_tcp {
            updated
        } else {
            csum::udp_fixup(old_l4, updated)
        });
        port.write_unaligned(new_port);
    }
    Ok(())
}
