//! Fixed-capacity event rings that overwrite their oldest events, readable while
//! producers run.
//!
//! A [`Ring`] is written in one of two ways:
//! - [`Ring::push_local`]: one producer context at a time (a thread's own ring, a CPU's
//!   ring with the producer pinned to the CPU). Reentrant: an interrupt or signal handler
//!   on the same CPU may record into the ring it interrupted. The position is claimed
//!   with one unlocked `xadd` on x86_64 (atomic with respect to interrupts on the same
//!   CPU, as Linux's `this_cpu_*` operations), so no locked instruction is on this path.
//! - [`Ring::push_shared`]: any number of producers on any CPUs: a locked claim of the
//!   position and a compare-and-swap of the slot's sequence, so that two producers a
//!   whole lap apart never write one slot together (the later one drops its event and
//!   counts it in [`Ring::dropped`]).
//!
//! A ring must not be written both ways at once. Readers ([`Ring::read`]) never block
//! producers; a slot overwritten or in flight while read is skipped, never torn.

mod slot;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::event::{Event, EventId};
use slot::{Slot, writing};

/// A ring of `CAP` events (`CAP` a power of two, at least 2).
#[repr(C, align(64))]
pub struct Ring<const CAP: usize> {
    /// Positions claimed so far (the next event's absolute position).
    head: AtomicU64,
    /// `push_shared` events dropped because their slot was still being written.
    dropped: AtomicU64,
    slots: [Slot; CAP],
}

/// What a reader saw of a ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadStats {
    /// Events passed to the reader.
    pub read: u64,
    /// Positions in the window skipped: overwritten or still being written while read.
    pub skipped: u64,
}

impl<const CAP: usize> Default for Ring<CAP> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const CAP: usize> Ring<CAP> {
    const CHECK: () = assert!(
        CAP.is_power_of_two() && CAP >= 2,
        "CAP: a power of two >= 2"
    );
    const MASK: u64 = CAP as u64 - 1;

    /// An empty ring (`const`: rings live in statics, zero-initialized).
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CHECK;
        Ring {
            head: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            slots: [const { Slot::EMPTY }; CAP],
        }
    }

    pub const fn capacity(&self) -> usize {
        CAP
    }

    /// How many positions were ever claimed: the absolute position of the next event.
    #[inline]
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Events [`Ring::push_shared`] dropped (lapped while writing; rare).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn slot(&self, pos: u64) -> &Slot {
        // The mask keeps the index in bounds.
        &self.slots[(pos & Self::MASK) as usize]
    }

    /// Records an event from the ring's single producer context.
    ///
    /// # Safety
    /// No other CPU may write this ring concurrently (per-thread or per-CPU use); an
    /// interrupt or signal handler on the same CPU may. Never mix with `push_shared`.
    #[inline(always)]
    pub unsafe fn push_local(&self, ts: u64, id: EventId, cpu: u32, task: u64, args: &[u64]) {
        let pos = claim_local(&self.head);
        let slot = self.slot(pos);
        slot.seq().store(writing(pos), Ordering::Relaxed);
        slot.fill(pos, ts, id, cpu, task, args);
    }

    /// Records an event from any context on any CPU. Returns `false` when the event was
    /// dropped because a producer a lap behind still writes its slot.
    #[inline]
    pub fn push_shared(&self, ts: u64, id: EventId, cpu: u32, task: u64, args: &[u64]) -> bool {
        let pos = self.head.fetch_add(1, Ordering::Relaxed);
        let slot = self.slot(pos);
        let mine = writing(pos);
        let mut cur = slot.seq().load(Ordering::Relaxed);
        loop {
            // Odd: someone is writing it; as new or newer: a later lap owns it.
            if cur & 1 == 1 || cur >= mine {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            match slot
                .seq()
                .compare_exchange_weak(cur, mine, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => cur = now,
            }
        }
        slot.fill(pos, ts, id, cpu, task, args);
        true
    }

    /// The positions a reader can still find: at most the last `CAP` before `head`.
    #[inline]
    pub fn window(&self) -> core::ops::Range<u64> {
        let head = self.head();
        head.saturating_sub(CAP as u64)..head
    }

    /// The event at absolute position `pos`, if the ring still holds it whole.
    #[inline]
    pub fn get(&self, pos: u64) -> Option<Event> {
        self.slot(pos).read(pos)
    }

    /// Calls `f(pos, event)` for every whole event of `positions`, oldest first.
    pub fn read(
        &self,
        positions: core::ops::Range<u64>,
        mut f: impl FnMut(u64, Event),
    ) -> ReadStats {
        let mut stats = ReadStats::default();
        for pos in positions {
            match self.get(pos) {
                Some(e) => {
                    stats.read += 1;
                    f(pos, e)
                }
                None => stats.skipped += 1,
            }
        }
        stats
    }
}

/// Claims the next position for a single producer context, atomically with respect to
/// interrupts on this CPU but without a locked instruction.
#[inline(always)]
fn claim_local(head: &AtomicU64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let mut v: u64 = 1;
        // SAFETY: `head` is a valid, aligned u64 for the whole call; `xadd` without `lock`
        // is one instruction, so an interrupt sees it either done or not. Other CPUs
        // only read `head` (the caller's contract).
        unsafe {
            core::arch::asm!(
                "xadd qword ptr [{h}], {v}",
                h = in(reg) head.as_ptr(),
                v = inout(reg) v,
                options(nostack, preserves_flags),
            );
        }
        v
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        head.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn overwrites_oldest() {
        let r: Ring<4> = Ring::new();
        for i in 0..10u64 {
            // SAFETY: single-threaded test.
            unsafe { r.push_local(i, EventId(1), 0, 7, &[i, i * 2]) };
        }
        assert_eq!(r.head(), 10);
        assert_eq!(r.window(), 6..10);
        let mut seen = Vec::new();
        let st = r.read(0..10, |pos, e| {
            assert_eq!(e.ts, pos);
            assert_eq!(e.args(), &[pos, pos * 2]);
            seen.push(pos);
        });
        assert_eq!(
            st,
            ReadStats {
                read: 4,
                skipped: 6
            }
        );
        assert_eq!(seen, [6, 7, 8, 9]);
    }

    #[test]
    fn shared_push() {
        let r: Ring<8> = Ring::new();
        for i in 0..20u64 {
            assert!(r.push_shared(i, EventId(2), 1, 2, &[i]));
        }
        assert_eq!(r.get(19).unwrap().args(), &[19]);
        assert!(r.get(11).is_none());
        assert!(r.get(12).is_some());
        assert!(r.get(20).is_none());
        assert_eq!(r.dropped(), 0);
    }
}
