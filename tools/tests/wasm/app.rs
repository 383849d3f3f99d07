//! A small Rust program for `tools/tests/run_dwarf.rs`, compiled there with
//! `rustc --target wasm32-unknown-unknown -g`: nested calls (one inlined) into clew's
//! host functions, and a trap. The `// at:` markers name the lines the test expects in
//! backtraces; the test also checks them against llvm-symbolizer on the same module.
#![no_std]

#[link(wasm_import_module = "clew")]
unsafe extern "C" {
    fn backtrace();
}

#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn leaf(x: i32) -> i32 {
    unsafe { backtrace() }; // at: leaf
    x + 1
}

#[inline(always)]
fn twice(x: i32) -> i32 {
    leaf(x) * 2 // at: twice
}

#[inline(never)]
fn helper(x: i32) -> i32 {
    twice(x) + 5 // at: helper
}

#[unsafe(no_mangle)]
pub extern "C" fn entry(x: i32) -> i32 {
    helper(x) + 3 // at: entry
}

/// A load from `address`: beyond the module's memory, an out-of-bounds trap.
#[inline(never)]
fn fail(address: usize) -> i32 {
    unsafe { *(address as *const i32) } // at: fail
}

#[unsafe(no_mangle)]
pub extern "C" fn crash(address: i32) -> i32 {
    fail(address as usize) + 1 // at: crash
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
