//! Scheduling tables, computed in user space and written whole to the data path.
//!
//! A table is a sequence of real-server ids the data path walks (round robin) or indexes
//! (hashing schedulers). Building them here keeps the data path trivial and makes the
//! scheduler logic testable without a kernel.

mod dh;
mod maglev;
mod sh;
mod wrr;

pub use wrr::Mark as WrrMark;

use std::net::IpAddr;

use crate::model::{SchedFlags, Scheduler};

/// A real server as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Data-path id of the real server.
    pub id: u32,
    /// Configured weight; 0 = quiescent.
    pub weight: u32,
    /// The real server's address and port: `mh` derives its place in the table from them (not
    /// from `id`, which another director may number differently).
    pub addr: IpAddr,
    /// Host order.
    pub port: u16,
}

/// The table for `scheduler` over `candidates` (in the service's real-server order). Real
/// servers with weight 0 never appear: they take no new connections, as in IPVS (in `sh` and
/// `dh` they keep their buckets, which hold 0).
///
/// `rr` cycles over the available real servers. `wrr` is IPVS's weighted cycle (where the
/// walk starts in it: [`wrr_mark_ipvs_order`]). `sh`,
/// `dh` and `mh` give hash tables of exactly `SH_TABLE_SIZE`, `DH_TABLE_SIZE` and
/// `MH_TABLE_SIZE` slots (see [`lb_common::hash`]), where 0 means "no real server" (the data
/// path drops, as IPVS does); `flags.fallback` is `sh-fallback` / `mh-fallback`. The
/// connection-count schedulers (`lc`, `wlc`, `sed`, `nq`, `fo`, `ovf`, and `lblc`/`lblcr`,
/// whose locality tables the data path keeps and which fall back to `wlc`) get the list of
/// available real servers, which the data path compares by their live connection counts with
/// IPVS's formulas.
///
/// Every table is empty when no real server can take a new connection.
pub fn build(scheduler: Scheduler, flags: SchedFlags, candidates: &[Candidate]) -> Vec<u32> {
    match scheduler {
        Scheduler::Rr => candidates
            .iter()
            .filter(|c| c.weight > 0)
            .map(|c| c.id)
            .collect(),
        Scheduler::Sh => sh::table(candidates, flags.fallback),
        Scheduler::Dh => dh::table(candidates),
        Scheduler::Mh => maglev::table(candidates, flags.fallback),
        Scheduler::Wrr => wrr::table(candidates),
        Scheduler::Lc
        | Scheduler::Wlc
        | Scheduler::Sed
        | Scheduler::Nq
        | Scheduler::Fo
        | Scheduler::Ovf
        | Scheduler::Lblc
        | Scheduler::Lblcr => candidates
            .iter()
            .filter(|c| c.weight > 0)
            .map(|c| c.id)
            .take(lb_common::MAX_SCAN as usize)
            .collect(),
    }
}

/// [`build`] for a service whose real servers are `added`, oldest first (the order they were
/// added, which is lbd's order): IPVS keeps a service's real servers newest first (each added
/// at the head of its list, `ip_vs_ctl.c`) and every scheduler walks that list, so every
/// table is built over them newest first. Add A, B, C and IPVS's rr answers C, B, A, ...; its
/// sh tiles C's buckets first; lc, wlc, sed, nq, fo, ovf and lblc/lblcr's wlc give a tie to
/// the newest (the data path keeps the first best in table order). Checked flow by flow
/// against IPVS: `tests/golden/ipvs-sched`.
pub fn build_ipvs_order(scheduler: Scheduler, flags: SchedFlags, added: &[Candidate]) -> Vec<u32> {
    let newest_first: Vec<Candidate> = added.iter().rev().copied().collect();
    build(scheduler, flags, &newest_first)
}

/// Where the `wrr` walk of a service with real servers `added` (oldest first, as for
/// [`build_ipvs_order`]) restarts in its table: `previous` is the mark of its last restart
/// and where the data path's walk stands now, `None` for a new service. IPVS restarts its
/// walk at every change of the real servers (`ip_vs_wrr_dest_changed`), at a round that
/// depends on where it was: see [`WrrMark`].
pub fn wrr_mark_ipvs_order(previous: Option<(&WrrMark, u64)>, added: &[Candidate]) -> WrrMark {
    let newest_first: Vec<Candidate> = added.iter().rev().copied().collect();
    WrrMark::after_change(previous, &newest_first)
}

impl WrrMark {
    /// [`WrrMark::serves`] for real servers `added` oldest first.
    pub fn serves_ipvs_order(&self, added: &[Candidate]) -> bool {
        let newest_first: Vec<Candidate> = added.iter().rev().copied().collect();
        self.serves(&newest_first)
    }
}

/// [`wrr_mark_ipvs_order`] for a service whose scheduler became `wrr` (`ipvsadm -E -s wrr`):
/// IPVS starts at the first round of its cycle.
pub fn wrr_mark_init_ipvs_order(added: &[Candidate]) -> WrrMark {
    let newest_first: Vec<Candidate> = added.iter().rev().copied().collect();
    WrrMark::init(&newest_first)
}

/// Greatest common divisor (Euclid), for weight tables.
fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A candidate for the table tests: real server `id` at 10.0.x.y (from the id), port 80.
#[cfg(test)]
fn test_candidate(id: u32, weight: u32) -> Candidate {
    Candidate {
        id,
        weight,
        addr: std::net::Ipv4Addr::new(10, 0, (id >> 8) as u8, id as u8).into(),
        port: 80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::test_candidate as c;

    #[test]
    fn rr_skips_quiescent_servers() {
        assert_eq!(
            build(
                Scheduler::Rr,
                SchedFlags::default(),
                &[c(1, 1), c(2, 0), c(3, 5)]
            ),
            vec![1, 3]
        );
    }

    #[test]
    fn ipvs_order_walks_the_newest_first() {
        let added = [c(1, 1), c(2, 1), c(3, 1)];
        assert_eq!(
            build_ipvs_order(Scheduler::Rr, SchedFlags::default(), &added),
            vec![3, 2, 1]
        );
        // IPVS's wrr cycle over A:3, B:2, C:1 added in that order: A B A C B A (a new
        // service starts at its last round, C B A: `wrr_mark_ipvs_order`).
        let added = [c(1, 3), c(2, 2), c(3, 1)];
        assert_eq!(
            build_ipvs_order(Scheduler::Wrr, SchedFlags::default(), &added),
            vec![1, 2, 1, 3, 2, 1]
        );
        // The connection-count schedulers' ties go to the first in the table: the newest.
        for scheduler in [
            Scheduler::Lc,
            Scheduler::Wlc,
            Scheduler::Fo,
            Scheduler::Lblc,
        ] {
            assert_eq!(
                build_ipvs_order(
                    scheduler,
                    SchedFlags::default(),
                    &[c(1, 1), c(2, 0), c(3, 2)]
                ),
                vec![3, 1],
                "{scheduler:?}"
            );
        }
    }
}
