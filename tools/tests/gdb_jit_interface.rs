//! GDB's JIT interface next to the bridge's served JIT libraries: `clew run --debug-info`
//! (Wasmtime's `Config::debug_info`, built with its `debug-builtins` feature) registers
//! each module's DWARF object through `__jit_debug_descriptor`/`__jit_debug_register_code`;
//! the real gdb attached through `clew run --gdb` reads it over the stub (memory reads
//! of the descriptor and of the in-memory object) while the stub also serves the same
//! code as `/clew/jit/*.elf`. The two must coexist: the JIT frames get source lines from
//! Wasmtime's DWARF, a breakpoint on a source line is hit, the program ends normally.

mod gdb_common;
mod wasm_app;

use gdb_common::*;
use wasm_app::marked_line;

/// The rows of `maint info jit` (`0xENTRY 0xSYMFILE SIZE`).
fn jit_entries(text: &str) -> Vec<(u64, u64, u64)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
            let entry = hex(w.next()?)?;
            let symfile = hex(w.next()?)?;
            let size = w.next()?.parse().ok()?;
            Some((entry, symfile, size))
        })
        .collect()
}

/// The function names of the frames of `bt` with a source line from a file whose name
/// ends with `file`, in order.
fn frames_at(bt: &str, file: &str) -> Vec<String> {
    parse_gdb_bt(bt)
        .into_iter()
        .zip(bt.lines().filter(|l| l.starts_with('#')))
        .filter(|(_, line)| {
            line.rsplit_once(" at ")
                .is_some_and(|(_, at)| at.split(':').next().unwrap().ends_with(file))
        })
        .map(|(f, _)| f.name)
        .collect()
}

#[test]
fn debug_info_modules_reach_gdb_through_the_jit_interface() {
    let module = wat_file("jit-interface.wat", NESTED);
    let target = Target::start_with("tcp:127.0.0.1:0", &["--debug-info"], &module, &[]);
    let out = gdb(
        &target.addr,
        &[
            "echo <JIT>\\n",
            "maint info jit",
            "echo </JIT>\\n<BT>\\n",
            "bt",
            "echo </BT>\\n<LIBS>\\n",
            "info sharedlibrary",
            "echo </LIBS>\\n<BREAK>\\n",
            // A breakpoint on the source line (in Wasmtime's DWARF) of b's call to c:
            // main's second call of b hits it.
            // (Python walks to b's frame: `frame function b` resolves `b` through
            // linespecs, where glibc's debug info, when installed, has a `b` too.)
            "python f = gdb.newest_frame()\n\
             while f.name() != 'b': f = f.older()\n\
             gdb.execute('break nested:%d' % f.find_sal().line)",
            "continue",
            "echo </BREAK>\\n<END>\\n",
            "delete",
            "continue",
        ],
    );

    // Wasmtime registered one object; gdb found it through the descriptor.
    let jit = jit_entries(between(&out, "<JIT>", "</JIT>"));
    assert_eq!(jit.len(), 1, "maint info jit:\n{out}");
    assert!(jit[0].2 > 0, "{out}");

    // The JIT frames carry the DWARF's function names and lines, innermost first (a
    // text module's DWARF names its file after the module: `$nested`).
    let bt = between(&out, "<BT>", "</BT>");
    assert_eq!(
        frames_at(bt, "nested"),
        ["c", "b", "a", "main"],
        "gdb bt:\n{out}"
    );
    assert!(bt.contains("c (var0=5) at nested:"), "{bt}");
    // The stub's own libraries are there too, and their symbols still name the
    // trampolines Wasmtime's DWARF does not describe.
    assert!(
        between(&out, "<LIBS>", "</LIBS>").contains("/clew/jit/"),
        "{out}"
    );
    assert!(bt.contains("from target:/clew/jit/"), "{bt}");

    let brk = between(&out, "<BREAK>", "</BREAK>");
    assert!(brk.contains("Breakpoint 1 at 0x"), "{out}");
    assert!(brk.contains("Breakpoint 1, b (var0=1) at nested:"), "{out}");
    assert!(
        between(&out, "<END>", "\u{0}").contains("exited normally"),
        "{out}"
    );
    // (Not a search for "error": Wasmtime's native frame names contain `error::Error`.)
    for bad in [
        "Remote connection closed",
        "Remote failure",
        "Segmentation fault",
    ] {
        assert!(!out.contains(bad), "{bad}:\n{out}");
    }
    let (status, stdout, stderr) = target.finish();
    assert_eq!(status, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout.trim(), "53");
}

#[test]
fn without_debug_info_nothing_is_registered() {
    let module = wat_file("no-jit-interface.wat", NESTED);
    let target = Target::start("tcp:127.0.0.1:0", &module);
    let out = gdb(
        &target.addr,
        &[
            "echo <JIT>\\n",
            "maint info jit",
            "echo </JIT>\\n",
            "continue",
        ],
    );
    assert!(
        jit_entries(between(&out, "<JIT>", "</JIT>")).is_empty(),
        "{out}"
    );
    assert!(out.contains("exited normally"), "{out}");
    let (status, _, _) = target.finish();
    assert_eq!(status, Some(0));
}

#[test]
fn jit_frames_of_a_rust_module_show_its_source_in_gdb() {
    let Some(wasm) = wasm_app::build("clew-gdb-jit") else {
        return;
    };
    let target = Target::start_with(
        "pty",
        &["--debug-info", "--invoke", "crash"],
        &wasm,
        &["1000000000"],
    );
    let out = gdb(
        &target.addr,
        &[
            "echo <BT>\\n",
            "bt",
            "echo </BT>\\n<LIST>\\n",
            "list",
            "echo </LIST>\\n",
            "continue",
        ],
    );
    // The out-of-bounds load stops in app::fail, called by crash: both with
    // app.rs:line from the DWARF rustc wrote and Wasmtime translated, and their
    // arguments.
    let bt = between(&out, "<BT>", "</BT>");
    assert_eq!(
        frames_at(bt, "app.rs"),
        ["app::fail", "app::crash"],
        "gdb bt:\n{out}"
    );
    for (call, marker) in [("app::fail", "fail"), ("app::crash", "crash")] {
        let frame = format!("{call} (address=1000000000) at ");
        let line = format!("app.rs:{}", marked_line(marker));
        assert!(
            bt.lines()
                .any(|l| l.contains(&frame) && l.trim_end().ends_with(&line)),
            "want {frame}...{line}:\n{bt}"
        );
    }
    // gdb reads the source around the faulting line.
    assert!(
        between(&out, "<LIST>", "</LIST>").contains("// at: fail"),
        "{out}"
    );
    // Then Wasmtime's trap, as without gdb.
    assert!(out.contains("exited with code 01"), "{out}");
    let (status, stdout, _) = target.finish();
    assert_eq!(status, Some(1));
    assert!(stdout.contains("out of bounds memory access"), "{stdout}");
}
