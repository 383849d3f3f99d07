//! The demo no_std kernel (tools/kernel) booted under real QEMU by `clew qemu`: it must
//! catch its panic after unwinding through its own frames with every `Drop` guard run,
//! print the backtrace by name in call order (libcore's CFI-less `panic_fmt` stepped over
//! by frame pointer), and exit through the debug-exit device with the success status
//! after its marker line. Also: what `clew qemu` says when the kernel is not bootable.
//!
//! Needs `qemu-system-x86_64` (Debian's `qemu-system-x86`, installed by .ci/run) and the
//! `x86_64-unknown-none` target.

use std::process::{Command, Output};

fn clew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `needles` must appear in `hay` in this order; returns where the last one ends.
fn in_order(hay: &str, needles: &[&str]) -> usize {
    let mut at = 0;
    for n in needles {
        match hay[at..].find(n) {
            Some(i) => at += i + n.len(),
            None => panic!("{n:?} missing (or out of order) in:\n{hay}"),
        }
    }
    at
}

#[test]
fn kernel_catches_a_panic_with_drops_and_prints_a_symbolized_backtrace() {
    let o = clew(&["qemu", "--timeout", "120"]);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "clew qemu failed:\n{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    in_order(
        &out,
        &[
            "clew-kernel: booted through PVH",
            "clew-kernel: registering .text",
            "clew-kernel: symbols from the kernel ELF",
            "clew-kernel: panicked at src/demo.rs:",
            ": boom at level 3",
            // Drops run innermost first, during the unwind, before the catch point returns.
            "drop: guard of level3",
            "drop: guard of level2",
            "drop: guard of level1",
            "clew-kernel: caught panic: \"boom at level 3\"",
            "clew-kernel: drops run: 3",
        ],
    );
    // The backtrace: the panic handler, libcore's panic_fmt (no CFI: frame pointer), then
    // the demo's frames in call order with their source files, out to the kernel's entry.
    let bt = &out[out.find("backtrace of the panic:").expect("a backtrace")..];
    in_order(
        bt,
        &[
            "rust_begin_unwind at ",
            "tools/kernel/src/runtime.rs:",
            "core::panicking::panic_fmt",
            "[frame pointer]",
            "clew_kernel::demo::level3 at ",
            "tools/kernel/src/demo.rs:",
            "clew_kernel::demo::level2 at ",
            "clew_kernel::demo::level1 at ",
            "clew_x86_64_catch",
            "clew_kernel::demo::run at ",
            "clew_kernel::main at ",
            "clew_kernel_entry at ",
        ],
    );
    assert!(
        !bt.contains(" ?? "),
        "every frame of the backtrace is named:\n{bt}"
    );
    assert_eq!(
        out.lines().last(),
        Some("CLEW-KERNEL: ALL CHECKS PASSED"),
        "the marker ends the run:\n{out}"
    );
}

#[test]
fn a_kernel_without_a_pvh_note_is_reported() {
    // The clew binary itself: an ELF, but not a PVH kernel. QEMU refuses it.
    let o = clew(&[
        "qemu",
        "--kernel",
        env!("CARGO_BIN_EXE_clew"),
        "--timeout",
        "60",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("clew qemu: QEMU exited with"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_missing_kernel_file_is_bad_input() {
    let o = clew(&["qemu", "--kernel", "/nonexistent/kernel.elf"]);
    assert_eq!(o.status.code(), Some(2));
    let out = stdout(&o);
    assert!(
        out.starts_with("clew qemu: reading /nonexistent/kernel.elf"),
        "{out}"
    );
}
