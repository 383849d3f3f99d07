//! The real gdb (batch mode) against `clew run --gdb` over TCP and over a pty: `bt`
//! names the JIT frames in order and agrees with `monitor bt`; registers; `x` on the
//! stack, on JIT code and on unmapped memory; a breakpoint gdb sets on a JIT function is
//! hit; `stepi`; `continue` to the program's exit; `detach` lets it finish.

mod gdb_common;

use gdb_common::*;

/// gdb commands (Python) that set `$jit_b` and `$jit_c` to the addresses of the JIT
/// functions `b` and `c`, looked up as ELF function symbols of the served image: a DWARF
/// symbol of the same name elsewhere (glibc's debug info, when installed, has constants
/// `b` and `c`) would win a plain `x/2i c` or `break b`.
const JIT_FN_ADDRESSES: &str = "python import re\n\
             def jit_fn(name):\n\
             \x20   o = gdb.execute('info functions ^' + name + '$', to_string=True)\n\
             \x20   return int(re.search(r'^(0x[0-9a-f]+)\\s+' + name + '$', o, re.M).group(1), 16)\n\
             gdb.set_convenience_variable('jit_b', jit_fn('b'))\n\
             gdb.set_convenience_variable('jit_c', jit_fn('c'))";

fn full_session(spec: &str) {
    let module = wat_file("nested.wat", NESTED);
    let dump_path = module.with_file_name(format!("stop-{}.dump", spec.split(':').next().unwrap()));
    let dump_cmd = format!("monitor dump {}", dump_path.display());
    let target = Target::start(spec, &module);
    let out = gdb(
        &target.addr,
        &[
            "echo <BT>\\n",
            "bt",
            "echo </BT>\\n<MON>\\n",
            "monitor bt",
            "echo </MON>\\n<REGS>\\n",
            "info registers",
            "echo </REGS>\\n<PC>\\n",
            "p/x $pc",
            "echo </PC>\\n<XSTACK>\\n",
            "x/2gx $sp",
            "echo </XSTACK>\\n<XCODE>\\n",
            "set language c",
            JIT_FN_ADDRESSES,
            "x/2i $jit_c",
            "echo </XCODE>\\n<XBAD>\\n",
            "x/xg 0",
            "echo </XBAD>\\n<BREAK>\\n",
            "break *$jit_b",
            "continue",
            "echo </BREAK>\\n<STEP>\\n",
            "p/x $pc",
            "stepi",
            "p/x $pc",
            "echo </STEP>\\n<MODULES>\\n",
            "monitor modules",
            "echo </MODULES>\\n<DUMP>\\n",
            &dump_cmd,
            "echo </DUMP>\\n<END>\\n",
            "delete",
            "continue",
        ],
    );

    // bt: the JIT frames by name, innermost first, from the served image.
    let bt = parse_gdb_bt(between(&out, "<BT>", "</BT>"));
    let jit = jit_frames(&bt);
    let names: Vec<&str> = jit
        .iter()
        .map(|(_, n)| n.as_str())
        .filter(|n| ["a", "b", "c", "main"].contains(n))
        .collect();
    assert_eq!(names, ["c", "b", "a", "main"], "gdb bt:\n{out}");
    // Native frames around them are named too (the executable is a library as well).
    assert!(
        bt.iter().any(|f| f.name.contains("breakpoint")),
        "frame 0 should be the stub's breakpoint function:\n{out}"
    );

    // monitor bt (clew's unwinder + symbolizer) agrees on every JIT frame.
    let mon = parse_monitor_bt(between(&out, "<MON>", "</MON>"));
    let mon_jit: Vec<(u64, String)> = mon
        .iter()
        .filter(|(_, _, jit)| *jit)
        .map(|(pc, n, _)| (*pc, n.clone()))
        .collect();
    assert!(!mon_jit.is_empty(), "monitor bt shows no JIT frame:\n{out}");
    assert_eq!(mon_jit, jit, "monitor bt vs gdb bt:\n{out}");

    // Registers: every general register, rip equal to $pc.
    let regs = between(&out, "<REGS>", "</REGS>");
    for r in ["rax", "rbx", "rsp", "rbp", "r15", "rip", "eflags", "cs"] {
        assert!(
            regs.lines().any(|l| l.split_whitespace().next() == Some(r)),
            "no {r} in info registers:\n{regs}"
        );
    }
    let pc = between(&out, "<PC>", "</PC>")
        .split("0x")
        .nth(1)
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .expect("p/x $pc");
    let rip_line = regs.lines().find(|l| l.starts_with("rip")).unwrap();
    assert!(
        rip_line.contains(&format!("{pc:#x}")),
        "{rip_line} vs {pc:#x}"
    );

    // x on the stack: two words; on JIT code: Cranelift's frame setup; unmapped: an error.
    let xs = between(&out, "<XSTACK>", "</XSTACK>");
    assert_eq!(xs.matches("0x").count(), 3, "x/2gx $sp:\n{xs}");
    let xc = between(&out, "<XCODE>", "</XCODE>");
    assert!(
        xc.contains("<c>:") || xc.contains("<c+0>:"),
        "x/2i c:\n{xc}"
    );
    assert!(xc.contains("push") && xc.contains("%rbp"), "x/2i c:\n{xc}");
    let xb = between(&out, "<XBAD>", "</XBAD>");
    assert!(xb.contains("Cannot access memory at address 0x0"), "{xb}");

    // The breakpoint gdb set in JIT code is hit (b's second call, from main).
    let brk = between(&out, "<BREAK>", "</BREAK>");
    assert!(
        brk.contains("Breakpoint 1, 0x"),
        "breakpoint not hit:\n{out}"
    );
    assert!(brk.contains(" in b ()"), "breakpoint not in b:\n{brk}");

    // stepi moves the PC, staying in b.
    let step = between(&out, "<STEP>", "</STEP>");
    let pcs: Vec<u64> = step
        .lines()
        .filter(|l| l.starts_with('$'))
        .filter_map(|l| l.split("0x").nth(1))
        .filter_map(|h| u64::from_str_radix(h.trim(), 16).ok())
        .collect();
    assert_eq!(pcs.len(), 2, "stepi:\n{step}");
    assert_ne!(pcs[0], pcs[1], "stepi did not move:\n{step}");
    assert!(step.contains("in b ()"), "stepi left b:\n{step}");

    let modules = between(&out, "<MODULES>", "</MODULES>");
    assert!(
        modules.contains("jit") && modules.contains("nested"),
        "{modules}"
    );

    // continue runs to the end; gdb hears the exit.
    assert!(
        between(&out, "<END>", "\u{0}").contains("exited normally"),
        "{out}"
    );
    let (status, stdout, stderr) = target.finish();
    assert_eq!(status, Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stdout.trim(), "53");
}

#[test]
fn gdb_over_tcp() {
    full_session("tcp:127.0.0.1:0");
}

#[test]
fn gdb_over_pty() {
    full_session("pty");
}

#[test]
fn detach_lets_the_program_finish() {
    let module = wat_file("detach.wat", NESTED);
    let target = Target::start("tcp:127.0.0.1:0", &module);
    // A breakpoint set but never hit, and a step: detach must leave neither behind.
    let out = gdb(
        &target.addr,
        &[
            "set language c",
            JIT_FN_ADDRESSES,
            "break *$jit_b",
            "stepi",
            "detach",
        ],
    );
    assert!(out.contains("Breakpoint 1 at"), "{out}");
    assert!(out.contains("detached"), "{out}");
    let (status, stdout, stderr) = target.finish();
    assert_eq!(
        status,
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}\ngdb:\n{out}"
    );
    assert_eq!(stdout.trim(), "53");
}

/// Names of the wasm functions among the JIT frames of gdb's `bt` in `out`.
fn wasm_names(out: &str, wanted: &[&str]) -> Vec<String> {
    jit_frames(&parse_gdb_bt(out))
        .into_iter()
        .map(|(_, n)| n)
        .filter(|n| wanted.contains(&n.as_str()))
        .collect()
}

#[test]
fn a_trap_in_jit_code_stops_at_the_faulting_instruction() {
    let module = wat_file(
        "trap.wat",
        r#"(module $trapper
  (func $main (export "main") (result i32) (call $outer (i32.const 0)))
  (func $outer (param i32) (result i32) (call $divide (local.get 0)))
  (func $divide (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0))))"#,
    );
    let target = Target::start("tcp:127.0.0.1:0", &module);
    let out = gdb(&target.addr, &["bt", "x/i $pc", "info program", "continue"]);
    assert!(out.contains("It stopped with signal SIGFPE"), "{out}");
    assert_eq!(
        wasm_names(&out, &["divide", "outer", "main"]),
        ["divide", "outer", "main"],
        "{out}"
    );
    assert!(out.contains("<divide+") && out.contains("div "), "{out}");
    // After gdb, Wasmtime's handler turns the fault into the trap it always was.
    assert!(out.contains("exited with code 01"), "{out}");
    let (status, stdout, _) = target.finish();
    assert_eq!(status, Some(1));
    assert!(
        stdout.contains("wasm trap: integer divide by zero"),
        "{stdout}"
    );
}

#[test]
fn a_panic_stops_at_the_panic_point() {
    let module = wat_file(
        "panic.wat",
        r#"(module $boom
  (import "clew" "panic" (func $panic (param i32)))
  (func $main (export "main") (call $outer (i32.const 7)))
  (func $outer (param i32) (call $inner (local.get 0)))
  (func $inner (param i32) (call $panic (local.get 0))))"#,
    );
    let target = Target::start("tcp:127.0.0.1:0", &module);
    let out = gdb(&target.addr, &["bt", "info program", "continue"]);
    assert!(out.contains("It stopped with signal SIGABRT"), "{out}");
    assert_eq!(
        wasm_names(&out, &["inner", "outer", "main"]),
        ["inner", "outer", "main"],
        "{out}"
    );
    let (status, stdout, _) = target.finish();
    assert_eq!(status, Some(1));
    assert!(
        stdout.contains("panic: wasm requested panic: 7"),
        "{stdout}"
    );
}

#[test]
fn bad_gdb_specs_are_one_line_errors() {
    let module = wat_file(
        "plain.wat",
        "(module (func (export \"main\") (result i32) (i32.const 42)))",
    );
    for spec in ["serial", "tcp:", "tcp:nohost"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_clew"))
            .args(["run", "--gdb", spec])
            .arg(&module)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{spec}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("clew run: --gdb: `"), "{err}");
    }
    // No stop: the program runs to its end without waiting for gdb.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(["run", "--gdb", "tcp:127.0.0.1:0"])
        .arg(&module)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
}

/// gdb's Ctrl-C while the program spins in JIT code: gdb gets SIGINT (it interrupts
/// itself after a second, as a user's ^C does), `bt` names the loop, `kill` ends it.
fn interrupt(spec: &str) {
    let module = wat_file(
        &format!("spin-{}.wat", spec.split(':').next().unwrap()),
        r#"(module $spinner
  (import "clew" "breakpoint" (func $breakpoint))
  (func $main (export "main") (call $breakpoint) (call $spin))
  (func $spin (loop $l (br $l))))"#,
    );
    let target = Target::start(spec, &module);
    let out = gdb(
        &target.addr,
        &[
            "python import threading, os, signal; threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()",
            "continue",
            "bt 2",
            "kill",
        ],
    );
    assert!(out.contains("Program received signal SIGINT"), "{out}");
    assert_eq!(
        wasm_names(&out, &["spin", "main"]),
        ["spin", "main"],
        "{out}"
    );
    let (status, _, _) = target.finish();
    assert_eq!(status, Some(137), "killed by gdb");
}

#[test]
fn interrupt_over_tcp() {
    interrupt("tcp:127.0.0.1:0");
}

#[test]
fn interrupt_over_pty() {
    interrupt("pty");
}
