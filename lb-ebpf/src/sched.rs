//! Choosing a real server for a new connection. User space precomputes each service's
//! scheduling table (the IPVS weighted round-robin sequence, hash buckets, ...); the data path
//! only walks or indexes it, so a table is always read whole and consistent.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use lb_common::Service;

use crate::maps::{SCHED_TABLE, SERVICE_STATE};

/// The next real server id for `service`, or `None` when none can take new connections.
#[inline(always)]
pub fn pick(service: &Service) -> Option<u32> {
    if service.table_len == 0 {
        return None;
    }
    let state = SERVICE_STATE.get_ptr_mut(service.id)?;
    // SAFETY: the pointer is to a live array element; the shared round-robin position is
    // advanced atomically so concurrent CPUs take consecutive slots, as IPVS's locked walk does.
    // (core's AtomicU64 has no fetch_add on the BPF target, so the intrinsic is used. It must
    // be SeqCst: with Relaxed, LLVM's BPF backend emits a plain locked add without FETCH and
    // the "old value" we read back is just the addend.)
    let position = unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*state).rr_position, 1)
    };
    let slot = service.table_offset + (position % u64::from(service.table_len)) as u32;
    match SCHED_TABLE.get(slot) {
        Some(&id) if id != 0 => Some(id),
        _ => None,
    }
}
