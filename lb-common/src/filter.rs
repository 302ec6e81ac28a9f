//! The pre-filter: a cheap first look that lets most packets that are not ours go to the
//! kernel before the data path does any real work (a connection-table or service lookup).
//!
//! A packet may be ours only if its destination is a virtual address (a client's packet, or
//! an ICMP error about our reply) or its source is a NAT real server (a reply). Two bit sets
//! of [`BITS`] bits each, indexed by a hash of the address, answer "maybe" or "certainly
//! not": a set bit may be shared by another address (the packet then takes the full path and
//! is passed there), a clear bit means no service ever had that address.
//!
//! The sets only grow while lbd runs: a deleted service's connections keep flowing (as in
//! IPVS), so its address stays admitted. Both sets live in one array map of `u64` words
//! ([`LEN`] of them): [`VIP`] words first, then [`NAT_REAL`] words.

/// Bits per set.
pub const BITS: u32 = 1 << 16;
/// Words per set.
pub const WORDS: u32 = BITS / 64;
/// First word of the set of virtual addresses (destinations).
pub const VIP: u32 = 0;
/// First word of the set of NAT real servers' addresses (sources of replies).
pub const NAT_REAL: u32 = WORDS;
/// Words of the map.
pub const LEN: u32 = 2 * WORDS;

/// Where `addr` (network order, as in [`crate::FlowKey`]) sits in a set: the word's index
/// within the set and the bit within the word. A multiplicative hash: its top bits depend on
/// every bit of the address, so neighbouring addresses spread over the set.
#[inline(always)]
pub const fn slot(addr: u32) -> (u32, u64) {
    let hash = addr.wrapping_mul(0x9e37_79b1) >> 16;
    (hash >> 6, 1 << (hash & 63))
}

/// User space's copy of the map: admitting an address says which word to write, if any.
pub struct Filter {
    words: [u64; LEN as usize],
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            words: [0; LEN as usize],
        }
    }
}

impl Filter {
    /// A copy of what the map holds (read back from a pinned map after a restart).
    pub fn from_words(words: impl IntoIterator<Item = u64>) -> Self {
        let mut filter = Filter::default();
        for (slot, word) in filter.words.iter_mut().zip(words) {
            *slot = word;
        }
        filter
    }

    /// Admits `addr` into the set starting at `set` ([`VIP`] or [`NAT_REAL`]); returns the
    /// map index and new value of the word to write, or `None` when it was admitted already.
    pub fn admit(&mut self, set: u32, addr: u32) -> Option<(u32, u64)> {
        let (word, bit) = slot(addr);
        let index = set + word;
        let value = &mut self.words[index as usize];
        if *value & bit != 0 {
            return None;
        }
        *value |= bit;
        Some((index, *value))
    }

    /// Whether `addr` is (maybe) in the set starting at `set`: the data path's test.
    pub fn admits(&self, set: u32, addr: u32) -> bool {
        let (word, bit) = slot(addr);
        self.words[(set + word) as usize] & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(a: u8, b: u8, c: u8, d: u8) -> u32 {
        u32::from_ne_bytes([a, b, c, d])
    }

    #[test]
    fn admitted_addresses_pass_and_others_mostly_do_not() {
        let mut filter = Filter::default();
        let vip = ip(192, 168, 1, 100);
        assert!(!filter.admits(VIP, vip));
        let (index, word) = filter.admit(VIP, vip).expect("a new bit");
        assert!(index < WORDS);
        assert_eq!(word.count_ones(), 1);
        assert!(filter.admits(VIP, vip));
        // The sets are separate.
        assert!(!filter.admits(NAT_REAL, vip));
        // Admitting again writes nothing.
        assert_eq!(filter.admit(VIP, vip), None);
        let (index, _) = filter.admit(NAT_REAL, ip(10, 0, 0, 5)).expect("a new bit");
        assert!((NAT_REAL..LEN).contains(&index));
    }

    #[test]
    fn a_subnet_spreads_over_the_set() {
        // 4,096 neighbouring addresses: a good hash leaves few sharing a bit with another.
        let mut filter = Filter::default();
        let mut fresh = 0;
        for i in 0..4096u32 {
            let [_, _, c, d] = i.to_be_bytes();
            if filter.admit(VIP, ip(10, 1, c, d)).is_some() {
                fresh += 1;
            }
        }
        assert!(
            fresh > 3900,
            "only {fresh} distinct bits for 4,096 addresses"
        );
        // And an unrelated address is not admitted by them.
        let mut others_admitted = 0;
        for i in 0..1000u32 {
            let [_, _, c, d] = i.to_be_bytes();
            if filter.admits(VIP, ip(172, 16, c, d)) {
                others_admitted += 1;
            }
        }
        assert!(
            others_admitted < 150,
            "{others_admitted} of 1,000 false positives"
        );
    }

    #[test]
    fn from_words_restores_the_sets() {
        let mut filter = Filter::default();
        filter.admit(VIP, ip(1, 2, 3, 4));
        filter.admit(NAT_REAL, ip(5, 6, 7, 8));
        let copy = Filter::from_words(filter.words.iter().copied());
        assert!(copy.admits(VIP, ip(1, 2, 3, 4)));
        assert!(copy.admits(NAT_REAL, ip(5, 6, 7, 8)));
        assert!(!copy.admits(VIP, ip(5, 6, 7, 8)));
    }
}
