//! Choosing a real server for a new connection, as IPVS's schedulers do.
//!
//! User space precomputes each service's table in the shared slot array: the weighted
//! round-robin sequence (rr, wrr), sh/dh buckets, the Maglev lookup table (mh), or simply the
//! available real servers (the connection-count schedulers). The data path walks the first,
//! indexes the hashing ones with the packet's hash, and for lc, wlc, sed, nq, fo and ovf
//! compares the live connection counts of the listed real servers with IPVS's formulas. lblc
//! and lblcr remember per destination address where its connections went (`locality`) and
//! fall back to wlc over the table. Real servers over their upper threshold (`-x`) are skipped
//! everywhere.

use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_xadd},
};

use aya_ebpf::{helpers::bpf_loop, macros::map, maps::PerCpuArray};
use lb_common::{
    FlowKey, MAX_SCAN, SERVICE_F_HASH_FALLBACK, SERVICE_F_HASH_PORT, Service, ServiceState, hash,
    scheduler,
};

use crate::{
    counts, locality,
    maps::{self, SCHED_TABLE, SERVICE_STATE},
};

/// The real server id for a new flow of `service` (at `now`, the coarse clock), or `None`
/// when none can take it. lblc and lblcr are [`pick_by_locality`]'s, in a stage of their own.
///
/// The table schedulers point at one slot first: rr and wrr the next position of the sequence,
/// sh, dh and mh the packet's bucket. If its real server cannot take the connection, rr and
/// wrr walk on to the next one that can, and so do sh and mh with `-b sh-fallback` /
/// `mh-fallback` (IPVS finds none otherwise; the table already carries the fallback for
/// servers that are down or quiescent). The connection-count schedulers walk the whole table.
/// There is one walk in the program, whichever scheduler asks for it: the verifier checks a
/// `bpf_loop` callback once per call site.
#[inline(always)]
pub fn pick(service: &Service, flow: &FlowKey, _now: u64) -> Option<u32> {
    let len = service.table_len;
    if len == 0 {
        return None;
    }
    let with_port = service.flags & SERVICE_F_HASH_PORT != 0;
    let fallback = if service.flags & SERVICE_F_HASH_FALLBACK != 0 {
        scheduler::RR
    } else {
        NO_WALK
    };
    let mut rr_state = core::ptr::null_mut::<ServiceState>();
    // The slot to try first (or to start the walk at), and the walk if that one cannot.
    let (index, walk) = match service.scheduler {
        scheduler::SH => (
            hash::sh_bucket(flow.saddr.fold(), flow.sport, with_port),
            fallback,
        ),
        scheduler::DH => (hash::dh_bucket(flow.daddr.fold()), fallback),
        scheduler::MH => (
            hash::mh_index(flow.saddr.fold(), flow.sport, with_port),
            fallback,
        ),
        scheduler::RR | scheduler::WRR => {
            rr_state = SERVICE_STATE.get_ptr_mut(service.id)?;
            (next_position(rr_state, len), scheduler::RR)
        }
        other => (0, other),
    };
    let start = index.checked_rem(len).unwrap_or(0);
    if matches!(
        service.scheduler,
        scheduler::SH | scheduler::DH | scheduler::MH | scheduler::RR | scheduler::WRR
    ) {
        let id = slot(service, start);
        if id != 0 && available(id) {
            return Some(id);
        }
        if walk == NO_WALK {
            return None;
        }
    }
    let mut scan = Scan::new(service, walk, start);
    run(&mut scan);
    if scan.best == 0 {
        return None;
    }
    if !rr_state.is_null() {
        // IPVS continues after the server it picked: move on past the ones skipped as well,
        // so the next server does not get a double share while one is overloaded.
        // SAFETY: a live array element (see `next_position`).
        unsafe {
            atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(
                &raw mut (*rr_state).rr_position,
                u64::from(scan.found_at),
            );
        }
    }
    Some(scan.best)
}

/// "No walk": the scheduler's slot or nothing.
const NO_WALK: u32 = u32::MAX;

/// rr, wrr: the service's next position in its sequence.
#[inline(always)]
fn next_position(state: *mut ServiceState, len: u32) -> u32 {
    // SAFETY: `state` points to a live array element; the shared round-robin position is
    // advanced atomically so concurrent CPUs take consecutive slots, as IPVS's locked walk does.
    // (core's AtomicU64 has no fetch_add on the BPF target, so the intrinsic is used. It must
    // be SeqCst: with Relaxed, LLVM's BPF backend emits a plain locked add without FETCH and
    // the "old value" we read back is just the addend.)
    let position = unsafe {
        atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*state).rr_position, 1)
    };
    position.checked_rem(u64::from(len)).unwrap_or(0) as u32
}

/// lblc, lblcr: the locality table's suggestion, else wlc; the table learns the choice. (Ids,
/// 0 for none: see `locality` on Options.)
#[inline(always)]
pub fn pick_by_locality(service: &Service, flow: &FlowKey, now: u64) -> Option<u32> {
    if service.table_len == 0 {
        return None;
    }
    let mut id = locality::suggest(service, &flow.daddr, now);
    if id == 0 {
        id = least_loaded_id(service, scheduler::WLC);
    }
    locality::learn(service, &flow.daddr, now, id);
    (id != 0).then_some(id)
}

/// Whether a service's scheduler is [`pick_by_locality`]'s.
#[inline(always)]
pub fn by_locality(scheduler: u32) -> bool {
    scheduler == scheduler::LBLC || scheduler == scheduler::LBLCR
}

/// The id in slot `index` of the service's table (0 = empty).
#[inline(always)]
fn slot(service: &Service, index: u32) -> u32 {
    let slot = service.table_offset + index.checked_rem(service.table_len).unwrap_or(0);
    SCHED_TABLE.get(slot).copied().unwrap_or(0)
}

/// Whether real server `id` can take a new connection now.
#[inline(always)]
fn available(id: u32) -> bool {
    match maps::real(id) {
        Some(real) => !counts::overloaded(id, &real),
        None => false,
    }
}

/// lc, wlc, sed, nq, fo, ovf: the listed real server that `scheduler`'s formula prefers, 0
/// for none.
#[inline(always)]
fn least_loaded_id(service: &Service, scheduler: u32) -> u32 {
    let mut scan = Scan::new(service, scheduler, 0);
    run(&mut scan);
    scan.best
}

/// State of a walk over a service's table, shared with the `bpf_loop` callback through a
/// per-CPU map value ([`WALK`]) rather than the stack: kernels before 6.7 verify a callback
/// as if it ran once, from the caller's exact state, and rewrite the branches that state
/// decides (`best == 0` would then hold on every step). Read from a map, the state is unknown
/// to the verifier and every branch stays.
#[repr(C)]
struct Scan {
    offset: u32,
    len: u32,
    scheduler: u32,
    start: u32,
    best: u32,
    /// Step at which `best` was found (rr: how many slots were passed over).
    found_at: u32,
    best_overhead: u64,
    best_weight: u64,
}

impl Scan {
    #[inline(always)]
    fn new(service: &Service, scheduler: u32, start: u32) -> Self {
        Scan {
            offset: service.table_offset,
            len: service.table_len,
            scheduler,
            start,
            best: 0,
            found_at: 0,
            best_overhead: 0,
            best_weight: 0,
        }
    }
}

/// This CPU's walk (an XDP run has its CPU to itself).
#[map]
static WALK: PerCpuArray<Scan> = PerCpuArray::with_max_entries(1, 0);

/// Runs the walk `scan` describes, and leaves its outcome in it.
#[inline(always)]
fn run(scan: &mut Scan) {
    let Some(slot) = WALK.get_ptr_mut(0) else {
        scan.best = 0;
        return;
    };
    let steps = if scan.len < MAX_SCAN {
        scan.len
    } else {
        MAX_SCAN
    };
    // SAFETY: this CPU's slot; the callback finds it itself (no context), bpf_loop bounds the
    // iterations, and no reference to the slot lives across the call.
    unsafe {
        slot.write(Scan { ..*scan });
        bpf_loop(steps, scan_step as *mut c_void, core::ptr::null_mut(), 0);
        *scan = slot.read();
    }
}

/// One real server of the walk; returns 1 to stop.
#[inline(never)]
extern "C" fn scan_step(i: u32, _ctx: *mut c_void) -> i64 {
    let Some(slot) = WALK.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's slot, written by `run` before the loop.
    let scan = unsafe { &mut *slot };
    if scan.len == 0 {
        return 1;
    }
    let index = (scan.start + i).checked_rem(scan.len).unwrap_or(0);
    let Some(&id) = SCHED_TABLE.get(scan.offset + index) else {
        return 1;
    };
    let Some(real) = maps::real(id) else {
        return 0;
    };
    if real.weight == 0 || counts::overloaded(id, &real) {
        return 0;
    }
    let conns = counts::of(id);
    let active = conns.total_active() as u64;
    let weight = u64::from(real.weight);
    let overhead = counts::overhead(&conns);
    let better = match scan.scheduler {
        scheduler::RR | scheduler::WRR => {
            // First available one from the current position.
            scan.best = id;
            scan.found_at = i;
            return 1;
        }
        scheduler::LC => scan.best == 0 || overhead < scan.best_overhead,
        scheduler::NQ if active == 0 => {
            // Never queue: an idle server takes it at once.
            scan.best = id;
            return 1;
        }
        scheduler::SED | scheduler::NQ => {
            // Shortest expected delay: (active + 1) / weight, compared without division.
            let delay = active + 1;
            let better = scan.best == 0 || delay * scan.best_weight < scan.best_overhead * weight;
            if better {
                scan.best = id;
                scan.best_overhead = delay;
                scan.best_weight = weight;
            }
            return 0;
        }
        scheduler::FO => scan.best == 0 || weight > scan.best_weight,
        // IPVS (ip_vs_ovf.c) passes over a server only once its active connections exceed
        // its weight.
        scheduler::OVF => active <= weight && (scan.best == 0 || weight > scan.best_weight),
        // wlc: overhead / weight, compared without division.
        _ => scan.best == 0 || overhead * scan.best_weight < scan.best_overhead * weight,
    };
    if better {
        scan.best = id;
        scan.best_overhead = overhead;
        scan.best_weight = weight;
    }
    0
}
