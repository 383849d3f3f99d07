//! The lock-free map from a PC to the module whose text holds it.
//!
//! A radix tree over the address, shaped like a page table: the address space is cut
//! into 512 GiB *regions* (a handful in any real process: the executable, the heap/JIT
//! mappings, a kernel's higher half), each a tree of three levels of 512 slots that
//! resolve bits 38..30, 29..21 and 20..12. A slot holds one of:
//!
//! - nothing,
//! - a module that covers the slot's whole range (big text sections stop high up),
//! - a child table (a module starts or ends inside the slot),
//! - at the last level, a module that covers part of the slot's 4 KiB page and is alone
//!   in it (the lookup checks the module's text bounds, which sit on the module's first
//!   cache line, the line the FDE lookup reads next anyway),
//! - at the last level, a sorted list of the modules that share one page (cranelift-jit
//!   packs many small functions into a page): one allocation, a length word followed by
//!   the entries, so reading the list is one miss, not two.
//!
//! A lookup is at most four dependent loads of the tables (the upper ones shared by
//! every lookup, so cached) and never decodes anything; a hit in a page held by one
//! module then reads only that module's first cache line. Writers are
//! serialized by the registry; they change one slot at a time with a release store, and
//! replace a list by a new copy, so a reader always sees either the old or the new
//! state of a slot. What a writer replaces is handed back to be freed after a grace
//! period ([`super::epoch`]).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering};

use super::Module;
use crate::Error;

const FANOUT_BITS: u32 = 9;
const FANOUT: usize = 1 << FANOUT_BITS;
const PAGE_SHIFT: u32 = 12;
const REGION_SHIFT: u32 = PAGE_SHIFT + 3 * FANOUT_BITS;
const TOP_SHIFT: u32 = REGION_SHIFT - FANOUT_BITS;
const MAX_REGIONS: usize = 16;

// Tables, lists and modules are at least 8-byte aligned: three tag bits.
const TAG_MASK: usize = 0b111;
const TAG_TABLE: usize = 1;
const TAG_LIST: usize = 2;
/// A module covering the slot's whole range.
const TAG_MODULE: usize = 3;
/// A module alone in the slot's page, covering part of it (last level only).
const TAG_PARTIAL: usize = 4;

const _: () = assert!(core::mem::align_of::<Table>() > TAG_MASK);
const _: () = assert!(core::mem::align_of::<ListEntry>() > TAG_MASK);
const _: () = assert!(core::mem::align_of::<Module>() > TAG_MASK);

pub(crate) struct Table {
    slots: [AtomicUsize; FANOUT],
    /// Non-empty slots; only writers touch it.
    used: AtomicU32,
}

/// Modules sharing one page, sorted by text start: one allocation of `len + 1` entries
/// whose first is a header (`start` = `len`), the slot pointing at the header. Raw,
/// because the slot holds a thin pointer.
pub(crate) struct LeafList(*mut ListEntry);

#[derive(Clone, Copy)]
#[repr(C)]
struct ListEntry {
    start: usize,
    end: usize,
    module: *const Module,
}

struct Region {
    /// `(address >> REGION_SHIFT) + 1`, or 0 while unused. Regions are never removed.
    key: AtomicUsize,
    table: AtomicPtr<Table>,
}

/// Something a writer unlinked; free it only after a grace period.
#[allow(dead_code)] // held only to be dropped after the grace period
pub(crate) enum Unlinked {
    Table(Box<Table>),
    List(LeafList),
}

impl LeafList {
    /// Allocates the list of `entries` (at least two, sorted).
    fn new(entries: &[ListEntry]) -> LeafList {
        let mut all = Vec::with_capacity(entries.len() + 1);
        all.push(ListEntry {
            start: entries.len(),
            end: 0,
            module: ptr::null(),
        });
        all.extend_from_slice(entries);
        LeafList(Box::into_raw(all.into_boxed_slice()).cast::<ListEntry>())
    }

    /// The entries of the list whose header is at `header`.
    ///
    /// # Safety
    /// `header` comes from [`LeafList::new`] and is not freed while the slice is used.
    #[inline]
    unsafe fn entries<'a>(header: *const ListEntry) -> &'a [ListEntry] {
        // SAFETY: the header and its `len` entries are one live allocation.
        unsafe { core::slice::from_raw_parts(header.add(1), (*header).start) }
    }
}

impl Drop for LeafList {
    fn drop(&mut self) {
        // SAFETY: `self.0` is the start of the boxed slice `new` leaked, of `len + 1`
        // entries; whoever drops the list owns it (unlinked, past a grace period).
        unsafe {
            let len = (*self.0).start + 1;
            drop(Box::from_raw(ptr::slice_from_raw_parts_mut(self.0, len)));
        }
    }
}

pub(crate) struct AddressMap {
    regions: [Region; MAX_REGIONS],
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    Check,
    Insert,
    Remove,
}

impl Table {
    fn new() -> Box<Table> {
        Box::new(Table {
            slots: [const { AtomicUsize::new(0) }; FANOUT],
            used: AtomicU32::new(0),
        })
    }
}

// SAFETY: the raw module pointers are only dereferenced by readers inside a grace period,
// and modules are immutable once published.
unsafe impl Send for AddressMap {}
unsafe impl Sync for AddressMap {}
unsafe impl Send for Unlinked {}
// SAFETY: a list is immutable once published; its owner frees it.
unsafe impl Send for LeafList {}

impl AddressMap {
    pub(crate) const fn new() -> Self {
        AddressMap {
            regions: [const {
                Region {
                    key: AtomicUsize::new(0),
                    table: AtomicPtr::new(ptr::null_mut()),
                }
            }; MAX_REGIONS],
        }
    }

    /// The module whose text holds `pc`. The caller must be pinned for the lifetime of
    /// the returned pointer.
    #[inline]
    pub(crate) fn find(&self, pc: usize) -> *const Module {
        let key = (pc >> REGION_SHIFT) + 1;
        let mut table: *const Table = ptr::null();
        for r in &self.regions {
            let k = r.key.load(Ordering::Acquire);
            if k == key {
                table = r.table.load(Ordering::Acquire);
                break;
            }
            if k == 0 {
                return ptr::null();
            }
        }
        if table.is_null() {
            return ptr::null();
        }
        let mut shift = TOP_SHIFT;
        loop {
            // SAFETY: tables are freed only after a grace period; the caller is pinned.
            let slot = unsafe { &(*table).slots[(pc >> shift) & (FANOUT - 1)] };
            let v = slot.load(Ordering::Acquire);
            let p = v & !TAG_MASK;
            match v & TAG_MASK {
                TAG_MODULE => return p as *const Module,
                TAG_TABLE => table = p as *const Table,
                TAG_PARTIAL => {
                    let m = p as *const Module;
                    // SAFETY: modules are freed only after a grace period; pinned.
                    return if unsafe { (*m).contains(pc) } {
                        m
                    } else {
                        ptr::null()
                    };
                }
                TAG_LIST => {
                    // SAFETY: lists are freed only after a grace period; pinned.
                    let entries = unsafe { LeafList::entries(p as *const ListEntry) };
                    let i = entries.partition_point(|e| e.start <= pc);
                    return match i.checked_sub(1).map(|i| &entries[i]) {
                        Some(e) if pc < e.end => e.module,
                        _ => ptr::null(),
                    };
                }
                _ => return ptr::null(),
            }
            shift -= FANOUT_BITS;
        }
    }

    /// Maps `[start, end)` to `module`, or fails with [`Error::Overlap`] and changes nothing.
    /// Writers only (serialized by the caller).
    pub(crate) fn insert(
        &self,
        start: usize,
        end: usize,
        module: *const Module,
        unlinked: &mut Vec<Unlinked>,
    ) -> Result<(), Error> {
        // First check every slot the range touches, so a failure leaves no partial insert.
        let first = start >> REGION_SHIFT;
        let last = (end - 1) >> REGION_SHIFT;
        let free_regions = self
            .regions
            .iter()
            .filter(|r| r.key.load(Ordering::Relaxed) == 0)
            .count();
        let missing = (first..=last).filter(|&k| self.region(k).is_none()).count();
        if missing > free_regions {
            return Err(Error::TooLarge);
        }
        for k in first..=last {
            if let Some(t) = self.region(k) {
                walk(
                    t,
                    k << REGION_SHIFT,
                    TOP_SHIFT,
                    start,
                    end,
                    module,
                    Op::Check,
                    unlinked,
                )?;
            }
        }
        for k in first..=last {
            let t = match self.region(k) {
                Some(t) => t,
                None => self.add_region(k),
            };
            walk(
                t,
                k << REGION_SHIFT,
                TOP_SHIFT,
                start,
                end,
                module,
                Op::Insert,
                unlinked,
            )?;
        }
        Ok(())
    }

    /// Unmaps `[start, end)`, which must have been inserted for `module`. Writers only.
    pub(crate) fn remove(
        &self,
        start: usize,
        end: usize,
        module: *const Module,
        unlinked: &mut Vec<Unlinked>,
    ) {
        for k in (start >> REGION_SHIFT)..=((end - 1) >> REGION_SHIFT) {
            if let Some(t) = self.region(k) {
                // Removal of what was inserted cannot fail.
                let _ = walk(
                    t,
                    k << REGION_SHIFT,
                    TOP_SHIFT,
                    start,
                    end,
                    module,
                    Op::Remove,
                    unlinked,
                );
            }
        }
    }

    fn region(&self, k: usize) -> Option<&Table> {
        self.regions
            .iter()
            .take_while(|r| r.key.load(Ordering::Acquire) != 0)
            .find(|r| r.key.load(Ordering::Acquire) == k + 1)
            // SAFETY: a region's table is published before its key and never freed.
            .map(|r| unsafe { &*r.table.load(Ordering::Acquire) })
    }

    fn add_region(&self, k: usize) -> &Table {
        let r = self
            .regions
            .iter()
            .find(|r| r.key.load(Ordering::Relaxed) == 0)
            .expect("insert checked for a free region");
        let t = Box::into_raw(Table::new());
        r.table.store(t, Ordering::Release);
        r.key.store(k + 1, Ordering::Release);
        // SAFETY: just allocated, never freed (regions live as long as the map).
        unsafe { &*t }
    }
}

impl Drop for AddressMap {
    fn drop(&mut self) {
        fn free(t: *mut Table, shift: u32) {
            // SAFETY: `&mut self`: no reader or writer is left; each table is owned by one slot.
            let t = unsafe { Box::from_raw(t) };
            for s in &t.slots {
                let v = s.load(Ordering::Relaxed);
                match v & TAG_MASK {
                    TAG_TABLE if shift > PAGE_SHIFT => {
                        free((v & !TAG_MASK) as *mut Table, shift - FANOUT_BITS)
                    }
                    TAG_LIST => drop(LeafList((v & !TAG_MASK) as *mut ListEntry)),
                    _ => {}
                }
            }
        }
        for r in &self.regions {
            let t = r.table.load(Ordering::Relaxed);
            if !t.is_null() {
                free(t, TOP_SHIFT);
            }
        }
    }
}

/// Applies `op` to every slot of `table` (which maps `[base, base + FANOUT << shift)`)
/// that `[start, end)` touches, descending where the range covers a slot only partly.
#[allow(clippy::too_many_arguments)]
fn walk(
    table: &Table,
    base: usize,
    shift: u32,
    start: usize,
    end: usize,
    module: *const Module,
    op: Op,
    unlinked: &mut Vec<Unlinked>,
) -> Result<(), Error> {
    let span = 1usize << shift;
    let lo = (start.max(base) - base) >> shift;
    let table_last = base.wrapping_add(FANOUT << shift).wrapping_sub(1);
    let hi = ((end - 1).min(table_last) - base) >> shift;
    for i in lo..=hi {
        let slot = &table.slots[i];
        let slot_start = base + (i << shift);
        let v = slot.load(Ordering::Acquire);
        let (tag, p) = (v & TAG_MASK, v & !TAG_MASK);
        let full = start <= slot_start && slot_start.wrapping_add(span - 1) < end;
        if full {
            match (op, v) {
                (Op::Check, 0) => {}
                (Op::Insert, 0) => {
                    slot.store(module as usize | TAG_MODULE, Ordering::Release);
                    table.used.fetch_add(1, Ordering::Relaxed);
                }
                (Op::Remove, _) if v == module as usize | TAG_MODULE => {
                    slot.store(0, Ordering::Release);
                    table.used.fetch_sub(1, Ordering::Relaxed);
                }
                (Op::Remove, _) => {}
                _ => return Err(Error::Overlap),
            }
            continue;
        }
        if shift > PAGE_SHIFT {
            let child = match (op, tag) {
                (_, TAG_TABLE) => p as *const Table,
                (Op::Check | Op::Remove, 0) => continue,
                (Op::Insert, 0) => {
                    let t = Box::into_raw(Table::new());
                    slot.store(t as usize | TAG_TABLE, Ordering::Release);
                    table.used.fetch_add(1, Ordering::Relaxed);
                    t
                }
                _ => return Err(Error::Overlap),
            };
            // SAFETY: only writers (serialized) free tables, and this writer holds it linked.
            let child_ref = unsafe { &*child };
            walk(
                child_ref,
                slot_start,
                shift - FANOUT_BITS,
                start,
                end,
                module,
                op,
                unlinked,
            )?;
            if op == Op::Remove && child_ref.used.load(Ordering::Relaxed) == 0 {
                slot.store(0, Ordering::Release);
                table.used.fetch_sub(1, Ordering::Relaxed);
                // SAFETY: unlinked above; it is freed after a grace period.
                unlinked.push(Unlinked::Table(unsafe {
                    Box::from_raw(child as *mut Table)
                }));
            }
            continue;
        }
        // A page (partly) covered by one module or shared by several: the new state is
        // built aside, then published with one store.
        let alone;
        let old: &[ListEntry] = match tag {
            // SAFETY: linked lists are freed only by writers, after a grace period.
            TAG_LIST => unsafe { LeafList::entries(p as *const ListEntry) },
            TAG_PARTIAL => {
                // SAFETY: a mapped module is live while a writer (serialized) holds it mapped.
                let text = unsafe { (*(p as *const Module)).text() };
                alone = [ListEntry {
                    start: text.start,
                    end: text.end,
                    module: p as *const Module,
                }];
                &alone
            }
            _ if v == 0 => &[],
            _ => return Err(Error::Overlap),
        };
        let new: Vec<ListEntry> = match op {
            Op::Check => {
                if old.iter().any(|e| e.start < end && start < e.end) {
                    return Err(Error::Overlap);
                }
                continue;
            }
            Op::Insert => {
                let mut n = old.to_vec();
                let at = n.partition_point(|e| e.start < start);
                n.insert(at, ListEntry { start, end, module });
                n
            }
            Op::Remove => old.iter().copied().filter(|e| e.module != module).collect(),
        };
        match new.as_slice() {
            [] => slot.store(0, Ordering::Release),
            [one] => slot.store(one.module as usize | TAG_PARTIAL, Ordering::Release),
            many => {
                let list = core::mem::ManuallyDrop::new(LeafList::new(many));
                slot.store(list.0 as usize | TAG_LIST, Ordering::Release);
            }
        }
        match (tag, v != 0, slot.load(Ordering::Relaxed) != 0) {
            (_, false, true) => drop(table.used.fetch_add(1, Ordering::Relaxed)),
            (_, true, false) => drop(table.used.fetch_sub(1, Ordering::Relaxed)),
            _ => {}
        }
        if tag == TAG_LIST {
            // SAFETY: unlinked above; it is freed after a grace period.
            unlinked.push(Unlinked::List(LeafList(p as *mut ListEntry)));
        }
    }
    Ok(())
}
