//! Symbol maps registered with a module: the names of JIT functions, which no file on
//! disk holds, and optionally a map from code addresses to source offsets (Wasmtime's
//! wasm bytecode offsets). The symbolizer, the dump writer and the gdb bridge read them
//! from the registry, so registering a JIT module once makes it nameable everywhere.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

/// One named function of a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// The function's code, as absolute addresses.
    pub range: Range<usize>,
    pub name: String,
}

/// A module's functions (sorted by address) and its address → source offset map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SymbolMap {
    symbols: Vec<Symbol>,
    /// `(code address, source offset)`, sorted by address: the source offset of the
    /// code from that address up to the next entry (`None`: code with no source offset,
    /// such as a prologue).
    source_offsets: Vec<(usize, Option<u32>)>,
}

/// A symbol found for an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolHit<'a> {
    pub name: &'a str,
    /// The symbol's start address.
    pub start: usize,
    /// `address - start`.
    pub offset: usize,
}

impl SymbolMap {
    /// A map of `symbols` (any order) and `source_offsets` (any order).
    pub fn new(mut symbols: Vec<Symbol>, mut source_offsets: Vec<(usize, Option<u32>)>) -> Self {
        // Deterministic for several symbols at one address: lookups scan backwards, so the
        // names sort descending and the lowest name is found first.
        symbols.sort_by(|a, b| {
            a.range
                .start
                .cmp(&b.range.start)
                .then_with(|| b.name.cmp(&a.name))
        });
        source_offsets.sort_unstable();
        SymbolMap {
            symbols,
            source_offsets,
        }
    }

    pub fn symbols(&self) -> &[Symbol] {
        &self.symbols
    }

    /// The code address → source offset map, sorted by address (`None`: no source
    /// position from that address on).
    pub fn source_offsets(&self) -> &[(usize, Option<u32>)] {
        &self.source_offsets
    }

    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// The symbol whose range holds `addr`.
    pub fn lookup(&self, addr: usize) -> Option<SymbolHit<'_>> {
        let i = self.symbols.partition_point(|s| s.range.start <= addr);
        // Ranges may nest or touch: look back for the nearest one that holds `addr`.
        self.symbols[..i]
            .iter()
            .rev()
            .take(4)
            .find(|s| s.range.contains(&addr))
            .map(|s| SymbolHit {
                name: &s.name,
                start: s.range.start,
                offset: addr - s.range.start,
            })
    }

    /// The source offset (e.g. wasm bytecode offset) of the code at `addr`, if mapped.
    pub fn source_offset(&self, addr: usize) -> Option<u32> {
        let i = self.source_offsets.partition_point(|&(a, _)| a <= addr);
        self.source_offsets.get(i.checked_sub(1)?)?.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn lookup_and_source_offsets() {
        let s = |a: usize, b: usize, n: &str| Symbol {
            range: a..b,
            name: String::from(n),
        };
        let map = SymbolMap::new(
            vec![
                s(0x200, 0x300, "b"),
                s(0x100, 0x180, "a"),
                s(0x100, 0x180, "a_alias"),
            ],
            vec![
                (0x210, Some(7)),
                (0x100, Some(3)),
                (0x250, Some(9)),
                (0x260, None),
            ],
        );
        assert_eq!(
            map.lookup(0x100).unwrap().name,
            "a",
            "the lowest name of merged symbols"
        );
        assert_eq!(map.lookup(0x17f).unwrap().offset, 0x7f);
        assert!(map.lookup(0x180).is_none());
        assert_eq!(map.lookup(0x2ff).unwrap().name, "b");
        assert!(map.lookup(0x99).is_none());
        assert_eq!(map.source_offset(0x220), Some(7));
        assert_eq!(map.source_offset(0x250), Some(9));
        assert_eq!(map.source_offset(0x50), None);
        assert_eq!(map.source_offset(0x270), None);
    }
}
