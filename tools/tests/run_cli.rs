//! `clew run` end to end, through the real binary: the embedded demo (a backtrace through
//! JIT frames, a host panic unwound out through them), traps and host panics with their
//! reports and exit status 1, results printed, and bad modules or invocations answered
//! with one line and exit status 2, never a Rust panic message.

use std::path::PathBuf;
use std::process::{Command, Output};

fn clew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(args)
        .output()
        .unwrap()
}

fn wat(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clew-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The positions of `needles` in `hay`, which must appear in this order.
fn in_order(hay: &str, needles: &[&str]) {
    let mut at = 0;
    for n in needles {
        match hay[at..].find(n) {
            Some(i) => at += i + n.len(),
            None => panic!("{n:?} missing (or out of order) in:\n{hay}"),
        }
    }
}

#[test]
fn demo_shows_jit_frames_and_a_caught_panic() {
    let o = clew(&["run"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    // The backtrace from clew.backtrace: host frames, then inner → middle → outer → main
    // as JIT frames, then native frames with file:line back to `clew run`.
    in_order(
        &out,
        &[
            "clew::run::capture  at ",
            "JIT    demo  inner",
            "JIT    demo  middle",
            "JIT    demo  outer",
            "JIT    demo  main",
            "clew::run::run  at ",
            "src/run.rs:",
        ],
    );
    // The panic, its backtrace from the panic point through the JIT frames, and the end.
    in_order(
        &out,
        &[
            "panic: wasm requested panic: 7",
            "JIT    demo  middle_panic",
            "JIT    demo  explode",
            "ends normally",
        ],
    );
    assert!(!err.contains("panicked at"), "{err}");
}

#[test]
fn traps_report_the_cause_and_wasm_frames() {
    let m = wat(
        "trap.wat",
        r#"(module
        (func $inner unreachable)
        (func $boom (export "boom") call $inner)
        (func (export "div") (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s))"#,
    );
    let m = m.to_str().unwrap();
    let o = clew(&["run", m, "--invoke", "boom"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    in_order(
        &out,
        &[
            "wasm trap:",
            "unreachable",
            "wasm function inner",
            "wasm function boom",
        ],
    );
    let o = clew(&["run", m, "--invoke", "div", "7", "0"]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(out.contains("divide by zero"), "{out}");
    let o = clew(&["run", m, "--invoke", "div", "7", "2"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o).0.trim(), "3");
}

#[test]
fn host_panics_report_the_backtrace_at_the_panic_point() {
    let m = wat(
        "panic.wat",
        r#"(module
        (import "clew" "panic" (func $panic (param i32)))
        (func $deep (param i32) local.get 0 call $panic)
        (func (export "_start") i32.const 5 call $deep))"#,
    );
    let o = clew(&["run", m.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    in_order(
        &out,
        &[
            "panic: wasm requested panic: 5",
            "backtrace at the panic point",
            "JIT    ",
            "deep",
            "_start",
        ],
    );
    assert!(!err.contains("panicked at"), "{err}");
}

#[test]
fn bad_modules_and_invocations_get_one_line_and_status_2() {
    let unknown = wat(
        "unknown.wat",
        r#"(module (import "env" "nope" (func)) (func (export "main")))"#,
    );
    let args2 = wat(
        "args.wat",
        r#"(module (func (export "f") (param i32 i64) (result i64) local.get 1))"#,
    );
    let invalid = wat("invalid.wasm", "\0asm\x01\0\0\0garbage");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "/nonexistent/module.wat"],
            "/nonexistent/module.wat",
        ),
        (vec!["run", invalid.to_str().unwrap()], "invalid module"),
        (vec!["run", unknown.to_str().unwrap()], "nope"),
        (
            vec!["run", args2.to_str().unwrap(), "--invoke", "f", "1"],
            "takes 2 argument(s), 1 given",
        ),
        (
            vec!["run", args2.to_str().unwrap(), "--invoke", "f", "x", "1"],
            "is not an i32",
        ),
        (
            vec!["run", args2.to_str().unwrap(), "--invoke", "g"],
            "no exported function `g`",
        ),
    ];
    for (args, want) in cases {
        let o = clew(&args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line: {err}"
        );
        assert!(
            err.contains(want) && err.starts_with("clew run: "),
            "{args:?}: {err}"
        );
    }
    let o = clew(&["run", args2.to_str().unwrap(), "--invoke", "f", "1", "-9"]);
    assert_eq!((o.status.code(), text(&o).0.trim()), (Some(0), "-9"));
}
