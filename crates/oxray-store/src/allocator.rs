//! Best-fit allocation of byte ranges in the region, with coalescing of
//! freed neighbours.

use std::collections::{BTreeMap, BTreeSet};

use crate::ALIGN;

/// Hands out aligned ranges of a region of `capacity` bytes.
#[derive(Debug)]
pub struct Allocator {
    capacity: u64,
    /// Free ranges by offset.
    free_by_offset: BTreeMap<u64, u64>,
    /// Free ranges by (size, offset), for best fit.
    free_by_size: BTreeSet<(u64, u64)>,
    used: u64,
}

fn align_up(n: u64) -> u64 {
    n.div_ceil(ALIGN) * ALIGN
}

impl Allocator {
    /// An allocator over `capacity` bytes, all free.
    pub fn new(capacity: u64) -> Self {
        let capacity = capacity / ALIGN * ALIGN;
        let mut a = Self {
            capacity,
            free_by_offset: BTreeMap::new(),
            free_by_size: BTreeSet::new(),
            used: 0,
        };
        if capacity > 0 {
            a.insert_free(0, capacity);
        }
        a
    }

    /// The region's usable size.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes handed out (rounded up to the alignment).
    pub fn used(&self) -> u64 {
        self.used
    }

    /// The largest free range.
    pub fn largest_free(&self) -> u64 {
        self.free_by_size.iter().next_back().map_or(0, |(s, _)| *s)
    }

    /// The rounded size that allocating `size` bytes takes.
    pub fn footprint(size: u64) -> u64 {
        align_up(size.max(1))
    }

    /// Allocates `size` bytes; returns the offset, or `None` when no free
    /// range is large enough. Picks the smallest range that fits, lowest
    /// offset first, so freed space is reused before fresh space.
    pub fn allocate(&mut self, size: u64) -> Option<u64> {
        let need = Self::footprint(size);
        let &(free_size, offset) = self.free_by_size.range((need, 0)..).next()?;
        self.remove_free(offset, free_size);
        if free_size > need {
            self.insert_free(offset + need, free_size - need);
        }
        self.used += need;
        Some(offset)
    }

    /// Frees a range returned by [`Allocator::allocate`] for `size`.
    pub fn free(&mut self, offset: u64, size: u64) {
        let mut start = offset;
        let mut len = Self::footprint(size);
        self.used -= len;
        if let Some((&prev, &prev_len)) = self.free_by_offset.range(..offset).next_back() {
            if prev + prev_len == start {
                self.remove_free(prev, prev_len);
                start = prev;
                len += prev_len;
            }
        }
        if let Some(&next_len) = self.free_by_offset.get(&(start + len)) {
            self.remove_free(start + len, next_len);
            len += next_len;
        }
        self.insert_free(start, len);
    }

    fn insert_free(&mut self, offset: u64, len: u64) {
        self.free_by_offset.insert(offset, len);
        self.free_by_size.insert((len, offset));
    }

    fn remove_free(&mut self, offset: u64, len: u64) {
        self.free_by_offset.remove(&offset);
        self.free_by_size.remove(&(len, offset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_are_aligned_and_disjoint() {
        let mut a = Allocator::new(4096);
        let x = a.allocate(1).unwrap();
        let y = a.allocate(100).unwrap();
        let z = a.allocate(64).unwrap();
        for o in [x, y, z] {
            assert_eq!(o % ALIGN, 0);
        }
        assert!(y >= x + 64 && z >= y + 128);
        assert_eq!(a.used(), 64 + 128 + 64);
    }

    #[test]
    fn exhaustion_and_reuse() {
        let mut a = Allocator::new(1024);
        let x = a.allocate(1024).unwrap();
        assert!(a.allocate(1).is_none());
        a.free(x, 1024);
        assert_eq!(a.allocate(1024), Some(0));
    }

    #[test]
    fn freed_neighbours_coalesce() {
        let mut a = Allocator::new(64 * 4);
        let blocks: Vec<u64> = (0..4).map(|_| a.allocate(64).unwrap()).collect();
        a.free(blocks[1], 64);
        a.free(blocks[2], 64);
        assert_eq!(a.largest_free(), 128, "middle two merge");
        assert!(a.allocate(128).is_some());
        a.free(blocks[0], 64);
        a.free(blocks[3], 64);
        assert_eq!(a.largest_free(), 64);
    }

    #[test]
    fn fragmentation_blocks_large_requests_until_merge() {
        let mut a = Allocator::new(64 * 8);
        let blocks: Vec<u64> = (0..8).map(|_| a.allocate(64).unwrap()).collect();
        for b in blocks.iter().step_by(2) {
            a.free(*b, 64);
        }
        assert_eq!(a.capacity() - a.used(), 256);
        assert!(a.allocate(128).is_none(), "free space is fragmented");
        a.free(blocks[1], 64);
        assert!(a.allocate(192).is_some(), "0..192 merged");
    }

    #[test]
    fn best_fit_prefers_smallest_hole() {
        let mut a = Allocator::new(64 * 10);
        let b: Vec<u64> = (0..10).map(|_| a.allocate(64).unwrap()).collect();
        a.free(b[0], 64); // hole of 64 at 0
        a.free(b[3], 64);
        a.free(b[4], 64); // hole of 128 at 192
        assert_eq!(a.allocate(64), Some(0));
        assert_eq!(a.allocate(100), Some(b[3]));
    }

    #[test]
    fn random_workload_keeps_accounting_consistent() {
        let mut a = Allocator::new(1 << 20);
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut seed = 12345u64;
        for _ in 0..10_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if !seed.is_multiple_of(3) || live.is_empty() {
                let size = (seed >> 33) % 8192 + 1;
                if let Some(o) = a.allocate(size) {
                    live.push((o, size));
                }
            } else {
                let i = (seed >> 20) as usize % live.len();
                let (o, s) = live.swap_remove(i);
                a.free(o, s);
            }
            let used: u64 = live.iter().map(|(_, s)| Allocator::footprint(*s)).sum();
            assert_eq!(a.used(), used);
        }
        let mut sorted = live.clone();
        sorted.sort();
        for w in sorted.windows(2) {
            assert!(w[0].0 + Allocator::footprint(w[0].1) <= w[1].0, "overlap");
        }
        for (o, s) in live {
            a.free(o, s);
        }
        assert_eq!(a.largest_free(), a.capacity());
    }
}
