//! A registered module: one text range and the unwind information that covers it.

use alloc::string::String;
use core::ops::Range;

use gimli::{BaseAddresses, EhFrame, UnwindSection};

use super::symbols::SymbolMap;
use crate::Error;
use crate::eh_frame::{EhFrameIndex, Fde, FdeEntry, Reader};

/// Where a module's code came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    /// Code present when the program started (the executable, its shared libraries, a kernel image).
    Static,
    /// An object file loaded at run time (a Theseus crate, a `dlopen`ed library).
    LoadedObject,
    /// JIT-compiled code (Wasmtime, cranelift-jit).
    Jit,
}

/// A module's stable identity: never reused within a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModuleId(pub u64);

/// What a caller describes when registering a module.
#[derive(Clone, Debug)]
pub struct ModuleDesc<'a> {
    /// A human-readable name (a file path, a crate name, `wasm module foo`).
    pub name: &'a str,
    pub kind: ModuleKind,
    /// The text bounds. `None` derives them from the FDEs (libgcc's `__register_frame`).
    pub text: Option<Range<usize>>,
    /// The `.eh_frame` section, at its runtime address. Zero-terminated or exact.
    pub eh_frame: &'static [u8],
    /// The `.eh_frame_hdr` section, when the module has one.
    pub eh_frame_hdr: Option<&'static [u8]>,
    /// The LSDA section (`.gcc_except_table`), when known.
    pub lsda: Option<Range<usize>>,
}

/// A registered module, as readers see it.
///
/// `repr(C)` keeps what a lookup reads on its first cache line: the text bounds (the
/// address map checks them when a page is shared), the section start, and the front of
/// the FDE index, which holds the FDEs themselves for a module of at most
/// [`crate::eh_frame::SMALL_FDES`] of them. With 100 000 modules every lookup misses the
/// cache on the module, and should miss only once.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Module {
    text: Range<usize>,
    eh_frame_start: usize,
    index: EhFrameIndex,
    eh_frame_bytes: &'static [u8],
    pub(crate) id: ModuleId,
    kind: ModuleKind,
    name: String,
    eh_frame: EhFrame<Reader>,
    eh_frame_hdr: Option<&'static [u8]>,
    lsda: Option<Range<usize>>,
    bases: BaseAddresses,
    symbols: SymbolMap,
}

// What a lookup reads must share the module's first cache line: the text bounds, the
// section start, the index's FDE slice and its inline FDEs.
const _: () =
    assert!(core::mem::offset_of!(Module, index) + crate::eh_frame::HOT_INDEX_BYTES <= 64);

impl Module {
    /// Parses the module's `.eh_frame` and builds its FDE index. `eh_frame_addr` is the
    /// address its CFI's pc-relative pointers are relative to: where the bytes are, or,
    /// for a copy (a dumped module re-registered on a host), where they were.
    pub(crate) fn new(
        id: ModuleId,
        desc: &ModuleDesc<'_>,
        eh_frame_addr: Option<u64>,
    ) -> Result<Self, Error> {
        let bytes = desc.eh_frame;
        let mut eh_frame = EhFrame::new(bytes, gimli::NativeEndian);
        eh_frame.set_address_size(core::mem::size_of::<usize>() as u8);
        let at = eh_frame_addr.unwrap_or(bytes.as_ptr() as u64);
        let mut bases = BaseAddresses::default().set_eh_frame(at);
        if let Some(hdr) = desc.eh_frame_hdr {
            bases = bases.set_eh_frame_hdr(hdr.as_ptr() as u64);
        }
        let text = match &desc.text {
            Some(t) if t.start >= t.end => return Err(Error::BadTextRange),
            Some(t) => {
                bases = bases.set_text(t.start as u64);
                Some(t.start as u64..t.end as u64)
            }
            None => None,
        };
        let (index, bounds) = EhFrameIndex::build(&eh_frame, &bases, text)?;
        if bounds.start >= bounds.end {
            return Err(Error::BadTextRange);
        }
        let text = bounds.start as usize..bounds.end as usize;
        Ok(Module {
            id,
            name: String::from(desc.name),
            kind: desc.kind,
            bases: bases.set_text(text.start as u64),
            text,
            eh_frame,
            eh_frame_start: bytes.as_ptr() as usize,
            eh_frame_bytes: bytes,
            eh_frame_hdr: desc.eh_frame_hdr,
            lsda: desc.lsda.clone(),
            index,
            symbols: SymbolMap::default(),
        })
    }

    pub(crate) fn set_symbols(&mut self, symbols: SymbolMap) {
        self.symbols = symbols;
    }

    /// The symbol map registered with the module (empty unless one was given).
    pub fn symbols(&self) -> &SymbolMap {
        &self.symbols
    }

    pub fn id(&self) -> ModuleId {
        self.id
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn kind(&self) -> ModuleKind {
        self.kind
    }
    /// The text bounds this module was registered with (or derived from its FDEs).
    pub fn text(&self) -> Range<usize> {
        self.text.clone()
    }
    /// The `.eh_frame` bytes, at their runtime address.
    pub fn eh_frame(&self) -> &'static [u8] {
        self.eh_frame_bytes
    }
    /// The address of the `.eh_frame` section (on the lookup's cache line, unlike
    /// [`Module::eh_frame`]): an FDE's address is this plus its [`FdeEntry::offset`].
    #[inline]
    pub fn eh_frame_start(&self) -> usize {
        self.eh_frame_start
    }
    /// Whether `pc` is inside the text bounds.
    #[inline]
    pub(crate) fn contains(&self, pc: usize) -> bool {
        self.text.start <= pc && pc < self.text.end
    }
    pub fn eh_frame_hdr(&self) -> Option<&'static [u8]> {
        self.eh_frame_hdr
    }
    pub fn lsda(&self) -> Option<Range<usize>> {
        self.lsda.clone()
    }
    /// The sorted FDE index.
    pub fn fde_index(&self) -> &EhFrameIndex {
        &self.index
    }
    /// The base addresses pointers in this module's CFI are relative to.
    pub fn bases(&self) -> &BaseAddresses {
        &self.bases
    }
    pub fn eh_frame_section(&self) -> &EhFrame<Reader> {
        &self.eh_frame
    }

    /// The index entry of the FDE covering `pc`, if any.
    #[inline]
    pub fn find_fde(&self, pc: usize) -> Option<&FdeEntry> {
        let off = pc.checked_sub(self.text.start)?;
        if pc >= self.text.end {
            return None;
        }
        self.index.find(off as u32)
    }

    /// Parses the FDE an index entry points to (its CIE comes from the cache).
    pub fn parse_fde(&self, entry: &FdeEntry) -> Result<Fde, Error> {
        let partial = self
            .eh_frame
            .partial_fde_from_offset(&self.bases, gimli::EhFrameOffset(entry.offset as usize))?;
        Ok(partial.parse(|_, _, off| self.index.cie(off.0))?)
    }
}
