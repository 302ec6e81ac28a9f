//! ICMP errors about balanced connections, handled as IPVS does (`ip_vs_in_icmp` /
//! `ip_vs_out_icmp`): an error that quotes a packet of a known connection goes where that
//! connection goes, translated for NAT so each side sees the addresses it used.
//!
//! - From the client's side, about our reply (quoting VIP:vport → client): DR and TUN send it
//!   on to the real server (its reply was the one that did not get through, e.g. path MTU);
//!   NAT readdresses it to the real server and rewrites the quote to RIP:rport → client.
//! - From a NAT real server or a router on its side, about a packet we forwarded (quoting
//!   client → RIP:rport): the client sees it from the VIP, quoting client → VIP:vport.
//!
//! A real server on port 0 (a port-0 service) uses the connection's own port. Relayed errors
//! count in the connection's traffic counters, as in IPVS (in from the client's side, out from
//! the real server's), and NAT forwards them like its other packets: one hop less.

use aya_ebpf::programs::XdpContext;
use lb_common::{AF_INET6, Addr, CONN_F_REPLY, FlowKey, IPPROTO_UDP, Stat, csum, method};
use network_types::ip::{Ipv4Hdr, Ipv6Hdr};

use crate::{
    Verdict, fib, forward, ip, maps,
    parse::L3_OFFSET,
    pass, ptr,
    stage::{Carry, Packet, Quote},
    stats,
};

const SADDR: usize = 12;
const DADDR: usize = 16;
const SADDR6: usize = 8;
const DADDR6: usize = 24;
const SPORT: usize = 0;
const DPORT: usize = 2;
const IP_CHECK: usize = 10;
const ICMP_CHECK: usize = 2;
const UDP_CHECK: usize = 6;

/// The ICMP error in `carry` (its `packet` and `quote`), relayed or translated; DR and TUN go
/// on to their forwarding stage with `carry.real` set.
#[inline(always)]
pub fn relay(ctx: &XdpContext, carry: &mut Carry) -> Result<Verdict, Verdict> {
    let err = carry.packet;
    let quote = carry.quote;
    let q = &quote.flow;
    // The quoted packet went the other way: its reverse is our table's key.
    let key = FlowKey {
        saddr: q.daddr,
        daddr: q.saddr,
        sport: q.dport,
        dport: q.sport,
        proto: q.proto,
        family: q.family,
        _pad16: 0,
    };
    let Some(conn) = maps::connection(&key) else {
        return Err(pass(Stat::PassNotService));
    };
    let ingress = ctx.ingress_ifindex() as u32;
    let v6 = q.family == AF_INET6;
    let (saddr_at, daddr_at) = if v6 { (SADDR6, DADDR6) } else { (SADDR, DADDR) };
    if conn.flags & CONN_F_REPLY != 0 {
        // From the real server's side: make it about client → VIP:vport, from the VIP.
        stats::account_reply(conn.service, conn.real, err.ip_len);
        let hop = fib::forward_lookup(ctx, ingress, q.family, &conn.vaddr, &err.flow.daddr)
            .ok_or_else(|| crate::drop(Stat::DropFib))?;
        let rewrite = Rewrite {
            outer_at: saddr_at,
            quoted_addr_at: daddr_at,
            quoted_port_at: DPORT,
            old_addr: q.daddr,
            new_addr: conn.vaddr,
            old_port: q.dport,
            new_port: conn.vport,
        };
        translate(ctx, &err, &quote, &rewrite)?;
        stats::count(Stat::IcmpRelayed);
        return fib::emit(ctx, hop.ifindex, hop.smac, hop.dmac);
    }
    let Some(real) = maps::real(conn.real) else {
        return Err(pass(Stat::PassNotService));
    };
    // Counted in, as IPVS counts the errors it relays (ip_vs_in_stats).
    stats::account(conn.service, conn.real, err.ip_len);
    if real.method != method::MASQ {
        // DR and TUN: the real server answered the client itself; the error is for it. (The
        // forwarding stage sees the error as its packet: `carry.packet` already is; it counts
        // the relay once the error is on its way.)
        carry.real = *real;
        return Ok(forward::to_real(ctx, real.method));
    }
    // NAT: make it about RIP:rport → client, to the real server.
    let hop = fib::forward_lookup(ctx, ingress, q.family, &err.flow.saddr, &real.addr)
        .ok_or_else(|| crate::drop(Stat::DropFib))?;
    let rewrite = Rewrite {
        outer_at: daddr_at,
        quoted_addr_at: saddr_at,
        quoted_port_at: SPORT,
        old_addr: q.saddr,
        new_addr: real.addr,
        old_port: q.sport,
        new_port: real.port_for(conn.vport),
    };
    translate(ctx, &err, &quote, &rewrite)?;
    stats::count(Stat::IcmpRelayed);
    fib::emit(ctx, hop.ifindex, hop.smac, hop.dmac)
}

/// One address (in the outer header and the quote) and one port (in the quote) to replace.
/// The outer header's own address is replaced whatever it is (a router's, on the real
/// server's side), as IPVS does; `old_addr` is the quoted one.
struct Rewrite {
    outer_at: usize,
    quoted_addr_at: usize,
    quoted_port_at: usize,
    old_addr: Addr,
    new_addr: Addr,
    old_port: u16,
    new_port: u16,
}

/// Rewrites the outer address, the quoted address and port, and every checksum they touch:
/// the outer IP header's, the quoted IP header's, the quoted UDP checksum when present (TCP's
/// lies beyond the eight quoted bytes RFC 792 guarantees; like IPVS we leave it), and the
/// ICMP checksum over all the quoted bytes that changed. The error is forwarded like any NAT
/// packet: one hop less ([`ip::forward_hop`]).
#[inline(always)]
fn translate(ctx: &XdpContext, err: &Packet, quote: &Quote, r: &Rewrite) -> Result<(), Verdict> {
    if quote.flow.family == AF_INET6 {
        return translate6(ctx, err, quote, r);
    }
    let (old_addr, new_addr) = (r.old_addr.ipv4(), r.new_addr.ipv4());
    let bad = || crate::drop(Stat::DropMalformed);
    let outer = ptr::at_mut::<Ipv4Hdr>(ctx, L3_OFFSET).ok_or_else(bad)?;
    let outer_addr = ptr::at_mut::<u32>(ctx, L3_OFFSET + r.outer_at).ok_or_else(bad)?;
    let icmp_check =
        ptr::at_mut::<u16>(ctx, err.l4_offset as usize + ICMP_CHECK).ok_or_else(bad)?;
    let quoted_check =
        ptr::at_mut::<u16>(ctx, quote.ip_offset as usize + IP_CHECK).ok_or_else(bad)?;
    let quoted_addr =
        ptr::at_mut::<u32>(ctx, quote.ip_offset as usize + r.quoted_addr_at).ok_or_else(bad)?;
    let quoted_port =
        ptr::at_mut::<u16>(ctx, quote.l4_offset as usize + r.quoted_port_at).ok_or_else(bad)?;
    let udp_check =
        ptr::at_mut::<u16>(ctx, quote.l4_offset as usize + UDP_CHECK).ok_or_else(bad)?;
    // SAFETY: `at_mut` checked the outer header; no other reference to it is live.
    // One hop less; an error whose TTL runs out here is dropped (no error about an error).
    if !ip::decrement_ttl(unsafe { &mut *outer }) {
        return Err(crate::drop(Stat::DropTtlExpired));
    }
    // SAFETY: every pointer was bounds-checked by `at_mut` just above; header fields in a
    // packet need not be aligned, so they are read and written unaligned.
    unsafe {
        let check = u16::from_ne_bytes((*outer).check);
        (*outer).check =
            csum::replace32(check, outer_addr.read_unaligned(), new_addr).to_ne_bytes();
        outer_addr.write_unaligned(new_addr);

        let mut icmp = icmp_check.read_unaligned();
        let old_quoted_check = quoted_check.read_unaligned();
        let new_quoted_check = csum::replace32(old_quoted_check, old_addr, new_addr);
        icmp = csum::replace32(icmp, old_addr, new_addr);
        icmp = csum::replace16(icmp, old_quoted_check, new_quoted_check);
        icmp = csum::replace16(icmp, r.old_port, r.new_port);
        if quote.flow.proto == IPPROTO_UDP && udp_check.read_unaligned() != 0 {
            let old_udp = udp_check.read_unaligned();
            let new_udp = csum::udp_fixup(
                old_udp,
                csum::replace16(
                    csum::replace32(old_udp, old_addr, new_addr),
                    r.old_port,
                    r.new_port,
                ),
            );
            icmp = csum::replace16(icmp, old_udp, new_udp);
            udp_check.write_unaligned(new_udp);
        }
        quoted_check.write_unaligned(new_quoted_check);
        quoted_addr.write_unaligned(new_addr);
        quoted_port.write_unaligned(r.new_port);
        icmp_check.write_unaligned(icmp);
    }
    Ok(())
}

/// [`translate`] for IPv6: no IP header checksums, but the ICMPv6 checksum covers the outer
/// addresses (its pseudo-header) as well as the quoted ones.
#[inline(always)]
fn translate6(ctx: &XdpContext, err: &Packet, quote: &Quote, r: &Rewrite) -> Result<(), Verdict> {
    let bad = || crate::drop(Stat::DropMalformed);
    let outer = ptr::at_mut::<Ipv6Hdr>(ctx, L3_OFFSET).ok_or_else(bad)?;
    let outer_addr = ptr::at_mut::<[u32; 4]>(ctx, L3_OFFSET + r.outer_at).ok_or_else(bad)?;
    let icmp_check =
        ptr::at_mut::<u16>(ctx, err.l4_offset as usize + ICMP_CHECK).ok_or_else(bad)?;
    let quoted_addr = ptr::at_mut::<[u32; 4]>(ctx, quote.ip_offset as usize + r.quoted_addr_at)
        .ok_or_else(bad)?;
    let quoted_port =
        ptr::at_mut::<u16>(ctx, quote.l4_offset as usize + r.quoted_port_at).ok_or_else(bad)?;
    let udp_check =
        ptr::at_mut::<u16>(ctx, quote.l4_offset as usize + UDP_CHECK).ok_or_else(bad)?;
    // SAFETY: `at_mut` checked the outer header; no other reference to it is live.
    // One hop less; an error whose hop limit runs out here is dropped.
    if !ip::decrement_hop_limit(unsafe { &mut *outer }) {
        return Err(crate::drop(Stat::DropTtlExpired));
    }
    let (old, new) = (&r.old_addr.0, &r.new_addr.0);
    // SAFETY: every pointer was bounds-checked by `at_mut` just above; read and written
    // unaligned, as packet fields may be.
    unsafe {
        let mut icmp = icmp_check.read_unaligned();
        icmp = csum::replace128(icmp, &outer_addr.read_unaligned(), new);
        icmp = csum::replace128(icmp, old, new);
        icmp = csum::replace16(icmp, r.old_port, r.new_port);
        if quote.flow.proto == IPPROTO_UDP && udp_check.read_unaligned() != 0 {
            let old_udp = udp_check.read_unaligned();
            let new_udp = csum::udp_fixup(
                old_udp,
                csum::replace16(csum::replace128(old_udp, old, new), r.old_port, r.new_port),
            );
            icmp = csum::replace16(icmp, old_udp, new_udp);
            udp_check.write_unaligned(new_udp);
        }
        outer_addr.write_unaligned(*new);
        quoted_addr.write_unaligned(*new);
        quoted_port.write_unaligned(r.new_port);
        icmp_check.write_unaligned(icmp);
    }
    Ok(())
}
