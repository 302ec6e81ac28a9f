//! lblc and lblcr, IPVS's locality-based schedulers (`ip_vs_lblc.c`, `ip_vs_lblcr.c`): new
//! connections to one destination address keep going to the same real server (lblc) or set of
//! real servers (lblcr) while it is not overloaded, so a cache cluster keeps each destination's
//! content on few caches. Otherwise wlc over the whole service decides, and the table learns
//! the choice. `sched::pick` asks [`suggest`], runs wlc if there is no suggestion, and tells
//! [`learn`].
//!
//! "Overloaded" is IPVS's test for these two schedulers (its `is_overloaded`, not the `-x`
//! threshold flag of [`counts::overloaded`]): the real server has more active connections than
//! its weight while some real server of the service has fewer than half of its own.
//!
//! The table ([`LOCALITY`]) is keyed by service and destination address. Its real-server ids
//! are only trusted after a check on every read (ids are reused after deletion); an entry
//! unused for [`LOCALITY_EXPIRATION_NS`] counts as absent (IPVS's `lblc_expiration` and
//! `lblcr_expiration`, 24 hours by default); lbd's sweep deletes such entries, and those of
//! services that are gone or no longer scheduled by lblc/lblcr.
//!
//! IPVS changes its tables under a per-service lock. Here an entry is copied, changed and
//! written back whole (an LRU hash update replaces the element atomically), so a reader never
//! sees half a set; two CPUs changing the same entry at once keep the last writer's version.
//!
//! For the verifier: [`suggest`] and [`learn`] each run as the single step of a `bpf_loop`
//! and hand over through a per-CPU scratch value ([`SCRATCH`]; an XDP run has its CPU to
//! itself), and the loops over an lblcr set are `bpf_loop`s too. The program after them sees
//! one unknown result instead of a path per way it was reached, which keeps the verifier's
//! work about what it is without lblc/lblcr (and the set does not crowd the 512-byte stack).
use core::{ffi::c_void, ptr};

use aya_ebpf::{helpers::bpf_loop, macros::map, maps::PerCpuArray};
use lb_common::{
    Addr, LOCALITY_EXPIRATION_NS, LOCALITY_SET_SIZE, Locality, LocalityKey, MAX_SCAN,
    REAL_F_REMOVED, RealServer, Service, SetEdit, elapsed_ns, scheduler,
};

use crate::{
    counts,
    maps::{self, LOCALITY, SCHED_TABLE},
};

/// `last_use_ns` is refreshed at most this often, so that busy destinations do not write
/// their shared entry on every new connection.
const TOUCH_INTERVAL_NS: u64 = 1_000_000_000;

/// What [`suggest`] leaves for [`learn`] (per CPU: a program run has it to itself).
#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
struct Scratch {
    plan: Plan,
    /// lblcr: the set, and the change planned for it.
    edit: SetEdit,
    walk: SetWalk,
}

/// What [`suggest`] found, for [`learn`] (real-server ids, 0: none).
#[repr(C)]
#[derive(Default)]
struct Plan {
    /// The table has a live entry for the destination.
    found: u32,
    /// lblc: the real server the entry names, usable or not.
    remembered: u32,
    /// The table's suggestion, and its weight.
    suggested: u32,
    weight: u32,
}

/// The table's suggestion for a new connection of `service` to `daddr`, if IPVS would take
/// it: lblc's real server for the destination, lblcr's least loaded member of its set (IPVS's
/// `ip_vs_dest_set_min`), if it can take the connection and is not overloaded (IPVS's
/// `is_overloaded`). 0 for none: the caller asks wlc, then tells [`learn`] either way.
///
/// Ids are passed as plain integers (0: none), not Options: the verifier refuses reads of an
/// Option's undefined payload, which comparisons of Options may compile to.
///
#[inline(always)]
pub fn suggest(service: &Service, daddr: &Addr, now: u64) -> u32 {
    let mut request = Request::new(service, daddr, now, 0);
    request.run(suggest_step);
    request.pick
}

/// The table learns the choice `pick` (0: none) for `daddr`, after [`suggest`] in the same
/// program run: lblc remembers it in place of its old real server; lblcr adds it to the set
/// unless it was the set's suggestion, and a set of more than one member that has not changed
/// for the expiration time drops its most loaded member (IPVS's `ip_vs_dest_set_max`; IPVS
/// does this before the overload test, which it does not affect).
#[inline(always)]
pub fn learn(service: &Service, daddr: &Addr, now: u64, pick: u32) {
    let mut request = Request::new(service, daddr, now, pick);
    request.run(learn_step);
}

/// What [`suggest`] and [`learn`] hand their `bpf_loop` step.
#[repr(C)]
struct Request {
    key: LocalityKey,
    service: Service,
    now: u64,
    /// The real server suggested or chosen; 0 for none.
    pick: u32,
    _pad: u32,
}

impl Request {
    #[inline(always)]
    fn new(service: &Service, daddr: &Addr, now: u64, pick: u32) -> Self {
        Request {
            key: LocalityKey {
                service: service.id,
                daddr: *daddr,
            },
            service: *service,
            now,
            pick,
            _pad: 0,
        }
    }

    #[inline(always)]
    fn run(&mut self, step: extern "C" fn(u32, *mut c_void) -> i64) {
        // SAFETY: the callback only dereferences `ctx` as this `Request`, which outlives the
        // call; one iteration.
        unsafe {
            bpf_loop(1, step as *mut c_void, (self as *mut Request).cast(), 0);
        }
    }
}

#[inline(never)]
extern "C" fn suggest_step(_i: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Request` passed to bpf_loop by `Request::run`.
    let request = unsafe { &mut *(ctx as *mut Request) };
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    find(request, scratch);
    // SAFETY: this CPU's scratch value; no other reference to it is live.
    let plan = unsafe { &(*scratch).plan };
    if plan.suggested != 0 && !is_overloaded(&request.service, plan.suggested, plan.weight) {
        request.pick = plan.suggested;
    }
    1
}

#[inline(never)]
extern "C" fn learn_step(_i: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `Request` passed to bpf_loop by `Request::run`.
    let request = unsafe { &*(ctx as *mut Request) };
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch value; no other reference to it is live.
    let plan = unsafe { &(*scratch).plan };
    let pick = request.pick;
    if plan.found == 0 || request.service.scheduler != scheduler::LBLCR {
        // IPVS keeps an lblc entry that already names the real server (`ip_vs_lblc_new`).
        if pick != 0 && pick != plan.remembered {
            // A full table only costs locality, never the connection.
            let _ = LOCALITY.insert(&request.key, &Locality::single(pick, request.now), 0);
        }
        return 1;
    }
    let suggested = plan.suggested;
    learn_set(scratch, &request.key, request.now, suggested, pick);
    1
}

// The scratch value is passed around as a raw pointer, and references to it never live across
// a `run_loop`: its steps write the same value, and a live `&mut` would let the compiler assume
// the loop leaves it unchanged.

/// What the table has for the destination, into the scratch's plan (and lblcr's set, walked,
/// into its edit).
#[inline(always)]
fn find(request: &Request, scratch: *mut Scratch) {
    let service = &request.service;
    let entry = live_entry(&request.key, request.now);
    // SAFETY: this CPU's scratch value; the references end before the loop below.
    let replicated = unsafe {
        let scratch = &mut *scratch;
        scratch.plan = Plan::default();
        let Some(entry) = entry else {
            return;
        };
        scratch.plan.found = 1;
        if service.scheduler != scheduler::LBLCR {
            // A live LRU hash value, valid for this run.
            let id = (*entry).reals[0];
            scratch.plan.remembered = id;
            if let Some(real) = usable(service, id) {
                scratch.plan.suggested = id;
                scratch.plan.weight = real.weight;
            }
            false
        } else {
            // As above.
            scratch.edit.set = *entry;
            scratch.walk.start(service, &scratch.edit.set);
            true
        }
    };
    if replicated {
        run_loop(LOCALITY_SET_SIZE as u32, set_walk_step);
        // SAFETY: as above, after the loop.
        let scratch = unsafe { &mut *scratch };
        scratch.plan.suggested = scratch.walk.least;
        scratch.plan.weight = scratch.walk.least_weight;
    }
}

/// lblcr's changes to a live set after the choice: `pick` joins it unless it was the set's
/// own `suggested` member, and the shrink; then the set is written back if anything changed
/// (the walk may also have dropped stale members).
#[inline(always)]
fn learn_set(scratch: *mut Scratch, key: &LocalityKey, now: u64, suggested: u32, pick: u32) {
    // SAFETY: this CPU's scratch value; the reference ends before the loop below.
    let (pruned, planned) = unsafe {
        let scratch = &mut *scratch;
        let walk = &scratch.walk;
        let pruned = walk.kept != walk.len;
        let shrink = if walk.kept > 1
            && elapsed_ns(now, scratch.edit.set.last_mod_ns) > LOCALITY_EXPIRATION_NS
        {
            walk.most()
        } else {
            None
        };
        let add = if pick != 0 && pick != suggested {
            Some(pick)
        } else {
            None
        };
        // lb bounds the set: when it is full, the most loaded member (else the oldest) makes
        // room.
        let evict = walk.most().unwrap_or(0);
        scratch.edit.plan(shrink, add, evict);
        (pruned, shrink.is_some() || add.is_some())
    };
    let edited = planned && {
        run_loop(SetEdit::STEPS, set_edit_step);
        // SAFETY: as above, after the loop.
        unsafe { (*scratch).edit.finish() }
    };
    // SAFETY: as above.
    let edit = unsafe { &mut (*scratch).edit };
    if edited {
        edit.set.last_mod_ns = now;
    }
    if pruned || edited {
        edit.set.last_use_ns = now;
        let _ = LOCALITY.insert(key, &edit.set, 0);
    }
}

/// Runs `step` for `0..steps` (until it returns 1) on this CPU's [`SCRATCH`].
#[inline(always)]
fn run_loop(steps: u32, step: extern "C" fn(u32, *mut c_void) -> i64) {
    // SAFETY: the callbacks take no context (they find the scratch value themselves);
    // bpf_loop bounds the iterations.
    unsafe {
        bpf_loop(steps, step as *mut c_void, ptr::null_mut(), 0);
    }
}

/// The entry for `key` unless it is missing or expired, its last use set to `now` (at most
/// once a second).
#[inline(always)]
fn live_entry(key: &LocalityKey, now: u64) -> Option<*mut Locality> {
    let entry = LOCALITY.get_ptr_mut(key)?;
    // SAFETY: LRU hash values stay valid for the program's run (RCU); a concurrent update
    // replaces the element rather than writing into it, and the timestamp store is a plain
    // aligned 8-byte write that races benignly.
    unsafe {
        let idle = elapsed_ns(now, (*entry).last_use_ns);
        if idle >= LOCALITY_EXPIRATION_NS {
            return None;
        }
        if idle > TOUCH_INTERVAL_NS {
            (*entry).last_use_ns = now;
        }
    }
    Some(entry)
}

/// Real server `id` if it is one of `service`'s and can take a new connection.
#[inline(always)]
fn usable(service: &Service, id: u32) -> Option<&'static RealServer> {
    maps::real(id).filter(|real| real.service == service.id && available(id, real))
}

/// Whether real server `id` can take a new connection: not removed (`-d`), not quiesced
/// (weight 0), not over its `-x` threshold.
#[inline(always)]
fn available(id: u32, real: &RealServer) -> bool {
    real.flags & REAL_F_REMOVED == 0 && real.weight != 0 && !counts::overloaded(id, real)
}

/// IPVS's lblc/lblcr `is_overloaded`: real server `id` (of `weight`) has more active
/// connections than its weight while some real server of the service has fewer than half of
/// its own.
#[inline(always)]
fn is_overloaded(service: &Service, id: u32, weight: u32) -> bool {
    let active = counts::of(id).total_active() as u64;
    active > u64::from(weight) && some_half_idle(service)
}

/// One pass over an lblcr set ([`Scratch::edit`]'s): drops members that are no longer real
/// servers of the service (ids are reused), and finds the least loaded usable member (IPVS's
/// `ip_vs_dest_set_min`) and the most loaded member with a weight (`ip_vs_dest_set_max`:
/// removed and overloaded members count, quiesced ones do not). Both compare wlc's overhead /
/// weight. IPVS walks its sets newest first and keeps the first of equals; walking oldest
/// first and letting an equal replace gives the same answer: the newest of equals.
#[repr(C)]
struct SetWalk {
    /// Members before the walk, and kept so far (the set is compacted in place).
    len: u32,
    kept: u32,
    service: u32,
    /// Least loaded usable member (0: none) and its weight.
    least: u32,
    least_weight: u32,
    /// Index (in the compacted set) of the most loaded member; `u32::MAX`: none.
    most: u32,
    least_overhead: u64,
    most_overhead: u64,
    most_weight: u64,
}

impl SetWalk {
    #[inline(always)]
    fn start(&mut self, service: &Service, set: &Locality) {
        self.len = set.len() as u32;
        self.kept = 0;
        self.service = service.id;
        self.least = 0;
        self.least_weight = 0;
        self.most = u32::MAX;
        self.least_overhead = 0;
        self.most_overhead = 0;
        self.most_weight = 0;
    }

    #[inline(always)]
    fn most(&self) -> Option<usize> {
        (self.most != u32::MAX).then_some(self.most as usize)
    }
}

/// One member of the set in this CPU's [`SCRATCH`]; returns 1 to stop.
#[inline(never)]
extern "C" fn set_walk_step(i: u32, _ctx: *mut c_void) -> i64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch value, used by this program run only.
    let (walk, set) = unsafe { (&mut (*scratch).walk, &mut (*scratch).edit.set) };
    if i >= walk.len {
        return 1;
    }
    let index = i as usize;
    let Some(&id) = set.reals.get(index) else {
        return 1;
    };
    if let Some(real) = maps::real(id).filter(|real| real.service == walk.service) {
        let at = walk.kept;
        if let Some(slot) = set.reals.get_mut(at as usize) {
            *slot = id;
        }
        walk.kept += 1;
        let overhead = counts::overhead(&counts::of(id));
        let weight = u64::from(real.weight);
        if weight > 0
            && (walk.most == u32::MAX || walk.most_overhead * weight <= overhead * walk.most_weight)
        {
            walk.most = at;
            walk.most_overhead = overhead;
            walk.most_weight = weight;
        }
        if available(id, &real)
            && (walk.least == 0
                || walk.least_overhead * weight >= overhead * u64::from(walk.least_weight))
        {
            walk.least = id;
            walk.least_weight = real.weight;
            walk.least_overhead = overhead;
        }
    }
    // A slot the compacted set no longer reaches is cleared.
    if index >= walk.kept as usize
        && let Some(slot) = set.reals.get_mut(index)
    {
        *slot = 0;
    }
    set.len = walk.kept;
    0
}

/// One step of the [`SetEdit`] in this CPU's [`SCRATCH`]; returns 1 to stop.
#[inline(never)]
extern "C" fn set_edit_step(i: u32, _ctx: *mut c_void) -> i64 {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: this CPU's scratch value, used by this program run only.
    let edit = unsafe { &mut (*scratch).edit };
    if edit.step(i) { 0 } else { 1 }
}

/// Whether some real server in the service's table has fewer active connections than half
/// its weight (`active * 2 < weight`), whatever its threshold flag.
#[inline(always)]
fn some_half_idle(service: &Service) -> bool {
    let mut walk = HalfIdleWalk {
        offset: service.table_offset,
        len: service.table_len,
        found: 0,
    };
    let steps = if walk.len < MAX_SCAN {
        walk.len
    } else {
        MAX_SCAN
    };
    // SAFETY: the callback only dereferences `ctx` as the `HalfIdleWalk` we pass, which
    // outlives the call; bpf_loop bounds the iterations.
    unsafe {
        bpf_loop(
            steps,
            half_idle_step as *mut c_void,
            (&mut walk as *mut HalfIdleWalk).cast(),
            0,
        );
    }
    walk.found != 0
}

/// State of [`some_half_idle`]'s walk, shared with the `bpf_loop` callback.
#[repr(C)]
struct HalfIdleWalk {
    offset: u32,
    len: u32,
    found: u32,
}

/// One real server of the walk; returns 1 to stop.
#[inline(never)]
extern "C" fn half_idle_step(i: u32, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `HalfIdleWalk` passed to bpf_loop by `some_half_idle`.
    let walk = unsafe { &mut *(ctx as *mut HalfIdleWalk) };
    if i >= walk.len {
        return 1;
    }
    let Some(&id) = SCHED_TABLE.get(walk.offset + i) else {
        return 1;
    };
    let Some(real) = maps::real(id) else {
        return 0;
    };
    let active = counts::of(id).total_active() as u64;
    if active * 2 < u64::from(real.weight) {
        walk.found = 1;
        return 1;
    }
    0
}
