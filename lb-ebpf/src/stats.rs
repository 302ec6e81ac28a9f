//! Counters: data-path events by reason, and IPVS's per-service / per-real-server traffic
//! statistics. All per CPU (no atomics on the hot path); lbd sums them.

use lb_common::Stat;

use crate::maps::{DP_STATS, REAL_STATS, SERVICE_STATS};

#[inline(always)]
pub fn count(stat: Stat) {
    if let Some(counter) = DP_STATS.get_ptr_mut(stat as u32) {
        // SAFETY: per-CPU slot; nothing else on this CPU runs concurrently with us.
        unsafe { *counter += 1 };
    }
}

/// Account one inbound packet of `bytes` to a service and the real server it went to.
#[inline(always)]
pub fn account(service: u32, real: u32, bytes: u16) {
    if let Some(c) = SERVICE_STATS.get_ptr_mut(service) {
        // SAFETY: per-CPU slot, as above.
        unsafe {
            (*c).in_pkts += 1;
            (*c).in_bytes += u64::from(bytes);
        }
    }
    if let Some(c) = REAL_STATS.get_ptr_mut(real) {
        // SAFETY: per-CPU slot, as above.
        unsafe {
            (*c).in_pkts += 1;
            (*c).in_bytes += u64::from(bytes);
        }
    }
}

/// Account a newly scheduled connection.
#[inline(always)]
pub fn new_connection(service: u32, real: u32) {
    count(Stat::ConnNew);
    if let Some(c) = SERVICE_STATS.get_ptr_mut(service) {
        // SAFETY: per-CPU slot, as above.
        unsafe { (*c).conns += 1 };
    }
    if let Some(c) = REAL_STATS.get_ptr_mut(real) {
        // SAFETY: per-CPU slot, as above.
        unsafe { (*c).conns += 1 };
    }
}

/// Account one reply packet (NAT) of `bytes` going back to the client.
#[inline(always)]
pub fn account_reply(service: u32, real: u32, bytes: u16) {
    if let Some(c) = SERVICE_STATS.get_ptr_mut(service) {
        // SAFETY: per-CPU slot, as above.
        unsafe {
            (*c).out_pkts += 1;
            (*c).out_bytes += u64::from(bytes);
        }
    }
    if let Some(c) = REAL_STATS.get_ptr_mut(real) {
        // SAFETY: per-CPU slot, as above.
        unsafe {
            (*c).out_pkts += 1;
            (*c).out_bytes += u64::from(bytes);
        }
    }
}
