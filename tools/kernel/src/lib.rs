//! A demo no_std x86_64 kernel, booted by QEMU through PVH, proving clew where its first
//! users live: it registers its own image with clew's registry, panics inside nested
//! functions holding `Drop` guards, catches the panic with clew's catch point after
//! unwinding through its own frames (the guards run), and prints the panic's backtrace
//! symbolized from its own ELF image. See README.md for the build recipe.
#![no_std]

extern crate alloc;

pub mod backtrace;
pub mod boot;
pub mod demo;
pub mod dump;
pub mod exit;
pub mod gdb;
pub mod heap;
pub mod image;
pub mod runtime;
pub mod serial;
pub mod wasm;

/// The line a successful run ends with (the host test looks for it).
pub const MARKER: &str = "CLEW-KERNEL: ALL CHECKS PASSED";

/// The kernel's main function, called by the boot code with PVH's start info.
pub fn main(start_info: usize) -> ! {
    serial::init();
    println!("clew-kernel: booted through PVH (start info at {start_info:#x})");
    // SAFETY: the boot code passes what the PVH loader put in ebx.
    let info = match unsafe { boot::BootInfo::read(start_info) } {
        Ok(info) => info,
        Err(e) => fail(e),
    };
    println!("clew-kernel: command line: {:?}", info.cmdline);
    let elf = info.range_arg("clew.elf");
    let cwasm = info.range_arg("clew.cwasm");
    // The heap: the RAM after the kernel, up to the first blob QEMU loaded.
    let kernel = image::kernel_range();
    let heap_start = kernel.end.next_multiple_of(2 << 20);
    let heap_end = [elf.as_ref(), cwasm.as_ref()]
        .map(|r| r.map(|r| r.start))
        .into_iter()
        .flatten()
        .filter(|&a| a >= heap_start)
        .fold(info.ram.end.min(4 << 30), usize::min);
    // SAFETY: RAM after the kernel and below the blobs, identity-mapped, unused.
    unsafe { heap::init(heap_start..heap_end) };
    println!("clew-kernel: heap {heap_start:#x}..{heap_end:#x}");

    clew_unwinder::panic::set_unwinding_failed_hook(runtime::unwinding_failed);
    clew_unwinder::itanium::set_frame_pointer_fallback(true);
    if let Err(e) = image::register_kernel() {
        println!("clew-kernel: registering the kernel's unwind info failed: {e}");
        fail("registration");
    }
    // SAFETY: as for `load_symbols` below: QEMU's copy of the kernel's ELF file.
    let elf_bytes = elf
        .clone()
        .map(|r| unsafe { core::slice::from_raw_parts(r.start as *const u8, r.len()) });
    match elf {
        // SAFETY: QEMU loaded the kernel's ELF file there, and nothing writes to it.
        Some(r) => match unsafe { image::load_symbols(r) } {
            Ok(()) => {}
            Err(e) => println!("clew-kernel: kernel ELF unusable ({e}): frames stay unnamed"),
        },
        None => println!("clew-kernel: no clew.elf= on the command line: frames stay unnamed"),
    }

    gdb::init(&info, elf_bytes);

    if !demo::run() {
        fail("native demo");
    }
    if let Some(r) = cwasm {
        // SAFETY: QEMU loaded the precompiled module there; nothing writes to it.
        let bytes = unsafe { core::slice::from_raw_parts(r.start as *const u8, r.len()) };
        let exports = info.arg("clew.invoke").unwrap_or("main");
        let exports: alloc::vec::Vec<&str> = exports.split(',').collect();
        if !wasm::run(bytes, &exports) {
            fail("wasm");
        }
    }
    println!("{MARKER}");
    exit::success()
}

fn fail(what: &str) -> ! {
    println!("clew-kernel: FAILED: {what}");
    exit::failure()
}
