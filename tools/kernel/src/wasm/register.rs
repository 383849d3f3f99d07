//! Registers a deserialized Wasmtime module's JIT code with clew: Wasmtime's no_std
//! platform registers no unwind information itself (its `UnwindRegistration` is empty).
//!
//! The module's code image ([`Module::image_range`]) is an ELF file whose `.text` is
//! [`Module::text`]; its `.eh_frame` (FDE addresses pc-relative to the section's
//! runtime address) sits at the image start plus the section's file offset. The
//! functions are named from [`Module::functions`] (the name section), Wasmtime's
//! trampolines from the image's symbol table.

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;

use clew_unwinder::{ModuleDesc, ModuleHandle, ModuleKind, Symbol, SymbolMap};
use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};
use wasmtime::Module;

/// Registers `module` (which must stay alive, and loaded, while registered) in clew's
/// global registry.
pub fn register(module: &Module, name: &str) -> Result<ModuleHandle, &'static str> {
    let text = module.text();
    if text.is_empty() {
        return Err("the module has no code");
    }
    let text = text.as_ptr() as usize..text.as_ptr() as usize + text.len();
    let image = module.image_range();
    // SAFETY: the module's code image, alive while the module is.
    let image: &'static [u8] = unsafe {
        core::slice::from_raw_parts(image.start, image.end as usize - image.start as usize)
    };
    let elf = object::read::elf::ElfFile64::<object::Endianness>::parse(image)
        .map_err(|_| "the module's code image is not an ELF file")?;
    let (offset, size) = elf
        .section_by_name(".eh_frame")
        .ok_or("the module has no .eh_frame (native_unwind_info disabled?)")?
        .file_range()
        .ok_or(".eh_frame has no bytes in the image")?;
    let eh_frame = image
        .get(offset as usize..(offset + size) as usize)
        .ok_or(".eh_frame lies outside the image")?;

    let mut symbols: Vec<Symbol> = module
        .functions()
        .map(|f| Symbol {
            name: f
                .name
                .unwrap_or_else(|| format!("wasm-function[{}]", f.index.as_u32())),
            range: text.start + f.offset..text.start + f.offset + f.len,
        })
        .collect();
    let text_section = elf.section_by_name(".text").map(|s| s.index());
    let trampolines: Vec<Symbol> = elf
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.section_index() == text_section)
        .filter_map(|s| {
            let start = text.start + s.address() as usize;
            let name = s.name().ok()?;
            (!symbols.iter().any(|f| f.range.start == start)).then(|| Symbol {
                name: name.to_string(),
                range: start..start + s.size() as usize,
            })
        })
        .collect();
    symbols.extend(trampolines);
    let offsets: Vec<(usize, Option<u32>)> = module
        .address_map()
        .into_iter()
        .flatten()
        .map(|(off, wasm)| (text.start + off, wasm))
        .collect();
    let desc = ModuleDesc {
        name,
        kind: ModuleKind::Jit,
        text: Some(text),
        eh_frame,
        eh_frame_hdr: None,
        lsda: None,
    };
    // SAFETY: the image (and its `.eh_frame`) lives as long as the module, which the
    // caller keeps loaded while registered.
    unsafe {
        clew_unwinder::global().register_with_symbols(&desc, SymbolMap::new(symbols, offsets))
    }
    .map_err(|_| "clew's registry refused the module's .eh_frame")
}
