//! llvm's address → DIE map (`DWARFUnit::updateAddressDieMap`): DIE ranges, parent
//! first in DIE order, where a range inside another one wins over it, so lookups find
//! the innermost DIE. Built by a sweep over the ranges sorted by start (nested ranges,
//! as DWARF's tree makes them, give llvm's answer; for ranges that overlap without
//! nesting, the one that starts last wins), frozen into a sorted slice of spans.

use alloc::boxed::Box;
use alloc::vec::Vec;

/// One entry of a frozen map: `begin..end` → `value`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Span {
    pub begin: u64,
    pub end: u64,
    pub value: u32,
}

/// Ranges collected in DIE order.
#[derive(Default)]
pub(crate) struct Builder {
    ranges: Vec<Span>,
}

impl Builder {
    /// Adds `lo..hi` → `value` (in DIE order: parents before their children).
    pub fn insert(&mut self, lo: u64, hi: u64, value: u32) {
        if lo < hi {
            self.ranges.push(Span {
                begin: lo,
                end: hi,
                value,
            });
        }
    }

    /// The disjoint spans: at each address, the innermost range holding it.
    pub fn freeze(mut self) -> Box<[Span]> {
        // Stable: at equal starts the parent (added first) stays below its child.
        self.ranges.sort_by_key(|r| r.begin);
        let mut out: Vec<Span> = Vec::with_capacity(self.ranges.len());
        let mut emit = |begin: u64, end: u64, value: u32| {
            if begin >= end {
                return;
            }
            match out.last_mut() {
                Some(last) if last.end == begin && last.value == value => last.end = end,
                _ => out.push(Span { begin, end, value }),
            }
        };
        let mut open: Vec<Span> = Vec::new();
        let mut cursor = 0u64;
        for r in self.ranges {
            // Close the open ranges that end before this one starts.
            while let Some(top) = open.last().copied() {
                if top.end > r.begin {
                    break;
                }
                emit(cursor.max(top.begin), top.end, top.value);
                cursor = cursor.max(top.end);
                open.pop();
            }
            if let Some(top) = open.last() {
                emit(cursor.max(top.begin), r.begin, top.value);
            }
            cursor = cursor.max(r.begin);
            open.push(r);
        }
        while let Some(top) = open.pop() {
            emit(cursor.max(top.begin), top.end, top.value);
            cursor = cursor.max(top.end);
        }
        out.into_boxed_slice()
    }
}

/// The value whose span holds `addr` in a frozen map.
pub(crate) fn find(spans: &[Span], addr: u64) -> Option<u32> {
    let i = spans.partition_point(|s| s.begin <= addr).checked_sub(1)?;
    let s = spans[i];
    (addr < s.end).then_some(s.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_ranges_split() {
        let mut b = Builder::default();
        b.insert(0x10, 0x40, 0);
        b.insert(0x20, 0x30, 1);
        b.insert(0x24, 0x28, 2);
        b.insert(0x34, 0x38, 3);
        b.insert(0x50, 0x60, 4);
        b.insert(0x50, 0x60, 5);
        let spans = b.freeze();
        assert_eq!(find(&spans, 0x10), Some(0));
        assert_eq!(find(&spans, 0x20), Some(1));
        assert_eq!(find(&spans, 0x25), Some(2));
        assert_eq!(find(&spans, 0x28), Some(1));
        assert_eq!(find(&spans, 0x30), Some(0));
        assert_eq!(find(&spans, 0x35), Some(3));
        assert_eq!(find(&spans, 0x38), Some(0));
        assert_eq!(find(&spans, 0x40), None);
        assert_eq!(find(&spans, 0x0f), None);
        // The same range twice: the later DIE (the child) wins.
        assert_eq!(find(&spans, 0x55), Some(5));
        assert_eq!(find(&spans, 0x60), None);
    }
}
