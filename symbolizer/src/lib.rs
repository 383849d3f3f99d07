//! # clew-symbolizer
//!
//! Addresses to functions, inlined frames and `file:line:column`, for ELF images in
//! memory or on disk and for JIT code registered in clew's registry. `no_std` + `alloc`;
//! the `std` feature adds files (mmap), separate debug files, compressed debug sections,
//! process address spaces and parallel batches.
//!
//! - [`ElfImage`]: one image's DWARF (`gimli`, parsed lazily, shared between threads,
//!   within a memory budget) and symbol table; addresses are the image's own.
//! - [`Symbolizer`]: runtime addresses of a whole address space: JIT modules from
//!   [`clew_unwinder::Registry`] symbol maps, native code from the mapped images.
//! - [`Frame`] / [`Symbolized`]: per address, the frames innermost inlined first, each
//!   with its function ([`Name`]: raw and demangled), file, line, column; the module.
//! - [`backtrace`]: the `backtrace` crate's API (`trace`, `resolve`, `Backtrace`) on
//!   clew's unwinder and this symbolizer, for `no_std` too.
//!
//! ```no_run
//! # #[cfg(feature = "std")] {
//! let image = clew_symbolizer::host::open("/proc/self/exe").unwrap();
//! for frame in image.symbolize(0x1234).unwrap() {
//!     println!("{:?} at {:?}:{:?}", frame.function.map(|f| f.to_string()), frame.file, frame.line);
//! }
//! # }
//! ```
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod backtrace;
mod batch;
mod cache;
mod dwarf;
mod elf;
mod error;
mod frame;
mod image;
mod jit;
mod name;
mod symbolizer;
mod symtab;

#[cfg(all(feature = "std", unix))]
pub mod host;

pub use batch::in_address_order;
pub use cache::DEFAULT_BUDGET;
pub use elf::{ElfImage, Options, Segment};
pub use error::Error;
pub use frame::{Frame, ModuleInfo, ModuleKind, Symbolized};
pub use image::ImageBytes;
pub use name::{Language, Name, demangle};
pub use symbolizer::{ImageLoader, Mapping, Symbolizer};

/// The process-wide symbolizer the [`backtrace`] facade uses. With `std` on Linux it
/// finds the running program's objects by itself; a kernel adds its images with
/// [`Symbolizer::add_image`].
pub fn global() -> &'static Symbolizer {
    static GLOBAL: Symbolizer = Symbolizer::new();
    #[cfg(all(feature = "std", target_os = "linux"))]
    GLOBAL.set_loader(alloc::boxed::Box::new(host::CurrentProcess));
    &GLOBAL
}
