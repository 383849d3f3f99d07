//! What `clew run` reports, through the real binary on `.wat` modules written here:
//! each kind of trap (cause, wasm frames named, exit 1), host panics deep in wasm, a
//! module of 200 functions all named in order, bad modules and invocations (one line on
//! stderr, exit 2) and the `--json` lines for all of them; colour only on a terminal
//! (`script` gives the binary a pseudo-terminal) and never with NO_COLOR.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn clew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(args)
        .output()
        .unwrap()
}

fn wat(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("clew-reports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `needles` appear in `hay` in this order.
fn in_order(hay: &str, needles: &[&str]) {
    let mut at = 0;
    for n in needles {
        match hay[at..].find(n) {
            Some(i) => at += i + n.len(),
            None => panic!("{n:?} missing (or out of order) in:\n{hay}"),
        }
    }
}

/// Every stdout line parses as JSON; the last is the exit event with `status`.
fn json_lines(o: &Output, status: i32) -> Vec<Value> {
    let events: Vec<Value> = stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let last = events.last().expect("at least the exit line");
    assert_eq!(last["event"], "exit", "{last}");
    assert_eq!(last["status"], status, "{last}");
    assert_eq!(o.status.code(), Some(status));
    events
}

fn event<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

/// The functions of a frame list's JIT frames (Wasmtime's trampolines left out).
fn jit_functions(frames: &Value) -> Vec<String> {
    frames
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "jit")
        .map(|f| f["function"].as_str().unwrap_or("??").to_owned())
        .filter(|n| !n.contains("trampoline"))
        .collect()
}

/// One line on stderr naming the run's failure, and no Rust panic message.
fn one_line_stderr(o: &Output, want: &str) {
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("clew run: ") && err.contains(want),
        "{want:?}: {err}"
    );
    assert!(!err.contains("panicked at"), "{err}");
}

const TRAPS: &str = r#"(module
  (memory 1)
  (func $unreachable_inner unreachable)
  (func $unreachable (export "unreachable") call $unreachable_inner)
  (func $oob_inner (param i32) (result i32) local.get 0 i32.load)
  (func $oob (export "oob") (param i32) (result i32) local.get 0 call $oob_inner i32.const 1 i32.add)
  (func $div_inner (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_u)
  (func $div (export "div") (param i32 i32) (result i32)
    local.get 0 local.get 1 call $div_inner i32.const 1 i32.add)
  (func $overflow_inner (param i32 i32) (result i32) local.get 0 local.get 1 i32.div_s)
  (func $overflow (export "overflow") (param i32 i32) (result i32)
    local.get 0 local.get 1 call $overflow_inner i32.const 1 i32.add)
  (func $recurse (param i32) (result i32)
    local.get 0 i32.const 1 i32.add call $recurse i32.const 1 i32.add)
  (func (export "stack") (result i32) i32.const 0 call $recurse))"#;

#[test]
fn every_kind_of_trap_reports_its_cause_and_named_wasm_frames() {
    let m = wat("traps.wat", TRAPS);
    let m = m.to_str().unwrap();
    let cases: [(&[&str], &str, &[&str]); 4] = [
        (
            &["unreachable"],
            "wasm `unreachable` instruction executed",
            &["unreachable_inner", "unreachable"],
        ),
        (
            &["oob", "70000"],
            "out of bounds memory access",
            &["oob_inner", "oob"],
        ),
        (
            &["div", "7", "0"],
            "integer divide by zero",
            &["div_inner", "div"],
        ),
        (
            &["overflow", "-2147483648", "-1"],
            "integer overflow",
            &["overflow_inner", "overflow"],
        ),
    ];
    for (invoke, cause, functions) in cases {
        let mut args = vec!["run", m, "--invoke"];
        args.extend_from_slice(invoke);
        let o = clew(&args);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(1), "{invoke:?}: {out}");
        one_line_stderr(&o, &format!("`{}` trapped", invoke[0]));
        let named: Vec<String> = functions
            .iter()
            .map(|f| format!("JIT    wasm module  wasm function {f}  at wasm offset 0x"))
            .collect();
        let mut want = vec![cause, "wasm frames at the fault (innermost first):"];
        want.extend(named.iter().map(String::as_str));
        in_order(&out, &want);

        args.push("--json");
        let o = clew(&args);
        let events = json_lines(&o, 1);
        let trap = event(&events, "trap");
        assert!(trap["cause"].as_str().unwrap().contains(cause), "{trap}");
        assert_eq!(trap["function"], invoke[0]);
        assert_eq!(jit_functions(&trap["frames"]), functions, "{trap}");
        for f in trap["frames"].as_array().unwrap() {
            assert!(f["wasm_offset"].as_u64().unwrap() > 0, "{f}");
        }
    }
    // The same functions without a trap.
    let o = clew(&["run", m, "--invoke", "div", "7", "2"]);
    assert_eq!((o.status.code(), stdout(&o).trim()), (Some(0), "4"));
}

#[test]
fn a_stack_overflow_reports_the_recursion_folded() {
    let m = wat("stack.wat", TRAPS);
    let o = clew(&["run", m.to_str().unwrap(), "--invoke", "stack"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    one_line_stderr(&o, "`stack` trapped");
    in_order(
        &out,
        &[
            "wasm trap: call stack exhausted",
            "JIT    wasm module  wasm function recurse",
            "more of the same frame",
        ],
    );
    assert!(
        out.lines().count() < 20,
        "repeated frames are folded:\n{out}"
    );

    let o = clew(&["run", m.to_str().unwrap(), "--invoke", "stack", "--json"]);
    let events = json_lines(&o, 1);
    let trap = event(&events, "trap");
    assert!(
        trap["cause"]
            .as_str()
            .unwrap()
            .contains("call stack exhausted")
    );
    let functions = jit_functions(&trap["frames"]);
    assert!(functions.len() > 100, "{}", functions.len());
    assert!(functions.iter().all(|f| f == "recurse"), "{functions:?}");
}

#[test]
fn host_panics_deep_in_wasm_report_the_backtrace_at_the_panic_point() {
    let m = wat(
        "panics.wat",
        r#"(module
        (import "clew" "panic" (func $panic (param i32)))
        (func $c (param i32) local.get 0 call $panic)
        (func $b (param i32) local.get 0 call $c)
        (func $a (export "a") (param i32) local.get 0 call $b))"#,
    );
    let m = m.to_str().unwrap();
    let o = clew(&["run", m, "--invoke", "a", "42"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    one_line_stderr(&o, "`a` panicked");
    in_order(
        &out,
        &[
            "panic: wasm requested panic: 42",
            "backtrace at the panic point (innermost first):",
            "native clew  clew::run::install_panic_hook",
            "JIT    wasm module  c  at wasm offset 0x",
            "JIT    wasm module  b  at wasm offset 0x",
            "JIT    wasm module  a  at wasm offset 0x",
            "native clew  clew::run::call  at ",
        ],
    );

    let o = clew(&["run", m, "--json", "--invoke", "a", "42"]);
    let events = json_lines(&o, 1);
    let panic = event(&events, "panic");
    assert_eq!(panic["message"], "wasm requested panic: 42");
    assert_eq!(panic["function"], "a");
    assert_eq!(jit_functions(&panic["frames"]), ["c", "b", "a"], "{panic}");
    // Native frames of the clew binary carry their source lines.
    let call = panic["frames"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| std::iter::once(f).chain(f["inlined_callers"].as_array().unwrap()))
        .find(|f| f["function"] == "clew::run::call")
        .expect("clew::run::call among the frames");
    assert!(
        call["file"].as_str().unwrap().ends_with("tools/src/run.rs"),
        "{call}"
    );
    assert!(call["line"].as_u64().unwrap() > 0, "{call}");
    let native = panic["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "native");
    for f in native {
        assert!(f["pc"].as_str().unwrap().starts_with("0x"), "{f}");
        assert!(f["module"].is_string() && f["path"].is_string(), "{f}");
    }
}

/// `f0` → `f1` → … → `f199` → `clew.backtrace` (or `unreachable`).
fn chain(n: usize, innermost: &str) -> String {
    let mut m = String::from("(module\n  (import \"clew\" \"backtrace\" (func $bt))\n");
    for i in 0..n {
        let body = if i + 1 < n {
            format!("call $f{}", i + 1)
        } else {
            innermost.to_owned()
        };
        let export = if i == 0 { " (export \"f0\")" } else { "" };
        // Work after each call, so no call is a tail call.
        m += &format!("  (func $f{i}{export} (result i32) {body} i32.const {i} i32.add)\n");
    }
    m + ")"
}

#[test]
fn two_hundred_functions_are_all_named_in_order() {
    let want: Vec<String> = (0..200).rev().map(|i| format!("f{i}")).collect();

    let m = wat("many.wat", &chain(200, "call $bt i32.const 1"));
    let o = clew(&["run", m.to_str().unwrap(), "--invoke", "f0"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let lines: Vec<String> = want
        .iter()
        .map(|f| format!("JIT    wasm module  {f}  at wasm offset 0x"))
        .collect();
    in_order(&out, &lines.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        out.lines().last(),
        Some((1 + (0..200).sum::<i32>()).to_string().as_str())
    );

    let o = clew(&["run", m.to_str().unwrap(), "--invoke", "f0", "--json"]);
    let events = json_lines(&o, 0);
    let bt = event(&events, "backtrace");
    assert_eq!(bt["source"], "clew.backtrace");
    assert_eq!(jit_functions(&bt["frames"]), want);
    // Each frame's wasm offset lies past the previous (callee) one's: f199's call site
    // is last in the code section, f0's first.
    let offsets: Vec<u64> = bt["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "jit" && f["wasm_offset"].is_u64())
        .map(|f| f["wasm_offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets.len(), 200);
    assert!(offsets.windows(2).all(|w| w[0] > w[1]), "{offsets:?}");
    let result = event(&events, "result");
    assert_eq!(result["results"][0]["type"], "i32");

    let m = wat("many_trap.wat", &chain(200, "unreachable"));
    let o = clew(&["run", m.to_str().unwrap(), "--invoke", "f0", "--json"]);
    let events = json_lines(&o, 1);
    assert_eq!(jit_functions(&event(&events, "trap")["frames"]), want);
}

#[test]
fn bad_modules_get_one_line_and_status_2_in_json_too() {
    let unknown = wat(
        "unknown.wat",
        r#"(module (import "env" "nope" (func)) (func (export "main")))"#,
    );
    let wrong_clew = wat(
        "wrong_clew.wat",
        r#"(module (import "clew" "backtrace" (func (param i32))) (func (export "main")))"#,
    );
    let args2 = wat(
        "args.wat",
        r#"(module (func (export "f") (param i32 i64) (result i64) local.get 1))"#,
    );
    let syntax = wat(
        "syntax.wat",
        "(module\n  (func (export \"f\")\n    i32.cnst 1))",
    );
    let invalid = wat("invalid.wasm", "\0asm\x01\0\0\0garbage");
    let type_error = wat(
        "type.wat",
        r#"(module (func (export "main") (result i32) i64.const 1))"#,
    );
    let none = wat("none.wat", r#"(module (func (export "other")))"#);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["/nonexistent/module.wasm"], "/nonexistent/module.wasm"),
        (vec![invalid.to_str().unwrap()], "invalid module"),
        (
            vec![syntax.to_str().unwrap()],
            "invalid module: unknown operator or unexpected token (line 3, column 5)",
        ),
        (vec![type_error.to_str().unwrap()], "type mismatch"),
        (vec![unknown.to_str().unwrap()], "env::nope"),
        (vec![wrong_clew.to_str().unwrap()], "clew::backtrace"),
        (
            vec![args2.to_str().unwrap(), "--invoke", "f", "1"],
            "`f` takes 2 argument(s), 1 given",
        ),
        (
            vec![args2.to_str().unwrap(), "--invoke", "f", "1", "2", "3"],
            "`f` takes 2 argument(s), 3 given",
        ),
        (
            vec![args2.to_str().unwrap(), "--invoke", "f", "1", "1.5"],
            "`1.5` is not an i64",
        ),
        (
            vec![none.to_str().unwrap()],
            "no --invoke given and no `_start` or `main` export",
        ),
    ];
    for (args, want) in cases {
        let mut argv = vec!["run"];
        argv.extend(&args);
        let o = clew(&argv);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        one_line_stderr(&o, want);
        assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));

        argv.insert(1, "--json");
        let o = clew(&argv);
        one_line_stderr(&o, want);
        let events = json_lines(&o, 2);
        assert_eq!(events.len(), 2, "{events:?}");
        let error = event(&events, "error");
        assert!(
            error["message"].as_str().unwrap().contains(want),
            "{args:?}: {error}"
        );
        assert_eq!(error["status"], 2);
    }
}

#[test]
fn json_demo_has_the_backtrace_result_and_caught_panic() {
    let o = clew(&["run", "--json"]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let events = json_lines(&o, 0);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["backtrace", "result", "panic", "exit"]);
    let bt = &events[0];
    assert_eq!(bt["source"], "clew.backtrace");
    assert_eq!(
        jit_functions(&bt["frames"]),
        ["inner", "middle", "outer", "main"]
    );
    let frames = bt["frames"].as_array().unwrap();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f["index"], i);
        assert!(
            ["jit", "native"].contains(&f["kind"].as_str().unwrap()),
            "{f}"
        );
        assert!(f["inlined_callers"].is_array(), "{f}");
    }
    // The host frame that captured the stack, with its source line, and native frames
    // with inlined callers further out.
    assert_eq!(frames[0]["function"], "clew::run::capture");
    assert!(frames[0]["line"].as_u64().unwrap() > 0);
    assert!(
        frames
            .iter()
            .any(|f| f["kind"] == "native" && !f["inlined_callers"].as_array().unwrap().is_empty())
    );
    assert_eq!(events[1]["results"][0]["value"], 7);
    assert_eq!(events[2]["message"], "wasm requested panic: 7");
    assert_eq!(
        jit_functions(&events[2]["frames"]),
        ["middle_panic", "explode"]
    );
}

/// Runs `command` (a shell command line) under `script`, with a pseudo-terminal as its
/// stdout and stderr; returns what the terminal showed. `None` (loudly) without
/// `script`, outside CI.
fn on_terminal(command: &str) -> Option<String> {
    let o = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .stdin(Stdio::null())
        .output();
    match o {
        Ok(o) => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!(
                "\n!!! SKIPPING: `script` (util-linux) not found: terminal checks did NOT run !!!\n"
            );
            None
        }
        Err(e) => panic!("`script` (util-linux) is needed: {e}"),
    }
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let bin = env!("CARGO_BIN_EXE_clew");
    let esc = "\x1b[";
    // Pipes: never, unless asked for.
    let plain = stdout(&clew(&["run"]));
    assert!(!plain.contains(esc), "{plain}");
    let forced = stdout(&clew(&["run", "--color", "always"]));
    assert!(forced.contains(esc), "{forced}");
    let Some(tty) = on_terminal(&format!("env -u NO_COLOR {bin} run")) else {
        return;
    };
    // Kinds and function names highlighted: "JIT" in bold magenta, names in bold.
    assert!(
        tty.contains("\x1b[1m\x1b[35mJIT   \x1b[0m") || tty.contains("\x1b[1;35mJIT"),
        "{tty:?}"
    );
    assert!(tty.contains("middle\x1b[0m"), "{tty:?}");
    let no_color = on_terminal(&format!("NO_COLOR=1 {bin} run")).unwrap();
    assert!(!no_color.contains(esc), "{no_color:?}");
    assert!(no_color.contains("JIT    demo  middle"), "{no_color:?}");
    let never = on_terminal(&format!("env -u NO_COLOR {bin} run --color never")).unwrap();
    assert!(!never.contains(esc), "{never:?}");
}
