//! LVS-NAT ("Masq", `-m`): the client's packet is readdressed to the real server (address
//! and, with port mapping, port) and routed to it; the real server's reply, which comes back
//! through the director because it is the real server's gateway, is readdressed back to the
//! virtual service. Checksums are updated incrementally (RFC 1624; for IPv6 only the L4 one, whose
//! pseudo-header has the addresses); an IPv4 UDP checksum of 0 ("none") stays 0. Routing is the kernel's FIB, so a two-NIC director forwards between its NICs here.

use aya_ebpf::programs::XdpContext;
use lb_common::{AF_INET6, Addr, Conn, IPPROTO_TCP, RealServer, Stat, csum};
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
/// And in the IPv6 header.
const SADDR6: usize = 8;
const DADDR6: usize = 24;

/// Client → real server.
#[inline(always)]
pub fn forward(ctx: &XdpContext, packet: &Packet, real: &RealServer) -> Result<Verdict, Verdict> {
    let flow = &packet.flow;
    let hop = route(ctx, flow.family, &flow.saddr, &real.addr)?;
    super::hop(ctx, packet)?;
    let change = Change {
        addr_at: daddr_at(flow.family),
        port_at: DPORT,
        old_addr: flow.daddr,
        new_addr: real.addr,
        old_port: flow.dport,
        new_port: real.port_for(flow.dport),
    };
    rewrite(ctx, packet, &change)?;
    stats::count(Stat::TxNat);
    fib::emit(ctx, hop.ifindex, hop.smac, hop.dmac)
}

/// Real server → client: back to the virtual address and port the client used.
#[inline(always)]
pub fn reply(ctx: &XdpContext, packet: &Packet, conn: &Conn) -> Result<Verdict, Verdict> {
    let flow = &packet.flow;
    let hop = route(ctx, flow.family, &conn.vaddr, &flow.daddr)?;
    crate::ip::reply_hop(ctx, flow.family)?;
    let change = Change {
        addr_at: saddr_at(flow.family),
        port_at: SPORT,
        old_addr: flow.saddr,
        new_addr: conn.vaddr,
        old_port: flow.sport,
        new_port: conn.vport,
    };
    rewrite(ctx, packet, &change)?;
    stats::count(Stat::TxNatReply);
    fib::emit(ctx, hop.ifindex, hop.smac, hop.dmac)
}

#[inline(always)]
fn route(ctx: &XdpContext, family: u8, src: &Addr, dst: &Addr) -> Result<fib::NextHop, Verdict> {
    fib::forward_lookup(ctx, ctx.ingress_ifindex() as u32, family, src, dst)
        .ok_or_else(|| drop(Stat::DropFib))
}

#[inline(always)]
fn saddr_at(family: u8) -> usize {
    if family == AF_INET6 { SADDR6 } else { SADDR }
}

#[inline(always)]
fn daddr_at(family: u8) -> usize {
    if family == AF_INET6 { DADDR6 } else { DADDR }
}

/// One address (at `addr_at` in the IP header) and one port (at `port_at` in the L4 header)
/// to replace.
struct Change {
    addr_at: usize,
    port_at: usize,
    old_addr: Addr,
    new_addr: Addr,
    old_port: u16,
    new_port: u16,
}

/// Makes `change`, fixing the IPv4 header checksum (IPv6 has none) and the L4 checksum (the
/// caller has taken one off the TTL or hop limit). A later fragment has no L4 header: only
/// its address changes (the first fragment's L4 checksum covers the whole datagram's).
#[inline(always)]
fn rewrite(ctx: &XdpContext, packet: &Packet, change: &Change) -> Result<(), Verdict> {
    let v6 = packet.flow.family == AF_INET6;
    let (old, new) = (&change.old_addr, &change.new_addr);
    if v6 {
        let addr = ptr::at_mut::<[u32; 4]>(ctx, L3_OFFSET + change.addr_at)
            .ok_or_else(|| drop(Stat::DropMalformed))?;
        // SAFETY: bounds-checked by `at_mut`; written unaligned, as header fields may be.
        unsafe { addr.write_unaligned(new.0) };
    } else {
        let ip = ptr::at_mut::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(|| drop(Stat::DropMalformed))?;
        let addr = ptr::at_mut::<u32>(ctx, L3_OFFSET + change.addr_at)
            .ok_or_else(|| drop(Stat::DropMalformed))?;
        // SAFETY: both pointers were bounds-checked by `at_mut` just above; header fields in
        // a packet need not be aligned, so they are read and written unaligned.
        unsafe {
            let ip_check = u16::from_ne_bytes((*ip).check);
            (*ip).check = csum::replace32(ip_check, old.ipv4(), new.ipv4()).to_ne_bytes();
            addr.write_unaligned(new.ipv4());
        }
    }
    if packet.fragment == LATER_FRAGMENT {
        return Ok(());
    }
    let port = ptr::at_mut::<u16>(ctx, packet.l4_offset as usize + change.port_at)
        .ok_or_else(|| drop(Stat::DropMalformed))?;
    let is_tcp = packet.flow.proto == IPPROTO_TCP;
    let check_at = packet.l4_offset as usize + if is_tcp { TCP_CHECK } else { UDP_CHECK };
    let l4_check = ptr::at_mut::<u16>(ctx, check_at).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: as above.
    unsafe {
        let old_l4 = l4_check.read_unaligned();
        // The L4 checksum covers the pseudo-header (addresses) and the ports.
        let readdressed = if v6 {
            csum::replace128(old_l4, &old.0, &new.0)
        } else {
            csum::replace32(old_l4, old.ipv4(), new.ipv4())
        };
        let updated = csum::replace16(readdressed, change.old_port, change.new_port);
        l4_check.write_unaligned(if is_tcp {
            updated
        } else {
            csum::udp_fixup(old_l4, updated)
        });
        port.write_unaligned(change.new_port);
    }
    Ok(())
}
