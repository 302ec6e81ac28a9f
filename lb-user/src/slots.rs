//! Allocation of scheduling-table runs in the shared slot array.
//!
//! Each service's table is a contiguous run of slots. A new table is always written to a
//! fresh run and only then published by updating the service entry (offset, length), after
//! which the old run is freed: the data path never sees a half-written table.

use std::collections::BTreeMap;

/// First-fit allocator over `[0, capacity)` with coalescing of freed runs.
#[derive(Clone, Debug)]
pub struct SlotAllocator {
    /// Free runs: start → length, non-overlapping, never adjacent (they are merged).
    free: BTreeMap<u32, u32>,
}

impl SlotAllocator {
    pub fn new(capacity: u32) -> Self {
        let mut free = BTreeMap::new();
        if capacity > 0 {
            free.insert(0, capacity);
        }
        SlotAllocator { free }
    }

    /// A run of `len` slots (`len` > 0), or `None` when no free run is long enough.
    pub fn allocate(&mut self, len: u32) -> Option<u32> {
        assert!(len > 0, "empty runs are not allocated");
        let (&start, &run) = self.free.iter().find(|&(_, &run)| run >= len)?;
        self.free.remove(&start);
        if run > len {
            self.free.insert(start + len, run - len);
        }
        Some(start)
    }

    /// Marks `[start, start + len)` as used (when re-adopting tables written earlier).
    /// Returns false if any of it is not free.
    pub fn reserve(&mut self, start: u32, len: u32) -> bool {
        let Some((&run_start, &run_len)) = self.free.range(..=start).next_back() else {
            return false;
        };
        if start + len > run_start + run_len {
            return false;
        }
        self.free.remove(&run_start);
        if start > run_start {
            self.free.insert(run_start, start - run_start);
        }
        let end = start + len;
        let run_end = run_start + run_len;
        if run_end > end {
            self.free.insert(end, run_end - end);
        }
        true
    }

    /// Returns a run to the free pool.
    pub fn release(&mut self, start: u32, len: u32) {
        if len == 0 {
            return;
        }
        let mut start = start;
        let mut len = len;
        if let Some((&prev, &prev_len)) = self.free.range(..start).next_back() {
            debug_assert!(
                prev + prev_len <= start,
                "double free of slots {start}+{len}"
            );
            if prev + prev_len == start {
                self.free.remove(&prev);
                start = prev;
                len += prev_len;
            }
        }
        if let Some(&next_len) = self.free.get(&(start + len)) {
            self.free.remove(&(start + len));
            len += next_len;
        }
        self.free.insert(start, len);
    }

    /// Total free slots.
    pub fn available(&self) -> u64 {
        self.free.values().map(|&l| u64::from(l)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_release_coalesces() {
        let mut a = SlotAllocator::new(10);
        let x = a.allocate(4).unwrap();
        let y = a.allocate(4).unwrap();
        assert_eq!((x, y), (0, 4));
        assert_eq!(a.allocate(4), None);
        a.release(x, 4);
        a.release(y, 4);
        assert_eq!(a.available(), 10);
        assert_eq!(a.allocate(10), Some(0));
    }

    #[test]
    fn first_fit_reuses_holes() {
        let mut a = SlotAllocator::new(100);
        let x = a.allocate(10).unwrap();
        let _y = a.allocate(10).unwrap();
        a.release(x, 10);
        assert_eq!(a.allocate(5), Some(0));
        assert_eq!(a.allocate(5), Some(5));
        assert_eq!(a.allocate(5), Some(20));
    }

    #[test]
    fn reserve_carves_runs() {
        let mut a = SlotAllocator::new(100);
        assert!(a.reserve(10, 5));
        assert!(!a.reserve(12, 1));
        assert_eq!(a.allocate(10), Some(0));
        assert_eq!(a.allocate(1), Some(15));
        assert_eq!(a.available(), 100 - 5 - 10 - 1);
    }
}
