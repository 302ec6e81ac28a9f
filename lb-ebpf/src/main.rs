//! lb's XDP data path: IPVS-style layer-4 load balancing (LVS DR, TUN and NAT) on the
//! director's NIC. The entry, [`lb_xdp`], reads as the packet's journey: parse → maybe ours
//! (the pre-filter; a later fragment: its first fragment's flow, `frag`)? → for this host? →
//! connection table → (new flow: service lookup, may it open one?) → next stage, and each
//! stage finishes it: [`lb_schedule`] (a new connection), [`lb_route`], [`lb_tunnel`],
//! [`lb_masq`] (forwarding by method, one hop less), [`lb_masq_reply`] (NAT replies),
//! [`lb_icmp`] (ICMP errors about connections). Stages are tail-called through a program
//! array and hand over through a per-CPU value (`stage`).
//!
//! As in IPVS, the connection table is consulted before the service table, so established
//! connections keep flowing while their service is edited, deleted and re-created
//! (`ipvsadm -C` followed by `ipvsadm -R`).
//!
//! # The verifier's budget
//! Every program must verify in at most 1/8 of the kernel's limit of a million processed
//! instructions, on every supported kernel (6.1 up), with every feature on; the
//! `every_program_verifies_within_budget` fixture test reads the kernel's own count per
//! program and fails over budget. The verifier walks every path through a program, so its
//! work multiplies with the branches a path carries state across. To keep it small as the data path grows:
//! - a new concern is a new stage (a program of its own in `lb_common::stage`), not more
//!   branches in an existing one; stages hand over numbers through the carry, not pointers;
//! - loops are `bpf_loop` callbacks over small state (as `sched` and `locality` do), never
//!   unrolled, and never byte loops: initialise structs field by field (a `Default` or
//!   `mem::zeroed` may compile to a `memset` loop walked byte by byte);
//! - everything read is written first, padding included: kernels before 6.3 refuse reads of
//!   stack slots never written, and an enum with payloads shares slots between variants;
//! - run the fixtures on the kernel matrix (`cargo xtask test` does) and watch the counts.
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
mod frag;
mod icmp;
mod icmp6;
mod ip;
mod locality;
mod maps;
mod parse;
mod ptr;
mod relay;
mod sched;
mod stage;
mod stats;
mod sum;

use aya_ebpf::{bindings::xdp_action, macros::xdp, programs::XdpContext};
use lb_common::{Stat, stage::ICMP};

use crate::{conn::Hit, parse::Kind, parse::is_icmp, stage::jump};

/// What to do with the packet: an `xdp_action` value. Helpers return `Result<_, Verdict>` so
/// that `?` carries an early decision (pass to the kernel, drop) straight to the entry.
pub type Verdict = u32;

#[inline(always)]
fn verdict(result: Result<Verdict, Verdict>) -> u32 {
    match result {
        Ok(verdict) | Err(verdict) => verdict,
    }
}

/// The entry, attached to the director's NICs.
#[xdp]
pub fn lb_xdp(ctx: XdpContext) -> u32 {
    stats::count(Stat::Rx);
    verdict(process(&ctx))
}

#[inline(always)]
fn process(ctx: &XdpContext) -> Result<Verdict, Verdict> {
    let carry = stage::carry()?;
    let kind = parse::parse(ctx, &mut carry.packet, &mut carry.quote)?;
    match kind {
        // Most traffic that is not ours leaves here, at the cost of two bit tests.
        Kind::Flow if !maps::maybe_ours(&carry.packet.flow) => {
            return Err(pass(Stat::PassNotService));
        }
        Kind::Flow => {}
        // Only fragments of datagrams whose first fragment was ours are placed.
        Kind::LaterFragment => frag::resolve(&mut carry.packet)?,
        // ICMP errors are looked at by what they quote, not by their own addresses.
        Kind::IcmpError => {}
    }
    parse::for_this_host(ctx, carry)?;
    if kind == Kind::IcmpError {
        return Ok(jump(ctx, ICMP));
    }
    if carry.packet.fragment == stage::FIRST_FRAGMENT {
        frag::remember(&carry.packet);
    }
    let hit = conn::lookup(&mut carry.packet, &mut carry.conn, &mut carry.real)?;
    let packet = &carry.packet;
    match hit {
        Hit::Forward => {
            stats::account(carry.conn.service, carry.conn.real, packet.ip_len);
            if carry.real.method == lb_common::method::ROUTE {
                // The hot path: an established DR connection, finished here (a MAC rewrite
                // costs less than the tail call).
                return forward::route::forward(ctx, &carry.packet, &carry.real, &carry.ingress);
            }
            Ok(forward::to_real(ctx, carry.real.method))
        }
        Hit::Reply => {
            stats::account_reply(carry.conn.service, carry.conn.real, packet.ip_len);
            Ok(jump(ctx, lb_common::stage::MASQ_REPLY))
        }
        Hit::Miss => {
            carry.service = maps::lookup_service(&packet.flow)?;
            conn::may_open(packet)?;
            Ok(jump(
                ctx,
                if sched::by_locality(carry.service.scheduler) {
                    lb_common::stage::SCHEDULE_LOCALITY
                } else {
                    lb_common::stage::SCHEDULE
                },
            ))
        }
    }
}

/// A new connection: a real server for it, remembered in the connection table.
#[xdp]
pub fn lb_schedule(ctx: XdpContext) -> u32 {
    verdict(schedule(&ctx, sched::pick))
}

/// A new connection of an lblc or lblcr service.
#[xdp]
pub fn lb_schedule_locality(ctx: XdpContext) -> u32 {
    verdict(schedule(&ctx, sched::pick_by_locality))
}

#[inline(always)]
fn schedule(ctx: &XdpContext, pick: conn::Picker) -> Result<Verdict, Verdict> {
    let carry = stage::carry()?;
    conn::schedule(
        &carry.packet,
        &carry.service,
        &mut carry.conn,
        &mut carry.real,
        pick,
    )?;
    stats::account(carry.conn.service, carry.conn.real, carry.packet.ip_len);
    Ok(forward::to_real(ctx, carry.real.method))
}

/// Direct routing (`-g`).
#[xdp]
pub fn lb_route(ctx: XdpContext) -> u32 {
    verdict(stage::carry().and_then(|carry| {
        let verdict = forward::route::forward(&ctx, &carry.packet, &carry.real, &carry.ingress)?;
        relayed(&carry.packet);
        Ok(verdict)
    }))
}

/// Tunnelling (`-i`): IP-in-IP, GUE or GRE.
#[xdp]
pub fn lb_tunnel(ctx: XdpContext) -> u32 {
    verdict(stage::carry().and_then(|carry| {
        // Either family in an outer header of the real server's.
        let verdict = forward::tunnel::forward(&ctx, &carry.packet, &carry.real, &carry.ingress)?;
        relayed(&carry.packet);
        Ok(verdict)
    }))
}

/// NAT (`-m`), client to real server.
#[xdp]
pub fn lb_masq(ctx: XdpContext) -> u32 {
    verdict(stage::carry().and_then(|carry| {
        conn::keep_reply_entry(&carry.packet, &carry.conn, &carry.real);
        forward::nat::forward(&ctx, &carry.packet, &carry.real)
    }))
}

/// NAT, the real server's reply back to the client.
#[xdp]
pub fn lb_masq_reply(ctx: XdpContext) -> u32 {
    verdict(stage::carry().and_then(|carry| forward::nat::reply(&ctx, &carry.packet, &carry.conn)))
}

/// An ICMP error about a connection.
#[xdp]
pub fn lb_icmp(ctx: XdpContext) -> u32 {
    verdict(stage::carry().and_then(|carry| relay::relay(&ctx, carry)))
}

/// DR and TUN also carry ICMP errors relayed to a real server (`lb_icmp`): counted once they
/// are on their way.
#[inline(always)]
fn relayed(packet: &stage::Packet) {
    if is_icmp(packet.flow.proto) {
        stats::count(Stat::IcmpRelayed);
    }
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
