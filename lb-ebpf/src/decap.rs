//! The real-server side of LVS-TUN where the kernel has no `ipip` module (no `tunl0`): strip
//! the outer IPv4 header of IP-in-IP frames and hand the client's packet to the stack, which
//! then finds the VIP on `lo` as with `tunl0`. Everything else passes untouched.

use aya_ebpf::{
    EbpfContext as _, bindings::xdp_action, helpers::bpf_xdp_adjust_head, macros::xdp,
    programs::XdpContext,
};
use lb_common::Stat;
use network_types::{
    eth::{EthHdr, EtherType},
    ip::Ipv4Hdr,
};

use crate::{ptr, stats};

const IPPROTO_IPIP: u8 = 4;

#[xdp]
pub fn lb_decap(ctx: XdpContext) -> u32 {
    match decapsulate(&ctx) {
        Some(()) => {
            stats::count(Stat::Decap);
            xdp_action::XDP_PASS
        }
        None => xdp_action::XDP_PASS,
    }
}

#[inline(always)]
fn decapsulate(ctx: &XdpContext) -> Option<()> {
    let eth = ptr::at::<EthHdr>(ctx, 0)?;
    // SAFETY: `at` checked the Ethernet header.
    let eth = unsafe { *eth };
    if eth.ether_type != EtherType::Ipv4 as u16 {
        return None;
    }
    let outer = ptr::at::<Ipv4Hdr>(ctx, EthHdr::LEN)?;
    // SAFETY: `at` checked the outer IPv4 header.
    let outer = unsafe { *outer };
    // Only plain 20-byte outer headers, unfragmented, as the director sends them.
    if outer.proto != IPPROTO_IPIP
        || outer.vihl != 0x45
        || u16::from_be_bytes(outer.frags) & 0x3fff != 0
    {
        return None;
    }
    ptr::at::<Ipv4Hdr>(ctx, EthHdr::LEN + Ipv4Hdr::LEN)?;
    // Move the Ethernet header forward over the outer IP header, then drop the front.
    let moved = ptr::at_mut::<EthHdr>(ctx, Ipv4Hdr::LEN)?;
    // SAFETY: `at_mut` checked the destination; `eth` is a copy.
    unsafe { *moved = eth };
    // SAFETY: helper call on our own context; nothing is read through old pointers after it.
    if unsafe { bpf_xdp_adjust_head(ctx.as_ptr() as *mut _, Ipv4Hdr::LEN as i32) } != 0 {
        return None;
    }
    Some(())
}
