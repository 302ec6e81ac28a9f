//! Lowest-free id allocation for services and real servers.
//!
//! A bitmap over `[first, limit)` with a hint below which every id is taken: taking the
//! lowest free id and releasing one are O(1) amortised, so a batch that adds n services
//! costs O(n) instead of a scan of every id in use per addition. The ids handed out are the
//! same as a scan from `first` would give (the lowest free one), so configurations keep the
//! ids they always had.

/// The ids in use among `[first, limit)`.
#[derive(Clone, Debug)]
pub struct IdPool {
    /// Bit `i % 64` of word `i / 64` is set when id `first + i` is in use.
    words: Vec<u64>,
    first: u32,
    limit: u32,
    /// Every word before this one is full.
    hint: usize,
}

impl IdPool {
    /// A pool of `[first, limit)`, all free.
    pub fn new(first: u32, limit: u32) -> Self {
        let len = limit.saturating_sub(first) as usize;
        let mut words = vec![0u64; len.div_ceil(64)];
        // Bits past `limit` in the last word count as taken, so they are never handed out.
        if !len.is_multiple_of(64)
            && let Some(last) = words.last_mut()
        {
            *last = !0u64 << (len % 64);
        }
        IdPool {
            words,
            first,
            limit,
            hint: 0,
        }
    }

    fn slot(&self, id: u32) -> Option<(usize, u64)> {
        if id < self.first || id >= self.limit {
            return None;
        }
        let i = (id - self.first) as usize;
        Some((i / 64, 1u64 << (i % 64)))
    }

    /// Marks `id` as in use; false if it already was or is out of range.
    pub fn insert(&mut self, id: u32) -> bool {
        let Some((word, bit)) = self.slot(id) else {
            return false;
        };
        let free = self.words[word] & bit == 0;
        self.words[word] |= bit;
        free
    }

    /// Takes the lowest free id, or `None` when all are in use.
    pub fn take_lowest(&mut self) -> Option<u32> {
        while let Some(&word) = self.words.get(self.hint) {
            if word != !0u64 {
                let bit = (!word).trailing_zeros();
                self.words[self.hint] |= 1u64 << bit;
                return Some(self.first + (self.hint as u32) * 64 + bit);
            }
            self.hint += 1;
        }
        None
    }

    /// Returns `id` to the pool (nothing happens if it was free or out of range).
    pub fn release(&mut self, id: u32) {
        if let Some((word, bit)) = self.slot(id) {
            self.words[word] &= !bit;
            self.hint = self.hint.min(word);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_the_lowest_free_id() {
        let mut pool = IdPool::new(1, 200);
        assert_eq!(pool.take_lowest(), Some(1));
        assert_eq!(pool.take_lowest(), Some(2));
        assert!(pool.insert(3));
        assert!(!pool.insert(3), "already in use");
        assert_eq!(pool.take_lowest(), Some(4));
        pool.release(2);
        assert_eq!(pool.take_lowest(), Some(2));
        assert_eq!(pool.take_lowest(), Some(5));
    }

    #[test]
    fn crosses_words_and_reuses_released_ids_below_the_hint() {
        let mut pool = IdPool::new(0, 150);
        for id in 0..130 {
            assert_eq!(pool.take_lowest(), Some(id));
        }
        pool.release(7);
        pool.release(100);
        assert_eq!(pool.take_lowest(), Some(7));
        assert_eq!(pool.take_lowest(), Some(100));
        assert_eq!(pool.take_lowest(), Some(130));
    }

    #[test]
    fn never_hands_out_ids_at_or_past_the_limit() {
        let mut pool = IdPool::new(1, 4);
        assert_eq!(
            (0..5).map(|_| pool.take_lowest()).collect::<Vec<_>>(),
            vec![Some(1), Some(2), Some(3), None, None]
        );
        assert!(!pool.insert(0), "below the range");
        assert!(!pool.insert(4), "past the range");
        pool.release(4);
        assert_eq!(pool.take_lowest(), None);
        pool.release(2);
        assert_eq!(pool.take_lowest(), Some(2));
        let mut empty = IdPool::new(5, 5);
        assert_eq!(empty.take_lowest(), None);
    }

    #[test]
    fn matches_a_scan_of_the_ids_in_use() {
        // The reference: the lowest id not in `used`, as the configuration used to find it.
        let mut used = std::collections::BTreeSet::new();
        let mut pool = IdPool::new(1, 300);
        let mut seed = 12345u32;
        for step in 0..2000 {
            seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
            if seed.is_multiple_of(3) && !used.is_empty() {
                let victim = *used.iter().nth((seed as usize / 7) % used.len()).unwrap();
                used.remove(&victim);
                pool.release(victim);
            } else {
                let expected = (1..300).find(|id| !used.contains(id));
                assert_eq!(pool.take_lowest(), expected, "step {step}");
                if let Some(id) = expected {
                    used.insert(id);
                }
            }
        }
    }
}
