//! What an address symbolizes to: the module holding it and its frames, innermost
//! inlined function first, the function the code was compiled into last.

use alloc::sync::Arc;
use alloc::vec::Vec;

use crate::Name;

/// One source-level frame of an address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// The function (raw name and cached demangled form); `None` when unknown.
    pub function: Option<Name>,
    /// The source file path; `None` when unknown.
    pub file: Option<Arc<str>>,
    /// The line; `None` when unknown. Line 0 in the line table (code that belongs to no
    /// source line) is reported as `None` too: explicitly unknown.
    pub line: Option<u32>,
    /// The column; `None` when unknown or 0.
    pub column: Option<u32>,
    /// The line table's discriminator (or the call site's), when not 0.
    pub discriminator: Option<u32>,
    /// Whether this frame was inlined into the next one (all frames but the last).
    pub inlined: bool,
    /// For JIT code: the offset in the source the code was compiled from (Wasmtime:
    /// the wasm bytecode offset).
    pub source_offset: Option<u32>,
}

/// What kind of module holds an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ModuleKind {
    /// An ELF image (executable, shared object, kernel or kernel crate image).
    Elf,
    /// JIT code registered in clew's registry.
    Jit,
}

/// The module holding an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The image's path or name, or the JIT module's registered name.
    pub name: Arc<str>,
    pub kind: ModuleKind,
    /// The address relative to the module: the image's own virtual address (what
    /// `addr2line -e FILE` takes) for ELF images, the offset into the text for JIT
    /// modules.
    pub relative: u64,
}

/// The symbolization of one address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbolized {
    /// The address asked about.
    pub address: u64,
    pub module: Option<ModuleInfo>,
    /// Innermost first. Empty when the module holds the address but knows nothing
    /// about it (no symbol, no debug information).
    pub frames: Vec<Frame>,
    /// The start address of the enclosing function's symbol, when a symbol covers the
    /// address (same address space as `address`).
    pub symbol_start: Option<u64>,
}

impl Symbolized {
    /// The function the code was compiled into (the last frame's function).
    pub fn outer_function(&self) -> Option<&Name> {
        self.frames.last()?.function.as_ref()
    }
}
