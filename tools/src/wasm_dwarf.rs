//! A wasm module's own DWARF: source lines for its JIT frames.
//!
//! Compilers targeting wasm (rustc, clang) put DWARF in custom sections named like the
//! ELF sections (`.debug_info`, `.debug_line`, ...). Their addresses are offsets into
//! the module's code section, counted from the first byte of the section's payload (its
//! function count), as the tool conventions of the WebAssembly DWARF spec and LLVM's
//! wasm object reader define them. Wasmtime's address map, which clew's registry keeps
//! per JIT module ([`clew_unwinder::SymbolMap::source_offset`]), gives each instruction's
//! offset in the whole module file instead; [`WasmDwarf::frames`] converts one into the
//! other and asks `addr2line` for the frames, inlined ones included.
//!
//! The sections are walked with `wasmparser` (a bad module is an error here only if
//! Wasmtime would not have rejected it first); nothing else of the module is read.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use clew_symbolizer::{Frame, Language, Name};
use gimli::{EndianArcSlice, LittleEndian};
use wasmparser::{Parser, Payload};

type Reader = EndianArcSlice<LittleEndian>;

/// A module's DWARF, ready for lookups by wasm file offset.
pub struct WasmDwarf {
    /// File offset of the code section's payload: DWARF address 0.
    code_start: u64,
    /// `addr2line`'s context parses units lazily through `&self` and is not `Sync`;
    /// backtraces are printed from host functions and panic reports, one at a time.
    context: Mutex<addr2line::Context<Reader>>,
}

impl std::fmt::Debug for WasmDwarf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmDwarf")
            .field("code_start", &self.code_start)
            .finish_non_exhaustive()
    }
}

impl WasmDwarf {
    /// The DWARF of the wasm binary `bytes`; `None` when it has no `.debug_info` or no
    /// code section (e.g. a module from `.wat`, or a stripped one).
    pub fn parse(bytes: &[u8]) -> Result<Option<WasmDwarf>> {
        let mut code_start = None;
        let mut sections: Vec<(String, Arc<[u8]>)> = Vec::new();
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.context("reading the module's sections")? {
                Payload::CodeSectionStart { range, .. } => code_start = Some(range.start as u64),
                Payload::CustomSection(c) if c.name().starts_with(".debug_") => {
                    sections.push((c.name().to_owned(), c.data().into()));
                }
                _ => {}
            }
        }
        let Some(code_start) = code_start else {
            return Ok(None);
        };
        if !sections.iter().any(|(n, _)| n == ".debug_info") {
            return Ok(None);
        }
        let dwarf = gimli::Dwarf::load(|id| -> Result<Reader, gimli::Error> {
            let data = sections
                .iter()
                .find(|(n, _)| n == id.name())
                .map_or_else(|| Arc::from(&[][..]), |(_, d)| d.clone());
            Ok(EndianArcSlice::new(data, LittleEndian))
        })?;
        let context =
            addr2line::Context::from_dwarf(dwarf).context("reading the module's DWARF")?;
        Ok(Some(WasmDwarf {
            code_start,
            context: Mutex::new(context),
        }))
    }

    /// The DWARF address (code-section offset) of a wasm file offset.
    pub fn address(&self, file_offset: u32) -> Option<u64> {
        u64::from(file_offset).checked_sub(self.code_start)
    }

    /// The source frames of the instruction at `file_offset` (an offset in the module
    /// file, as Wasmtime reports it), innermost inlined function first, each `Frame`
    /// carrying `source_offset = file_offset`. Empty when DWARF knows nothing there.
    pub fn frames(&self, file_offset: u32) -> Vec<Frame> {
        let Some(probe) = self.address(file_offset) else {
            return Vec::new();
        };
        let context = self.context.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        let Ok(mut iter) = context.find_frames(probe).skip_all_loads() else {
            return out;
        };
        while let Ok(Some(f)) = iter.next() {
            let language = match f.function.as_ref().and_then(|n| n.language) {
                Some(gimli::DW_LANG_Rust) => Language::Rust,
                Some(
                    gimli::DW_LANG_C_plus_plus
                    | gimli::DW_LANG_C_plus_plus_03
                    | gimli::DW_LANG_C_plus_plus_11
                    | gimli::DW_LANG_C_plus_plus_14,
                ) => Language::Cpp,
                Some(gimli::DW_LANG_C89 | gimli::DW_LANG_C99 | gimli::DW_LANG_C11) => Language::C,
                _ => Language::Unknown,
            };
            let function = f
                .function
                .as_ref()
                .and_then(|n| n.raw_name().ok().map(Cow::into_owned))
                .map(|raw| Name::new(&raw, language));
            let (file, line, column) = match &f.location {
                Some(l) => (l.file.map(Arc::from), l.line, l.column),
                None => (None, None, None),
            };
            out.push(Frame {
                function,
                file,
                line: line.filter(|&l| l != 0),
                column: column.filter(|&c| c != 0),
                discriminator: None,
                inlined: true,
                source_offset: Some(file_offset),
            });
        }
        if let Some(last) = out.last_mut() {
            last.inlined = false;
        }
        // A frame with neither a name nor a location says nothing.
        if out.len() == 1 && out[0].function.is_none() && out[0].file.is_none() {
            out.clear();
        }
        out
    }
}
