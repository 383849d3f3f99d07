//! `clew run` on a wasm module with DWARF from a real compiler: `tests/wasm/app.rs`
//! built with `rustc --target wasm32-unknown-unknown -g`. The JIT frames of a
//! `clew.backtrace` and of a trap must carry the source file and line of each wasm
//! function (inlined callers included): the lines marked `// at:` in the source, and
//! what llvm-symbolizer says for the same code offsets of the same module.
//!
//! Damaged DWARF (bytes flipped in the custom sections, truncated modules, random
//! bytes) is read without a panic, and every lookup over it answers.
//!
//! Needs the `wasm32-unknown-unknown` target (`.ci/run` installs it) and
//! llvm-symbolizer; in CI a missing one fails the test.

mod wasm_app;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use clew::wasm_dwarf::WasmDwarf;
use proptest::prelude::*;
use serde_json::Value;
use wasm_app::{build, marked_line, skip_or_fail, source};

fn clew(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clew"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// The module, built once per test process: `None` (after a loud message) when the
/// wasm target is not installed outside CI.
fn module() -> Option<&'static Path> {
    static MODULE: OnceLock<Option<PathBuf>> = OnceLock::new();
    MODULE.get_or_init(|| build("clew-dwarf")).as_deref()
}

fn llvm_symbolizer() -> Option<String> {
    let names = std::iter::once("llvm-symbolizer".to_string())
        .chain((11..=21).rev().map(|v| format!("llvm-symbolizer-{v}")));
    for name in names {
        if Command::new(&name).arg("--version").output().is_ok() {
            return Some(name);
        }
    }
    skip_or_fail("llvm-symbolizer")?;
    None
}

/// The file offset of the code section's payload (DWARF address 0 in wasm), read here
/// from the binary format directly, independently of clew.
fn code_section_start(wasm: &[u8]) -> u64 {
    fn leb(b: &[u8], at: &mut usize) -> u64 {
        let (mut v, mut shift) = (0u64, 0);
        loop {
            let byte = b[*at];
            *at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return v;
            }
            shift += 7;
        }
    }
    assert_eq!(&wasm[..4], b"\0asm");
    let mut at = 8;
    while at < wasm.len() {
        let id = wasm[at];
        at += 1;
        let size = leb(wasm, &mut at) as usize;
        if id == 10 {
            return at as u64;
        }
        at += size;
    }
    panic!("no code section");
}

/// `(function, file, line)` of each frame llvm-symbolizer gives for a DWARF address,
/// innermost first (legacy Rust hashes dropped from names).
fn llvm_frames(llvm: &str, wasm: &Path, address: u64) -> Vec<(String, String, u32)> {
    let o = Command::new(llvm)
        .arg(format!("--obj={}", wasm.display()))
        .args(["-f", "-i", "-C"])
        .arg(format!("{address:#x}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    lines
        .chunks(2)
        .map(|c| {
            let name = c[0];
            let name = match name.rsplit_once("::h") {
                Some((n, h)) if h.len() == 16 && h.chars().all(|c| c.is_ascii_hexdigit()) => n,
                _ => name,
            };
            let mut parts = c[1].rsplitn(3, ':');
            let _col = parts.next();
            let line = parts.next().unwrap().parse().unwrap();
            (name.to_owned(), parts.next().unwrap().to_owned(), line)
        })
        .collect()
}

/// `(function, file, line)` of a JSON frame and its inlined callers, innermost first.
fn clew_frames(frame: &Value) -> Vec<(String, String, u32)> {
    let one = |v: &Value| {
        (
            v["function"].as_str().unwrap_or("??").to_owned(),
            v["file"].as_str().unwrap_or("??").to_owned(),
            v["line"].as_u64().unwrap_or(0) as u32,
        )
    };
    std::iter::once(one(frame))
        .chain(frame["inlined_callers"].as_array().unwrap().iter().map(one))
        .collect()
}

fn json_lines(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The JIT frames of `frames` that carry a wasm offset.
fn wasm_frames(frames: &Value) -> Vec<&Value> {
    frames
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "jit" && f["wasm_offset"].is_u64())
        .collect()
}

/// Every JIT frame's function, file and line equal llvm-symbolizer's at its offset.
fn agree_with_llvm(wasm: &Path, frames: &[&Value]) {
    let Some(llvm) = llvm_symbolizer() else {
        return;
    };
    let code = code_section_start(&std::fs::read(wasm).unwrap());
    for f in frames {
        let address = f["wasm_offset"].as_u64().unwrap() - code;
        let want = llvm_frames(&llvm, wasm, address);
        assert_eq!(clew_frames(f), want, "DWARF address {address:#x}: {f}");
    }
}

#[test]
fn backtrace_frames_of_a_rust_wasm_module_have_file_and_line() {
    let Some(wasm) = module() else { return };
    let src = source();
    let src = src.to_str().unwrap();
    // Text output shows paths under the current directory relative to it.
    let short = "tests/wasm/app.rs";
    let o = clew(&["run", wasm.to_str().unwrap(), "--invoke", "entry", "4"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert_eq!(out.lines().last(), Some("18"), "(4 + 1) * 2 + 5 + 3");
    // Text: leaf, then twice inlined into helper (one PC, two lines), then entry.
    let want = [
        format!("  leaf  at {short}:{}", marked_line("leaf")),
        format!("  app::twice  at {short}:{}", marked_line("twice")),
        "(inlined by)".to_owned(),
        format!("  app::helper  at {short}:{}", marked_line("helper")),
        format!("  entry  at {short}:{}", marked_line("entry")),
    ];
    let mut at = 0;
    for w in &want {
        let i = out[at..]
            .find(w.as_str())
            .unwrap_or_else(|| panic!("{w:?} missing or out of order in:\n{out}"));
        at += i + w.len();
    }

    let o = clew(&[
        "run",
        wasm.to_str().unwrap(),
        "--invoke",
        "entry",
        "4",
        "--json",
    ]);
    let events = json_lines(&o);
    let bt = events
        .iter()
        .find(|e| e["event"] == "backtrace")
        .expect("a backtrace event");
    let frames = wasm_frames(&bt["frames"]);
    let names: Vec<&str> = frames
        .iter()
        .map(|f| f["function"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["leaf", "app::twice", "entry"], "{bt}");
    assert_eq!(frames[1]["inlined_callers"][0]["function"], "app::helper");
    assert_eq!(
        frames[1]["inlined_callers"][0]["line"],
        marked_line("helper")
    );
    for f in &frames {
        assert!(f["pc"].as_str().unwrap().starts_with("0x"), "{f}");
        assert_eq!(f["file"], src, "{f}");
    }
    agree_with_llvm(wasm, &frames);
}

/// An address past the module's memory (rustc gives it about a megabyte).
const BEYOND: &str = "2147483632";

#[test]
fn trap_frames_of_a_rust_wasm_module_have_file_and_line() {
    let Some(wasm) = module() else { return };
    let src = "tests/wasm/app.rs";
    let o = clew(&["run", wasm.to_str().unwrap(), "--invoke", "crash", BEYOND]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("out of bounds memory access"), "{out}");
    let fail = format!("wasm function app::fail  at {src}:{}", marked_line("fail"));
    let crash = format!("wasm function crash  at {src}:{}", marked_line("crash"));
    let (i, j) = (out.find(&fail), out.find(&crash));
    assert!(
        matches!((i, j), (Some(i), Some(j)) if i < j),
        "{fail:?} then {crash:?} in:\n{out}"
    );

    let o = clew(&[
        "run",
        wasm.to_str().unwrap(),
        "--json",
        "--invoke",
        "crash",
        BEYOND,
    ]);
    let events = json_lines(&o);
    let trap = events
        .iter()
        .find(|e| e["event"] == "trap")
        .expect("a trap event");
    let frames = wasm_frames(&trap["frames"]);
    assert_eq!(frames.len(), 2, "{trap}");
    agree_with_llvm(wasm, &frames);
    assert_eq!(events.last().unwrap()["status"], 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn damaged_dwarf_is_read_without_panics(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..24),
        cut in any::<prop::sample::Index>(),
    ) {
        let Some(wasm) = module() else { return Ok(()) };
        let mut bytes = std::fs::read(wasm).unwrap();
        // The DWARF sections follow the code section: damage only them.
        let code = code_section_start(&bytes) as usize;
        for (i, x) in flips {
            let at = code + i.index(bytes.len() - code);
            bytes[at] ^= x;
        }
        if let Ok(Some(dwarf)) = WasmDwarf::parse(&bytes) {
            for offset in 0..bytes.len() as u32 + 8 {
                let _ = dwarf.frames(offset);
            }
        }
        let n = cut.index(bytes.len());
        if let Ok(Some(dwarf)) = WasmDwarf::parse(&bytes[..n]) {
            let _ = dwarf.frames(code as u32 + 3);
        }
    }

    #[test]
    fn random_bytes_are_no_module_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut with_header = b"\0asm\x01\0\0\0".to_vec();
        with_header.extend_from_slice(&bytes);
        for input in [&bytes[..], &with_header[..]] {
            if let Ok(Some(dwarf)) = WasmDwarf::parse(input) {
                let _ = dwarf.frames(0);
            }
        }
    }
}

#[test]
fn modules_without_dwarf_have_none() {
    // A module from the text format: a code section, no .debug_info.
    let wasm = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x0a\x04\x01\x02\0\x0b";
    assert!(WasmDwarf::parse(wasm).unwrap().is_none());
    assert!(WasmDwarf::parse(b"\0asm\x01\0\0\0").unwrap().is_none());
    assert!(WasmDwarf::parse(b"not wasm").is_err());
    let Some(wasm) = module() else { return };
    let dwarf = WasmDwarf::parse(&std::fs::read(wasm).unwrap())
        .unwrap()
        .expect("DWARF");
    assert!(dwarf.frames(0).is_empty(), "offset 0 is the module header");
}
