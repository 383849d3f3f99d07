//! The `backtrace` crate's API on clew: [`trace`], [`resolve`], [`Backtrace`], for
//! `no_std` + `alloc` too.
//!
//! Code written against `backtrace` 0.3 (`backtrace::trace`, `backtrace::resolve`,
//! `Backtrace::new()`, `frame.symbols()`, `symbol.name()` / `filename()` / `lineno()`)
//! runs on clew by importing `clew_symbolizer::backtrace` instead: frames are walked by
//! clew's CFI unwinder (native and registered JIT frames alike) and resolved by the
//! [`crate::global`] symbolizer (JIT modules from the registry, native code from ELF
//! images: found by itself with `std` on Linux, added by the kernel otherwise).
//!
//! As in `backtrace`, [`resolve`] takes an instruction pointer (a return address) and
//! looks up the call instruction before it; a [`Symbol`] is one source-level frame, so
//! an address inside inlined code resolves to several symbols, innermost first.
//!
//! Without `std`, the walk reads the stack unchecked unless the kernel installed the
//! current stack's bounds with [`set_stack_bounds`]: a corrupt stack is then the same
//! hazard as for libgcc's `_Unwind_Backtrace`, on which `backtrace` itself relies.

mod capture;
mod symbol;

pub use capture::{Backtrace, BacktraceFrame, BacktraceSymbol};
pub use symbol::{BytesOrWideString, Symbol, SymbolName};

use core::ffi::c_void;
use core::ops::Range;

/// One frame of a [`trace`].
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    ip: u64,
    sp: u64,
    exact: bool,
}

impl Frame {
    /// The frame's instruction pointer: the return address for callers, the exact PC
    /// for a frame interrupted by a signal or fault.
    pub fn ip(&self) -> *mut c_void {
        self.ip as usize as *mut c_void
    }

    /// The frame's stack pointer.
    pub fn sp(&self) -> *mut c_void {
        self.sp as usize as *mut c_void
    }

    /// The start of the enclosing function when known, else [`Frame::ip`].
    pub fn symbol_address(&self) -> *mut c_void {
        let pc = self.lookup_pc();
        match crate::global().symbolize(pc) {
            Ok(s) => s
                .symbol_start
                .map_or(self.ip(), |a| a as usize as *mut c_void),
            Err(_) => self.ip(),
        }
    }

    /// The load address of the module holding the frame, when known.
    pub fn module_base_address(&self) -> Option<*mut c_void> {
        let m = crate::global().mapping(self.lookup_pc())?;
        Some(m.range.start as usize as *mut c_void)
    }

    /// The address looked up for this frame: inside the call for return addresses.
    fn lookup_pc(&self) -> u64 {
        if self.exact {
            self.ip
        } else {
            self.ip.saturating_sub(1)
        }
    }
}

static STACK_BOUNDS: spin::Once<fn() -> [Range<u64>; 2]> = spin::Once::new();

/// Installs the function that gives the current thread's stack (and signal or
/// interrupt stack) bounds: [`trace`] then never reads outside them. With `std` on
/// Linux the thread's own bounds are used without this.
pub fn set_stack_bounds(bounds: fn() -> [Range<u64>; 2]) {
    STACK_BOUNDS.call_once(|| bounds);
}

/// Walks the calling thread's stack, calling `cb` with each frame (starting with the
/// caller of `trace`) until it returns `false` or the stack ends.
#[cfg(target_arch = "x86_64")]
#[inline(never)]
pub fn trace<F: FnMut(&Frame) -> bool>(mut cb: F) {
    use clew_unwinder::{LiveMemory, Native, Unwinder};
    let regs = clew_unwinder::arch::x86_64::Regs::capture();
    #[cfg(all(feature = "std", target_os = "linux"))]
    clew_unwinder::os::linux::ensure_loaded_objects();
    let bounds: Option<[Range<u64>; 2]> = match STACK_BOUNDS.get() {
        Some(f) => Some(f()),
        #[cfg(all(feature = "std", target_os = "linux"))]
        None => Some(clew_unwinder::os::linux::current_stack_bounds()),
        #[cfg(not(all(feature = "std", target_os = "linux")))]
        None => None,
    };
    let mem = match &bounds {
        Some(b) => LiveMemory::with_bounds(b),
        // SAFETY: without known bounds, the stack is trusted to be sane, as libgcc's
        // `_Unwind_Backtrace` trusts it (see the module documentation).
        None => unsafe { LiveMemory::unchecked() },
    };
    let unwinder = Unwinder::<Native>::new(clew_unwinder::global());
    let mut frames = unwinder.frames(regs, false, &mem, None);
    // The first frame is `trace` itself.
    let _ = frames.next();
    for f in frames {
        let Ok(f) = f else { break };
        let frame = Frame {
            ip: f.pc,
            sp: f.sp,
            exact: f.exact_pc,
        };
        if !cb(&frame) {
            break;
        }
    }
}

/// Like [`trace`]; `backtrace`'s name for the variant without its global lock (clew
/// needs none).
///
/// # Safety
/// None beyond [`trace`]'s; `unsafe` only to match `backtrace`'s signature.
#[cfg(target_arch = "x86_64")]
pub unsafe fn trace_unsynchronized<F: FnMut(&Frame) -> bool>(cb: F) {
    trace(cb)
}

/// Resolves the instruction pointer `addr` (a return address: the call before it is
/// looked up) to its symbols, innermost inlined frame first, calling `cb` for each.
pub fn resolve<F: FnMut(&Symbol)>(addr: *mut c_void, cb: F) {
    let ip = addr as usize as u64;
    resolve_pc(ip.saturating_sub(u64::from(ip != 0)), cb)
}

/// Like [`resolve`], for a [`trace`] frame (an exact PC is looked up as is).
pub fn resolve_frame<F: FnMut(&Symbol)>(frame: &Frame, cb: F) {
    resolve_pc(frame.lookup_pc(), cb)
}

/// # Safety
/// None beyond [`resolve`]'s; `unsafe` only to match `backtrace`'s signature.
pub unsafe fn resolve_unsynchronized<F: FnMut(&Symbol)>(addr: *mut c_void, cb: F) {
    resolve(addr, cb)
}

/// # Safety
/// None beyond [`resolve_frame`]'s; `unsafe` only to match `backtrace`'s signature.
pub unsafe fn resolve_frame_unsynchronized<F: FnMut(&Symbol)>(frame: &Frame, cb: F) {
    resolve_frame(frame, cb)
}

fn resolve_pc<F: FnMut(&Symbol)>(pc: u64, mut cb: F) {
    let Ok(s) = crate::global().symbolize(pc) else {
        return;
    };
    for frame in s.frames {
        cb(&Symbol::new(frame, s.symbol_start));
    }
}
