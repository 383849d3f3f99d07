//! Built-in events: modules registered and deregistered in the unwinder's registry (so a
//! dump's events can rebuild the code map at any point in time), panics, traps and
//! breakpoints. They go to the [`global`](crate::global) recorder.
//!
//! The unwinder cannot call the tracer (the dependency runs the other way), so code that
//! registers modules calls [`register`]/[`deregister_text`] here instead of the
//! registry's own methods, or [`module_registered`]/[`module_deregistered`] around them.

use core::ops::Range;
use core::panic::Location;

use clew_unwinder::{Error, Module, ModuleDesc, ModuleHandle, Registry, SymbolMap};

use crate::event::{EventId, name_hash};
use crate::record;
use crate::wire::TrapKind;

/// Records that `m` was registered: `[id, text start, text end, name hash]`.
pub fn module_registered(m: &Module) {
    module_event(EventId::MODULE_REGISTERED, m.id().0, m.text(), m.name());
}

/// Records that `m` is being deregistered (call before deregistering).
pub fn module_deregistered(m: &Module) {
    module_event(EventId::MODULE_DEREGISTERED, m.id().0, m.text(), m.name());
}

fn module_event(id: EventId, module: u64, text: Range<usize>, name: &str) {
    record(
        id,
        &[
            module,
            text.start as u64,
            text.end as u64,
            name_hash(name.as_bytes()),
        ],
    );
}

/// [`Registry::register_with_symbols`], then a module-registered event.
///
/// # Safety
/// As for [`Registry::register`]: the `.eh_frame` bytes stay readable until the module
/// is deregistered.
pub unsafe fn register(
    registry: &Registry,
    desc: &ModuleDesc<'_>,
    symbols: SymbolMap,
) -> Result<ModuleHandle, Error> {
    // SAFETY: forwarded to the caller.
    let h = unsafe { registry.register_with_symbols(desc, symbols)? };
    let g = registry.pin();
    let start = desc.text.as_ref().map(|t| t.start);
    match start.and_then(|s| g.find_module(s)) {
        Some(m) if m.id() == h.0 => module_registered(m),
        _ => {
            // Bounds derived from the FDEs: find the module by id.
            drop(g);
            registry.for_each_module(|m| {
                if m.id() == h.0 {
                    module_registered(m)
                }
            });
        }
    }
    Ok(h)
}

/// A module-deregistered event, then [`Registry::deregister_text`].
pub fn deregister_text(registry: &Registry, text_start: usize) -> Result<(), Error> {
    {
        let g = registry.pin();
        if let Some(m) = g
            .find_module(text_start)
            .filter(|m| m.text().start == text_start)
        {
            module_deregistered(m);
        }
    }
    registry.deregister_text(text_start)
}

/// Records a panic event: `[file name hash, line, column]`.
pub fn panic_event(location: Option<&Location<'_>>) {
    let (f, l, c) = location.map_or((0, 0, 0), |l| {
        (
            name_hash(l.file().as_bytes()),
            u64::from(l.line()),
            u64::from(l.column()),
        )
    });
    record(EventId::PANIC, &[f, l, c]);
}

/// Records a trap event: `[trap code, pc, faulting address, error code]`.
pub fn trap_event(kind: TrapKind, pc: u64, address: Option<u64>, code: u64) {
    record(
        EventId::TRAP,
        &[kind.code(), pc, address.unwrap_or(0), code],
    );
}

/// Records a breakpoint event: `[pc, breakpoint number]`.
pub fn breakpoint_event(pc: u64, number: u64) {
    record(EventId::BREAKPOINT, &[pc, number]);
}
