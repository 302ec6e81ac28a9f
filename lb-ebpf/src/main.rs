//! lb's XDP data path: IPVS-style layer-4 load balancing (LVS DR, TUN and NAT) on the
//! director's NIC. One entry, [`lb_xdp`], reads as the packet's journey:
//! parse → for this host? → connection table → (new flow: service lookup → schedule) → forward.
//!
//! As in IPVS, the connection table is consulted before the service table, so established
//! connections keep flowing while their service is edited, deleted and re-created
//! (`ipvsadm -C` followed by `ipvsadm -R`).
#![no_std]
#![no_main]
// The BPF target's core has no atomic read-modify-write methods; see `sched`.
#![expect(
    internal_features,
    reason = "atomic fetch-add intrinsic for the BPF target"
)]
#![feature(core_intrinsics)]

mod conn;
mod counts;
mod decap;
mod fib;
mod forward;
mod icmp;
mod ip;
mod locality;
mod maps;
mod parse;
mod ptr;
mod relay;
mod sched;
mod stats;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use lb_common::Stat;

/// What to do with the packet: an `xdp_action` value. Helpers return `Result<_, Verdict>` so
/// that `?` carries an early decision (pass to the kernel, drop) straight to the entry.
pub type Verdict = u32;

#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    stats::count(Stat::Rx);
    match process(&ctx) {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

#[inline(always)]
fn process(ctx: &XdpContext) -> Result<Verdict, Verdict> {
    let parsed = parse::parse(ctx)?;
    parse::for_this_host(ctx)?;
    let packet = match parsed {
        parse::Parsed::Flow(packet) => packet,
        parse::Parsed::IcmpError(err) => return relay::relay(ctx, &err),
    };
    let (conn, real) = match conn::lookup(&packet) {
        Some(conn::Hit::Forward(conn, real)) => (conn, real),
        Some(conn::Hit::Reply(conn)) => {
            stats::account_reply(conn.service, conn.real, packet.ip_len);
            return forward::nat::reply(ctx, &packet, &conn);
        }
        None => {
            let service = maps::lookup_service(&packet.flow)?;
            conn::schedule(&packet, &service)?
        }
    };
    stats::account(conn.service, conn.real, packet.ip_len);
    forward::to_real(ctx, &packet, &real)
}

/// Hand the packet to the kernel untouched, counting why.
#[inline(always)]
pub fn pass(reason: Stat) -> Verdict {
    stats::count(reason);
    xdp_action::XDP_PASS
}

/// Drop the packet, counting why.
#[inline(always)]
pub fn drop(reason: Stat) -> Verdict {
    stats::count(reason);
    xdp_action::XDP_DROP
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
