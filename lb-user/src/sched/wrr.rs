//! IPVS's weighted round robin (`ip_vs_wrr.c`) as a table the data path cycles through, and
//! where in that table IPVS's walk stands after its real servers change.
//!
//! IPVS keeps a current weight `cw` and a cursor into its list of real servers (newest
//! first). A round visits, in list order, every real server whose weight is at least `cw`;
//! `cw` then falls by the weights' greatest common divisor `di`, and below 1 starts over at
//! `mw` (the largest weight less `di - 1`). The rounds from `mw` down to 1 are one cycle:
//! lb's table. IPVS does not always start at the cycle's first round, though: every change
//! to the real servers (`ip_vs_wrr_dest_changed`) moves the cursor back to the list's head
//! and keeps `cw` unless it is 0 or over the new `mw`. A new service has `cw` 0; its first
//! real server sets it to its `mw`, which with one real server is 1 (`mw` = its weight less
//! `di - 1`, and `di` is its weight), and the next ones leave it there: the first round after
//! `ipvsadm -A` and its `-a`s is the cycle's last (every real server once), as recorded in
//! `tests/golden/ipvs-sched/wrr.txt`. So a change restarts the walk at the start of the
//! round `cw` of the new table: a rotation of the same cycle.

use lb_common::MAX_TABLE_LEN;

use super::{Candidate, gcd};

/// A cycle of IPVS's weighted rounds over some real servers (in list order, newest first).
struct Cycle {
    /// (id, weight) of the real servers of weight > 0, weights scaled when the cycle would
    /// not fit in [`MAX_TABLE_LEN`] slots.
    weights: Vec<(u32, u64)>,
    /// `di`: the weights' greatest common divisor (1 without weights, as in IPVS).
    divisor: u64,
    /// The largest weight (0 without weights).
    max: u64,
}

impl Cycle {
    fn of(candidates: &[Candidate]) -> Self {
        let mut weights: Vec<(u32, u64)> = candidates
            .iter()
            .filter(|c| c.weight > 0)
            .map(|c| (c.id, u64::from(c.weight)))
            .collect();
        let divisor = |weights: &[(u32, u64)]| weights.iter().fold(0, |g, &(_, w)| gcd(g, w));
        let len = |weights: &[(u32, u64)], d: u64| weights.iter().map(|&(_, w)| w / d).sum::<u64>();
        let mut di = divisor(&weights).max(1);
        if len(&weights, di) > u64::from(MAX_TABLE_LEN) {
            // Scale so the cycle fits, keeping every server at weight >= 1.
            let total: u64 = weights.iter().map(|&(_, w)| w).sum();
            for (_, w) in &mut weights {
                *w = (*w * u64::from(MAX_TABLE_LEN) / total).max(1);
            }
            di = divisor(&weights).max(1);
        }
        let max = weights.iter().map(|&(_, w)| w).max().unwrap_or(0);
        Self {
            weights,
            divisor: di,
            max,
        }
    }

    /// IPVS's `mw`: the current weight a cycle starts with (0: no real server available).
    fn mw(&self) -> u64 {
        if self.max == 0 {
            0
        } else {
            self.max - (self.divisor - 1)
        }
    }

    /// The rounds' current weights, first to last: `mw`, `mw - di`, ..., 1.
    fn rounds(&self) -> impl Iterator<Item = u64> + '_ {
        let mw = self.mw();
        (0..mw.div_ceil(self.divisor)).map(move |k| mw - k * self.divisor)
    }

    /// The real servers of the round with current weight `cw`.
    fn round(&self, cw: u64) -> impl Iterator<Item = u32> + '_ {
        self.weights
            .iter()
            .filter(move |&&(_, w)| w >= cw)
            .map(|&(id, _)| id)
    }

    fn table(&self) -> Vec<u32> {
        self.rounds().flat_map(|cw| self.round(cw)).collect()
    }

    /// Where the round with current weight `cw` starts in [`Self::table`] (0 for a `cw` that
    /// is no round's, which IPVS never keeps).
    fn start_of(&self, cw: u64) -> u64 {
        self.rounds()
            .take_while(|&r| r > cw)
            .map(|r| self.round(r).count() as u64)
            .sum()
    }

    /// The current weight of the round slot `index` of [`Self::table`] belongs to.
    fn round_at(&self, index: u64) -> u64 {
        let mut start = 0;
        for cw in self.rounds() {
            start += self.round(cw).count() as u64;
            if index < start {
                return cw;
            }
        }
        0
    }

    /// `ip_vs_wrr_dest_changed`: IPVS's current weight after a change leaves these real
    /// servers, from `cw` before it.
    fn changed(&self, cw: u64) -> u64 {
        let mw = self.mw();
        if cw > mw || cw == 0 {
            mw
        } else if self.divisor > 1 {
            (cw / self.divisor) * self.divisor + 1
        } else {
            cw
        }
    }
}

/// IPVS's weighted round-robin cycle over `candidates` (in IPVS's list order): rounds with
/// the current weight falling from the largest weight by the weights' greatest common
/// divisor, each visiting, in order, every real server whose weight is at least the current
/// weight. Weights 3:1 give A A A B. The cycle is `sum(weights) / gcd` long; cycles longer
/// than [`MAX_TABLE_LEN`] are computed on proportionally scaled weights.
pub fn table(candidates: &[Candidate]) -> Vec<u32> {
    Cycle::of(candidates).table()
}

/// Where a service's weighted round robin stands, as IPVS's `cw` and the table position the
/// data path was (re)started at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mark {
    /// IPVS's current weight when the walk was restarted (at the head of the list).
    pub cw: u64,
    /// The data path's position written then: the start of round `cw` in the table.
    pub start: u64,
    /// The real servers (IPVS's list order) the table was built over.
    pub candidates: Vec<Candidate>,
}

impl Mark {
    /// A service whose scheduler became `wrr` with these real servers (`ip_vs_wrr_init_svc`:
    /// the cycle's first round).
    pub fn init(candidates: &[Candidate]) -> Self {
        let cycle = Cycle::of(candidates);
        Self {
            cw: cycle.mw(),
            start: 0,
            candidates: candidates.to_vec(),
        }
    }

    /// The walk after the real servers went from `previous`'s to `candidates` (IPVS's list
    /// order, newest first), `position` being where the data path's walk stood then: the
    /// real servers new in `candidates` are added one by one, oldest first, each a
    /// `dest_changed`, and then the rest of the change (edits, removals) is one more. A new
    /// service (`previous` none) starts from IPVS's `cw` 0.
    pub fn after_change(previous: Option<(&Mark, u64)>, candidates: &[Candidate]) -> Self {
        let (mut cw, mut set) = match previous {
            Some((mark, position)) => (mark.current(position), mark.candidates.clone()),
            None => (0, Vec::new()),
        };
        for added in candidates.iter().rev() {
            if !set.iter().any(|c| c.id == added.id) {
                // At the head: newest first.
                set.insert(0, *added);
                cw = Cycle::of(&set).changed(cw);
            }
        }
        let cycle = Cycle::of(candidates);
        cw = cycle.changed(cw);
        Self {
            cw,
            start: cycle.start_of(cw),
            candidates: candidates.to_vec(),
        }
    }

    /// Whether this walk was restarted over exactly these real servers (IPVS's list order,
    /// with the same weights): if not, they changed since.
    pub fn serves(&self, candidates: &[Candidate]) -> bool {
        self.candidates == candidates
    }

    /// IPVS's current weight with the data path's walk at `position`: as restarted if no
    /// connection was scheduled since, else that of the round of the last slot given out.
    fn current(&self, position: u64) -> u64 {
        let cycle = Cycle::of(&self.candidates);
        let len = cycle.table().len() as u64;
        if position == self.start || len == 0 {
            self.cw
        } else {
            cycle.round_at(position.wrapping_sub(1) % len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sched::test_candidate as c;

    /// The sequence the data path gives from a restart: the table from `start` on.
    fn walk(mark: &Mark, n: usize) -> Vec<u32> {
        let table = table(&mark.candidates);
        (0..n)
            .map(|i| table[(mark.start as usize + i) % table.len()])
            .collect()
    }

    /// `added` oldest first, as `ipvsadm -a` adds them: IPVS's list is newest first.
    fn newest_first(added: &[Candidate]) -> Vec<Candidate> {
        added.iter().rev().copied().collect()
    }

    #[test]
    fn three_to_one_is_ipvs_cycle() {
        assert_eq!(table(&[c(1, 3), c(2, 1)]), vec![1, 1, 1, 2]);
    }

    #[test]
    fn rounds_fall_by_one() {
        // IPVS with weights 4, 3, 2: cw=4: A; cw=3: A B; cw=2: A B C; cw=1: A B C.
        assert_eq!(
            table(&[c(1, 4), c(2, 3), c(3, 2)]),
            vec![1, 1, 2, 1, 2, 3, 1, 2, 3]
        );
    }

    #[test]
    fn uses_the_gcd() {
        // 200:100 is 2:1.
        assert_eq!(table(&[c(7, 200), c(9, 100)]), vec![7, 7, 9]);
    }

    #[test]
    fn equal_weights_is_round_robin() {
        assert_eq!(table(&[c(1, 5), c(2, 5)]), vec![1, 2]);
    }

    #[test]
    fn empty_when_all_quiescent() {
        assert!(table(&[c(1, 0), c(2, 0)]).is_empty());
        let mark = Mark::after_change(None, &[c(1, 0)]);
        assert_eq!((mark.cw, mark.start), (0, 0));
    }

    #[test]
    fn long_cycles_are_scaled_and_keep_shares() {
        let table = table(&[c(1, 65535), c(2, 65534), c(3, 1)]);
        assert!(table.len() <= MAX_TABLE_LEN as usize);
        let count = |id| table.iter().filter(|&&x| x == id).count();
        assert!(count(3) >= 1);
        let ratio = count(1) as f64 / count(2) as f64;
        assert!((ratio - 1.0).abs() < 0.01, "ratio {ratio}");
    }

    #[test]
    fn a_new_service_starts_with_one_pass_over_every_real_server() {
        // tests/golden/ipvs-sched/wrr.txt: A:3, B:2, C:1 added in that order give C B A,
        // then A, B A, C B A, ...
        let reals = newest_first(&[c(1, 3), c(2, 2), c(3, 1)]);
        let mark = Mark::after_change(None, &reals);
        assert_eq!(mark.cw, 1);
        assert_eq!(walk(&mark, 9), vec![3, 2, 1, 1, 2, 1, 3, 2, 1]);
        // wrr-3-1.txt: A:3, B:1 give B A, then A, A, B A.
        let mark = Mark::after_change(None, &newest_first(&[c(1, 3), c(2, 1)]));
        assert_eq!(walk(&mark, 6), vec![2, 1, 1, 1, 2, 1]);
    }

    #[test]
    fn the_first_real_servers_weight_sets_the_start() {
        // A:2, B:4 added in that order: A alone gives di 2, mw 1; B keeps cw 1 (di is 2,
        // so cw = 0 * 2 + 1): the last round, B A.
        let mark = Mark::after_change(None, &newest_first(&[c(1, 2), c(2, 4)]));
        assert_eq!(walk(&mark, 4), vec![2, 1, 2, 2]);
        // Both at once from cw 0 would be the first round: mw = 4 - (2 - 1).
        assert_eq!(Cycle::of(&[c(2, 4), c(1, 2)]).changed(0), 3);
    }

    #[test]
    fn init_starts_at_the_cycle() {
        let reals = newest_first(&[c(1, 3), c(2, 1)]);
        let mark = Mark::init(&reals);
        assert_eq!(walk(&mark, 4), vec![1, 1, 2, 1]);
    }

    #[test]
    fn a_change_restarts_the_current_round_at_the_head() {
        // 3:1 from a new service: B A | A | A | B A. After three connections (B A A) the
        // walk is in round cw=3; a new real server C:1 keeps cw (di 1, mw 3) and the round
        // restarts at the head of C, B, A: round 3 is A alone, then A, then C B A.
        let before = newest_first(&[c(1, 3), c(2, 1)]);
        let mark = Mark::after_change(None, &before);
        let after = newest_first(&[c(1, 3), c(2, 1), c(3, 1)]);
        let next = Mark::after_change(Some((&mark, mark.start + 3)), &after);
        assert_eq!(next.cw, 3);
        assert_eq!(walk(&next, 6), vec![1, 1, 3, 2, 1, 1]);
        // With nothing scheduled since, the restart keeps cw 1: C B A.
        let next = Mark::after_change(Some((&mark, mark.start)), &after);
        assert_eq!(walk(&next, 3), vec![3, 2, 1]);
    }

    #[test]
    fn a_lower_maximum_restarts_the_cycle() {
        // A:3, B:1 in round cw=3 (position after B A A); A edited to 1: mw 1 < cw.
        let before = newest_first(&[c(1, 3), c(2, 1)]);
        let mark = Mark::after_change(None, &before);
        let after = newest_first(&[c(1, 1), c(2, 1)]);
        let next = Mark::after_change(Some((&mark, mark.start + 3)), &after);
        assert_eq!((next.cw, next.start), (1, 0));
    }
}
