//! Which copy of a real server's entry lbd writes, so that the data path never reads one torn.
//!
//! The data path's `REALS` holds two copies of each real server's entry (slots `id` and
//! `id + MAX_REALS`) and `REAL_SLOT[id]` says which one is live. A map update copies the
//! value while programs may be reading it, so an entry changed in place (a new MAC, a weight,
//! a tunnel's next hop) could be read half old, half new. Instead lbd writes the other copy,
//! then flips `REAL_SLOT[id]` (one aligned word: read whole). The copy that was live may still
//! be read by a program that looked at `REAL_SLOT` just before the flip, so it is not written
//! again until an RCU grace period has passed (`bpf_batch::Grace`): [`Plan::grace_first`].
//!
//! [`RealCopies`] is the bookkeeping, without I/O: the live copy of each id and the ids
//! flipped since the last grace period. [`RealWriter`] follows it on the maps.

use std::{
    io,
    os::fd::{AsFd as _, OwnedFd},
};

use lb_common::{MAX_REALS, RealServer};

use crate::bpf_batch::{self, Grace};

/// What to write for one change of some real servers' entries.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Wait for a grace period before writing: a copy about to be written was live since the
    /// last one.
    pub grace_first: bool,
    /// The `REALS` slot each entry goes to, in the order given.
    pub slots: Vec<u32>,
    /// Then `REAL_SLOT[ids[i]] = live[i]`.
    pub ids: Vec<u32>,
    pub live: Vec<u32>,
}

#[derive(Debug)]
pub struct RealCopies {
    /// `REAL_SLOT` as lbd last wrote it (0 or 1 per id).
    live: Vec<u8>,
    /// Ids flipped since the last grace period (their other copy may be in use).
    flipped: Vec<bool>,
    any_flipped: bool,
}

impl RealCopies {
    /// From `REAL_SLOT`'s current words (a restarted lbd goes on from the pinned map).
    pub fn new(live: impl IntoIterator<Item = u32>) -> Self {
        let mut copies = vec![0u8; MAX_REALS as usize];
        for (slot, word) in copies.iter_mut().zip(live) {
            *slot = (word & 1) as u8;
        }
        RealCopies {
            live: copies,
            // Another lbd may have flipped any of them just before it stopped.
            flipped: vec![true; MAX_REALS as usize],
            any_flipped: true,
        }
    }

    /// Where the new entries of `ids` go (each id below `MAX_REALS`; an id given twice is
    /// written twice into the same copy, the last one wins).
    pub fn plan(&self, ids: &[u32]) -> Plan {
        let mut plan = Plan {
            grace_first: false,
            slots: Vec::with_capacity(ids.len()),
            ids: Vec::with_capacity(ids.len()),
            live: Vec::with_capacity(ids.len()),
        };
        for &id in ids {
            let i = id as usize;
            let next = 1 - u32::from(self.live[i]);
            plan.grace_first |= self.any_flipped && self.flipped[i];
            plan.slots.push(id + next * MAX_REALS);
            plan.ids.push(id);
            plan.live.push(next);
        }
        plan
    }

    /// A grace period has passed: no program still reads a copy that is no longer live.
    pub fn graced(&mut self) {
        if self.any_flipped {
            self.flipped.fill(false);
            self.any_flipped = false;
        }
    }

    /// `plan`'s entries were written and its flips made.
    pub fn flipped(&mut self, plan: &Plan) {
        for (&id, &live) in plan.ids.iter().zip(&plan.live) {
            self.live[id as usize] = live as u8;
            self.flipped[id as usize] = true;
            self.any_flipped = true;
        }
    }

    /// The live copy of `id` (0 or 1).
    pub fn live(&self, id: u32) -> u32 {
        u32::from(self.live[id as usize])
    }
}

/// Writes real servers' entries into `REALS` and `REAL_SLOT` as [`RealCopies`] plans them.
pub struct RealWriter {
    copies: RealCopies,
    grace: Grace,
    reals: OwnedFd,
    real_slot: OwnedFd,
}

impl RealWriter {
    /// Over the maps `REALS` and `REAL_SLOT`, whose words are `live` now.
    pub fn new(
        reals: OwnedFd,
        real_slot: OwnedFd,
        live: impl IntoIterator<Item = u32>,
    ) -> io::Result<Self> {
        Ok(RealWriter {
            copies: RealCopies::new(live),
            grace: Grace::new()?,
            reals,
            real_slot,
        })
    }

    /// Writes the entries of `ids`: into the copies that are not live, then flips them live,
    /// so no packet reads an entry half written. On an error nothing was flipped.
    pub fn write(&mut self, ids: &[u32], reals: &[RealServer]) -> io::Result<()> {
        let plan = self.copies.plan(ids);
        if plan.grace_first {
            self.grace.wait()?;
            self.copies.graced();
        }
        bpf_batch::update(self.reals.as_fd(), &plan.slots, reals)?;
        bpf_batch::update(self.real_slot.as_fd(), &plan.ids, &plan.live)?;
        self.copies.flipped(&plan);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(copies: &mut RealCopies, ids: &[u32]) -> Plan {
        let plan = copies.plan(ids);
        if plan.grace_first {
            copies.graced();
        }
        copies.flipped(&plan);
        plan
    }

    #[test]
    fn a_change_goes_to_the_copy_that_is_not_live_and_then_flips() {
        let mut copies = RealCopies::new([0, 0, 1]);
        copies.graced();
        let plan = applied(&mut copies, &[1, 2]);
        assert_eq!(
            plan,
            Plan {
                grace_first: false,
                slots: vec![1 + MAX_REALS, 2],
                ids: vec![1, 2],
                live: vec![1, 0],
            }
        );
        assert_eq!((copies.live(1), copies.live(2)), (1, 0));
        // And back again.
        let plan = copies.plan(&[1]);
        assert_eq!(plan.slots, vec![1]);
    }

    #[test]
    fn a_copy_live_since_the_last_grace_period_is_written_only_after_another() {
        let mut copies = RealCopies::new([]);
        copies.graced();
        assert!(!applied(&mut copies, &[7]).grace_first);
        // Another id: its old copy was never live since the grace period.
        assert!(!copies.plan(&[8]).grace_first);
        // The same id again: a program may still read slot 7.
        let plan = copies.plan(&[8, 7]);
        assert!(plan.grace_first);
        assert_eq!(plan.slots, vec![8 + MAX_REALS, 7]);
        copies.graced();
        copies.flipped(&plan);
        assert!(!copies.plan(&[9]).grace_first);
        assert!(copies.plan(&[7]).grace_first);
    }

    #[test]
    fn a_restarted_lbd_waits_before_its_first_write_and_goes_on_from_the_pinned_words() {
        let copies = RealCopies::new([0, 1, 0, 3]);
        let plan = copies.plan(&[1, 3]);
        assert!(plan.grace_first);
        assert_eq!(plan.slots, vec![1, 3]);
        assert_eq!(plan.live, vec![0, 0]);
    }
}
