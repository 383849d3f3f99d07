//! Wasmtime: register a loaded module's `.eh_frame` with clew.
//!
//! A compiled `wasmtime::Module` lives in memory as a relocatable ELF image
//! ([`Module::image_range`]): its `.text` is [`Module::text`] and its `.eh_frame`, with
//! FDE addresses encoded pc-relative to the section's runtime address, sits in the same
//! image (right after the page-padded `.text`). All section addresses in the image are
//! 0, so a section's runtime address is the image start plus its file offset. Wasmtime
//! hands the same bytes to libgcc's `__register_frame` when it publishes the code;
//! [`register`] hands them to clew's registry too.
//!
//! Needs `Config::native_unwind_info(true)` (the default). With guest debugging
//! (`Config::guest_debug`) each store runs a private copy of the code, which
//! `Module::text` does not describe: registering the module then covers no frame.

use std::ops::Range;

use ::wasmtime::Module;
use anyhow::{Context, Result, anyhow, bail};
use clew_unwinder::{ModuleDesc, ModuleHandle, ModuleKind, Registry};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use super::{JitSymbol, SymbolMap};

/// A Wasmtime module registered in a clew registry; deregisters it on drop.
///
/// Holds a clone of the `Module`, which keeps the code image (and the `.eh_frame` the
/// registry reads) mapped for as long as the registration lives.
pub struct JitRegistration {
    registry: &'static Registry,
    handle: ModuleHandle,
    text: Range<usize>,
    eh_frame: Range<usize>,
    /// The module's defined functions ([`Module::functions`]).
    functions: SymbolMap,
    /// Other code symbols of the image (Wasmtime's entry and exit trampolines).
    trampolines: SymbolMap,
    module: Module,
}

/// Registers `module`'s code in clew's [`clew_unwinder::global`] registry as a
/// [`ModuleKind::Jit`] module named after the module (or `"wasm module"`).
pub fn register(module: &Module) -> Result<JitRegistration> {
    register_in(clew_unwinder::global(), module)
}

/// Like [`register`], in a given registry.
pub fn register_in(registry: &'static Registry, module: &Module) -> Result<JitRegistration> {
    let text = module.text();
    let text_range = text.as_ptr() as usize..text.as_ptr() as usize + text.len();
    if text.is_empty() {
        bail!("the module has no code");
    }
    let image = module.image_range();
    let image_start = image.start as usize;
    // SAFETY: `image_range` is the module's mapped, readable code image, alive while
    // `module` is.
    let image =
        unsafe { std::slice::from_raw_parts(image.start, image.end as usize - image_start) };
    let elf = object::File::parse(image).context("parsing the module's code image")?;
    let section = elf
        .section_by_name(".eh_frame")
        .ok_or_else(|| anyhow!("the module has no .eh_frame (native_unwind_info disabled?)"))?;
    let (offset, size) = section
        .file_range()
        .ok_or_else(|| anyhow!(".eh_frame has no bytes in the image"))?;
    let eh_frame = &image[offset as usize..(offset + size) as usize];
    // SAFETY: the image stays mapped while the `Module` clone held by the returned
    // guard lives, and the guard deregisters (waiting for readers) before dropping it.
    let eh_frame: &'static [u8] =
        unsafe { std::slice::from_raw_parts(eh_frame.as_ptr(), eh_frame.len()) };

    let functions: Vec<JitSymbol> = module
        .functions()
        .map(|f| JitSymbol {
            name: f
                .name
                .unwrap_or_else(|| format!("wasm-function[{}]", f.index.as_u32())),
            range: text_range.start + f.offset..text_range.start + f.offset + f.len,
        })
        .collect();
    let text_section = elf.section_by_name(".text").map(|s| s.index());
    let trampolines: Vec<JitSymbol> = elf
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.section_index() == text_section)
        .filter_map(|s| {
            // Relocatable image: symbol values are offsets into `.text`.
            let start = text_range.start + s.address() as usize;
            let name = s.name().ok()?;
            (!functions.iter().any(|f| f.range.start == start)).then(|| JitSymbol {
                name: name.to_owned(),
                range: start..start + s.size() as usize,
            })
        })
        .collect();

    let name = module.name().unwrap_or("wasm module");
    let desc = ModuleDesc {
        name,
        kind: ModuleKind::Jit,
        text: Some(text_range.clone()),
        eh_frame,
        eh_frame_hdr: None,
        lsda: None,
    };
    // SAFETY: `eh_frame` stays valid until the guard's drop has deregistered it (above).
    // The registry's map names every function and trampoline, and maps code addresses
    // to wasm bytecode offsets (`Module::address_map`).
    let source_offsets: Vec<(usize, Option<u32>)> = module
        .address_map()
        .into_iter()
        .flatten()
        .map(|(off, wasm)| (text_range.start + off, wasm))
        .collect();
    let all: Vec<JitSymbol> = functions.iter().chain(&trampolines).cloned().collect();
    let map = SymbolMap::new(all, source_offsets);
    // Through the tracer: a module-registered event goes to the flight recorder, so a
    // dump's events say when the code appeared.
    let handle = unsafe { clew_tracer::modules::register(registry, &desc, map) }
        .map_err(|e| anyhow!("registering wasm module {name:?}: {e}"))?;
    Ok(JitRegistration {
        registry,
        handle,
        text: text_range,
        eh_frame: eh_frame.as_ptr() as usize..eh_frame.as_ptr() as usize + eh_frame.len(),
        functions: SymbolMap::new(functions.clone(), Vec::new()),
        trampolines: SymbolMap::new(trampolines.clone(), Vec::new()),
        module: module.clone(),
    })
}

/// Converts Wasmtime's error type (which is not a `std::error::Error`) for `anyhow`.
pub fn wasmtime_error(e: ::wasmtime::Error) -> anyhow::Error {
    anyhow::Error::from_boxed(e.into())
}

impl JitRegistration {
    /// The registry's handle of this module.
    pub fn handle(&self) -> ModuleHandle {
        self.handle
    }

    /// The registered text range (= [`Module::text`]).
    pub fn text(&self) -> Range<usize> {
        self.text.clone()
    }

    /// Where the registered `.eh_frame` lies in the code image.
    pub fn eh_frame(&self) -> Range<usize> {
        self.eh_frame.clone()
    }

    pub fn module(&self) -> &Module {
        &self.module
    }

    /// The module's defined wasm functions, with runtime ranges.
    pub fn functions(&self) -> &[JitSymbol] {
        self.functions.symbols()
    }

    /// The wasm function holding `pc` and `pc`'s offset into it (pass `pc - 1` for a
    /// return address). `None` outside the module's functions, e.g. in a trampoline.
    pub fn function_at(&self, pc: usize) -> Option<(&str, usize)> {
        self.functions.lookup(pc).map(|h| (h.name, h.offset))
    }

    /// Like [`JitRegistration::function_at`], and also names Wasmtime's trampolines
    /// (from the image's symbol table), e.g. `wasm[0]::array_to_wasm_trampoline[1]`.
    pub fn symbol_at(&self, pc: usize) -> Option<(&str, usize)> {
        self.functions
            .lookup(pc)
            .or_else(|| self.trampolines.lookup(pc))
            .map(|h| (h.name, h.offset))
    }
}

impl Drop for JitRegistration {
    fn drop(&mut self) {
        super::deregistering(self.registry, self.handle);
        // Cannot fail: the handle is ours and deregistered only here.
        let _ = self.registry.deregister(self.handle);
    }
}

impl std::fmt::Debug for JitRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitRegistration")
            .field("handle", &self.handle)
            .field("name", &self.module.name())
            .field("text", &format_args!("{:#x?}", self.text))
            .field("functions", &self.functions.symbols().len())
            .finish()
    }
}
