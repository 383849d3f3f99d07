//! One ring slot: a sequence word and the event's words, one cache line.
//!
//! Sequence protocol (a seqlock per slot): the writer of absolute position `pos` stores
//! `2*pos + 1`, then the event words, then `2*pos + 2`. A reader that expects position
//! `pos` accepts the words only if it saw `2*pos + 2` both before and after reading them:
//! an event is read whole or not at all.

use core::sync::atomic::{AtomicU64, Ordering, fence};

use crate::event::{Event, EventId, MAX_ARGS};

const WORDS: usize = 3 + MAX_ARGS;

#[repr(C, align(64))]
pub(crate) struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; WORDS],
}

/// The sequence value of a complete event at `pos`.
#[inline(always)]
pub(crate) const fn done(pos: u64) -> u64 {
    pos.wrapping_mul(2).wrapping_add(2)
}

/// The sequence value while `pos` is being written.
#[inline(always)]
pub(crate) const fn writing(pos: u64) -> u64 {
    pos.wrapping_mul(2).wrapping_add(1)
}

impl Slot {
    #[allow(clippy::declare_interior_mutable_const)]
    pub(crate) const EMPTY: Slot = Slot {
        seq: AtomicU64::new(0),
        words: [const { AtomicU64::new(0) }; WORDS],
    };

    #[inline(always)]
    pub(crate) fn seq(&self) -> &AtomicU64 {
        &self.seq
    }

    /// Writes the event words and publishes them as position `pos`. The caller has set
    /// the sequence to `writing(pos)` (a plain store or a successful claim).
    #[inline(always)]
    pub(crate) fn fill(&self, pos: u64, ts: u64, id: EventId, cpu: u32, task: u64, args: &[u64]) {
        // Orders the odd sequence before the words (Boehm's seqlock writer).
        fence(Ordering::Release);
        let n = args.len().min(MAX_ARGS);
        let meta = u64::from(id.0) | ((n as u64) << 16) | (u64::from(cpu) << 32);
        self.words[0].store(ts, Ordering::Relaxed);
        self.words[1].store(meta, Ordering::Relaxed);
        self.words[2].store(task, Ordering::Relaxed);
        for (i, w) in self.words[3..].iter().enumerate() {
            w.store(if i < n { args[i] } else { 0 }, Ordering::Relaxed);
        }
        self.seq.store(done(pos), Ordering::Release);
    }

    /// The event at `pos` if this slot holds it whole.
    #[inline]
    pub(crate) fn read(&self, pos: u64) -> Option<Event> {
        let want = done(pos);
        if self.seq.load(Ordering::Acquire) != want {
            return None;
        }
        let mut w = [0u64; WORDS];
        for (d, s) in w.iter_mut().zip(&self.words) {
            *d = s.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        if self.seq.load(Ordering::Relaxed) != want {
            return None;
        }
        let nargs = ((w[1] >> 16) & 0xff) as u8;
        Some(Event {
            ts: w[0],
            id: EventId(w[1] as u16),
            cpu: (w[1] >> 32) as u32,
            task: w[2],
            nargs: nargs.min(MAX_ARGS as u8),
            args: [w[3], w[4], w[5], w[6]],
        })
    }
}

const _: () = assert!(core::mem::size_of::<Slot>() == 64);
