//! The demo no_std kernel (tools/kernel) booted under real QEMU by `clew qemu`: it must
//! catch its panic after unwinding through its own frames with every `Drop` guard run,
//! print the backtrace by name in call order (libcore's CFI-less `panic_fmt` stepped over
//! by frame pointer), and exit through the debug-exit device with the success status
//! after its marker line. Then Wasm under Wasmtime's no_std runtime in the kernel: a
//! backtrace through JIT frames by name, a host panic unwound through the JIT frames
//! and caught with drops run, a trap reported, and a post-mortem dump over COM2 that
//! the host decodes into the same frames. Also: user modules' exit statuses, and what
//! `clew qemu` says when the kernel or the module is unusable.
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
    let kernel_lines: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with("clew qemu:"))
        .collect();
    let last = kernel_lines.iter().rev().find(|l| !l.starts_with(' '));
    assert_eq!(
        last,
        Some(&"CLEW-KERNEL: ALL CHECKS PASSED"),
        "the marker ends the kernel's run:\n{out}"
    );
}

/// The PCs of the `#N 0x…` frame lines right after `header` (up to the next
/// non-frame line).
fn frame_pcs(out: &str, header: &str) -> Vec<String> {
    let start = out
        .find(header)
        .unwrap_or_else(|| panic!("{header:?} missing:\n{out}"));
    out[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .filter_map(|l| {
            let l = l.trim_start();
            l.starts_with('#')
                .then(|| l.split_whitespace().nth(1).unwrap().to_owned())
        })
        .collect()
}

#[test]
fn wasm_in_the_kernel_backtraces_panics_traps_and_dumps() {
    let dump = std::env::temp_dir().join(format!("clew-qemu-test-{}.dump", std::process::id()));
    let o = clew(&["qemu", "--timeout", "120", "--dump", dump.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "clew qemu failed:\n{out}");
    // clew.backtrace from inside the JIT code: the host function, Wasmtime's host-call
    // glue, the JIT trampoline and functions by name, out to the kernel.
    let at = in_order(
        &out,
        &[
            "clew-kernel: wasm: module \"demo\" loaded",
            "clew-kernel: wasm: calling main",
            "clew-kernel: clew.trace(id 1, value 42)",
            "clew-kernel: clew.backtrace from wasm",
            "clew_kernel::wasm::link_host_functions",
            "wasmtime::runtime::func::HostFunc::array_call_trampoline",
            "wasm_to_array_trampoline [jit cfi]",
            " inner [jit cfi]",
            " middle [jit cfi]",
            " outer [jit cfi]",
            " main [jit cfi]",
            "array_to_wasm_trampoline[",
            "wasmtime::runtime::func::Func::call",
            "clew_kernel::wasm::run",
            "clew_kernel::main at ",
            "clew-kernel: wasm: main returned [I32(7)]",
        ],
    );
    // clew.panic: unwound through the JIT frames and Wasmtime's, drops on both sides of
    // the JIT code, caught by the kernel's catch point.
    let at = at
        + in_order(
            &out[at..],
            &[
                "clew-kernel: wasm: calling explode",
                "panicked at src/wasm/mod.rs:",
                ": clew.panic(7) called from wasm",
                "clew-kernel: post-mortem dump written to COM2",
                "drop: guard of the clew.panic host function",
                "drop: guard of the kernel's call into wasm",
                "clew-kernel: wasm: caught panic from explode: \"clew.panic(7) called from wasm\"",
                "clew-kernel: wasm: backtrace of the panic:",
                "rust_begin_unwind at ",
                "core::panicking::panic_fmt",
                "[frame pointer]",
                "wasm_to_array_trampoline [jit cfi]",
                " explode_inner [jit cfi]",
                " explode_middle [jit cfi]",
                " explode [jit cfi]",
                "array_to_wasm_trampoline[",
                "clew_kernel::wasm::run",
            ],
        );
    // A trap, reported with its wasm frames; then the run ends well.
    let at = at
        + in_order(
            &out[at..],
            &[
                "clew-kernel: wasm: calling trap",
                "clew-kernel: wasm: trap trapped: wasm trap: integer divide by zero",
                "demo!trap_inner",
                "demo!trap",
                "CLEW-KERNEL: ALL CHECKS PASSED",
            ],
        );
    // The dump, decoded on the host: the same panic, the JIT module with its unwind
    // info and names, and the same frames by name.
    in_order(
        &out[at..],
        &[
            "clew qemu: post-mortem dump: ",
            " 0 problems",
            "clew qemu: dump cause: panic \"clew.panic(7) called from wasm\" at src/wasm/mod.rs:",
            "clew qemu: dump module \"demo\"",
            ".eh_frame included",
            "clew qemu: dump backtrace",
            "rust_begin_unwind",
            "core::panicking::panic_fmt",
            "wasm_to_array_trampoline",
            " explode_inner",
            " explode_middle",
            " explode",
            "array_to_wasm_trampoline[",
            "clew_kernel::wasm::run",
            "clew_kernel::main",
        ],
    );
    let printed = frame_pcs(&out, "clew-kernel: wasm: backtrace of the panic:");
    let dumped = frame_pcs(&out, "clew qemu: dump backtrace");
    assert!(printed.len() > 10, "{out}");
    assert_eq!(
        printed, dumped,
        "the dump holds the frames the kernel printed"
    );
    // `clew decode` re-unwinds the saved dump on the host (the kernel's CFI from its ELF,
    // the JIT modules' from the dump) into the frames the kernel walked.
    let hint = out
        .lines()
        .find_map(|l| l.split_once("re-unwind it on this host with: clew decode "))
        .map(|(_, rest)| rest.to_owned())
        .unwrap_or_else(|| panic!("no decode hint:\n{out}"));
    let search = hint.split_once(" --search ").unwrap().1;
    let o = clew(&[
        "decode",
        "--json",
        dump.to_str().unwrap(),
        "--search",
        search,
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("clew decode --json ({e}):\n{}", stdout(&o)));
    let task = &v["task"];
    assert_eq!(task["agrees"], true, "{}", task["agreement"]);
    let names: Vec<String> = task["backtrace"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["functions"].as_array().unwrap().iter())
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    in_order(
        &names.join("\n"),
        &[
            "core::panicking::panic_fmt",
            "wasm_to_array_trampoline",
            "explode_inner",
            "explode_middle",
            "explode",
            "array_to_wasm_trampoline[",
            "clew_kernel::wasm::run",
            "clew_kernel::main",
        ],
    );
    // --dump saved the raw COM2 stream, which decodes cleanly.
    let bytes = std::fs::read(&dump).unwrap();
    let _ = std::fs::remove_file(&dump);
    let decoded = clew_tracer::decode::decode(&bytes);
    assert!(decoded.problems.is_empty(), "{:?}", decoded.problems);
    assert_eq!(decoded.dump.tasks[0].backtrace.len(), dumped.len());
    assert!(
        !decoded.dump.events.is_empty(),
        "the clew.trace event is in the dump"
    );
}

fn wat(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("clew-qemu-wat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn user_modules_exit_like_clew_run() {
    let m = wat(
        "user.wat",
        r#"(module
             (import "clew" "breakpoint" (func $bp))
             (func (export "ok") (result i64) (call $bp) (i64.const 40) (i64.const 2) (i64.add))
             (func (export "oob") (result i32) (i32.load (i32.const 1000000)))
             (memory 1))"#,
    );
    let m = m.to_str().unwrap();
    let o = clew(&["qemu", m, "--invoke", "ok"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    in_order(
        &out,
        &[
            "clew-kernel: clew.breakpoint: no debugger attached, continuing",
            "clew-kernel: wasm: ok returned [I64(42)]",
        ],
    );
    let o = clew(&["qemu", m, "--invoke", "ok,oob"]);
    let out = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a trap is reported with status 1:\n{out}"
    );
    in_order(
        &out,
        &[
            "clew-kernel: wasm: ok returned [I64(42)]",
            "clew-kernel: wasm: oob trapped: wasm trap: out of bounds memory access",
            "CLEW-KERNEL: ALL CHECKS PASSED",
        ],
    );
}

#[test]
fn bad_modules_and_exports_are_reported() {
    let bad = wat(
        "bad.wat",
        "(module (func (export \"f\") (result i32) (i64.const 1)))",
    );
    let o = clew(&["qemu", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stdout(&o).starts_with("clew qemu: compiling the module: "),
        "{}",
        stdout(&o)
    );
    let o = clew(&["qemu", "/nonexistent/m.wat"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stdout(&o).starts_with("clew qemu: reading /nonexistent/m.wat"));
    // A missing export: the kernel says so and fails its run.
    let o = clew(&["qemu", "--invoke", "nope"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(stdout(&o).contains("clew-kernel: wasm: no exported function \"nope\""));
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
