//! Next hops from the kernel's FIB (`bpf_fib_lookup`), and sending a frame on to one.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_FIB_LKUP_RET_SUCCESS, bpf_fib_lookup, xdp_action},
    helpers::bpf_fib_lookup as fib_lookup,
    programs::XdpContext,
};
use lb_common::{AF_INET6, Addr, Stat};
use network_types::eth::EthHdr;

use crate::{Verdict, drop, maps::TX_PORTS, ptr, stats};

/// Where a frame goes next.
pub struct NextHop {
    pub ifindex: u32,
    pub smac: [u8; 6],
    pub dmac: [u8; 6],
}

/// Routes `src` → `dst` (of `family`) as the kernel would forward a packet arriving on
/// `ifindex`, with the next hop's MAC from the neighbour table. The kernel answers only when
/// forwarding is enabled on that interface (LVS-NAT directors enable it, as in seed 001).
#[inline(always)]
pub fn forward_lookup(
    ctx: &XdpContext,
    ifindex: u32,
    family: u8,
    src: &Addr,
    dst: &Addr,
) -> Option<NextHop> {
    // SAFETY: bpf_fib_lookup is plain old data; all-zero is a valid starting point.
    let mut params: bpf_fib_lookup = unsafe { core::mem::zeroed() };
    params.family = family;
    params.ifindex = ifindex;
    if family == AF_INET6 {
        params.__bindgen_anon_3.ipv6_src = src.0;
        params.__bindgen_anon_4.ipv6_dst = dst.0;
    } else {
        params.__bindgen_anon_3.ipv4_src = src.ipv4();
        params.__bindgen_anon_4.ipv4_dst = dst.ipv4();
    }
    // SAFETY: the helper reads and writes `params`, whose size we pass.
    let rc = unsafe {
        fib_lookup(
            ctx.as_ptr(),
            &mut params,
            core::mem::size_of::<bpf_fib_lookup>() as i32,
            0,
        )
    };
    if rc as u32 != BPF_FIB_LKUP_RET_SUCCESS {
        return None;
    }
    Some(NextHop {
        ifindex: params.ifindex,
        smac: params.smac,
        dmac: params.dmac,
    })
}

/// Writes the Ethernet addresses and sends the frame out of `ifindex`: back out of the
/// interface it came in on (XDP_TX), or redirected to another of the director's NICs (those
/// lbd was started on, in `TX_PORTS`). A next hop behind any other interface is dropped and
/// counted (`drop_no_iface`): every NIC the director forwards through must be given to lbd.
#[inline(always)]
pub fn emit(
    ctx: &XdpContext,
    ifindex: u32,
    smac: [u8; 6],
    dmac: [u8; 6],
) -> Result<Verdict, Verdict> {
    let eth = ptr::at_mut::<EthHdr>(ctx, 0).ok_or_else(|| drop(Stat::DropMalformed))?;
    // SAFETY: `at_mut` checked that the Ethernet header lies within the packet.
    unsafe {
        (*eth).dst_addr = dmac;
        (*eth).src_addr = smac;
    }
    if ifindex == ctx.ingress_ifindex() as u32 {
        Ok(xdp_action::XDP_TX)
    } else {
        let verdict = TX_PORTS
            .redirect(ifindex, 0)
            .map_err(|_| drop(Stat::DropNoIface))?;
        stats::count(Stat::Redirect);
        Ok(verdict)
    }
}
