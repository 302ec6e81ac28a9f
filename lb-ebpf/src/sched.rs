//! Choosing a real server for a new connection. User space precomputes each service's
//! scheduling table (the IPVS weighted round-robin sequence, sh/dh buckets, the Maglev
//! lookup table); the data path only walks it (rr, wrr) or indexes it with a hash of the
//! packet (sh, dh, mh), so a table is always read whole and consistent.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use lb_common::{FlowKey, SERVICE_F_HASH_PORT, Service, hash, scheduler};

use crate::maps::{SCHED_TABLE, SERVICE_STATE};

/// The real server id for a new flow of `service`, or `None` when none can take it.
#[inline(always)]
pub fn pick(service: &Service, flow: &FlowKey) -> Option<u32> {
    if service.table_len == 0 {
        return None;
    }
    let with_port = service.flags & SERVICE_F_HASH_PORT != 0;
    let index = match service.scheduler {
        scheduler::SH => hash::sh_bucket(flow.saddr, flow.sport, with_port),
        scheduler::DH => hash::dh_bucket(flow.daddr),
        scheduler::MH => hash::mh_index(flow.saddr, flow.sport, with_port),
        _ => next_position(service)?,
    };
    let slot = service.table_offset + index % service.table_len;
    match SCHED_TABLE.get(slot) {
        Some(&id) if id != 0 => Some(id),
        _ => None,
    }
}

/// Advances the service's round-robin position; returns the one to use.
#[inline(always)]
fn next_position(service: &Service) -> Option<u32> {
    let state = SERVICE_STATE.get_ptr_mut(service.id)?;
    // SAFETY: the pointer is to a live array element; the shared round-robin position is
    // advanced atomically so concurrent CPUs take consecutive slots, as IPVS's locked walk does.
    // (core's AtomicU64 has no fetch_add on the BPF target, so the intrinsic is used. It must
    // be SeqCst: with Relaxed, LLVM's BPF backend emits a plain locked add without FETCH and
    // the "old value" we read back is just the addend.)
    let position = unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*state).rr_position, 1)
    };
    Some((position % u64::from(service.table_len)) as u32)
}
