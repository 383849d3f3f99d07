//! The real gdb (batch mode) against the demo kernel's gdb stub under real QEMU, through
//! `clew qemu --gdb tcp:…`: the kernel waits at boot; gdb follows it through the native
//! demo's panic (SIGABRT), to `clew.breakpoint` in a module of ours (SIGTRAP), where
//! `bt` names JIT frames (from the module's image the kernel serves) and kernel frames
//! (from the kernel's ELF file it serves) in call order; `info registers`, `x` on the
//! stack and on JIT code, a breakpoint on a JIT function hit, `stepi`, `monitor bt`,
//! and `continue` to the kernel's exit. Then line noise on the serial link and a gdb
//! killed while attached: the next gdb gets the session and finishes the run.
//!
//! Needs `qemu-system-x86_64`, gdb and the `x86_64-unknown-none` target. Every wait is
//! bounded: QEMU runs under `timeout` (`--timeout`), gdb is killed after 120 s.

mod gdb_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gdb_common::*;

/// kg_main → kg_outer → kg_inner → clew.breakpoint, then kg_main calls kg_leaf (where
/// gdb's breakpoint is hit after the first stop). Unique names: no DWARF symbol of the
/// host's libraries shares them. Result: (5 * 3 + 1) + (2 + 7) = 25.
const MODULE: &str = r#"
(module $kgdb
  (import "clew" "breakpoint" (func $breakpoint))
  (import "clew" "trace" (func $trace (param i32 i64)))
  (func $kg_main (export "main") (result i32)
    (call $trace (i32.const 7) (i64.const 99))
    (i32.add (call $kg_outer (i32.const 5)) (call $kg_leaf (i32.const 2))))
  (func $kg_outer (param i32) (result i32)
    (i32.add (call $kg_inner (local.get 0)) (i32.const 1)))
  (func $kg_inner (param i32) (result i32)
    (call $breakpoint)
    (i32.mul (local.get 0) (i32.const 3)))
  (func $kg_leaf (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 7))))
"#;

/// `$kg_leaf`: the address of the JIT function, from the served image's ELF symbols.
const LEAF_ADDRESS: &str = "python import re\n\
     o = gdb.execute('info functions ^kg_leaf$', to_string=True)\n\
     gdb.set_convenience_variable('kg_leaf', int(re.search(r'^(0x[0-9a-f]+)\\s+kg_leaf$', o, re.M).group(1), 16))";

/// `clew qemu --gdb SPEC` on [`MODULE`], and the address it printed.
struct Kernel {
    child: Child,
    addr: String,
    console: std::thread::JoinHandle<String>,
}

impl Kernel {
    fn start(spec: &str) -> Kernel {
        let module = wat_file("kgdb.wat", MODULE);
        let mut child = Command::new(env!("CARGO_BIN_EXE_clew"));
        // Over the pty, the kernel serves its own ELF file to gdb (through the UART, ~30
        // s); over TCP, `clew qemu` answers for it from the host's copy.
        if spec == "pty" {
            child.env("CLEW_QEMU_GDB_FILES", "target");
        }
        let mut child = child
            .args(["qemu", "--timeout", "240", "--gdb", spec])
            .arg(&module)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawning clew qemu");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let addr = line
            .split_once("waits for gdb at ")
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or_else(|| panic!("no gdb address in {line:?}"))
            .to_owned();
        let console = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        Kernel {
            child,
            addr,
            console,
        }
    }

    /// Waits for `clew qemu` to end (bounded by its `--timeout`): status and console.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(260);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        (status, self.console.join().unwrap())
    }
}

/// `needles` in `hay` in this order.
fn in_order(hay: &str, needles: &[&str]) {
    let mut at = 0;
    for n in needles {
        match hay[at..].find(n) {
            Some(i) => at += i + n.len(),
            None => panic!("{n:?} missing (or out of order) in:\n{hay}"),
        }
    }
}

fn names(bt: &[GdbFrame]) -> Vec<&str> {
    bt.iter().map(|f| f.name.as_str()).collect()
}

#[test]
fn gdb_debugs_the_kernel_and_its_jit_code_over_the_serial_port() {
    let kernel = Kernel::start("tcp:127.0.0.1:0");
    let out = gdb(
        &kernel.addr,
        &[
            "echo MARK-BOOT\\n",
            "bt",
            // A breakpoint in kernel code (demo.rs:26: the `panic!` in level3, a line the
            // DWARF line table has), hit before the native demo panics.
            "set breakpoint pending off",
            "break demo.rs:26",
            "continue",
            "echo MARK-KBREAK\\n",
            "bt 3",
            "delete",
            "continue",
            "echo MARK-PANIC\\n",
            "bt",
            "continue",
            "echo MARK-BP\\n",
            "bt",
            "echo MARK-REGS\\n",
            "info registers",
            "echo MARK-STACK\\n",
            "x/4gx $sp",
            "echo MARK-CODE\\n",
            LEAF_ADDRESS,
            "x/3i $kg_leaf",
            "echo MARK-MONITOR\\n",
            "monitor bt",
            "echo MARK-MODULES\\n",
            "monitor modules",
            "echo MARK-TRACE\\n",
            "monitor trace",
            "echo MARK-BREAK\\n",
            "break *$kg_leaf",
            "continue",
            "echo MARK-HIT\\n",
            "bt",
            "p/x $pc - $kg_leaf",
            "stepi",
            "echo MARK-STEP\\n",
            "p/x $pc - $kg_leaf",
            "delete",
            "continue",
            "echo MARK-END\\n",
        ],
    );
    // At boot: stopped in the stub's own breakpoint, called from the kernel's main.
    let boot = parse_gdb_bt(between(&out, "MARK-BOOT", "Breakpoint 1 at"));
    assert!(
        names(&boot).starts_with(&["breakpoint", "init", "main"]),
        "{boot:?}\n{out}"
    );
    // gdb's breakpoint in the kernel's own code.
    let kbreak = between(&out, "MARK-KBREAK", "MARK-PANIC");
    assert!(out.contains("Breakpoint 1, "), "{out}");
    assert_eq!(
        names(&parse_gdb_bt(kbreak)),
        ["level3", "level2", "level1"],
        "{kbreak}"
    );
    // The native demo's panic: SIGABRT, the panicking frames under the handler.
    let panic = between(&out, "MARK-PANIC", "MARK-BP");
    assert!(out.contains("SIGABRT"), "{out}");
    let panic_bt = names(&parse_gdb_bt(panic)).join(" ");
    in_order(
        &panic_bt,
        &["on_panic", "panic_fmt", "level3", "level2", "level1"],
    );
    // clew.breakpoint from wasm: SIGTRAP; JIT frames by name from the served image,
    // kernel frames around them, in call order.
    assert!(out.contains("SIGTRAP"), "{out}");
    let bp_text = between(&out, "MARK-BP", "MARK-REGS");
    let bp = parse_gdb_bt(bp_text);
    let jit: Vec<String> = jit_frames(&bp).into_iter().map(|(_, n)| n).collect();
    assert!(
        jit.windows(3)
            .any(|w| w == ["kg_inner", "kg_outer", "kg_main"]),
        "{jit:?}\n{bp_text}"
    );
    assert!(jit.iter().all(|n| !n.starts_with("??")), "{bp_text}");
    in_order(
        &names(&bp).join(" "),
        &[
            "breakpoint",
            "kg_inner",
            "kg_outer",
            "kg_main",
            "run",
            "main",
        ],
    );
    // The kernel's own frames come from its ELF file, served by the kernel.
    assert!(bp_text.contains("src/wasm/mod.rs"), "{bp_text}");
    // Registers of the trap frame.
    let regs = between(&out, "MARK-REGS", "MARK-STACK");
    for r in ["rax", "rbx", "rsp", "rbp", "r15", "rip", "eflags", "cs"] {
        assert!(
            regs.lines().any(|l| l.starts_with(r)),
            "{r} missing:\n{regs}"
        );
    }
    assert!(regs.contains("<breakpoint"), "{regs}");
    // Memory: the stack, and the JIT function's code.
    let stack = between(&out, "MARK-STACK", "MARK-CODE");
    assert!(
        stack
            .lines()
            .any(|l| l.starts_with("0x") && l.matches("0x").count() >= 3),
        "{stack}"
    );
    let code = between(&out, "MARK-CODE", "MARK-MONITOR");
    assert!(code.contains("<kg_leaf"), "{code}");
    assert_eq!(
        code.lines().filter(|l| l.contains(":\t")).count(),
        3,
        "{code}"
    );
    // `monitor bt` answered by the kernel from clew's registry.
    let monitor = parse_monitor_bt(between(&out, "MARK-MONITOR", "MARK-MODULES"));
    // `monitor modules`: the kernel's image and the JIT module; `monitor trace`: the
    // module's clew.trace(7, 99) from the kernel's flight recorder.
    let modules = between(&out, "MARK-MODULES", "MARK-TRACE");
    assert!(
        modules
            .lines()
            .any(|l| l.starts_with("native") && l.ends_with("clew-kernel")),
        "{modules}"
    );
    assert!(
        modules
            .lines()
            .any(|l| l.starts_with("jit") && l.ends_with("kgdb")),
        "{modules}"
    );
    let trace = between(&out, "MARK-TRACE", "MARK-BREAK");
    assert!(trace.contains("user(7) args=[99]"), "{trace}");
    let jit: Vec<&str> = monitor
        .iter()
        .filter(|f| f.2)
        .map(|f| f.1.as_str())
        .collect();
    assert!(
        jit.windows(3)
            .any(|w| w == ["kg_inner", "kg_outer", "kg_main"]),
        "{monitor:?}\n{out}"
    );
    // The breakpoint on the JIT function is hit, at its first byte; stepi moves on.
    let hit = between(&out, "MARK-HIT", "MARK-STEP");
    let hit_bt = parse_gdb_bt(hit);
    assert_eq!(names(&hit_bt).first().copied(), Some("kg_leaf"), "{hit}");
    assert!(hit.contains("= 0x0"), "{hit}");
    let step = between(&out, "MARK-STEP", "MARK-END");
    assert!(!step.contains("= 0x0\n") && step.contains("= 0x"), "{step}");
    // On to the end: the kernel's exit reaches gdb.
    assert!(out.contains("exited normally"), "{out}");
    let (status, console) = kernel.finish();
    assert_eq!(status, Some(0), "{console}");
    in_order(
        &console,
        &[
            "gdb: stub on COM3",
            "clew.breakpoint: stopping in gdb",
            "main returned [I32(25)]",
            "CLEW-KERNEL: ALL CHECKS PASSED",
        ],
    );
}

#[test]
fn noise_on_the_line_and_a_killed_gdb_leave_the_kernel_waiting() {
    let kernel = Kernel::start("tcp:127.0.0.1:0");
    // Line noise: binary junk, a packet with a bad checksum, stray acks, a bare `$$`.
    {
        let mut noise = TcpStream::connect(&kernel.addr).unwrap();
        noise
            .write_all(b"\x00\xff\x7fgarbage\r\n$qBogus#00+-$$#zz}}\x00")
            .unwrap();
        noise
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        // The stub asks for the bad packet again (`-`); read what came, then hang up.
        let mut buf = [0u8; 64];
        let _ = noise.read(&mut buf);
    }
    // A gdb killed while attached (SIGKILL from inside: no detach, no goodbye).
    let out = gdb(
        &kernel.addr,
        &[
            "bt 1",
            "python import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
        ],
    );
    assert!(out.contains("breakpoint"), "{out}");
    // The next gdb gets the stopped kernel and runs it to the end.
    let out = gdb(
        &kernel.addr,
        &[
            "bt 2",
            "continue",
            "continue",
            "echo MARK-BP\\n",
            "bt",
            "continue",
        ],
    );
    let jit: Vec<String> = jit_frames(&parse_gdb_bt(between(&out, "MARK-BP", "exited")))
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert!(
        jit.windows(3)
            .any(|w| w == ["kg_inner", "kg_outer", "kg_main"]),
        "{out}"
    );
    assert!(out.contains("exited normally"), "{out}");
    let (status, console) = kernel.finish();
    assert_eq!(status, Some(0), "{console}");
}

#[test]
fn cpu_exceptions_stop_in_gdb_over_a_pty() {
    let kernel = Kernel::start("pty");
    // At the boot stop, gdb patches the code at the PC into each faulting instruction.
    let out = gdb(
        &kernel.addr,
        &[
            "echo MARK-BOOT\\n",
            "bt",
            "set language c",
            "echo MARK-UD\\n",
            "set *(unsigned short *)$pc = 0x0b0f",
            "continue",
            "x/i $pc",
            "echo MARK-GP\\n",
            // mov (%rax),%al with a non-canonical address.
            "set *(unsigned short *)$pc = 0x008a",
            "set $rax = 0x8000000000000000",
            "continue",
            "x/i $pc",
            "echo MARK-PF\\n",
            // Canonical, but beyond the boot page tables' 4 GiB.
            "set $rax = 0x7000000000",
            "continue",
            "p/x $rax",
            "echo MARK-DE\\n",
            // div %ecx by zero.
            "set $rax = 0",
            "set $rdx = 0",
            "set $rcx = 0",
            "set *(unsigned short *)$pc = 0xf1f7",
            "continue",
            "x/i $pc",
            "echo MARK-END\\n",
            "kill",
        ],
    );
    // The kernel's symbols came from the kernel itself (its ELF file over the UART).
    let boot = between(&out, "MARK-BOOT", "MARK-UD");
    assert!(
        names(&parse_gdb_bt(boot)).starts_with(&["breakpoint", "init", "main"]),
        "{out}"
    );
    assert!(boot.contains("src/gdb/mod.rs"), "{out}");
    let ud = between(&out, "MARK-UD", "MARK-GP");
    assert!(ud.contains("SIGILL") && ud.contains("ud2"), "{out}");
    let gp = between(&out, "MARK-GP", "MARK-PF");
    assert!(gp.contains("SIGSEGV") && gp.contains("mov"), "{out}");
    let pf = between(&out, "MARK-PF", "MARK-DE");
    assert!(
        pf.contains("SIGSEGV") && pf.contains("0x7000000000"),
        "{out}"
    );
    let de = between(&out, "MARK-DE", "MARK-END");
    assert!(de.contains("SIGFPE") && de.contains("div"), "{out}");
    // `kill` ends QEMU with the kernel's failure status.
    let (status, console) = kernel.finish();
    assert_eq!(status, Some(1), "{console}");
    assert!(console.contains("clew-kernel: gdb: killed"), "{console}");
}
