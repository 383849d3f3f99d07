//! The registry of loaded code: which module holds a PC, and its unwind information.
//!
//! One registry is the source of truth for everything that needs to know what code is
//! loaded: the unwinder, later the symbolizer, the dump writer and the gdb bridge.
//! Lookups take no lock and are async-signal-safe ([`Registry::pin`]); registering and
//! deregistering are serialized among themselves by a spin lock but never block a
//! reader. A deregistered module (and the caller's `.eh_frame` bytes) is no longer read
//! once [`Registry::deregister`] returns: it waits for a grace period ([`epoch`]).

mod address_map;
mod epoch;
mod module;
mod symbols;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

pub use module::{Module, ModuleDesc, ModuleId, ModuleKind};
pub use symbols::{Symbol, SymbolHit, SymbolMap};

use crate::Error;
use crate::eh_frame::FdeEntry;
use address_map::AddressMap;
use epoch::{Epoch, Pin};

/// Names a registered module; returned by [`Registry::register`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModuleHandle(pub ModuleId);

/// The registry. Usually the process-wide [`global`] one; tests and embedders may make
/// their own.
pub struct Registry {
    map: AddressMap,
    epoch: Epoch,
    writer: spin::Mutex<Writer>,
    next_id: AtomicU64,
    generation: AtomicU64,
}

struct Writer {
    modules: BTreeMap<ModuleId, *mut Module>,
    by_eh_frame: BTreeMap<usize, ModuleId>,
}

// SAFETY: the raw pointers in `Writer` are owned boxes, touched only under the lock.
unsafe impl Send for Writer {}

static GLOBAL: Registry = Registry::new();

/// The process-wide registry that the compatibility entry points and the default
/// unwinder use.
pub fn global() -> &'static Registry {
    &GLOBAL
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub const fn new() -> Self {
        Registry {
            map: AddressMap::new(),
            epoch: Epoch::new(),
            writer: spin::Mutex::new(Writer {
                modules: BTreeMap::new(),
                by_eh_frame: BTreeMap::new(),
            }),
            next_id: AtomicU64::new(1),
            generation: AtomicU64::new(0),
        }
    }

    /// Registers a module: parses its `.eh_frame`, builds the sorted FDE index and maps
    /// its text range. Fails without side effects on malformed CFI, FDEs outside the
    /// given text, or a text range that overlaps a registered module.
    ///
    /// # Safety
    /// `desc.eh_frame` (and `eh_frame_hdr`) must stay readable at the same address until
    /// this module's deregistration has returned.
    pub unsafe fn register(&self, desc: &ModuleDesc<'_>) -> Result<ModuleHandle, Error> {
        // SAFETY: forwarded.
        unsafe { self.register_with_symbols(desc, SymbolMap::default()) }
    }

    /// Like [`Registry::register`], with the module's symbol map (JIT function names,
    /// source offsets) published together with it.
    ///
    /// # Safety
    /// As for [`Registry::register`].
    pub unsafe fn register_with_symbols(
        &self,
        desc: &ModuleDesc<'_>,
        symbols: SymbolMap,
    ) -> Result<ModuleHandle, Error> {
        // SAFETY: forwarded.
        unsafe { self.register_inner(desc, None, symbols) }
    }

    /// Registers a copy of a module's `.eh_frame` that was at address `eh_frame_addr`
    /// where the code ran: its CFI's pc-relative pointers are resolved against that
    /// address, not against where the copy lies. For walking another program's stack
    /// (a post-mortem dump decoded on a host) in a private registry: `desc.text` and
    /// the PCs looked up are the other program's addresses.
    ///
    /// # Safety
    /// As for [`Registry::register`].
    pub unsafe fn register_relocated(
        &self,
        desc: &ModuleDesc<'_>,
        eh_frame_addr: u64,
        symbols: SymbolMap,
    ) -> Result<ModuleHandle, Error> {
        // SAFETY: forwarded.
        unsafe { self.register_inner(desc, Some(eh_frame_addr), symbols) }
    }

    unsafe fn register_inner(
        &self,
        desc: &ModuleDesc<'_>,
        eh_frame_addr: Option<u64>,
        symbols: SymbolMap,
    ) -> Result<ModuleHandle, Error> {
        let id = ModuleId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let mut module = Module::new(id, desc, eh_frame_addr)?;
        module.set_symbols(symbols);
        let module = Box::into_raw(Box::new(module));
        // SAFETY: just allocated; not yet shared.
        let text = unsafe { (*module).text() };
        let mut w = self.writer.lock();
        let mut unlinked = Vec::new();
        if let Err(e) = self.map.insert(text.start, text.end, module, &mut unlinked) {
            drop(w);
            // SAFETY: never published.
            drop(unsafe { Box::from_raw(module) });
            return Err(e);
        }
        w.modules.insert(id, module);
        w.by_eh_frame.insert(desc.eh_frame.as_ptr() as usize, id);
        drop(w);
        if !unlinked.is_empty() {
            self.epoch.synchronize();
        }
        drop(unlinked);
        Ok(ModuleHandle(id))
    }

    /// Deregisters a module. When this returns, no reader uses it any more and its
    /// `.eh_frame` bytes may be freed.
    pub fn deregister(&self, handle: ModuleHandle) -> Result<(), Error> {
        let mut w = self.writer.lock();
        let module = w.modules.remove(&handle.0).ok_or(Error::NotRegistered)?;
        // SAFETY: registered modules are live boxes owned by the registry.
        let m = unsafe { &*module };
        let key = m.eh_frame().as_ptr() as usize;
        if w.by_eh_frame.get(&key) == Some(&handle.0) {
            w.by_eh_frame.remove(&key);
        }
        let mut unlinked = Vec::new();
        self.map
            .remove(m.text().start, m.text().end, module, &mut unlinked);
        self.generation.fetch_add(1, Ordering::SeqCst);
        drop(w);
        self.epoch.synchronize();
        drop(unlinked);
        // SAFETY: unlinked and past a grace period: no reader holds it.
        drop(unsafe { Box::from_raw(module) });
        Ok(())
    }

    /// Deregisters the module registered with this `.eh_frame` start address
    /// (libgcc's `__deregister_frame`, Theseus's `deregister_unwind_info` by eh_frame).
    pub fn deregister_eh_frame(&self, eh_frame: *const u8) -> Result<(), Error> {
        let id = *self
            .writer
            .lock()
            .by_eh_frame
            .get(&(eh_frame as usize))
            .ok_or(Error::NotRegistered)?;
        self.deregister(ModuleHandle(id))
    }

    /// Deregisters the module whose text starts at `text_start`.
    pub fn deregister_text(&self, text_start: usize) -> Result<(), Error> {
        let id = {
            let g = self.pin();
            let m = g.find_module(text_start).ok_or(Error::NotRegistered)?;
            if m.text().start != text_start {
                return Err(Error::NotRegistered);
            }
            m.id()
        };
        self.deregister(ModuleHandle(id))
    }

    /// Enters a read-side critical section: lock-free, async-signal-safe, never blocked
    /// by writers. Keep it for the whole stack walk rather than per lookup.
    #[inline]
    pub fn pin(&self) -> Guard<'_> {
        Guard {
            registry: self,
            pin: self.epoch.pin(),
        }
    }

    /// Changes whenever a module is deregistered: caches of unwind rules keyed by PC
    /// are stale once it moves (the same addresses may hold new JIT code).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Calls `f` for every registered module, in text order of registration id. Takes the
    /// writer lock: not for a panic path (see [`Registry::try_for_each_module`]).
    pub fn for_each_module(&self, mut f: impl FnMut(&Module)) {
        let w = self.writer.lock();
        for &m in w.modules.values() {
            // SAFETY: registered modules are live while the writer lock is held.
            f(unsafe { &*m });
        }
    }

    /// Like [`Registry::for_each_module`], but gives up (returns `false`) instead of
    /// waiting when a writer holds the lock, e.g. the code that panicked.
    pub fn try_for_each_module(&self, mut f: impl FnMut(&Module)) -> bool {
        let Some(w) = self.writer.try_lock() else {
            return false;
        };
        for &m in w.modules.values() {
            // SAFETY: as above.
            f(unsafe { &*m });
        }
        true
    }

    /// How many modules are registered.
    pub fn len(&self) -> usize {
        self.writer.lock().modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let w = self.writer.get_mut();
        for (_, m) in core::mem::take(&mut w.modules) {
            // SAFETY: `&mut self`: no reader is left; the registry owns its modules.
            drop(unsafe { Box::from_raw(m) });
        }
    }
}

/// A pinned view of the registry; what it returns stays valid while it lives.
pub struct Guard<'r> {
    registry: &'r Registry,
    pin: Pin,
}

impl<'r> Guard<'r> {
    /// The module whose text holds `pc`.
    #[inline]
    pub fn find_module(&self, pc: usize) -> Option<&Module> {
        let m = self.registry.map.find(pc);
        // SAFETY: modules are freed only after a grace period, and we are pinned.
        unsafe { m.as_ref() }
    }

    /// The module holding `pc` and the index entry of the FDE covering it.
    #[inline]
    pub fn find_fde(&self, pc: usize) -> Option<(&Module, &FdeEntry)> {
        let m = self.find_module(pc)?;
        Some((m, m.find_fde(pc)?))
    }

    pub fn registry(&self) -> &'r Registry {
        self.registry
    }
}

impl Drop for Guard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.registry.epoch.unpin(self.pin);
    }
}
