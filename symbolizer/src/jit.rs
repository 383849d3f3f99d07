//! JIT code: names from the symbol maps registered with modules in clew's registry
//! (Wasmtime function names and wasm offsets, cranelift-jit function names). Nothing
//! on disk describes JIT code, and a module's map goes away with its registration.

use alloc::vec;
use alloc::vec::Vec;

use clew_unwinder::{Module, Registry};

use crate::{Frame, Language, ModuleInfo, ModuleKind, Name, Symbolized};

/// Which registry modules to answer for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// Only JIT modules (native code resolves from its ELF image first).
    Jit,
    /// Any module with a non-empty symbol map (a fallback for native code).
    Any,
}

/// Symbolizes `pc` from the registry module holding it, if that module is one of
/// `which`.
pub(crate) fn symbolize(registry: &Registry, pc: u64, which: Which) -> Option<Symbolized> {
    let guard = registry.pin();
    let module = guard.find_module(usize::try_from(pc).ok()?)?;
    let is_jit = module.kind() == clew_unwinder::ModuleKind::Jit;
    if !is_jit && (which == Which::Jit || module.symbols().is_empty()) {
        return None;
    }
    Some(Symbolized {
        address: pc,
        module: Some(ModuleInfo {
            name: module.name().into(),
            kind: if is_jit {
                ModuleKind::Jit
            } else {
                ModuleKind::Elf
            },
            relative: pc - module.text().start as u64,
        }),
        frames: frames(module, pc as usize),
        symbol_start: module.symbols().lookup(pc as usize).map(|h| h.start as u64),
    })
}

fn frames(module: &Module, pc: usize) -> Vec<Frame> {
    let symbols = module.symbols();
    match symbols.lookup(pc) {
        Some(hit) => vec![Frame {
            function: Some(Name::new(hit.name, Language::Unknown)),
            source_offset: symbols.source_offset(pc),
            ..Frame::default()
        }],
        None => Vec::new(),
    }
}
