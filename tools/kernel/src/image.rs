//! The kernel's own image: its unwind information, registered with clew's registry from
//! the linker script's symbols, and its ELF file (loaded next to it by QEMU) for the
//! symbolizer.

use alloc::sync::Arc;
use core::ops::Range;

use clew_unwinder::{ModuleDesc, ModuleKind};

unsafe extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __text_start: u8;
    static __text_end: u8;
    static __eh_frame_start: u8;
    static __eh_frame_end: u8;
    static __gcc_except_table_start: u8;
    static __gcc_except_table_end: u8;
}

fn addr(sym: &u8) -> usize {
    sym as *const u8 as usize
}

/// The physical (= virtual) memory the loaded kernel occupies, `.bss` included.
pub fn kernel_range() -> Range<usize> {
    // SAFETY: linker-script symbols; only their addresses are taken.
    unsafe { addr(&__kernel_start)..addr(&__kernel_end) }
}

/// Registers the kernel's text and `.eh_frame` (and where its LSDAs are) with clew's
/// global registry, as a Theseus-like kernel does for its base image at boot.
pub fn register_kernel() -> Result<(), clew_unwinder::Error> {
    // SAFETY: linker-script symbols bracket sections that stay mapped forever.
    let (text, eh_frame, lsda) = unsafe {
        (
            addr(&__text_start)..addr(&__text_end),
            core::slice::from_raw_parts(
                &__eh_frame_start as *const u8,
                addr(&__eh_frame_end) - addr(&__eh_frame_start),
            ),
            addr(&__gcc_except_table_start)..addr(&__gcc_except_table_end),
        )
    };
    crate::println!(
        "clew-kernel: registering .text {:#x}..{:#x} with {} bytes of .eh_frame",
        text.start,
        text.end,
        eh_frame.len()
    );
    let desc = ModuleDesc {
        name: "clew-kernel",
        kind: ModuleKind::Static,
        text: Some(text),
        eh_frame,
        eh_frame_hdr: None,
        lsda: Some(lsda),
    };
    // SAFETY: the sections live as long as the kernel.
    unsafe { clew_unwinder::global().register(&desc) }.map(drop)
}

/// Hands the kernel's ELF file, loaded by QEMU at `file` (`-device loader`), to the
/// global symbolizer: the image is linked at the addresses it runs at (bias 0).
///
/// # Safety
/// `file` must hold the kernel's ELF file and never be written to.
pub unsafe fn load_symbols(file: Range<usize>) -> Result<(), clew_symbolizer::Error> {
    // SAFETY: the caller promises the bytes stay valid and unchanged.
    let bytes = unsafe { core::slice::from_raw_parts(file.start as *const u8, file.len()) };
    let image = clew_symbolizer::ElfImage::from_static("clew-kernel", bytes)?;
    crate::println!(
        "clew-kernel: symbols from the kernel ELF at {:#x} ({} bytes, DWARF: {})",
        file.start,
        file.len(),
        image.has_dwarf()
    );
    clew_symbolizer::global().add_image(Arc::new(image), 0);
    Ok(())
}
