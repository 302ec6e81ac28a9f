//! Scheduling tables, computed in user space and written whole to the data path.
//!
//! A table is a sequence of real-server ids the data path walks (round robin) or indexes
//! (hashing schedulers). Building them here keeps the data path trivial and makes the
//! scheduler logic testable without a kernel.

mod dh;
mod maglev;
mod sh;

use std::net::IpAddr;

use lb_common::MAX_TABLE_LEN;

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
/// `rr` cycles over the available real servers. `wrr` follows IPVS's weighted sequence. `sh`,
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
        Scheduler::Wrr => weighted_round_robin(candidates),
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

/// IPVS's weighted round-robin sequence (`ip_vs_wrr.c`): the current weight starts at the
/// largest weight and falls by the weights' greatest common divisor each round; a round
/// visits, in order, every real server whose weight is at least the current weight. Weights
/// 3:1 give A A A B. The cycle is `sum(weights) / gcd` long; cycles longer than
/// [`MAX_TABLE_LEN`] are computed on proportionally scaled weights.
pub fn weighted_round_robin(candidates: &[Candidate]) -> Vec<u32> {
    let mut weights: Vec<(u32, u64)> = candidates
        .iter()
        .filter(|c| c.weight > 0)
        .map(|c| (c.id, u64::from(c.weight)))
        .collect();
    if weights.is_empty() {
        return Vec::new();
    }
    let mut divisor = weights.iter().fold(0, |g, &(_, w)| gcd(g, w));
    let mut len: u64 = weights.iter().map(|&(_, w)| w / divisor).sum();
    if len > u64::from(MAX_TABLE_LEN) {
        // Scale so the cycle fits, keeping every server at weight >= 1.
        let total: u64 = weights.iter().map(|&(_, w)| w).sum();
        for (_, w) in &mut weights {
            *w = (*w * u64::from(MAX_TABLE_LEN) / total).max(1);
        }
        divisor = weights.iter().fold(0, |g, &(_, w)| gcd(g, w));
        len = weights.iter().map(|&(_, w)| w / divisor).sum();
    }
    let max = weights.iter().map(|&(_, w)| w).max().unwrap_or(0);
    let mut table = Vec::with_capacity(len as usize);
    let mut current = max;
    while current > 0 {
        table.extend(
            weights
                .iter()
                .filter(|&&(_, w)| w >= current)
                .map(|&(id, _)| id),
        );
        current = current.saturating_sub(divisor);
    }
    table
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
        // IPVS's wrr over A:3, B:2, C:1 added in that order: A B A C B A.
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

    #[test]
    fn wrr_three_to_one_is_ipvs_sequence() {
        assert_eq!(weighted_round_robin(&[c(1, 3), c(2, 1)]), vec![1, 1, 1, 2]);
    }

    #[test]
    fn wrr_follows_ipvs_rounds() {
        // IPVS with weights 4, 3, 2: cw=4: A; cw=3: A B; cw=2: A B C; cw=1: A B C.
        assert_eq!(
            weighted_round_robin(&[c(1, 4), c(2, 3), c(3, 2)]),
            vec![1, 1, 2, 1, 2, 3, 1, 2, 3]
        );
    }

    #[test]
    fn wrr_uses_the_gcd() {
        // 200:100 is 2:1.
        assert_eq!(weighted_round_robin(&[c(7, 200), c(9, 100)]), vec![7, 7, 9]);
    }

    #[test]
    fn wrr_equal_weights_is_round_robin() {
        assert_eq!(weighted_round_robin(&[c(1, 5), c(2, 5)]), vec![1, 2]);
    }

    #[test]
    fn wrr_empty_when_all_quiescent() {
        assert!(weighted_round_robin(&[c(1, 0), c(2, 0)]).is_empty());
        assert!(build(Scheduler::Rr, SchedFlags::default(), &[]).is_empty());
    }

    #[test]
    fn wrr_long_cycles_are_scaled_and_keep_shares() {
        let table = weighted_round_robin(&[c(1, 65535), c(2, 65534), c(3, 1)]);
        assert!(table.len() <= MAX_TABLE_LEN as usize);
        let count = |id| table.iter().filter(|&&x| x == id).count();
        assert!(count(3) >= 1);
        let ratio = count(1) as f64 / count(2) as f64;
        assert!((ratio - 1.0).abs() < 0.01, "ratio {ratio}");
    }
}
