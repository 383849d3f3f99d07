//! `itanium::set_frame_pointer_fallback`: a frame without CFI (here an assembly function
//! with the frame-pointer prologue and no `.cfi_*` directives, like the precompiled
//! libcore of `x86_64-unknown-none`) ends the walks of `backtrace_unchecked` and of the
//! Itanium entry points, unless the fallback is on: then the walk steps over it through
//! rbp and goes on into its (CFI-covered) caller. Its own test binary: the switch is
//! process-wide.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::hint::black_box;
use std::sync::Mutex;

use clew_unwinder::itanium;

// `clew_test_no_cfi(callback)`: push rbp; mov rbp, rsp; call the callback; no CFI at all.
core::arch::global_asm!(
    ".text",
    ".globl clew_test_no_cfi",
    ".p2align 4",
    "clew_test_no_cfi:",
    "push rbp",
    "mov rbp, rsp",
    "call rdi",
    "pop rbp",
    "ret",
    ".globl clew_test_no_cfi_end",
    "clew_test_no_cfi_end:",
);

unsafe extern "C" {
    fn clew_test_no_cfi(callback: extern "C" fn());
    static clew_test_no_cfi_end: u8;
}

static PCS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

#[inline(never)]
extern "C" fn callback() {
    let mut pcs = [0usize; 64];
    // SAFETY: this thread's own, sane stack.
    let n = unsafe { clew_unwinder::backtrace_unchecked(&mut pcs, None) };
    *PCS.lock().unwrap() = pcs[..n].to_vec();
}

/// Walks from inside the CFI-less frame; returns the PCs and the range of `caller`'s
/// call into the asm (the return address the walk must reach).
#[inline(never)]
fn caller() -> Vec<usize> {
    // SAFETY: the asm calls the callback and returns.
    unsafe { clew_test_no_cfi(black_box(callback)) };
    black_box(PCS.lock().unwrap().clone())
}

fn in_asm(pc: usize) -> bool {
    let start = clew_test_no_cfi as *const () as usize;
    // Only the label's address is taken.
    let end = &raw const clew_test_no_cfi_end as usize;
    (start..end).contains(&pc)
}

#[test]
fn the_walk_crosses_a_frame_without_cfi_only_with_the_fallback() {
    clew_unwinder::os::linux::ensure_loaded_objects();
    let caller_start = caller as *const () as usize;
    let in_caller = |pc: usize| (caller_start..caller_start + 4096).contains(&pc);

    itanium::set_frame_pointer_fallback(false);
    let without = caller();
    let i = without
        .iter()
        .position(|&pc| in_asm(pc))
        .expect("the asm frame");
    assert_eq!(
        i + 1,
        without.len(),
        "the walk ends at the frame without CFI: {without:#x?}"
    );

    itanium::set_frame_pointer_fallback(true);
    let with = caller();
    itanium::set_frame_pointer_fallback(false);
    let i = with
        .iter()
        .position(|&pc| in_asm(pc))
        .expect("the asm frame");
    assert_eq!(with[..=i], without[..], "the same frames up to the asm");
    assert!(
        in_caller(with[i + 1]),
        "the frame after the asm is its caller: {with:#x?}"
    );
    assert!(
        with.len() > i + 2,
        "and the walk goes on past it: {with:#x?}"
    );
}
