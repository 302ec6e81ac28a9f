//! LVS-DR ("Route", `-g`): only the Ethernet header and the TTL change (one hop less, as
//! IPVS forwards it). The destination MAC becomes the real server's (which owns the VIP on a
//! non-ARPing interface), the source MAC becomes the director's own (so switches and bridges
//! keep learning the client's MAC on the right port), and the frame leaves again. lbd keeps the real server's
//! MAC in its entry (from the kernel's neighbour table), so no lookup is needed per packet.

use aya_ebpf::programs::XdpContext;
use lb_common::{Iface, REAL_F_RESOLVED, RealServer, Stat};

use crate::{Verdict, drop, fib, maps::IFACES, stage::Packet, stats};

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
    let (egress, iface) = egress(ctx, real, ingress)?;
    super::hop(ctx, packet)?;
    stats::count(Stat::TxRoute);
    fib::emit(ctx, egress, iface.mac, real.mac)
}

/// The NIC a frame to `real` leaves by, and lbd's description of it: the ingress NIC's,
/// already looked up by the entry, unless the real server lies behind another one.
#[inline(always)]
pub fn egress(
    ctx: &XdpContext,
    real: &RealServer,
    ingress: &Iface,
) -> Result<(u32, Iface), Verdict> {
    let ingress_index = ctx.ingress_ifindex() as u32;
    if (real.ifindex == 0 || real.ifindex == ingress_index) && ingress.mac != [0; 6] {
        return Ok((ingress_index, *ingress));
    }
    let egress = if real.ifindex == 0 {
        ingress_index
    } else {
        real.ifindex
    };
    // SAFETY: plain-data value copied out at once.
    match unsafe { IFACES.get(&egress) } {
        Some(iface) => Ok((egress, *iface)),
        None => Err(drop(Stat::DropNoIface)),
    }
}
