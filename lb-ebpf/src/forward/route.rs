//! LVS-DR ("Route", `-g`): the IP packet is untouched; only the Ethernet header changes. The
//! destination MAC becomes the real server's (which owns the VIP on a non-ARPing interface),
//! the source MAC becomes the director's own (so switches and bridges keep learning the
//! client's MAC on the right port), and the frame leaves again.

use aya_ebpf::{bindings::xdp_action, helpers::bpf_redirect, programs::XdpContext};
use lb_common::{REAL_F_RESOLVED, RealServer, Stat};
use network_types::eth::EthHdr;

use crate::{Verdict, drop, maps::IFACES, ptr, stats};

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
    let eth = ptr::at_mut::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::PassMalformed))?;
    // SAFETY: `at_mut` checked that the Ethernet header lies within the packet.
    unsafe {
        (*eth).dst_addr = real.mac;
        (*eth).src_addr = iface.mac;
    }
    if egress == ingress {
        stats::count(Stat::TxRoute);
        Ok(xdp_action::XDP_TX)
    } else {
        stats::count(Stat::Redirect);
        // SAFETY: helper call with plain integer arguments.
        Ok(unsafe { bpf_redirect(egress, 0) } as Verdict)
    }
}
