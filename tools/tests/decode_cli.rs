//! `clew run --dump` and `clew decode` end to end, through the real binary: dumps of real
//! wasm traps (unreachable, division by zero, out-of-bounds access) and host panics
//! decode to the frames `clew run` showed live (JIT frames included, in order, inlined
//! callers too); the host re-unwind from the dumped registers and stack finds exactly
//! the dumped live PCs; `--json` parses; and truncated or bit-flipped copies of a real
//! dump never crash the decoder, which keeps every intact record and exits 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn clew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(args)
        .output()
        .unwrap()
}

fn dir() -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("decode-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir().join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Traps by argument: 0 `unreachable`, 1 division by zero, 2 out-of-bounds load; a
/// trace event first.
const TRAPS: &str = r#"
(module $traps
  (import "clew" "trace" (func $trace (param i32 i64)))
  (memory 1)
  (func $main (export "main") (param i32) (result i32)
    (call $trace (i32.const 7) (i64.const 99))
    (call $outer (local.get 0)))
  (func $outer (param i32) (result i32)
    (i32.add (call $middle (local.get 0)) (i32.const 1)))
  (func $middle (param i32) (result i32)
    (i32.add (call $inner (local.get 0)) (i32.const 2)))
  (func $inner (param i32) (result i32)
    (if (i32.eq (local.get 0) (i32.const 0)) (then unreachable))
    (if (i32.eq (local.get 0) (i32.const 1))
      (then (return (i32.div_s (i32.const 10) (i32.sub (local.get 0) (i32.const 1))))))
    (i32.load (i32.const 70000))))
"#;

const PANICS: &str = r#"
(module $panics
  (import "clew" "panic" (func $panic (param i32)))
  (import "clew" "trace" (func $trace (param i32 i64)))
  (func (export "main")
    (call $trace (i32.const 3) (i64.const 5))
    (call $first))
  (func $first (call $second))
  (func $second (call $panic (i32.const 9))))
"#;

/// The function names of the frame lines (inlined callers included) that follow the
/// line starting with `header` in `clew run`'s output, innermost first.
fn run_frames(out: &str, header: &str) -> Vec<String> {
    let start = out
        .find(header)
        .unwrap_or_else(|| panic!("no {header:?} in:\n{out}"));
    let mut names = Vec::new();
    for line in out[start..].lines().skip(1) {
        let t = line.trim_start();
        let rest = if let Some(r) = t.strip_prefix('#') {
            // `#N  0xPC  KIND MODULE  NAME[  at LOC]`
            let r = r
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .trim_start();
            r.split_once(' ').map_or("", |(_, r)| r)
        } else if let Some(r) = t.strip_prefix("(inlined by)") {
            r
        } else {
            break;
        };
        // `KIND MODULE  NAME[  at LOC]`: the kind, spaces, the module up to two spaces.
        let rest = rest.trim_start();
        let rest = rest.split_once(' ').map_or("", |(_, r)| r).trim_start();
        let rest = rest.split_once("  ").map_or("", |(_, r)| r);
        let name = rest.split("  at ").next().unwrap();
        names.push(name.to_owned());
    }
    assert!(!names.is_empty(), "no frames after {header:?} in:\n{out}");
    names
}

/// The function names of a `--json` report's frame list, inlined callers included.
fn json_frames(frames: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for f in frames.as_array().unwrap() {
        let funcs = f["functions"].as_array().unwrap();
        if funcs.is_empty() {
            names.push("??".to_owned());
        }
        for func in funcs {
            names.push(func["name"].as_str().unwrap().to_owned());
        }
    }
    names
}

fn decode_json(path: &Path, extra: &[&str]) -> (Output, Value) {
    let mut args = vec!["decode", "--json", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = clew(&args);
    assert!(
        o.status.code().is_some(),
        "clew decode was killed: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output does not parse ({e}):\n{}\n{}",
            stdout(&o),
            String::from_utf8_lossy(&o.stderr)
        )
    });
    (o, v)
}

/// Runs the trap module with `arg` under `clew run --dump`; returns the run's output and
/// the dump's path.
fn trap_dump(arg: &str) -> (String, PathBuf) {
    let wat = file("traps.wat", TRAPS.as_bytes());
    let dump = dir().join(format!("trap{arg}.dump"));
    let o = clew(&[
        "run",
        wat.to_str().unwrap(),
        "--invoke",
        "main",
        "--dump",
        dump.to_str().unwrap(),
        arg,
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("clew run: dump written: "), "{err}");
    (out, dump)
}

fn check_trap(arg: &str, signal: &str, wasmtime: &str) {
    let (out, dump) = trap_dump(arg);
    assert!(out.contains(wasmtime), "{out}");
    let header = format!("clew backtrace at the fault ({signal}, innermost first):");
    let live = run_frames(&out, &header);
    // The fault backtrace starts in the JIT frames, innermost at the fault.
    assert_eq!(live[..4], ["inner", "middle", "outer", "main"], "{out}");
    assert!(live.iter().any(|n| n == "clew::run::run"), "{live:?}");

    let (o, v) = decode_json(&dump, &[]);
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v:#}");
    assert_eq!(v["cause"]["kind"], "trap");
    assert!(
        v["cause"]["summary"].as_str().unwrap().contains(signal),
        "{}",
        v["cause"]
    );
    let task = &v["task"];
    assert_eq!(task["exact_pc"], true);
    // The host re-unwind from the dumped registers and stack equals the live walk.
    assert_eq!(task["agrees"], true, "{}", task["agreement"]);
    let pcs = |f: &Value| -> Vec<u64> {
        f.as_array()
            .unwrap()
            .iter()
            .map(|f| f["pc"].as_u64().unwrap())
            .collect()
    };
    assert_eq!(pcs(&task["backtrace"]), pcs(&task["live_backtrace"]));
    // And it names the same frames `clew run` printed at the fault.
    assert_eq!(json_frames(&task["backtrace"]), live, "{v:#}");
    // JIT frames carry the same wasm offsets (the dump's source-offset map) as live.
    let live_offsets: Vec<String> = out[out.find(&header).unwrap()..]
        .lines()
        .skip(1)
        .take_while(|l| l.trim_start().starts_with('#') || l.contains("(inlined by)"))
        .filter(|l| l.contains(" JIT "))
        .map(|l| {
            l.split("  at wasm offset ")
                .nth(1)
                .unwrap_or("-")
                .to_owned()
        })
        .collect();
    let dumped_offsets: Vec<String> = task["backtrace"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "jit")
        .map(|f| {
            f["functions"][0]["wasm_offset"]
                .as_u64()
                .map_or_else(|| "-".to_owned(), |o| format!("{o:#x}"))
        })
        .collect();
    assert_eq!(dumped_offsets, live_offsets);
    assert!(
        live_offsets.iter().filter(|o| *o != "-").count() >= 4,
        "{live_offsets:?}"
    );
    // The frames of JIT code are named from the dump's symbols, native ones from the
    // ELF files with file:line.
    let kinds: Vec<&str> = task["backtrace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "jit");
    assert!(kinds.contains(&"native"));
    // Events: the JIT module's registration, the module's trace event, the trap.
    let events: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let at = |n: &str| {
        events
            .iter()
            .position(|e| *e == n)
            .unwrap_or_else(|| panic!("{n} in {events:?}"))
    };
    assert!(at("module-registered") < at("user 7") && at("user 7") < at("trap"));
    let trap = &v["events"].as_array().unwrap()[at("trap")];
    assert!(trap["rel_ns"].as_i64().unwrap() <= 0);
}

#[test]
fn trap_unreachable_decodes_to_the_live_frames() {
    check_trap("0", "SIGILL", "wasm `unreachable` instruction executed");
}

#[test]
fn trap_division_by_zero_decodes_to_the_live_frames() {
    // Cranelift checks the divisor and executes `ud2`: SIGILL, not SIGFPE.
    check_trap("1", "SIGILL", "integer divide by zero");
}

#[test]
fn trap_out_of_bounds_decodes_to_the_live_frames() {
    check_trap("2", "SIGSEGV", "out of bounds memory access");
}

#[test]
fn panic_dump_decodes_to_the_live_frames() {
    let wat = file("panics.wat", PANICS.as_bytes());
    let dump = dir().join("panic.dump");
    let o = clew(&[
        "run",
        wat.to_str().unwrap(),
        "--dump",
        dump.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    let live = run_frames(&out, "backtrace at the panic point (innermost first):");
    let (o, v) = decode_json(&dump, &[]);
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(v["cause"]["kind"], "panic");
    assert!(
        v["cause"]["summary"]
            .as_str()
            .unwrap()
            .contains("wasm requested panic: 9"),
        "{}",
        v["cause"]
    );
    let task = &v["task"];
    assert_eq!(task["exact_pc"], false);
    assert_eq!(task["agrees"], true, "{}", task["agreement"]);
    let names = json_frames(&task["backtrace"]);
    assert_eq!(names, live, "{v:#}");
    let pos = |n: &str| {
        names
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} in {names:?}"))
    };
    assert!(pos("second") < pos("first"), "{names:?}");
    assert!(
        pos("core::panicking::panic_fmt") < pos("second"),
        "{names:?}"
    );
}

#[test]
fn text_report_shows_cause_frames_modules_and_events() {
    let (_, dump) = trap_dump("2");
    let o = clew(&["decode", dump.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for needle in [
        "cause: trap in task ",
        "SIGSEGV",
        "faulting address 0x",
        "re-unwound on the host from the dumped registers",
        "JIT    traps  inner",
        "native clew  clew::run::run  at ",
        "run.rs:",
        "the re-unwind agrees",
        "modules (",
        "CFI: .eh_frame from the dump",
        "(build-id matches)",
        "events (last ",
        "module-registered",
        "user 7",
        " µs  task ",
    ] {
        assert!(out.contains(needle), "{needle:?} missing in:\n{out}");
    }
    assert!(!out.contains("problems ("), "{out}");
}

#[test]
fn search_directories_and_build_id_checks() {
    let (_, dump) = trap_dump("0");
    let exe = Path::new(env!("CARGO_BIN_EXE_clew"));
    // A search directory holding the right file under the dumped name: used.
    let good = dir().join("search-good");
    std::fs::create_dir_all(&good).unwrap();
    let _ = std::fs::remove_file(good.join("clew"));
    std::os::unix::fs::symlink(exe, good.join("clew")).unwrap();
    let (_, v) = decode_json(&dump, &["--search", good.to_str().unwrap()]);
    let clew_module = |v: &Value| -> Value {
        v["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"].as_str().unwrap().ends_with("/clew"))
            .unwrap()
            .clone()
    };
    assert_eq!(
        clew_module(&v)["host_file"].as_str().unwrap(),
        good.join("clew").to_str().unwrap()
    );
    assert_eq!(v["task"]["agrees"], true);
    // A different ELF under that name: its build-id is refused, the dumped path used.
    let bad = dir().join("search-bad");
    std::fs::create_dir_all(&bad).unwrap();
    let _ = std::fs::remove_file(bad.join("clew"));
    let other = v["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|m| m["host_file"].as_str().filter(|p| p.contains("libc.so")))
        .unwrap()
        .to_owned();
    std::os::unix::fs::symlink(&other, bad.join("clew")).unwrap();
    let (_, v) = decode_json(&dump, &["--search", bad.to_str().unwrap()]);
    let m = clew_module(&v);
    assert_eq!(m["host_file"].as_str().unwrap(), exe.to_str().unwrap());
    assert_eq!(v["task"]["agrees"], true);
}

/// Offsets just past each frame's closing delimiter: the record boundaries.
fn boundaries(bytes: &[u8]) -> Vec<usize> {
    (1..bytes.len())
        .filter(|&i| bytes[i] == 0 && bytes[i - 1] != 0)
        .map(|i| i + 1)
        .collect()
}

/// A tiny deterministic generator (no scheduling or time dependence).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

#[test]
fn damaged_real_dumps_never_crash_and_keep_intact_records() {
    let (_, dump) = trap_dump("1");
    let bytes = std::fs::read(&dump).unwrap();
    let ends = boundaries(&bytes);
    let total = ends.len() as u64;
    let (o, v) = decode_json(&dump, &[]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(v["records"].as_u64(), Some(total));

    // Truncation at every record boundary and at pseudo-random offsets: every frame
    // completed before the cut is kept, the cut is reported, the exit status is 1.
    let mut rng = Lcg(0x5eed);
    let mut cuts: Vec<usize> = ends.iter().copied().filter(|&e| e < bytes.len()).collect();
    cuts.extend((0..24).map(|_| rng.next(bytes.len())));
    cuts.push(0);
    for cut in cuts {
        let p = file("cut.dump", &bytes[..cut]);
        let (o, v) = decode_json(&p, &[]);
        let complete = ends.iter().filter(|&&e| e <= cut).count() as u64;
        assert_eq!(o.status.code(), Some(1), "cut at {cut}: {v:#}");
        assert_eq!(v["records"].as_u64(), Some(complete), "cut at {cut}");
        let problems = v["problems"].as_array().unwrap();
        assert!(
            problems.iter().any(|p| {
                let r = p["reason"].as_str().unwrap();
                r.contains("no end record") || r.contains("cut short")
            }),
            "cut at {cut}: {problems:?}"
        );
        // With the cause's frame intact, the cause is decoded.
        if complete >= 2 {
            assert!(v["cause"].is_object(), "cut at {cut}");
        }
    }

    // Bit flips: one frame at most is lost, every other record is kept.
    for _ in 0..32 {
        let mut b = bytes.clone();
        let at = rng.next(b.len());
        b[at] ^= 1 << rng.next(8);
        let p = file("flip.dump", &b);
        let (o, v) = decode_json(&p, &[]);
        assert_eq!(o.status.code(), Some(1), "flip at {at}: {v:#}");
        let records = v["records"].as_u64().unwrap();
        assert!(
            records + 1 >= total,
            "flip at {at}: {records} of {total} records"
        );
        assert!(!v["problems"].as_array().unwrap().is_empty());
        // A problem names the damaged run around the flipped byte.
        let covered = v["problems"].as_array().unwrap().iter().any(|p| {
            let (off, len) = (p["offset"].as_u64().unwrap(), p["len"].as_u64().unwrap());
            off <= at as u64 + 1 && at as u64 <= off + len
        });
        assert!(covered, "flip at {at}: {:#}", v["problems"]);
    }
}

#[test]
fn garbage_and_missing_files() {
    let zeros = file("zeros.dump", &[0u8; 4096]);
    let noise: Vec<u8> = {
        let mut rng = Lcg(7);
        (0..8192).map(|_| rng.next(256) as u8).collect()
    };
    let noise = file("noise.dump", &noise);
    let empty = file("empty.dump", &[]);
    for p in [zeros, noise, empty] {
        let (o, v) = decode_json(&p, &[]);
        assert_eq!(o.status.code(), Some(1), "{}", p.display());
        assert!(!v["problems"].as_array().unwrap().is_empty());
        let o = clew(&["decode", p.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stdout(&o).contains("note: offset "), "{}", stdout(&o));
    }
    let o = clew(&["decode", "/nonexistent/x.dump"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/x.dump"));
}

#[test]
fn no_failure_leaves_no_dump_file() {
    let wat = file("traps-ok.wat", TRAPS.as_bytes());
    let dump = dir().join("none.dump");
    let o = clew(&[
        "run",
        wat.to_str().unwrap(),
        "--invoke",
        "main",
        "--dump",
        dump.to_str().unwrap(),
        "5",
    ]);
    // 5 takes the out-of-bounds path only for arguments other than 0 and 1: it traps.
    assert_eq!(o.status.code(), Some(1));
    assert!(dump.exists());
    std::fs::remove_file(&dump).unwrap();
    let ok = file(
        "ok.wat",
        br#"(module (func (export "main") (result i32) i32.const 4))"#,
    );
    let o = clew(&[
        "run",
        ok.to_str().unwrap(),
        "--dump",
        dump.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o).trim(), "4");
    assert!(!dump.exists(), "a dump file without a failure");
}

/// A dump of this test thread by the tracer's own host helper.
#[inline(never)]
fn tracer_host_dump(path: &Path) {
    let sink = clew_tracer::sink::FileSink::create(path).unwrap();
    let (_, summary) = clew_tracer::dump::host::write_thread_dump(
        sink,
        clew_tracer::dump::host::Why::Requested("decode_cli test"),
        &Default::default(),
    );
    assert_eq!(summary.error, None);
}

#[test]
fn tracer_host_dumps_decode_and_agree() {
    clew_tracer::dump::host::prepare();
    let p = dir().join("host.dump");
    tracer_host_dump(&p);
    let (o, v) = decode_json(&p, &[]);
    assert_eq!(o.status.code(), Some(0), "{v:#}");
    assert_eq!(v["cause"]["kind"], "requested");
    let task = &v["task"];
    assert_eq!(task["agrees"], true, "{}", task["agreement"]);
    let names = json_frames(&task["backtrace"]);
    assert!(
        names.iter().any(|n| n.ends_with("tracer_host_dump")),
        "{names:?}"
    );
    // The test executable is named by its path (not the loader's empty name), with its
    // build-id, and found.
    let exe = std::env::current_exe().unwrap();
    let m = v["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"].as_str() == exe.to_str())
        .unwrap_or_else(|| panic!("{exe:?} in {:#}", v["modules"]));
    assert_eq!(m["host_file"].as_str(), exe.to_str());
    assert!(m["build_id"].is_string());
}
