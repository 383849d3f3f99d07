//! JIT integrations: make JIT-compiled code walkable by clew's unwinder.
//!
//! clew's unwinder finds a frame's CFI through the [`clew_unwinder::Registry`]; native
//! code is discovered on its own (`dl_iterate_phdr`), JIT code has to be registered.
//! Each integration registers a JIT's `.eh_frame` in the [`clew_unwinder::global`]
//! registry as a [`clew_unwinder::ModuleKind::Jit`] module and hands back an RAII guard
//! that deregisters it on drop. The guards also name the JIT functions (a small
//! [`SymbolTable`]), since no symbolizer knows them.
//!
//! - [`wasmtime`]: a loaded `wasmtime::Module` already carries an `.eh_frame` in its
//!   in-memory ELF image; [`wasmtime::register`] finds and registers it.
//! - [`cranelift`]: cranelift-jit emits no unwind tables at all;
//!   [`cranelift::JitUnwindInfo`] builds one from Cranelift's per-function unwind info.

pub mod cranelift;
pub mod wasmtime;

use std::ops::Range;

/// A named range of JIT code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitSymbol {
    pub name: String,
    /// Runtime addresses, `start..end`.
    pub range: Range<usize>,
}

/// JIT symbols sorted by address, for naming PCs.
#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    symbols: Vec<JitSymbol>,
}

impl SymbolTable {
    pub fn new(mut symbols: Vec<JitSymbol>) -> Self {
        symbols.sort_by_key(|s| (s.range.start, s.range.end));
        SymbolTable { symbols }
    }

    /// The symbol whose range holds `pc`, and `pc`'s offset into it. For a return
    /// address pass `pc - 1` (or `Frame::lookup_pc`): a call may be a function's last
    /// instruction, so its return address already lies past the function's end.
    pub fn lookup(&self, pc: usize) -> Option<(&str, usize)> {
        let i = self.symbols.partition_point(|s| s.range.start <= pc);
        let s = self.symbols.get(i.checked_sub(1)?)?;
        s.range
            .contains(&pc)
            .then(|| (s.name.as_str(), pc - s.range.start))
    }

    /// All symbols, sorted by start address.
    pub fn symbols(&self) -> &[JitSymbol] {
        &self.symbols
    }
}
