//! Sending a packet on to its real server, by the real server's forwarding method.

pub mod nat;
mod route;
mod tunnel;

use aya_ebpf::programs::XdpContext;
use lb_common::{RealServer, Stat, method};

use crate::{Verdict, drop, parse::Packet};

#[inline(always)]
pub fn to_real(ctx: &XdpContext, packet: &Packet, real: &RealServer) -> Result<Verdict, Verdict> {
    match real.method {
        method::ROUTE => route::forward(ctx, real),
        method::TUNNEL => tunnel::forward(ctx, packet, real),
        method::MASQ => nat::forward(ctx, packet, real),
        _ => Err(drop(Stat::DropUnsupported)),
    }
}
