//! Sending a packet on to its real server, by the real server's forwarding method: each
//! method is a stage of its own (`lb_route`, `lb_tunnel`, `lb_masq`), so that the verifier
//! checks each once rather than once per way of reaching it.

pub mod nat;
pub mod route;
pub mod tunnel;

use aya_ebpf::programs::XdpContext;
use lb_common::{Stat, method, stage};

use crate::{Verdict, drop, stage::jump};

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
