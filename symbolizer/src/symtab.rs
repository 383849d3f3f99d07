//! The ELF symbol table: function names when there is no DWARF, and the name of the
//! outermost frame when there is (llvm-symbolizer's rule: the symbol table names the
//! function the code was compiled into, e.g. GCC's `foo.cold` and `foo.constprop.0`
//! clones, which DWARF names `foo`).
//!
//! Merged functions (several symbols at one address, as identical-code folding and
//! LLVM's function merging leave them) resolve deterministically, with llvm's rule: the
//! largest size wins, then the symbol that comes last in the table. Names are read only
//! for the symbols that answer a lookup. A local symbol also has a file: the `STT_FILE`
//! symbol before it, which names the frame's file when DWARF does not (llvm's rule).

use alloc::vec::Vec;

use object::{Object, ObjectSymbol, ObjectSymbolTable, SymbolIndex, SymbolKind};

const NO_FILE: u32 = u32::MAX;

/// One code or data symbol.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sym {
    pub addr: u64,
    /// 0: unknown (the symbol then covers everything up to the next one).
    pub size: u64,
    index: u32,
    /// The index of the `STT_FILE` symbol before a local symbol.
    file: u32,
}

/// Symbols sorted by address, one per address.
#[derive(Default)]
pub(crate) struct SymbolTable {
    syms: Vec<Sym>,
    /// Read from `.dynsym` (the image has no `.symtab`).
    dynamic: bool,
}

type File = object::File<'static, &'static [u8]>;

impl SymbolTable {
    /// Reads `.symtab`, or `.dynsym` when there is no `.symtab`.
    pub fn build(file: &File) -> Self {
        let mut syms = Vec::new();
        let mut dynamic = false;
        for_each(file.symbols(), |s| syms.push(s));
        if syms.is_empty() {
            for_each(file.dynamic_symbols(), |s| syms.push(s));
            dynamic = true;
        }
        // Equal addresses: the largest size, then the last in the table, wins.
        syms.sort_unstable_by_key(|s| (s.addr, s.size, s.index));
        let mut out: Vec<Sym> = Vec::with_capacity(syms.len());
        for s in syms {
            match out.last_mut() {
                Some(last) if last.addr == s.addr => *last = s,
                _ => out.push(s),
            }
        }
        out.shrink_to_fit();
        SymbolTable { syms: out, dynamic }
    }

    /// The symbol covering `addr`, by one pass over the file's table without building a
    /// [`SymbolTable`] (cheaper for a single lookup). `None` when the file has no symbols
    /// at all; `Some((None, _))` when none covers `addr`.
    pub fn scan(file: &File, addr: u64) -> Option<(Option<Sym>, bool)> {
        let best = |symbols| {
            let mut any = false;
            let mut best: Option<Sym> = None;
            for_each(symbols, |s: Sym| {
                any = true;
                let key = (s.addr, s.size, s.index);
                if s.addr <= addr && best.is_none_or(|b| key > (b.addr, b.size, b.index)) {
                    best = Some(s);
                }
            });
            any.then(|| best.filter(|s| covers(s, addr)))
        };
        if let Some(found) = best(file.symbols()) {
            return Some((found, false));
        }
        best(file.dynamic_symbols()).map(|found| (found, true))
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    pub fn is_dynamic(&self) -> bool {
        self.dynamic
    }

    /// The symbol covering `addr`.
    pub fn lookup(&self, addr: u64) -> Option<&Sym> {
        let i = self
            .syms
            .partition_point(|s| s.addr <= addr)
            .checked_sub(1)?;
        let s = &self.syms[i];
        covers(s, addr).then_some(s)
    }

    pub fn heap_size(&self) -> usize {
        self.syms.capacity() * core::mem::size_of::<Sym>()
    }
}

fn covers(s: &Sym, addr: u64) -> bool {
    s.size == 0 || addr - s.addr < s.size
}

/// The name of `sym`, read from `file` (`dynamic`: from its `.dynsym`).
pub(crate) fn name(file: &File, dynamic: bool, sym: &Sym) -> Option<&'static str> {
    symbol_name(file, dynamic, sym.index)
}

/// The `STT_FILE` name of a local symbol.
pub(crate) fn file_name(file: &File, dynamic: bool, sym: &Sym) -> Option<&'static str> {
    if sym.file == NO_FILE {
        return None;
    }
    symbol_name(file, dynamic, sym.file)
}

fn symbol_name(file: &File, dynamic: bool, index: u32) -> Option<&'static str> {
    let index = SymbolIndex(index as usize);
    let name = if dynamic {
        file.dynamic_symbol_table()?
            .symbol_by_index(index)
            .ok()?
            .name()
    } else {
        file.symbol_by_index(index).ok()?.name()
    };
    name.ok().filter(|n| !n.is_empty())
}

/// Calls `f` with each code or data symbol defined in a section, in table order.
fn for_each<'a>(
    symbols: impl Iterator<Item = object::Symbol<'static, 'a, &'static [u8]>>,
    mut f: impl FnMut(Sym),
) {
    let mut file = NO_FILE;
    for s in symbols {
        let kind = s.kind();
        if kind == SymbolKind::File {
            file = s.index().0 as u32;
            continue;
        }
        if !matches!(
            kind,
            SymbolKind::Text | SymbolKind::Data | SymbolKind::Unknown
        ) || s.is_undefined()
            || s.section_index().is_none()
        {
            continue;
        }
        f(Sym {
            addr: s.address(),
            size: s.size(),
            index: s.index().0 as u32,
            file: if s.is_local() { file } else { NO_FILE },
        });
    }
}
