//! [`Symbolizer`]: runtime addresses of a whole address space (a process, a kernel) to
//! frames. JIT addresses resolve from clew's registry; native ones from the ELF image
//! mapped there, found among the registered [`Mapping`]s or through an
//! [`ImageLoader`] (std: the running process's objects via `dl_iterate_phdr`).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ops::Range;

use clew_unwinder::Registry;

use crate::jit::{self, Which};
use crate::{ElfImage, Error, ModuleInfo, ModuleKind, Symbolized};

/// An image mapped into the address space: runtime address = image address + `bias`.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// The runtime addresses the image covers.
    pub range: Range<u64>,
    /// What to add to an image address to get a runtime one (wrapping).
    pub bias: u64,
    pub image: Arc<ElfImage>,
}

impl Mapping {
    /// The image address of runtime address `pc`.
    pub fn to_image(&self, pc: u64) -> u64 {
        pc.wrapping_sub(self.bias)
    }
}

/// Finds the image mapped at an address the [`Symbolizer`] does not know yet.
pub trait ImageLoader: Send + Sync {
    fn load(&self, pc: u64) -> Option<Mapping>;
}

/// Symbolizes runtime addresses. `Sync`: share one between threads.
pub struct Symbolizer {
    mappings: spin::RwLock<Vec<Mapping>>,
    loader: spin::Once<Box<dyn ImageLoader>>,
    registry: spin::Once<Option<&'static Registry>>,
}

impl Default for Symbolizer {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbolizer {
    /// A symbolizer with no images, answering JIT addresses from the global registry.
    pub const fn new() -> Self {
        Symbolizer {
            mappings: spin::RwLock::new(Vec::new()),
            loader: spin::Once::new(),
            registry: spin::Once::new(),
        }
    }

    /// Answers JIT addresses from `registry` (`None`: not at all) instead of
    /// [`clew_unwinder::global`]. Only the first call (or first lookup) counts.
    pub fn set_registry(&self, registry: Option<&'static Registry>) {
        self.registry.call_once(|| registry);
    }

    /// Sets the loader asked about addresses no mapping covers. Only the first call
    /// counts.
    pub fn set_loader(&self, loader: Box<dyn ImageLoader>) {
        self.loader.call_once(|| loader);
    }

    /// Adds an image mapping (replacing mappings it overlaps).
    pub fn add(&self, mapping: Mapping) {
        let mut m = self.mappings.write();
        m.retain(|o| o.range.end <= mapping.range.start || mapping.range.end <= o.range.start);
        let i = m.partition_point(|o| o.range.start < mapping.range.start);
        m.insert(i, mapping);
    }

    /// Adds an image loaded at `bias` (runtime = image address + bias), covering its
    /// loadable segments.
    pub fn add_image(&self, image: Arc<ElfImage>, bias: u64) {
        let segs = image.segments();
        let lo = segs.iter().map(|s| s.vaddr).min().unwrap_or(0);
        let hi = segs
            .iter()
            .map(|s| s.vaddr + s.memsz)
            .max()
            .unwrap_or(u64::MAX);
        self.add(Mapping {
            range: lo.wrapping_add(bias)..hi.wrapping_add(bias),
            bias,
            image,
        });
    }

    /// Removes the mapping starting at `start` (an unloaded image).
    pub fn remove(&self, start: u64) -> Option<Mapping> {
        let mut m = self.mappings.write();
        let i = m.iter().position(|o| o.range.start == start)?;
        Some(m.remove(i))
    }

    /// The known mappings.
    pub fn mappings(&self) -> Vec<Mapping> {
        self.mappings.read().clone()
    }

    /// The mapping holding `pc`, asking the loader when none is known.
    pub fn mapping(&self, pc: u64) -> Option<Mapping> {
        if let Some(m) = self.find(pc) {
            return Some(m);
        }
        let m = self.loader.get()?.load(pc)?;
        if !m.range.contains(&pc) {
            return None;
        }
        self.add(m.clone());
        Some(m)
    }

    fn find(&self, pc: u64) -> Option<Mapping> {
        let m = self.mappings.read();
        let i = m.partition_point(|o| o.range.start <= pc).checked_sub(1)?;
        m.get(i).filter(|o| pc < o.range.end).cloned()
    }

    fn registry(&self) -> Option<&'static Registry> {
        *self.registry.call_once(|| Some(clew_unwinder::global()))
    }

    /// Symbolizes the runtime address `pc` (for a return address, pass `pc - 1`).
    pub fn symbolize(&self, pc: u64) -> Result<Symbolized, Error> {
        let registry = self.registry();
        if let Some(s) = registry.and_then(|r| jit::symbolize(r, pc, Which::Jit)) {
            return Ok(s);
        }
        if let Some(m) = self.mapping(pc) {
            let relative = m.to_image(pc);
            let (frames, start) = m.image.lookup(relative)?;
            if frames.is_empty()
                && let Some(s) = registry.and_then(|r| jit::symbolize(r, pc, Which::Any))
            {
                return Ok(s);
            }
            return Ok(Symbolized {
                address: pc,
                module: Some(ModuleInfo {
                    name: m.image.name().clone(),
                    kind: ModuleKind::Elf,
                    relative,
                }),
                frames,
                symbol_start: start.map(|s| s.wrapping_add(m.bias)),
            });
        }
        registry
            .and_then(|r| jit::symbolize(r, pc, Which::Any))
            .ok_or(Error::NotFound)
    }

    /// Symbolizes many addresses: one result each, in order, looked up in address order
    /// (units are parsed once and stay warm).
    pub fn symbolize_batch(&self, pcs: &[u64]) -> Vec<Result<Symbolized, Error>> {
        crate::batch::in_address_order(pcs, |pc| self.symbolize(pc))
    }
}

impl core::fmt::Debug for Symbolizer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("mappings", &self.mappings.read().len())
            .finish()
    }
}
