//! The flight recorder: per-thread (or per-CPU) rings plus one shared ring, a clock, and
//! the process-wide [`global`] recorder that [`record`] and [`trace!`](crate::trace) use.
//!
//! - [`Recorder::attach`] claims a free ring for the calling thread and returns its
//!   [`Producer`]: the fast path (no locked instruction; ~2 ns plus the clock).
//! - [`Recorder::record_on`] writes ring `n` for a kernel whose CPU `n` owns ring `n`.
//! - [`Recorder::record_shared`] writes the shared ring from any context.
//! - On hosts (`std`), [`record`] uses a ring attached to the calling thread on its
//!   first event (released when the thread exits), or the shared ring when all are taken.

use core::cell::Cell;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::{Clock, DefaultClock};
use crate::event::EventId;
use crate::ring::Ring;

/// A ring that one producer context at a time owns.
#[repr(C, align(64))]
pub struct LocalRing<const CAP: usize> {
    owned: AtomicBool,
    /// The task of its latest owner (informational: what the dump reports).
    owner: AtomicU64,
    ring: Ring<CAP>,
}

impl<const CAP: usize> LocalRing<CAP> {
    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Self = LocalRing {
        owned: AtomicBool::new(false),
        owner: AtomicU64::new(0),
        ring: Ring::new(),
    };

    pub fn ring(&self) -> &Ring<CAP> {
        &self.ring
    }
    /// The task that attached it last.
    pub fn owner(&self) -> u64 {
        self.owner.load(Ordering::Relaxed)
    }
    pub fn is_attached(&self) -> bool {
        self.owned.load(Ordering::Relaxed)
    }
}

/// A flight recorder of `RINGS` single-producer rings and one shared ring, each of `CAP`
/// events, stamped by clock `C`. `const`-constructible: put it in a `static`.
pub struct Recorder<C: Clock = DefaultClock, const RINGS: usize = 16, const CAP: usize = 1024> {
    clock: C,
    shared: Ring<CAP>,
    locals: [LocalRing<CAP>; RINGS],
}

/// Which ring of a recorder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingKind {
    /// A single-producer ring (a thread's or a CPU's): number `n`.
    Local(u32),
    /// The shared multi-producer ring.
    Shared,
}

impl<C: Clock, const RINGS: usize, const CAP: usize> Recorder<C, RINGS, CAP> {
    pub const fn new(clock: C) -> Self {
        Recorder {
            clock,
            shared: Ring::new(),
            locals: [const { LocalRing::EMPTY }; RINGS],
        }
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Claims a free single-producer ring for the caller (a thread), which records into
    /// it through the returned [`Producer`] until dropping it. `None` when all are taken.
    pub fn attach(&self, task: u64) -> Option<Producer<'_, C, CAP>> {
        for (i, l) in self.locals.iter().enumerate() {
            if !l.owned.load(Ordering::Relaxed)
                && l.owned
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                l.owner.store(task, Ordering::Relaxed);
                return Some(Producer {
                    ring: &l.ring,
                    owned: Some(&l.owned),
                    clock: &self.clock,
                    cpu: i as u32,
                    task,
                    _not_sync: PhantomData,
                });
            }
        }
        None
    }

    /// Records into ring `ring` (e.g. the current CPU's), with `task` as the recording
    /// task. Out-of-range rings fall back to the shared ring.
    ///
    /// # Safety
    /// Only one CPU writes ring `ring` at a time (interrupt handlers on that CPU may
    /// record too), and the ring is not [`Recorder::attach`]ed.
    #[inline(always)]
    pub unsafe fn record_on(&self, ring: usize, task: u64, id: EventId, args: &[u64]) {
        let ts = self.clock.now();
        match self.locals.get(ring) {
            // SAFETY: forwarded to the caller.
            Some(l) => unsafe { l.ring.push_local(ts, id, ring as u32, task, args) },
            None => {
                self.shared.push_shared(ts, id, u32::MAX, task, args);
            }
        }
    }

    /// Records into the shared ring (any context, any CPU). `cpu` is what the event
    /// reports as its CPU (`u32::MAX`: unknown).
    #[inline]
    pub fn record_shared(&self, cpu: u32, task: u64, id: EventId, args: &[u64]) -> bool {
        self.shared
            .push_shared(self.clock.now(), id, cpu, task, args)
    }

    /// [`Recorder::record_shared`] with the caller's timestamp.
    #[inline]
    pub fn record_shared_at(
        &self,
        ts: u64,
        cpu: u32,
        task: u64,
        id: EventId,
        args: &[u64],
    ) -> bool {
        self.shared.push_shared(ts, id, cpu, task, args)
    }

    /// The shared ring.
    pub fn shared(&self) -> &Ring<CAP> {
        &self.shared
    }

    /// The single-producer rings.
    pub fn locals(&self) -> &[LocalRing<CAP>] {
        &self.locals
    }

    /// Every ring with its kind and current owner task (0 for the shared ring).
    pub fn for_each_ring(&self, mut f: impl FnMut(RingKind, u64, &Ring<CAP>)) {
        for (i, l) in self.locals.iter().enumerate() {
            f(RingKind::Local(i as u32), l.owner(), &l.ring);
        }
        f(RingKind::Shared, 0, &self.shared);
    }
}

/// The right to write one ring: from [`Recorder::attach`]. Not `Sync` (one context
/// records through it); reentrant use from a signal handler on the same thread is safe.
pub struct Producer<'r, C: Clock, const CAP: usize> {
    ring: &'r Ring<CAP>,
    owned: Option<&'r AtomicBool>,
    clock: &'r C,
    cpu: u32,
    task: u64,
    _not_sync: PhantomData<Cell<()>>,
}

impl<C: Clock, const CAP: usize> Producer<'_, C, CAP> {
    /// Records an event stamped now.
    #[inline(always)]
    pub fn record(&self, id: EventId, args: &[u64]) {
        let ts = self.clock.now();
        // SAFETY: a `Producer` is the ring's only writer (it owns the ring and is not
        // `Sync`); reentrancy is allowed by `push_local`.
        unsafe { self.ring.push_local(ts, id, self.cpu, self.task, args) }
    }

    /// Records an event with the caller's timestamp.
    #[inline(always)]
    pub fn record_at(&self, ts: u64, id: EventId, args: &[u64]) {
        // SAFETY: as in `record`.
        unsafe { self.ring.push_local(ts, id, self.cpu, self.task, args) }
    }

    /// The ring number this producer writes (the events' `cpu`).
    pub fn ring_index(&self) -> u32 {
        self.cpu
    }

    pub fn task(&self) -> u64 {
        self.task
    }
}

impl<C: Clock, const CAP: usize> Drop for Producer<'_, C, CAP> {
    fn drop(&mut self) {
        if let Some(o) = self.owned {
            o.store(false, Ordering::Release);
        }
    }
}

/// The global recorder's type: 16 single-producer rings and a shared ring of 1024
/// events each (1 MiB of zero-initialized static memory).
pub type GlobalRecorder = Recorder<DefaultClock, 16, 1024>;

static GLOBAL: GlobalRecorder = Recorder::new(DefaultClock);

/// The process-wide recorder.
#[inline(always)]
pub fn global() -> &'static GlobalRecorder {
    &GLOBAL
}

/// Records an event in the [`global`] recorder: on hosts into the calling thread's ring,
/// without `std` into the shared ring (kernels use [`Recorder::record_on`] for per-CPU
/// rings). At most [`MAX_ARGS`](crate::event::MAX_ARGS) arguments are kept.
#[inline(always)]
pub fn record(id: EventId, args: &[u64]) {
    #[cfg(feature = "std")]
    host::record(id, args);
    #[cfg(not(feature = "std"))]
    {
        GLOBAL.record_shared(u32::MAX, 0, id, args);
    }
}

/// [`record`] with a compile-time check of the argument count (what `trace!` calls).
#[inline(always)]
pub fn record_n<const N: usize>(id: EventId, args: [u64; N]) {
    const { assert!(N <= crate::event::MAX_ARGS, "at most 4 event arguments") };
    record(id, &args)
}

#[cfg(feature = "std")]
mod host {
    //! Per-thread rings of the global recorder.

    use core::cell::Cell;

    use super::{GLOBAL, Producer};
    use crate::clock::DefaultClock;
    use crate::event::EventId;

    type GlobalProducer = Producer<'static, DefaultClock, 1024>;

    const UNATTACHED: u8 = 0;
    const ATTACHED: u8 = 1;
    /// No ring was free, or the thread is exiting: use the shared ring.
    const SHARED: u8 = 2;

    std::thread_local! {
        /// The fast path: no destructor, so reading it never registers one.
        static STATE: Cell<(u8, *const GlobalProducer)> =
            const { Cell::new((UNATTACHED, core::ptr::null())) };
        /// Owns the producer; releases the ring when the thread exits.
        static OWNER: Cell<Option<Guard>> = const { Cell::new(None) };
    }

    /// Dropping it drops the producer, which releases the ring.
    struct Guard(#[allow(dead_code)] Box<GlobalProducer>);

    impl Drop for Guard {
        fn drop(&mut self) {
            // Later events of this thread (other destructors) go to the shared ring.
            let _ = STATE.try_with(|s| s.set((SHARED, core::ptr::null())));
        }
    }

    use std::boxed::Box;

    #[inline(always)]
    pub(super) fn record(id: EventId, args: &[u64]) {
        let (state, p) = STATE.with(|s| s.get());
        if state == ATTACHED {
            // SAFETY: the producer lives in `OWNER` until the thread's destructors run,
            // and `Guard::drop` switches `STATE` away from it first thing.
            unsafe { (*p).record(id, args) };
            return;
        }
        slow(state, id, args)
    }

    #[cold]
    #[inline(never)]
    fn slow(state: u8, id: EventId, args: &[u64]) {
        if state == UNATTACHED {
            let task = thread_id();
            if let Some(p) = GLOBAL.attach(task) {
                let b = Box::new(p);
                let ptr: *const GlobalProducer = &*b;
                if OWNER.try_with(|o| o.set(Some(Guard(b)))).is_ok() {
                    STATE.with(|s| s.set((ATTACHED, ptr)));
                    // SAFETY: just stored in `OWNER`.
                    unsafe { (*ptr).record(id, args) };
                    return;
                }
            }
            STATE.with(|s| s.set((SHARED, core::ptr::null())));
        }
        GLOBAL.record_shared(u32::MAX, thread_id(), id, args);
    }

    std::thread_local! {
        static TID: Cell<u64> = const { Cell::new(u64::MAX) };
    }

    /// The OS thread id (Linux `gettid`, asked once per thread).
    pub(crate) fn thread_id() -> u64 {
        let cached = TID.try_with(|t| t.get()).unwrap_or(u64::MAX);
        if cached != u64::MAX {
            return cached;
        }
        #[cfg(target_os = "linux")]
        // SAFETY: `gettid` has no preconditions.
        let tid = (unsafe { libc::gettid() }) as u64;
        #[cfg(not(target_os = "linux"))]
        let tid = 0;
        let _ = TID.try_with(|t| t.set(tid));
        tid
    }
}

#[cfg(feature = "std")]
pub(crate) use host::thread_id;
