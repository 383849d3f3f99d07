//! # clew-unwinder
//!
//! An eh_frame registry keyed by text-section bounds, and a DWARF CFI unwinder that walks
//! native and JIT frames alike. `no_std` + `alloc`; the `std` feature adds discovery of
//! the running program's loaded objects and a ready [`backtrace`] for Linux hosts.
//!
//! - [`Registry`]: modules (text range + `.eh_frame`) registered by static images, loaded
//!   objects and JIT compilers; lock-free, async-signal-safe lookups.
//! - [`Unwinder`]: walks a register context through the registry's CFI, with a per-PC
//!   [`UnwindCache`] of compiled rules, reading memory through a [`Memory`].
//! - [`compat`]: libgcc's `__register_frame` and Theseus's `register_unwind_info`.
//!
//! ```
//! # #[cfg(all(feature = "std", target_os = "linux"))] {
//! let mut pcs = [0usize; 64];
//! let n = clew_unwinder::backtrace(&mut pcs);
//! assert!(n > 1);
//! # }
//! ```
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod arch;
pub mod compat;
pub mod eh_frame;
mod error;
mod evaluate;
pub mod itanium;
pub mod lsda;
pub mod memory;
#[cfg(all(feature = "std", target_os = "linux"))]
pub mod os;
pub mod panic;
pub mod provider;
pub mod registry;
pub mod rules;
mod unwind;

pub use arch::{Arch, Native, Registers};
pub use error::Error;
pub use evaluate::{FixedStorage, UnwindContext};
pub use memory::{LiveMemory, Memory, SliceMemory};
pub use provider::{ModuleProvider, ProvidedModule};
pub use registry::{
    Guard, Module, ModuleDesc, ModuleHandle, ModuleId, ModuleKind, Registry, Symbol, SymbolHit,
    SymbolMap, global,
};
pub use rules::{CompactRule, UnwindCache};
pub use unwind::{CachedStep, DEFAULT_MAX_DEPTH, FdeInfo, Frame, FrameIter, FrameKind, Unwinder};

#[cfg(all(feature = "std", target_os = "linux"))]
pub use os::linux::backtrace;

/// Captures the PCs of the calling thread's stack into `buf`, starting with the return
/// address into the caller of this function, using the [`global`] registry and
/// unchecked reads of the live stack. Does not allocate: usable in a panic handler.
/// Returns how many PCs were written.
///
/// # Safety
/// The stack must be sane (the CFI of every frame must compute readable addresses).
/// Hosts should prefer [`backtrace`], which bounds reads to the thread's stack.
#[inline(never)]
pub unsafe fn backtrace_unchecked(buf: &mut [usize], cache: Option<&mut UnwindCache>) -> usize {
    let regs = arch::x86_64::Regs::capture();
    // SAFETY: the caller promises the stack is sane.
    let mem = unsafe { LiveMemory::unchecked() };
    let unwinder = Unwinder::<Native>::new(global());
    let mut it = unwinder.frames(regs, false, &mem, cache);
    // The first frame is this function itself.
    let _ = it.next();
    it.collect_pcs(buf)
}
