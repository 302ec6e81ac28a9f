//! IPVS's Maglev hashing scheduler (`mh`, `ip_vs_mh.c`; Eisenbud et al., NSDI 2016, 3.4): a
//! client's address (and source port with `mh-port`) hashes to one of [`MH_TABLE_SIZE`]
//! slots, each naming a real server.
//!
//! Every real server has a preference list over the slots, `offset, offset + skip, ...`
//! (mod the prime table size), with `offset` and `skip` hashed from its address and port.
//! Servers take turns, in order, claiming their next free preferred slot until all slots are
//! taken; a server claims `turns` slots per round, its weight divided by the weights' gcd and
//! shifted right until the largest fits in IPVS's `MH_TAB_BITS` (`ip_vs_mh_permutate`,
//! `ip_vs_mh_populate`). The result gives each server a share of slots proportional to its
//! turns, and when a server comes or goes, few slots of the others change hands.
//!
//! Because the hashes use IPVS's fixed keys (see [`lb_common::hash`]) and the real servers'
//! addresses rather than our ids, two directors with the same configuration build the same
//! table, and so would IPVS with the same real-server order on a 64-bit kernel.

use lb_common::hash::{MH_TABLE_SIZE, mh_offset_skip};

use super::Candidate;

const SIZE: usize = MH_TABLE_SIZE as usize;

/// IPVS's `IP_VS_MH_TAB_BITS` for our table size: half its `CONFIG_IP_VS_MH_TAB_INDEX`, the
/// index being 8 + the size's place in IPVS's list of primes (6 for 4093, 8 for 65521).
/// Weights (over their gcd) are shifted right until the largest fits in this many bits.
const WEIGHT_BITS: u32 = weight_bits(MH_TABLE_SIZE);

const fn weight_bits(size: u32) -> u32 {
    const PRIMES: [u32; 10] = [
        251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
    ];
    let mut i = 0;
    while i < PRIMES.len() {
        if PRIMES[i] == size {
            return (8 + i as u32) / 2;
        }
        i += 1;
    }
    panic!("MH_TABLE_SIZE must be one of IPVS's mh primes");
}

/// A real server as the population sees it.
#[derive(Clone, Copy, Debug)]
struct Dest {
    id: u32,
    /// The weight that sets its share of slots (IPVS's `last_weight`).
    weight: u32,
    /// Whether it takes new connections (IPVS: weight > 0 and not overloaded).
    available: bool,
    /// First preferred slot.
    offset: u32,
    /// Step between preferred slots, 1..SIZE.
    skip: u32,
}

/// The `mh` table over `candidates` (in the service's real-server order): [`MH_TABLE_SIZE`]
/// real-server ids. Empty when no server takes connections.
///
/// A quiescent server (weight 0) holds no slots: its clients are spread over the others, as
/// Maglev does when a server leaves. (IPVS keeps a quiesced server's slots at its last
/// non-zero weight and refuses, or with `mh-fallback` re-hashes, the clients that land there;
/// we only know the current weight, so we treat it as IPVS treats a server added with weight
/// 0. `fallback` matters once a server can hold slots yet be unavailable; see [`resolve`].)
pub fn table(candidates: &[Candidate], fallback: bool) -> Vec<u32> {
    let dests: Vec<Dest> = candidates.iter().map(Dest::new).collect();
    resolve(&dests, fallback)
}

impl Dest {
    fn new(c: &Candidate) -> Dest {
        let (offset, skip) = mh_offset_skip(
            // IPVS folds an IPv6 address into one word (an IPv4 one is that word).
            lb_common::Addr::from(c.addr).fold(),
            c.port.to_be(),
        );
        Dest {
            id: c.id,
            weight: c.weight,
            available: c.weight > 0,
            offset,
            skip,
        }
    }
}

/// The table with unavailable servers' slots resolved: 0 ("no server", the data path drops,
/// as `ip_vs_mh_get` returns no destination), or with `fallback` the owner of that slot in
/// the table populated by the available servers alone.
///
/// IPVS's fallback re-hashes the client with growing offsets until it lands on an available
/// server, so each client of an unavailable slot goes to a pseudo-random available slot. A
/// table cannot depend on the client, only on the slot. Taking those slots from the
/// available-only population gives the same proportional spread, leaves the available
/// servers' own slots alone, and sends those clients where they would go if the unavailable
/// server were removed outright.
fn resolve(dests: &[Dest], fallback: bool) -> Vec<u32> {
    let Some(owners) = populate(dests) else {
        return Vec::new();
    };
    let spare = if fallback && owners.iter().any(|&o| !dests[o].available) {
        let available: Vec<Dest> = dests.iter().copied().filter(|d| d.available).collect();
        populate(&available).map(|spare| {
            spare
                .into_iter()
                .map(|o| available[o].id)
                .collect::<Vec<u32>>()
        })
    } else {
        None
    };
    let table: Vec<u32> = owners
        .iter()
        .enumerate()
        .map(|(slot, &o)| match (dests[o].available, &spare) {
            (true, _) => dests[o].id,
            (false, Some(spare)) => spare[slot],
            (false, None) => 0,
        })
        .collect();
    if table.iter().all(|&id| id == 0) {
        return Vec::new();
    }
    table
}

/// `ip_vs_mh_populate`: the owner (index into `dests`) of every slot, or `None` when no
/// server has a weight (IPVS leaves the table empty).
fn populate(dests: &[Dest]) -> Option<Vec<usize>> {
    let turns = turns(dests)?;
    const FREE: usize = usize::MAX;
    let mut owners = vec![FREE; SIZE];
    let mut next: Vec<usize> = dests.iter().map(|d| d.offset as usize).collect();
    let mut filled = 0;
    // Terminates: some server has turns >= 1, and each of its skips (coprime with the prime
    // SIZE) reaches every slot, so each turn claims one.
    loop {
        for (index, dest) in dests.iter().enumerate() {
            for _ in 0..turns[index] {
                let mut slot = next[index];
                while owners[slot] != FREE {
                    slot = (slot + dest.skip as usize) % SIZE;
                }
                owners[slot] = index;
                next[index] = slot;
                filled += 1;
                if filled == SIZE {
                    return Some(owners);
                }
            }
        }
    }
}

/// Slots each server claims per round (`ip_vs_mh_permutate`): weight / gcd, shifted right by
/// `fls(max weight / gcd) - WEIGHT_BITS` when positive, and at least 1 for a non-zero weight.
/// `None` when no weight is positive.
fn turns(dests: &[Dest]) -> Option<Vec<u32>> {
    let divisor = dests.iter().fold(0, |g, d| gcd(g, d.weight));
    if divisor == 0 {
        return None;
    }
    let max = dests.iter().map(|d| d.weight).max().unwrap_or(0) / divisor;
    let fls = u32::BITS - max.leading_zeros();
    let shift = fls.saturating_sub(WEIGHT_BITS);
    Some(
        dests
            .iter()
            .map(|d| match (d.weight / divisor) >> shift {
                0 => u32::from(d.weight != 0),
                turns => turns,
            })
            .collect(),
    )
}

fn gcd(a: u32, b: u32) -> u32 {
    // Weights are u32; the shared helper works on u64.
    super::gcd(u64::from(a), u64::from(b)) as u32
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use lb_common::hash::mh_index;

    use super::*;

    use super::super::test_candidate as c;

    fn servers(n: u32, weight: u32) -> Vec<Candidate> {
        (1..=n).map(|id| c(id, weight)).collect()
    }

    fn shares(table: &[u32]) -> HashMap<u32, usize> {
        let mut shares = HashMap::new();
        for &id in table {
            *shares.entry(id).or_default() += 1;
        }
        shares
    }

    /// Asserts each server's share of slots is within `tolerance` (relative) of its weight's,
    /// give or take the one slot that integer shares cannot avoid.
    fn assert_shares(candidates: &[Candidate], table: &[u32], tolerance: f64) {
        let shares = shares(table);
        let total: u32 = candidates.iter().map(|c| c.weight).sum();
        for c in candidates {
            let want = f64::from(c.weight) / f64::from(total);
            let got = shares.get(&c.id).copied().unwrap_or(0) as f64 / SIZE as f64;
            assert!(
                (got - want).abs() <= want * tolerance + 1.0 / SIZE as f64,
                "server {} (weight {}): share {got:.4}, want {want:.4}",
                c.id,
                c.weight
            );
        }
    }

    /// Fraction of the slots that neither table gives to `except` whose owner differs.
    fn moved(before: &[u32], after: &[u32], except: u32) -> f64 {
        let (mut kept, mut moved) = (0, 0);
        for (b, a) in before.iter().zip(after) {
            if *b == except || *a == except {
                continue;
            }
            kept += 1;
            if b != a {
                moved += 1;
            }
        }
        f64::from(moved) / f64::from(kept)
    }

    #[test]
    fn weight_bits_follow_ipvs_table_index() {
        assert_eq!(weight_bits(4093), 6);
        assert_eq!(weight_bits(65521), 8);
        assert_eq!(weight_bits(251), 4);
    }

    #[test]
    fn every_slot_is_filled() {
        for n in [1, 2, 3, 7, 64] {
            let table = table(&servers(n, 1), false);
            assert_eq!(table.len(), SIZE);
            assert!(table.iter().all(|&id| (1..=n).contains(&id)));
            assert_eq!(shares(&table).len(), n as usize);
        }
    }

    #[test]
    fn equal_weights_share_equally() {
        for n in [2, 3, 5, 10, 100] {
            let candidates = servers(n, 5);
            assert_shares(&candidates, &table(&candidates, false), 0.02);
        }
    }

    #[test]
    fn unequal_weights_share_proportionally() {
        let candidates = [c(1, 1), c(2, 2), c(3, 3), c(4, 10)];
        assert_shares(&candidates, &table(&candidates, false), 0.02);
        let candidates = [c(1, 100), c(2, 200), c(3, 300)];
        assert_shares(&candidates, &table(&candidates, false), 0.02);
        let candidates = [c(1, 7), c(2, 13), c(3, 29), c(4, 50)];
        assert_shares(&candidates, &table(&candidates, false), 0.03);
    }

    #[test]
    fn turns_use_gcd_and_ipvs_shift() {
        let dest = |weight| Dest {
            id: 1,
            weight,
            available: true,
            offset: 0,
            skip: 1,
        };
        let turns_of =
            |weights: &[u32]| turns(&weights.iter().map(|&w| dest(w)).collect::<Vec<_>>());
        assert_eq!(turns_of(&[100, 200, 300]), Some(vec![1, 2, 3]));
        // 127 needs 7 bits, one more than MH_TAB_BITS: shifted by 1; 1 >> 1 = 0 stays 1.
        assert_eq!(turns_of(&[1, 127]), Some(vec![1, 63]));
        assert_eq!(turns_of(&[65535, 1]), Some(vec![63, 1]));
        assert_eq!(turns_of(&[0, 4]), Some(vec![0, 1]));
        assert_eq!(turns_of(&[0, 0]), None);
        assert_eq!(turns_of(&[]), None);
    }

    #[test]
    fn removing_a_server_moves_few_other_slots() {
        // Of the slots that were not the removed server's, a modulo hash would move about
        // (n-1)/n; Maglev moves a few percent at most (measured 0.3-1.8% here), well under
        // 1/n.
        for n in [5u32, 10, 20] {
            let before = table(&servers(n, 1), false);
            for gone in [1, n / 2, n] {
                let rest: Vec<Candidate> =
                    servers(n, 1).into_iter().filter(|c| c.id != gone).collect();
                let after = table(&rest, false);
                let fraction = moved(&before, &after, gone);
                let bound = (1.0 / f64::from(n)).min(0.03);
                assert!(
                    fraction < bound,
                    "n={n}, removed {gone}: {fraction:.4} >= {bound:.4}"
                );
            }
        }
    }

    #[test]
    fn adding_a_server_moves_few_other_slots() {
        // Measured 0.9-1.5% of the slots the newcomer did not take.
        for n in [5u32, 10, 20] {
            let before = table(&servers(n, 1), false);
            let after = table(&servers(n + 1, 1), false);
            let fraction = moved(&before, &after, n + 1);
            let bound = (1.0 / f64::from(n + 1)).min(0.03);
            assert!(
                fraction < bound,
                "n={n}, added one: {fraction:.4} >= {bound:.4}"
            );
            // The newcomer takes its fair share.
            assert_shares(&servers(n + 1, 1), &after, 0.02);
        }
    }

    #[test]
    fn same_configuration_same_table_whatever_the_ids() {
        let candidates = [c(1, 3), c(2, 1), c(3, 2)];
        assert_eq!(table(&candidates, false), table(&candidates, false));
        // Another director numbering the same real servers differently.
        let renumbered: Vec<Candidate> = candidates
            .iter()
            .map(|c| Candidate {
                id: c.id + 40,
                ..*c
            })
            .collect();
        let mine: Vec<u32> = table(&candidates, false);
        let theirs: Vec<u32> = table(&renumbered, false).iter().map(|id| id - 40).collect();
        assert_eq!(mine, theirs);
    }

    #[test]
    fn quiescent_servers_hold_no_slots() {
        let table = table(&[c(1, 1), c(2, 0), c(3, 1)], false);
        assert_eq!(table.len(), SIZE);
        assert_eq!(
            shares(&table)
                .keys()
                .copied()
                .collect::<std::collections::BTreeSet<_>>(),
            [1, 3].into()
        );
        assert!(super::table(&[c(1, 0), c(2, 0)], false).is_empty());
        assert!(super::table(&[c(1, 0), c(2, 0)], true).is_empty());
        assert!(super::table(&[], true).is_empty());
    }

    #[test]
    fn unavailable_server_without_fallback_leaves_its_slots_empty() {
        let dests = dests_with_unavailable();
        let all = resolve(&all_available(&dests), false);
        let table = resolve(&dests, false);
        for (a, t) in all.iter().zip(&table) {
            if *a == 2 {
                assert_eq!(*t, 0);
            } else {
                assert_eq!(a, t);
            }
        }
        assert!(table.contains(&0));
    }

    #[test]
    fn unavailable_server_with_fallback_spreads_its_slots_over_the_others() {
        let dests = dests_with_unavailable();
        let all = resolve(&all_available(&dests), false);
        let table = resolve(&dests, true);
        let without: Vec<Dest> = dests.iter().copied().filter(|d| d.id != 2).collect();
        let removed = resolve(&without, false);
        for slot in 0..SIZE {
            if all[slot] == 2 {
                // Where the client would go were the server removed outright.
                assert_eq!(table[slot], removed[slot]);
            } else {
                assert_eq!(table[slot], all[slot]);
            }
        }
        assert!(!table.contains(&0) && !table.contains(&2));
        // Weights 1 and 2 of the remaining servers: about a third and two thirds.
        let ones = table.iter().filter(|&&id| id == 1).count() as f64 / SIZE as f64;
        assert!((ones - 1.0 / 3.0).abs() < 0.02, "{ones}");
    }

    /// Server 2 holds slots (weight 3, as IPVS's `last_weight` of a quiesced server or an
    /// overloaded one) but takes no new connections.
    fn dests_with_unavailable() -> Vec<Dest> {
        let mut dests: Vec<Dest> = [c(1, 1), c(2, 3), c(3, 2)].iter().map(Dest::new).collect();
        dests[1].available = false;
        dests
    }

    fn all_available(dests: &[Dest]) -> Vec<Dest> {
        dests
            .iter()
            .map(|d| Dest {
                available: true,
                ..*d
            })
            .collect()
    }

    #[test]
    fn a_client_always_gets_the_same_server() {
        let table = table(&servers(4, 1), false);
        let client = u32::from_ne_bytes([203, 0, 113, 9]);
        let server = table[mh_index(client, 0, false) as usize];
        for port in [1024u16, 33000, 65535] {
            assert_eq!(
                table[mh_index(client, port.to_be(), false) as usize],
                server
            );
        }
        let spread: std::collections::HashSet<u32> = (1024..1088u16)
            .map(|port| table[mh_index(client, port.to_be(), true) as usize])
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
