//! JIT integrations: make JIT-compiled code walkable by clew's unwinder.
//!
//! clew's unwinder finds a frame's CFI through the [`clew_unwinder::Registry`]; native
//! code is discovered on its own (`dl_iterate_phdr`), JIT code has to be registered.
//! Each integration registers a JIT's `.eh_frame` in the [`clew_unwinder::global`]
//! registry as a [`clew_unwinder::ModuleKind::Jit`] module, together with a
//! [`SymbolMap`] naming its functions (no file on disk knows them), and hands back an
//! RAII guard that deregisters it on drop.
//!
//! - [`wasmtime`]: a loaded `wasmtime::Module` already carries an `.eh_frame` in its
//!   in-memory ELF image; [`wasmtime::register`] finds and registers it.
//! - [`cranelift`]: cranelift-jit emits no unwind tables at all;
//!   [`cranelift::JitUnwindInfo`] builds one from Cranelift's per-function unwind info.

pub mod cranelift;
pub mod wasmtime;

/// A named range of JIT code (the registry's symbol type).
pub use clew_unwinder::Symbol as JitSymbol;
/// JIT symbols sorted by address, as published in the registry with the module.
pub use clew_unwinder::SymbolMap;

/// Records a module-deregistered event (the tracer's flight recorder) for the module
/// `handle` names, before the caller deregisters it. The unwinder's registry cannot call
/// the tracer itself (the dependency runs the other way).
fn deregistering(registry: &clew_unwinder::Registry, handle: clew_unwinder::ModuleHandle) {
    registry.for_each_module(|m| {
        if m.id() == handle.0 {
            clew_tracer::modules::module_deregistered(m);
        }
    });
}
