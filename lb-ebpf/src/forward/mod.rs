//! Sending a packet on to its real server, by the real server's forwarding method: each
//! method is a stage of its own (`lb_route`, `lb_tunnel`, `lb_masq`), so that the verifier
//! checks each once rather than once per way of reaching it.

pub mod nat;
pub mod route;
pub mod tunnel;
pub mod tunnel6;

use aya_ebpf::programs::XdpContext;
use lb_common::{AF_INET6, Stat, method, stage};

use crate::{
    Verdict, drop, icmp, icmp6, ip,
    parse::IPPROTO_ICMP,
    stage::{LATER_FRAGMENT, Packet, jump},
};

/// One hop towards the real server, as IPVS's `decrement_ttl` does for every method: the
/// client's packet loses one from its TTL; one whose TTL runs out here is answered with ICMP
/// "time exceeded", or dropped when no error may be sent about it ([`may_answer`]).
#[inline(always)]
pub fn hop(ctx: &XdpContext, packet: &Packet) -> Result<(), Verdict> {
    if ip::decrement(ctx, packet.flow.family)? {
        return Ok(());
    }
    let v6 = packet.flow.family == AF_INET6;
    if v6 && !icmp6::may_answer(packet) || !v6 && !may_answer(packet) {
        return Err(drop(Stat::DropTtlExpired));
    }
    let answered = if v6 {
        icmp6::time_exceeded(ctx, packet)
    } else {
        icmp::time_exceeded(ctx, packet)
    };
    Err(match answered {
        Ok(verdict) | Err(verdict) => verdict,
    })
}

/// Whether the director may answer `packet` with an ICMP error (RFC 1122 3.2.2, RFC 1812
/// 4.3.2.7, as the kernel's `icmp_send`): not about an ICMP error, nor about a fragment other
/// than the first, nor to a source that does not name one host (this network 0/8, loopback
/// 127/8, multicast 224/4, class E 240/4, broadcast).
#[inline(always)]
pub fn may_answer(packet: &Packet) -> bool {
    let first_octet = packet.flow.saddr.ipv4().to_ne_bytes()[0];
    packet.flow.proto != IPPROTO_ICMP
        && packet.fragment != LATER_FRAGMENT
        && first_octet != 0
        && first_octet != 127
        && first_octet < 224
}

/// Continues with the stage of forwarding `method` (the carry holds the real server).
#[inline(always)]
pub fn to_real(ctx: &XdpContext, real_method: u8) -> Verdict {
    match real_method {
        method::ROUTE => jump(ctx, stage::ROUTE),
        method::TUNNEL => jump(ctx, stage::TUNNEL),
        method::MASQ => jump(ctx, stage::MASQ),
        _ => drop(Stat::DropUnsupported),
    }
}
