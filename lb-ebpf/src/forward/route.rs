//! LVS-DR ("Route", `-g`): the IP packet is untouched; only the Ethernet header changes. The
//! destination MAC becomes the real server's (which owns the VIP on a non-ARPing interface),
//! the source MAC becomes the director's own (so switches and bridges keep learning the
//! client's MAC on the right port), and the frame leaves again. lbd keeps the real server's
//! MAC in its entry (from the kernel's neighbour table), so no lookup is needed per packet.

use aya_ebpf::programs::XdpContext;
use lb_common::{REAL_F_RESOLVED, RealServer, Stat};

use crate::{Verdict, drop, fib, maps::IFACES, stats};

#[inline(always)]
pub fn forward(ctx: &XdpContext, real: &RealServer) -> Result<Verdict, Verdict> {
    if real.flags & REAL_F_RESOLVED == 0 {
        return Err(drop(Stat::DropNoNeigh));
    }
    let ingress = ctx.ingress_ifindex() as u32;
    let egress = if real.ifindex == 0 {
        ingress
    } else {
        real.ifindex
    };
    // SAFETY: plain-data value copied out at once.
    let Some(iface) = (unsafe { IFACES.get(&egress) }) else {
        return Err(drop(Stat::DropNoIface));
    };
    stats::count(Stat::TxRoute);
    fib::emit(ctx, egress, iface.mac, real.mac)
}
