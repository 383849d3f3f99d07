//! Grace periods for lock-free readers (epoch-based, RCU style).
//!
//! Readers *pin* the current epoch for the duration of a lookup or a whole stack walk:
//! one atomic increment of a counter that belongs to the epoch's parity, and one
//! decrement when done. Neither takes a lock nor can block, so pinning is
//! async-signal-safe. Writers unlink what they remove and then [`Epoch::synchronize`]:
//! they advance the epoch twice, each time waiting until the readers of the older parity
//! have left. After that no reader can still hold a pointer to what was unlinked, and it
//! may be freed (and the caller may free the `.eh_frame` bytes it had registered).
//!
//! The counters are striped by the reader's stack address, so threads unwinding at the
//! same time rarely share a cache line.

use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};

const STRIPES: usize = 8;

#[repr(align(64))]
struct Counter(AtomicUsize);

pub(crate) struct Epoch {
    epoch: AtomicUsize,
    active: [[Counter; STRIPES]; 2],
}

/// Which counter a reader incremented: release it with [`Epoch::unpin`].
#[derive(Clone, Copy)]
pub(crate) struct Pin {
    parity: usize,
    stripe: usize,
}

impl Epoch {
    pub(crate) const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: Counter = Counter(AtomicUsize::new(0));
        Epoch {
            epoch: AtomicUsize::new(0),
            active: [[ZERO; STRIPES], [ZERO; STRIPES]],
        }
    }

    /// Enters a read-side critical section. Lock-free and async-signal-safe.
    #[inline]
    pub(crate) fn pin(&self) -> Pin {
        let marker = 0u8;
        let stripe = ((&raw const marker as usize) >> 14) % STRIPES;
        loop {
            let e = self.epoch.load(SeqCst);
            let parity = e & 1;
            self.active[parity][stripe].0.fetch_add(1, SeqCst);
            // Re-check: had a writer advanced the epoch between our load and increment,
            // we would be counted under a parity it no longer waits for.
            if self.epoch.load(SeqCst) == e {
                return Pin { parity, stripe };
            }
            self.active[parity][stripe].0.fetch_sub(1, SeqCst);
        }
    }

    #[inline]
    pub(crate) fn unpin(&self, pin: Pin) {
        self.active[pin.parity][pin.stripe].0.fetch_sub(1, SeqCst);
    }

    fn readers(&self, parity: usize) -> usize {
        self.active[parity].iter().map(|c| c.0.load(SeqCst)).sum()
    }

    /// Waits until every reader that pinned before this call has unpinned. Writers call
    /// it after unlinking and before freeing, without holding the writer lock: several
    /// writers may wait at once, each advance is a compare-and-swap, and any writer's
    /// advance counts for all of them.
    pub(crate) fn synchronize(&self) {
        // Two advances after the unlink: readers pinned before it have then all left.
        let target = self.epoch.load(SeqCst) + 2;
        loop {
            let e = self.epoch.load(SeqCst);
            if e >= target {
                return;
            }
            // Advancing from `e` needs the readers of the older parity (pinned at `e - 1`)
            // gone; readers pinned at `e` wait for the next advance.
            if self.readers((e + 1) & 1) == 0 {
                let _ = self.epoch.compare_exchange(e, e + 1, SeqCst, SeqCst);
                continue;
            }
            core::hint::spin_loop();
            #[cfg(feature = "std")]
            std::thread::yield_now();
        }
    }
}
