//! Counters: data-path events by reason, and IPVS's per-service / per-real-server traffic
//! statistics. All per CPU (no atomics on the hot path); lbd sums them.

use lb_common::{Counters, Stat};

use crate::maps::{DP_STATS, REAL_STATS, SERVICE_STATS};

#[inline(always)]
pub fn count(stat: Stat) {
    if let Some(counter) = DP_STATS.get_ptr_mut(stat as u32) {
        // SAFETY: per-CPU slot; nothing else on this CPU runs concurrently with us.
        unsafe { *counter += 1 };
    }
}

/// Applies `update` to the counters of the service and of the real server.
#[inline(always)]
fn both(service: u32, real: u32, update: impl Fn(&mut Counters)) {
    if let Some(c) = SERVICE_STATS.get_ptr_mut(service) {
        // SAFETY: per-CPU slot, as above.
        update(unsafe { &mut *c });
    }
    if let Some(c) = REAL_STATS.get_ptr_mut(real) {
        // SAFETY: per-CPU slot, as above.
        update(unsafe { &mut *c });
    }
}

/// One packet of `bytes` from the client to the real server (IPVS's InPkts/InBytes).
#[inline(always)]
pub fn account(service: u32, real: u32, bytes: u16) {
    both(service, real, |c| {
        c.in_pkts += 1;
        c.in_bytes += u64::from(bytes);
    });
}

/// One reply packet (NAT) of `bytes` back to the client (OutPkts/OutBytes).
#[inline(always)]
pub fn account_reply(service: u32, real: u32, bytes: u16) {
    both(service, real, |c| {
        c.out_pkts += 1;
        c.out_bytes += u64::from(bytes);
    });
}

/// A newly scheduled connection (Conns).
#[inline(always)]
pub fn new_connection(service: u32, real: u32) {
    count(Stat::ConnNew);
    both(service, real, |c| c.conns += 1);
}
