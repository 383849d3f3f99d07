//! Which compilation unit covers an address.
//!
//! Built on first use: every unit header (cheap: a few bytes each), the address ranges
//! of `.debug_aranges`, and for the units `.debug_aranges` does not cover, the ranges of
//! their root DIE (as llvm-symbolizer does). Overlapping unit ranges resolve to the unit
//! with the lowest offset, llvm's rule. Each unit's parsed state ([`super::UnitState`])
//! hangs off its [`UnitSlot`], parsed on demand and evicted under the memory budget.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use gimli::{DebugInfoOffset, UnitHeader};

use super::R;
use crate::Error;

/// One unit: its header, and its parsed state when loaded.
pub(crate) struct UnitSlot {
    pub header: UnitHeader<R>,
    pub offset: u64,
    /// The parsed state; `None` until first needed, and again after eviction.
    pub state: spin::Mutex<Option<Arc<super::UnitState>>>,
    /// The budget's clock value when last used (for LRU eviction).
    pub last_used: AtomicU32,
}

impl UnitSlot {
    pub fn touch(&self, now: u32) {
        if self.last_used.load(Ordering::Relaxed) != now {
            self.last_used.store(now, Ordering::Relaxed);
        }
    }
}

/// A unit's address range.
#[derive(Clone, Copy, Debug)]
struct UnitRange {
    begin: u64,
    end: u64,
    slot: u32,
}

/// Every unit of `.debug_info` and the address ranges of the compilation units.
pub(crate) struct UnitIndex {
    pub slots: Vec<UnitSlot>,
    /// Disjoint, sorted by `begin`.
    ranges: Vec<UnitRange>,
}

impl UnitIndex {
    /// Builds the index. `code`: the image's code addresses, when known; unit ranges
    /// outside it (the tombstones of code the linker discarded, at 0) are dropped.
    pub fn build(dwarf: &gimli::Dwarf<R>, code: &[(u64, u64)]) -> Result<Self, Error> {
        let mut slots = Vec::new();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let Some(offset) = header.debug_info_offset() else {
                continue;
            };
            slots.push(UnitSlot {
                offset: offset.0 as u64,
                header,
                state: spin::Mutex::new(None),
                last_used: AtomicU32::new(0),
            });
        }
        let in_code = |begin: u64, end: u64| {
            begin < end && (code.is_empty() || code.iter().any(|&(lo, hi)| begin < hi && lo < end))
        };
        let mut covered = alloc::vec![false; slots.len()];
        let mut ranges = Vec::new();
        let mut aranges = dwarf.debug_aranges.headers();
        while let Ok(Some(set)) = aranges.next() {
            let Some(slot) = find_slot(&slots, set.debug_info_offset().0 as u64) else {
                continue;
            };
            covered[slot] = true;
            let mut entries = set.entries();
            // Errors (address overflow in a set) end that set only.
            while let Ok(Some(e)) = entries.next() {
                let r = e.range();
                if in_code(r.begin, r.end) {
                    ranges.push(UnitRange {
                        begin: r.begin,
                        end: r.end,
                        slot: slot as u32,
                    });
                }
            }
        }
        for (i, slot) in slots.iter().enumerate() {
            if covered[i]
                || !matches!(
                    slot.header.type_(),
                    gimli::UnitType::Compilation | gimli::UnitType::Skeleton(_)
                )
            {
                continue;
            }
            // A unit .debug_aranges does not describe: its root DIE's ranges.
            let _ = root_ranges(dwarf, &slot.header, |begin, end| {
                if in_code(begin, end) {
                    ranges.push(UnitRange {
                        begin,
                        end,
                        slot: i as u32,
                    });
                }
            });
        }
        Ok(UnitIndex {
            ranges: disjoint(ranges),
            slots,
        })
    }

    /// The slot of the compilation unit covering `addr`.
    pub fn find(&self, addr: u64) -> Option<usize> {
        let i = self.ranges.partition_point(|r| r.begin <= addr);
        let r = self.ranges.get(i.checked_sub(1)?)?;
        (addr < r.end).then_some(r.slot as usize)
    }

    /// The slot of the unit holding `.debug_info` offset `offset`.
    pub fn slot_of(&self, offset: DebugInfoOffset<usize>) -> Option<usize> {
        let off = offset.0 as u64;
        let i = self
            .slots
            .partition_point(|s| s.offset <= off)
            .checked_sub(1)?;
        let s = &self.slots[i];
        (off < s.offset + s.header.length_including_self() as u64).then_some(i)
    }

    /// Approximate heap bytes held.
    pub fn heap_size(&self) -> usize {
        self.slots.len() * core::mem::size_of::<UnitSlot>()
            + self.ranges.len() * core::mem::size_of::<UnitRange>()
    }
}

fn find_slot(slots: &[UnitSlot], offset: u64) -> Option<usize> {
    slots.binary_search_by_key(&offset, |s| s.offset).ok()
}

/// Sorts unit ranges and makes them disjoint: where ranges overlap, the unit with the
/// lowest offset (= slot) wins, as in llvm's `DWARFDebugAranges`.
fn disjoint(mut ranges: Vec<UnitRange>) -> Vec<UnitRange> {
    ranges.sort_unstable_by_key(|r| (r.begin, r.slot));
    let overlapping = ranges.windows(2).any(|w| w[1].begin < w[0].end);
    if !overlapping {
        return merge_adjacent(ranges);
    }
    // Sweep over the endpoints with the set of units covering the current point.
    let mut points: Vec<(u64, bool, u32)> = Vec::with_capacity(ranges.len() * 2);
    for r in &ranges {
        points.push((r.begin, true, r.slot));
        points.push((r.end, false, r.slot));
    }
    points.sort_unstable();
    let mut live: alloc::collections::BTreeMap<u32, u32> = Default::default();
    let mut out: Vec<UnitRange> = Vec::new();
    let mut prev = 0u64;
    for (addr, start, slot) in points {
        if addr > prev
            && let Some((&lowest, _)) = live.iter().next()
        {
            out.push(UnitRange {
                begin: prev,
                end: addr,
                slot: lowest,
            });
        }
        if start {
            *live.entry(slot).or_default() += 1;
        } else if let Some(n) = live.get_mut(&slot) {
            *n -= 1;
            if *n == 0 {
                live.remove(&slot);
            }
        }
        prev = addr;
    }
    merge_adjacent(out)
}

fn merge_adjacent(ranges: Vec<UnitRange>) -> Vec<UnitRange> {
    let mut out: Vec<UnitRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if last.end == r.begin && last.slot == r.slot => last.end = r.end,
            _ => out.push(r),
        }
    }
    out.shrink_to_fit();
    out
}

/// Calls `f` with each code range of the unit's root DIE. Reads only the abbreviations
/// and the root DIE (not the line program header a full `gimli::Unit` parses).
fn root_ranges(
    dwarf: &gimli::Dwarf<R>,
    header: &UnitHeader<R>,
    mut f: impl FnMut(u64, u64),
) -> Result<(), gimli::Error> {
    use gimli::AttributeValue as V;
    let abbrevs = root_abbreviation(dwarf, header)?;
    let mut entries = header.entries_raw(&abbrevs, None)?;
    let Some(abbrev) = entries.read_abbreviation()? else {
        return Ok(());
    };
    let (mut low, mut high, mut size, mut ranges) = (None, None, None, None);
    let mut addr_base = gimli::DebugAddrBase(0);
    let mut rnglists_base =
        gimli::DebugRngListsBase::default_for_encoding_and_file(header.encoding(), dwarf.file_type);
    for spec in abbrev.attributes() {
        let attr = entries.read_attribute(*spec)?;
        match (attr.name(), attr.value()) {
            (gimli::DW_AT_low_pc, v) => low = Some(v),
            (gimli::DW_AT_high_pc, V::Udata(n)) => size = Some(n),
            (gimli::DW_AT_high_pc, v) => high = Some(v),
            (gimli::DW_AT_ranges, v) => ranges = Some(v),
            (gimli::DW_AT_addr_base | gimli::DW_AT_GNU_addr_base, V::DebugAddrBase(b)) => {
                addr_base = b
            }
            (gimli::DW_AT_rnglists_base, V::DebugRngListsBase(b)) => rnglists_base = b,
            _ => {}
        }
    }
    let addr = |v: V<R>| match v {
        V::Addr(a) => Some(a),
        V::DebugAddrIndex(i) => dwarf
            .debug_addr
            .get_address(header.address_size(), addr_base, i)
            .ok(),
        _ => None,
    };
    let low = low.and_then(addr);
    let offset = match ranges {
        Some(V::RangeListsRef(o)) => Some(gimli::RangeListsOffset(o.0)),
        Some(V::DebugRngListsIndex(i)) => Some(dwarf.ranges.get_offset(
            header.encoding(),
            rnglists_base,
            i,
        )?),
        _ => None,
    };
    if let Some(offset) = offset {
        let mut list = dwarf.ranges.ranges(
            offset,
            header.encoding(),
            low.unwrap_or(0),
            &dwarf.debug_addr,
            addr_base,
        )?;
        while let Some(r) = list.next()? {
            f(r.begin, r.end);
        }
    } else if let Some(low) = low {
        let end = match (high.and_then(addr), size) {
            (Some(h), _) => h,
            (None, Some(s)) => low.saturating_add(s),
            _ => return Ok(()),
        };
        f(low, end);
    }
    Ok(())
}

/// The abbreviation of the unit's root DIE alone. A unit's abbreviation table can be
/// long; the root DIE's declaration is usually its first, so reading just that one makes
/// indexing units that `.debug_aranges` misses cheap.
fn root_abbreviation(
    dwarf: &gimli::Dwarf<R>,
    header: &UnitHeader<R>,
) -> Result<gimli::Abbreviations, gimli::Error> {
    use gimli::Reader;
    let mut entries = header.range_from(gimli::UnitOffset(header.header_size())..)?;
    let code = entries.read_uleb128()?;
    let mut input: R = *gimli::Section::reader(&dwarf.debug_abbrev);
    input.skip(header.debug_abbrev_offset().0)?;
    loop {
        let start = input;
        let c = input.read_uleb128()?;
        if c == 0 {
            // Not declared: let gimli report it.
            return dwarf.abbreviations(header).map(|a| (*a).clone());
        }
        let _tag = input.read_uleb128()?;
        let _children = input.read_u8()?;
        loop {
            let name = input.read_uleb128()?;
            let form = input.read_uleb128()?;
            if form == u64::from(gimli::DW_FORM_implicit_const.0) {
                input.read_sleb128()?;
            }
            if name == 0 && form == 0 {
                break;
            }
        }
        if c == code {
            // The declaration, then the table's terminating 0.
            let len = start.len() - input.len();
            let mut decl = alloc::vec::Vec::with_capacity(len + 1);
            decl.extend_from_slice(&start.slice()[..len]);
            decl.push(0);
            return gimli::DebugAbbrev::new(&decl, start.endian())
                .abbreviations(gimli::DebugAbbrevOffset(0));
        }
    }
}
