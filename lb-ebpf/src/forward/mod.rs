//! Sending a packet on to its real server, by the real server's forwarding method.

mod route;

use aya_ebpf::programs::XdpContext;
use lb_common::{RealServer, Stat, method};

use crate::{Verdict, drop};

#[inline(always)]
pub fn to_real(ctx: &XdpContext, real: &RealServer) -> Result<Verdict, Verdict> {
    match real.method {
        method::ROUTE => route::forward(ctx, real),
        _ => Err(drop(Stat::DropUnsupported)),
    }
}
