//! Live connection counts per real server (IPVS's ActiveConn / InActConn), which the
//! connection-count schedulers and the thresholds read: each table's connections in counters
//! of their own (`lb_common::RealConns`), changed only by atomic adds as connections open,
//! change state, move tables and go.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use lb_common::{RealConns, RealServer, tcp_state};

use crate::maps::REAL_CONNS;

/// The table a connection's entries are in.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `CONNS`, the connection table.
    Conns,
    /// `HALF_OPEN`.
    HalfOpen,
}

#[inline(always)]
fn add(real: u32, table: Table, active: i64, inactive: i64) {
    if let Some(c) = REAL_CONNS.get_ptr_mut(real) {
        // SAFETY: pointers to live array elements; the adds are atomic across CPUs and lbd.
        // (SeqCst: see `sched`; the result is unused here, so a plain locked add is what we
        // want.)
        unsafe {
            let (a, i) = match table {
                Table::Conns => (&raw mut (*c).active, &raw mut (*c).inactive),
                Table::HalfOpen => (
                    &raw mut (*c).half_open_active,
                    &raw mut (*c).half_open_inactive,
                ),
            };
            if active != 0 {
                atomic_xadd::<i64, i64, { AtomicOrdering::SeqCst }>(a, active);
            }
            if inactive != 0 {
                atomic_xadd::<i64, i64, { AtomicOrdering::SeqCst }>(i, inactive);
            }
        }
    }
}

/// A connection to `real` in `state` entered `table`.
#[inline(always)]
pub fn opened(real: u32, state: u8, table: Table) {
    if tcp_state::is_active(state) {
        add(real, table, 1, 0);
    } else {
        add(real, table, 0, 1);
    }
}

/// A connection to `real` in `state` left `table`.
#[inline(always)]
pub fn closed(real: u32, state: u8, table: Table) {
    if tcp_state::is_active(state) {
        add(real, table, -1, 0);
    } else {
        add(real, table, 0, -1);
    }
}

/// A connection to `real` in `table` moved from state `old` to `new`.
#[inline(always)]
pub fn moved(real: u32, old: u8, new: u8, table: Table) {
    match (tcp_state::is_active(old), tcp_state::is_active(new)) {
        (true, false) => add(real, table, -1, 1),
        (false, true) => add(real, table, 1, -1),
        _ => {}
    }
}

/// The counts of `real`.
#[inline(always)]
pub fn of(real: u32) -> RealConns {
    REAL_CONNS.get(real).copied().unwrap_or_default()
}

/// IPVS's `ip_vs_dest_conn_overhead`: an active connection weighs 256 inactive ones.
#[inline(always)]
pub fn overhead(conns: &RealConns) -> u64 {
    ((conns.total_active() as u64) << 8) + conns.total_inactive() as u64
}

/// Whether `real` must not take new connections because of its thresholds (`-x`/`-y`),
/// updating its overload flag with IPVS's hysteresis: overloaded at the upper threshold,
/// available again under the lower one (three quarters of the upper when not set).
#[inline(always)]
pub fn overloaded(id: u32, real: &RealServer) -> bool {
    if real.upper_threshold == 0 {
        return false;
    }
    let Some(c) = REAL_CONNS.get_ptr_mut(id) else {
        return false;
    };
    // SAFETY: pointer to a live array element; plain loads and stores of the flag race
    // benignly (the next connection re-evaluates it).
    unsafe {
        let total = ((*c).total_active() + (*c).total_inactive()) as u64;
        let upper = u64::from(real.upper_threshold);
        if (*c).overloaded != 0 {
            // IPVS: under the lower threshold, or without one under three quarters of the
            // upper (compared as total * 4 < upper * 3, no rounding).
            let back = if real.lower_threshold != 0 {
                total < u64::from(real.lower_threshold)
            } else {
                total * 4 < upper * 3
            };
            if back {
                (*c).overloaded = 0;
                return false;
            }
            true
        } else if total >= upper {
            (*c).overloaded = 1;
            true
        } else {
            false
        }
    }
}
